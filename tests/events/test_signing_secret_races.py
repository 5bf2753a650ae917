"""Signing secrets (an IdP's event hooks, the Odock bridge) changed by two admins at once
compose as if one came after the other: the list is one JSON column, read, changed and
written back, so the second writer must read it after the first wrote it.

Each race is two transactions in threads (tests/lifecycle/test_membership_races.Race): the
first writes and, on PostgreSQL, waits until the second waits for the row, then commits."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from models.actions import event_hooks, odock_bridge
from models.entities import Organisation
from models.settings import Settings
from tests.lifecycle.test_membership_races import Race, race  # noqa: F401 (the fixture)
from tests.support import factories as f


def _org(session: Session) -> Organisation:
    org = f.make_org(session)
    session.commit()
    return org


def _adder(
    module: object, org: Organisation, settings: Settings, ids: list[str]
) -> Callable[[Session], None]:
    def add(own: Session) -> None:
        added = module.add_signing_secret(  # type: ignore[attr-defined]
            own,
            organisation=own.get_one(Organisation, org.id),
            secret_key=settings.secret_key,
            actor=f.SETUP,
        )
        ids.append(added.id)
        own.flush()

    return add


def test_two_event_hook_secrets_added_at_once_are_both_kept(session, settings, race):  # noqa: F811
    org = _org(session)
    event_hooks.get_config(session, org.id)
    session.commit()
    ids: list[str] = []
    race.run(
        _adder(event_hooks, org, settings, ids),
        lambda own: None,
        _adder(event_hooks, org, settings, ids),
    )
    session.expire_all()
    kept = [entry["id"] for entry in event_hooks.get_config(session, org.id).signing_secrets]
    assert sorted(kept) == sorted(ids)


def test_two_bridge_secrets_added_at_once_are_both_kept(session, settings, race):  # noqa: F811
    org = _org(session)
    odock_bridge.bridge_of(session, org.id)
    session.commit()
    ids: list[str] = []
    race.run(
        _adder(odock_bridge, org, settings, ids),
        lambda own: None,
        _adder(odock_bridge, org, settings, ids),
    )
    session.expire_all()
    kept = [entry["id"] for entry in odock_bridge.bridge_of(session, org.id).signing_secrets]
    assert sorted(kept) == sorted(ids)
