"""scim2-tester, a public SCIM compliance checker, against the live server: zero failures."""

from __future__ import annotations

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server


def test_scim2_tester_finds_no_failure_against_the_live_server(live_server, scim_secret):
    http = Client(
        base_url=f"{live_server}/scim/v2",
        headers={"Authorization": f"Bearer {scim_secret}"},
        timeout=10,
    )
    with http:
        results = check_server(SyncSCIMClient(http))
    # Every check runs (discovery, CRUD, PATCH add/replace/remove, attributes, .search) and
    # every one succeeds: no failure, no deviation, nothing skipped.
    not_successful = [
        f"{r.status.name} {r.title}: {r.reason}" for r in results if r.status is not Status.SUCCESS
    ]
    print(f"scim2-tester: {len(results)} checks")
    assert len(results) >= 130
    assert not_successful == []
