"""Reading a directory into a sync's plan: every entry (full) or what changed (incremental).

Reads only: the caller (worker.directory_sync) opens the sessions, runs the database load
beside the read, and decides what the plan may do. Nobody is planned for deprovisioning
unless every page was read and every entry had its stable id (connectors.ldap.reconcile).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial

from sqlalchemy.orm import Session

from connectors.ldap.client import DirectoryClient, SearchStats
from connectors.ldap.errors import DirectoryIncomplete
from connectors.ldap.mapping import (
    ISO_FORMAT,
    AttributeMapping,
    EntryProblem,
    Group,
    Person,
    PersonReader,
    and_filter,
    changed_since_filter,
    later_change,
    map_group,
    normalize_dn,
    usernames,
)
from connectors.ldap.plan import Plan
from connectors.ldap.reconcile import (
    CreateListener,
    Known,
    MembershipState,
    Reconciler,
    Unlinked,
    team_index,
)
from models.actions.directory_connectors import connector_mapping, server_config
from models.base import utcnow
from models.directory.entries import read_person
from models.directory.safety import policy_of
from models.entities import DirectoryConnector
from models.enums import Role, SyncKind
from models.queries import directory as queries
from models.settings import Settings

GROUP_PAGE_SIZE = 5
MAX_WAITING = 5000  # mapped entries held while the owned users are still loading
Progress = Callable[[int], None]
# what a full read compares each person with: owned users, others by email
Loaded = tuple[dict[str, Known], dict[str, Unlinked]]


@dataclass
class ReadTarget:
    """What the read needs from the connector (a detached copy) and the settings."""

    connector: DirectoryConnector
    mapping: AttributeMapping
    settings: Settings
    now: str = field(default_factory=lambda: utcnow().strftime(ISO_FORMAT))

    @classmethod
    def of(cls, connector: DirectoryConnector, settings: Settings) -> ReadTarget:
        return cls(connector, connector_mapping(connector), settings)

    @property
    def group_base(self) -> str:
        return self.connector.group_base_dn or self.connector.base_dn

    @property
    def wants_groups(self) -> bool:
        return wants_groups(self.connector)


@dataclass
class Changes:
    """What an incremental read found: changed people, unreadable entries, changed groups."""

    people: list[Person] = field(default_factory=list)
    problems: list[EntryProblem] = field(default_factory=list)
    groups: dict[str, Group] = field(default_factory=dict)
    groups_changed: bool = False
    watermark: str = ""
    # references to other naming contexts (AD child domains) the searches did not follow
    references: list[str] = field(default_factory=list)


def load_state(session: Session, *, connector: DirectoryConnector) -> Loaded:
    """The owned users and the organisation's other users by email."""
    known = queries.load_known(session, connector)
    unlinked = queries.load_unlinked_by_email(session, connector)
    return known, unlinked


def load_memberships(session: Session, *, connector: DirectoryConnector) -> MembershipState:
    """The memberships of the mapped teams, which only the groups' plan (at the end) needs."""
    return queries.load_membership_state(session, connector)


def plan_full(
    target: ReadTarget,
    *,
    loading: Future[Loaded],
    memberships: Future[MembershipState] | None = None,
    progress: Progress,
    listener: CreateListener | None,
) -> Plan:
    """Read every entry; `loading` (the owned users) completes meanwhile, elsewhere, and so
    do `memberships` (with groups), which are not waited for before the groups are planned:
    the people are compared as soon as the users are loaded."""
    connector = target.connector
    watermark = connector.watermark
    config = server_config(connector, target.settings)
    reader = PersonReader(target.mapping)
    waiting: list[Person | EntryProblem] = []
    reconciler: Reconciler | None = None
    read = 0

    def feed(item: Person | EntryProblem) -> None:
        assert reconciler is not None
        if isinstance(item, EntryProblem):
            reconciler.add_problem(item)
        else:
            reconciler.add(item)

    # A generalized time's text orders as its time, and "" is before any: the later of
    # two is the larger, without a call per entry (later_change for the counter kind).
    by_text = target.mapping.change_kind == "timestamp"

    references: list[str] = []
    with DirectoryClient(config) as client:
        refuse_aliases(client, connector)
        groups: dict[str, Group] = {}
        if target.wants_groups:
            # Groups first (they are few): people created while the rest is read can join
            # their teams as they are written.
            groups, watermark = _read_groups(client, target, watermark, references)
            if listener is not None and connector.group_teams:
                # Made when the first create comes: a re-sync that creates nobody does
                # not expand 150,000 memberships twice (0.1 s).
                listener.teams_known(
                    partial(team_index, groups, connector.group_teams, connector.group_ids)
                )
        stats = SearchStats()
        for page in client.paged_search(
            connector.base_dn,
            target.mapping.user_filter,
            target.mapping.user_attributes(),
            page_size=connector.page_size,
            stats=stats,
            references=references,
        ):
            for dn, attrs in page:
                item = _map(dn, attrs, reader)
                if isinstance(item, EntryProblem):
                    if reconciler is None:
                        waiting.append(item)
                    else:
                        reconciler.add_problem(item)
                    continue
                if by_text:
                    if item.change > watermark:
                        watermark = item.change
                else:
                    watermark = later_change(watermark, item.change, target.mapping.change_kind)
                if reconciler is None:
                    waiting.append(item)
                else:
                    reconciler.add(item)
            read += len(page)
            # Waiting entries are bounded: past a few pages, wait for the database.
            if reconciler is None and (loading.done() or len(waiting) >= MAX_WAITING):
                reconciler = _start(loading.result(), target, listener)
                for item in waiting:
                    feed(item)
                waiting.clear()
            progress(read)
        if reconciler is None:
            reconciler = _start(loading.result(), target, listener)
            for item in waiting:
                feed(item)
            waiting.clear()
        reconciler.finish_people(
            complete=stats.complete, full=True, unread=unread_reason(references)
        )
        if memberships is not None:
            state = memberships.result()
            reconciler.plan_groups(
                groups,
                group_teams=connector.group_teams,
                group_roles=connector.group_roles,
                group_ids=connector.group_ids,
                state=state,
                dn_to_id=reconciler.dn_to_id,
                role_rank=_role_rank,
            )
    reconciler.plan.watermark = watermark
    return reconciler.plan


def wants_groups(connector: DirectoryConnector) -> bool:
    """Whether a read of this connector reads groups: some group is mapped to a team or role."""
    return bool(connector.group_teams or connector.group_roles)


def refuse_aliases(client: DirectoryClient, connector: DirectoryConnector) -> None:
    """A base DN that is an alias (the group base DN too, when groups are read) is a
    configuration error, before any search: the sync and the connection test both call this."""
    client.refuse_alias(connector.base_dn)
    group_base = connector.group_base_dn
    if wants_groups(connector) and group_base and group_base != connector.base_dn:
        client.refuse_alias(group_base, what="group base DN")


def _start(loaded: Loaded, target: ReadTarget, listener: CreateListener | None) -> Reconciler:
    known, unlinked = loaded
    return Reconciler(
        known,
        unlinked,
        kind=SyncKind.FULL.value,
        track_dns=target.wants_groups,
        listener=listener,
        now=target.now,
        rehire=policy_of(target.connector).rehire,
    )


def _map(dn: str, attrs: dict[str, list[bytes]], reader: PersonReader) -> Person | EntryProblem:
    try:
        return read_person(reader, dn, attrs)
    except EntryProblem as problem:
        return problem


def read_changes(target: ReadTarget, progress: Progress) -> Changes:
    """Entries changed since the watermark, and the mapped groups if any changed since then."""
    connector = target.connector
    mapping = target.mapping
    since = changed_since_filter(mapping, connector.watermark)
    changes = Changes(watermark=connector.watermark)
    config = server_config(connector, target.settings)
    reader = PersonReader(mapping)
    with DirectoryClient(config) as client:
        refuse_aliases(client, connector)
        for page in client.paged_search(
            connector.base_dn,
            and_filter(mapping.user_filter, since),
            mapping.user_attributes(),
            page_size=connector.page_size,
            references=changes.references,
        ):
            for dn, attrs in page:
                try:
                    person = read_person(reader, dn, attrs)
                except EntryProblem as exc:
                    changes.problems.append(exc)
                    continue
                changes.people.append(person)
                changes.watermark = later_change(
                    changes.watermark, person.change, mapping.change_kind
                )
            progress(len(changes.people) + len(changes.problems))
        # Strictly after: the group that set the watermark would otherwise look changed at
        # every run, and every incremental sync would recompute all memberships and roles.
        group_since = changed_since_filter(mapping, connector.watermark, after=True)
        changes.groups_changed = target.wants_groups and _any_group_changed(
            client, target, group_since, changes.references
        )
        if changes.groups_changed:
            changes.groups, changes.watermark = _read_groups(
                client, target, changes.watermark, changes.references
            )
    return changes


def load_changed(session: Session, *, target: ReadTarget, changes: Changes) -> dict[str, Known]:
    """The owned users the changed people are, by stable id (read only): loaded once, for
    needs_groups and then plan_incremental."""
    ids = [person.external_id for person in changes.people]
    return queries.load_known(session, target.connector, ids)


def plan_incremental(
    session: Session, *, target: ReadTarget, changes: Changes, known: dict[str, Known]
) -> Plan:
    """The plan of an incremental read, against the owned users it names (`known`, from
    load_changed) and the others it needs (read only)."""
    connector = target.connector
    people = changes.people
    unknown = any(p.external_id not in known for p in people)
    unlinked = queries.load_unlinked_by_email(session, connector) if unknown else {}
    every = queries.load_known(session, connector) if changes.groups_changed else None
    state = queries.load_membership_state(session, connector) if changes.groups_changed else None
    ended = queries.load_known(session, connector, ended_by=target.now)
    new_emails = [p.email for p in people if p.external_id not in known]
    owned = queries.load_owned_by_email(session, connector, new_emails)
    reconciler = Reconciler(
        known,
        unlinked,
        kind=SyncKind.INCREMENTAL.value,
        now=target.now,
        rehire=policy_of(connector).rehire,
        owned_by_email=owned,
    )
    for unreadable in changes.problems:
        reconciler.add_problem(unreadable)
    for person in people:
        reconciler.add(person)
    # deletions wait for a full sync; what an unread part could hold waits too
    reconciler.finish_people(complete=True, full=False, unread=unread_reason(changes.references))
    reconciler.revoke_ended(ended)
    if every is not None and state is not None:
        dn_to_id = {normalize_dn(k.dn): ext for ext, k in every.items() if k.dn}
        dn_to_id.update(reconciler.dn_to_id)
        reconciler.plan_groups(
            changes.groups,
            group_teams=connector.group_teams,
            group_roles=connector.group_roles,
            group_ids=connector.group_ids,
            state=state,
            dn_to_id=dn_to_id,
            role_rank=_role_rank,
            known_for_roles=every,
        )
    reconciler.plan.watermark = changes.watermark
    return reconciler.plan


def needs_groups(*, target: ReadTarget, changes: Changes, known: dict[str, Known]) -> bool:
    """Whether an incremental read that found no changed group must read them anyway: a
    person it found is new to this connector or revoked (may come back), and a group left
    unchanged may list them, whose team they must join in this run. `known`: load_changed."""
    if changes.groups_changed or not target.wants_groups or not changes.people:
        return False
    ids = [person.external_id for person in changes.people]
    return any(ext not in known or known[ext].status == "REVOKED" for ext in ids)


def read_groups(target: ReadTarget, changes: Changes) -> None:
    """Read every mapped group into an incremental read's changes."""
    with DirectoryClient(server_config(target.connector, target.settings)) as client:
        changes.groups, changes.watermark = _read_groups(
            client, target, changes.watermark, changes.references
        )
    changes.groups_changed = True


def _read_groups(
    client: DirectoryClient, target: ReadTarget, watermark: str, references: list[str]
) -> tuple[dict[str, Group], str]:
    """The mapped groups; references to other naming contexts are added to `references`."""
    groups: dict[str, Group] = {}
    members_by_username = target.mapping.members_by_username
    dns = _dns_by_username(client, target, references) if members_by_username else None
    for page in client.paged_search(
        target.group_base,
        target.mapping.group_filter,
        target.mapping.group_attributes(),
        # A group can list a hundred thousand members: a few groups per page keep the raw
        # entries (two pages in flight) small.
        page_size=min(GROUP_PAGE_SIZE, target.connector.page_size),
        references=references,
    ):
        for dn, attrs in page:
            whole = client.complete_ranges(dn, attrs, target.mapping.group_members)
            try:
                group = map_group(dn, whole, target.mapping, dns)
            except EntryProblem as problem:
                # A group we cannot read would look like a group nobody is in any more.
                raise DirectoryIncomplete(f"group {problem.dn}: {problem.message}") from None
            groups[group.key] = group
            watermark = later_change(watermark, group.change, target.mapping.change_kind)
    return groups, watermark


def _dns_by_username(
    client: DirectoryClient, target: ReadTarget, references: list[str]
) -> dict[str, list[str]]:
    """The normalised DNs of the people by username, for groups that list members by
    username (memberUid): one more paged read of the base, of that attribute alone, so a
    group's members are DNs as every other group's are, in full and incremental runs."""
    mapping = target.mapping
    dns: dict[str, list[str]] = {}
    for page in client.paged_search(
        target.connector.base_dn,
        mapping.user_filter,
        [mapping.username],
        page_size=target.connector.page_size,
        references=references,
    ):
        for dn, attrs in page:
            key = sys.intern(normalize_dn(dn))
            for name in usernames(attrs, mapping):
                dns.setdefault(name, []).append(key)
    return dns


def _any_group_changed(
    client: DirectoryClient, target: ReadTarget, since: str, references: list[str]
) -> bool:
    filterstr = and_filter(target.mapping.group_filter, since)
    for page in client.paged_search(
        target.group_base,
        filterstr,
        ["1.1"],
        page_size=target.connector.page_size,
        references=references,
    ):
        if page:
            return True
    return False


def unread_reason(references: list[str]) -> str:
    """Why a read that met references is incomplete ("" when it met none)."""
    if not references:
        return ""
    shown = ", ".join(references[:3]) + (
        f" and {len(references) - 3} more" if len(references) > 3 else ""
    )
    return (
        f"the server referred part of the base to other naming contexts ({shown}), which are "
        "not read: connect a connector to the server that holds them"
    )


def _role_rank(role: str) -> int:
    return Role(role).rank
