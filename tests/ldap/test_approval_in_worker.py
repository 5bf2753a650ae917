"""Approving through the admin API: the request is answered at once and the test file's real
Celery worker applies the approval under the connector's lease."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from models.entities import Organisation
from models.enums import Role, UserStatus
from tests.ldap.conftest import linked_users
from tests.ldap.test_approval_recheck import _audited, _change
from tests.support import factories
from tests.support.relay import wait_relaying
from tests.support.slow_proxy import slow_proxy

# Seconds the approval request may take before the test decides it waited for the directory
# (a bound against hanging, far beyond any answer that does not wait).
REQUEST_BOUND = 60


def _admin_auth(session, connector) -> dict[str, str]:
    org = session.get_one(Organisation, connector.organisation_id)
    admin = factories.make_user(session, org, role=Role.ORG_ADMIN, email="admin@corp.test")
    auth = {"Authorization": f"Bearer {factories.admin_token(session, org, admin)}"}
    session.commit()
    return auth


def test_api_approval_is_queued_at_once_and_the_worker_applies_it(
    client, make_connector, sync, sessions, session, settings, directory, worker
):
    connector = make_connector(threshold_percent=10)
    sync(connector)
    directory.replace(directory.person_dn("bob"), "pwdAccountLockedTime", b"000001010000Z")
    held = sync(connector)
    assert held.status == "quarantined"
    auth = _admin_auth(session, connector)
    url = f"/api/v1/directory/runs/{held.run_id}/approve"
    good_urls = list(connector.server_urls)

    # A directory that does not answer until the request is answered: the request does not
    # wait for it (were it to, it would still be waiting when the bound below runs out).
    answering = threading.Event()
    with slow_proxy(good_urls[0], delay=0.0, held=answering) as slow:
        _change(session, settings, connector, server_urls=[slow])
        asked = ThreadPoolExecutor(max_workers=1).submit(client.post, url, headers=auth)
        queued = asked.result(timeout=REQUEST_BOUND)
        answering.set()
        assert queued.status_code == 202, queued.json
        assert queued.json["status"] == "approving" and queued.json["decided_by"]
        assert queued.headers["Location"].endswith(f"/api/v1/directory/runs/{held.run_id}")
        assert client.post(url, headers=auth).status_code == 409  # approved once only
        wait_relaying(
            lambda: (
                client.get(queued.headers["Location"], headers=auth).json["status"] == "approved"
            ),
            timeout=90,
            what="the worker to apply the approval",
        )
    assert linked_users(sessions, connector)["bob"].status is UserStatus.REVOKED
    assert len(_audited(sessions, "directory_sync.approval_requested", held.run_id)) == 1
    assert len(_audited(sessions, "directory_sync.approved", held.run_id)) == 1
