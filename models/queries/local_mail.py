"""Reading the local mail outbox: what `odock-sync mail list|show` prints."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.actions.local_mail import PURPOSE
from models.encryption import decrypt
from models.entities import LocalMail
from models.errors import NotFound

LINK = re.compile(r"https?://[^\s<>\"']+")


def list_mail(
    session: Session,
    *,
    organisation_id: uuid.UUID | None = None,
    to: str | None = None,
    limit: int = 50,
) -> list[LocalMail]:
    """Kept mail, newest first."""
    query = select(LocalMail).order_by(LocalMail.created_at.desc(), LocalMail.id.desc())
    if organisation_id is not None:
        query = query.where(LocalMail.organisation_id == organisation_id)
    if to:
        query = query.where(LocalMail.recipient.ilike(f"%{_escaped(to)}%", escape="\\"))
    return list(session.scalars(query.limit(limit)))


def get_mail(session: Session, mail_id: uuid.UUID | None = None) -> LocalMail:
    """One kept mail, or the newest when no id is given."""
    found = (
        session.get(LocalMail, mail_id)
        if mail_id
        else next(iter(list_mail(session, limit=1)), None)
    )
    if found is None:
        raise NotFound(f"no mail {mail_id}" if mail_id else "the local outbox is empty")
    return found


def read_body(mail: LocalMail, *, secret_key: str) -> tuple[str, str | None]:
    """The plain-text and HTML bodies (HTML may be absent)."""
    body = json.loads(decrypt(secret_key, mail.sealed_body, purpose=PURPOSE))
    return body["text"], body.get("html")


def links_in(text: str) -> list[str]:
    """The links of a plain-text body, in order, once each."""
    return list(dict.fromkeys(match.rstrip(".,;)") for match in LINK.findall(text)))


def mail_summary(mail: LocalMail) -> dict[str, Any]:
    return {
        "id": str(mail.id),
        "created_at": mail.created_at.isoformat(),
        "to": mail.recipient,
        "subject": mail.subject,
    }


def mail_detail(mail: LocalMail, *, secret_key: str) -> dict[str, Any]:
    """The summary, the bodies and the links of the plain-text body."""
    text, html = read_body(mail, secret_key=secret_key)
    return {
        **mail_summary(mail),
        "message_id": mail.message_id,
        "text": text,
        "html": html,
        "links": links_in(text),
    }


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
