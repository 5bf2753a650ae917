"""The gate's rule on reads that come back empty (models/directory/safety.emptied), decided
from the counts the reconciler notes on the plan: the wording the run reports, a read that
withholds removals emptying nothing, and USER never taken for emptied. The reads themselves,
against slapd, are in test_destructive_gates.py and test_renames.py."""

from __future__ import annotations

from connectors.ldap.plan import EmptyGroup, GroupCount, Plan, Revoke, TeamRemove
from models.directory.safety import emptied


def _plan(**counts) -> Plan:
    return Plan(
        people_linked=4,
        people_seen=0,
        team_counts=[
            GroupCount(name="Engineering", current=3, desired=0),
            GroupCount(name="Sales", current=2, desired=2),
            GroupCount(name="New", current=0, desired=0),
        ],
        role_counts=[
            GroupCount(name="MANAGER", current=1, desired=0),
            GroupCount(name="ORG_ADMIN", current=1, desired=1),
            GroupCount(name="USER", current=9, desired=0),
        ],
        **counts,
    )


def test_what_came_back_empty_is_said_people_then_teams_then_roles():
    assert emptied(_plan()) == [
        "the people search returned nobody, though 4 people are linked to this connector",
        "the groups mapped to team Engineering returned no members, though 3 people are in it",
        "the groups mapped to role MANAGER returned no members, though 1 users hold it",
    ]
    assert emptied(_plan(read=1))[0] == (
        "the people search returned none of the 4 people linked to this connector "
        "(it read 1 entries)"
    )


def test_a_read_that_found_some_or_proves_nothing_empties_nothing():
    assert emptied(Plan(people_linked=4, people_seen=1, read=1)) == []
    assert emptied(Plan(people_linked=0)) == []
    assert emptied(Plan(read=0)) == []  # no complete full read: nothing counted
    assert emptied(_plan(deprovision_blocked="the directory was not read completely")) == []


def test_an_empty_group_beside_others_holds_only_removals_of_people_still_there():
    """One of Engineering's groups came back empty: a removal of someone the plan revokes
    (a leaver) holds nothing; one of someone still in the directory does; a team emptied
    whole is said once, by the team."""
    plan = Plan(
        team_counts=[GroupCount(name="Engineering", current=3, desired=2)],
        empty_groups=[EmptyGroup(group="contractors", team="Engineering")],
        team_removes=[TeamRemove(team="Engineering", external_id="dave")],
        revokes=[
            Revoke(user_id="u-dave", external_id="dave", email="dave@corp.test", reason="gone")
        ],
    )
    assert emptied(plan) == []
    plan.team_removes.append(TeamRemove(team="engineering", external_id="erin"))
    assert emptied(plan) == [
        "the group contractors, which fills team Engineering, returned no members, "
        "and the plan removes 1 people still in the directory from that team"
    ]
    plan.team_counts = [GroupCount(name="Engineering", current=3, desired=0)]
    assert emptied(plan) == [
        "the groups mapped to team Engineering returned no members, though 3 people are in it"
    ]
