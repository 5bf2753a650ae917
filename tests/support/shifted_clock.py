"""Run a command (Celery's worker or beat) with its clock moved by a fixed offset.

`python -m tests.support.shifted_clock SECONDS celery …`: time-machine moves this process's
clock SECONDS from real time and lets it run on, then Celery starts as if from `python -m
celery …`. Every process started with the same offset shares one shifted clock (their forked
children too), so a worker and a beat can live weeks ahead while the test waits seconds.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import time_machine


def main() -> None:
    offset, program, *arguments = sys.argv[1:]
    time_machine.travel(datetime.now(UTC) + timedelta(seconds=float(offset)), tick=True).start()
    if program != "celery":
        raise SystemExit(f"only celery runs on a shifted clock, not {program}")
    from celery.__main__ import main as celery_main

    sys.argv = ["celery", *arguments]
    celery_main()


if __name__ == "__main__":
    main()
