"""Whether the provider's answer to a sign-in (the authorization response) is for the provider
the sign-in was started with, before its code goes to any token endpoint: the mix-up defence
of RFC 9700 section 4.4. Each provider has redirect URIs of its own, so an answer must arrive
at the one its sign-in asked for; and the answer's `iss` (RFC 9207), when it has one, or when
the provider says it always sends one, must be that provider's issuer."""

from __future__ import annotations

from models.actions.oidc_sign_ins import Claimed, SignInRefused
from models.entities import OidcProvider


def provider_answering(
    claimed: Claimed, *, provider: OidcProvider | None, arrived_at: str
) -> OidcProvider:
    """The provider the sign-in was started with, still the organisation's, if the answer
    arrived at the callback (`arrived_at`, its id; "" the shared one) the sign-in asked for."""
    if provider is None:
        raise _refused(
            claimed, "this organisation no longer signs in with OpenID Connect", "provider_removed"
        )
    if claimed.issuer not in (None, provider.issuer):
        changed = "the organisation's provider was changed during this sign-in"
        raise _refused(claimed, changed, "provider_changed")
    if arrived_at != claimed.callback_id:
        raise _refused(
            claimed,
            f"the answer arrived at the callback {arrived_at[:200] or '(shared)'!r}, not at the "
            f"one this sign-in asked for ({claimed.callback_id or '(shared)'!r})",
            "wrong_callback",
        )
    return provider


def check_issuer(
    claimed: Claimed, *, issuer: str, response_issuer: str | None, always_sent: bool
) -> None:
    """RFC 9207: the answer's `iss` is the sign-in's provider's `issuer`; none is accepted only
    from a provider whose discovery document does not say it always sends one (`always_sent`)."""
    if response_issuer is None:
        if always_sent:
            raise _refused(
                claimed,
                "the provider's answer does not say which provider sent it, though the "
                "provider says it always does",
                "issuer_missing",
            )
        return
    if response_issuer != issuer:
        raise _refused(
            claimed,
            f"the answer comes from {response_issuer[:200]!r}, not from the provider the "
            f"sign-in was started with ({issuer})",
            "other_issuer",
        )


def _refused(claimed: Claimed, message: str, outcome: str) -> SignInRefused:
    return SignInRefused(message, outcome=outcome, organisation_id=claimed.organisation_id)
