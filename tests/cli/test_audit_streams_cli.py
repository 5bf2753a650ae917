"""`odock-sync audit streams` and `odock-sync health` from the command line."""

from __future__ import annotations

from tests.support import factories as f


def _add(org, name: str, *extra: str) -> tuple[str, ...]:
    """The words of `audit streams add` for a stream on a port nothing listens on."""
    target = ("--target", "http://127.0.0.1:9/collector")
    return ("audit", "streams", "add", "--org", org.slug, "--name", name, *target, *extra)


def test_streams_are_added_listed_paused_resumed_and_removed(run, run_json, session) -> None:
    org = f.make_org(session)
    session.commit()
    added = run_json(*_add(org, "siem"))
    assert added["signing_secret"].startswith("whsec_") and added["preset"] == "generic"
    (listed,) = run_json("audit", "streams", "list", "--org", org.slug)
    assert listed["id"] == added["id"] and "signing_secret" not in listed
    paused = run_json("audit", "streams", "pause", "--org", org.slug, "--id", added["id"])
    assert paused["enabled"] is False
    resumed = run_json("audit", "streams", "resume", "--org", org.slug, "--id", added["id"])
    assert resumed["enabled"] is True and resumed["next_attempt_at"] is None
    run("audit", "streams", "remove", "--org", org.slug, "--id", added["id"])
    assert run_json("audit", "streams", "list", "--org", org.slug) == []
    refused = run(*_add(org, "x", "--preset", "splunk"), ok=False)
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
