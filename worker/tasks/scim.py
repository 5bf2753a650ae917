"""SCIM housekeeping: the hard-delete policy, applied on a schedule."""

from __future__ import annotations

from sqlalchemy import select

from models.actions.scim import purge_deleted_users
from models.actor import Actor
from models.entities import Organisation, OrganisationSettings
from models.enums import ScimDeletePolicy
from worker.runtime import runtime
from worker.tasks.base import task


@task("scim.purge_deleted")
def purge_deleted() -> None:
    """Hard-delete SCIM-deleted people whose reviews are resolved, where the policy says so."""
    with runtime().sessions() as session:
        organisations = session.scalars(
            select(Organisation)
            .join(OrganisationSettings)
            .where(
                OrganisationSettings.scim_delete_policy == ScimDeletePolicy.HARD_DELETE_AFTER_REVIEW
            )
        ).all()
        for organisation in organisations:
            purge_deleted_users(
                session, organisation=organisation, actor=Actor.schedule("scim.purge_deleted")
            )
        session.commit()
