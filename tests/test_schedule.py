"""The order of the run (tests/support/schedule.py): long files first, each file's worker
tests after its other tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tests.support.schedule import LONG_FILES, scheduled

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class FakeItem:
    nodeid: str
    fixturenames: list[str] = field(default_factory=list)


def test_long_files_start_first_longest_first_and_the_others_keep_their_order() -> None:
    items = [
        FakeItem("tests/a_test.py::one"),
        FakeItem(f"{LONG_FILES[1]}::slow"),
        FakeItem("tests/b_test.py::two"),
        FakeItem(f"{LONG_FILES[0]}::slowest"),
        FakeItem("tests/a_test.py::three"),
    ]
    assert [item.nodeid for item in scheduled(items)] == [
        f"{LONG_FILES[0]}::slowest",
        f"{LONG_FILES[1]}::slow",
        "tests/a_test.py::one",
        "tests/a_test.py::three",
        "tests/b_test.py::two",
    ]


def test_a_files_worker_tests_run_after_its_in_process_ones() -> None:
    items = [
        FakeItem("tests/x_test.py::first", ["session"]),
        FakeItem("tests/x_test.py::needs_worker", ["session", "worker"]),
        FakeItem("tests/x_test.py::in_process", ["session"]),
        FakeItem("tests/x_test.py::needs_worker_too", ["worker"]),
        FakeItem("tests/x_test.py::last", []),
    ]
    assert [item.nodeid.split("::")[1] for item in scheduled(items)] == [
        "first",
        "in_process",
        "last",
        "needs_worker",
        "needs_worker_too",
    ]


def test_every_long_file_exists() -> None:
    """A renamed file left in the list would silently lose its early start."""
    assert [path for path in LONG_FILES if not (ROOT / path).is_file()] == []
    assert len(set(LONG_FILES)) == len(LONG_FILES)
