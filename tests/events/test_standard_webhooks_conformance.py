"""Standard Webhooks, differentially: the `standardwebhooks` reference verifier is the oracle.

Whatever a sender can put in the three headers and the body, our verifier accepts exactly the
deliveries the reference accepts; the receiver stores those and answers the rest with problem
JSON, storing nothing.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from connectors import signed_webhooks
from connectors.signed_webhooks import SignatureRejected
from models.actions import event_hooks
from models.entities import ReceivedDelivery
from models.errors import InvalidInput
from tests.support import factories as f

NOW = datetime(2026, 5, 4, 12, 0, 0, tzinfo=UTC)
TOLERANCE = 300  # the reference's five minutes, and our default


def _reference_accepts(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        Webhook(secret).verify(body, headers, json_parse=False)
    except Exception:  # the reference raises several types; any is a refusal
        return False
    return True


def _we_accept(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        signed_webhooks.verify([secret], body=body, headers=headers, tolerance_seconds=TOLERANCE)
    except SignatureRejected:
        return False
    return True


def _secret_spellings(raw: bytes) -> list[str]:
    """One key as senders write it: with and without whsec_, padded and not."""
    padded = base64.b64encode(raw).decode()
    return [f"whsec_{padded}", padded, f"whsec_{padded.rstrip('=')}", padded.rstrip("=")]


def _v1(secret: str, msg_id: str, seconds: int, body: bytes) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return Webhook(secret).sign(msg_id=msg_id, timestamp=moment, data=body)


def _reserialised(body: bytes) -> bytes:
    try:
        return json.dumps(json.loads(body), indent=1).encode()
    except ValueError:  # not JSON (UnicodeDecodeError is one too): nothing to re-serialise
        return body


OFFSETS = st.sampled_from([-301, -300, -299, -1, 0, 1, 299, 300, 301, -86400, 86400])
TIMESTAMP_SPELLINGS = st.sampled_from(
    ["{s}", "{s}.0", "{s}.5", "{s}.999", " {s} ", "+{s}", "{s}e0", "0x{s}", "{s}abc", "", "nan"]
)
BODIES = st.one_of(
    st.binary(max_size=64),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3).map(
        lambda d: json.dumps(d).encode()
    ),
    st.just('{"user":"j\u00f6rg"}'.encode()),
)


@st.composite
def deliveries(draw: st.DrawFn, raw_key: bytes | None = None) -> tuple[str, bytes, dict[str, str]]:
    raw_key = raw_key or draw(st.binary(min_size=24, max_size=64))
    spellings = _secret_spellings(raw_key)
    receiver_secret = draw(st.sampled_from(spellings))
    sender_secret = draw(st.sampled_from([*spellings, f"whsec_{'A' * 43}="]))
    msg_id = draw(st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=20))
    seconds = int(NOW.timestamp()) + draw(OFFSETS)
    body = draw(BODIES)
    signed_body = body
    if draw(st.booleans()):  # the sender signed another serialisation of the same JSON
        signed_body = _reserialised(body)
    good = _v1(sender_secret, msg_id, seconds, signed_body)
    digest = good.removeprefix("v1,")
    zeros = base64.b64encode(bytes(32)).decode()
    variants = [good, f"v2,{digest}", f"v1a,{digest}", f"v1,{digest.rstrip('=')}", f"V1,{digest}"]
    variants += [digest, "", "v1,garbage", f"v1,{zeros}"]
    entries = draw(st.lists(st.sampled_from(variants), max_size=4))
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": draw(TIMESTAMP_SPELLINGS).format(s=seconds),
        "webhook-signature": " ".join(entries),
    }
    dropped = draw(st.sets(st.sampled_from(sorted(headers)), max_size=1))
    cased = {
        draw(st.sampled_from([name, name.title(), name.upper()])): value
        for name, value in headers.items()
        if name not in dropped
    }
    return receiver_secret, body, cased


@examples(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deliveries())
def test_we_accept_exactly_what_the_reference_verifier_accepts(delivery):
    secret, body, headers = delivery
    with time_machine.travel(NOW, tick=False):
        reference = _reference_accepts(secret, body, headers)
        assert _we_accept(secret, body, headers) == reference
    if signed_webhooks.malformed(headers):  # refused on the head, before the body is read
        assert not reference


@pytest.mark.parametrize("offset", [-TOLERANCE, TOLERANCE, -TOLERANCE - 1, TOLERANCE + 1])
def test_the_tolerance_edges_agree_with_the_reference(offset):
    secret = signed_webhooks.new_signing_secret()
    seconds = int(NOW.timestamp()) + offset
    headers = {
        "webhook-id": "msg_edge",
        "webhook-timestamp": str(seconds),
        "webhook-signature": _v1(secret, "msg_edge", seconds, b"{}"),
    }
    with time_machine.travel(NOW, tick=False):
        accepted = _we_accept(secret, b"{}", headers)
        assert accepted == _reference_accepts(secret, b"{}", headers)
    assert accepted is (abs(offset) <= TOLERANCE)


def test_a_correctly_signed_body_that_is_not_utf8_passes_the_signature_check():
    """The reference verifies the bytes as received; whether they are JSON is the body's
    check (a 400 invalid_json), not the signature's (a 401 that sends the sender hunting for
    a secret problem it does not have)."""
    secret = signed_webhooks.new_signing_secret()
    body = b'{"name": "J\xf6rg"}'  # Latin-1
    seconds = int(NOW.timestamp())
    headers = {
        "webhook-id": "msg_latin1",
        "webhook-timestamp": str(seconds),
        "webhook-signature": _v1(secret, "msg_latin1", seconds, body),
    }
    with time_machine.travel(NOW, tick=False):
        assert _reference_accepts(secret, body, headers)
        assert signed_webhooks.verify([secret], body=body, headers=headers) == "msg_latin1"


def test_we_sign_what_the_reference_verifies_for_every_secret_spelling():
    raw = bytes(range(32))
    body = '{"user": "j\u00f6rg"}'.encode()
    for secret in _secret_spellings(raw):
        headers = signed_webhooks.sign(secret, msg_id="msg_out", body=body, timestamp=NOW)
        with time_machine.travel(NOW + timedelta(seconds=5), tick=False):
            for verifier in _secret_spellings(raw):
                assert _reference_accepts(verifier, body, headers), (secret, verifier)


def test_what_we_sign_with_several_secrets_verifies_with_each_by_the_reference():
    old, new = signed_webhooks.new_signing_secret(), signed_webhooks.new_signing_secret()
    body = b'{"type": "review.opened"}'
    headers = signed_webhooks.sign_all([old, new], msg_id="msg_rotating", body=body)
    assert headers["webhook-signature"].count(" ") == 1
    for secret in (old, new):
        Webhook(secret).verify(body, headers)


# The receiver: what the reference accepts is stored once, the rest refused as problem JSON


def _stored(session) -> list[str]:
    ids = session.scalars(select(ReceivedDelivery.delivery_id)).all()
    session.rollback()
    return list(ids)


@pytest.mark.parametrize("spelling", range(4))
def test_a_secret_in_any_spelling_the_reference_reads_is_taken(client, session, settings, spelling):
    raw = bytes(range(7, 39))
    org = f.make_org(session)
    event_hooks.add_signing_secret(
        session,
        organisation=org,
        secret_key=settings.secret_key,
        actor=f.SETUP,
        secret=_secret_spellings(raw)[spelling],
    )
    session.commit()
    sender = _secret_spellings(raw)[3 - spelling]  # the sender spells it another way
    body = json.dumps({"id": "e1", "type": "user.deactivated"}).encode()
    headers = signed_webhooks.sign(sender, msg_id=f"msg_spelling_{spelling}", body=body)
    response = client.post(f"/hooks/events/{org.slug}", data=body, headers=headers)
    assert response.status_code == 202, response.json
    assert _stored(session) == [f"msg_spelling_{spelling}"]


@pytest.mark.parametrize(
    "secret",
    [
        "whsec_" + "!" * 40,  # no base64 at all: the reference reads an empty key
        "whsec_" + "A" * 45,  # a length no base64 has
        "whsec_" + "A" * 24,  # 18 bytes, fewer than the 24 asked for
        "whsec_" + "é" * 40,  # not ASCII: base64 cannot read it (it was a 500)
    ],
)
def test_a_secret_that_could_never_verify_is_refused_when_given(session, settings, secret):
    org = f.make_org(session)
    with pytest.raises(InvalidInput, match="base64"):
        event_hooks.add_signing_secret(
            session, organisation=org, secret_key=settings.secret_key, actor=f.SETUP, secret=secret
        )


def test_a_signed_body_that_is_not_utf8_is_invalid_json_not_a_bad_signature(
    client, session, hooked, unchanged
):
    body = b'{"id": "e1", "type": "user.updated", "changes": {"name": "J\xf6rg"}}'
    seconds = int(datetime.now(UTC).timestamp())
    headers = {
        "webhook-id": "msg_latin1",
        "webhook-timestamp": str(seconds),
        "webhook-signature": _v1(hooked.signing_secret, "msg_latin1", seconds, body),
    }
    unchanged()
    response = client.post(hooked.events_url, data=body, headers=headers)
    unchanged()
    assert response.status_code == 400, response.json
    assert response.content_type == "application/problem+json"
    assert response.json["title"] == "invalid_json"


@examples(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_the_receiver_stores_what_the_reference_accepts_and_refuses_the_rest(
    client, session, hooked, data
):
    key = base64.b64decode(hooked.signing_secret.removeprefix("whsec_"))
    url = hooked.events_url
    session.rollback()  # reading the slug began a transaction; SQLite's writer would wait
    _, body, headers = data.draw(deliveries(key))
    with time_machine.travel(NOW, tick=False):
        accepted = _reference_accepts(hooked.signing_secret, body, headers)
        before = _stored(session)
        response = client.post(url, data=body, headers=headers)
        after = _stored(session)
    if response.status_code in (200, 202):
        assert accepted, (headers, response.json)
        assert response.json["delivery_id"] in after
        return
    assert response.content_type == "application/problem+json", response.data
    assert after == before
    if response.status_code == 401:
        assert not accepted, (headers, response.json)
    else:  # signed as the reference wants, but the body is no events body
        assert accepted and response.status_code == 400, (headers, response.json)


def test_a_sender_retry_re_signed_later_under_the_same_id_is_a_duplicate(client, session, hooked):
    """Standard Webhooks retries keep the webhook-id and sign again with a new timestamp."""
    url = hooked.events_url
    body = json.dumps({"id": "e1", "type": "user.deactivated"}).encode()
    first = signed_webhooks.sign(hooked.signing_secret, msg_id="msg_retry", body=body)
    later = datetime.now(UTC) + timedelta(seconds=90)
    retry = signed_webhooks.sign(
        hooked.signing_secret, msg_id="msg_retry", body=body, timestamp=later
    )
    assert client.post(url, data=body, headers=first).status_code == 202
    with time_machine.travel(later, tick=False):
        answer = client.post(url, data=body, headers=retry)
    assert answer.status_code == 200 and answer.json == {
        "status": "duplicate",
        "delivery_id": "msg_retry",
    }
    assert _stored(session) == ["msg_retry"]
