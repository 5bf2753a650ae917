"""The one guard on request input, shared by SCIM, the admin API, the IdP receivers and the
HTML forms.

JSON is decoded by one guarded decoder (nesting depth, integer size, no NaN or Infinity, no
NUL or lone surrogate in any string, no name twice in one object; a leading UTF-8 byte order
mark ignored), forms by one reader (urlencoded UTF-8, each field once, no NUL or lone
surrogate) and query parameters, paths and header values pass one check, so every protocol
refuses the same hostile input before anything reads it; each renders the refusal its way.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qs

from flask import Request, current_app, g, request
from pydantic import BaseModel, ConfigDict
from werkzeug.exceptions import NotImplemented as NotImplementedStatus
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType

from models.errors import InvalidInput
from models.numbers import INTEGER_TEXT

ModelT = TypeVar("ModelT", bound=BaseModel)

MAX_DEPTH = 32
# Enough for any 64-bit count or id; far below Python's own int parsing limit (4,300).
MAX_INTEGER_DIGITS = 20
# PostgreSQL refuses NUL in text; a lone surrogate cannot be encoded as UTF-8 at all.
HOSTILE_CHARACTER = re.compile("[\x00\ud800-\udfff]")
# The escape of NUL or of a surrogate: a cheap gate before walking the strings (an escaped
# backslash before "u0000" passes it too, and the walk then finds nothing).
SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


class UnreadableBody(InvalidInput):
    """The body is not JSON we parse: malformed, not UTF-8, NaN or Infinity, too deep, a
    name given twice in one object."""


class UnacceptableValue(InvalidInput):
    """Well-formed input carrying a value nothing may store (NUL, a lone surrogate, a
    number too large)."""


class FormRejected(InvalidInput):
    """A form we do not read: not urlencoded, not UTF-8, a field given twice."""

    code = "form_rejected"


class FormTooLarge(FormRejected):
    code = "form_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the form is larger than {limit} bytes")


FORM_TYPE = "application/x-www-form-urlencoded"
# RFC 8259 section 8.1: senders MUST NOT add one, parsers MAY ignore it. .NET's
# Encoding.UTF8 writes one (StreamWriter, StringContent built from a stream), so some clients
# send it: refusing them bought nothing, and the refusal read "Expecting value at position 0".
UTF8_BOM = b"\xef\xbb\xbf"


class RequestBody(BaseModel):
    """Base of every request schema: unknown fields and wrong types are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)


def decode_json(raw: bytes, *, names_in_any_case: bool = False) -> Any:
    """The JSON document in `raw`, or UnreadableBody / UnacceptableValue saying why not.
    `names_in_any_case`: names differing only in case are one name (SCIM)."""
    try:
        text = raw.removeprefix(UTF8_BOM).decode("utf-8")
    except UnicodeDecodeError:
        raise UnreadableBody("the body is not valid UTF-8") from None
    try:
        decoder = _CASELESS_DECODER if names_in_any_case else _DECODER
        document = decoder.decode(text)
    except RecursionError:
        raise _too_deep() from None
    except json.JSONDecodeError as exc:
        raise UnreadableBody(
            f"the body is not valid JSON: {exc.msg} at position {exc.pos}"
        ) from None
    # Few brackets cannot nest deeply, and NUL and surrogates can only arrive as \u escapes
    # (raw control characters are invalid JSON, raw surrogates invalid UTF-8): most bodies
    # skip both walks.
    if isinstance(document, dict | list) and text.count("[") + text.count("{") > MAX_DEPTH:
        _check_depth(document)
    if SUSPECT_ESCAPE.search(text):
        _check_strings(document)
    return document


def check_text(value: str, name: str, field: str | None = None) -> None:
    if HOSTILE_CHARACTER.search(value):
        raise UnacceptableValue(
            f"{name} contains a NUL character or a lone surrogate", field=field or name
        )


def check_query(req: Request) -> None:
    """Every query parameter (names and values) of the request passes check_text, and none
    is given twice: every reader takes the first value, where a proxy or filter in front may
    take the last (`?revoke_own=true&revoke_own=false`), so a repeat is refused, not read one
    way."""
    if not req.environ.get("QUERY_STRING"):
        return  # most requests have none: nothing to parse
    _check_query_bytes(req.query_string)
    seen: set[str] = set()
    for key, value in req.args.items(multi=True):
        check_text(key, "a query parameter name")
        check_text(value, key)
        if key in seen:
            raise UnacceptableValue(f"the query parameter {key[:64]!r} is given twice", field=key)
        seen.add(key)


def _check_query_bytes(query: bytes) -> None:
    """A byte sent raw (not percent-encoded) that is not UTF-8: werkzeug decodes the query
    string strictly before it parses it, and raised (a 500) on `?q=\xe9` from a server or
    proxy that forwards the byte as it came (gunicorn refuses it; not every front does)."""
    if query.isascii():
        return
    try:
        query.decode("utf-8")
    except UnicodeDecodeError:
        raise UnacceptableValue("the query string is not valid UTF-8", field="query") from None


def check_headers(req: Request) -> None:
    """No header's value carries a NUL (or a lone surrogate): RFC 9110 section 5.5 forbids
    it and gunicorn refuses it, but not every front does, and a header's value reaches the
    database as text (a signed webhook-id with a NUL was a 500 on PostgreSQL)."""
    # Every text of the WSGI environ searched at once, the headers' values among them:
    # walking req.headers spelled each header's name anew on every request, only to name
    # the one refused (a SCIM client's eight headers: 27 against 8 us, measured alone).
    texts = [value for value in req.environ.values() if value.__class__ is str]
    if not HOSTILE_CHARACTER.search("\n".join(texts)):
        return
    for name, value in req.headers.items():
        if HOSTILE_CHARACTER.search(value):
            raise UnacceptableValue(
                f"the header {name[:64]} contains a NUL character", field=name[:64].lower()
            )


def check_path(req: Request) -> None:
    """The path passes check_text too: its slugs, tokens and ids reach lookups as text (a
    NUL in a slug was a 500 on PostgreSQL, which refuses NUL in text). A lone surrogate
    cannot arrive (a path's bytes are decoded with replacement); the check is the same."""
    if HOSTILE_CHARACTER.search(req.path):
        raise UnacceptableValue(
            "the path contains a NUL character or a lone surrogate", field="path"
        )


class UnsupportedEncoding(UnsupportedMediaType):
    """A body in a content coding we do not read (RFC 9110 section 15.5.16: 415, saying in
    Accept-Encoding which codings would do)."""

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [*super().get_headers(*args, **kwargs), ("Accept-Encoding", "identity")]


class UnsupportedTransferCoding(NotImplementedStatus):
    """A body in a transfer coding we do not decode (RFC 9112 section 6.1: 501, as gunicorn
    answers one it does not know)."""


def check_content_encoding(req: Request) -> None:
    """Bodies are read as they arrive: one sent compressed (`Content-Encoding: gzip`, as a
    proxy may send it; no IdP does) is refused, never parsed as if it were JSON. Decoding
    it instead would add a decompression bomb to guard against for a client nobody has.
    So is one compressed as it is transferred (`Transfer-Encoding: gzip, chunked`): gunicorn
    takes the chunks off and hands the app the compressed bytes, which it read as JSON."""
    environ = req.environ  # as req.headers.get reads them, without its key spelling per call
    coding = environ.get("HTTP_CONTENT_ENCODING", "").strip().lower()
    if coding not in ("", "identity"):
        raise UnsupportedEncoding(
            f"Content-Encoding {coding[:40]!r} is not supported; send the body uncompressed"
        )
    transfer = environ.get("HTTP_TRANSFER_ENCODING", "")
    if any(part.strip().lower() != "chunked" for part in transfer.split(",") if transfer):
        raise UnsupportedTransferCoding(
            f"Transfer-Encoding {transfer[:40]!r} is not supported; send the body chunked "
            "or with a Content-Length, uncompressed"
        )


def integer_text(value: str, name: str) -> int:
    """An integer written in ASCII digits (not "١٢", "²", "1_000" or " 12"), at most 20 of
    them, with an optional sign."""
    if not INTEGER_TEXT.fullmatch(value):
        raise UnacceptableValue(f"{name} must be an integer in ASCII digits", field=name)
    if len(value.lstrip("+-")) > MAX_INTEGER_DIGITS:
        raise UnacceptableValue(f"{name} must have at most {MAX_INTEGER_DIGITS} digits", field=name)
    return int(value)


def limit_body(limit: int) -> None:
    """This request's body may be at most `limit` bytes; set before anything reads it. werkzeug
    is told one byte more: it stops reading a body without a Content-Length (chunked) at
    request.max_content_length silently, so at the limit itself a longer body, cut short, could
    not be told from one of exactly the limit (a JSON body over MAX_BODY_BYTES was read cut: a
    400 "not valid JSON" instead of a 413)."""
    req = request._get_current_object()  # type: ignore[attr-defined]
    limit_request_body(g._get_current_object(), req, limit)


def limit_request_body(state: Any, req: Request, limit: int) -> None:
    """limit_body for the request `req` whose `g` is `state` (the app's hooks hold both)."""
    state.body_limit = limit
    req.max_content_length = limit + 1


def read_body(
    limit: int | None = None, too_large: Callable[[int], Exception] | None = None
) -> bytes:
    """The request's body, at most `limit` bytes (this request's, limit_body, when not given),
    or `too_large(limit)` (413): a Content-Length over the limit before anything is read, a
    chunked body once one byte past the limit is, never the rest of it. The one reader of
    bodies: the JSON, form and webhook readers all read through it."""
    if limit is None:
        limit = _request_limit()
    else:
        limit_body(limit)  # werkzeug stops there too, unless the body was read already
    refuse = too_large or _body_too_large
    if (request.content_length or 0) > limit:
        raise refuse(limit)
    raw = request.get_data(cache=True)
    if len(raw) > limit:
        raise refuse(limit)
    return raw


def _request_limit() -> int:
    limit: int = g.get("body_limit") or current_app.config["MAX_CONTENT_LENGTH"]
    return limit


def _body_too_large(limit: int) -> Exception:
    return RequestEntityTooLarge(f"the body must be at most {limit} bytes")


def check_json_type(req: Request) -> None:
    """A body said to be anything but JSON (a form, `text/plain`, `application/xml`) is 415,
    never read as JSON: application/json, any `+json` type (application/scim+json) or none.
    The admin API, the Odock bridge and SCIM read their bodies so; the Okta and signed
    generic event receivers (webhooks.idp_hooks) read a delivery whatever its type, rather
    than lose a leaver's event to a sender's header."""
    media = req.mimetype
    if media and media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(f"Content-Type {media[:60]!r} is not JSON")


def json_body() -> Any:
    """The parsed JSON body of the request, or a clear 415 (check_json_type) or 400 (see
    decode_json)."""
    check_json_type(request)
    raw = read_body()
    if not raw:
        raise UnreadableBody("a JSON body is required")
    return decode_json(raw)


def form_fields(limit: int | None = None) -> dict[str, str]:
    """The request's form, or a clear refusal: urlencoded, at most `limit` bytes (FormTooLarge,
    read no further than read_body does; this request's limit when not given), UTF-8 (a
    byte that is not was read as U+FFFD and kept), each field once (a repeat was read as its
    first value, where a proxy or filter in front may take the last), no NUL or lone
    surrogate in a name or value (check_text, as in JSON and queries)."""
    if request.mimetype != FORM_TYPE:
        raise FormRejected(f"the form must be sent as {FORM_TYPE}")
    raw = read_body(limit, FormTooLarge)
    try:
        fields = parse_qs(raw.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise FormRejected("the form is not valid UTF-8") from None
    for name, values in fields.items():
        check_text(name, "a form field name")
        if len(values) != 1:
            raise FormRejected(f"the form field {name[:64]!r} is sent more than once", field=name)
        check_text(values[0], name)
    return {name: values[0] for name, values in fields.items()}


def parse_body(schema: type[ModelT]) -> ModelT:
    data = json_body()
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object")
    return schema.model_validate(data)


def parse_optional_body(schema: type[ModelT]) -> ModelT:
    """For actions whose fields are all optional: no body means the defaults."""
    if not read_body():
        return schema()
    return parse_body(schema)


class NoFields(RequestBody):
    """An action that takes no fields: a body, if sent, must be `{}`."""


def no_fields() -> None:
    """An action that takes no fields refuses one it is sent (400 naming it), rather than
    drop it without a word: `{"note": "seen"}` acknowledged a finding and lost the note."""
    parse_optional_body(NoFields)


def _refuse_constant(name: str) -> Any:
    raise UnreadableBody(f"the body is not valid JSON: {name} is not a JSON number")


def _bounded_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise UnacceptableValue(f"a number in the body has more than {MAX_INTEGER_DIGITS} digits")
    return int(literal)


def _finite_float(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):
        raise UnacceptableValue(f"the number {literal[:40]} is too large")
    return number


def _unique_names(members: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose names are each given once (RFC 8259 section 4: names SHOULD be unique;
    I-JSON, RFC 7493, MUST). Python keeps the last of `{"role": "user", "role": "admin"}`
    where a proxy or filter in front may read the first, so a repeat is refused, not read
    one way (as a query parameter or form field given twice is)."""
    document = dict(members)
    if len(document) != len(members):
        name = _repeated_name(members, fold=False)
        raise UnreadableBody(f"the body gives the name {name[:64]!r} twice in one object")
    return document


def _unique_names_in_any_case(members: list[tuple[str, Any]]) -> dict[str, Any]:
    """As `_unique_names`, for a protocol whose names are case-insensitive (SCIM, RFC 7643
    section 2.1): `userName` and `USERNAME` are one name given twice."""
    document = _unique_names(members)
    if len({name.lower() for name in document}) != len(document):
        name = _repeated_name(members, fold=True)
        raise UnreadableBody(f"the body gives {name[:64]!r} twice (names are case-insensitive)")
    return document


def _repeated_name(members: list[tuple[str, Any]], *, fold: bool) -> str:
    seen: set[str] = set()
    for name, _ in members:
        key = name.lower() if fold else name
        if key in seen:
            return name
        seen.add(key)
    return ""


def _decoder(
    object_pairs_hook: Callable[[list[tuple[str, Any]]], dict[str, Any]],
) -> json.JSONDecoder:
    return json.JSONDecoder(
        parse_constant=_refuse_constant,
        parse_int=_bounded_int,
        parse_float=_finite_float,
        object_pairs_hook=object_pairs_hook,
    )


_DECODER = _decoder(_unique_names)
_CASELESS_DECODER = _decoder(_unique_names_in_any_case)


def _check_depth(document: Any) -> None:
    """Refuse nesting beyond MAX_DEPTH, walked without recursion (the document may be deep)."""
    pending: list[tuple[dict[str, Any] | list[Any], int]] = [(document, 0)]
    while pending:
        value, depth = pending.pop()
        if depth >= MAX_DEPTH:
            raise _too_deep()
        children = value.values() if isinstance(value, dict) else value
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def _check_strings(document: Any) -> None:
    """Refuse NUL and lone surrogates in every string and name, saying where."""
    pending: list[tuple[Any, tuple[str | int, ...]]] = [(document, ())]
    while pending:
        value, path = pending.pop()
        if isinstance(value, str):
            check_text(value, _dotted(path) or "the body")
        elif isinstance(value, list):
            pending.extend((item, (*path, index)) for index, item in enumerate(value))
        elif isinstance(value, dict):
            for key, item in value.items():
                where = _dotted(path) or "the body"
                check_text(key, f"a name in {where}", field=where)
                pending.append((item, (*path, key)))


def _dotted(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(
        "."
    )


def _too_deep() -> UnreadableBody:
    return UnreadableBody(f"the body is nested too deeply (more than {MAX_DEPTH} levels)")
