"""JSON schemas of the admin API's answers, for the OpenAPI document (tests check them)."""

from __future__ import annotations

from typing import Any

STRING = {"type": "string"}
UUID = {"type": "string", "format": "uuid"}
TIME = {"type": "string", "format": "date-time"}
DECIMAL = {"type": "string", "description": "a decimal number, as a string"}
NULLABLE_UUID = {"type": ["string", "null"], "format": "uuid"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties)}


USER_PROFILE = obj(
    id=UUID,
    name=STRING,
    email=STRING,
    role={"type": "string", "enum": ["SUPER_ADMIN", "ORG_ADMIN", "MANAGER", "USER"]},
    status={"type": "string", "enum": ["PENDING", "ACTIVE", "REVOKED"]},
    access_ends_at={
        "type": ["string", "null"],
        "format": "date-time",
        "description": "when access ends on its own (revoked by the schedule); null: never",
    },
    organisation_id=UUID,
    created_at=TIME,
    updated_at=TIME,
)
TEAM_ROLE = {"type": "string", "enum": ["MANAGER", "MEMBER"]}
# A key, budget or quota held from Odock that its complete listings have lately lacked (kept,
# and in every revocation, until ODOCK_FORGET_AFTER_LISTINGS listings in a row lack it).
UNSEEN = {
    "unseen_since": {
        "type": ["string", "null"],
        "format": "date-time",
        "description": "Odock's last listing did not include it since then; null: listed",
    },
    "unseen_listings": {
        "type": "integer",
        "description": "how many complete listings in a row have lacked it",
    },
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "UserProfile": USER_PROFILE,
    "UserPage": obj(
        items={"type": "array", "items": ref("UserProfile")},
        next_cursor={
            "type": ["string", "null"],
            "description": "pass as `cursor` for the next page; null on the last page",
        },
    ),
    "UserDetail": {
        "allOf": [
            ref("UserProfile"),
            obj(
                teams={
                    "type": "array",
                    "items": obj(id=UUID, name=STRING, team_role=TEAM_ROLE),
                },
                api_keys={
                    "type": "array",
                    "items": obj(
                        id=UUID,
                        name=STRING,
                        type={"type": "string", "enum": ["ORGANISATION", "TEAM", "USER"]},
                        masked_value=STRING,
                        revoked={"type": "boolean"},
                        expires_at={"type": ["string", "null"], "format": "date-time"},
                        created_by_user_id=NULLABLE_UUID,
                        **UNSEEN,
                    ),
                },
                usage=obj(
                    last_30_days=obj(
                        requests={"type": "integer"},
                        cost=DECIMAL,
                        input_tokens={"type": "integer"},
                        output_tokens={"type": "integer"},
                    ),
                    recent={
                        "type": "array",
                        "items": obj(
                            id=UUID,
                            occurred_at=TIME,
                            api_key_id=NULLABLE_UUID,
                            model=STRING,
                            cost=DECIMAL,
                            input_tokens={"type": "integer"},
                            output_tokens={"type": "integer"},
                        ),
                    },
                ),
                budgets={
                    "type": "array",
                    "items": obj(
                        id=UUID,
                        name=STRING,
                        amount=DECIMAL,
                        currency=STRING,
                        window=STRING,
                        frozen_at={"type": ["string", "null"], "format": "date-time"},
                        **UNSEEN,
                    ),
                },
                quotas={
                    "type": "array",
                    "items": obj(
                        id=UUID,
                        name=STRING,
                        metric=STRING,
                        limit={"type": "integer"},
                        window=STRING,
                        **UNSEEN,
                    ),
                },
            ),
        ]
    },
    "Team": obj(id=UUID, name=STRING, name_shown=STRING, created_at=TIME),
    "TeamList": obj(items={"type": "array", "items": ref("Team")}),
    "TeamMembers": obj(
        team=ref("Team"),
        items={
            "type": "array",
            "items": obj(user_id=UUID, name=STRING, email=STRING, team_role=TEAM_ROLE),
        },
    ),
}
