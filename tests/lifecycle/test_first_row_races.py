"""Rows with a unique key created by two writers at once compose as if one came after the
other (models/unique_rows.py): a row kept once per organisation (its OpenID Connect
provider, its hook configuration, its Odock bridge, its policies) is created by the first and
changed by the second; a new object whose name must be free (a connector, an organisation)
is made by the first and refused to the second with a Conflict (a 409); rows keyed by what
they are for (a notification's deliveries) are written by the first, and the second writes
what is left. Never a duplicate
key error (an IntegrityError, a 500), and one audit event per change that happened.

Each race is two transactions in threads (tests/lifecycle/test_membership_races.Race): the
first writes the row and, on PostgreSQL, waits until the second waits for it (its INSERT
waits for the first's key), then commits. Before models/unique_rows the second failed on
the key. On SQLite the second begins only once the first committed: the same serial end."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.actions import (
    directory_connectors,
    event_hooks,
    mass_change,
    notification_deliveries,
    odock_bridge,
    odock_objects,
    oidc_providers,
    organisations,
    recertification,
)
from models.actions import scim as scim_actions
from models.entities import (
    AuditEvent,
    DirectoryConnector,
    EventHookConfig,
    NotificationDelivery,
    OdockBridge,
    OidcProvider,
    Organisation,
    OutboxMessage,
    RecertificationPolicy,
    ScimGroupRole,
)
from models.enums import HookKind, Role
from models.errors import Conflict, NotFound
from models.settings import Settings
from tests.lifecycle.test_membership_races import Race, race  # noqa: F401 (the fixture)
from tests.reviews.test_deliveries import add_hook
from tests.support import factories as f


def _org(session: Session) -> Organisation:
    org = f.make_org(session)
    session.commit()
    return org


def _trail(session: Session, organisation_id: uuid.UUID, action: str) -> list[AuditEvent]:
    session.expire_all()
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.organisation_id == organisation_id, AuditEvent.action == action)
            .order_by(AuditEvent.occurred_at, AuditEvent.id)
        )
    )


def _in(org: Organisation, change: Callable[[Session, Organisation], Any]) -> Any:
    def run(own: Session) -> None:
        change(own, own.get_one(Organisation, org.id))
        own.flush()

    return run


def _nothing(own: Session) -> None:
    pass


def test_two_admins_setting_the_first_oidc_provider_at_once(session, settings, race):  # noqa: F811
    """The later replaces the earlier's provider, as if it came second."""
    org = _org(session)

    def configure(issuer: str, client_id: str) -> Callable[[Session, Organisation], Any]:
        return lambda own, organisation: oidc_providers.configure(
            own,
            organisation=organisation,
            secret_key=settings.secret_key,
            actor=f.SETUP,
            policy=settings.outbound_policy(),
            issuer=issuer,
            client_id=client_id,
            client_secret="client-secret-0123456789abcdef",
        )

    race.run(
        _in(org, configure("https://one.example", "client-one")),
        _nothing,
        _in(org, configure("https://two.example", "client-two")),
    )
    session.expire_all()
    provider = session.get_one(OidcProvider, org.id)
    assert (provider.issuer, provider.client_id) == ("https://two.example", "client-two")
    trail = _trail(session, org.id, "sign_in.oidc_configured")
    assert [(e.before or {}).get("issuer") for e in trail] == [None, "https://one.example"]
    assert [e.after["issuer"] for e in trail] == ["https://one.example", "https://two.example"]


@pytest.mark.parametrize(
    ("module", "entity", "action"),
    [
        (event_hooks, EventHookConfig, "event_hooks.signing_secret_added"),
        (odock_bridge, OdockBridge, "odock.signing_secret_added"),
    ],
)
def test_two_first_signing_secrets_at_once_are_both_kept(
    session,
    settings: Settings,
    race: Race,  # noqa: F811
    module: Any,
    entity: type[EventHookConfig] | type[OdockBridge],
    action: str,
):
    """The organisation's hook configuration (or bridge row) is created by the first; the
    second adds its secret to it."""
    org = _org(session)
    ids: list[str] = []

    def add(own: Session, organisation: Organisation) -> None:
        added = module.add_signing_secret(
            own, organisation=organisation, secret_key=settings.secret_key, actor=f.SETUP
        )
        ids.append(added.id)

    race.run(_in(org, add), _nothing, _in(org, add))
    session.expire_all()
    row = session.get_one(entity, org.id)
    assert sorted(entry["id"] for entry in row.signing_secrets) == sorted(ids)
    assert len(ids) == 2
    assert len(_trail(session, org.id, action)) == 2


def test_two_first_okta_secrets_at_once(session, settings, race):  # noqa: F811
    org = _org(session)

    def set_secret(header: str) -> Callable[[Session, Organisation], Any]:
        return lambda own, organisation: event_hooks.set_okta_secret(
            own,
            organisation=organisation,
            secret_key=settings.secret_key,
            actor=f.SETUP,
            header_name=header,
        )

    race.run(_in(org, set_secret("X-One")), _nothing, _in(org, set_secret("X-Two")))
    session.expire_all()
    assert session.get_one(EventHookConfig, org.id).okta_header_name == "X-Two"
    assert len(_trail(session, org.id, "event_hooks.okta_secret_set")) == 2


def test_two_first_reads_of_the_recertification_policy_at_once(session, race):  # noqa: F811
    """A read (GET /recertification/policy) answers the defaults and writes nothing: the
    second neither waits for the first nor finds a row it stored."""
    org = _org(session)

    def read(own: Session, organisation: Organisation) -> None:
        assert recertification.policy_of(own, organisation.id).enabled is False

    race.run(_in(org, read), _nothing, _in(org, read))
    session.expire_all()
    assert session.get(RecertificationPolicy, org.id) is None


def test_two_first_recertification_policies_at_once(session, race):  # noqa: F811
    org = _org(session)

    def configure(days: int) -> Callable[[Session, Organisation], Any]:
        return lambda own, organisation: recertification.configure(
            own, organisation_id=organisation.id, actor=f.SETUP, changes={"every_days": days}
        )

    race.run(_in(org, configure(30)), _nothing, _in(org, configure(60)))
    session.expire_all()
    assert session.get_one(RecertificationPolicy, org.id).every_days == 60
    trail = _trail(session, org.id, "recertification.policy_changed")
    assert [(e.before["every_days"], e.after["every_days"]) for e in trail] == [(90, 30), (30, 60)]


def test_two_first_mass_change_settings_at_once_keep_both_changes(session, race):  # noqa: F811
    """One admin sets the count, the other the window: serially both stay."""
    org = _org(session)
    race.run(
        _in(
            org,
            lambda own, organisation: mass_change.set_thresholds(
                own, organisation=organisation, actor=f.SETUP, threshold_count=7
            ),
        ),
        _nothing,
        _in(
            org,
            lambda own, organisation: mass_change.set_thresholds(
                own, organisation=organisation, actor=f.SETUP, window_minutes=30
            ),
        ),
    )
    session.expire_all()
    now = mass_change.thresholds(session, org.id)
    assert (now.threshold_count, now.window_minutes) == (7, 30)
    trail = _trail(session, org.id, "mass_change.settings_changed")
    assert len(trail) == 2
    assert trail[1].before == trail[0].after


def test_two_admins_mapping_one_scim_group_at_once(session, race):  # noqa: F811
    org = _org(session)

    def map_to(role: Role) -> Callable[[Session, Organisation], Any]:
        return lambda own, organisation: scim_actions.set_group_role(
            own, organisation=organisation, group_name="Admins", role=role, actor=f.SETUP
        )

    race.run(_in(org, map_to(Role.MANAGER)), _nothing, _in(org, map_to(Role.ORG_ADMIN)))
    session.expire_all()
    assert session.get_one(ScimGroupRole, (org.id, "admins")).role is Role.ORG_ADMIN
    trail = _trail(session, org.id, "scim.group_role.set")
    assert [e.before for e in trail] == [None, {"group": "Admins", "role": "MANAGER"}]


def _refused(change: Callable[[Session, Organisation], Any], refusals: list[Conflict]) -> Any:
    def run(own: Session, organisation: Organisation) -> None:
        try:
            change(own, organisation)
        except Conflict as exc:
            refusals.append(exc)

    return run


def test_two_connectors_of_one_name_at_once_make_one_and_a_conflict(
    session,
    settings,
    race,  # noqa: F811
):
    org = _org(session)
    refusals: list[Conflict] = []

    def create(own: Session, organisation: Organisation) -> None:
        directory_connectors.create_connector(
            own,
            organisation=organisation,
            fields={"name": "corp", "server_urls": ["ldap://127.0.0.1:389"], "base_dn": "dc=x"},
            bind_password=None,
            settings=settings,
            actor=f.SETUP,
        )

    race.run(_in(org, create), _nothing, _in(org, _refused(create, refusals)))
    assert [str(exc) for exc in refusals] == ["a connector named 'corp' already exists"]
    session.expire_all()
    names = session.scalars(
        select(DirectoryConnector.name).where(DirectoryConnector.organisation_id == org.id)
    ).all()
    assert names == ["corp"]
    assert len(_trail(session, org.id, "directory_connector.created")) == 1


def test_a_connector_renamed_to_a_name_created_at_once_is_a_conflict(
    session,
    settings,
    race,  # noqa: F811
):
    org = _org(session)
    old = directory_connectors.create_connector(
        session,
        organisation=org,
        fields={"name": "old", "server_urls": ["ldap://127.0.0.1:389"], "base_dn": "dc=x"},
        bind_password=None,
        settings=settings,
        actor=f.SETUP,
    )
    session.commit()
    refusals: list[Conflict] = []

    def create(own: Session, organisation: Organisation) -> None:
        directory_connectors.create_connector(
            own,
            organisation=organisation,
            fields={"name": "corp", "server_urls": ["ldap://127.0.0.1:389"], "base_dn": "dc=x"},
            bind_password=None,
            settings=settings,
            actor=f.SETUP,
        )

    def rename(own: Session, organisation: Organisation) -> None:
        directory_connectors.update_connector(
            own,
            connector=own.get_one(DirectoryConnector, old.id),
            fields={"name": "corp"},
            bind_password=None,
            settings=settings,
            actor=f.SETUP,
        )

    race.run(_in(org, create), _nothing, _in(org, _refused(rename, refusals)))
    assert [str(exc) for exc in refusals] == ["a connector named 'corp' already exists"]
    session.expire_all()
    assert session.get_one(DirectoryConnector, old.id).name == "old"
    assert _trail(session, org.id, "directory_connector.updated") == []


def test_two_organisations_of_one_slug_at_once_make_one_and_a_conflict(race):  # noqa: F811
    slug = f.fresh_slug()
    refusals: list[Conflict] = []
    made: list[uuid.UUID] = []

    def create(own: Session) -> None:
        made.append(
            organisations.create_organisation(own, name="Twin", slug=slug, actor=f.SETUP).id
        )

    def create_or_refused(own: Session) -> None:
        try:
            create(own)
        except Conflict as exc:
            refusals.append(exc)

    race.run(create, _nothing, create_or_refused)
    assert [str(exc) for exc in refusals] == [f"an organisation with slug {slug!r} already exists"]
    with race.sessions() as fresh:
        found = fresh.scalars(select(Organisation.id).where(Organisation.slug == slug)).all()
        assert found == made
        created = fresh.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "organisation.created",
                AuditEvent.target_id == str(made[0]),
            )
        ).all()
        assert len(created) == 1


def test_two_deletes_of_an_unknown_odock_key_at_once_leave_one_tombstone(session, race):  # noqa: F811
    """Odock deletes a key this side never had, twice at once (a retry): the later delete
    moves the tombstone to its version."""
    org = _org(session)
    key_id = uuid.uuid4()

    def delete(version: int) -> Callable[[Session], None]:
        def run(own: Session) -> None:
            odock_objects.delete_object(
                own,
                organisation_id=org.id,
                kind=odock_objects.KIND_KEY,
                object_id=key_id,
                version=version,
                actor=f.SETUP,
            )
            own.flush()

        return run

    race.run(delete(3), _nothing, delete(5))
    session.expire_all()
    assert odock_objects.buried_at(session, org.id, odock_objects.KIND_KEY, key_id) == 5


def test_two_dispatches_of_one_notification_at_once_plan_each_delivery_once(
    session,
    settings,
    race,  # noqa: F811
):
    """The relay re-publishes a dispatch the worker is running (at least once): the later
    plans nothing, and each delivery is sent for once."""
    org = _org(session)
    add_hook(session, settings, org, HookKind.WEBHOOK, "http://127.0.0.1:9/x")
    session.commit()
    planned: list[int] = []

    def dispatch(own: Session) -> None:
        planned.append(
            len(
                notification_deliveries.plan_deliveries(
                    own,
                    event_id="e-twice",
                    organisation_id=org.id,
                    event="review.opened",
                    payload={},
                    recipient_user_ids=[],
                )
            )
        )
        own.flush()

    race.run(dispatch, _nothing, dispatch)
    assert planned == [1, 0]
    session.expire_all()
    rows = session.scalars(
        select(NotificationDelivery).where(NotificationDelivery.event_id == "e-twice")
    ).all()
    assert len(rows) == 1
    sends = session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.task == notification_deliveries.TASK_DELIVER,
        )
    ).all()
    assert [message.kwargs["delivery_id"] for message in sends] == [str(rows[0].id)]


def test_two_admins_clearing_the_oidc_provider_at_once(session, settings, race):  # noqa: F811
    """The later finds none: NotFound, and one audit event for the one clear that happened."""
    org = _org(session)
    oidc_providers.configure(
        session,
        organisation=org,
        secret_key=settings.secret_key,
        actor=f.SETUP,
        policy=settings.outbound_policy(),
        issuer="https://one.example",
        client_id="client-one",
        client_secret="client-secret-0123456789abcdef",
    )
    session.commit()
    missing: list[NotFound] = []

    def clear(own: Session, organisation: Organisation) -> None:
        oidc_providers.clear(own, organisation=organisation, actor=f.SETUP)

    def clear_or_missing(own: Session, organisation: Organisation) -> None:
        try:
            clear(own, organisation)
        except NotFound as exc:
            missing.append(exc)

    race.run(_in(org, clear), _nothing, _in(org, clear_or_missing))
    assert len(missing) == 1
    session.expire_all()
    assert session.get(OidcProvider, org.id) is None
    assert len(_trail(session, org.id, "sign_in.oidc_cleared")) == 1
