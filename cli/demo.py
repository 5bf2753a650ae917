"""`odock-sync demo`: a demo organisation, an admin token, and the exact API call to try."""

from __future__ import annotations

import shlex

import click
from sqlalchemy import select

from cli.context import CLI_ACTOR, cli_settings, unit_of_work
from cli.output import emit
from models.actions.demo import seed_demo
from models.entities import Organisation


@click.command("demo")
@click.option("--name", default="Demo Organisation", show_default=True)
@click.option("--slug", default="demo", show_default=True)
@click.option("--domain", default="demo.example", show_default=True, help="Email domain.")
@click.option("--url", default=None, help="Base URL of the API [default: PUBLIC_BASE_URL].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def demo(name: str, slug: str, domain: str, url: str | None, as_json: bool) -> None:
    """Create a demo organisation with teams, users, keys, budgets, quotas and usage."""
    base = (url or cli_settings().public_base_url).rstrip("/")
    with unit_of_work() as session:
        if session.scalar(select(Organisation.id).where(Organisation.slug == slug)):
            raise click.ClickException(_exists(slug, domain))
        data = seed_demo(session, name=name, slug=slug, domain=domain, actor=CLI_ACTOR)
        detail_url = f"{base}/api/v1/users/{data.featured.id}"
        command = curl(detail_url, data.admin_token)
        result = {
            "organisation": {"id": str(data.organisation.id), "slug": data.organisation.slug},
            "users": {
                p.email: {"id": str(p.id), "role": p.role.value} for p in data.people.values()
            },
            "admin": data.admin.email,
            "token": data.admin_token,
            "user_detail_url": detail_url,
            "curl": command,
        }
    text = "\n".join(
        [
            f"Created organisation {slug!r} with {len(data.people)} users, 3 teams, keys,",
            "budgets, quotas and usage records.",
            f"Admin token for {data.admin.email} (shown once): {data.admin_token}",
            "",
            f"User detail of {data.featured.email}:",
            command,
        ]
    )
    emit(result, as_json=as_json, text=text)


def _exists(slug: str, domain: str) -> str:
    return (
        f"the organisation {slug!r} already exists (demo ran here before). For a new admin "
        f"token: odock-sync token create --org {slug} --scope admin --user ada@{domain}; "
        f"or make another demo: odock-sync demo --slug {slug}-2"
    )


def curl(url: str, token: str) -> str:
    return f"curl -s -H {shlex.quote('Authorization: Bearer ' + token)} {shlex.quote(url)}"
