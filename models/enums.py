"""The closed vocabularies of the domain, named as Odock names them."""

from enum import StrEnum


class Role(StrEnum):
    """Organisation roles, declared from the most authority to the least."""

    SUPER_ADMIN = "SUPER_ADMIN"
    ORG_ADMIN = "ORG_ADMIN"
    MANAGER = "MANAGER"
    USER = "USER"

    @property
    def rank(self) -> int:
        """Higher means more authority: USER 0, MANAGER 1, ORG_ADMIN 2, SUPER_ADMIN 3."""
        members = list(Role)
        return len(members) - 1 - members.index(self)


class UserStatus(StrEnum):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    REVOKED = "REVOKED"


class TeamRole(StrEnum):
    MANAGER = "MANAGER"
    MEMBER = "MEMBER"


class KeyType(StrEnum):
    ORGANISATION = "ORGANISATION"
    TEAM = "TEAM"
    USER = "USER"


class OwnerType(StrEnum):
    ORG = "ORG"
    TEAM = "TEAM"
    USER = "USER"
    APIKEY = "APIKEY"


class InvitationStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    EXPIRED = "expired"
    REVOKED = "revoked"


class Source(StrEnum):
    """What caused a change: the audit trail's `source` and an identity link's origin."""

    ADMIN = "admin"
    SCIM = "scim"
    LDAP = "ldap"
    OKTA = "okta"
    EVENTS = "events"
    ODOCK = "odock"
    INVITATION = "invitation"
    MANUAL = "manual"
    SCHEDULE = "schedule"
    SYSTEM = "system"


class TokenScope(StrEnum):
    ADMIN = "admin"
    SCIM = "scim"
    ODOCK = "odock"
    CONSOLE = "console"  # a web console session, started by signing in at /console


class ReviewStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class FindingState(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


class KeyPolicy(StrEnum):
    """What a revocation does to keys the revoked person owns or created."""

    REVOKE = "revoke"
    HOLD = "hold"


class LeaverInvitationPolicy(StrEnum):
    """What revoking a person does to the invitations they sent that are still pending."""

    REVOKE = "revoke"
    KEEP = "keep"


class DeletedTeamKeyPolicy(StrEnum):
    """What deleting a team does to its keys: revoke them, or hand each to its creator."""

    REVOKE = "revoke"
    REASSIGN = "reassign"


class ReviewCause(StrEnum):
    """Why an access-change review opened."""

    REVOCATION = "revocation"
    TEAM_DELETED = "team_deleted"
    MANAGER_ROLE_LOST = "manager_role_lost"
    LEFT_TEAM = "left_team"
    ORG_ROLE_DROPPED = "org_role_dropped"
    IDENTITY_CHANGED = "identity_changed"  # a directory relinked the person to a new entry
    KEY_STILL_ACCEPTED = "key_still_accepted"  # a revoked key with no review of its own
    RECERTIFICATION = "recertification"  # a key recertification campaign
    DEPARTURE = "departure"  # an end date is near: opened before the day


class HookKind(StrEnum):
    """How a notification hook is delivered."""

    WEBHOOK = "webhook"
    SLACK = "slack"
    EMAIL = "email"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    SKIPPED = "skipped"


class ScimDeletePolicy(StrEnum):
    """What a SCIM DELETE does beyond revoking the user and marking the link deleted."""

    REVOKE = "revoke"
    HARD_DELETE_AFTER_REVIEW = "hard_delete_after_review"


class SyncKind(StrEnum):
    FULL = "full"
    INCREMENTAL = "incremental"


class SyncRunStatus(StrEnum):
    """A directory sync run: running, then one of the outcomes below."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PLANNED = "planned"  # a dry run: the plan is stored, nothing applied
    QUARANTINED = "quarantined"  # over the deprovisioning threshold: waits for an admin
    APPROVING = "approving"  # an admin approved it: a worker re-checks and applies the plan
    APPROVED = "approved"
    DISCARDED = "discarded"
    SKIPPED = "skipped"  # another sync of the same connector was running


# Runs whose plan was applied (by the sync itself, or on an admin's approval): the statuses a
# "last successful sync", the operations report and an approval's newer-run check all mean.
APPLIED_RUN_STATUSES = (SyncRunStatus.SUCCEEDED, SyncRunStatus.APPROVED)


class StoreCommandType(StrEnum):
    """What odock-sync asks Odock's store to do with one key, or one budget (the contract's
    command types)."""

    REVOKE = "key.revoke"
    RESTORE = "key.restore"
    REASSIGN = "key.reassign"
    ROTATE_REQUEST = "key.rotate_request"
    BUDGET_FREEZE = "budget.freeze"
    BUDGET_THAW = "budget.thaw"


BUDGET_COMMANDS = frozenset({StoreCommandType.BUDGET_FREEZE, StoreCommandType.BUDGET_THAW})


class ChangeKind(StrEnum):
    """A destructive change a push source asks for, as the mass-change gate counts it."""

    DEACTIVATE = "deactivate"
    DELETE = "delete"
    ROLE_DROP = "role_drop"


class ChangeStatus(StrEnum):
    """A counted destructive change: applied at once, or held until an admin decides."""

    APPLIED = "applied"
    HELD = "held"
    APPROVED = "approved"
    DISCARDED = "discarded"
    SUPERSEDED = "superseded"  # the same source took it back before anyone decided


class StreamPreset(StrEnum):
    """The wire format of an audit log stream."""

    GENERIC = "generic"  # NDJSON, signed with Standard Webhooks
    SPLUNK = "splunk"  # Splunk HTTP Event Collector: its token header and event envelope


class RecertDecision(StrEnum):
    """What a key's owner decides in a recertification campaign."""

    KEEP = "keep"
    ROTATE = "rotate"
    REVOKE = "revoke"


class RecertDeadlinePolicy(StrEnum):
    """What a campaign's deadline does to the keys nobody confirmed."""

    REVOKE = "revoke"  # revoked at the gateway; an admin can restore one
    ESCALATE = "escalate"  # left open: the reminders go on up to the admins


class SignInPlace(StrEnum):
    """Where an OpenID Connect sign-in was started, and so where its callback must return."""

    ENROLLMENT = "enrollment"  # an invitation's page (/enroll)
    CONSOLE = "console"  # the web console (/console)
