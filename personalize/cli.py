"""The `talkface` console script: one subcommand per dataclass in `personalize.commands`.

Each command's fields become its options: the field's type gives the parser type (`Literal`
gives choices, `bool` gives --x/--no-x) and its metadata the flags and help, so the dataclass is
the single place that documents a command. A `settings` field stands for the options of a
settings dataclass (`personalize.options`): their types, defaults and help are the settings
fields' own.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import inspect
import itertools
import logging
import math
import re
import signal
import sys
import textwrap
import typing
from collections.abc import Iterator

from personalize import toolkit_version

log = logging.getLogger("talkface")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Fills each paragraph of a command's docstring on its own; indented blocks (examples) stay as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        fill = super()._fill_text
        blocks = re.split(r"\n\s*\n", inspect.cleandoc(text))
        return "\n\n".join(
            textwrap.indent(block, indent) if block.startswith(" ") else fill(block, width, indent) for block in blocks
        )

    def _get_help_string(self, action: argparse.Action) -> str:
        # An option whose help says its default in words does not get "(default: None)" after it.
        help = action.help or ""
        return help if "default:" in help else super()._get_help_string(action)


def _add_settings(parser: argparse.ArgumentParser, field: str, meta: dict) -> None:
    """An option per `personalize.options` option of a settings class, collected into the
    command's dict `field` (only those given: the rest keep the settings' or the preset's value)."""
    from personalize.manifest import option_type
    from personalize.options import option_help, option_kind

    settings = meta["settings"]
    presets = meta["defaults"] or {"": settings()}
    for setting in meta["options"]:
        kind, choices = option_type(option_kind(settings, setting))
        flag = f"--{setting.name.replace('_', '-')}"
        common = {
            "dest": f"{field}.{setting.name}",
            "default": argparse.SUPPRESS,
            "help": option_help(settings, setting, presets).replace("%", "%%"),  # argparse formats help
        }
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **common)
        else:
            extra = {"choices": choices} if choices else {"metavar": setting.metavar or setting.name.upper()}
            parser.add_argument(flag, type=kind, **extra, **common)


def _add_command(subparsers, name: str, command: type) -> None:
    from personalize.manifest import option_type

    doc = (command.__doc__ or "").strip()
    parser = subparsers.add_parser(name, help=doc.splitlines()[0], description=doc, formatter_class=_HelpFormatter)
    hints = typing.get_type_hints(command)
    for f in dataclasses.fields(command):
        meta = dict(f.metadata)
        if "settings" in meta:
            _add_settings(parser, f.name, meta)
            continue
        flags = meta.pop("flags", None)
        kind, choices = option_type(hints[f.name])
        extra = {"choices": choices} if choices else {}
        default = f.default
        if default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        if meta.pop("positional", False):
            parser.add_argument(
                f.name,
                type=kind,
                default=default,
                nargs="?" if default is None else None,
                metavar=f.name.upper(),
                **extra,
                **meta,
            )
        elif kind is bool:
            parser.add_argument(
                *(flags or [f"--{f.name.replace('_', '-')}"]),
                dest=f.name,
                default=default,
                action=argparse.BooleanOptionalAction,
                **meta,
            )
        else:
            required = default is dataclasses.MISSING
            parser.add_argument(
                *(flags or [f"--{f.name.replace('_', '-')}"]),
                dest=f.name,
                type=kind,
                required=required,
                default=None if required else default,
                **extra,
                **meta,
            )
    parser.set_defaults(command=command)


def build_parser() -> argparse.ArgumentParser:
    # The commands' settings come with the stages' modules (torch, mediapipe: seconds to import).
    from personalize.commands import COMMANDS

    parser = argparse.ArgumentParser(
        prog="talkface", description="Audio-driven talking-face reenactment with 3D morphable face models."
    )
    parser.add_argument("--version", action="version", version=f"talkface {toolkit_version()}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings and errors only")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    _add_commands(parser, COMMANDS)
    return parser


def _add_commands(parser: argparse.ArgumentParser, commands: dict) -> None:
    """A subcommand per dataclass; a nested dict is a command group (`talkface pretrain recon`)."""
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for name, command in commands.items():
        if isinstance(command, dict):
            group = subparsers.add_parser(
                name, help=f"{name} commands: {', '.join(command)}", description=f"{name} commands"
            )
            _add_commands(group, command)
        else:
            _add_command(subparsers, name, command)


def make_command(args: dict):
    """The command object of parsed `args` (less -q/-v): its fields, the settings options given
    collected into its `settings` dict."""
    args = dict(args)
    command = args.pop("command")
    for key in [key for key in args if "." in key]:
        field, name = key.split(".")
        args.setdefault(field, {})[name] = args.pop(key)
    return command(**args)


DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
"""Write errors that are the machine's, not the toolkit's: one line, not a traceback."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a `kill`, a closed terminal, a job scheduler's stop), raised where the
    program is, as Ctrl-C's KeyboardInterrupt is: every `with` block on the way out removes its
    temporaries (a half-written output, the actor's voice in a temporary folder)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise `Terminated` while the block runs (the main thread only: signal
    handlers can be set nowhere else)."""

    def raise_terminated(signum: int, frame) -> None:
        raise Terminated(signum)

    signals = (signal.SIGTERM, signal.SIGHUP)
    try:
        previous = {sig: signal.signal(sig, raise_terminated) for sig in signals}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def check_finite(args: dict) -> None:
    """Refuses a NaN or infinite number in a command's own options before any work (argparse's
    float takes them; settings options are checked by `personalize.options.apply_options`)."""
    from recon3d.errors import InputError

    for key, value in args.items():
        if "." not in key and isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"--{key.replace('_', '-')} {value}: give a finite number")


def answer_version(argv: list[str]) -> None:
    """`talkface --version` (before any command) is answered before the commands are imported."""
    leading = itertools.takewhile(lambda arg: arg.startswith("-"), argv)
    if "--version" in leading:
        print(f"talkface {toolkit_version()}")
        raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    answer_version(argv)
    from recon3d.errors import InputError

    args = vars(build_parser().parse_args(argv))
    quiet, verbose = args.pop("quiet"), args.pop("verbose")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s: %(message)s" if verbose else "%(message)s",
    )
    # The console shows what -q / -v ask for; talkface's own records still reach file handlers
    # (an actor bundle's log) at INFO.
    logging.root.handlers[0].setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    # mediapipe's C++ side logs through absl/glog; keep its start-up chatter out of the user's way.
    logging.getLogger("absl").setLevel(logging.ERROR)
    try:
        with terminate_as_interrupt():
            check_finite(args)
            make_command(args).main(progress=not quiet)
    except InputError as err:
        print(f"talkface: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno not in DISK_FULL:
            raise
        where = f" {err.filename}" if err.filename else ""
        print(
            f"talkface: error: could not write{where} ({err.strerror}): the disk is full or a file size limit "
            "was reached; free space and run the command again (what was finished is kept)",
            file=sys.stderr,
        )
        return 2
    except Terminated as err:
        name = signal.Signals(err.signum).name
        print(f"talkface: stopped by {name}; finished files are kept, nothing half-written is left", file=sys.stderr)
        return 128 + err.signum
    except KeyboardInterrupt:
        print("talkface: interrupted; finished files are kept, nothing half-written is left", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
