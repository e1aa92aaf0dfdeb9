"""`talkface jobs run`: personalize every actor of a manifest, one Ray task per actor.

Ray schedules the jobs: on a local instance started here (the machine's CPUs and GPUs), or on
an existing cluster (`address`). Each job asks for `cpus_per_job` CPUs and, when the cluster has
GPUs and the job's device is not "cpu", one GPU. An actor whose bundle ROOT/NAME is already
complete with the same settings is skipped; an interrupted one resumes stage by stage (the
bundle's own resumption); a job that fails unexpectedly (a crash, a lost worker) is rerun up to
`retries` times, one that fails on its input (an `InputError`: a corrupt video, no face) is not.

The summary ROOT/jobs.json (rewritten atomically as each actor finishes):

    format: "talkface-jobs", format_version: 1
    manifest, root: absolute paths; started, updated, finished (null while running): UTC ISO times
    counts: {done, skipped, failed, pending}: actors per status
    actors: {NAME: {
        status: "pending" | "done" | "skipped" | "failed"
        video, bundle: absolute paths
        attempts: jobs run for it in this run (0: skipped, or not run yet)
        seconds: wall time of those attempts
        ran: the stages this run ran (the rest were done before)
        stages: {STAGE: {seconds, finished, metrics}} from the bundle's manifest
        error: null, or the failure in one line: an input error's message, else "Type: message"
    }}
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from personalize.bundle import STAGES, ActorBundle, AnotherVideoError
from personalize.manifest import check_video, read_manifest
from personalize.options import ConfigOption, PresetName, manifest_options, personalize_config
from personalize.pipeline import PersonalizeConfig, bundle_log, personalize, unfinished_stages
from recon3d.device import DeviceName, resolve_device
from recon3d.errors import InputError
from recon3d.video import atomic_path, held_lock

log = logging.getLogger("talkface")

SUMMARY_NAME = "jobs.json"
SUMMARY_FORMAT_VERSION = 1
LOCK_NAME = ".jobs.lock"


@dataclass
class JobsConfig:
    """How `run_jobs` runs the actors' jobs."""

    retries: int = 1
    """Reruns of an actor whose job failed unexpectedly (input errors are not retried)."""
    address: str | None = None
    """Ray cluster to run on ("auto", "HOST:PORT" or "ray://HOST:PORT"); None: a new local Ray
    instance on this machine."""
    device: DeviceName = "auto"
    """Where each job runs torch, unless its manifest entry sets `device`."""
    cpus_per_job: int = 1
    """CPUs Ray reserves for each job (and torch's threads in it)."""
    gpus_per_job: float = 1.0
    """GPUs each job asks for when the cluster has GPUs and its device is not "cpu"."""


@dataclass(frozen=True)
class ActorJob:
    """One actor's personalization, as `talkface personalize VIDEO --actor BUNDLE --preset PRESET`
    with its options makes it (the settings are made where the job runs: "auto" depends on its device)."""

    video: Path
    bundle: Path
    preset: PresetName = "auto"
    device: DeviceName = "auto"
    options: dict = field(default_factory=dict)
    """`personalize.options.PERSONALIZE_OPTIONS` values by name."""

    def config(self, device: torch.device) -> PersonalizeConfig:
        return personalize_config(self.preset, device, **self.options)


def personalize_actor(job: ActorJob, threads: int) -> dict:
    """One actor's job, in a Ray worker: `job` personalized unless its bundle is complete. Returns
    its status, the stages it ran, its duration and the bundle's stages; failures come back as a
    one-line `error` (a traceback goes to the bundle's log)."""
    torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        device = resolve_device(job.device)
        config = job.config(device)
        ran = unfinished_stages(job.video, job.bundle, config)
        if ran:
            personalize(job.video, job.bundle, config, device, progress=False)
        result = {"status": "done" if ran else "skipped", "ran": ran, "error": None, "retry": False}
    except AnotherVideoError as err:  # `jobs run` has no --overwrite: say what to do here instead
        error = (
            f"{err.root}: already the actor bundle of another video ({err.video_name}); give the actor "
            f"another name in the manifest, or remove {err.root} to make it anew"
        )
        result = {"status": "failed", "ran": [], "error": error, "retry": False}
    except InputError as err:
        result = {"status": "failed", "ran": [], "error": str(err), "retry": False}
    except Exception as err:  # anything else may be transient (memory, a disk, a node): retried
        # Into the bundle's log, or without a bundle folder to the worker's stderr (Ray shows it here).
        with bundle_log(job.bundle) if job.bundle.is_dir() else contextlib.nullcontext():
            log.error("%s: job failed:\n%s", job.bundle.name, traceback.format_exc())
        result = {"status": "failed", "ran": [], "error": one_line(err), "retry": True}
    return {**result, "seconds": round(time.perf_counter() - start, 3), "stages": bundle_stages(job.bundle)}


def bundle_stages(root: Path) -> dict:
    """{stage: {seconds, finished, metrics}} of the bundle at `root` ({} when there is none yet)."""
    try:
        stages = ActorBundle.open(root, verify_files=False).manifest["stages"]
    except InputError:
        return {}
    return {
        name: {key: stages[name][key] for key in ("seconds", "finished", "metrics")}
        for name in STAGES
        if name in stages
    }


def one_line(err: BaseException, limit: int = 500) -> str:
    """ "Type: message" of an unexpected exception, on one line."""
    text = " ".join(f"{type(err).__name__}: {err}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


JOBS_OPTIONS = (
    ConfigOption("address", ("address",)),
    ConfigOption("device", ("device",)),
    ConfigOption("retries", ("retries",)),
    ConfigOption("cpus_per_job", ("cpus_per_job",)),
    ConfigOption("gpus_per_job", ("gpus_per_job",)),
)
"""`talkface jobs run`'s settings."""


def import_ray():
    """The `ray` module, or an InputError saying how to install it (the `jobs` extra)."""
    try:
        import ray
    except ImportError:
        raise InputError("`talkface jobs` needs Ray: pip install 'talkface[jobs]' (scripts/setup.sh does)") from None
    return ray


@contextlib.contextmanager
def ray_session(address: str | None = None) -> Iterator[None]:
    """Connected to the Ray cluster at `address`, or to a new local instance on this machine (its
    CPUs, the GPUs torch sees; no dashboard, no usage stats; logs in Ray's temp dir,
    /tmp/ray/session_latest/logs unless RAY_TMPDIR says otherwise). A session this process already
    has is used as it is and left open."""
    ray = import_ray()

    if ray.is_initialized():
        yield
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address is None:
        # A local instance keeps Ray's default token authentication; its notice about that each run is noise.
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        ray.init(
            address="local", num_gpus=torch.cuda.device_count(), include_dashboard=False, logging_level=logging.WARNING
        )
    else:
        try:
            ray.init(address=address, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise InputError(
                f"--address {address}: no Ray cluster to join ({one_line(err, 200)}); start one with "
                "`ray start --head`, or leave --address out to run on this machine"
            ) from None
    try:
        yield
    finally:
        ray.shutdown()


@contextlib.contextmanager
def root_lock(root: Path) -> Iterator[None]:
    """Makes ROOT if need be and holds ROOT/.jobs.lock while the block runs: a second `jobs run` on
    the same ROOT at once is refused (they would write the same bundles). The lock file goes when
    the block ends, and so do the folders made for ROOT that it left empty (a refusal before any
    job): a refused run leaves nothing behind."""
    made = [folder for folder in (root, *root.parents) if not folder.exists()]
    try:
        with held_lock(
            root / LOCK_NAME,
            busy=f"{root}: another `talkface jobs run` is using this root; wait for it or give another --root",
            cannot_write=f"--root {root}: cannot write there",
        ):
            yield
    finally:
        for folder in made:  # deepest first
            with contextlib.suppress(OSError):  # holds the run's bundles and summary: kept
                folder.rmdir()


def check_jobs_config(config: JobsConfig) -> None:
    """Refuses settings no cluster can meet, before anything is written (what a cluster has is
    checked against it once connected, by `_job_resources`)."""
    if config.cpus_per_job < 1:
        raise InputError(f"--cpus-per-job {config.cpus_per_job}: give 1 or more, the CPUs each job reserves")


def run_jobs(
    manifest: str | os.PathLike, root: str | os.PathLike, config: JobsConfig | None = None, progress: bool = True
) -> dict:
    """Personalizes every actor of `manifest` into ROOT/NAME as Ray tasks; returns the summary
    (also in ROOT/jobs.json). Raises InputError for a bad manifest, and at the end when any actor
    failed (after the others finished)."""
    config, manifest, root = config or JobsConfig(), Path(manifest).resolve(), Path(root).resolve()
    check_jobs_config(config)
    entries = read_manifest(manifest, manifest_options())
    for entry in entries:
        check_video(entry.video, f"{manifest}: actor {entry.name}")
    if root.exists() and not root.is_dir():
        raise InputError(f"--root {root}: not a directory")
    jobs = {}
    for entry in entries:
        options = dict(entry.options)
        preset, device = options.pop("preset", "auto"), options.pop("device", config.device)
        jobs[entry.name] = ActorJob(entry.video.resolve(), root / entry.name, preset, device, options)
    summary = {
        "format": "talkface-jobs",
        "format_version": SUMMARY_FORMAT_VERSION,
        "manifest": str(manifest),
        "root": str(root),
        "started": _now(),
        "updated": None,
        "finished": None,
        "counts": {},
        "actors": {
            name: {
                "status": "pending",
                "video": str(job.video),
                "bundle": str(job.bundle),
                "attempts": 0,
                "seconds": 0.0,
                "ran": [],
                "stages": {},
                "error": None,
            }
            for name, job in jobs.items()
        },
    }
    start = time.perf_counter()
    with root_lock(root), ray_session(config.address):
        resources = _job_resources(config)
        write_summary(root, summary)
        _run(jobs, resources, config.retries, summary, root, progress)
    summary["finished"] = _now()
    write_summary(root, summary)
    counts = summary["counts"]
    log.info(
        "jobs: %d done, %d skipped, %d failed in %.0f s; summary in %s",
        counts["done"],
        counts["skipped"],
        counts["failed"],
        time.perf_counter() - start,
        root / SUMMARY_NAME,
    )
    failed = [name for name, actor in summary["actors"].items() if actor["status"] == "failed"]
    if failed:
        raise InputError(
            f"{len(failed)} of {len(entries)} actors failed ({', '.join(failed)}): their errors are in "
            f"{root / SUMMARY_NAME}"
        )
    return summary


def _run(jobs: dict[str, ActorJob], resources: dict, retries: int, summary: dict, root: Path, progress: bool) -> None:
    """Submits every actor's job, resubmits the retryable failures, records each as it finishes."""
    ray = import_ray()

    task = ray.remote(personalize_actor)

    def submit(name: str):
        gpus = 0 if jobs[name].device == "cpu" else resources["num_gpus"]
        return task.options(
            num_cpus=resources["num_cpus"], num_gpus=gpus, max_retries=0, name=f"personalize {name}"
        ).remote(jobs[name], resources["num_cpus"])

    pending = {submit(name): name for name in jobs}
    bar = tqdm(total=len(jobs), desc="actors", unit="actor", disable=not progress)
    try:
        with logging_redirect_tqdm() if progress else contextlib.nullcontext():
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                name = pending.pop(ready[0])
                try:
                    result = ray.get(ready[0])
                except ray.exceptions.RayError as err:  # the worker or its node died
                    result = {
                        "status": "failed",
                        "ran": [],
                        "error": one_line(err),
                        "retry": True,
                        "seconds": 0.0,
                        "stages": {},
                    }
                actor = summary["actors"][name]
                actor["attempts"] += result["status"] != "skipped"
                actor["seconds"] = round(actor["seconds"] + result["seconds"], 3)
                actor["ran"] += [stage for stage in result["ran"] if stage not in actor["ran"]]
                if result["status"] == "failed" and result["retry"] and actor["attempts"] <= retries:
                    log.warning("%s: attempt %d failed (%s); retrying", name, actor["attempts"], result["error"])
                    pending[submit(name)] = name
                    continue
                # A retry that finds the bundle complete: the failed attempt finished it before dying.
                status = "done" if result["status"] == "skipped" and actor["attempts"] else result["status"]
                actor.update(status=status, stages=result["stages"] or actor["stages"], error=result["error"])
                write_summary(root, summary)
                _log_finished(name, actor)
                bar.update()
    finally:  # on Ctrl-C too: the jobs in flight end with this driver (Ray's fate sharing), their bundles resume
        bar.close()


def _job_resources(config: JobsConfig) -> dict:
    """What each job asks Ray for, checked against the cluster (a request no node can meet would
    wait forever): `num_cpus`, and `num_gpus` for a job whose device is not "cpu"."""
    ray = import_ray()

    nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
    largest = max((node.get("CPU", 0) for node in nodes), default=0)
    if not 1 <= config.cpus_per_job <= largest:
        raise InputError(
            f"--cpus-per-job {config.cpus_per_job}: give 1 to {largest:g}, the CPUs of the Ray cluster's largest node"
        )
    gpus = max((node.get("GPU", 0) for node in nodes), default=0)
    if config.device == "cuda" and not gpus:
        raise InputError("--device cuda: the Ray cluster has no GPUs; use --device auto or cpu")
    if gpus and not 0 < config.gpus_per_job <= gpus:
        raise InputError(
            f"--gpus-per-job {config.gpus_per_job:g}: give more than 0 and at most {gpus:g}, the GPUs "
            "of the Ray cluster's largest node"
        )
    return {"num_cpus": config.cpus_per_job, "num_gpus": config.gpus_per_job if gpus else 0}


def _log_finished(name: str, actor: dict) -> None:
    if actor["status"] == "failed":
        log.warning(
            "%s: failed after %d attempt%s: %s", name, actor["attempts"], "s"[: actor["attempts"] != 1], actor["error"]
        )
    elif actor["status"] == "skipped":
        log.info("%s: skipped, its bundle is complete", name)
    else:
        log.info(
            "%s: done in %.1f s (attempt %d), ran %s",
            name,
            actor["seconds"],
            actor["attempts"],
            ", ".join(actor["ran"]),
        )


def write_summary(root: Path, summary: dict) -> None:
    statuses = [actor["status"] for actor in summary["actors"].values()]
    summary["counts"] = {status: statuses.count(status) for status in ("done", "skipped", "failed", "pending")}
    summary["updated"] = _now()
    with atomic_path(root / SUMMARY_NAME) as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
