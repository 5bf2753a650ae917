"""`odock-sync mail ...`: the local outbox, where email waits while SMTP_HOST is unset."""

from __future__ import annotations

import uuid

import click

from cli.context import cli_settings, unit_of_work
from cli.options import JSON_OPTION
from cli.output import emit, table
from models.actions import organisations
from models.queries import local_mail


@click.group()
def mail() -> None:
    """Read the email kept in the local outbox (SMTP_HOST unset): invitations, notifications."""


@mail.command("list")
@click.option("--org", "org_slug", default=None, help="Only this organisation's mail.")
@click.option("--to", default=None, help="Part of the recipient's address.")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@JSON_OPTION
def list_(org_slug: str | None, to: str | None, limit: int, as_json: bool) -> None:
    """The kept mail, newest first."""
    with unit_of_work() as session:
        organisation_id = (
            organisations.get_organisation_by_slug(session, org_slug).id if org_slug else None
        )
        rows = [
            local_mail.mail_summary(kept)
            for kept in local_mail.list_mail(
                session, organisation_id=organisation_id, to=to, limit=limit
            )
        ]
    text = table(rows, ["id", "created_at", "to", "subject"], empty="the local outbox is empty")
    emit(rows, as_json=as_json, text=text)


@mail.command("show")
@click.argument("mail_id", type=click.UUID, required=False)
@JSON_OPTION
def show(mail_id: uuid.UUID | None, as_json: bool) -> None:
    """One kept mail (the newest without MAIL_ID): headers, text and its links."""
    secret_key = cli_settings().secret_key
    with unit_of_work() as session:
        data = local_mail.mail_detail(local_mail.get_mail(session, mail_id), secret_key=secret_key)
    header = [
        f"To:      {data['to']}",
        f"Subject: {data['subject']}",
        f"Date:    {data['created_at']}",
    ]
    links = ["", "Links:", *(f"  {link}" for link in data["links"])] if data["links"] else []
    emit(data, as_json=as_json, text="\n".join([*header, "", data["text"].rstrip(), *links]))
