"""What a string names as a SCIM id.

odock-sync renders ids as UUIDs in RFC 4122's lower-case, hyphenated form. `id` is
caseExact (RFC 7643 section 3.1), so only that exact text names a resource: its upper case,
`{…}`, `urn:uuid:…` or the 32 bare hex digits are other strings, as they are to any SCIM
server that keeps ids as text. A reference the schema publishes `caseExact: false`
(`members.value`, RFC 7643 section 8.7.1) names it in any case, still only in that form.
"""

from __future__ import annotations

import uuid
from typing import Any


def named_id(value: object, *, case_exact: bool = True) -> uuid.UUID | None:
    """The UUID `value` is the rendered id of, else None."""
    if not isinstance(value, str):
        return None
    text = value if case_exact else value.lower()
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        return None
    return parsed if str(parsed) == text else None


def id_key(value: Any, *, case_exact: bool = True) -> Any:
    """What a value that refers to an id compares as: the id it names, as rendered, else the
    value itself (which then equals no id). `members` values are told apart by it, so a
    member named in upper case is the member named in lower case, on every PATCH form."""
    named = named_id(value, case_exact=case_exact)
    return value if named is None else str(named)
