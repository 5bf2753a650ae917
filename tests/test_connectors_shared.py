"""The shared outbound pieces: SMTP sending and Standard Webhooks signatures."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from connectors import email, signed_webhooks
from connectors.signed_webhooks import SignatureRejected


def test_email_reaches_the_loopback_smtp_server_with_text_and_html(settings, mailbox):
    config = email.SmtpConfig(
        host=settings.smtp_host, port=settings.smtp_port, sender=settings.smtp_from
    )
    email.send(
        config, email.Email(to="ada@example.com", subject="Hello", text="plain", html="<p>rich</p>")
    )
    [message] = mailbox.to("ada@example.com")
    assert message["Subject"] == "Hello"
    assert message.get_body(("plain",)).get_content().strip() == "plain"
    assert "<p>rich</p>" in message.get_body(("html",)).get_content()


def test_email_to_a_closed_port_is_a_retryable_failure():
    config = email.SmtpConfig(host="127.0.0.1", port=1, sender="x@example.com", timeout=1)
    with pytest.raises(email.EmailUnavailable):
        email.send(config, email.Email(to="a@example.com", subject="s", text="t"))


# The reference vector published with the Standard Webhooks specification.
REF_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
REF_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
REF_TIMESTAMP = 1614265330
REF_BODY = b'{"test": 2432232314}'
REF_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signature_matches_the_standard_webhooks_reference_vector():
    headers = signed_webhooks.sign(
        REF_SECRET,
        msg_id=REF_ID,
        body=REF_BODY,
        timestamp=datetime.fromtimestamp(REF_TIMESTAMP, UTC),
    )
    assert headers["webhook-signature"] == REF_SIGNATURE


def test_verify_accepts_any_current_secret_and_refuses_the_rest():
    old, new = signed_webhooks.new_signing_secret(), signed_webhooks.new_signing_secret()
    headers = signed_webhooks.sign(old, msg_id="msg_1", body=b"{}")
    assert signed_webhooks.verify([new, old], body=b"{}", headers=headers) == "msg_1"
    with pytest.raises(SignatureRejected, match="no matching signature"):
        signed_webhooks.verify([new], body=b"{}", headers=headers)


class _SlowClock(datetime):
    """A clock a second further on at every reading (as if each signature took a second)."""

    readings = 0

    @classmethod
    def now(cls, tz=None):  # type: ignore[no-untyped-def]
        cls.readings += 1
        return datetime.now(tz) + timedelta(seconds=cls.readings)


def test_every_secret_of_a_rotation_signs_the_one_timestamp_sent(monkeypatch):
    """Signed with the old and the new secret (a rotation), each alone verifies: the signatures
    share the timestamp in the header, even when the clock moves on between them."""
    old, new = signed_webhooks.new_signing_secret(), signed_webhooks.new_signing_secret()
    with monkeypatch.context() as clock:
        clock.setattr(signed_webhooks, "datetime", _SlowClock)
        headers = signed_webhooks.sign_all([old, new], msg_id="msg_2", body=b"{}")
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert signed_webhooks.verify([secret], body=b"{}", headers=headers) == "msg_2"
    assert signed_webhooks.sign_all([], msg_id="msg_3", body=b"{}") == {}


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda h: h.pop("webhook-signature"), "missing"),
        (lambda h: h.update({"webhook-signature": "garbage"}), "no matching signature"),
        (lambda h: h.update({"webhook-signature": "v1,!!notbase64"}), "no matching signature"),
        (lambda h: h.update({"webhook-timestamp": "yesterday"}), "not a number"),
        (lambda h: h.update({"webhook-timestamp": str(int(time.time()) - 3600)}), "tolerance"),
    ],
)
def test_verify_refuses_malformed_and_stale_headers(mutate, reason):
    secret = signed_webhooks.new_signing_secret()
    headers = signed_webhooks.sign(secret, msg_id="msg_2", body=b"{}")
    mutate(headers)
    with pytest.raises(SignatureRejected, match=reason):
        signed_webhooks.verify([secret], body=b"{}", headers=headers)


def test_verify_refuses_a_tampered_body():
    secret = signed_webhooks.new_signing_secret()
    headers = signed_webhooks.sign(
        secret, msg_id="msg_3", body=b'{"a":1}', timestamp=datetime.now(UTC) - timedelta(seconds=5)
    )
    with pytest.raises(SignatureRejected):
        signed_webhooks.verify([secret], body=b'{"a":2}', headers=headers)
