"""Two organisations with one of everything, for the tenant-isolation tests.

Organisation A is the attacker: an admin with an admin API token, a SCIM token, an `odock`
token, a console session, IdP event hook secrets, a SCIM user and group of its own.
Organisation B is the target: people, a team, keys, budgets and quotas, tokens of every kind,
a revocation review and its findings, a recertification campaign, an invitation, an audit
stream, a directory connector and a run, a received IdP event, notification hooks and a
delivery, SCIM users and a group, and a mass-change batch of held changes. Everything of B is
built through B's own credentials or the domain operations, as in production.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.actions import event_hooks, idp_events, mass_change, recertification, tokens
from models.actions.tokens import token_prefix
from models.base import utcnow
from models.entities import (
    ApiToken,
    DirectorySyncRun,
    MassChange,
    NotificationDelivery,
    ReviewFinding,
)
from models.enums import (
    ChangeStatus,
    DeliveryStatus,
    Role,
    SyncKind,
    SyncRunStatus,
    TeamRole,
    TokenScope,
)
from models.secrets import hash_secret, new_secret
from models.settings import Settings
from tests.reviews.conftest import revoke_and_review
from tests.scim.conftest import ScimClient
from tests.scim.payloads import okta_create_group, okta_create_user, okta_deactivate
from tests.support import factories as f

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
OKTA_SECRET_A = "okta-secret-of-organisation-a-0123456789"
OKTA_SECRET_B = "okta-secret-of-organisation-b-9876543210"
CONSOLE_COOKIE = "odock_console"


@dataclass
class Tenant:
    """One organisation's credentials and the ids of its objects (plain values)."""

    org_id: uuid.UUID
    slug: str
    name: str
    admin_token: str
    scim_token: str
    odock_token: str
    signing_secret: str
    console: FlaskClient
    ids: dict[str, str] = field(default_factory=dict)
    emails: list[str] = field(default_factory=list)

    def bearer(self, kind: str) -> dict[str, str]:
        secret = {"admin": self.admin_token, "scim": self.scim_token, "odock": self.odock_token}
        return {"Authorization": f"Bearer {secret[kind]}"}

    def csrf(self) -> str:
        """The console's CSRF token of this tenant's session."""
        page = self.console.get("/console").get_data(as_text=True)
        match = CSRF.search(page)
        assert match, "the console overview has no form with a CSRF token"
        return match.group(1)

    def markers(self) -> set[str]:
        """Strings only this tenant's objects carry: its ids and its people's emails."""
        return {*self.ids.values(), *self.emails, str(self.org_id), self.name}


def sign_in(client: FlaskClient, token: str) -> FlaskClient:
    form = client.get("/console/sign-in").get_data(as_text=True)
    match = CSRF.search(form)
    assert match
    answer = client.post("/console/sign-in", data={"token": token, "csrf": match.group(1)})
    assert answer.status_code == 303, answer.get_data(as_text=True)
    return client


def _ok(answer: Any, status: int = 201) -> dict[str, Any]:
    assert answer.status_code == status, (answer.status_code, answer.get_data(as_text=True))
    body: dict[str, Any] = answer.get_json()
    return body


def build_attacker(session: Session, settings: Settings, app: Any) -> Tenant:
    """Organisation A: credentials of every kind and a few objects of its own."""
    org = f.make_org(session, f"Acme {uuid.uuid4().hex[:8]}")
    admin = f.make_user(session, org, role=Role.ORG_ADMIN, email=f"admin@{org.slug}.acme.test")
    person = f.make_user(session, org, email=f"person@{org.slug}.acme.test")
    team = f.make_team(session, org, "Acme Platform")
    f.add_member(session, team, person)
    key = f.make_key(session, org, owner=person)
    tenant = _credentials(session, settings, app, org, admin, OKTA_SECRET_A)
    tenant.ids.update(admin=str(admin.id), person=str(person.id), team=str(team.id))
    tenant.ids["key"] = str(key.id)
    scim = ScimClient(app.test_client(), tenant.scim_token)
    user = _ok(scim.post("/Users", okta_create_user(f"scim@{org.slug}.acme.test", "00uA1")))
    group = _ok(scim.post("/Groups", okta_create_group("Acme Engineers")))
    tenant.ids.update(scim_user=user["id"], scim_group=group["id"])
    return tenant


def build_target(session: Session, settings: Settings, app: Any) -> Tenant:
    """Organisation B: one of everything an id can name."""
    org = f.make_org(session, f"Globex {uuid.uuid4().hex[:8]}")
    domain = f"{org.slug}.globex.test"
    admin = f.make_user(session, org, role=Role.ORG_ADMIN, email=f"admin@{domain}")
    owner = f.make_user(session, org, email=f"owner@{domain}")
    leaver = f.make_user(session, org, email=f"leaver@{domain}")
    manager = f.make_user(session, org, role=Role.MANAGER, email=f"manager@{domain}")
    team = f.make_team(session, org, "Globex Research")
    f.add_member(session, team, manager, TeamRole.MANAGER)
    f.add_member(session, team, owner)
    f.add_member(session, team, leaver)
    key = f.make_key(session, org, owner=owner)
    old_key = f.make_key(session, org, owner=owner)
    old_key.created_at = utcnow() - timedelta(days=200)  # unused: in the campaign's scope
    leaver_key = f.make_key(session, org, owner=leaver)
    budget = f.make_budget(session, org, owner)
    quota = f.make_quota(session, org, owner)
    session.flush()
    tenant = _credentials(session, settings, app, org, admin, OKTA_SECRET_B)
    ids = tenant.ids
    ids.update(admin=str(admin.id), owner=str(owner.id), leaver=str(leaver.id))
    ids.update(manager=str(manager.id), team=str(team.id), key=str(key.id))
    ids["person"] = str(f.make_user(session, org, email=f"person@{domain}").id)
    tenant.emails.append(f"person@{domain}")
    ids.update(old_key=str(old_key.id), leaver_key=str(leaver_key.id))
    ids.update(budget=str(budget.id), quota=str(quota.id))
    tenant.emails += [admin.email, owner.email, leaver.email, manager.email]

    review = revoke_and_review(session, leaver)
    ids["review"] = str(review.id)
    ids["finding"] = str(review.findings[0].id)
    recertification.configure(
        session,
        organisation_id=org.id,
        actor=f.SETUP,
        changes={"spend_days": 30, "unused_days": 90, "moved_people": True},
    )
    campaign = recertification.open_campaign(session, organisation_id=org.id, actor=f.SETUP)
    ids["campaign"] = str(campaign.campaign.id)
    ids["recert_finding"] = str(
        session.scalars(
            select(ReviewFinding.id).where(ReviewFinding.review_id == campaign.campaign.review_id)
        ).first()
    )
    received = idp_events.accept_delivery(
        session,
        organisation_id=org.id,
        channel=idp_events.CHANNEL_EVENTS,
        delivery_id=f"msg_{uuid.uuid4().hex}",
        payload={"id": "evt_b", "type": "user.deactivated", "user": {"email": owner.email}},
    )
    ids["event_delivery"] = str(received.delivery.id)
    mass_change.set_thresholds(
        session, organisation=org, actor=f.SETUP, threshold_count=1, window_minutes=10
    )
    token_ids = session.scalars(select(ApiToken.id).where(ApiToken.organisation_id == org.id))
    ids.update({f"token_{n}": str(token_id) for n, token_id in enumerate(token_ids)})
    session.commit()

    admin_api = {**tenant.bearer("admin")}
    client = app.test_client()
    invited = _ok(
        client.post(
            "/api/v1/invitations",
            json={"email": f"invitee@{domain}", "teams": [{"team_id": str(team.id)}]},
            headers=admin_api,
        )
    )
    ids["invitation"] = invited["id"]
    tenant.emails.append(f"invitee@{domain}")
    stream = client.post(
        "/api/v1/audit-streams",
        json={"name": "globex-siem", "preset": "generic", "target": "http://127.0.0.1:1/siem"},
        headers=admin_api,
    )
    ids["audit_stream"] = _ok(stream)["id"]
    connector = client.post(
        "/api/v1/directory/connectors",
        json={
            "name": "globex-ldap",
            "server_urls": ["ldap://127.0.0.1:1"],
            "bind_dn": "cn=admin,dc=globex,dc=test",
            "bind_password": "globex-bind-password",
            "base_dn": "ou=people,dc=globex,dc=test",
            "connect_timeout": 1.0,
            "search_timeout": 1.0,
        },
        headers=admin_api,
    )
    ids["connector"] = _ok(connector)["id"]
    hook = client.post(
        "/api/v1/notification-hooks",
        json={"name": "globex-hook", "kind": "webhook", "target": "http://127.0.0.1:1/hook"},
        headers=admin_api,
    )
    ids["hook"] = _ok(hook)["id"]
    secret = client.post("/api/v1/event-hooks/signing-secrets", json={}, headers=admin_api)
    ids["signing_secret"] = _ok(secret)["id"]

    scim = ScimClient(client, tenant.scim_token)
    people = [
        _ok(scim.post("/Users", okta_create_user(f"scim{n}@{domain}", f"00uB{n}")))
        for n in range(3)
    ]
    tenant.emails += [f"scim{n}@{domain}" for n in range(3)]
    group = okta_create_group("Globex Engineers")
    group["members"] = [{"value": people[0]["id"]}]
    ids["scim_group"] = _ok(scim.post("/Groups", group))["id"]
    ids.update({f"scim_user_{n}": person["id"] for n, person in enumerate(people)})
    ids["scim_user"] = people[0]["id"]
    for person in people[1:]:  # the second is over the threshold of one: held
        assert scim.patch(f"/Users/{person['id']}", okta_deactivate()).status_code < 300

    run = DirectorySyncRun(
        organisation_id=org.id,
        connector_id=uuid.UUID(ids["connector"]),
        kind=SyncKind.FULL,
        status=SyncRunStatus.SUCCEEDED,
        finished_at=utcnow(),
        trigger="schedule",
    )
    session.add(run)
    delivery = NotificationDelivery(
        organisation_id=org.id,
        event_id=f"evt-{uuid.uuid4().hex[:12]}",
        event="review.opened",
        target_key=f"hook:{ids['hook']}",
        hook_id=uuid.UUID(ids["hook"]),
        review_id=review.id,
        payload={"message": "review opened"},
        status=DeliveryStatus.FAILED,
        attempts=6,
    )
    session.add(delivery)
    session.flush()
    ids.update(run=str(run.id), notification_delivery=str(delivery.id))
    held = session.scalars(
        select(MassChange).where(
            MassChange.organisation_id == org.id, MassChange.status == ChangeStatus.HELD
        )
    ).first()
    assert held is not None and held.batch_id is not None, "no change of B was held"
    ids.update(hold=str(held.id), batch=str(held.batch_id))
    session.commit()
    return tenant


def _credentials(
    session: Session, settings: Settings, app: Any, org: Any, admin: Any, okta_secret: str
) -> Tenant:
    admin_token = f.admin_token(session, org, admin)
    scim_token = f.scim_token(session, org)
    odock_token = tokens.create_token(
        session, organisation=org, scope=TokenScope.ODOCK, actor=f.SETUP
    ).secret
    event_hooks.set_okta_secret(
        session, organisation=org, secret_key=settings.secret_key, actor=f.SETUP, secret=okta_secret
    )
    signing = event_hooks.add_signing_secret(
        session, organisation=org, secret_key=settings.secret_key, actor=f.SETUP
    )
    slug, name, org_id = org.slug, org.name, org.id
    session.commit()
    console = sign_in(app.test_client(), admin_token)
    return Tenant(
        org_id=org_id,
        slug=slug,
        name=name,
        admin_token=admin_token,
        scim_token=scim_token,
        odock_token=odock_token,
        signing_secret=signing.secret,
        console=console,
    )


SCOPES = {"admin": TokenScope.ADMIN, "scim": TokenScope.SCIM, "odock": TokenScope.ODOCK}


def rename_credentials(tenant: Tenant, renames: dict[Any, Any]) -> None:
    """Add to `renames` (tests/support/copies.py) a new secret for each of the tenant's tokens
    (its hash and clear prefix follow) and a new slug: a copy of its rows must not meet what a
    process cached of an earlier copy (token grants by hash, hook credentials by slug)."""
    for kind, scope in SCOPES.items():
        old, new = getattr(tenant, f"{kind}_token"), new_secret(token_prefix(scope))
        renames[old] = new  # no row holds a secret: this entry is for the copy's Tenant
        renames[hash_secret(old)] = hash_secret(new)
        shown = len(token_prefix(scope)) + 5  # the part `create_token` keeps in the clear
        renames[old[:shown]] = new[:shown]
    renames[tenant.slug] = f.fresh_slug()


def copy_of(tenant: Tenant, renames: dict[Any, Any], app: Any) -> Tenant:
    """The tenant of the copied rows. Its console is a new client with the built one's session
    cookie: the console session (a token of its own) is copied with the rows under the same
    secret, which no process caches (each request reads it from the database)."""
    console = app.test_client()
    cookie = tenant.console.get_cookie(CONSOLE_COOKIE, path="/console")
    assert cookie is not None, "the built tenant is not signed in to the console"
    console.set_cookie(cookie.key, cookie.value, domain=cookie.domain, path=cookie.path)
    return replace(
        tenant,
        org_id=renames[tenant.org_id],
        slug=renames[tenant.slug],
        admin_token=renames[tenant.admin_token],
        scim_token=renames[tenant.scim_token],
        odock_token=renames[tenant.odock_token],
        console=console,
        ids={name: renames.get(value, value) for name, value in tenant.ids.items()},
        emails=list(tenant.emails),
    )
