"""Benchmark: revoking a user with 1,000 keys, and a sweep over 100,000 users (PostgreSQL).

Usage:  DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        /work/venv/bin/python benchmarks/revocation.py [--users 100000] [--revoked 10000]

It creates a scratch database next to the one named (and drops it afterwards), runs the
domain operations in-process (the same code the Celery tasks call), and prints the figures.
The gateway is a loopback HTTP server; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

from connectors import gateway
from connectors.outbound import UrlPolicy
from models.actions import lifecycle, reviews
from models.actions.notification_deliveries import plan_deliveries
from models.actions.notification_hooks import create_hook
from models.actions.organisations import create_organisation
from models.actions.review_sweep import sweep_reviews
from models.actor import Actor
from models.base import new_id, utcnow
from models.db import make_engine, make_session_factory
from models.entities import (
    OutboxMessage,
    ReviewFinding,
    Revocation,
    RevocationReview,
    UsageRecord,
    User,
    VirtualApiKey,
)
from models.enums import HookKind, KeyType, Role, UserStatus
from models.migrate import upgrade
from models.settings import Settings

ACTOR = Actor.system("benchmark")
SECRET = "benchmark-secret-key-0123456789abcdef"


class Gateway(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")  # Odock's acknowledgement
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_args: Any) -> None:
        pass


def scratch_database(base_url: str) -> tuple[str, Any]:
    url = make_url(base_url.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"odock_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    return url.set(database=name).render_as_string(hide_password=False), (admin, name)


def drop_database(handle: Any) -> None:
    admin, name = handle
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def make_person(sessions: Any, org_id: uuid.UUID, n_keys: int, tag: str) -> uuid.UUID:
    with sessions() as session:
        person_id = new_id()
        session.execute(
            insert(User),
            [
                {
                    "id": person_id,
                    "organisation_id": org_id,
                    "name": f"Leaver {tag}",
                    "email": f"leaver-{tag}@example.com",
                    "email_key": f"leaver-{tag}@example.com",
                    "role": Role.USER,
                    "status": UserStatus.ACTIVE,
                }
            ],
        )
        if n_keys:
            session.execute(
                insert(VirtualApiKey),
                [
                    {
                        "id": new_id(),
                        "organisation_id": org_id,
                        "key_type": KeyType.USER,
                        "owner_user_id": person_id,
                        "name": f"key {i}",
                        "masked_value": f"sk-...{i:04d}",
                        "created_by_user_id": person_id,
                    }
                    for i in range(n_keys)
                ],
            )
        session.commit()
    return person_id


def revoke_once(sessions: Any, org_id: uuid.UUID, n_keys: int, tag: str, gateway_url: str) -> dict:
    """One full revocation, step by step, each step its own transaction as in production."""
    person_id = make_person(sessions, org_id, n_keys, tag)
    steps: dict[str, float] = {}
    with sessions() as session:
        person = session.get_one(User, person_id)
        steps["revoke_user"], revocation = timed(
            lambda: lifecycle.revoke(session, user=person, actor=ACTOR)
        )
        started = time.perf_counter()
        session.commit()
        steps["revoke_user"] += time.perf_counter() - started
        revocation_id = revocation.id
    with sessions() as session:
        steps["open_review"], review = timed(
            lambda: reviews.open_revocation_review(
                session, revocation_id=revocation_id, actor=ACTOR
            )
        )
        started = time.perf_counter()
        session.commit()
        steps["open_review"] += time.perf_counter() - started
        review_id = review.id
    with sessions() as session:
        message = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.task == "gateway.invalidate_keys")
            .order_by(OutboxMessage.id.desc())
            .limit(1)
        ).first()
        key_ids = message.kwargs["key_ids"] if message and n_keys else []

        def invalidate() -> None:
            if key_ids:
                gateway.invalidate_keys(
                    base_url=gateway_url,
                    secret="s",
                    key_ids=key_ids,
                    timeout=10,
                    policy=UrlPolicy(allow_loopback=True),
                )
                reviews.record_invalidation(
                    session, key_ids=[uuid.UUID(k) for k in key_ids], reason="revoked"
                )
                session.commit()

        steps["invalidate"], _ = timed(invalidate)
    with sessions() as session:
        event = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.task == "notifications.dispatch")
            .order_by(OutboxMessage.id.desc())
            .limit(1)
        ).one()
        kwargs = event.kwargs

        def queue_notifications() -> int:
            planned = plan_deliveries(
                session,
                event_id=kwargs["event_id"],
                organisation_id=uuid.UUID(kwargs["organisation_id"]),
                event=kwargs["event"],
                payload=kwargs["payload"],
                recipient_user_ids=[uuid.UUID(u) for u in kwargs["recipient_user_ids"]],
            )
            session.commit()
            return len(planned)

        steps["queue_notifications"], deliveries = timed(queue_notifications)
        findings = session.scalar(
            select(func.count(ReviewFinding.id)).where(ReviewFinding.review_id == review_id)
        )
        revoked = session.scalar(
            select(func.count(VirtualApiKey.id)).where(
                VirtualApiKey.owner_user_id == person_id, VirtualApiKey.revoked.is_(True)
            )
        )
    steps["total"] = sum(steps.values())
    return {"steps": steps, "findings": findings, "revoked": revoked, "deliveries": deliveries}


def load_directory(sessions: Any, org_id: uuid.UUID, users: int, revoked: int) -> dict:
    """`users` people; `revoked` of them REVOKED with a settled review and one revoked key;
    a little drift: 1% with a fresh active key, 0.5% with usage after the revocation."""
    now = utcnow()
    then = now - timedelta(days=3)
    batch = 10_000
    drift_keys = revoked // 100
    drift_usage = revoked // 200
    for start in range(0, users, batch):
        with sessions() as session:
            user_rows, rev_rows, review_rows, key_rows, finding_rows, usage_rows = (
                [],
                [],
                [],
                [],
                [],
                [],
            )
            for i in range(start, min(start + batch, users)):
                uid = new_id()
                is_revoked = i < revoked
                user_rows.append(
                    {
                        "id": uid,
                        "organisation_id": org_id,
                        "name": f"User {i}",
                        "email": f"user{i}@example.com",
                        "email_key": f"user{i}@example.com",
                        "role": Role.USER,
                        "status": UserStatus.REVOKED if is_revoked else UserStatus.ACTIVE,
                    }
                )
                key_id = new_id()
                if not is_revoked:
                    key_rows.append(_key(key_id, org_id, uid, revoked=False))
                    continue
                rid, review_id = new_id(), new_id()
                rev_rows.append(
                    {
                        "id": rid,
                        "organisation_id": org_id,
                        "user_id": uid,
                        "source": "admin",
                        "previous_status": UserStatus.ACTIVE,
                        "revoked_at": then,
                    }
                )
                review_rows.append(
                    {
                        "id": review_id,
                        "organisation_id": org_id,
                        "user_id": uid,
                        "revocation_id": rid,
                        "status": "resolved",
                    }
                )
                key_rows.append(_key(key_id, org_id, uid, revoked=True, revocation_id=rid))
                finding_rows.append(
                    {
                        "id": new_id(),
                        "review_id": review_id,
                        "kind": "user_key",
                        "subject_type": "api_key",
                        "subject_id": key_id,
                        "severity": "medium",
                        "action": "revoked",
                        "action_taken": True,
                        "state": "resolved",
                        "detail": {},
                    }
                )
                if i < drift_keys:
                    key_rows.append(_key(new_id(), org_id, uid, revoked=False))
                if drift_keys <= i < drift_keys + drift_usage:
                    usage_rows.append(
                        {
                            "id": new_id(),
                            "organisation_id": org_id,
                            "api_key_id": key_id,
                            "user_id": uid,
                            "occurred_at": now,
                            "cost": Decimal("0.01"),
                        }
                    )
            session.execute(insert(User), user_rows)
            if rev_rows:
                session.execute(insert(Revocation), rev_rows)
                session.execute(insert(RevocationReview), review_rows)
                session.execute(insert(ReviewFinding), finding_rows)
            session.execute(insert(VirtualApiKey), key_rows)
            if usage_rows:
                session.execute(insert(UsageRecord), usage_rows)
            session.commit()
    return {"drift_keys": drift_keys, "drift_usage": drift_usage}


def _key(
    key_id: uuid.UUID,
    org_id: uuid.UUID,
    uid: uuid.UUID,
    *,
    revoked: bool,
    revocation_id: uuid.UUID | None = None,
) -> dict:
    return {
        "id": key_id,
        "organisation_id": org_id,
        "key_type": KeyType.USER,
        "owner_user_id": uid,
        "name": "key",
        "masked_value": "sk-...",
        "revoked": revoked,
        "revoked_at": utcnow() - timedelta(days=3) if revoked else None,
        "revoked_by_revocation_id": revocation_id,
        "created_by_user_id": uid,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--revoked", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    url, handle = scratch_database(base)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    gateway_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        settings = Settings(database_url=url, secret_key=SECRET)
        engine = make_engine(settings)
        upgrade(engine)
        sessions = make_session_factory(engine)
        with sessions() as session:
            org = create_organisation(session, name="Bench", slug="bench", actor=ACTOR)
            for n in range(3):
                create_hook(
                    session,
                    organisation_id=org.id,
                    name=f"hook {n}",
                    kind=HookKind.WEBHOOK,
                    target=f"{gateway_url}/hook{n}",
                    events=[],
                    url_policy=UrlPolicy(allow_loopback=True),
                    secret_key=SECRET,
                    actor=ACTOR,
                )
            session.execute(
                insert(User),
                [
                    {
                        "id": new_id(),
                        "organisation_id": org.id,
                        "name": f"Admin {n}",
                        "email": f"admin{n}@example.com",
                        "email_key": f"admin{n}@example.com",
                        "role": Role.ORG_ADMIN,
                        "status": UserStatus.ACTIVE,
                    }
                    for n in range(5)
                ],
            )
            session.commit()
            org_id = org.id
        print(f"PostgreSQL scratch database; gateway and hooks on {gateway_url}")
        print(f"\n== revoking a user with {args.keys} keys (median of {args.repeat}) ==")
        baseline = [
            revoke_once(sessions, org_id, 0, f"b{n}", gateway_url) for n in range(args.repeat)
        ]
        runs = [
            revoke_once(sessions, org_id, args.keys, f"k{n}", gateway_url)
            for n in range(args.repeat)
        ]
        last = runs[-1]
        print(
            f"keys revoked: {last['revoked']}, findings: {last['findings']}, "
            f"deliveries queued: {last['deliveries']}"
        )
        for step in ("revoke_user", "open_review", "invalidate", "queue_notifications", "total"):
            ours = median(r["steps"][step] for r in runs)
            base_time = median(r["steps"][step] for r in baseline)
            print(f"  {step:20} {ours * 1000:9.1f} ms   (0 keys: {base_time * 1000:7.1f} ms)")

        print(f"\n== sweep over {args.users} users, {args.revoked} revoked ==")
        load_seconds, drift = timed(
            lambda: load_directory(sessions, org_id, args.users, args.revoked)
        )
        with engine.connect() as connection:
            connection.execute(text("ANALYZE"))
            connection.commit()
        print(f"  loaded in {load_seconds:.1f} s; drift: {drift}")
        for label in ("first sweep (fixes drift)", "second sweep (nothing to do)", "third sweep"):
            with sessions() as session:
                seconds, result = timed(lambda s=session: sweep_reviews(s, actor=ACTOR))
                commit_seconds, _ = timed(session.commit)
            print(
                f"  {label:30} {(seconds + commit_seconds) * 1000:9.1f} ms   "
                f"opened={len(result.opened)} updated={len(result.updated)} "
                f"closed={len(result.closed)}"
            )
        engine.dispose()
    finally:
        server.shutdown()
        drop_database(handle)


if __name__ == "__main__":
    main()
