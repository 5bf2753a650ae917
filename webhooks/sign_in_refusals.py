"""What a person is told when an OpenID Connect sign-in is refused, on the enrollment and
console pages alike: a fixed text per outcome. The refusal's own message may carry the
provider's words (its `error_description`), an email it sent or other text an attacker can
choose; that goes to the audit trail and the log, never onto a page of our origin."""

from __future__ import annotations

from models.actions.sign_in_audit import SignInRefused

SHOWN: dict[str, str] = {
    "provider_refused": (
        "The sign-in was cancelled or refused by your identity provider, or its answer could "
        "not be accepted."
    ),
    "state_unknown": "This sign-in is not one this service started (its state is unknown).",
    "state_used": "This sign-in was already used.",
    "other_browser": "This sign-in was started in another browser.",
    "lapsed": "This sign-in took too long and has lapsed.",
    "provider_removed": "This organisation no longer signs in with OpenID Connect.",
    "provider_changed": (
        "This organisation's sign-in provider was changed during this sign-in; sign in again."
    ),
    "wrong_callback": (
        "This sign-in's answer came back to another provider's address, so it was not accepted."
    ),
    "other_issuer": (
        "This sign-in's answer came from another identity provider than the one it was started "
        "with, so it was not accepted."
    ),
    "issuer_missing": (
        "This sign-in's answer did not say which identity provider sent it, so it was not accepted."
    ),
    "no_email": "Your identity provider did not say which email you signed in with.",
    "unverified_email": (
        "Your identity provider has not verified the email you signed in with; verify it "
        "there first."
    ),
    "not_a_person": "The email you signed in with is not a person of this organisation.",
    "not_active": "This person is not active, so they cannot sign in.",
    "not_console_role": "The console is for Organisation Admins and managers.",
    "other_account": (
        "This person signs in with another account of this provider; if that account was "
        "replaced, an administrator lets them bind the new one."
    ),
}

UNKNOWN_OUTCOME = "This sign-in could not be completed."


def shown(refused: SignInRefused) -> str:
    """The text a person sees for this refusal: its outcome's, never its message."""
    return SHOWN.get(refused.outcome, UNKNOWN_OUTCOME)
