"""The per-actor pipeline, actor bundles, generation, evaluation reports and the `talkface` CLI."""

import os
from importlib.metadata import PackageNotFoundError, version

# Before torch loads OpenMP: its threads wait for work by sleeping, not spinning (libgomp's
# default spins). With other jobs on the cores a spinning thread holds the core the thread it
# waits for needs: two personalize at once on 2 cores took 532 s for the audio2pose stage that
# takes 6 s alone (scripts/bench_contention.py). Set OMP_WAIT_POLICY to choose otherwise.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def toolkit_version() -> str:
    """The installed talkface's version; "0+unknown" in a source tree that was not pip-installed."""
    try:
        return version("talkface")
    except PackageNotFoundError:
        return "0+unknown"
