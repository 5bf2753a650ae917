"""Names that are also keys: a team's name, the directory and IdP group names mapped to teams
and roles, a SCIM userName.

One rule for every source (SCIM, LDAP, IdP events, the admin API, the CLI), so that one name
reaches one team however a source spells it:
- stored in Unicode's composed form (NFC): "Café" typed with a decomposed "é" ("e" and
  U+0301, as macOS and some LDAP servers send it) is the same name as the composed one
  (RFC 8265 compares names in NFC; the IdPs send NFC);
- compared in lower case (str.lower, as every source has matched team names): "Admins" and
  "admins" are one team. Not NFKC: unlike an email's local part, a name in fullwidth letters
  is shown as typed, and compatibility forms are a question of how a name reads, not which
  team it is.
The callers trim the name first (the key of "  Admins " is that of "Admins").
"""

from __future__ import annotations

import unicodedata


def composed(text: str) -> str:
    """The text in Unicode's composed form (NFC), as a name that is a key is stored."""
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def name_key(name: str) -> str:
    """The key of a (trimmed) name: composed, then lower case."""
    if name.isascii():
        return name if name.islower() else name.lower()
    return unicodedata.normalize("NFC", name).lower()
