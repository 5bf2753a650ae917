"""Signing secrets (an IdP's event hooks, the Odock bridge) changed by two admins at once
compose as if one came after the other: the list is one JSON column, read, changed and
written back, so the second writer must read it after the first wrote it. The Okta secret's
columns too: a writer that read them before another wrote sets some to the value it read
(no change, so not written) and keeps the other's, a mix of the two.

Each race is two transactions in threads (tests/lifecycle/test_membership_races.Race): the
first writes and, on PostgreSQL, waits until the second waits for the row, then commits."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from models.actions import event_hooks, odock_bridge
from models.entities import EventHookConfig, Organisation
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


def _okta(
    org: Organisation, settings: Settings, change: str, **given: object
) -> Callable[[Session], None]:
    def run(own: Session) -> None:
        organisation = own.get_one(Organisation, org.id)
        if change == "set":
            event_hooks.set_okta_secret(
                own,
                organisation=organisation,
                secret_key=settings.secret_key,
                actor=f.SETUP,
                **given,
            )
        else:
            event_hooks.clear_okta_secret(own, organisation=organisation, actor=f.SETUP)
        own.flush()

    return run


def _configured(session: Session, org: Organisation) -> None:
    event_hooks.get_config(session, org.id)
    session.commit()


def test_okta_secret_cleared_at_once_with_its_setting_ends_cleared(session, settings, race):  # noqa: F811
    """Serially: set, then cleared. Before the clear took the lock, it read no secret, wrote
    none of the columns it "cleared" (unchanged) and left the one set meanwhile: audited as
    cleared, still accepting Okta's deliveries."""
    org = _org(session)
    _configured(session, org)
    custom = ("X-Okta-Check", "custom-value")
    race.run(
        _okta(org, settings, "set", custom_header=custom),
        lambda own: None,
        _okta(org, settings, "clear"),
    )
    session.expire_all()
    config = session.get_one(EventHookConfig, org.id)
    assert config.okta_secret_hash is None
    assert (config.okta_custom_header_name, config.okta_custom_header_hash) == (None, None)


def test_okta_secret_set_at_once_with_another_keeps_the_later_whole(session, settings, race):  # noqa: F811
    """Serially the later (no custom header) replaces the earlier (one): no custom header
    left. Before set took the lock, it read none, so wrote none, and kept the earlier's."""
    org = _org(session)
    _configured(session, org)
    custom = ("X-Okta-Check", "custom-value")
    race.run(
        _okta(org, settings, "set", header_name="X-One", custom_header=custom),
        lambda own: None,
        _okta(org, settings, "set", header_name="X-Two"),
    )
    session.expire_all()
    config = session.get_one(EventHookConfig, org.id)
    assert config.okta_header_name == "X-Two"
    assert (config.okta_custom_header_name, config.okta_custom_header_hash) == (None, None)
