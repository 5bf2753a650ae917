"""Email addresses as the key of a person, and as a proof of who signed in.

`email_key` is the one key every source finds a person by (SCIM, LDAP, IdP events,
invitations, OpenID Connect sign-in, the admin API, Odock's bridge), so that one address
reaches one person however a source spells it:
- whitespace around it dropped;
- the local part in NFKC and lower case: composed and decomposed "é" (RFC 6532 prefers NFC),
  "ANN" in fullwidth letters (U+FF21...) and "ann" (RFC 8265's width and case mapping) are
  one key. RFC 5321 lets a server treat the local part as case-sensitive; no identity
  provider or mail service in use does, and two people "Ann@" and "ann@" would be one mailbox;
- the domain as IDNA reads it (UTS #46): an A-label ("xn--bcher-kva") as the U-label it
  encodes ("bücher"), the ideographic full stops as dots, NFKC and lower case.

`same_address` says whether an address someone proved (a verified sign-in) is a person's: the
same domain by IDNA, and the same local part but for the case of ASCII letters. Stricter than
the key on purpose: a look-alike a provider verified (the Kelvin sign U+212A for "K", a
fullwidth letter) finds the person it imitates by the key, and is then not taken for them.
"""

from __future__ import annotations

import unicodedata

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})  # UTS #46 label separators
_ACE = "xn--"


def email_key(address: str) -> str:
    """The key of a person's address (see the module): the same for every source."""
    address = address.strip()
    if address.isascii():
        # Nearly every address (a directory keys a hundred thousand): the string itself when
        # it is lower case already, so that a read holding one per person shares it.
        lowered = address if address.islower() else address.lower()
        if _ACE not in lowered:
            return lowered
    local, at, domain = address.rpartition("@")
    if not at:
        return _nfkc_lower(address)
    return f"{_nfkc_lower(local)}@{domain_key(domain)}"


def domain_key(domain: str) -> str:
    """A domain as IDNA compares it: U-labels, NFKC, lower case."""
    labels = _nfkc_lower(domain.translate(_DOTS)).split(".")
    return ".".join(_u_label(label) for label in labels)


def same_address(proved: str, known: str) -> bool:
    """Whether `proved` (an address a provider verified) is the `known` address."""
    proved_local, _, proved_domain = proved.strip().rpartition("@")
    known_local, _, known_domain = known.strip().rpartition("@")
    return proved_local.translate(_ASCII_LOWER) == known_local.translate(
        _ASCII_LOWER
    ) and domain_key(proved_domain) == domain_key(known_domain)


def _nfkc_lower(text: str) -> str:
    return text.lower() if text.isascii() else unicodedata.normalize("NFKC", text).lower()


def _u_label(label: str) -> str:
    if not label.startswith(_ACE):
        return label
    try:
        return _nfkc_lower(label[len(_ACE) :].encode("ascii").decode("punycode"))
    except (UnicodeError, ValueError):
        return label  # not a valid A-label: compared as written
