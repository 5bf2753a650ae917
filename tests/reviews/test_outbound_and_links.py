"""Outbound URL policy and signed acknowledgement links."""

from datetime import timedelta

import pytest

from connectors.outbound import UnsafeUrl, UrlPolicy, check_url
from models.base import utcnow
from models.errors import Forbidden, InvalidInput
from models.signed_links import make_token, read_token

STRICT = UrlPolicy()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://127.0.0.1/x", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("http://user:pw@127.0.0.1/x", "credentials"),
        ("https://token@93.184.216.34/x", "credentials"),
        ("http://10.1.2.3/hook", "private"),
        ("http://192.168.0.10/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[fd00::1]/hook", "private"),
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://0.0.0.0/hook", "not allowed"),
        ("http://:80/hook", "no host"),
        ("http://127.0.0.1:99999/x", "malformed"),
    ],
)
def test_unsafe_urls_are_refused_with_a_reason(url, reason):
    with pytest.raises(UnsafeUrl) as refused:
        check_url(url, STRICT)
    assert reason in refused.value.reason


def test_settings_can_allow_loopback_and_private_addresses():
    assert check_url("http://127.0.0.1:8080/h", UrlPolicy(allow_loopback=True))
    assert check_url("http://10.0.0.5/h", UrlPolicy(allow_private=True))
    assert check_url("https://93.184.216.34/h", STRICT)
    with pytest.raises(UnsafeUrl):
        check_url("http://10.0.0.5/h", UrlPolicy(allow_loopback=True))


def test_a_signed_link_round_trips_and_refuses_tampering_expiry_and_other_purposes():
    token = make_token(
        "k1", purpose="review.ack", subject="r1", actor="a@x", lifetime=timedelta(hours=1)
    )
    claim = read_token("k1", token, purpose="review.ack")
    assert (claim.subject, claim.actor) == ("r1", "a@x")

    with pytest.raises(Forbidden):
        read_token("another-key", token, purpose="review.ack")
    with pytest.raises(Forbidden):
        read_token("k1", token, purpose="something.else")
    body, _, sig = token.partition(".")
    with pytest.raises(Forbidden):
        read_token("k1", body[:-2] + "xx." + sig, purpose="review.ack")
    expired = make_token(
        "k1",
        purpose="review.ack",
        subject="r1",
        actor="a@x",
        lifetime=timedelta(hours=1),
        issued_at=utcnow() - timedelta(hours=2),
    )
    with pytest.raises(Forbidden):
        read_token("k1", expired, purpose="review.ack")
    for garbage in ("", "nodot", "a.b", "!!!.???"):
        with pytest.raises((InvalidInput, Forbidden)):
            read_token("k1", garbage, purpose="review.ack")
