"""The command line as people expect of a click tool: --version, help on every command,
--json on every command that prints a result, one spelling of roles, readable text."""

from __future__ import annotations

import json
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from cli.main import main
from models.enums import Role


def every_command(
    group: click.Group = main, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        if command.hidden:
            continue
        yield " ".join((*path, name)), command
        if isinstance(command, click.Group):
            yield from every_command(command, (*path, name))


COMMANDS = dict(every_command())
LEAVES = {name: c for name, c in COMMANDS.items() if not isinstance(c, click.Group)}


def test_the_walk_finds_every_topic():
    groups = {name for name in COMMANDS if " " not in name}
    assert {"users", "invitations", "mail", "token", "scim", "ldap", "reviews", "hooks"} <= groups
    assert "user" not in groups  # the old spelling is hidden
    assert len(LEAVES) > 50


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_a_help_line(name):
    command = COMMANDS[name]
    assert command.get_short_help_str(limit=200).strip(), f"`odock-sync {name}` has no help"
    result = CliRunner().invoke(main, [*name.split(), "--help"], prog_name="odock-sync")
    assert result.exit_code == 0 and "Usage: odock-sync" in result.output


# serve prints logs; audit export writes the events themselves, as --format jsonl|csv says.
@pytest.mark.parametrize("name", sorted(set(LEAVES) - {"serve", "audit export"}))
def test_every_command_but_serve_takes_json(name):
    assert "as_json" in {p.name for p in LEAVES[name].params}, f"`{name}` has no --json"


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("odock-sync, version ")


def test_roles_are_spelled_as_the_api_spells_them_everywhere():
    granted = [r.value for r in Role if r is not Role.SUPER_ADMIN]
    for name in ("users create", "invitations create", "scim group-role set"):
        [role] = [p for p in LEAVES[name].params if p.name == "role"]
        assert list(role.type.choices) == granted, name  # type: ignore[attr-defined]
    [role] = [p for p in LEAVES["users list"].params if p.name == "role"]
    assert list(role.type.choices) == [r.value for r in Role]  # type: ignore[attr-defined]
    help_text = CliRunner().invoke(main, ["users", "list", "--help"]).output
    assert "[SUPER_ADMIN|ORG_ADMIN|MANAGER|USER]" in help_text


def test_users_create_and_its_old_spelling(run, run_json):
    run("org", "create", "--name", "Acme", "--slug", "acme")
    made = run_json("users", "create", "--org", "acme", "--email", "a@acme.test", "--name", "A")
    old = run_json(
        "user",
        "create",
        "--org",
        "acme",
        "--email",
        "b@acme.test",
        "--name",
        "B",
        "--role",
        "manager",
    )
    assert (made["role"], old["role"]) == ("USER", "MANAGER")
    table = run("users", "list", "--org", "acme").stdout.splitlines()
    assert table[0].split() == ["EMAIL", "NAME", "ROLE", "STATUS", "ID"]
    assert table[1].split()[:4] == ["a@acme.test", "A", "USER", "ACTIVE"]
    shown = run("users", "show", "--org", "acme", "a@acme.test").stdout
    assert "{" not in shown and "email: a@acme.test" in shown  # no Python reprs
    assert json.loads(run("org", "create", "--name", "B Org", "--json").stdout)["slug"] == "b-org"
