"""A review's reassign (API, console, CLI: models.actions.reviews.reassign_finding) gives the
finding's key to a new owner and resolves the finding. A campaign's finding is answered in its
campaign (keep with a reason, rotate, revoke; one answer per finding), so reassign refuses it
with a 409, as resolve and dismiss do, and changes nothing.

Before, it took the review's lock, not the campaign's turn: made while the owner's `keep` held
that turn, it waited only for the key, then moved the key and resolved the finding a second
time over the answer (PostgreSQL); after the answer (SQLite: the writers take turns) it still
moved the key of a decided finding."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cli.main import main
from models.actions import recertification, reviews
from models.actor import Actor
from models.db import SessionFactory
from models.entities import (
    AuditEvent,
    RecertificationCampaign,
    ReviewFinding,
    User,
    VirtualApiKey,
)
from models.enums import FindingState, RecertDecision, Source
from models.errors import InvalidTransition
from tests.console.conftest import csrf_of, sign_in
from tests.recertification.conftest import Keys
from tests.support import factories as f
from tests.support.parallel import while_held
from tests.support.worker import settings_env

ADMIN = Actor(Source.ADMIN, "admin:ann@example.com")
REFUSED = "answered in its campaign"


@pytest.fixture
def campaign(session: Session, keys: Keys) -> RecertificationCampaign:
    opened = recertification.open_campaign(session, organisation_id=keys.org.id, actor=f.SETUP)
    session.commit()
    return opened.campaign


@pytest.fixture
def token(session: Session, keys: Keys) -> str:
    made = f.admin_token(session, keys.org, keys.admin)
    session.commit()
    return made


def finding_id_of(
    session: Session, campaign: RecertificationCampaign, key: VirtualApiKey
) -> uuid.UUID:
    found = session.scalar(
        select(ReviewFinding.id).where(
            ReviewFinding.review_id == campaign.review_id, ReviewFinding.subject_id == key.id
        )
    )
    assert found is not None
    return found


def kept_by_owner(finding_id: uuid.UUID) -> Callable[[Session], None]:
    def hold(own: Session) -> None:
        finding = own.get_one(ReviewFinding, finding_id)
        recertification.decide(
            own, finding=finding, decision=RecertDecision.KEEP, reason="billing", actor=f.SETUP
        )
        own.flush()

    return hold


def reassign(sessions: SessionFactory, finding_id: uuid.UUID, to: uuid.UUID) -> Callable[[], str]:
    """The reassignment as the API makes it: the finding read first, then the change."""

    def call() -> str:
        with sessions() as own:
            finding = own.get_one(ReviewFinding, finding_id)
            try:
                reviews.reassign_finding(
                    own, finding=finding, actor=ADMIN, to_user=own.get_one(User, to)
                )
            except InvalidTransition as refused:
                own.rollback()
                return str(refused)
            own.commit()
            return "reassigned"

    return call


def count(sessions: SessionFactory, action: str, target: uuid.UUID) -> int:
    with sessions() as fresh:
        return fresh.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == action, AuditEvent.target_id == str(target))
        )


def owner_of(key: VirtualApiKey) -> tuple[uuid.UUID, uuid.UUID | None, str]:
    return key.id, key.owner_user_id, key.key_type.value


def assert_unchanged(
    sessions: SessionFactory, finding_id: uuid.UUID, owner: tuple[uuid.UUID, uuid.UUID | None, str]
) -> None:
    """The key has its owner, the finding no new owner, and no reassignment was recorded."""
    key_id = owner[0]
    with sessions() as fresh:
        assert owner_of(fresh.get_one(VirtualApiKey, key_id)) == owner
        assert "reassigned_to" not in fresh.get_one(ReviewFinding, finding_id).detail
    assert count(sessions, "review.reassigned", key_id) == 0
    assert count(sessions, "api_key.reassigned", key_id) == 0


def test_a_reassign_made_while_the_owner_answers_is_refused_and_the_answer_stands(
    engine: Engine, sessions: SessionFactory, session: Session, keys: Keys, campaign
) -> None:
    owner = owner_of(keys.spend)
    finding_id = finding_id_of(session, campaign, keys.spend)
    admin_id = keys.admin.id
    session.commit()  # SQLite: let the others take the write lock (keeping `keys` loaded)
    (answer,) = while_held(
        engine, kept_by_owner(finding_id), [reassign(sessions, finding_id, admin_id)]
    )
    assert REFUSED in answer
    assert_unchanged(sessions, finding_id, owner)
    assert count(sessions, "review.finding_resolved", finding_id) == 1
    with sessions() as fresh:
        finding = fresh.get_one(ReviewFinding, finding_id)
        assert (finding.state, finding.resolution) == (FindingState.RESOLVED, "keep: billing")


@pytest.mark.parametrize("answered", [False, True], ids=["open", "answered"])
def test_the_api_refuses_to_reassign_a_campaign_finding(
    client, sessions, session, keys, campaign, token, answered
) -> None:
    owner, admin_id = owner_of(keys.spend), str(keys.admin.id)
    finding_id = finding_id_of(session, campaign, keys.spend)
    if answered:
        kept_by_owner(finding_id)(session)
    state = session.get_one(ReviewFinding, finding_id).state
    session.commit()  # SQLite: let the app take the write lock
    answer = client.post(
        f"/api/v1/findings/{finding_id}/reassign",
        json={"user_id": admin_id, "note": "yours now"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 409, answer.json
    assert answer.content_type == "application/problem+json"
    assert REFUSED in answer.json["detail"]
    assert_unchanged(sessions, finding_id, owner)
    with sessions() as fresh:
        assert fresh.get_one(ReviewFinding, finding_id).state is state


def test_the_console_and_the_cli_refuse_it_too(
    client, settings, sessions, session, keys, campaign, token
) -> None:
    owner = owner_of(keys.spend)
    finding_id = finding_id_of(session, campaign, keys.spend)
    review_id, slug, admin_id = campaign.review_id, keys.org.slug, str(keys.admin.id)
    session.rollback()  # SQLite: let the app and the CLI take the write lock
    sign_in(client, token)
    page = client.get(f"/console/reviews/{review_id}").get_data(as_text=True)
    answer = client.post(
        f"/console/findings/{finding_id}/reassign",
        data={"csrf": csrf_of(page), "user_id": admin_id, "team_id": ""},
    )
    assert answer.status_code == 409
    assert REFUSED in answer.get_data(as_text=True)
    cli = CliRunner(env=settings_env(settings)).invoke(
        main, ["reviews", "reassign", "--org", slug, str(finding_id), "--to-user", admin_id]
    )
    assert cli.exit_code != 0 and REFUSED in cli.output
    assert_unchanged(sessions, finding_id, owner)


def test_the_console_offers_no_resolve_or_reassign_on_a_campaign_finding(
    client, session, keys, campaign, token
) -> None:
    """The console's buttons and the API's `answerable_by_hand` come from the rule that
    refuses them (reviews.answerable_by_hand): no button that leads to a 409 page."""
    finding_id, review_id = finding_id_of(session, campaign, keys.spend), campaign.review_id
    session.rollback()  # SQLite: let the app read
    shown = client.get(
        f"/api/v1/findings/{finding_id}", headers={"Authorization": f"Bearer {token}"}
    ).json
    assert (shown["state"], shown["answerable_by_hand"]) == ("open", False)
    sign_in(client, token)
    page = client.get(f"/console/reviews/{review_id}").get_data(as_text=True)
    assert f'id="finding-{finding_id}"' in page
    assert 'class="acknowledge"' in page  # acknowledging stops reminders: still offered
    for refused in ("resolve", "reassign", "dismiss"):
        assert f'class="{refused}"' not in page
        assert f"/findings/{finding_id}/{refused}" not in page
    assert "Answered in its" in page


def refusals(sessions: SessionFactory, finding_id: uuid.UUID) -> list[tuple[str, dict]]:
    """The refusal events recorded on the finding: (actor, after)."""
    with sessions() as fresh:
        events = fresh.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.action == "review.finding_answer_refused",
                AuditEvent.target_id == str(finding_id),
            )
            .order_by(AuditEvent.occurred_at)
        ).all()
        return [(event.actor, event.after or {}) for event in events]


def test_every_refused_answer_by_hand_is_audited_in_api_console_and_cli(
    client, settings, sessions, session, keys, campaign, token
) -> None:
    """Resolve, dismiss and reassign of a campaign's finding are refused (409) as before, and
    each refusal leaves review.finding_answer_refused (who, the finding, what was attempted,
    why) while the finding, its key and the review stay as they were."""
    owner = owner_of(keys.spend)
    finding_id = finding_id_of(session, campaign, keys.spend)
    review_id, slug, admin_id = campaign.review_id, keys.org.slug, str(keys.admin.id)
    admin_email = keys.admin.email
    session.rollback()  # SQLite: let the app and the CLI take the write lock
    bearer = {"Authorization": f"Bearer {token}"}
    for operation in ("resolve", "dismiss"):
        answer = client.post(
            f"/api/v1/findings/{finding_id}/{operation}", json={"note": "done"}, headers=bearer
        )
        assert answer.status_code == 409, answer.json
    answer = client.post(
        f"/api/v1/findings/{finding_id}/reassign", json={"user_id": admin_id}, headers=bearer
    )
    assert answer.status_code == 409, answer.json
    sign_in(client, token)
    page = client.get(f"/console/reviews/{review_id}").get_data(as_text=True)
    answer = client.post(
        f"/console/findings/{finding_id}/resolve", data={"csrf": csrf_of(page), "note": ""}
    )
    assert answer.status_code == 409
    cli = CliRunner(env=settings_env(settings)).invoke(
        main, ["reviews", "dismiss", "--org", slug, str(finding_id), "--note", "gone"]
    )
    assert cli.exit_code != 0 and REFUSED in cli.output

    events = refusals(sessions, finding_id)
    assert [after["attempted"]["operation"] for _, after in events] == [
        "resolve", "dismiss", "reassign", "resolve", "dismiss",
    ]  # fmt: skip
    actors = [actor for actor, _ in events]
    assert actors[0] == actors[3] != "cli" and actors[4] == "cli"
    first, reassigned = events[0][1], events[2][1]
    assert first["finding"]["id"] == str(finding_id)
    assert first["review_id"] == str(review_id)
    assert (first["reason"], first["state"], first["attempted"]["note"]) == (
        "answered_in_campaign", "open", "done",
    )  # fmt: skip
    assert reassigned["attempted"]["to"] == {
        "type": "user", "id": admin_id, "email": admin_email,
    }  # fmt: skip
    assert_unchanged(sessions, finding_id, owner)
    with sessions() as fresh:
        assert fresh.get_one(ReviewFinding, finding_id).state is FindingState.OPEN
