"""The order of the run: which test files pytest-xdist hands out first, and which tests of a
file run last.

With `--dist loadfile` each worker takes whole files from one queue, in the order collected
(`--no-loadscope-reorder`; by default xdist puts the files with the most tests first, which
left the files of one or two long tests, mostly waiting on processes and deadlines, to the
end of the run, one worker busy with them while the others stood idle). The long files start
first instead, longest first, and the many short files fill in around them.

Within a file, the tests that use the file's Celery worker (`worker`, module scope) run after
the others: once started, that worker takes whatever the file's later tests publish on the
run's queue, while a test that runs tasks in-process expects them to stay queued.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

# Files that took 25 s or more on one xdist worker (setup, calls and teardowns added up) in a
# whole run on PostgreSQL + Redis at load 6-20, longest first: about 5 s and more on an idle
# machine (docs/benchmarks/test_suite.md). A file not listed starts after these, as collected.
LONG_FILES = (
    "tests/cli/test_serve.py",
    "tests/cli/test_serve_stops.py",
    "tests/admin_api/test_bad_input.py",
    "tests/faults/test_cutoff_faults.py",
    "tests/admin_api/test_schemathesis.py",
    "tests/scim/test_differential.py",
    "tests/admin_api/test_access_matrix.py",
    "tests/scim/test_scim2_tester.py",
    "tests/lifecycle/test_model.py",
    "tests/admin_api/test_hostile_input.py",
    "tests/admin_api/test_guard_fuzz.py",
    "tests/ops/test_slow_clients.py",
    "tests/access_end/test_end_to_end.py",
    "tests/ops/test_tracing.py",
    "tests/admin_api/test_token_lifecycle.py",
    "tests/console/test_browser.py",
    "tests/ldap/test_runs_end.py",
    "tests/scim/test_fuzz.py",
    "tests/faults/test_blackhole.py",
    "tests/admin_api/test_lifecycle.py",
    "tests/access_end/test_mass_end.py",
    "tests/ldap/test_api_cli.py",
    "tests/invitations/test_oidc_sign_in.py",
    "tests/scim/test_differential_groups.py",
    "tests/ldap/test_approval_stalled.py",
    "tests/ldap/test_outbound_policy.py",
    "tests/console/test_deliveries.py",
    "tests/invitations/test_operations.py",
    "tests/ldap/test_faults.py",
    "tests/ldap/test_approval_in_worker.py",
    "tests/invitations/test_delivery.py",
    "tests/ldap/test_access_end_schedule.py",
    "tests/cli/test_commands.py",
    "tests/invitations/test_pending_set.py",
    "tests/ops/test_health.py",
    "tests/lifecycle/test_leavers.py",
    "tests/audit/test_streams.py",
    "tests/console/test_recertification.py",
    "tests/audit/test_source_health.py",
    "tests/admin_api/test_listing.py",
    "tests/ldap/test_full_sync.py",
    "tests/store_commands/test_store_worker_killed.py",
    "tests/mass_change/test_api_cli.py",
    "tests/store_commands/test_store_cutoffs.py",
    "tests/console/test_pages.py",
    "tests/recertification/test_end_to_end.py",
    "tests/console/test_oidc_sign_in.py",
    "tests/access_end/test_departure_notice.py",
)


class Item(Protocol):
    """What ordering needs of a pytest item."""

    @property
    def nodeid(self) -> str: ...

    @property
    def fixturenames(self) -> list[str]: ...


T = TypeVar("T", bound=Item)


def scheduled(items: Sequence[T]) -> list[T]:
    """`items` file by file: the long files first, longest first, then the others as
    collected; in each file the tests that use its worker last, otherwise as collected."""
    files: dict[str, list[T]] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    rank = {path: position for position, path in enumerate(LONG_FILES)}
    ordered = sorted(files, key=lambda path: rank.get(path, len(rank)))  # stable: as collected
    return [item for path in ordered for item in _worker_tests_last(files[path])]


def _worker_tests_last(items: list[T]) -> list[T]:
    return sorted(items, key=lambda item: "worker" in item.fixturenames)
