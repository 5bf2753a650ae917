"""`odock-sync demo`, then the API call it prints, returns a full user detail."""

from __future__ import annotations

import shlex
from urllib.parse import urlparse


def _call_printed_curl(client, command: str):
    """Replay the printed curl command through the test client (same headers, same path)."""
    words = shlex.split(command)
    assert words[:2] == ["curl", "-s"] and words[2] == "-H"
    name, _, value = words[3].partition(": ")
    return client.get(urlparse(words[4]).path, headers={name: value})


def test_demo_then_the_printed_call_shows_a_full_user_detail(run, run_json, client) -> None:
    result = run_json("demo")
    response = _call_printed_curl(client, result["curl"])
    assert response.status_code == 200, response.get_json()
    detail = response.get_json()
    assert detail["email"] == "uma@demo.example" and detail["status"] == "ACTIVE"
    assert {t["name"] for t in detail["teams"]} == {"Platform", "Research"}
    assert [k["type"] for k in detail["api_keys"]] == ["USER", "USER"]
    assert all(k["masked_value"].startswith("sk-...") for k in detail["api_keys"])
    assert detail["usage"]["last_30_days"]["requests"] == 12
    assert len(detail["usage"]["recent"]) == 12
    assert [b["name"] for b in detail["budgets"]] == ["personal monthly"]
    assert [q["name"] for q in detail["quotas"]] == ["daily requests"]


def test_demo_has_every_role_and_status_and_its_text_output_is_the_curl(run, client) -> None:
    output = run("demo", "--slug", "demo-text", "--url", "http://127.0.0.1:9999").output
    command = output.strip().splitlines()[-1]
    assert command.startswith("curl -s -H 'Authorization: Bearer odk_admin_")
    assert "http://127.0.0.1:9999/api/v1/users/" in command
    token = shlex.split(command)[3].removeprefix("Authorization: Bearer ")
    listed = client.get("/api/v1/users", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert {u["role"] for u in listed["items"]} == {"ORG_ADMIN", "MANAGER", "USER"}
    assert {u["status"] for u in listed["items"]} == {"ACTIVE", "PENDING"}
