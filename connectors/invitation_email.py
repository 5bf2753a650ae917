"""The invitation email: plain text and HTML, with the enrollment link."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from jinja2 import Environment

from connectors.email import Email

ROLE_NAMES = {"ORG_ADMIN": "Organisation Admin", "MANAGER": "Manager", "USER": "User"}

TEXT = """\
Hello,

{{ inviter }} invited you to join {{ organisation }} on Odock as {{ role }}.

Open this link to accept the invitation:

{{ link }}

The link works once and expires on {{ expires }}. Sign in with {{ email }}, the address
this invitation was sent to.

If you did not expect this invitation, you can ignore this email.
"""

HTML = """\
<!doctype html>
<html lang="en">
<body style="font-family: sans-serif; line-height: 1.5; color: #1f2933;">
  <p>Hello,</p>
  <p><strong><bdi>{{ inviter }}</bdi></strong> invited you to join
     <strong><bdi>{{ organisation }}</bdi></strong> on Odock as <strong>{{ role }}</strong>.</p>
  <p><a href="{{ link }}">Accept the invitation</a></p>
  <p>Or paste this address into your browser: <br><code>{{ link }}</code></p>
  <p>The link works once and expires on {{ expires }}.
     Sign in with <strong><bdi>{{ email }}</bdi></strong>,
     the address this invitation was sent to.</p>
  <p style="color: #52606d;">If you did not expect this invitation, you can ignore this email.</p>
</body>
</html>
"""

_text = Environment(autoescape=False, keep_trailing_newline=True).from_string(TEXT)  # noqa: S701
_html = Environment(autoescape=True).from_string(HTML)


@dataclass(frozen=True)
class InvitationEmail:
    to: str
    link: str
    organisation: str
    role: str
    inviter: str
    expires_at: datetime
    message_id: str


def build(invitation: InvitationEmail) -> Email:
    values = {
        "email": invitation.to,
        "link": invitation.link,
        "organisation": invitation.organisation,
        "role": ROLE_NAMES.get(invitation.role, invitation.role),
        "inviter": invitation.inviter,
        "expires": invitation.expires_at.strftime("%d %B %Y at %H:%M UTC"),
    }
    return Email(
        to=invitation.to,
        subject=f"You are invited to join {invitation.organisation} on Odock",
        text=_text.render(values),
        html=_html.render(values),
        message_id=invitation.message_id,
    )
