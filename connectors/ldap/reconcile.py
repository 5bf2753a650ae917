"""Diffing a directory against the organisation's linked users: the plan of a sync.

Pure: the caller streams mapped people in, then groups, then asks for the plan. Nobody is
planned for deprovisioning unless the caller says the enumeration was complete and no entry
was unreadable.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypedDict

from connectors.email_address import email_key
from connectors.ldap.group_links import link_groups
from connectors.ldap.mapping import EntryProblem, Group, Person, expand_groups, normalize_dn
from connectors.ldap.plan import (
    Create,
    EmptyGroup,
    Entry,
    EntryError,
    GroupCount,
    Link,
    Plan,
    PlanItem,
    Reactivate,
    Relink,
    Revoke,
    RoleChange,
    TeamAdd,
    TeamRemove,
    TeamRetire,
    Update,
)
from connectors.name_keys import name_key


@dataclass(slots=True)
class Known:
    """A user this connector already owns, as far as the diff needs to know them."""

    user_id: str
    email: str
    name: str
    status: str
    role: str
    dn: str
    access_ends_at: str = ""  # stored from the directory's expiry, ISO 8601 UTC
    reactivatable: bool = False  # REVOKED, and this sync may bring them back (the policy says)
    # REVOKED by the schedule when the end date this directory gave passed: that date (ISO
    # 8601 UTC); a later one still to come, or none, brings them back (the policy's rule).
    ended_at: str = ""
    # REVOKED by another source, beside which this directory does not stand yet: an entry
    # disabled, expired or gone makes it stand (a `holds` item), as the policy says.
    joins: bool = False
    deleted: bool = False
    seen: bool = False  # read in this run (a flag here costs less than a set of 100,000 ids)


@dataclass(slots=True)
class Unlinked:
    """A user of the organisation not owned by this connector, found by email."""

    user_id: str
    owner: str  # "" when no other source manages them, else that source's name


@dataclass
class MembershipState:
    """What the database holds for the mapped teams: team key -> external id -> source.

    Nested rather than keyed by (team, id) pairs: 150,000 pairs were 10 MB of tuples."""

    memberships: dict[str, dict[str, str]] = field(default_factory=dict)
    team_names: dict[str, str] = field(default_factory=dict)
    # the groups that held members at the last applied run (its plan's filled_groups)
    filled_before: frozenset[str] = frozenset()


@dataclass
class TeamIndex:
    """The mapped teams each member is in (normalised DN -> team keys, nested groups
    expanded) and the teams' names by key: what plan_groups will decide for a person, known
    from groups read before the people, so an import can add them to their teams as it
    creates them."""

    by_dn: dict[str, tuple[str, ...]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    def teams_of(self, dn: str, dn_key: str = "") -> tuple[str, ...]:
        """The teams of the entry with this DN; `dn_key`, when given, is its normalised DN."""
        return self.by_dn.get(dn_key or normalize_dn(dn), ())


def team_index(
    groups: dict[str, Group], group_teams: dict[str, str], group_ids: dict[str, str]
) -> TeamIndex:
    """The teams of each member, as plan_groups puts them in teams (same expansion, same
    mapping, the same name when several spellings map to one team)."""
    expanded = expand_groups(groups)
    index = TeamIndex()
    shared: dict[tuple[str, ...], tuple[str, ...]] = {}  # few combinations, one tuple each
    for key, team in link_groups(groups, group_teams, group_ids).named(group_teams):
        team_key = name_key(team.strip())
        index.names[team_key] = team.strip()
        for dn in expanded[key]:
            teams = index.by_dn.get(dn, ())
            if team_key not in teams:
                joined = (*teams, team_key)
                index.by_dn[dn] = shared.setdefault(joined, joined)
    return index


class CreateListener(Protocol):
    """Told of each create as it is planned, and of a create a later entry took back; and,
    before any, of the teams the people will join (when the groups were read first)."""

    def teams_known(self, teams: Callable[[], TeamIndex]) -> None:
        """`teams` makes the index: called once the first create comes, if any does."""

    def created(self, item: Create, dn_key: str = "") -> None:
        """`dn_key`: the entry's normalised DN, when the reconciler tracks DNs."""

    def withdrawn(self, item: Create) -> None: ...


class Reconciler:
    """Streams people in and produces the plan; memory is the plan plus one entry per user."""

    def __init__(
        self,
        known: dict[str, Known],
        unlinked_by_email: dict[str, Unlinked],
        *,
        kind: str = "full",
        track_dns: bool = True,
        listener: CreateListener | None = None,
        now: str = "",
        rehire: str = "relink",
        owned_by_email: dict[str, tuple[str, Known]] | None = None,
    ) -> None:
        self.now = now  # ISO 8601 UTC; an entry whose access ended by then is not let in
        self.rehire = rehire
        # this connector's users by email: all of `known` (full) or those the caller looked up
        self._owned_by_email = owned_by_email
        self._rehires: list[tuple[Person, str, Known]] = []
        self.track_dns = track_dns
        self.known = known
        self.unlinked = unlinked_by_email
        self.listener = listener
        self.plan = Plan(kind=kind)
        self.seen: set[str] = set()
        self.unidentified = 0
        self.dn_to_id: dict[str, str] = {}
        # Entries read that have no user and get none from this plan (disabled and never
        # imported, refused): groups may name them, but there is nobody to add to a team.
        self.not_imported: set[str] = set()
        # Emails claimed in this read (by email_key): the planned create, or None when the
        # claim was a change of a user already held (or a duplicate already reported).
        self._claimed_emails: dict[str, Create | None] = {}
        # Stable ids more than one entry of this read carries: none of them is applied.
        self._duplicated: set[str] = set()

    def _mark_seen(self, external_id: str) -> bool:
        """Note an id as read; False when it was already read in this run."""
        known = self.known.get(external_id)
        if known is not None:
            if known.seen:
                return False
            known.seen = True
            return True
        if external_id in self.seen:
            return False
        self.seen.add(external_id)
        return True

    def is_seen(self, external_id: str) -> bool:
        known = self.known.get(external_id)
        return known.seen if known is not None else external_id in self.seen

    def add_problem(self, problem: EntryProblem) -> None:
        self.plan.read += 1
        if problem.external_id is not None:
            if not self._mark_seen(problem.external_id):
                self._duplicate_id(problem.external_id, problem.dn)
            self.dn_to_id[sys.intern(normalize_dn(problem.dn))] = problem.external_id
            if problem.external_id not in self.known:
                self.not_imported.add(problem.external_id)
        else:
            self.unidentified += 1
        self.plan.errors.append(
            EntryError(dn=problem.dn, external_id=problem.external_id, message=problem.message)
        )

    def add(self, person: Person) -> None:
        self.plan.read += 1
        ext = person.external_id
        known = self.known.get(ext)
        if known is not None:
            # One string per stable id, shared with the owned users and memberships loaded
            # (a new person's id has no other copy to share).
            ext = sys.intern(ext)
            seen_before = known.seen
            known.seen = True
        else:
            seen_before = ext in self.seen
            self.seen.add(ext)
        if seen_before or ext in self._duplicated:
            self._duplicate_id(ext, person.dn)
            return
        dn_key = ""
        if self.track_dns:
            dn_key = sys.intern(normalize_dn(person.dn))
            self.dn_to_id[dn_key] = ext
        if known is not None and person.emails and email_key(known.email) in person.emails:
            person.email = known.email  # still one of its values: the order is no change
        key = email_key(person.email)
        # Emails of users already held are unique in the database; only new or changed
        # emails need checking against the rest of this read, and those beyond ASCII, which
        # another entry may spell in another Unicode form (the database compares them as
        # they are).
        email_to_check = known is None or key != email_key(known.email) or not key.isascii()
        if email_to_check and not self._claim_email(person, key):
            if known is None:
                self.not_imported.add(ext)
            return
        if known is None:
            self._add_new(person, key, dn_key)
        else:
            self._add_known(person, known)

    def _claim_email(self, person: Person, key: str) -> bool:
        """Two entries with one email: neither is created or changed, both are reported.
        One email in any case and any Unicode form (NFKC: composed or not, compatibility
        characters such as fullwidth letters), so that no two people are made with addresses
        that read the same."""
        if key not in self._claimed_emails:
            self._claimed_emails[key] = None
            return True
        message = f"email {person.email} is used by more than one directory entry"
        self.plan.errors.append(
            EntryError(dn=person.dn, external_id=person.external_id, message=message)
        )
        dropped = self._claimed_emails[key]
        if dropped is not None:
            self._claimed_emails[key] = None
            self.plan.creates.remove(dropped)
            self.not_imported.add(dropped.external_id)
            self.plan.errors.append(
                EntryError(dn=dropped.dn, external_id=dropped.external_id, message=message)
            )
            if self.listener is not None:
                self.listener.withdrawn(dropped)
        return False

    def _duplicate_id(self, ext: str, dn: str) -> None:
        """A stable id on a second entry (a broken proxy or virtual directory): which entry
        comes first is no promise from one read to the next, so neither is applied (what
        the first planned is taken back), both are reported, and the person, seen, is not
        revoked."""
        message = f"stable id {ext} is on more than one directory entry; neither is applied"
        self.plan.errors.append(EntryError(dn=dn, external_id=ext, message=message))
        if ext in self._duplicated:
            return
        self._duplicated.add(ext)
        first = self._take_back(ext)
        self.plan.errors.append(EntryError(dn=first, external_id=ext, message=message))
        if ext not in self.known:
            self.not_imported.add(ext)

    def _take_back(self, ext: str) -> str:
        """Drop what the plan holds for this stable id so far; the DN of its entry."""
        dn = ""
        for item in [item for item in self.plan.creates if item.external_id == ext]:
            dn = item.dn
            self.plan.creates.remove(item)
            claim = email_key(item.email)
            if self._claimed_emails.get(claim) is item:
                del self._claimed_emails[claim]
            if self.listener is not None:
                self.listener.withdrawn(item)
        for name in ("links", "relinks", "updates", "reactivates", "revokes", "holds"):
            items = getattr(self.plan, name)
            kept = [item for item in items if item.external_id != ext]
            if len(kept) != len(items):
                dn = dn or next(
                    (getattr(item, "dn", "") for item in items if item.external_id == ext), ""
                )
                setattr(self.plan, name, kept)
        self._rehires = [entry for entry in self._rehires if entry[0].external_id != ext]
        known = self.known.get(ext)
        if not dn and known is not None:
            dn = known.dn
        if not dn:
            dn = next((key for key, value in self.dn_to_id.items() if value == ext), "")
        return dn

    def _ended(self, person: Person) -> str:
        """Why this person's access has ended, or "" (an expiry still to come is not one)."""
        if person.disabled:
            return "disabled in the directory"
        ends = person.access_ends_at
        if ends and self.now and ends <= self.now:
            return f"account expired on {ends}"
        return ""

    def _end_extended(self, person: Person, known: Known) -> bool:
        """The directory moved the end date that ended this person's access later (still to
        come: `_ended` said not ended) or took it away: a renewed contract. An expiry hidden
        from the reader renews nothing."""
        ends = person.access_ends_at
        if ends is None:
            return False
        return bool(known.ended_at) and (not ends or ends > known.ended_at)

    def _add_new(self, person: Person, key: str, dn_key: str) -> None:
        if self._ended(person):
            self.plan.skipped += 1
            self.not_imported.add(person.external_id)
            return
        match = self.unlinked.get(key)
        previous = self._owned_with_email(key) if match is None else None
        if previous is not None:
            # Ours under another stable id: a re-hire, once the old entry proves to be gone.
            self._rehires.append((person, *previous))
        elif match is None:
            item = Create(
                external_id=person.external_id,
                dn=person.dn,
                email=person.email,
                name=person.name,
                access_ends_at=person.access_ends_at or "",
            )
            self.plan.creates.append(item)
            self._claimed_emails[key] = item
            if self.listener is not None:
                self.listener.created(item, dn_key)
        elif match.owner:
            self.not_imported.add(person.external_id)
            self.plan.errors.append(
                EntryError(
                    dn=person.dn,
                    external_id=person.external_id,
                    message=f"{person.email} belongs to a user managed by {match.owner}; "
                    "not linked",
                )
            )
        else:
            self.plan.links.append(Link(**_entry_fields(person), user_id=match.user_id))

    def _add_known(self, person: Person, known: Known) -> None:
        ref = Reactivate(user_id=known.user_id, external_id=person.external_id, email=known.email)
        ended = self._ended(person)
        if ended:
            item = Revoke(
                user_id=ref.user_id, external_id=ref.external_id, email=ref.email, reason=ended
            )
            if known.status != "REVOKED":
                self.plan.revokes.append(item)
            elif known.joins:
                self.plan.holds.append(item)
            else:
                self.plan.unchanged += 1
            return
        fields = _changed_fields(person, known)
        if known.status == "REVOKED":
            if not known.reactivatable and not self._end_extended(person, known):
                self.plan.skipped += 1
                return
            self.plan.reactivates.append(ref)
        if fields:
            self.plan.updates.append(
                Update(
                    user_id=ref.user_id,
                    external_id=ref.external_id,
                    email=ref.email,
                    dn=person.dn,
                    fields=fields,
                )
            )
        elif known.status != "REVOKED":
            self.plan.unchanged += 1

    def revoke_ended(self, ended: dict[str, Known]) -> None:
        """Revoke people whose stored end of access has passed though their entry did not
        change (an incremental sync does not read them)."""
        for ext, known in ended.items():
            if self.is_seen(ext) or known.status == "REVOKED" or known.deleted:
                continue
            self.plan.revokes.append(
                Revoke(
                    user_id=known.user_id,
                    external_id=ext,
                    email=known.email,
                    reason=f"account expired on {known.access_ends_at}",
                )
            )

    def _owned_with_email(self, key: str) -> tuple[str, Known] | None:
        if self._owned_by_email is None:
            self._owned_by_email = {
                email_key(known.email): (ext, known) for ext, known in self.known.items()
            }
        return self._owned_by_email.get(key)

    def _plan_rehires(self, *, proven_gone: bool) -> None:
        """A new entry with the email of a user whose entry is gone: the same person, back
        under a new stable id (deleted and re-created). Relinked, not locked out."""
        moving = {item.external_id: item for item in self.plan.updates if item.new("email")}
        for person, old_ext, old in self._rehires:
            message = ""
            if old_ext in moving:
                # the address is free in the directory, not yet in the database
                message = (
                    f"{person.email} is the address the user of {moving[old_ext].dn} gives up "
                    "in this run; this entry is imported at the next sync"
                )
            elif self.is_seen(old_ext):
                message = f"email {person.email} is used by more than one directory entry"
            elif self.rehire != "relink":
                message = (
                    f"{person.email} belongs to a user linked to an entry no longer read; "
                    "relinking re-hires is off for this connector"
                )
            elif not proven_gone:
                message = (
                    f"{person.email} belongs to a user linked to another entry; relinked once "
                    "a complete full sync shows that entry is gone"
                )
            if message:
                self.plan.errors.append(
                    EntryError(dn=person.dn, external_id=person.external_id, message=message)
                )
                continue
            old.seen = True  # not revoked: the person is still here, under the new id
            self.plan.relinks.append(
                Relink(
                    **_entry_fields(person),
                    user_id=old.user_id,
                    previous_external_id=old_ext,
                    previous_dn=old.dn,
                )
            )

    def finish_people(self, *, complete: bool, full: bool, unread: str = "") -> None:
        """Plan deprovisioning of whoever was not seen, only after a complete clean read.

        `unread` says why part of the directory was not read (references not followed):
        nothing is decided from absence, in any kind of sync (a team's members, a role's
        holders may be in that part)."""
        if unread:
            self.plan.deprovision_blocked = unread
        self._plan_rehires(proven_gone=full and complete and not unread and not self.unidentified)
        if not full or unread:
            return
        if not complete:
            self.plan.deprovision_blocked = "the directory was not read completely"
            return
        if self.unidentified:
            self.plan.deprovision_blocked = (
                f"{self.unidentified} entries had no stable id, so absence proves nothing"
            )
            return
        for ext, known in self.known.items():
            if known.seen or known.deleted:
                continue
            gone = Revoke(
                user_id=known.user_id,
                external_id=ext,
                email=known.email,
                reason="no longer in the directory",
                removed=known.status != "REVOKED",  # the link of someone revoked stays as it is
            )
            if known.status != "REVOKED":
                self.plan.revokes.append(gone)
            elif known.joins:
                self.plan.holds.append(gone)
        self._count_linked_people()

    def plan_groups(
        self,
        groups: dict[str, Group],
        *,
        group_teams: dict[str, str],
        group_roles: dict[str, str],
        group_ids: dict[str, str],
        state: MembershipState,
        dn_to_id: dict[str, str],
        role_rank: Callable[[str], int],
        known_for_roles: dict[str, Known] | None = None,
    ) -> None:
        """Team memberships and roles from groups (nested groups expanded here); a person in
        several role groups gets the highest role by `role_rank`. Groups are found by the
        stable ids `group_ids` binds mapping keys to (connectors.ldap.group_links)."""
        expanded = expand_groups(groups)
        links = link_groups(groups, [*group_teams, *group_roles], group_ids)
        self.plan.group_renames, self.plan.group_ids = links.renames, links.bound
        desired_teams: dict[str, set[str]] = {}
        desired_role: dict[str, str] = {}
        team_names: dict[str, str] = {}
        read: dict[str, set[str]] = {}

        def members_of(key: str) -> set[str]:
            if key not in read:
                # A member who is no person read has no id: nobody to add (ids are never "").
                members = set(filter(None, map(dn_to_id.get, expanded[key])))
                members.difference_update(self.not_imported)
                read[key] = members
            return read[key]

        for key, team in links.named(group_teams):
            team_key = name_key(team.strip())
            team_names[team_key] = team.strip()
            desired_teams.setdefault(team_key, set()).update(members_of(key))
        for key, role in links.named(group_roles):
            for ext in members_of(key):
                if role_rank(role) > role_rank(desired_role.get(ext, "USER")):
                    desired_role[ext] = role
        relinked = {item.previous_external_id: item.external_id for item in self.plan.relinks}
        if relinked:  # memberships follow the person to the new stable id
            state.memberships = {
                team_key: {relinked.get(ext, ext): source for ext, source in members.items()}
                for team_key, members in state.memberships.items()
            }
        for team_key, wanted in desired_teams.items():
            held = state.memberships.get(team_key, {})
            name = team_names[team_key]
            self.plan.team_adds.extend(
                TeamAdd(team=name, external_id=ext, role="MEMBER")
                for ext in sorted(wanted)
                if ext not in held
            )
        for team_key, held in sorted(state.memberships.items()):
            wanted = desired_teams.get(team_key, set())
            gone = [ext for ext, source in held.items() if source == "ldap" and ext not in wanted]
            name = team_names.get(team_key) or state.team_names.get(team_key, team_key)
            for ext in sorted(gone):
                self.plan.team_removes.append(TeamRemove(team=name, external_id=ext))
        self._count_teams(group_teams, desired_teams, state)
        self._note_empty_groups(
            groups, links.groups, group_ids, (group_teams, group_roles), state.filled_before
        )
        if group_roles:
            self._plan_roles(desired_role, known_for_roles, role_rank)
            self._count_roles(group_roles, desired_role, known_for_roles)
        if self.plan.deprovision_blocked:
            self._withhold_removals()

    def _count_linked_people(self) -> None:
        """How many of this connector's linked active people a complete full read found."""
        linked = seen = 0
        for known in self.known.values():
            if known.status != "REVOKED" and not known.deleted:
                linked += 1
                seen += known.seen
        self.plan.people_linked, self.plan.people_seen = linked, seen

    def _count_teams(
        self, group_teams: dict[str, str], desired: dict[str, set[str]], state: MembershipState
    ) -> None:
        """Each mapped team: its members through the directory, and those its groups gave."""
        for name in sorted({name.strip() for name in group_teams.values()}):
            held = state.memberships.get(name_key(name), {})
            self.plan.team_counts.append(
                GroupCount(
                    name=name,
                    current=sum(1 for source in held.values() if source == "ldap"),
                    desired=len(desired.get(name_key(name), ())),
                )
            )

    def _note_empty_groups(
        self,
        groups: dict[str, Group],
        found: dict[str, list[str]],
        group_ids: dict[str, str],
        mappings: tuple[dict[str, str], dict[str, str]],
        filled_before: frozenset[str],
    ) -> None:
        """The groups filling a mapped team or role, directly or nested, that held members at
        the last applied run and came back without a single member value (a mapping key
        whose group is no longer found is one); those that hold members, for the next run."""
        group_teams, group_roles = mappings
        noted: set[tuple[str, str, str]] = set()
        filled: set[str] = set()
        for key in dict.fromkeys([*group_teams, *group_roles]):
            team, role = group_teams.get(key, "").strip(), group_roles.get(key, "")
            if not found.get(key):
                gone = [key] if group_ids.get(key, "") in filled_before else []
            else:
                within = _groups_within(groups, found[key])
                filled.update(_ident(g) for g in within if g.members)
                gone = [g.name for g in within if not g.members and _ident(g) in filled_before]
            for name in gone:
                if (name, team, role) not in noted:
                    noted.add((name, team, role))
                    self.plan.empty_groups.append(EmptyGroup(group=name, team=team, role=role))
        self.plan.filled_groups = sorted(filled)

    def _count_roles(
        self,
        group_roles: dict[str, str],
        desired: dict[str, str],
        every: dict[str, Known] | None,
    ) -> None:
        """Each mapped role: the active users holding it, and those its groups gave it."""
        candidates = every if every is not None else self.known
        mapped = set(group_roles.values())
        holders = Counter(
            known.role
            for known in candidates.values()
            if known.role in mapped and known.status != "REVOKED" and not known.deleted
        )
        granted = Counter(role for role in desired.values() if role in mapped)
        self.plan.role_counts.extend(
            GroupCount(name=role, current=holders[role], desired=granted[role])
            for role in sorted(mapped)
        )

    def _withhold_removals(self) -> None:
        """What an incomplete or unidentified read cannot prove for revocations, it cannot
        prove for memberships and roles either."""
        demotions = self.plan.demotions
        if self.plan.team_removes:
            self.plan.withheld["team_remove"] = len(self.plan.team_removes)
        if demotions:
            self.plan.withheld["demote"] = demotions
        self.plan.team_removes = []
        self.plan.roles = [item for item in self.plan.roles if not item.demotion]

    def _plan_roles(
        self,
        desired_role: dict[str, str],
        every: dict[str, Known] | None,
        role_rank: Callable[[str], int],
    ) -> None:
        """Roles of people seen now, or of everyone owned when groups changed (incremental)."""
        entries: list[Entry] = [*self.plan.creates, *self.plan.links, *self.plan.relinks]
        for entry in entries:
            entry.role = desired_role.get(entry.external_id, "USER")
        candidates = every if every is not None else self.known
        moved = {item.previous_external_id for item in self.plan.relinks}
        for ext, known in candidates.items():
            if (every is None and not known.seen) or ext in moved:
                continue
            if known.status == "REVOKED" or known.deleted:
                continue
            role = desired_role.get(ext, "USER")
            if known.role != role and known.role != "SUPER_ADMIN":
                self.plan.roles.append(
                    RoleChange(
                        user_id=known.user_id,
                        external_id=ext,
                        role=role,
                        previous=known.role,
                        demotion=role_rank(role) < role_rank(known.role),
                    )
                )


def _groups_within(groups: dict[str, Group], tops: list[str]) -> list[Group]:
    """The groups `tops` names and those nested in them, each once (cycles tolerated)."""
    seen, stack, found = set(tops), list(tops), []
    while stack:
        group = groups[stack.pop()]
        found.append(group)
        inner = [member for member in group.members if member in groups and member not in seen]
        seen.update(inner)
        stack.extend(inner)
    return sorted(found, key=lambda group: group.key)


def _ident(group: Group) -> str:
    """How the next read knows a group again: its stable id, else its normalised DN."""
    return group.external_id or group.key


# What makes a held item the same change as one of the current plan, per list.
_RECHECKED: dict[str, tuple[str, ...]] = {
    "creates": ("external_id",),
    "links": ("external_id", "user_id"),
    "relinks": ("external_id", "previous_external_id"),
    "updates": ("external_id",),
    "revokes": ("external_id",),
    "holds": ("external_id",),
    "reactivates": ("external_id",),
    "roles": ("external_id", "role"),
    "team_adds": ("team", "external_id"),
    "team_removes": ("team", "external_id"),
    "team_retires": ("team",),
}


def _same_change(item: PlanItem, names: tuple[str, ...]) -> tuple[str, ...]:
    """The item's key: those fields, a team's name case-insensitively."""
    return tuple(
        name_key(getattr(item, name)) if name == "team" else getattr(item, name) for name in names
    )


def recheck(held: Plan, current: Plan) -> tuple[Plan, dict[str, list[PlanItem]]]:
    """The held (reviewed) plan cut down to what the current directory still calls for.

    An item is kept when the current plan has the same change for the same person (with the
    current values: a name that changed again is written as it is now); the rest is returned
    as dropped. Nothing the current plan adds beyond the held one is taken: the next sync
    decides those, under the usual checks.
    """
    kept = Plan(
        kind=held.kind,
        read=current.read,
        unchanged=held.unchanged,
        skipped=held.skipped,
        errors=list(held.errors),
        watermark=held.watermark,
        deprovision_blocked=current.deprovision_blocked,
        withheld=dict(current.withheld),
        # the groups as the directory names them now, whatever the held plan saw
        group_renames=list(current.group_renames),
        group_ids=dict(current.group_ids),
        filled_groups=list(current.filled_groups),
    )
    dropped: dict[str, list[PlanItem]] = {}
    for name, key in _RECHECKED.items():
        now = {_same_change(item, key): item for item in getattr(current, name)}
        still: list[PlanItem] = []
        for item in getattr(held, name):
            match = now.get(_same_change(item, key))
            if match is None:
                dropped.setdefault(name, []).append(item)
            else:
                still.append(match)
        setattr(kept, name, still)
    _kept_as_holds(kept, current, dropped)
    return kept, dropped


def _kept_as_holds(kept: Plan, current: Plan, dropped: dict[str, list[PlanItem]]) -> None:
    """A held revocation of someone another source revoked meanwhile is the directory's
    decision still: it stands beside that source (a hold), or that source alone could bring
    back whom the directory disables until the next sync."""
    holds = {item.external_id: item for item in current.holds}
    not_revoked = [item for item in dropped.get("revokes", []) if isinstance(item, Revoke)]
    taken = [item for item in not_revoked if item.external_id in holds]
    kept.holds = [*kept.holds, *(holds[item.external_id] for item in taken)]
    still_dropped: list[PlanItem] = [item for item in not_revoked if item.external_id not in holds]
    if still_dropped:
        dropped["revokes"] = still_dropped
    else:
        dropped.pop("revokes", None)


def retired_teams(directory_teams: dict[str, str], mapped: list[str]) -> list[TeamRetire]:
    """Teams a directory made (name key -> name) that no connector maps a group to any more.

    Decided from the connectors' mappings, never from what the directory returned: a group
    missing from a read (a hiccup, a partial result) retires nothing. Nor does a change of
    the key rule: a team keyed by an older one (a decomposed name migration 0045 left beside
    its composed twin) is compared by its name's key today.
    """
    still_mapped = {name_key(name.strip()) for name in mapped}
    return [
        TeamRetire(team=name)
        for key, name in sorted(directory_teams.items())
        if key not in still_mapped and name_key(name.strip()) not in still_mapped
    ]


class _EntryFields(TypedDict):
    external_id: str
    dn: str
    email: str
    name: str
    access_ends_at: str | None


def _entry_fields(person: Person) -> _EntryFields:
    """What a create, link or relink says of the entry."""
    return {
        "external_id": person.external_id,
        "dn": person.dn,
        "email": person.email,
        "name": person.name,
        "access_ends_at": person.access_ends_at,
    }


def _changed_fields(person: Person, known: Known) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    if person.name != known.name:
        fields["name"] = [known.name, person.name]
    if email_key(person.email) != email_key(known.email):
        fields["email"] = [known.email, person.email]
    if person.dn != known.dn and normalize_dn(person.dn) != normalize_dn(known.dn):
        fields["dn"] = [known.dn, person.dn]
    if person.access_ends_at is not None and person.access_ends_at != known.access_ends_at:
        fields["access_ends_at"] = [known.access_ends_at, person.access_ends_at]
    return fields
