"""A stored plan read as a diff: moves pair a removal with an addition, demotions stand apart."""

from __future__ import annotations

import uuid

from models.entities import DirectorySyncRun
from models.queries.plan_diff import UnusedEntry, plan_diff

USER = uuid.uuid4()


def test_plan_reads_as_who_is_created_revoked_moved_and_demoted(session):
    run = DirectorySyncRun(
        connector_id=uuid.uuid4(),
        plan={
            "creates": [{"external_id": "e1", "email": "new@x.example", "role": "USER"}],
            "updates": [
                {"external_id": "e2", "email": "ann@x.example", "fields": {"name": ["Ann", "Anne"]}}
            ],
            "revokes": [
                {
                    "external_id": "e3",
                    "email": "bo@x.example",
                    "user_id": USER.hex,
                    "reason": "gone",
                }
            ],
            "team_removes": [
                {"team": "Ops", "external_id": "e1"},
                {"team": "Ops", "external_id": "e9"},
            ],
            "team_adds": [{"team": "Dev", "external_id": "e1", "role": "MEMBER"}],
            "roles": [
                {"external_id": "e1", "role": "USER", "previous": "MANAGER", "demotion": True},
                {"external_id": "e9", "role": "MANAGER", "previous": "USER", "demotion": False},
            ],
            "withheld": {"team_remove": 2},
            "deprovision_blocked": "the directory was not read completely",
            "errors": [
                {
                    "dn": "uid=x,ou=people,dc=y",
                    "message": "x@y belongs to a user managed by scim; not linked",
                },
                {"message": "an entry without a readable DN"},
            ],
            "truncated": {"creates": 5000},
        },
    )
    diff = plan_diff(session, run)
    assert [(c.person.label, c.detail) for c in diff.created] == [("new@x.example", "as USER")]
    assert diff.updated[0].detail == "name: Ann → Anne"
    assert diff.revoked[0].person.user_id == str(USER) and diff.revoked[0].detail == "gone"
    assert [(c.person.label, c.detail) for c in diff.moved] == [("new@x.example", "Ops → Dev")]
    assert [(c.person.label, c.detail) for c in diff.left] == [("e9", "Ops")]
    assert diff.joined == []
    assert [c.detail for c in diff.demoted] == ["MANAGER → USER"]
    assert [c.detail for c in diff.promoted] == ["USER → MANAGER"]
    assert diff.warnings[0].startswith("Deprovisioning withheld")
    assert "2 team remove withheld" in diff.warnings[1]
    assert diff.errors == [
        UnusedEntry("uid=x,ou=people,dc=y", "x@y belongs to a user managed by scim; not linked"),
        UnusedEntry("", "an entry without a readable DN"),
    ]
    assert diff.truncated == {"creates": 5000}
    headings = [heading for _, heading, changes in diff.sections() if changes]
    assert headings[:2] == ["Revoked", "Demoted"]  # the destructive first
