"""From directory entries to people and groups: presets, disabled markers, escaping.

Pure functions; nothing here talks to a server. Values arrive as bytes from python-ldap and
are decoded strictly, so a non-UTF-8 value is reported, never guessed.
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import ldap.dn
import ldap.filter
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from connectors.email_address import email_key
from connectors.ldap.client import Attributes

EMAIL_MAX = 320

# An attribute description (RFC 4512): a name (letter, then letters, digits, hyphens) or a
# numeric OID. Anything else (empty, a space, a parenthesis) would read nothing, or reach
# the server as a request it refuses, at every sync.
AttributeName = Annotated[
    str,
    Field(min_length=1, max_length=100, pattern=r"^(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)$"),
]


def is_balanced_filter(value: str) -> bool:
    """One parenthesised filter: opens with "(", closes with ")", its brackets balanced
    (escaped ones aside)."""
    if not (value.startswith("(") and value.endswith(")")):
        return False
    depth = 0
    escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


class DisabledMarker(BaseModel):
    """An attribute that marks an account disabled: a bit set, any value, or one value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attribute: AttributeName
    kind: Literal["bitmask", "present", "equals"]
    value: str = ""
    # a bitmask's value as an integer, parsed once here rather than for every entry read
    _mask: int = PrivateAttr(default=0)

    @property
    def mask(self) -> int:
        return self._mask

    @model_validator(mode="after")
    def _usable_value(self) -> DisabledMarker:
        """A bitmask needs a bit to test and `equals` a value: otherwise nobody is ever
        disabled (a mask of 0, an empty value) or every entry is an error (a mask "abc")."""
        if self.kind == "bitmask":
            try:
                self._mask = int(self.value, 0)
            except ValueError:
                raise ValueError(f"bitmask value {self.value!r} is not an integer") from None
            if self._mask <= 0:
                raise ValueError(f"bitmask value {self.value!r} must be a positive integer")
        if self.kind == "equals" and not self.value.strip():
            raise ValueError("an equals marker needs a value")
        return self


# Member attributes whose values are usernames, not DNs (RFC 2307 posixGroup's memberUid).
USERNAME_MEMBERS = frozenset({"memberuid"})

# ppolicy writes this value for an administrative lock; any other value is the time a timed
# lockout (too many wrong passwords) began, which ends by itself.
PPOLICY_ADMIN_LOCK = "000001010000Z"
UF_LOCKOUT = 0x10  # Active Directory's "locked out" bit: a timed lockout too


class ExpiryAttribute(BaseModel):
    """An attribute holding the date an account's access ends, in one of three forms."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attribute: AttributeName
    # generalized: 20270101000000Z; days: days since 1970-01-01 (shadowExpire);
    # filetime: 100 ns ticks since 1601-01-01 (accountExpires; 0 and 2^63-1 mean never)
    format: Literal["generalized", "days", "filetime"]


class AttributeMapping(BaseModel):
    """Which attributes hold what; a preset fills it, the admin may override any field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_filter: str = "(objectClass=inetOrgPerson)"
    stable_id: AttributeName = "entryUUID"
    stable_id_format: Literal["text", "guid"] = "text"
    username: AttributeName = "uid"
    email: AttributeName = "mail"
    name: tuple[AttributeName, ...] = ("displayName", "cn")
    given_name: AttributeName = "givenName"
    surname: AttributeName = "sn"
    disabled: tuple[DisabledMarker, ...] = ()
    expiry: tuple[ExpiryAttribute, ...] = ()
    change_attribute: AttributeName = "modifyTimestamp"
    change_kind: Literal["timestamp", "counter"] = "timestamp"
    group_filter: str = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))"
    group_name: AttributeName = "cn"
    # at least one: none would read every group as empty and take everyone off every team
    group_members: tuple[AttributeName, ...] = Field(
        default=("member", "uniqueMember"), min_length=1
    )

    @model_validator(mode="after")
    def _parenthesised_filters(self) -> AttributeMapping:
        """A filter that is not one parenthesised LDAP filter fails every search."""
        for name in ("user_filter", "group_filter"):
            if not is_balanced_filter(getattr(self, name)):
                raise ValueError(f"{name} is not a parenthesised LDAP filter")
        return self

    def user_attributes(self) -> list[str]:
        names = [
            self.stable_id,
            self.username,
            self.email,
            *self.name,
            self.given_name,
            self.surname,
            self.change_attribute,
            *(marker.attribute for marker in self.disabled),
            *(expiry.attribute for expiry in self.expiry),
        ]
        return list(dict.fromkeys(names))

    @model_validator(mode="after")
    def _no_lockout_as_disabled(self) -> AttributeMapping:
        """A timed lockout is not a leaver: it must never revoke anyone."""
        for marker in self.disabled:
            name = marker.attribute.lower()
            admin_lock = marker.kind == "equals" and marker.value == PPOLICY_ADMIN_LOCK
            if name == "pwdaccountlockedtime" and not admin_lock:
                raise ValueError(
                    "pwdAccountLockedTime marks a timed lockout; only the value "
                    f"{PPOLICY_ADMIN_LOCK} (kind equals) is an administrative lock"
                )
            if name == "lockouttime":
                raise ValueError("lockoutTime marks a timed lockout, not a disabled account")
            if marker.kind == "bitmask" and marker.mask & UF_LOCKOUT:
                raise ValueError("bit 0x10 (LOCKOUT) marks a timed lockout, not a disabled account")
        return self

    @property
    def members_by_username(self) -> bool:
        """Whether a member attribute names people by username (posixGroup's memberUid)."""
        return any(name.lower() in USERNAME_MEMBERS for name in self.group_members)

    def group_attributes(self) -> list[str]:
        names = [self.stable_id, self.group_name, self.change_attribute, *self.group_members]
        return list(dict.fromkeys(names))


PRESETS: dict[str, AttributeMapping] = {
    "openldap": AttributeMapping(
        disabled=(
            DisabledMarker(
                attribute="pwdAccountLockedTime", kind="equals", value=PPOLICY_ADMIN_LOCK
            ),
        ),
        expiry=(
            ExpiryAttribute(attribute="shadowExpire", format="days"),
            ExpiryAttribute(attribute="pwdEndTime", format="generalized"),
        ),
        # entryCSN orders changes to the microsecond; modifyTimestamp only to the second.
        change_attribute="entryCSN",
    ),
    "freeipa": AttributeMapping(
        user_filter="(objectClass=person)",
        stable_id="ipaUniqueID",
        disabled=(DisabledMarker(attribute="nsAccountLock", kind="equals", value="TRUE"),),
        expiry=(ExpiryAttribute(attribute="krbPrincipalExpiration", format="generalized"),),
        group_filter="(objectClass=groupOfNames)",
        group_members=("member",),
    ),
    "389ds": AttributeMapping(
        stable_id="nsUniqueId",
        disabled=(DisabledMarker(attribute="nsAccountLock", kind="equals", value="TRUE"),),
    ),
    "active_directory": AttributeMapping(
        user_filter="(&(objectCategory=person)(objectClass=user))",
        stable_id="objectGUID",
        stable_id_format="guid",
        username="sAMAccountName",
        disabled=(DisabledMarker(attribute="userAccountControl", kind="bitmask", value="2"),),
        expiry=(ExpiryAttribute(attribute="accountExpires", format="filetime"),),
        change_attribute="uSNChanged",
        change_kind="counter",
        group_filter="(objectClass=group)",
        group_members=("member",),
    ),
}


def mapping_for(preset: str, overrides: dict[str, object] | None = None) -> AttributeMapping:
    """A preset with the admin's overrides; raises ValueError naming a bad field."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; one of {', '.join(sorted(PRESETS))}")
    merged = {**PRESETS[preset].model_dump(), **(overrides or {})}
    return AttributeMapping.model_validate(merged)


@dataclass(slots=True)
class Person:
    external_id: str
    dn: str
    username: str
    email: str
    name: str
    disabled: bool
    change: str
    # ISO 8601 UTC ("2027-01-31T00:00:00Z"), "" when it never ends, None when unknown: an
    # expiry attribute every account carries was hidden from the reader
    access_ends_at: str | None = ""
    # every value of a multi-valued email attribute, trimmed and lower-cased ("" for one value):
    # their order is no promise, so a user whose email is still among them keeps it
    emails: tuple[str, ...] = ()


@dataclass(slots=True)
class Group:
    dn: str
    key: str
    name: str
    members: list[str]
    change: str
    external_id: str = ""  # the stable id (entryUUID, objectGUID); "" when unreadable


class EntryProblem(Exception):
    """One entry could not be mapped; `external_id` is set when we still know who it is."""

    def __init__(self, dn: str, message: str, external_id: str | None = None) -> None:
        super().__init__(f"{dn}: {message}")
        self.dn = dn
        self.message = message
        self.external_id = external_id


def escape_filter_value(value: str) -> str:
    """RFC 4515: a value safe inside a filter (`*`, `(`, `)`, `\\`, NUL escaped)."""
    return ldap.filter.escape_filter_chars(value, escape_mode=0)


def escape_dn_value(value: str) -> str:
    """RFC 4514: a value safe as one RDN value."""
    return ldap.dn.escape_dn_chars(value)


def normalize_dn(dn: str) -> str:
    """A comparable form of a DN: parsed, re-serialised and lower-cased."""
    if _plain_dn(dn):
        return dn.lower()  # already in the form re-serialising would give
    try:
        return ldap.dn.dn2str(ldap.dn.str2dn(dn)).lower()
    except ldap.DECODING_ERROR:
        return dn.strip().lower()


def _plain_dn(dn: str) -> bool:
    """No escape, quote, multi-valued RDN, space around a separator, `;` or `#`: a DN that
    parsing and re-serialising would give back as it is. One `in` per mark rather than a
    generator over them: called for every person and group member, it was a tenth of the
    read's own CPU."""
    return not (
        "\\" in dn
        or '"' in dn
        or "+" in dn
        or ", " in dn
        or " ," in dn
        or "= " in dn
        or " =" in dn
        or ";" in dn
        or "#" in dn
    )


def is_valid_dn(dn: str) -> bool:
    return ldap.dn.is_dn(dn)


def and_filter(*parts: str) -> str:
    present = [p if p.startswith("(") else f"({p})" for p in parts if p]
    return present[0] if len(present) == 1 else f"(&{''.join(present)})"


def _values(attrs: Attributes, name: str) -> list[bytes] | None:
    """An attribute's values: those under its name and under each of its descriptions with
    options (`_keys`), the plain ones first; None when the entry has none of them."""
    keys = _keys(attrs, name)
    if not keys:
        return None
    if len(keys) == 1:
        return attrs[keys[0]]  # the usual case: the entry's own list, not a copy
    return [value for key in keys for value in attrs[key]]


def _text(dn: str, attrs: Attributes, name: str, external_id: str | None) -> str:
    return _first_text(dn, _values(attrs, name), name, external_id)


def _first_text(dn: str, values: list[bytes] | None, name: str, external_id: str | None) -> str:
    """An attribute's first value as text, trimmed ("" without one)."""
    if not values:
        return ""
    try:
        return values[0].decode("utf-8").strip()
    except UnicodeDecodeError:
        raise EntryProblem(dn, f"attribute {name} is not valid UTF-8", external_id) from None


def _marked(marker: DisabledMarker, values: list[bytes]) -> bool:
    """Whether these values of the marker's attribute say the account is disabled; raises
    ValueError for a flags word (bitmask) that is not an integer."""
    for raw in values:
        text = raw.decode("utf-8", errors="replace").strip()
        if marker.kind == "present" and text:
            return True
        if marker.kind == "equals" and text.lower() == marker.value.lower():
            return True
        if marker.kind == "bitmask" and _bit_set(text, marker.mask):
            return True
    return False


def _bit_set(text: str, mask: int) -> bool:
    """A flags word read as a (signed or wider) integer: Python's `&` on a negative number
    works on its two's complement, so AD's 0x80000002 given as -2147483646 has bit 0x2."""
    return bool(int(text) & mask)


ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
_FILETIME_NEVER = 0x7FFFFFFFFFFFFFFF


def _parse_expiry(text: str, form: str) -> datetime | None:
    """The moment access ends, None for never. A count of days or ticks past the last date
    a datetime holds (9999-12-31) is read as never: AD allows dates to the year 30828, and
    nobody's access ending after 9999 is an end worth holding."""
    if form == "days":
        days = int(text)  # shadow(5): 0 and -1 mean no expiry
        if days <= 0:
            return None
        return _after(_EPOCH, days=days)
    if form == "filetime":
        ticks = int(text)
        if ticks <= 0 or ticks >= _FILETIME_NEVER:
            return None
        return _after(_FILETIME_EPOCH, microseconds=ticks // 10)
    return parse_generalized_time(text)


def _after(epoch: datetime, **amount: int) -> datetime | None:
    """epoch + timedelta(**amount), None (never) when that is past 9999-12-31."""
    try:
        return epoch + timedelta(**amount)
    except OverflowError:
        return None


def parse_generalized_time(text: str) -> datetime:
    """RFC 4517 GeneralizedTime (YYYYmmddHH[MM[SS]][.frac](Z|+hhmm|-hhmm)) in UTC."""
    body, zone = text, "Z"
    if text.endswith(("Z", "z")):
        body = text[:-1]
    elif len(text) > 5 and text[-5] in "+-":
        body, zone = text[:-5], text[-5:]
    else:
        raise ValueError(text)
    body = body.split(".")[0].split(",")[0]
    if len(body) not in (10, 12, 14) or not body.isdigit():
        raise ValueError(text)
    body = body.ljust(14, "0")
    moment = datetime.strptime(body, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    if zone != "Z":
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
        moment = moment - offset if zone[0] == "+" else moment + offset
    return moment


def map_person(dn: str, raw: Attributes, mapping: AttributeMapping) -> Person:
    """The person an entry describes, or EntryProblem saying what is wrong with it."""
    return PersonReader(mapping).person(dn, raw)


@dataclass(slots=True, frozen=True)
class _Layout:
    """Where a mapping's attributes are in entries whose names come in one order: the key
    `_values` would find for each (None when the entry lacks it)."""

    stable_id: str | None
    email: str | None
    email_keys: tuple[str, ...]  # every key of the email attribute, `email` first
    username: str | None
    names: tuple[tuple[str, str], ...]  # (attribute, key) of the name attributes present
    given_name: str | None
    surname: str | None
    change: str | None
    disabled: tuple[tuple[DisabledMarker, str], ...]
    # flags words (bitmask markers) the entry lacks: every account carries its
    # userAccountControl, so one missing was hidden from us and its state is unknown
    missing_flags: tuple[str, ...]
    expiry: tuple[tuple[ExpiryAttribute, str], ...]
    # Active Directory writes accountExpires (filetime) on every account, 0 or 2^63-1 for
    # never: an entry without it had it hidden from us, and its end date is unknown
    unread_expiry: bool


class PersonReader:
    """map_person for the many entries of one read. Where each attribute is in an entry
    (names match case-insensitively, and an attribute the entry lacks cost a scan of all
    its names) is worked out once per order of attribute names the server returns, which is
    one or a few per directory, instead of once per entry and attribute."""

    # A directory whose entries came in ever new orders would fill the cache; past this
    # many it starts again (each order costs one scan to learn).
    MAX_LAYOUTS = 256

    def __init__(self, mapping: AttributeMapping) -> None:
        self.mapping = mapping
        self._layouts: dict[tuple[str, ...], _Layout] = {}

    def person(self, dn: str, raw: Attributes) -> Person:
        """The person an entry describes, or EntryProblem saying what is wrong with it."""
        names = tuple(raw)
        layout = self._layouts.get(names)
        if layout is None:
            layout = self._learn(names, raw)
        mapping = self.mapping
        external_id = _stable_id(dn, raw, layout.stable_id, mapping)
        email = _decoded(dn, raw, layout.email, mapping.email, external_id)
        if not email or "@" not in email or len(email) > EMAIL_MAX:
            raise EntryProblem(dn, f"no usable email in {mapping.email}", external_id)
        username = _decoded(dn, raw, layout.username, mapping.username, external_id)
        name = ""
        for attribute, key in layout.names:
            name = _decoded(dn, raw, key, attribute, external_id)
            if name:
                break
        if not name:
            given = _decoded(dn, raw, layout.given_name, mapping.given_name, external_id)
            surname = _decoded(dn, raw, layout.surname, mapping.surname, external_id)
            name = f"{given} {surname}".strip() or username or email
        if layout.missing_flags:
            raise EntryProblem(
                dn,
                f"the entry has no {layout.missing_flags[0]} (unreadable by the bind account?), "
                "so whether the account is disabled is unknown; nothing is changed for it",
                external_id,
            )
        return Person(
            external_id=external_id,
            dn=dn,
            username=username,
            email=email,
            name=name[:200],
            disabled=bool(layout.disabled) and _disabled(dn, raw, layout.disabled, external_id),
            change=_decoded(dn, raw, layout.change, mapping.change_attribute, external_id),
            access_ends_at=None
            if layout.unread_expiry
            else _ends(dn, raw, layout.expiry, external_id)
            if layout.expiry
            else "",
            emails=_all_emails(raw, layout.email_keys),
        )

    def _learn(self, names: tuple[str, ...], raw: Attributes) -> _Layout:
        mapping = self.mapping

        def key(name: str) -> str | None:
            return _key(raw, name)

        email_keys = tuple(_keys(raw, mapping.email))
        layout = _Layout(
            stable_id=key(mapping.stable_id),
            email=email_keys[0] if email_keys else None,
            email_keys=email_keys,
            username=key(mapping.username),
            names=tuple((a, k) for a in mapping.name if (k := key(a)) is not None),
            given_name=key(mapping.given_name),
            surname=key(mapping.surname),
            change=key(mapping.change_attribute),
            disabled=tuple((m, k) for m in mapping.disabled if (k := key(m.attribute)) is not None),
            missing_flags=tuple(
                m.attribute
                for m in mapping.disabled
                if m.kind == "bitmask" and key(m.attribute) is None
            ),
            expiry=tuple((e, k) for e in mapping.expiry if (k := key(e.attribute)) is not None),
            unread_expiry=any(
                e.format == "filetime" and key(e.attribute) is None for e in mapping.expiry
            ),
        )
        if len(self._layouts) >= self.MAX_LAYOUTS:
            self._layouts.clear()
        self._layouts[names] = layout
        return layout


def _key(attrs: Attributes, name: str) -> str | None:
    """The first key under which an entry holds an attribute (`_keys`), None when none."""
    if name in attrs:
        return name
    keys = _keys(attrs, name)
    return keys[0] if keys else None


def _keys(attrs: Attributes, name: str) -> list[str]:
    """Every key under which an entry holds an attribute: its name in any case (servers may
    spell it in another case than we asked), then each description with options
    (`memberUid;x-foo`, `mail;lang-en`: subtypes, returned when the attribute is asked for,
    RFC 4512 section 2.5), those in the order of their options, whatever order the server
    lists them in: an attribute's first value is the same from one read to the next. The
    one place attribute names are matched."""
    lowered, size = name.lower(), len(name)
    plain: list[str] = []
    tagged: list[str] = []
    for key in attrs:
        # Mostly a name the entry does not have: the length rules out most keys unlowered.
        if len(key) == size:
            if key == name or key.lower() == lowered:
                plain.append(key)
        elif len(key) > size and key[size] == ";" and key[:size].lower() == lowered:
            tagged.append(key)
    return plain + sorted(tagged, key=str.lower) if tagged else plain


def _stable_id(dn: str, raw: Attributes, key: str | None, mapping: AttributeMapping) -> str:
    values = raw[key] if key is not None else None
    if not values or not values[0]:
        raise EntryProblem(dn, f"the entry has no {mapping.stable_id} (the stable id)")
    value = values[0]
    if mapping.stable_id_format == "guid":
        if len(value) != 16:
            raise EntryProblem(dn, f"{mapping.stable_id} is not a 16-byte GUID")
        return str(uuid.UUID(bytes_le=value))
    try:
        return value.decode("utf-8").strip().lower()
    except UnicodeDecodeError:
        raise EntryProblem(dn, f"{mapping.stable_id} is not valid UTF-8") from None


def _group_id(dn: str, raw: Attributes, mapping: AttributeMapping) -> str:
    """A group's stable id, "" when it has none we can read: such a group is still found by
    its name or DN, as before its id was kept."""
    try:
        return _stable_id(dn, raw, _key(raw, mapping.stable_id), mapping)
    except EntryProblem:
        return ""


def _all_emails(raw: Attributes, keys: tuple[str, ...]) -> tuple[str, ...]:
    """Every value of the email attribute, under each of its descriptions (`keys`), as its
    key (connectors.email_address); () for one."""
    if not keys:
        return ()
    values = raw[keys[0]] if len(keys) == 1 else [value for key in keys for value in raw[key]]
    if len(values) < 2:
        return ()
    return tuple(email_key(value.decode("utf-8", errors="replace")) for value in values)


def _decoded(dn: str, raw: Attributes, key: str | None, name: str, external_id: str) -> str:
    """_text, with the attribute's key in the entry already known."""
    return "" if key is None else _first_text(dn, raw[key], name, external_id)


def _disabled(
    dn: str, raw: Attributes, markers: tuple[tuple[DisabledMarker, str], ...], external_id: str
) -> bool:
    for marker, key in markers:
        try:
            if _marked(marker, raw[key]):
                return True
        except ValueError:
            raise EntryProblem(
                dn,
                f"{marker.attribute} is not an integer, so whether the account is disabled "
                "is unknown; nothing is changed for it",
                external_id,
            ) from None
    return False


def _ends(
    dn: str, raw: Attributes, expiry: tuple[tuple[ExpiryAttribute, str], ...], external_id: str
) -> str:
    """The earliest date the entry's expiry attributes give, as ISO 8601 UTC; "" if none."""
    ends: list[datetime] = []
    for attribute, key in expiry:
        text = _decoded(dn, raw, key, attribute.attribute, external_id)
        if not text:
            continue
        try:
            moment = _parse_expiry(text, attribute.format)
        except (ValueError, OverflowError):
            raise EntryProblem(
                dn, f"{attribute.attribute} {text!r} is not a {attribute.format} date", external_id
            ) from None
        if moment is not None:
            ends.append(moment)
    return min(ends).strftime(ISO_FORMAT) if ends else ""


# NameAndOptionalUID (RFC 4517 section 3.3.21), uniqueMember's syntax: a DN, then optionally
# `#` and a bit string naming one incarnation of the entry. A `#` inside a DN value is escaped
# (or hex-encoded) by every directory we read, so an unescaped one before a bit string at the
# end is this suffix.
_OPTIONAL_UID = re.compile(r"(?<!\\)#'[01]*'B\s*$")


def member_dn(value: str) -> str:
    """The DN a member value names, its optional UID (`#'0101'B`) dropped."""
    return _OPTIONAL_UID.sub("", value) if "#" in value else value


def usernames(raw: Attributes, mapping: AttributeMapping) -> list[str]:
    """An entry's usernames as memberUid values name them: trimmed, lower-cased (uid
    matches in any case); undecodable values are no name."""
    found = []
    for value in _values(raw, mapping.username) or []:
        try:
            found.append(value.decode("utf-8").strip().lower())
        except UnicodeDecodeError:
            continue
    return found


def map_group(
    dn: str,
    raw: Attributes,
    mapping: AttributeMapping,
    dns_by_username: dict[str, list[str]] | None = None,
) -> Group:
    """The group an entry describes; members named by username (memberUid) are the
    normalised DNs `dns_by_username` gives them (none when nobody has that username)."""
    attrs = raw
    members: list[str] = []
    for attribute in mapping.group_members:
        by_username = attribute.lower() in USERNAME_MEMBERS
        for value in _values(attrs, attribute) or []:
            try:
                if by_username:
                    name = value.decode("utf-8").strip().lower()
                    members.extend((dns_by_username or {}).get(name, ()))
                    continue
                # Interned: the same string as the person's DN the reconciler holds (a
                # hundred thousand members are otherwise 13 MB of copies).
                members.append(sys.intern(normalize_dn(member_dn(value.decode("utf-8")))))
            except UnicodeDecodeError:
                raise EntryProblem(dn, f"a {attribute} value is not valid UTF-8") from None
    return Group(
        dn=dn,
        key=normalize_dn(dn),
        name=_text(dn, attrs, mapping.group_name, None) or dn,
        members=members,
        change=_text(dn, attrs, mapping.change_attribute, None),
        external_id=_group_id(dn, attrs, mapping),
    )


def expand_groups(groups: dict[str, Group]) -> dict[str, Collection[str]]:
    """Each group's members with nested groups expanded (cycles tolerated); DNs normalised.

    A group with no group among its members is given as its own member list, not copied
    into a set: a directory's big groups are flat, and a copy of 150,000 members is 8 MB.

    Without recursion, and each group expanded once: the groups of a cycle (strongly
    connected components, Tarjan's algorithm, iterative) share one member set, computed
    after the groups they contain. A chain of thousands of nested groups, or groups nested
    in a lattice (every group of a level in every group of the level above: a number of
    paths that doubles with each level), costs time in the groups and members read, not in
    the paths through them.
    """
    nested: dict[str, list[str]] = {}
    for key, group in groups.items():
        inner = [member for member in group.members if member in groups]
        if inner:
            nested[key] = list(dict.fromkeys(inner))
    expanded: dict[str, Collection[str]] = {}
    for component in _components(groups, nested):
        if len(component) == 1 and component[0] not in nested:
            expanded[component[0]] = groups[component[0]].members
            continue
        inside = set(component)
        result: set[str] = set()
        for key in component:
            result.update(member for member in groups[key].members if member not in groups)
            for child in nested.get(key, ()):
                if child not in inside:
                    result.update(expanded[child])
        for key in component:
            expanded[key] = result
    return expanded


def _components(groups: dict[str, Group], nested: dict[str, list[str]]) -> list[list[str]]:
    """The strongly connected components of the nesting graph, each after every component
    its groups contain (Tarjan's order), with an explicit stack instead of recursion."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in groups:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            key, position = work.pop()
            if position == 0:
                index[key] = low[key] = len(index)
                stack.append(key)
                on_stack.add(key)
            children = nested.get(key, ())
            descended = False
            while position < len(children):
                child = children[position]
                position += 1
                if child not in index:
                    work.append((key, position))
                    work.append((child, 0))
                    descended = True
                    break
            if descended:
                continue
            # every child is done: those still on the stack are in this group's component
            for child in children:
                if child in on_stack and child != key:
                    low[key] = min(low[key], low[child])
            if low[key] == index[key]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == key:
                        break
                found.append(component)
    return found


def later_change(current: str, candidate: str, kind: str) -> str:
    """The later of two change markers (generalized times compare as text, USNs as numbers)."""
    if not candidate:
        return current
    if not current:
        return candidate
    if kind == "counter":
        try:
            return candidate if int(candidate) > int(current) else current
        except ValueError:
            return current
    return max(current, candidate)


def changed_since_filter(mapping: AttributeMapping, watermark: str, *, after: bool = False) -> str:
    """The filter term that selects entries changed at or after the watermark.

    With `after`, entries changed exactly at the watermark are left out where that is safe:
    an OpenLDAP entryCSN names one change, so the entry that set the watermark was read
    already (a one-second modifyTimestamp may be shared with a later change, so it keeps >=).
    """
    if mapping.change_kind == "counter":
        return f"({mapping.change_attribute}>={escape_filter_value(str(int(watermark) + 1))})"
    attribute, value = mapping.change_attribute, escape_filter_value(watermark)
    if after and attribute.lower() == "entrycsn":
        return f"(&({attribute}>={value})(!({attribute}={value})))"
    return f"({attribute}>={value})"
