"""Options several commands share, spelled the same everywhere."""

from __future__ import annotations

from typing import Any

import click

from models.enums import Role

ORG_OPTION = click.option("--org", "org_slug", required=True, help="Organisation slug.")
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


class UpperChoice(click.Choice):
    """Choices shown in upper case, as the API spells them; typed in any case."""

    def __init__(self, choices: list[str]) -> None:
        super().__init__(choices, case_sensitive=True)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return super().convert(value.upper() if isinstance(value, str) else value, param, ctx)


GRANTABLE_ROLES = [r.value for r in Role if r is not Role.SUPER_ADMIN]
ROLE = UpperChoice(GRANTABLE_ROLES)  # a role one may give (create, invite, map a group)
ANY_ROLE = UpperChoice([r.value for r in Role])  # a role one may filter on
