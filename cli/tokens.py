"""`odock-sync token ...`: create, list and revoke API tokens (the secret is printed once)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import click

from cli.context import CLI_ACTOR, unit_of_work
from cli.options import JSON_OPTION, ORG_OPTION
from cli.output import emit
from models.actions import organisations, tokens
from models.actions import users as user_actions
from models.base import utcnow
from models.enums import TokenScope
from models.errors import InvalidInput, NotFound
from models.queries.tokens import TOKEN_STATUSES, list_tokens, token_view


def _lifetime(_ctx: click.Context, _param: click.Parameter, value: str | None) -> timedelta | None:
    if value is None:
        return None
    try:
        return tokens.parse_lifetime(value)
    except InvalidInput as exc:
        raise click.BadParameter(exc.message) from None


def _token_id(_ctx: click.Context, _param: click.Parameter, value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a token id (see `token list`)") from None


@click.group("token")
def token() -> None:
    """API tokens (the secret is printed once)."""


@token.command("create")
@ORG_OPTION
@click.option(
    "--scope",
    type=click.Choice([s.value for s in TokenScope if s is not TokenScope.CONSOLE]),
    required=True,
)
@click.option("--user", "user_email", default=None, help="The user an admin token acts as.")
@click.option("--name", default="")
@click.option(
    "--expires-in",
    "lifetime",
    default=None,
    callback=_lifetime,
    help="Lifetime such as 12h, 90d or 2w; no expiry when left out.",
)
@JSON_OPTION
def create(
    org_slug: str,
    scope: str,
    user_email: str | None,
    name: str,
    lifetime: timedelta | None,
    as_json: bool,
) -> None:
    """Create a token and print its secret, once."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        acting = None
        if user_email:
            acting = user_actions.find_user_by_email(session, organisation.id, user_email)
            if acting is None:
                raise NotFound(f"no user with email {user_email} in {org_slug}")
        issued = tokens.create_token(
            session,
            organisation=organisation,
            scope=TokenScope(scope),
            user=acting,
            name=name,
            expires_at=utcnow() + lifetime if lifetime else None,
            actor=CLI_ACTOR,
        )
        data = {**token_view(issued.token, utcnow(), user_email), "token": issued.secret}
    emit(data, as_json=as_json, text=issued.secret)


@token.command("list")
@ORG_OPTION
@click.option("--status", type=click.Choice(TOKEN_STATUSES), default=None)
@JSON_OPTION
def list_(org_slug: str, status: str | None, as_json: bool) -> None:
    """The organisation's tokens, newest first (never their secrets)."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        rows = list_tokens(session, organisation.id, now=utcnow(), status=status)
    text = "\n".join(
        f"{r['id']}  {r['scope']:6} {r['status']:8} {r['prefix']:15} "
        f"expires {r['expires_at'] or 'never'}  last used {r['last_used_at'] or 'never'}  "
        f"{r['name'] or r['user_email'] or ''}"
        for r in rows
    )
    emit(rows, as_json=as_json, text=text or "no tokens")


@token.command("revoke")
@ORG_OPTION
@click.argument("token_id", callback=_token_id)
@JSON_OPTION
def revoke(org_slug: str, token_id: uuid.UUID, as_json: bool) -> None:
    """Revoke a token: refused from then on (by other web processes within
    SCIM_TOKEN_CACHE_SECONDS)."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        found = tokens.get_token(session, organisation.id, token_id)
        changed = tokens.revoke_token(session, token=found, actor=CLI_ACTOR)
        data = token_view(found, utcnow())
    verb = "revoked" if changed else "was already revoked"
    emit(data, as_json=as_json, text=f"token {token_id} {verb}")
