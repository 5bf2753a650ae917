"""The first load from a file and the periodic reconcile from Odock's management plane.

Both stream objects through models.actions.odock_bulk, a chunk at a time. The import never
deletes. The reconcile reads each kind's complete listing and then marks unseen what the
organisation holds that the listing no longer contains, forgetting it only once
ODOCK_FORGET_AFTER_LISTINGS consecutive complete listings have lacked it; a listing that fails
on any page, or an item without a readable id, marks and deletes nothing. Each run is
recorded (odock_reconcile_runs) with its summary, and audited.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError
from sqlalchemy import Connection, Engine, or_, select
from sqlalchemy.orm import Session

from connectors.odock_listing import ListingFailed, list_pages, prefetched
from models import audit
from models.actions import leaver_checks, odock_usage, review_sweep
from models.actions.odock_bulk import Loader, Unusable, key_row, owned_row
from models.actions.odock_objects import (
    KIND_BUDGET,
    KIND_KEY,
    KIND_QUOTA,
    KINDS,
    BudgetIn,
    KeyIn,
    QuotaIn,
)
from models.actor import Actor
from models.backoff import backoff
from models.base import utcnow
from models.entities import ApiToken, OdockReconcileRun
from models.enums import Source, TokenScope
from models.errors import DomainError
from models.settings import Settings

RECONCILE_ACTOR = Actor(Source.ODOCK, "odock reconcile")
IMPORT_ACTOR = Actor(Source.ODOCK, "odock import")
MAX_PROBLEMS = 20


class KeyLine(KeyIn):
    kind: Literal["key"]
    id: uuid.UUID


class BudgetLine(BudgetIn):
    kind: Literal["budget"]
    id: uuid.UUID


class QuotaLine(QuotaIn):
    kind: Literal["quota"]
    id: uuid.UUID


class UsageLine(odock_usage.UsageIn):
    kind: Literal["usage"]


class ListedKey(KeyIn):
    id: uuid.UUID


class ListedBudget(BudgetIn):
    id: uuid.UUID


class ListedQuota(QuotaIn):
    id: uuid.UUID


LINE: TypeAdapter[KeyLine | BudgetLine | QuotaLine | UsageLine] = TypeAdapter(
    Annotated[KeyLine | BudgetLine | QuotaLine | UsageLine, Field(discriminator="kind")]
)
LISTED: dict[str, type[ListedKey] | type[ListedBudget] | type[ListedQuota]] = {
    KIND_KEY: ListedKey,
    KIND_BUDGET: ListedBudget,
    KIND_QUOTA: ListedQuota,
}


def staged_row(organisation_id: uuid.UUID, item: KeyIn | BudgetIn | QuotaIn) -> tuple[Any, ...]:
    object_id: uuid.UUID = item.id  # type: ignore[union-attr]
    if isinstance(item, KeyIn):
        return key_row(object_id, item)
    return owned_row(organisation_id, object_id, item)


class Problems:
    """Lines or items that could not be used: counted, the first few kept with a reason."""

    def __init__(self) -> None:
        self.count = 0
        self.first: list[str] = []

    def add(self, where: str, reason: str) -> None:
        self.count += 1
        if len(self.first) < MAX_PROBLEMS:
            self.first.append(f"{where}: {reason}"[:300])


def reason_of(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in error["loc"])
        return f"{where}: {error['msg']}" if where else error["msg"]
    return getattr(exc, "message", None) or str(exc)


# --- the import ---------------------------------------------------------------------------------


def import_lines(
    engine: Engine,
    *,
    organisation_id: uuid.UUID,
    lines: Iterable[bytes],
    actor: Actor = IMPORT_ACTOR,
) -> OdockReconcileRun:
    """Load a JSONL file (one object a line, with its `kind`); never deletes."""
    with engine.connect() as connection, ThreadPoolExecutor(max_workers=1) as database_thread:
        run = Run(connection, organisation_id, "import", actor)
        problems = Problems()
        usage = UsageSink(connection, organisation_id, actor, problems, database_thread)
        with ExitStack() as stack:
            loaders = {
                kind: stack.enter_context(
                    Loader(
                        connection,
                        organisation_id=organisation_id,
                        kind=kind,
                        actor=actor,
                        database_thread=database_thread,
                    )
                )
                for kind in KINDS
            }
            for number, line in enumerate(lines, 1):
                if line.strip():
                    _import_line(organisation_id, loaders, usage, problems, number, line)
            for loader in loaders.values():
                loader.flush()
            usage.flush()
            summary = {kind: loader.counts.as_dict() for kind, loader in loaders.items()}
        summary["usage"] = usage.counts
        summary["problems"] = {"count": problems.count, "first": problems.first}
        return run.finish("succeeded", summary)


def _import_line(
    organisation_id: uuid.UUID,
    loaders: dict[str, Loader],
    usage: UsageSink,
    problems: Problems,
    number: int,
    line: bytes,
) -> None:
    try:
        item = LINE.validate_json(line)
        if isinstance(item, UsageLine):
            usage.add(odock_usage.UsageIn(**item.model_dump(exclude={"kind"})))
        else:
            loaders[item.kind].add(staged_row(organisation_id, item))
    except (ValidationError, Unusable) as exc:
        problems.add(f"line {number}", reason_of(exc))


class UsageSink:
    """Usage lines of an import, stored a batch of 5,000 at a time as the push API stores them."""

    def __init__(
        self,
        connection: Connection,
        organisation_id: uuid.UUID,
        actor: Actor,
        problems: Problems,
        database_thread: ThreadPoolExecutor,
    ) -> None:
        self.connection, self.organisation_id, self.actor = connection, organisation_id, actor
        self.problems, self.database_thread = problems, database_thread
        self.records: list[odock_usage.UsageIn] = []
        self.counts = {"accepted": 0, "duplicates": 0}

    def add(self, record: odock_usage.UsageIn) -> None:
        self.records.append(record)
        if len(self.records) >= odock_usage.MAX_RECORDS:
            self.flush()

    def flush(self) -> None:
        """Store the batch on the connection's thread, after the chunks queued before it."""
        records, self.records = self.records, []
        if records:
            self.database_thread.submit(self._store, records).result()

    def _store(self, records: list[odock_usage.UsageIn]) -> None:
        with Session(bind=self.connection) as session:
            try:
                with session.begin_nested():
                    ingested = odock_usage.ingest_usage(
                        session,
                        organisation_id=self.organisation_id,
                        records=records,
                        actor=self.actor,
                    )
            except DomainError as exc:
                self.problems.add(f"usage batch of {len(records)}", exc.message)
                return
            backstop = leaver_checks.arm(
                session,
                organisation_id=self.organisation_id,
                actor=self.actor,
                usage_ids=[record.id for record in records],
            )
            _commit(session)
            leaver_checks.check_now(session, backstop)
            _commit(session)
        self.counts["accepted"] += ingested.accepted
        self.counts["duplicates"] += ingested.duplicates


# --- the reconcile ------------------------------------------------------------------------------

PageSource = Callable[[str], Iterator[list[Any]]]


def reconcile(
    engine: Engine,
    *,
    organisation_id: uuid.UUID,
    pages: PageSource,
    forget_after: int,
    actor: Actor = RECONCILE_ACTOR,
) -> OdockReconcileRun:
    """Bring the organisation's keys, budgets and quotas in line with the listings; `pages`
    gives a kind's listing page by page (raising ListingFailed when it cannot). An object is
    forgotten once `forget_after` consecutive complete listings have lacked it."""
    with engine.connect() as connection:
        run = Run(connection, organisation_id, "reconcile", actor)
        summary: dict[str, Any] = {}
        for kind in KINDS:
            summary[kind] = _reconcile_kind(
                connection, organisation_id, kind, pages, actor, forget_after
            )
        incomplete = [kind for kind in KINDS if not summary[kind]["complete"]]
        summary["drift"] = sum(
            summary[kind]["created"] + summary[kind]["updated"] + summary[kind]["deleted"]
            for kind in KINDS
        )
        return run.finish("incomplete" if incomplete else "succeeded", summary)


def _reconcile_kind(
    connection: Connection,
    organisation_id: uuid.UUID,
    kind: str,
    pages: PageSource,
    actor: Actor,
    forget_after: int,
) -> dict[str, Any]:
    problems = Problems()
    started_at = utcnow()
    with Loader(
        connection, organisation_id=organisation_id, kind=kind, actor=actor, keep_seen=True
    ) as loader:
        failed = _read_listing(loader, organisation_id, pages(kind), problems)
        loader.flush()
        listed = loader.counts.seen + loader.counts.rejected
        if failed is None and listed == 0 and loader.held() > 0:
            failed = ListingFailed(
                "the listing is empty but objects are held here: nothing deleted"
            )
        if failed is None:
            loader.settle_unseen(started_at=started_at, forget_after=forget_after)
        result = loader.counts.as_dict()
    result["complete"] = failed is None
    result["failure"] = failed.reason if failed else None
    result["retry_after"] = failed.retry_after if failed else None
    result["credentials_refused"] = bool(failed and failed.credentials_refused)
    result["problems"] = {"count": problems.count, "first": problems.first}
    return result


def _read_listing(
    loader: Loader, organisation_id: uuid.UUID, pages: Iterator[list[Any]], problems: Problems
) -> ListingFailed | None:
    """Stage every listed item; why the listing is incomplete, or None."""
    schema = LISTED[loader.kind]
    unreadable = None
    try:
        for page in pages:
            for item in page:
                try:
                    loader.add(staged_row(organisation_id, schema.model_validate(item)))
                except (ValidationError, Unusable) as exc:
                    object_id = _id_of(item)
                    problems.add(str(object_id or "an item"), reason_of(exc))
                    if object_id is None:
                        unreadable = "an item without a readable id: nothing deleted"
                    else:
                        loader.reject(object_id, reason_of(exc))
    except ListingFailed as exc:
        return exc
    return None if unreadable is None else ListingFailed(unreadable)


def _id_of(item: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(item["id"])) if isinstance(item, dict) else None
    except (KeyError, ValueError):
        return None


def review_loaded_keys(session: Session, run: OdockReconcileRun) -> list[str]:
    """After an import or a reconcile that created or changed keys: those held by a person
    revoked here go to their review now (review_sweep.review_keys_of_leavers), as a pushed key
    does, not at the next review sweep. In a session of its own, after the load (the load's
    connection is no bridged session). The reviews changed."""
    keys = run.summary.get(KIND_KEY) or {}
    if not (keys.get("created") or keys.get("updated")):
        return []
    actor = IMPORT_ACTOR if run.kind == "import" else RECONCILE_ACTOR
    return review_sweep.review_keys_of_leavers(
        session, organisation_id=run.organisation_id, actor=actor
    )


# --- runs -------------------------------------------------------------------------------------


class Run:
    """The record of one import or reconcile, committed when it starts and when it ends."""

    def __init__(
        self, connection: Connection, organisation_id: uuid.UUID, kind: str, actor: Actor
    ) -> None:
        self.connection, self.actor = connection, actor
        self.session = Session(bind=connection, expire_on_commit=False)
        self.run = OdockReconcileRun(organisation_id=organisation_id, kind=kind, summary={})
        self.session.add(self.run)
        _commit(self.session)

    def finish(self, status: str, summary: dict[str, Any]) -> OdockReconcileRun:
        self.run.status, self.run.summary, self.run.finished_at = status, summary, utcnow()
        audit.record_change(
            self.session,
            actor=self.actor,
            subject=self.run,
            action=f"odock.{self.run.kind}.finished",
            target_type="odock_run",
            after={"status": status, **summary},
        )
        _commit(self.session)
        self.session.expunge(self.run)
        self.session.close()
        return self.run


def _commit(session: Session) -> None:
    """Commit a session bound to a loading connection, and the connection's transaction with
    it (the session joins one that is already open instead of owning it)."""
    session.commit()
    connection = session.get_bind()
    if isinstance(connection, Connection) and connection.in_transaction():
        connection.commit()


def bridged_organisations(session: Session) -> list[uuid.UUID]:
    """Organisations whose management plane pushes to us: they hold a live odock token."""
    return list(
        session.scalars(
            select(ApiToken.organisation_id)
            .where(
                ApiToken.scope == TokenScope.ODOCK,
                ApiToken.revoked_at.is_(None),
                or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > utcnow()),
            )
            .distinct()
        )
    )


def retry_in(settings: Settings, retries: int, *, asked: float | None = None) -> float | None:
    """Seconds until a failed reconcile is tried again (retries so far: 0, 1, ...), doubling
    from ODOCK_RECONCILE_RETRY_BASE, and no sooner than the management plane `asked`; None
    once ODOCK_RECONCILE_RETRIES are spent or the wait would reach the next interval's run."""
    if retries >= settings.odock_reconcile_retries:
        return None
    interval = settings.odock_reconcile_interval
    retry_base = settings.odock_reconcile_retry_base
    wait = backoff(retries + 1, retry_base=retry_base, retry_max=interval, asked=asked)
    return wait if wait < interval else None


def credentials_refused(run: OdockReconcileRun) -> bool:
    """A listing of this run was refused the management token (401, 403): trying again before
    an operator changes it (ODOCK_MANAGEMENT_TOKEN) only repeats the refusal."""
    return any(
        isinstance(part, dict) and part.get("credentials_refused") for part in run.summary.values()
    )


def asked_to_wait(run: OdockReconcileRun) -> float | None:
    """The longest Retry-After the management plane answered a listing of this run with."""
    asked = [
        float(part["retry_after"])
        for part in run.summary.values()
        if isinstance(part, dict) and part.get("retry_after") is not None
    ]
    return max(asked, default=None)


def reconcile_configured(settings: Settings) -> bool:
    return settings.odock_mode == "bridged" and bool(settings.odock_management_url)


def reconcile_from_management_plane(
    engine: Engine, settings: Settings, organisation_id: uuid.UUID
) -> OdockReconcileRun:
    """The reconcile against ODOCK_MANAGEMENT_URL's list endpoints. A listing still going on
    when the next interval's run is due ends incomplete."""

    def pages(kind: str) -> Iterator[list[Any]]:
        return prefetched(
            list_pages(
                base_url=settings.odock_management_url,
                token=settings.odock_management_token,
                kind=kind,
                organisation_id=str(organisation_id),
                timeout=settings.odock_timeout,
                policy=settings.operator_outbound_policy(),
                within=settings.odock_reconcile_interval,
            )
        )

    return reconcile(
        engine,
        organisation_id=organisation_id,
        pages=pages,
        forget_after=settings.odock_forget_after_listings,
    )
