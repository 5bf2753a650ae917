"""A team an LDAP sync made is retired once no connector maps a group to it: through the one
team deletion (keys revoked at a loopback gateway, a review opened), shown by a dry run first."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from models.actions import teams as team_actions
from models.actions.directory_connectors import update_connector
from models.entities import Budget, DirectoryConnector, RevocationReview, Team, VirtualApiKey
from models.enums import KeyType, OwnerType, ReviewCause, TeamRole
from tests.ldap.conftest import get_run, linked_users
from tests.reviews.conftest import gateway  # noqa: F401  (the loopback gateway fixture)
from tests.support import factories
from tests.support.relay import wait_relaying


def engineering_with_a_key(session, sessions, make_connector, sync):
    connector = make_connector(group_teams={"engineering": "Engineering"})
    assert sync(connector).status == "succeeded"
    alice = linked_users(sessions, connector)["alice"]
    team = session.scalar(select(Team).where(Team.organisation_id == connector.organisation_id))
    team_actions.add_to_team(
        session, team=team, user=session.merge(alice), role=TeamRole.MANAGER, actor=factories.SETUP
    )
    org = team.organisation_id
    key = VirtualApiKey(
        organisation_id=org,
        key_type=KeyType.TEAM,
        owner_team_id=team.id,
        created_by_user_id=alice.id,
        name="pipeline",
        masked_value="sk-...eng1",
    )
    budget = Budget(
        organisation_id=org,
        owner_type=OwnerType.TEAM,
        owner_id=team.id,
        name="eng monthly",
        amount=Decimal("300"),
    )
    session.add_all([key, budget])
    session.commit()
    return connector, team.id, key.id


def unmap(session, settings, connector: DirectoryConnector) -> None:
    update_connector(
        session,
        connector=session.merge(connector),
        fields={"group_teams": {}},
        bind_password=None,
        settings=settings,
        actor=factories.SETUP,
    )
    session.commit()


def test_a_dry_run_shows_the_retirement_and_a_sync_retires_the_team(
    session,
    sessions,
    settings,
    make_connector,
    sync,
    worker,
    gateway,  # noqa: F811
):
    connector, team_id, key_id = engineering_with_a_key(session, sessions, make_connector, sync)
    unmap(session, settings, connector)

    dry = sync(connector, dry_run=True)

    assert dry.status == "planned" and dry.summary["team_retire"] == 1
    assert get_run(sessions, dry.run_id).plan["team_retires"] == [{"team": "Engineering"}]
    with sessions() as fresh:
        assert fresh.get(Team, team_id) is not None
        assert fresh.get(VirtualApiKey, key_id).revoked is False

    applied = sync(connector)

    assert applied.status == "succeeded", applied.error
    wait_relaying(lambda: gateway.keys_for({str(key_id)}), what="the gateway invalidation")
    with sessions() as fresh:
        assert fresh.get(Team, team_id) is None
        assert fresh.get(VirtualApiKey, key_id).revoked is True
        review = fresh.scalars(select(RevocationReview)).one()
        assert (review.cause, review.team_id) == (ReviewCause.TEAM_DELETED, team_id)
        kinds = sorted((fi.kind, fi.action) for fi in review.findings)
        assert kinds == [("budget", "transfer"), ("team_key", "revoked")]
    # nothing left to retire: the next sync plans nothing more
    assert sync(connector, dry_run=True).summary["team_retire"] == 0


def test_a_team_another_connector_still_maps_is_not_retired(
    session, sessions, settings, make_connector, sync
):
    connector, team_id, key_id = engineering_with_a_key(session, sessions, make_connector, sync)
    with sessions() as s:
        second = DirectoryConnector(
            organisation_id=connector.organisation_id,
            name="branch office",
            server_urls=list(connector.server_urls),
            bind_dn=connector.bind_dn,
            base_dn=connector.base_dn,
            group_teams={"eng": "engineering"},
            enabled=False,
        )
        s.add(second)
        s.commit()
    unmap(session, settings, connector)

    outcome = sync(connector)

    assert outcome.status == "succeeded" and outcome.summary["team_retire"] == 0
    with sessions() as fresh:
        assert fresh.get(Team, team_id) is not None
        assert fresh.get(VirtualApiKey, key_id).revoked is False
        assert fresh.scalars(select(RevocationReview)).all() == []


def test_a_team_keyed_by_an_older_rule_is_not_retired_while_its_name_is_mapped():
    """A directory's team saved decomposed ("Cafe" + U+0301, its key too) that migration 0045
    left beside a composed "Café" (never merged) is still the mapping's team by today's key
    of its name: not retired (deleted) for a change of the key rule."""
    from connectors.ldap.plan import TeamRetire
    from connectors.ldap.reconcile import retired_teams

    teams = {"cafe\u0301": "Cafe\u0301", "old": "Old"}
    assert retired_teams(teams, ["Caf\u00e9"]) == [TeamRetire(team="Old")]
