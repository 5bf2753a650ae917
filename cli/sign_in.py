"""`odock-sync sign-in`: the OpenID Connect provider invitees sign in with on /enroll."""

from __future__ import annotations

import click

from cli.context import CLI_ACTOR, cli_settings, unit_of_work
from cli.options import JSON_OPTION, ORG_OPTION
from cli.output import done, emit
from models.actions import oidc_providers, organisations, provider_accounts


@click.group("sign-in")
def sign_in() -> None:
    """How invitees (enrollment pages) and admins (console) sign in: an OpenID Connect provider."""


@sign_in.command("show")
@ORG_OPTION
@JSON_OPTION
def show(org_slug: str, as_json: bool) -> None:
    """The provider (never its secret) and the redirect URI to register there."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        provider = oidc_providers.provider_for(session, organisation.id)
        data = oidc_providers.describe(provider, base_url=cli_settings().public_base_url)
    emit(data, as_json=as_json)


@sign_in.command("oidc-set")
@ORG_OPTION
@click.option("--issuer", required=True, help="The provider's issuer URL (https).")
@click.option("--client-id", required=True, help="This service's client id at the provider.")
@click.option(
    "--client-secret",
    prompt=True,
    hide_input=True,
    envvar="ODOCK_OIDC_CLIENT_SECRET",
    help="The client secret; asked for (or read from ODOCK_OIDC_CLIENT_SECRET) if omitted.",
)
@click.option("--name", "display_name", default=None, help='Shown as "Sign in with <name>".')
@click.option(
    "--shared-callback/--own-callback",
    "shared_callback",
    default=None,
    help="Come back to the callback every organisation shares (registered before providers "
    "had their own), or to the provider's own (the default for a new provider).",
)
@JSON_OPTION
def oidc_set(
    org_slug: str,
    issuer: str,
    client_id: str,
    client_secret: str,
    display_name: str | None,
    shared_callback: bool | None,
    as_json: bool,
) -> None:
    """Set (or replace) the organisation's OpenID Connect provider."""
    settings = cli_settings()
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        provider = oidc_providers.configure(
            session,
            organisation=organisation,
            secret_key=settings.secret_key,
            actor=CLI_ACTOR,
            policy=settings.outbound_policy(),
            issuer=issuer,
            client_id=client_id,
            client_secret=client_secret,
            display_name=display_name,
            shared_callback=shared_callback,
        )
        data = oidc_providers.describe(provider, base_url=settings.public_base_url)
    done(
        f"invitees and console users of {org_slug} now sign in with {data['display_name']}; "
        f"register {data['redirect_uri']} and {data['console_redirect_uri']} as redirect "
        "URIs at the provider",
        data,
        as_json=as_json,
    )


@sign_in.command("oidc-clear")
@ORG_OPTION
@JSON_OPTION
def oidc_clear(org_slug: str, as_json: bool) -> None:
    """Remove the provider: invitees can then sign in only through a sign-in proxy."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        oidc_providers.clear(session, organisation=organisation, actor=CLI_ACTOR)
    done(f"{org_slug} has no OpenID Connect provider now", {"cleared": True}, as_json=as_json)


@sign_in.command("forget-account")
@ORG_OPTION
@click.option("--email", required=True, help="The person whose provider account was replaced.")
@JSON_OPTION
def forget_account(org_slug: str, email: str, as_json: bool) -> None:
    """Let a person bind a new provider account: the next one they sign in to the console with."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        forgotten = provider_accounts.forget(
            session, organisation_id=organisation.id, email=email, actor=CLI_ACTOR
        )
    done(
        f"{email} binds the next provider account they sign in with ({forgotten} forgotten)",
        {"email": email, "accounts_forgotten": forgotten},
        as_json=as_json,
    )
