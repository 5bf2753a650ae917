"""A web process remembers a verified SCIM token for SCIM_TOKEN_CACHE_SECONDS: a revocation
made in that process holds at once, one made elsewhere within that time."""

from __future__ import annotations

from sqlalchemy import select, update

from models.actions import tokens
from models.base import utcnow
from models.entities import ApiToken
from models.enums import TokenScope
from tests.scim.conftest import ScimClient
from tests.support import factories


def the_token(session) -> ApiToken:
    return session.scalars(select(ApiToken).where(ApiToken.scope == TokenScope.SCIM)).one()


def test_a_token_revoked_in_this_process_is_refused_at_once(scim: ScimClient, session) -> None:
    assert scim.get("/Users").status_code == 200
    tokens.revoke_token(session, token=the_token(session), actor=factories.SETUP)
    session.commit()
    assert scim.get("/Users").status_code == 401


def test_a_token_revoked_elsewhere_is_refused_once_the_cache_time_has_passed(
    scim: ScimClient, session, monkeypatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(tokens, "_clock", lambda: now[0])
    assert scim.get("/Users").status_code == 200
    # Another process revokes it: this one's cache does not hear of it.
    session.execute(update(ApiToken).values(revoked_at=utcnow()))
    session.commit()
    now[0] += 1.0
    assert scim.get("/Users").status_code == 200  # still within the 2 s bound
    now[0] += 1.5
    assert scim.get("/Users").status_code == 401


def test_with_no_cache_time_every_request_checks_the_database(
    scim: ScimClient, session, app, monkeypatch
) -> None:
    from webhooks.context import app_state

    with app.app_context():
        monkeypatch.setattr(app_state().settings, "scim_token_cache_seconds", 0.0)
    assert scim.get("/Users").status_code == 200
    session.execute(update(ApiToken).values(revoked_at=utcnow()))
    session.commit()
    assert scim.get("/Users").status_code == 401


def test_a_refused_secret_is_not_remembered(client, session, org) -> None:
    secret = factories.scim_token(session, org)
    session.commit()
    token = the_token(session)
    session.execute(update(ApiToken).values(revoked_at=utcnow()))
    session.commit()
    scim = ScimClient(client, secret)
    assert scim.get("/Users").status_code == 401
    session.execute(update(ApiToken).where(ApiToken.id == token.id).values(revoked_at=None))
    session.commit()
    assert scim.get("/Users").status_code == 200
