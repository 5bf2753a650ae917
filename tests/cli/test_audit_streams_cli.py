"""`odock-sync audit streams` and `odock-sync health` from the command line."""

from __future__ import annotations

from tests.support import factories as f


def test_streams_are_added_listed_paused_and_removed(run, run_json, session) -> None:
    org = f.make_org(session)
    session.commit()
    added = run_json(
        "audit",
        "streams",
        "add",
        "--org",
        org.slug,
        "--name",
        "siem",
        "--target",
        "http://127.0.0.1:9/collector",
    )
    assert added["signing_secret"].startswith("whsec_") and added["preset"] == "generic"
    (listed,) = run_json("audit", "streams", "list", "--org", org.slug)
    assert listed["id"] == added["id"] and "signing_secret" not in listed
    paused = run_json("audit", "streams", "pause", "--org", org.slug, "--id", added["id"])
    assert paused["enabled"] is False
    run("audit", "streams", "remove", "--org", org.slug, "--id", added["id"])
    assert run_json("audit", "streams", "list", "--org", org.slug) == []
    refused = run(
        "audit",
        "streams",
        "add",
        "--org",
        org.slug,
        "--name",
        "x",
        "--preset",
        "splunk",
        "--target",
        "http://127.0.0.1:9/c",
        ok=False,
    )
    assert "HEC token" in refused.output


def test_health_shows_sources_and_changes_allowances(run, run_json, session) -> None:
    org = f.make_org(session)
    f.scim_token(session, org)
    session.commit()
    shown = run("health", "show", "--org", org.slug).output
    assert "SCIM provisioning" in shown and "ok" in shown
    changed = run_json("health", "settings", "--org", org.slug, "--scim-silence-seconds", "3600")
    assert changed["scim_silence_seconds"] == 3600
    run("health", "settings", "--org", org.slug, "--ldap-silence-seconds", "5", ok=False)
