"""One email key for every source (connectors/email_address.py): SCIM, LDAP, IdP events,
invitations, OpenID Connect sign-in and the admin API find a person by the same key, and a
verified sign-in is the person's address by one rule."""

from __future__ import annotations

import pytest

from connectors.email_address import domain_key
from models.entities.user import email_key, same_email

# (one spelling, another): one key
ONE_KEY = [
    ("Ann@Example.com", "ann@example.com"),
    (" ann@example.com\t", "ann@example.com"),
    ("jose\u0301@corp.example", "jos\u00e9@corp.example"),  # NFD and NFC (RFC 6532)
    ("\uff21\uff2e\uff2e@example.com", "ann@example.com"),  # fullwidth (RFC 8265 width map)
    ("ann@xn--bcher-kva.example", "ann@b\u00fccher.example"),  # A-label and U-label (IDNA)
    ("ann@B\u00dcCHER.example", "ann@b\u00fccher.example"),
    ("ann@b\u00fccher\u3002example", "ann@b\u00fccher.example"),  # ideographic full stop
    ("ann@EXAMPLE.xn--p1ai", "ann@example.\u0440\u0444"),
]
TWO_KEYS = [
    ("ann@example.com", "anne@example.com"),
    ("ann@example.com", "ann@example.org"),
    ("ann@xn--bcher-kva.example", "ann@bucher.example"),
    ("stra\u00dfe@example.de", "strasse@example.de"),  # lower case, not case folding (RFC 8265)
]


@pytest.mark.parametrize(("one", "other"), ONE_KEY)
def test_spellings_of_one_address_have_one_key(one: str, other: str) -> None:
    assert email_key(one) == email_key(other)


@pytest.mark.parametrize(("one", "other"), TWO_KEYS)
def test_other_addresses_have_other_keys(one: str, other: str) -> None:
    assert email_key(one) != email_key(other)


def test_an_ascii_key_is_the_lower_case_address() -> None:
    assert email_key(" Ann.Lee+x@Corp.Example ") == "ann.lee+x@corp.example"
    assert domain_key("xn--not-punycode-!.example") == "xn--not-punycode-!.example"


@pytest.mark.parametrize(
    ("signed_in", "known", "same"),
    [
        ("ann@example.com", "Ann@Example.com", True),
        ("ann@xn--bcher-kva.example", "Ann@b\u00fccher.example", True),
        ("ann@B\u00dcCHER.example", "ann@b\u00fccher.example", True),
        ("\u212aim@example.com", "kim@example.com", False),  # one key, not the same address
        ("\uff4bim@example.com", "kim@example.com", False),
    ],
)
def test_a_verified_address_is_the_persons_by_idna_and_ascii_case(
    signed_in: str, known: str, same: bool
) -> None:
    assert same_email(signed_in, known) is same
    assert email_key(signed_in) == email_key(known)
