"""Two sources speak of one person in turn, each through its real entry point: SCIM over
HTTP, an LDAP sync against slapd, the IdP event receiver and its drain, the admin API, the
enrollment page. Whatever the order, the lifecycle policy decides (docs/lifecycle.md): a
leaver comes back only by the source that holds them out, or an admin, and every refusal
is audited."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.access import Viewer
from models.actions import invitations, lifecycle
from models.actions.directory_connectors import update_connector
from models.actor import Actor
from models.base import utcnow
from models.db import SessionFactory
from models.entities import AuditEvent, DirectoryConnector, Organisation, User, VirtualApiKey
from models.enums import Role, Source, UserStatus
from tests.events import okta_payloads
from tests.events.conftest import configure as configure_hooks
from tests.events.conftest import generic, okta_headers, signed
from tests.invitations.conftest import IDENTITY_HEADER
from tests.ldap.conftest import Directory
from tests.scim.conftest import ScimClient, ops
from tests.support import factories as f
from tests.support.parallel import while_held
from worker.directory_approval import apply_approval

LOCKED = b"000001010000Z"  # ppolicy's administrative lock: disabled in the directory
REFUSED = "user.reactivation_refused"
ADMIN = Actor(Source.ADMIN, "admin:ann@example.com")


@dataclass
class Scene:
    """One organisation every source speaks to, and Alice: imported by an LDAP sync, linked
    by SCIM and by the IdP's events, with a key of her own."""

    sessions: SessionFactory
    client: FlaskClient
    scim: ScimClient
    admin: dict[str, str]
    directory: Directory
    connector: DirectoryConnector
    sync: Callable[..., Any]
    events_url: str
    okta_url: str
    signing_secret: str
    user_id: uuid.UUID = field(default_factory=uuid.uuid4)
    key_id: uuid.UUID = field(default_factory=uuid.uuid4)
    # Team keys of a team Alice is in: one the boss made (shared: never hers to lose), one
    # she made (the team-key policy, HOLD by default: held for her review, not revoked).
    team_key_ids: tuple[uuid.UUID, ...] = ()
    scim_id: str = ""
    invitation_token: str = ""
    finding_id: str = ""
    answers: list[Any] = field(default_factory=list)

    @property
    def email(self) -> str:
        return f"alice@{self.directory.domain}"

    def state(self) -> tuple[UserStatus, bool]:
        with self.sessions() as s:
            user = s.get_one(User, self.user_id)
            key = s.get_one(VirtualApiKey, self.key_id)
            found = user.status, key.revoked
            s.rollback()
        return found

    def team_keys_revoked(self) -> list[bool]:
        with self.sessions() as s:
            found = [s.get_one(VirtualApiKey, key_id).revoked for key_id in self.team_key_ids]
            s.rollback()
        return found

    def events(self) -> list[AuditEvent]:
        with self.sessions() as s:
            query = select(AuditEvent).where(AuditEvent.target_id == str(self.user_id))
            found = list(s.scalars(query.order_by(AuditEvent.occurred_at)))
            s.expunge_all()
            s.rollback()
        return found


def scim_body(scene: Scene, active: bool) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": scene.email,
        "emails": [{"value": scene.email, "primary": True}],
        "name": {"givenName": "Alice", "familyName": "Liddell"},
        "active": active,
    }


def scim_create(scene: Scene) -> None:
    answer = scene.scim.post("/Users", scim_body(scene, True))
    assert answer.status_code == 201, answer.text
    scene.scim_id = answer.json["id"]
    scene.answers.append(answer)


def scim_patch(active: bool) -> Callable[[Scene], None]:
    def step(scene: Scene) -> None:
        body = ops({"op": "replace", "path": "active", "value": active})
        answer = scene.scim.patch(f"/Users/{scene.scim_id}", body)
        assert answer.status_code == 200, answer.text
        scene.answers.append(answer)

    return step


def scim_put(active: bool) -> Callable[[Scene], None]:
    def step(scene: Scene) -> None:
        answer = scene.scim.put(f"/Users/{scene.scim_id}", scim_body(scene, active))
        assert answer.status_code == 200, answer.text
        scene.answers.append(answer)

    return step


def scim_delete(scene: Scene) -> None:
    answer = scene.scim.delete(f"/Users/{scene.scim_id}")
    assert answer.status_code == 204, answer.text


def ldap(enabled: bool) -> Callable[[Scene], None]:
    def step(scene: Scene) -> None:
        dn = scene.directory.person_dn("alice")
        if enabled:
            scene.directory.replace(dn, "pwdAccountLockedTime")
        else:
            scene.directory.replace(dn, "pwdAccountLockedTime", LOCKED)
        outcome = scene.sync(scene.connector)
        assert outcome.status == "succeeded", outcome

    return step


def ldap_rehire(scene: Scene) -> None:
    """Alice's entry deleted and added again in one run (same DN and email, a new entryUUID)."""
    scene.directory.delete(scene.directory.person_dn("alice"))
    ldap_adds_back(scene)


def ldap_adds_back(scene: Scene) -> None:
    """Alice's entry added again (same DN and email, a new entryUUID): a full sync relinks
    her, a re-hire, and asks the lifecycle to bring her back."""
    scene.directory.add_person("alice", name="Alice Liddell")
    outcome = scene.sync(scene.connector)
    assert outcome.status == "succeeded", outcome
    assert outcome.summary["relink"] == 1, outcome.summary


def ldap_removes(scene: Scene) -> None:
    """Alice's entry deleted: a complete full sync revokes her (no longer in the directory)."""
    scene.directory.delete(scene.directory.person_dn("alice"))
    outcome = scene.sync(scene.connector)
    assert outcome.status == "succeeded", outcome


def scim_put_without_active(scene: Scene) -> None:
    """A PUT that leaves `active` out: it asserts nothing of her access."""
    body = {k: v for k, v in scim_body(scene, True).items() if k != "active"}
    answer = scene.scim.put(f"/Users/{scene.scim_id}", body)
    assert answer.status_code == 200, answer.text
    scene.answers.append(answer)


def okta(kind: str) -> Callable[[Scene], None]:
    """An Okta Event Hook delivery about Alice (found by her email, then by her Okta id)."""

    def step(scene: Scene) -> None:
        from worker.tasks.idp_events import drain_deliveries

        target = okta_payloads.user_target("00u-alice", scene.email, "Alice Liddell")
        payload = okta_payloads.delivery(okta_payloads.event(kind, [target]))
        answer = scene.client.post(scene.okta_url, json=payload, headers=okta_headers())
        assert answer.status_code == 200, answer.text
        with scene.sessions() as s:
            organisation_id = s.get_one(User, scene.user_id).organisation_id
            s.rollback()
        assert drain_deliveries(str(organisation_id)) == 1

    return step


def event(kind: str) -> Callable[[Scene], None]:
    def step(scene: Scene) -> None:
        from worker.tasks.idp_events import drain_deliveries

        payload = generic(kind, user={"email": scene.email, "external_id": "evt-alice"})
        body, headers = signed(scene.signing_secret, payload)
        answer = scene.client.post(scene.events_url, data=body, headers=headers)
        assert answer.status_code == 202, answer.text
        with scene.sessions() as s:
            organisation_id = s.get_one(User, scene.user_id).organisation_id
            s.rollback()
        assert drain_deliveries(str(organisation_id)) == 1

    return step


def admin(verb: str) -> Callable[[Scene], None]:
    def step(scene: Scene) -> None:
        path = f"/api/v1/users/{scene.user_id}/{verb}"
        body = {"reason": "drift sweep"} if verb == "revoke" else {}
        answer = scene.client.post(path, json=body, headers=scene.admin)
        assert answer.status_code == 200, answer.text
        scene.answers.append(answer)

    return step


def admin_sets_status(status: str) -> Callable[[Scene], None]:
    """The admin API's other door to a status: PATCH /users/{id} with `status`."""

    def step(scene: Scene) -> None:
        path = f"/api/v1/users/{scene.user_id}"
        answer = scene.client.patch(path, json={"status": status}, headers=scene.admin)
        assert answer.status_code == 200, answer.text
        scene.answers.append(answer)

    return step


def accept_invitation(scene: Scene) -> None:
    url, who = f"/enroll/{scene.invitation_token}", {IDENTITY_HEADER: scene.email}
    page = scene.client.get(url, headers=who).text
    found = re.search(r'name="form_key" value="([0-9a-f]+)"', page)
    data = {"name": "Alice Again", "form_key": found.group(1) if found else ""}
    scene.answers.append(scene.client.post(url, data=data, headers=who))


RECERTIFICATION = "/api/v1/recertification"


def recertification_revokes_key(scene: Scene) -> None:
    """A campaign opens (keys unused for 90 days are in its scope: Alice's new one is) and
    the admin answers her key's finding: revoke."""
    opened = scene.client.post(f"{RECERTIFICATION}/campaigns", headers=scene.admin)
    assert opened.status_code == 201, opened.text
    campaign = f"{RECERTIFICATION}/campaigns/{opened.json['id']}"
    findings = scene.client.get(campaign, headers=scene.admin).json["items"]
    (finding,) = [item for item in findings if item["subject_id"] == str(scene.key_id)]
    scene.finding_id = finding["id"]
    body = {"decision": "revoke", "reason": "not used"}
    decided = scene.client.post(
        f"{RECERTIFICATION}/findings/{finding['id']}/decide", json=body, headers=scene.admin
    )
    assert decided.status_code == 200, decided.text


def recertification_restores_key(scene: Scene) -> None:
    path = f"{RECERTIFICATION}/findings/{scene.finding_id}/restore"
    scene.answers.append(scene.client.post(path, headers=scene.admin))


@pytest.fixture
def scene(session, sessions, apps, enroll_settings, directory, make_connector, sync) -> Scene:
    connector = make_connector()
    org = session.get_one(Organisation, connector.organisation_id)
    boss = f.make_user(session, org, role=Role.ORG_ADMIN, email="boss@corp.test")
    auth = {"Authorization": f"Bearer {f.admin_token(session, org, boss)}"}
    hooked = configure_hooks(session, enroll_settings, org)
    scim = f.scim_token(session, org)
    session.commit()
    client = apps.for_settings(enroll_settings).test_client()
    scene = Scene(
        sessions=sessions,
        client=client,
        scim=ScimClient(client, scim),
        admin=auth,
        directory=directory,
        connector=connector,
        sync=sync,
        events_url=hooked.events_url,
        okta_url=hooked.okta_url,
        signing_secret=hooked.signing_secret,
    )
    # Sent before the import: the link is in Alice's mailbox whatever the sources do later.
    viewer = Viewer.for_user(boss)
    scene.invitation_token = invitations.invite(
        session,
        viewer=viewer,
        email=scene.email,
        role=Role.USER,
        actor=Actor(Source.ADMIN, viewer.name, viewer.user_id),
        secret_key=enroll_settings.secret_key,
    ).token
    session.commit()
    assert sync(connector).status == "succeeded"
    alice = session.scalar(select(User).where(User.email_key == scene.email))
    assert alice is not None and alice.status is UserStatus.ACTIVE
    scene.user_id = alice.id
    key = f.make_key(session, org, owner=alice)
    key.created_at = utcnow() - timedelta(days=120)  # unused since: a recertification asks
    scene.key_id = key.id
    team = f.make_team(session, org, "Platform")
    f.add_member(session, team, alice)
    shared = f.make_key(session, org, team=team, created_by=boss)
    made = f.make_key(session, org, team=team, created_by=alice)
    scene.team_key_ids = (shared.id, made.id)
    session.commit()
    scim_create(scene)
    event("user.updated")(scene)  # links the events source by email
    return scene


SCIM_OFF, SCIM_ON = scim_patch(False), scim_patch(True)
LDAP_OFF, LDAP_ON = ldap(False), ldap(True)
EVENT_OFF, EVENT_ON = event("user.deactivated"), event("user.reactivated")
ADMIN_REVOKE, ADMIN_REACTIVATE = admin("revoke"), admin("reactivate")
OUT, BACK = (UserStatus.REVOKED, True), (UserStatus.ACTIVE, False)


@dataclass(frozen=True)
class Sequence:
    steps: tuple[Callable[[Scene], None], ...]
    ends: tuple[UserStatus, bool]  # the person's status, and whether their key is revoked
    refused_by: str | None = None  # the source whose attempt to bring them back is refused
    answered: int | None = None  # the HTTP status the last step is answered with


SEQUENCES = {
    "scim off, ldap sees enabled": Sequence((SCIM_OFF, LDAP_ON), OUT),
    "admin revokes, scim patch active": Sequence((ADMIN_REVOKE, SCIM_ON), OUT, "scim"),
    "ldap disables, invitation accepted": Sequence(
        (LDAP_OFF, accept_invitation), OUT, answered=409
    ),
    "event deactivates, scim put active": Sequence((EVENT_OFF, scim_put(True)), OUT, "scim"),
    "scim off, event reactivates": Sequence((SCIM_OFF, EVENT_ON), OUT, "events"),
    "ldap disables, scim patch active": Sequence((LDAP_OFF, SCIM_ON), OUT, "scim"),
    "ldap disables, admin reactivates": Sequence((LDAP_OFF, ADMIN_REACTIVATE), BACK),
    "admin revokes, ldap sees enabled": Sequence((ADMIN_REVOKE, LDAP_ON), OUT),
    "event deactivates, ldap sees enabled": Sequence((EVENT_OFF, LDAP_ON), OUT),
    "scim off, scim on": Sequence((SCIM_OFF, SCIM_ON), BACK),
    "admin revokes, event reactivates": Sequence((ADMIN_REVOKE, EVENT_ON), OUT, "events"),
    "scim deletes, scim creates again": Sequence((scim_delete, scim_create), BACK),
    "ldap disables, scim deletes and creates again": Sequence(
        (LDAP_OFF, scim_delete, scim_create), OUT, "scim"
    ),
    "admin revokes, scim deletes and creates again": Sequence(
        (ADMIN_REVOKE, scim_delete, scim_create), OUT, "scim"
    ),
    "scim and ldap off, ldap on": Sequence((SCIM_OFF, LDAP_OFF, LDAP_ON), OUT, "ldap"),
    "scim and ldap off, scim on": Sequence((SCIM_OFF, LDAP_OFF, SCIM_ON), OUT, "scim"),
    "event and ldap off, event on": Sequence((EVENT_OFF, LDAP_OFF, EVENT_ON), OUT, "events"),
    "scim and ldap off, both on": Sequence((SCIM_OFF, LDAP_OFF, LDAP_ON, SCIM_ON), BACK),
    "event and scim off, event on": Sequence((EVENT_OFF, SCIM_OFF, EVENT_ON), OUT, "events"),
    "ldap and event off, ldap on": Sequence((LDAP_OFF, EVENT_OFF, LDAP_ON), OUT, "ldap"),
    "admin revokes, invitation accepted": Sequence(
        (ADMIN_REVOKE, accept_invitation), OUT, answered=409
    ),
    "recertification revokes the key, scim off and on": Sequence(
        (recertification_revokes_key, SCIM_OFF, SCIM_ON), (UserStatus.ACTIVE, True)
    ),
    "recertification revokes the key, ldap off and on": Sequence(
        (recertification_revokes_key, LDAP_OFF, LDAP_ON), (UserStatus.ACTIVE, True)
    ),
    "recertification revokes the key, scim off, the key restored": Sequence(
        (recertification_revokes_key, SCIM_OFF, recertification_restores_key), OUT, answered=409
    ),
    "recertification revokes the key, scim off and on, the key restored": Sequence(
        (recertification_revokes_key, SCIM_OFF, SCIM_ON, recertification_restores_key),
        BACK,
        answered=200,
    ),
    "event off, event on": Sequence((EVENT_OFF, EVENT_ON), BACK),
    "scim off, admin revokes, scim on": Sequence((SCIM_OFF, ADMIN_REVOKE, SCIM_ON), OUT, "scim"),
    "scim off, admin sets revoked, scim on": Sequence(
        (SCIM_OFF, admin_sets_status("REVOKED"), SCIM_ON), OUT, "scim"
    ),
    "event off, admin sets revoked, event on": Sequence(
        (EVENT_OFF, admin_sets_status("REVOKED"), EVENT_ON), OUT, "events"
    ),
    "admin sets revoked, scim on": Sequence((admin_sets_status("REVOKED"), SCIM_ON), OUT, "scim"),
    "ldap off, ldap on": Sequence((LDAP_OFF, LDAP_ON), BACK),
    "ldap disables, scim put without active": Sequence((LDAP_OFF, scim_put_without_active), OUT),
    "admin revokes, scim put without active": Sequence(
        (ADMIN_REVOKE, scim_put_without_active), OUT
    ),
    "scim off, scim put without active": Sequence((SCIM_OFF, scim_put_without_active), OUT),
    "ldap removes, ldap re-hires": Sequence((ldap_removes, ldap_adds_back), BACK),
    "scim off, ldap re-hires": Sequence((SCIM_OFF, ldap_rehire), OUT, "ldap"),
    "admin revokes, ldap re-hires": Sequence((ADMIN_REVOKE, ldap_rehire), OUT, "ldap"),
    "scim off, ldap removes and re-hires": Sequence(
        (SCIM_OFF, ldap_removes, ldap_adds_back), OUT, "ldap"
    ),
    "ldap removes, scim patch active": Sequence((ldap_removes, SCIM_ON), OUT, "scim"),
    "okta suspends, okta unsuspends": Sequence(
        (okta("user.lifecycle.suspend"), okta("user.lifecycle.unsuspend")), BACK
    ),
    "okta suspends, scim patch active": Sequence(
        (okta("user.lifecycle.suspend"), SCIM_ON), OUT, "scim"
    ),
    "okta suspends, event reactivates": Sequence(
        (okta("user.lifecycle.suspend"), EVENT_ON), OUT, "events"
    ),
    "okta suspends, ldap sees enabled": Sequence((okta("user.lifecycle.suspend"), LDAP_ON), OUT),
    "scim off, okta activates": Sequence((SCIM_OFF, okta("user.lifecycle.activate")), OUT, "okta"),
}


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_two_sources_in_turn(scene, name):
    sequence = SEQUENCES[name]
    for step in sequence.steps:
        step(scene)
    assert scene.state() == sequence.ends
    # Whoever revoked or brought her back, the team's keys go the same way: the shared one
    # is not hers, the one she made is held for her review (team-key policy HOLD).
    assert scene.team_keys_revoked() == [False, False]
    if sequence.answered is not None:
        assert scene.answers[-1].status_code == sequence.answered, scene.answers[-1].text
    actions = [e.action for e in scene.events()]
    if sequence.ends == BACK:
        assert actions[-1] == "user.reactivated" or "user.reactivated" in actions
    if sequence.refused_by is not None:
        refusals = [e for e in scene.events() if e.action == REFUSED]
        assert refusals and refusals[-1].source.value == sequence.refused_by
    if sequence.ends == OUT:
        shown = scene.scim.get(f"/Users/{scene.scim_id}")
        assert shown.status_code in (200, 404)
        if shown.status_code == 200:
            assert shown.json["active"] is False


def gate_every_revocation(scene: Scene, session, settings) -> None:
    """The connector's safety threshold holds any directory run that revokes anyone."""
    connector = session.get_one(DirectoryConnector, scene.connector.id)
    safety = {"thresholds": {"revoke": {"count": 0, "percent": 100}}}
    update_connector(
        session,
        connector=connector,
        fields={"safety": safety},
        bind_password=None,
        settings=settings,
        actor=f.SETUP,
    )
    session.commit()


def test_the_directory_holding_out_whom_scim_revoked_is_no_revocation_to_gate(
    scene, session, settings
):
    """SCIM deactivates Alice; the directory disables her: the run holds her out beside SCIM
    (audited) without waiting for an admin, since nobody loses access by it."""
    gate_every_revocation(scene, session, settings)
    SCIM_OFF(scene)
    scene.directory.replace(scene.directory.person_dn("alice"), "pwdAccountLockedTime", LOCKED)
    outcome = scene.sync(scene.connector)
    assert outcome.status == "succeeded", outcome
    assert outcome.summary["hold"] == 1 and outcome.summary["revoke"] == 0
    (joined,) = [e for e in scene.events() if e.action == "user.revocation_joined"]
    assert joined.source.value == "ldap"
    assert (joined.after or {})["standing_sources"] == ["scim", "ldap"]
    assert scene.state() == OUT


def held_directory_run(scene: Scene, session, settings) -> str:
    """The directory disables Alice and the gate holds the run for an admin (quarantined):
    she keeps her access meanwhile."""
    gate_every_revocation(scene, session, settings)
    scene.directory.replace(scene.directory.person_dn("alice"), "pwdAccountLockedTime", LOCKED)
    held = scene.sync(scene.connector)
    assert held.status == "quarantined", held
    assert scene.state() == BACK
    return held.run_id


def approve_run(scene: Scene, settings, run_id: str) -> None:
    """The admin approves over the API; the worker's apply runs here (no worker for this
    file: the queued task waits, the next file's worker starts on purged queues)."""
    path = f"/api/v1/directory/runs/{run_id}/approve"
    assert scene.client.post(path, headers=scene.admin).status_code == 202
    applied = apply_approval(scene.sessions, settings, run_id=uuid.UUID(run_id), actor=f.SETUP)
    assert applied.status == "approved", applied


def test_a_held_directory_revocation_approved_after_scim_deactivated_still_holds(
    scene, session, settings
):
    """LDAP's revocation of Alice waits for approval; SCIM deactivates her meanwhile; the
    admin approves LDAP's run: the directory stands beside SCIM, so SCIM's active=true does
    not bring back someone the directory still disables."""
    run_id = held_directory_run(scene, session, settings)
    SCIM_OFF(scene)
    approve_run(scene, settings, run_id)
    SCIM_ON(scene)
    assert scene.state() == OUT
    refusals = [e for e in scene.events() if e.action == REFUSED]
    assert refusals[-1].source.value == "scim"
    assert (refusals[-1].after or {})["still_revoked_by"] == ["ldap"]


def test_a_held_directory_revocation_waits_while_scim_deactivates_and_reactivates(
    scene, session, settings
):
    """SCIM deactivates and reactivates Alice while LDAP's revocation of her waits: she is
    back (SCIM's own), and the approval then revokes her for the directory."""
    run_id = held_directory_run(scene, session, settings)
    SCIM_OFF(scene)
    SCIM_ON(scene)
    assert scene.state() == BACK
    approve_run(scene, settings, run_id)
    assert scene.state() == OUT
    revoked = [e for e in scene.events() if e.action == "user.revoked"]
    assert [e.source.value for e in revoked] == ["scim", "ldap"]


def test_a_key_restored_while_its_holder_is_being_revoked_stays_revoked(scene, engine):
    """An admin's revocation of Alice holds her while the admin restores the key a
    recertification revoked: the restore waits for her and finds a leaver (409), as if it
    came after; before, it restored the key beside the revocation."""
    recertification_revokes_key(scene)

    def revoked_by_admin(own: Session) -> None:
        lifecycle.revoke(own, user=own.get_one(User, scene.user_id), actor=ADMIN, reason="left")
        own.flush()

    def restore() -> Any:
        recertification_restores_key(scene)
        return scene.answers[-1]

    (answer,) = while_held(engine, revoked_by_admin, [restore])
    assert answer.status_code == 409, answer.text
    assert scene.state() == OUT
