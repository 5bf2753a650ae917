"""Benchmark: what the mass-change gate adds to a SCIM deactivation, in statements and time.

The real app in process (Flask's test client, so the database work stands out), on the
embedded SQLite default and, when DATABASE_URL names a PostgreSQL server, on a scratch
database there. Each scenario sends `PATCH /scim/v2/Users/{id}` `{"active": false}` (Okta's
shape) to fresh SCIM users, one after another, and reports the statements per request and
p50/p99:

- gate off (`enabled: false`): the deactivation as it was before the gate;
- gate open: counted and applied (threshold far away), with an empty window and with
  20,000 changes already counted in the window (the count is a range scan of the window);
- gate tripped: every deactivation held (the person is not revoked, SCIM answers as asked).

    python benchmarks/mass_change_gate.py [--requests 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import delete, insert, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.scratch import StatementCounter, on_both_backends  # noqa: E402
from models.actions import mass_change, organisations, tokens  # noqa: E402
from models.actor import Actor  # noqa: E402
from models.base import new_id, utcnow  # noqa: E402
from models.db import make_engine, make_session_factory  # noqa: E402
from models.entities import MassChange, MassChangeGate, Organisation, User  # noqa: E402
from models.enums import ChangeKind, ChangeStatus, Source, TokenScope  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from models.settings import Settings  # noqa: E402
from webhooks.app import create_app  # noqa: E402
from webhooks.context import EXTENSION  # noqa: E402

SETUP = Actor(Source.SYSTEM, "benchmark")
SCIM_TYPE = "application/scim+json"
DEACTIVATE = {
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{"op": "replace", "value": {"active": False}}],
}
SCENARIOS: dict[str, dict[str, Any]] = {
    "gate off": {"enabled": False},
    "gate open, empty window": {"enabled": True, "threshold_count": 1_000_000},
    "gate open, 20,000 counted in the window": {"enabled": True, "threshold_count": 1_000_000},
    "gate tripped (held)": {"enabled": True, "threshold_count": 1},
}
PRE_COUNTED = 20_000


def statement_kind(statement: str) -> str:
    verb = (statement.lstrip().split(None, 1) or [""])[0].upper()
    table = "mass_change" if "mass_change" in statement else "other"
    return f"{table} {verb}"


def seed(settings: Settings) -> tuple[Any, str]:
    engine = make_engine(settings)
    upgrade(engine)
    with make_session_factory(engine)() as session:
        org = organisations.create_organisation(session, name="Bench", slug=None, actor=SETUP)
        secret = tokens.create_token(
            session, organisation=org, scope=TokenScope.SCIM, actor=SETUP
        ).secret
        session.commit()
        org_id = org.id
    engine.dispose()
    return org_id, secret


def provision(client: FlaskClient, secret: str, prefix: str, n: int) -> list[str]:
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": SCIM_TYPE}
    ids = []
    for i in range(n):
        email = f"{prefix}{i}@bench.test"
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": email,
            "emails": [{"value": email, "primary": True}],
            "active": True,
        }
        response = client.post("/scim/v2/Users", json=body, headers=headers)
        assert response.status_code == 201, response.get_data(as_text=True)
        ids.append(response.json["id"])
    return ids


def prepare(sessions: Any, org_id: Any, name: str, thresholds: dict[str, Any]) -> None:
    """Thresholds set, the gate open again and the window emptied (or filled)."""
    with sessions() as session:
        session.execute(delete(MassChange))
        session.execute(delete(MassChangeGate))
        organisation = session.get_one(Organisation, org_id)
        mass_change.set_thresholds(session, organisation=organisation, actor=SETUP, **thresholds)
        if name.startswith("gate open, 20,000"):
            fill_window(session, org_id)
        session.commit()


def fill_window(session: Any, org_id: Any) -> None:
    someone = session.scalars(select(User.id).where(User.organisation_id == org_id)).first()
    now = utcnow() - timedelta(minutes=1)
    rows = [
        {
            "id": new_id(),
            "organisation_id": org_id,
            "source": Source.SCIM,
            "user_id": someone,
            "kind": ChangeKind.DEACTIVATE,
            "status": ChangeStatus.APPLIED,
            "payload": {},
            "actor": "bench",
            "reason": "",
            "created_at": now,
            "decided_by": "",
        }
        for _ in range(PRE_COUNTED)
    ]
    session.execute(insert(MassChange), rows)


def measure(
    client: FlaskClient, counter: StatementCounter, secret: str, ids: list[str]
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": SCIM_TYPE}
    counter.counts.clear()
    times = []
    for scim_id in ids:
        start = time.perf_counter()
        response = client.patch(f"/scim/v2/Users/{scim_id}", json=DEACTIVATE, headers=headers)
        times.append(time.perf_counter() - start)
        assert response.status_code == 200 and response.json["active"] is False
    times.sort()
    n = len(ids)
    return {
        "statements": {k: round(v / n, 2) for k, v in sorted(counter.counts.items())},
        "p50_ms": round(statistics.median(times) * 1000, 2),
        "p99_ms": round(times[max(int(n * 0.99) - 1, 0)] * 1000, 2),
    }


def run_backend(label: str, database_url: str, broker_url: str, n: int) -> None:
    settings = Settings(
        database_url=database_url,
        celery_broker_url=broker_url,
        secret_key="bench-secret-key-0123456789abcdef",
        log_level="WARNING",
    )
    org_id, secret = seed(settings)
    app = create_app(settings)
    client = app.test_client()
    engine = app.extensions[EXTENSION].engine
    sessions = make_session_factory(engine)
    counter = StatementCounter(engine, statement_kind)
    for index, (name, thresholds) in enumerate(SCENARIOS.items()):
        ids = provision(client, secret, f"s{index}-", n)
        prepare(sessions, org_id, name, thresholds)
        print(label, name, measure(client, counter, secret, ids), flush=True)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    on_both_backends(run_backend, args.requests)


if __name__ == "__main__":
    main()
