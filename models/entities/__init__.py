"""Every table of odock-sync; importing this package registers them all on Base.metadata."""

from models.entities.api_key import VirtualApiKey
from models.entities.api_token import ApiToken
from models.entities.audit import AuditEvent
from models.entities.audit_stream import AuditStream
from models.entities.budget import Budget, Quota
from models.entities.cutoff import CutoffIncident, KeyCutoff
from models.entities.delivery import ReceivedDelivery
from models.entities.directory import DirectoryConnector, DirectorySyncRun, SyncLease
from models.entities.event_hook import EventCursor, EventHookConfig
from models.entities.invitation import Invitation, InvitationDelivery, PendingInvitation
from models.entities.local_mail import LocalMail
from models.entities.mass_change import MassChange, MassChangeGate, MassChangeSettings
from models.entities.notification import DeliveryAttempt, NotificationDelivery, NotificationHook
from models.entities.odock import OdockBridge, OdockReconcileRun, OdockTombstone
from models.entities.oidc import OidcProvider, OidcSignIn, OidcSubject
from models.entities.organisation import Organisation, OrganisationSettings
from models.entities.outbox import OutboxMessage
from models.entities.recertification import RecertificationCampaign, RecertificationPolicy
from models.entities.revocation import (
    KeyInvalidation,
    ReviewFinding,
    Revocation,
    RevocationReview,
)
from models.entities.scim import ScimEmail, ScimGroupRole, ScimUser
from models.entities.source_incident import SourceIncident
from models.entities.store_command import StoreCommand
from models.entities.team import Team, TeamMembership
from models.entities.usage import UsageRecord
from models.entities.user import IdentityLink, User

__all__ = [
    "ApiToken",
    "AuditEvent",
    "AuditStream",
    "Budget",
    "CutoffIncident",
    "DeliveryAttempt",
    "DirectoryConnector",
    "DirectorySyncRun",
    "EventCursor",
    "EventHookConfig",
    "IdentityLink",
    "Invitation",
    "InvitationDelivery",
    "KeyCutoff",
    "KeyInvalidation",
    "LocalMail",
    "MassChange",
    "MassChangeGate",
    "MassChangeSettings",
    "NotificationDelivery",
    "NotificationHook",
    "OdockBridge",
    "OdockReconcileRun",
    "OdockTombstone",
    "OidcProvider",
    "OidcSignIn",
    "OidcSubject",
    "Organisation",
    "OrganisationSettings",
    "OutboxMessage",
    "PendingInvitation",
    "Quota",
    "ReceivedDelivery",
    "RecertificationCampaign",
    "RecertificationPolicy",
    "ReviewFinding",
    "Revocation",
    "RevocationReview",
    "ScimEmail",
    "ScimGroupRole",
    "ScimUser",
    "SourceIncident",
    "StoreCommand",
    "SyncLease",
    "Team",
    "TeamMembership",
    "UsageRecord",
    "User",
    "VirtualApiKey",
]
