"""Errors caused by what the user gave us, as opposed to bugs.

The CLI prints an `InputError` as one line (the problem and what to do) and exits with code 2;
anything else is a bug and keeps its traceback.
"""


class InputError(Exception):
    """Bad user input: missing or corrupt file, no face, no audio stream, ..."""
