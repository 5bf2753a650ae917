"""Expire 1,000,000 overdue invitations on PostgreSQL in one task run, beside a row-by-row ORM
loop over a sample, while a second process keeps creating and accepting invitations through
the HTTP API (gunicorn on loopback) and records its latency.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 \
    /work/venv/bin/python benchmarks/invitations_expiry.py [--rows 1000000] [--sample 10000]

It creates (and drops) a database of its own; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import delete, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.scratch import postgres_scratch  # noqa: E402
from connectors.signed_webhooks import new_signing_secret, sign  # noqa: E402
from models import audit  # noqa: E402
from models.access import Viewer  # noqa: E402
from models.actions import invitations as inv  # noqa: E402
from models.actions import organisations, tokens  # noqa: E402
from models.actions import users as user_actions  # noqa: E402
from models.actor import Actor  # noqa: E402
from models.base import utcnow  # noqa: E402
from models.db import make_engine, make_session_factory  # noqa: E402
from models.entities import Invitation, PendingInvitation  # noqa: E402
from models.enums import InvitationStatus, Role, Source, TokenScope  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from models.settings import Settings  # noqa: E402

SECRET_KEY = "benchmark-secret-key-0123456789abcdef"
ORGS = 10


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=10_000)
    parser.add_argument("--calibration", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--accept-pool", type=int, default=3000)
    args = parser.parse_args()

    with postgres_scratch(prefix="odock_bench_inv") as database_url:
        hook_secret = new_signing_secret()
        settings = Settings(
            database_url=database_url,
            celery_broker_url=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
            celery_queue=f"odock-bench-{uuid.uuid4().hex[:8]}",
            secret_key=SECRET_KEY,
            enrollment_webhook_secrets=hook_secret,
            invitation_expiry_batch_size=args.batch,
            log_level="WARNING",
        )
        gunicorn = None
        start_load = os.getloadavg()
        try:
            engine = make_engine(settings)
            upgrade(engine)
            sessions = make_session_factory(engine)
            database = database_url.rsplit("/", 1)[-1]
            print(
                f"database {database}: seeding {args.rows:,} + {args.sample:,} overdue invitations"
            )
            slugs, admin_token, accept_tokens = seed(sessions, engine, args)
            port = _free_port()
            gunicorn = start_gunicorn(settings, port)
            report = run(settings, sessions, engine, args, port, slugs, admin_token, accept_tokens)
            report["load_average_at_start"] = start_load
            print(json.dumps(report, indent=2))
        finally:
            if gunicorn is not None:
                gunicorn.terminate()
                gunicorn.wait(timeout=20)
            _drop_queue(settings)


def seed(sessions, engine, args):  # type: ignore[no-untyped-def]
    actor = Actor(Source.ADMIN, "bench")
    with sessions() as session:
        orgs = [
            organisations.create_organisation(
                session, name=f"Bench {i}", slug=f"bench-{i}", actor=actor
            )
            for i in range(ORGS)
        ]
        admin = user_actions.create_user(
            session,
            organisation=orgs[0],
            email="admin@bench.test",
            name="Admin",
            role=Role.ORG_ADMIN,
            actor=actor,
        )
        token = tokens.create_token(
            session, organisation=orgs[0], scope=TokenScope.ADMIN, user=admin, actor=actor
        ).secret
        # Invitations the load process will accept through the signed webhook.
        viewer = Viewer.for_user(admin)
        accept_tokens = [
            inv.invite(
                session,
                viewer=viewer,
                email=f"accept{i}@bench.test",
                role=Role.USER,
                actor=actor,
                secret_key=SECRET_KEY,
            ).token
            for i in range(args.accept_pool)
        ]
        session.commit()
        org_ids = [str(o.id) for o in orgs]
        slugs = [o.slug for o in orgs]
        admin_id = str(admin.id)
    started = time.perf_counter()
    total = args.rows + args.sample + args.calibration
    with engine.begin() as connection:
        # Set-based seeding; the sample rows expired earliest so the ORM loop takes them first.
        # Each invitation is listed in pending_invitations, in the order written, as invite()
        # does it.
        connection.execute(
            text(
                """
                WITH seeded AS (
                INSERT INTO invitations (id, organisation_id, email, email_key, role, teams, status,
                    token_hash, token_nonce, send_count, expires_at, invited_by_user_id,
                    invited_by_name, resend_count, resends_in_window, last_sent_at,
                    created_at, updated_at)
                SELECT gen_random_uuid(), (CAST(:orgs AS uuid[]))[1 + i % :norgs],
                    'late' || i || '@bench.test', 'late' || i || '@bench.test', 'USER', '[]',
                    'pending', md5(i::text) || md5('x' || i), '', 1,
                    now() - CASE WHEN i <= :sample THEN interval '3 days'
                                 WHEN i <= :sample + :calibration THEN interval '2 days'
                                 ELSE interval '1 day' END,
                    CAST(:admin AS uuid), 'Admin', 0, 0, now() - interval '9 days',
                    now() - interval '9 days', now() - interval '9 days'
                FROM generate_series(1, :total) AS i
                RETURNING id, organisation_id, email_key
                )
                INSERT INTO pending_invitations (invitation_id, organisation_id, email_key)
                SELECT id, organisation_id, email_key FROM seeded
                """
            ),
            {
                "orgs": org_ids,
                "norgs": ORGS,
                "sample": args.sample,
                "calibration": args.calibration,
                "total": total,
                "admin": admin_id,
            },
        )
        connection.execute(text("ANALYZE invitations"))
        connection.execute(text("ANALYZE pending_invitations"))
    print(f"seeded in {time.perf_counter() - started:.1f} s")
    return slugs, token, accept_tokens


def row_by_row(sessions, sample: int) -> float:  # type: ignore[no-untyped-def]
    """The baseline: load each overdue invitation as an object, change it, audit it, flush."""
    actor = Actor.schedule("bench-orm-loop")
    now = utcnow()
    started = time.perf_counter()
    with sessions() as session:
        query = (
            select(Invitation)
            .where(Invitation.status == InvitationStatus.PENDING, Invitation.expires_at <= now)
            .order_by(Invitation.expires_at)
            .limit(sample)
        )
        for invitation in session.scalars(query).all():
            invitation.status = InvitationStatus.EXPIRED
            invitation.updated_at = now
            session.execute(
                delete(PendingInvitation)
                .where(PendingInvitation.invitation_id == invitation.id)
                .execution_options(synchronize_session=False)
            )
            audit.record(
                session,
                actor=actor,
                organisation_id=invitation.organisation_id,
                action="invitation.expired",
                target_type="invitation",
                target_id=invitation.id,
            )
            session.flush()
        session.commit()
    return time.perf_counter() - started


def single_update(engine, rows: int) -> float:  # type: ignore[no-untyped-def]
    """Calibration: one plain UPDATE over a group, to show what this machine does right now."""
    started = time.perf_counter()
    with engine.begin() as connection:
        done = connection.execute(
            text(
                "UPDATE invitations SET status = 'expired', updated_at = now() "
                "WHERE status = 'pending' AND expires_at < now() - interval '36 hours'"
            )
        ).rowcount
    assert done == rows, done
    elapsed = time.perf_counter() - started
    with engine.begin() as connection:  # not timed: keep pending_invitations true
        connection.execute(
            text(
                "DELETE FROM pending_invitations p USING invitations i "
                "WHERE i.id = p.invitation_id AND i.status <> 'pending'"
            )
        )
    return elapsed


def run(settings, sessions, engine, args, port, slugs, admin_token, accept_tokens):  # type: ignore[no-untyped-def]
    baseline = row_by_row(sessions, args.sample)
    print(f"row-by-row ORM loop: {args.sample:,} rows in {baseline:.2f} s")
    plain = single_update(engine, args.calibration)
    print(f"one plain UPDATE (calibration): {args.calibration:,} rows in {plain:.2f} s")

    from worker.runtime import init_runtime
    from worker.tasks.invitations import expire_overdue

    init_runtime(settings)
    context = multiprocessing.get_context("spawn")
    phase = context.Value("i", 0)  # 0 warm-up, 1 during expiry, 2 after, 3 stop
    results = context.Queue()
    load = context.Process(
        target=load_loop,
        args=(
            f"http://127.0.0.1:{port}",
            admin_token,
            settings.enrollment_webhook_secrets,
            slugs[0],
            accept_tokens,
            phase,
            results,
        ),
    )
    load.start()
    time.sleep(10)  # traffic before the sweep, for comparison
    phase.value = 1
    started = time.perf_counter()
    expired = expire_overdue.run()
    elapsed = time.perf_counter() - started
    phase.value = 2
    time.sleep(10)  # and after it
    phase.value = 3
    samples = results.get(timeout=60)
    load.join(timeout=30)

    with engine.connect() as connection:
        left = connection.execute(
            text(
                "SELECT count(*) FROM invitations WHERE status = 'pending' AND expires_at <= now()"
            )
        ).scalar()
        audits = connection.execute(
            text("SELECT count(*) FROM audit_events WHERE action = 'invitation.expired'")
        ).scalar()
    per_row_set = elapsed / max(expired, 1)
    per_row_orm = baseline / args.sample
    return {
        "expired": expired,
        "expiry_seconds": round(elapsed, 2),
        "rows_per_second": round(expired / elapsed),
        "batch_size": args.batch,
        "overdue_left": left,
        "audit_events": audits,
        "orm_loop_sample": args.sample,
        "orm_loop_seconds": round(baseline, 2),
        "orm_loop_projected_seconds_for_expired": round(per_row_orm * expired, 1),
        "speedup_vs_orm_loop": round(per_row_orm / per_row_set, 1),
        "single_update_calibration_rows": args.calibration,
        "single_update_calibration_seconds": round(plain, 2),
        "chunked_vs_single_update_per_row": round(per_row_set / (plain / args.calibration), 2),
        "load_average_at_end": os.getloadavg(),
        "api_latency_ms": summarise(samples),
    }


def load_loop(base, admin_token, hook_secret, slug, accept_tokens, phase, results):  # type: ignore[no-untyped-def]
    """The second process: create an invitation, accept another, again and again."""
    import requests

    http = requests.Session()
    samples: dict[str, list[tuple[int, str, float, int]]] = {"create": [], "accept": []}
    n = 0
    while phase.value < 3:
        n += 1
        current = phase.value
        started = time.perf_counter()
        response = http.post(
            f"{base}/api/v1/invitations",
            json={"email": f"load{n}-{uuid.uuid4().hex[:6]}@bench.test"},
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=10,
        )
        samples["create"].append(
            (current, "create", time.perf_counter() - started, response.status_code)
        )
        if n <= len(accept_tokens):
            body = json.dumps(
                {
                    "token": accept_tokens[n - 1],
                    "email": f"accept{n - 1}@bench.test",
                    "name": "Load",
                }
            ).encode()
            headers = sign(hook_secret, msg_id=f"msg_{uuid.uuid4().hex}", body=body)
            started = time.perf_counter()
            response = http.post(
                f"{base}/hooks/enrollment/{slug}",
                data=body,
                headers={**headers, "Content-Type": "application/json"},
                timeout=10,
            )
            samples["accept"].append(
                (current, "accept", time.perf_counter() - started, response.status_code)
            )
    results.put(samples)


def summarise(samples):  # type: ignore[no-untyped-def]
    out = {}
    for op, rows in samples.items():
        for phase, label in ((0, "before"), (1, "during_expiry"), (2, "after")):
            latencies = sorted(r[2] * 1000 for r in rows if r[0] == phase)
            errors = sum(1 for r in rows if r[0] == phase and r[3] >= 400)
            if not latencies:
                continue
            out[f"{op}_{label}"] = {
                "requests": len(latencies),
                "errors": errors,
                "p50": round(statistics.median(latencies), 1),
                "p99": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
                "max": round(latencies[-1], 1),
            }
    return out


def start_gunicorn(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for key, value in settings.model_dump().items():
        env[key.upper()] = str(value)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            "1",
            "--threads",
            "4",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "webhooks.app:create_app()",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok:
                return process
        except requests.RequestException:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("gunicorn did not start")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _drop_queue(settings: Settings) -> None:
    if not settings.celery_broker_url.startswith("redis"):
        return
    import redis

    client = redis.Redis.from_url(settings.celery_broker_url)
    client.delete(settings.celery_queue)


if __name__ == "__main__":
    main()
