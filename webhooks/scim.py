"""SCIM 2.0 service provider under /scim/v2 (RFC 7644): thin routes over scim_provider.

The SCIM bearer token decides the organisation; every error under the prefix, including
unknown routes, 405 and 413, is SCIM error JSON.
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from flask import Blueprint, Response, g, request
from flask.blueprints import BlueprintSetupState
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter

from connectors.scim.casting import check_schemas
from connectors.scim.errors import InvalidSyntax, ScimError
from connectors.scim.projection import Projection, project
from connectors.scim.schemas import ERROR, GROUP_KIND, SEARCH_REQUEST, ResourceKind
from models import errors
from models.actions.tokens import TokenGrant
from models.actor import Actor
from models.enums import Source, TokenScope
from webhooks import scim_documents
from webhooks import scim_provider as provider
from webhooks.auth import require_token
from webhooks.body import UnreadableBody, check_json_type, decode_json, integer_text, read_body
from webhooks.context import db_session, settings, use_autocommit_session
from webhooks.errors import Unauthorized, register_protocol_renderer

PREFIX = "/scim/v2"
MEDIA_TYPE = "application/scim+json"
log = structlog.get_logger(__name__)

bp = Blueprint("scim", __name__, url_prefix=PREFIX)


class ResourceId(BaseConverter):
    """A resource's id, which never starts with a dot: `/Users/.search` is only the search
    route, so a GET there is 405 with Allow: POST (RFC 7644 section 3.4.3), not a read of a
    user called ".search" (404)."""

    regex = r"[^/.][^/]*"


@bp.record_once
def _register_converters(state: BlueprintSetupState) -> None:
    state.app.url_map.converters["id"] = ResourceId


NO_PROJECTION = Projection()


@bp.before_request
def authenticate() -> None:
    """The token's organisation as the request's context. On PostgreSQL, reads skip the BEGIN
    and ROLLBACK round trips (they write nothing); SQLite keeps its own transaction control
    (BEGIN IMMEDIATE, see models.db)."""
    if request.method == "GET":
        use_autocommit_session()
    grant = require_token(TokenScope.SCIM)
    g.scim = context_of(grant, settings().public_base_url)


# (grant, public address) -> its context: the same few tokens ask all day. A grant is a
# token's as verified (a revoked token has none), so the context lives no longer than it.
_CONTEXTS: dict[tuple[TokenGrant, str], provider.Context] = {}


def context_of(grant: TokenGrant, public_base_url: str) -> provider.Context:
    found = _CONTEXTS.get((grant, public_base_url))
    if found is None:
        actor = Actor(Source.SCIM, f"scim token {grant.label}")
        # Locations come from the configured public address, never from the request's Host.
        base_url = public_base_url.rstrip("/") + PREFIX
        found = provider.Context(grant.organisation_id, actor, base_url)
        if len(_CONTEXTS) > 1024:
            _CONTEXTS.clear()
        _CONTEXTS[(grant, public_base_url)] = found
    return found


@bp.get("/ServiceProviderConfig")
def service_provider_config() -> Response:
    refuse_filter()
    return scim_json(provider.service_provider(g.scim, settings().scim_documentation_url))


@bp.get("/ResourceTypes")
def resource_types() -> Response:
    refuse_filter()
    return scim_json(provider.resource_types(db_session(), g.scim))


@bp.get("/ResourceTypes/<name>")
def resource_type(name: str) -> Response:
    refuse_filter()
    return scim_json(provider.resource_type(db_session(), g.scim, name))


@bp.get("/Schemas")
def schemas() -> Response:
    refuse_filter()
    return scim_json(provider.schemas(db_session(), g.scim))


@bp.get("/Schemas/<schema_id>")
def schema(schema_id: str) -> Response:
    refuse_filter()
    return scim_json(provider.schema(db_session(), g.scim, schema_id))


@bp.get("/Users")
def list_users() -> Response:
    return scim_json(provider.list_users(db_session(), g.scim, query_listing()))


@bp.post("/Users/.search")
def search_users() -> Response:
    return scim_json(provider.list_users(db_session(), g.scim, body_listing()))


@bp.post("/Users")
def create_user() -> Response:
    document = provider.create_user(db_session(), g.scim, scim_body())
    return committed(document, 201)


@bp.get("/Users/<id:scim_id>")
def get_user(scim_id: str) -> Response:
    return resource(*provider.get_user(db_session(), g.scim, scim_id))


@bp.put("/Users/<id:scim_id>")
def replace_user(scim_id: str) -> Response:
    session, body = db_session(), scim_body()
    return committed(provider.replace_user(session, g.scim, scim_id, body, preconditions()))


@bp.patch("/Users/<id:scim_id>")
def patch_user(scim_id: str) -> Response:
    session, body = db_session(), scim_body()
    return committed(provider.patch_user(session, g.scim, scim_id, body, preconditions()))


@bp.delete("/Users/<id:scim_id>")
def delete_user(scim_id: str) -> Response:
    provider.delete_user(db_session(), g.scim, scim_id, preconditions())
    return committed(None, 204)


@bp.post("/.search")
def search_all() -> Response:
    return scim_json(provider.search_all(db_session(), g.scim, body_listing()))


@bp.route("/Me", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
@bp.route("/Me/<path:_rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def me(_rest: str = "") -> Response:
    """RFC 7644 section 3.11: a provider without /Me SHOULD answer 501. A SCIM token is an
    IdP's, not a person's: there is no authenticated subject to alias."""
    return scim_error(501, "/Me is not supported: a SCIM token belongs to no user")


@bp.route("/Bulk", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def bulk() -> Response:
    """Bulk is not supported (ServiceProviderConfig says bulk.supported false): 501, the
    status RFC 7644 section 3.12 gives an operation the provider does not support."""
    return scim_error(501, "bulk operations are not supported; send each request on its own")


@bp.get("/Groups")
def list_groups() -> Response:
    return scim_json(provider.list_groups(db_session(), g.scim, query_listing()))


@bp.post("/Groups/.search")
def search_groups() -> Response:
    return scim_json(provider.list_groups(db_session(), g.scim, body_listing()))


@bp.post("/Groups")
def create_group() -> Response:
    document = provider.create_group(db_session(), g.scim, scim_body())
    return committed(document, 201)


@bp.get("/Groups/<id:group_id>")
def get_group(group_id: str) -> Response:
    projection = query_listing().projection
    return resource(provider.get_group(db_session(), g.scim, group_id, projection), GROUP_KIND)


@bp.put("/Groups/<id:group_id>")
def replace_group(group_id: str) -> Response:
    session, body = db_session(), scim_body()
    return committed(provider.replace_group(session, g.scim, group_id, body, preconditions()))


@bp.patch("/Groups/<id:group_id>")
def patch_group(group_id: str) -> Response:
    session, body = db_session(), scim_body()
    conditions, projection = preconditions(), asked_projection()
    return committed(provider.patch_group(session, g.scim, group_id, body, conditions, projection))


@bp.delete("/Groups/<id:group_id>")
def delete_group(group_id: str) -> Response:
    provider.delete_group(db_session(), g.scim, group_id, preconditions())
    return committed(None, 204)


# --- request and response helpers ------------------------------------------------------


def refuse_filter() -> None:
    """RFC 7644 section 4: the discovery endpoints do not filter, and a filter SHOULD be
    403, not ignored (an answer listing everything would read as every resource matching)."""
    if "filter" in request.args:
        raise errors.Forbidden("discovery endpoints do not support filtering")


def scim_body() -> Any:
    """The JSON body through the shared guard (webhooks.body); unreadable is invalidSyntax.
    A body said to be anything but JSON (`application/xml`) is 415, never read as JSON
    (RFC 7644 section 3.8: application/scim+json; application/json is accepted too)."""
    check_json_type(request)
    raw = read_body()
    if not raw:
        raise InvalidSyntax("a JSON body is required")
    # RFC 7643 section 2.1: names are case-insensitive, so `userName` and `USERNAME` in one
    # object are one attribute given twice, refused (readers lower-case names as they go).
    return decode_json(raw, names_in_any_case=True)


def query_listing() -> provider.Listing:
    # The first value of each parameter, as MultiDict.get gives it, in a plain dict: get on
    # a MultiDict raises and catches an exception for each parameter the request lacks.
    args = dict(request.args.items())
    return provider.listing(
        filter_text=args.get("filter"),
        start_index=query_integer(args, "startIndex"),
        count=query_integer(args, "count"),
        sort_by=args.get("sortBy"),
        sort_order=args.get("sortOrder"),
        attributes=args.get("attributes"),
        excluded=args.get("excludedAttributes"),
    )


def query_integer(args: dict[str, str], name: str) -> int | None:
    value = args.get(name)
    return None if value in (None, "") else integer_text(value, name)


# RFC 7644 section 3.4.3, in lower case (attribute names are case-insensitive).
SEARCH_REQUEST_FIELDS = frozenset(
    (
        "schemas",
        "filter",
        "startindex",
        "count",
        "sortby",
        "sortorder",
        "attributes",
        "excludedattributes",
    )
)


def body_listing() -> provider.Listing:
    body = scim_body()
    if not isinstance(body, dict):
        raise InvalidSyntax("a SearchRequest must be a JSON object")
    check_schemas(body, SEARCH_REQUEST)
    fields = {str(k).lower(): v for k, v in body.items()}
    unknown = sorted(set(fields) - SEARCH_REQUEST_FIELDS)
    if unknown:
        # A misspelt "filtr" ignored would answer every resource, read as matches.
        raise InvalidSyntax(f"a SearchRequest has no attribute {unknown[0][:60]!r}")
    text = fields.get("filter")
    if text is not None and not isinstance(text, str):
        raise InvalidSyntax("filter must be a string")
    return provider.listing(
        filter_text=text,
        start_index=fields.get("startindex"),
        count=fields.get("count"),
        sort_by=fields.get("sortby"),
        sort_order=fields.get("sortorder"),
        attributes=fields.get("attributes"),
        excluded=fields.get("excludedattributes"),
    )


def preconditions() -> provider.Preconditions:
    # The headers as WSGI hands them over: request.headers.get spells each key anew and
    # raises and catches a KeyError for each one absent, as on most requests.
    environ = request.environ
    return provider.Preconditions(environ.get("HTTP_IF_MATCH"), environ.get("HTTP_IF_NONE_MATCH"))


def resource(document: dict[str, Any], kind: ResourceKind) -> Response:
    """A single resource; 412 when the caller's If-Match is stale (RFC 9110 section 13.1.1:
    whatever the method, evaluated first), 304 when its If-None-Match is current."""
    asked = preconditions()
    if asked.if_match is not None:
        version = document["meta"]["version"]
        provider.check_tag(lambda: version, provider.Preconditions(if_match=asked.if_match))
    if provider.matches_version(document, asked.if_none_match):
        response = Response(status=304)
        response.headers["ETag"] = document["meta"]["version"]
        return response
    # Most reads carry no query string: nothing to parse, nothing to project.
    projection = query_listing().projection if request.query_string else NO_PROJECTION
    # The resource's version, whatever the projection leaves of meta.
    return scim_json(project(document, projection, kind), etag=document["meta"]["version"])


def committed(document: dict[str, Any] | None, status: int = 200) -> Response:
    shown = None if document is None else as_asked(document)  # before the commit: may read
    db_session().commit()
    if document is None or shown is None:
        response = Response(status=status)
        del response.headers["Content-Type"]  # no content, so no type (it said text/html)
        return response
    response = scim_json(shown, status, etag=document["meta"]["version"])  # as projected
    if status == 201:
        response.headers["Location"] = document["meta"]["location"]
    return response


def as_asked(document: dict[str, Any]) -> dict[str, Any]:
    """A written resource as attributes or excludedAttributes ask: RFC 7644 section 3.9
    lets a client project the resource of any operation that returns one."""
    projection = asked_projection()
    if not projection:
        return document
    is_group = document["meta"]["resourceType"] == GROUP_KIND.name
    kind = GROUP_KIND if is_group else provider.user_kind(db_session(), g.scim)
    return project(document, projection, kind)


def asked_projection() -> Projection:
    args = request.args
    if not args:
        return NO_PROJECTION
    return provider.projection_of(args.get("attributes"), args.get("excludedAttributes"))


def scim_json(document: dict[str, Any], status: int = 200, etag: str | None = None) -> Response:
    """The document as SCIM JSON; its ETag `etag`, else a single resource's meta.version."""
    response = Response(_json_text(document), status=status, content_type=MEDIA_TYPE)
    if etag is None and "Resources" not in document:
        etag = document.get("meta", {}).get("version")
    if etag:
        response.headers["ETag"] = etag
    return response


def _json_text(document: dict[str, Any]) -> str:
    if next(reversed(document), None) == "Resources":
        return scim_documents.list_json_text(document)
    return scim_documents.json_text(document)


# --- errors ----------------------------------------------------------------------------

STATUS_BY_ERROR: list[tuple[type[errors.DomainError], int, str | None]] = [
    (Unauthorized, 401, None),
    (errors.NotFound, 404, None),
    (errors.Forbidden, 403, None),
    (errors.PreconditionFailed, 412, None),
    (errors.RateLimited, 429, None),
    (errors.InvalidTransition, 409, None),
    (errors.Conflict, 409, "uniqueness"),
    (UnreadableBody, 400, "invalidSyntax"),
    (errors.InvalidInput, 400, "invalidValue"),
    (errors.Unavailable, 503, None),
]


def scim_error(status: int, detail: str, scim_type: str | None = None) -> Response:
    body: dict[str, Any] = {"schemas": [ERROR], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    response = Response(json.dumps(body), status=status, mimetype=MEDIA_TYPE)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="odock-sync SCIM"'
    return response


def render_scim_error(error: Exception) -> Response:
    """Every error under /scim/v2 as SCIM error JSON (RFC 7644 section 3.12)."""
    if isinstance(error, ScimError):
        return scim_error(error.status, error.message, error.scim_type)
    if isinstance(error, errors.DomainError):
        status, scim_type = next(
            ((s, t) for kind, s, t in STATUS_BY_ERROR if isinstance(error, kind)), (400, None)
        )
        return scim_error(status, error.message, scim_type)
    if isinstance(error, ValidationError):
        return scim_error(400, "the request does not match the schema", "invalidValue")
    if isinstance(error, IntegrityError):
        # Two requests raced for the same userName, email or group name; the loser is told so.
        return scim_error(409, "the resource conflicts with an existing one", "uniqueness")
    if isinstance(error, HTTPException):
        status = error.code or 500
        response = scim_error(status, error.description or error.name)
        said = error.get_response().headers
        for name in ("Allow", "Accept-Encoding"):
            if said.get(name):
                response.headers[name] = said[name]
        return response
    log.exception("scim.request_failed", path=request.path, error_type=type(error).__name__)
    return scim_error(500, "an unexpected error occurred; it has been logged")


register_protocol_renderer(PREFIX, render_scim_error)
