"""`odock-sync scim`: the organisation's SCIM policies (group roles, what DELETE does)."""

from __future__ import annotations

import click

from cli.context import CLI_ACTOR, unit_of_work
from cli.options import JSON_OPTION, ORG_OPTION, ROLE
from cli.output import done, emit
from models.actions import organisations
from models.actions import scim as scim_actions
from models.enums import Role, ScimDeletePolicy


@click.group()
def scim() -> None:
    """SCIM provisioning policies of an organisation."""


@scim.group("group-role")
def group_role() -> None:
    """Map IdP groups to organisation roles (members hold the role; leaving demotes)."""


@group_role.command("set")
@ORG_OPTION
@click.option("--group", "group_name", required=True, help="The IdP group's displayName.")
@click.option("--role", type=ROLE, required=True)
@JSON_OPTION
def group_role_set(org_slug: str, group_name: str, role: str, as_json: bool) -> None:
    """Members of the group hold this organisation role."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        scim_actions.set_group_role(
            session,
            organisation=organisation,
            group_name=group_name,
            role=Role(role),
            actor=CLI_ACTOR,
        )
    done(
        f"members of {group_name!r} hold {role}",
        {"group": group_name, "role": role},
        as_json=as_json,
    )


@group_role.command("remove")
@ORG_OPTION
@click.option("--group", "group_name", required=True, help="The IdP group's displayName.")
@JSON_OPTION
def group_role_remove(org_slug: str, group_name: str, as_json: bool) -> None:
    """The group no longer grants a role (its members keep theirs until the next change)."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        scim_actions.set_group_role(
            session, organisation=organisation, group_name=group_name, role=None, actor=CLI_ACTOR
        )
    done(
        f"{group_name!r} no longer grants a role",
        {"group": group_name, "role": None},
        as_json=as_json,
    )


@group_role.command("list")
@ORG_OPTION
@JSON_OPTION
def group_role_list(org_slug: str, as_json: bool) -> None:
    """The IdP groups that grant a role."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        rows = [
            {"group": mapping.group_name, "role": mapping.role.value}
            for mapping in scim_actions.group_roles(session, organisation.id)
        ]
    text = "\n".join(f"{r['group']}: {r['role']}" for r in rows) or "no group roles"
    emit(rows, as_json=as_json, text=text)


@scim.command("delete-policy")
@ORG_OPTION
@click.argument("policy", type=click.Choice([p.value for p in ScimDeletePolicy]))
@JSON_OPTION
def delete_policy(org_slug: str, policy: str, as_json: bool) -> None:
    """What a SCIM DELETE does: revoke (default), or also hard-delete once reviews resolve."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        scim_actions.set_delete_policy(
            session, organisation=organisation, policy=ScimDeletePolicy(policy), actor=CLI_ACTOR
        )
    done(f"SCIM DELETE policy: {policy}", {"policy": policy}, as_json=as_json)


@scim.command("access-end-attribute")
@ORG_OPTION
@click.argument("attribute")
@JSON_OPTION
def access_end_attribute(org_slug: str, attribute: str, as_json: bool) -> None:
    """The User attribute that carries the date a person's access ends (revoked then)."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        scim_actions.set_access_end_attribute(
            session, organisation=organisation, attribute=attribute, actor=CLI_ACTOR
        )
    done(f"access end date read from {attribute}", {"attribute": attribute}, as_json=as_json)


@scim.command("purge")
@ORG_OPTION
@JSON_OPTION
def purge(org_slug: str, as_json: bool) -> None:
    """Apply the hard-delete policy now (the worker does it hourly)."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        ids = scim_actions.purge_deleted_users(session, organisation=organisation, actor=CLI_ACTOR)
    emit([str(i) for i in ids], as_json=as_json, text=f"{len(ids)} users hard-deleted")
