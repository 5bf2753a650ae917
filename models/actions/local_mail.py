"""The local mail outbox: where an email goes when no SMTP server is configured, so a person
on this machine can read it (`odock-sync mail list|show`) instead of it being lost or retried
forever."""

from __future__ import annotations

import json
import uuid

from sqlalchemy.orm import Session

from connectors.email import Email
from models import audit
from models.actor import Actor
from models.encryption import encrypt
from models.entities import LocalMail

PURPOSE = "local-mail"


def keep_mail(
    session: Session,
    *,
    email: Email,
    organisation_id: uuid.UUID | None,
    secret_key: str,
    actor: Actor,
) -> LocalMail:
    """Keep `email` in the local outbox, in the caller's transaction (the caller records the
    send that this completes, in the same commit)."""
    body = json.dumps({"text": email.text, "html": email.html})
    mail = LocalMail(
        organisation_id=organisation_id,
        recipient=email.to,
        subject=email.subject,
        message_id=email.message_id or "",
        sealed_body=encrypt(secret_key, body, purpose=PURPOSE),
    )
    session.add(mail)
    session.flush()
    audit.record(
        session,
        actor=actor,
        organisation_id=organisation_id,
        action="mail.kept",
        target_type="local_mail",
        target_id=mail.id,
        after={"to": email.to, "subject": email.subject},
    )
    return mail
