"""`odock-sync recert`: configure, open, list, show, decide, restore; bad input changes nothing."""

from sqlalchemy import select

from models.entities import AuditEvent, RecertificationPolicy
from tests.recertification.conftest import build_keys


def test_configure_open_show_decide_and_restore(session, run, run_json):
    keys = build_keys(session)
    session.commit()
    org = keys.org.slug

    policy = run_json(
        "recert",
        "configure",
        "--org",
        org,
        "--spend-days",
        "30",
        "--unused-days",
        "off",
        "--no-moved-people",
        "--deadline-days",
        "7",
    )
    assert (policy["spend_days"], policy["unused_days"], policy["moved_people"]) == (
        30,
        None,
        False,
    )
    opened = run_json("recert", "open", "--org", org)
    assert opened["findings"] == {"open": 2}
    assert [c["id"] for c in run_json("recert", "list", "--org", org)] == [opened["id"]]
    shown = run_json("recert", "show", "--org", org, opened["id"])
    assert {i["subject_id"] for i in shown["items"]} == {str(keys.spend.id), str(keys.spend_too.id)}
    first, second = (i["id"] for i in shown["items"])

    refused = run("recert", "decide", "--org", org, first, "keep", ok=False)
    assert "reason must not be empty" in refused.output
    kept = run_json("recert", "decide", "--org", org, first, "keep", "--reason", "batch job")
    assert (kept["state"], kept["action"]) == ("resolved", "kept")
    revoked = run_json("recert", "decide", "--org", org, second, "revoke")
    assert revoked["action"] == "revoked" and revoked["action_taken"] is True
    restored = run_json("recert", "restore", "--org", org, second, "--reason", "mistake")
    assert restored["action"] == "restored"
    text = run("recert", "show", "--org", org, opened["id"]).output
    assert "in scope" in text


def test_bad_input_is_a_clear_error_and_changes_nothing(session, run):
    keys = build_keys(session)
    session.commit()
    org = keys.org.slug
    for args, message in [
        (["--every-days", "0"], "every_days must be a whole number from 1 to 3650"),
        (["--spend-days", "soon"], "is not a whole number or 'off'"),
        (["--spend-days", "off", "--unused-days", "off", "--no-moved-people"], "a scope is needed"),
    ]:
        result = run("recert", "configure", "--org", org, *args, ok=False)
        assert message in result.output
    assert run("recert", "show", "--org", org, "not-a-uuid", ok=False).exit_code == 1
    session.expire_all()
    assert session.scalars(select(RecertificationPolicy)).all() == []
    changed = select(AuditEvent).where(AuditEvent.action == "recertification.policy_changed")
    assert session.scalars(changed).all() == []


def test_showing_a_fresh_policy_stores_nothing(session, run_json):
    """`recert policy` answers the defaults; its unit of work commits, and it stored them."""
    keys = build_keys(session)
    session.commit()
    shown = run_json("recert", "policy", "--org", keys.org.slug)
    assert (shown["enabled"], shown["every_days"], shown["on_deadline"]) == (False, 90, "revoke")
    session.expire_all()
    assert session.scalars(select(RecertificationPolicy)).all() == []
    recert = select(AuditEvent).where(AuditEvent.action.startswith("recertification."))
    assert session.scalars(recert).all() == []
