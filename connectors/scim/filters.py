"""SCIM filters (RFC 7644 section 3.4.2.2): parse with scim2-filter-parser, then translate
the syntax tree into SQLAlchemy expressions through an explicit attribute map.

Nothing is string-built and nothing is evaluated in Python over many rows. The one
in-memory evaluator here, `matches`, tests the elements of ONE resource's multi-valued
attribute, for PATCH value paths such as `members[value eq "..."]`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from scim2_filter_parser import ast
from scim2_filter_parser.lexer import SCIMLexer
from scim2_filter_parser.parser import SCIMParser
from sqlalchemy import ColumnElement, String, and_, bindparam, false, func, not_, or_, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from connectors.email_address import email_key
from connectors.name_keys import name_key
from connectors.scim.booleans import boolean_of
from connectors.scim.casting import as_stored
from connectors.scim.errors import InvalidFilter, InvalidValue, ScimError
from connectors.scim.ids import named_id
from connectors.scim.schemas import Attribute

MAX_FILTER_LENGTH = 2000
# Parentheses and brackets nest at most this deep: the tree is translated (and compiled to
# SQL) recursively, so a deeper filter would exhaust the stack.
MAX_FILTER_NESTING = 32
_KEYWORDS = {"TRUE": True, "FALSE": False, "NULL": None}


class code_points(FunctionElement[str]):
    """A string compared and sorted in code point order (RFC 7644's lexicographic order, the
    reference server's), whatever the database's collation: PostgreSQL compares by the
    database's collation, under which `en_US`-like locales put "a" before "B" and "é" before
    "f", so it gets COLLATE "C"; SQLite's default BINARY collation compares UTF-8 bytes,
    which is code point order already."""

    inherit_cache = True
    name = "code_points"
    type = String()


@compiles(code_points)
def _code_points_as_is(element: code_points, compiler: Any, **kw: Any) -> str:
    (value,) = element.clauses
    return str(compiler.process(value, **kw))


@compiles(code_points, "postgresql")
def _code_points_postgresql(element: code_points, compiler: Any, **kw: Any) -> str:
    (value,) = element.clauses
    return f'({compiler.process(value, **kw)}) COLLATE "C"'


class Kind(StrEnum):
    STRING = "string"  # case-exact string
    TEXT = "text"  # case-insensitive string
    KEY = "key"  # case-insensitive string stored lowercased (compare lowered value)
    EMAIL = "email"  # an email stored as its key (connectors.email_address: compare the key)
    BOOLEAN = "boolean"
    DATETIME = "dateTime"
    UUID = "uuid"  # an id: caseExact, only as rendered (connectors.scim.ids)
    UUID_ANY_CASE = "uuid-any-case"  # an id in a reference published caseExact false
    BINARY = "binary"  # base64 text, case-exact, with no order (RFC 7643 section 2.3.6)


_STRINGS = (Kind.STRING, Kind.TEXT, Kind.KEY, Kind.EMAIL, Kind.BINARY)
_ORDERINGS = ("gt", "ge", "lt", "le")


@dataclass(frozen=True)
class Column:
    """A single-valued attribute held in one column (or a boolean expression)."""

    expr: Any
    kind: Kind = Kind.STRING


@dataclass(frozen=True)
class MultiValued:
    """A multi-valued attribute stored as rows of another table.

    `sub` maps lowercased sub-attribute names to their columns; `exists` wraps a condition
    on one child row into a correlated EXISTS on the parent.
    """

    sub: dict[str, Column]
    exists: Callable[[ColumnElement[bool]], ColumnElement[bool]]
    default_sub: str = "value"


AttributeMap = dict[str, Column | MultiValued]


def parse(text: str) -> ast.Filter:
    """The syntax tree of a filter; a malformed filter is invalidFilter."""
    return _parse(text, *_split(text))


def _split(text: str) -> tuple[str, list[str]]:
    """The filter's shape (each string replaced by its index) and its strings."""
    if not text or not text.strip():
        raise InvalidFilter("the filter is empty")
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidFilter(f"the filter is longer than {MAX_FILTER_LENGTH} characters")
    return _without_strings(text)


def _parse(text: str, shape: str, strings: list[Any]) -> ast.Filter:
    try:
        tree = SCIMParser().parse(_typed_tokens(shape, strings))
    except ScimError:
        raise
    except Exception as exc:  # the parser raises several unrelated types on bad input
        raise InvalidFilter(f"the filter {text!r} is malformed: {exc}") from None
    if tree is None:
        raise InvalidFilter(f"the filter {text!r} is malformed")
    return _regroup(tree)


def _regroup(node: Any) -> Any:
    """Give "and" precedence over "or" (RFC 7644 3.4.2.2).

    The parser gives both the same precedence, left to right, so `a or b and c` comes out
    as `(a or b) and c`. A chain written without parentheses is a LogExpr whose operand is
    a Filter holding a LogExpr directly (parentheses add one more Filter); such chains are
    flattened and rebuilt as ORs of ANDs.
    """
    if isinstance(node, ast.Filter):
        if isinstance(node.expr, ast.LogExpr):
            operands, operators = _chain(node.expr)
            return ast.Filter(_rebuild(operands, operators), node.negated, node.namespace)
        return ast.Filter(_regroup(node.expr), node.negated, node.namespace)
    if isinstance(node, ast.AttrExpr) and isinstance(node.attr_path.attr_name, ast.Filter):
        inner = node.attr_path.attr_name
        node.attr_path.attr_name = ast.Filter(_regroup(inner.expr), inner.negated, inner.namespace)
    return node


def _chain(expr: ast.LogExpr) -> tuple[list[Any], list[str]]:
    operands: list[Any] = []
    operators: list[str] = []
    for position, side in enumerate((expr.expr1, expr.expr2)):
        if position:
            operators.append(expr.op.lower())
        unparenthesised = (
            isinstance(side, ast.Filter)
            and isinstance(side.expr, ast.LogExpr)
            and not side.negated
            and side.namespace is None
        )
        if unparenthesised:
            inner_operands, inner_operators = _chain(side.expr)
            operands.extend(inner_operands)
            operators.extend(inner_operators)
        else:
            operands.append(_regroup(side))
    return operands, operators


def _rebuild(operands: list[Any], operators: list[str]) -> Any:
    groups: list[Any] = [operands[0]]
    for operator, operand in zip(operators, operands[1:], strict=True):
        if operator == "and":
            groups[-1] = ast.Filter(ast.LogExpr("and", groups[-1], operand), False, None)
        else:
            groups.append(operand)
    result = groups[0]
    for group in groups[1:]:
        result = ast.Filter(ast.LogExpr("or", result, group), False, None)
    return (
        result.expr
        if isinstance(result, ast.Filter) and isinstance(result.expr, ast.LogExpr)
        else result
    )


# A JSON string (RFC 7644 3.4.2.2: comparison values are JSON), escaped quotes included.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Kept: json.loads(text, strict=False) builds a decoder per call (5 of its 7 us, measured).
_STRING_DECODER = json.JSONDecoder(strict=False)


def _without_strings(text: str) -> tuple[str, list[str]]:
    """The filter with each string replaced by its index, and the decoded strings: the
    stock lexer knows no escapes, so `"a\\"b"` would end at the escaped quote."""
    strings: list[str] = []

    def index(match: re.Match[str]) -> str:
        try:
            value = _STRING_DECODER.decode(match.group(0))
        except ValueError:
            raise InvalidFilter(f"{match.group(0)} is not a valid JSON string") from None
        if _UNSTORABLE.search(value):  # an escaped NUL or lone surrogate
            raise InvalidValue("a filter value contains a NUL or a lone surrogate")
        strings.append(value)
        return f'"{len(strings) - 1}"'

    return _JSON_STRING.sub(index, text), strings


def _typed_tokens(text: str, strings: list[Any]) -> Iterator[Any]:
    """The lexer's tokens of a shape with JSON-typed comparison values (it keeps only
    strings): each string's index is replaced by `strings[index]`."""
    tokens = list(SCIMLexer().tokenize(text))
    _check_nesting(tokens)
    merged: list[Any] = []
    for token in tokens:
        # The stock lexer reads one digit per NUMBER token; glue adjacent digits back.
        previous = merged[-1] if merged else None
        if (
            token.type == "NUMBER"
            and previous is not None
            and previous.type == "NUMBER"
            and previous.index + len(str(previous.value)) == token.index
        ):
            previous.value = f"{previous.value}{token.value}"
            continue
        merged.append(token)
    for token in merged:
        if token.type == "COMP_VALUE":
            token.value = strings[int(token.value)]
        elif token.type in _KEYWORDS:
            token.value = _Literal(_KEYWORDS[token.type])
        elif token.type == "NUMBER":
            token.value = _Literal(int(token.value))
        yield token


def _check_nesting(tokens: list[Any]) -> None:
    depth = 0
    for token in tokens:
        depth += {"LPAREN": 1, "LBRACKET": 1, "RPAREN": -1, "RBRACKET": -1}.get(token.type, 0)
        if depth > MAX_FILTER_NESTING:
            raise InvalidFilter(f"the filter nests deeper than {MAX_FILTER_NESTING} levels")


@dataclass(frozen=True)
class _Literal:
    """A JSON literal (true, false, null, a number), told apart from a quoted string."""

    value: Any

    def lower(self) -> str:  # the parser lower()s the first token of `not (`
        return str(self.value).lower()


def comp_value(node: ast.CompValue | None) -> Any:
    if node is None:
        return None
    value = node.value
    return value.value if isinstance(value, _Literal) else value


# --- translation to SQL ---------------------------------------------------------------


def to_sql(tree: ast.Filter, attributes: AttributeMap) -> ColumnElement[bool]:
    return _Translator(attributes).filter(tree)


class Slot:
    """A filter's string, by its position, in a translation made once for every filter of
    the same shape: compared with a string attribute it becomes a bound parameter, and
    the attribute's kind is noted for when the value is bound (see _bound)."""

    __slots__ = ("index", "kind")

    def __init__(self, index: int) -> None:
        self.index = index
        self.kind: Kind | None = None  # None: not bound (never compared)

    @property
    def key(self) -> str:
        return f"scim_filter_{self.index}"


class _NotShared(Exception):
    """This shape's translation depends on its strings (an id, a dateTime, a pattern)."""


@dataclass(frozen=True)
class Translation:
    """A filter as SQL: `shape` names the translation (the same object for every filter of
    that shape, None when the filter was translated on its own), `parameters` binds it."""

    condition: ColumnElement[bool]
    parameters: dict[str, str]
    shape: str | None


class ShapeCache:
    """Filters translated once per shape (RFC 7644 filters whose strings differ alone:
    `userName eq "a"` and `userName eq "b"`), at most `size` shapes, least recently used
    out. IdPs send a handful of shapes with ever new values; parsing and translating each
    cost more CPU than the database's answer. Only shapes whose strings are compared for
    equality or order with a string attribute are shared; any other (ids, dateTimes,
    co/sw/ew patterns, errors) is parsed and translated as before, every time."""

    def __init__(self, attributes: AttributeMap, size: int = 256) -> None:
        self.attributes = attributes
        self._shared = lru_cache(maxsize=size)(self._translate_shape)

    def to_sql(self, text: str) -> Translation:
        shape, strings = _split(text)
        shared = self._shared(shape, len(strings))
        if shared is None:
            return Translation(to_sql(_parse(text, shape, strings), self.attributes), {}, None)
        condition, slots = shared
        parameters = {slot.key: _bound(slot.kind, as_stored(strings[slot.index])) for slot in slots}
        return Translation(condition, parameters, shape)

    def _translate_shape(
        self, shape: str, strings: int
    ) -> tuple[ColumnElement[bool], list[Slot]] | None:
        slots = [Slot(index) for index in range(strings)]
        try:
            condition = to_sql(_parse(shape, shape, slots), self.attributes)
        except (_NotShared, ScimError):
            return None  # translated per filter, where its errors tell its strings
        return condition, [slot for slot in slots if slot.kind is not None]


class _Translator:
    def __init__(self, attributes: AttributeMap) -> None:
        self.attributes = attributes

    def filter(self, node: Any, scope: MultiValued | None = None) -> ColumnElement[bool]:
        if isinstance(node, ast.Filter):
            if node.namespace is not None:
                if scope is not None:
                    raise InvalidFilter("value paths cannot be nested")
                multi = self._multi(node.namespace)
                expression = multi.exists(self.filter(node.expr, multi))
            else:
                expression = self.filter(node.expr, scope)
            # A comparison with an absent value is false, so its negation is true (SQL's
            # NULL would make both unknown).
            return not_(func.coalesce(expression, false())) if node.negated else expression
        if isinstance(node, ast.LogExpr):
            left, right = self.filter(node.expr1, scope), self.filter(node.expr2, scope)
            return and_(left, right) if node.op.lower() == "and" else or_(left, right)
        if isinstance(node, ast.AttrExpr):
            return self.attr_expr(node, scope)
        raise InvalidFilter("the filter is malformed")

    def attr_expr(self, node: ast.AttrExpr, scope: MultiValued | None) -> ColumnElement[bool]:
        op = node.value.lower()
        value = comp_value(node.comp_value)
        path = node.attr_path
        if isinstance(path.attr_name, ast.Filter):  # emails[type eq "work"].value eq "x"
            inner = path.attr_name
            multi = self._multi(inner.namespace)
            if inner.namespace.sub_attr is None:  # emails[type eq "work"] eq "x"
                raise InvalidFilter("a value path compared with a value must name a sub-attribute")
            sub = self._sub(multi, inner.namespace.sub_attr.value)
            return multi.exists(and_(self.filter(inner.expr, multi), compare(sub, op, value)))
        if scope is not None:
            return compare(self._sub(scope, _name(path, with_sub=True)), op, value)
        if (
            op == "pr"
            and path.sub_attr is None
            and _name(path, with_sub=False) not in self.attributes
        ):
            return self._complex_present(path)
        target = self._lookup(path)
        if isinstance(target, Column):
            return compare(target, op, value)
        if op == "pr" and path.sub_attr is None:
            return target.exists(true())
        sub_name = path.sub_attr.value if path.sub_attr is not None else target.default_sub
        sub = self._sub(target, sub_name)
        if op == "ne":  # no value equals it (absent included), as for a single value
            return not_(target.exists(compare(sub, "eq", value)))
        return target.exists(compare(sub, op, value))

    def _complex_present(self, path: ast.AttrPath) -> ColumnElement[bool]:
        """`name pr`: a complex attribute is present when any of its sub-attributes is."""
        prefix = _name(path, with_sub=False) + "."
        parts = [t for k, t in self.attributes.items() if k.startswith(prefix)]
        columns = [t for t in parts if isinstance(t, Column)]
        if not columns:
            raise InvalidFilter(f"filtering on {_display(path)} is not supported")
        return or_(*(compare(column, "pr", None) for column in columns))

    def _lookup(self, path: ast.AttrPath) -> Column | MultiValued:
        full = _name(path, with_sub=True)
        if full in self.attributes:
            return self.attributes[full]
        parent = _name(path, with_sub=False)
        target = self.attributes.get(parent)
        if isinstance(target, MultiValued):
            return target
        raise InvalidFilter(f"filtering on {_display(path)} is not supported")

    def _multi(self, path: Any) -> MultiValued:
        target = self.attributes.get(_name(path, with_sub=False))
        if not isinstance(target, MultiValued):
            raise InvalidFilter(f"{_display(path)} is not a multi-valued attribute")
        return target

    @staticmethod
    def _sub(multi: MultiValued, name: str) -> Column:
        column = multi.sub.get(name.lower())
        if column is None:
            raise InvalidFilter(f"filtering on sub-attribute {name} is not supported")
        return column


def _name(path: ast.AttrPath, *, with_sub: bool) -> str:
    if not isinstance(path.attr_name, str):
        raise InvalidFilter("the filter is malformed")
    name = path.attr_name
    if path.uri:
        name = f"{path.uri}:{name}"
    if with_sub and path.sub_attr is not None:
        name = f"{name}.{path.sub_attr.value}"
    return name.lower()


def _display(path: Any) -> str:
    try:
        return _name(path, with_sub=True)
    except InvalidFilter:
        return "that attribute"


def compare(column: Column, op: str, value: Any) -> ColumnElement[bool]:
    expr = column.expr
    if isinstance(value, Slot):
        return _compare_slot(column, op, value)
    if op == "pr":
        if column.kind in _STRINGS:
            return and_(expr.is_not(None), expr != "")
        return expr.is_not(None)  # a boolean that was never sent is absent, not false
    if value is None:
        check_operand(column.kind, op, value)
        return expr.is_(None) if op == "eq" else expr.is_not(None)
    if column.kind is Kind.BOOLEAN:
        return _compare_boolean(expr, op, value)
    if column.kind in (Kind.UUID, Kind.UUID_ANY_CASE):
        return _compare_uuid(expr, op, value, case_exact=column.kind is Kind.UUID)
    if column.kind is Kind.DATETIME:
        return _ordered(expr, op, _datetime(value))
    check_operand(column.kind, op, value)
    if column.kind is Kind.TEXT:
        expr = func.lower(expr)
    value = _bound(column.kind, as_stored(value) if op in _ORDERED_OPERATORS else value)
    if op == "co":
        return expr.contains(value, autoescape=True)
    if op == "sw":
        return expr.startswith(value, autoescape=True)
    if op == "ew":
        return expr.endswith(value, autoescape=True)
    if op == "ne":
        return or_(expr.is_(None), expr != value)
    if op in ("gt", "ge", "lt", "le"):
        expr = code_points(expr)
    return _ordered(expr, op, value)


def check_operand(kind: str, op: str, value: Any) -> None:
    """What an attribute of this type (a Kind, or a schema type: "string", "reference",
    "binary", "boolean") may be compared with, in a query filter and in a PATCH value path
    alike (RFC 7644 sections 3.4.2.2 and 3.5.2); anything else is invalidFilter, rather than
    a comparison that matches nothing (or, in a path, a value made of the filter's)."""
    if op == "pr":
        return
    if value is None:
        if op not in ("eq", "ne"):
            raise InvalidFilter(f"{op} cannot compare with null")
    elif kind == Kind.BOOLEAN:
        if boolean_of(value) is None or op not in ("eq", "ne"):
            raise InvalidFilter("a boolean attribute takes eq or ne with true or false")
    elif kind in (*_STRINGS, "reference"):
        if not isinstance(value, str):
            raise InvalidFilter(f"a string attribute cannot be compared with {value!r}")
        _refuse_binary_order(kind, op)


def _refuse_binary_order(kind: str, op: str) -> None:
    # RFC 7644 section 3.4.2.2: gt, ge, lt and le on a binary attribute SHALL be a 400
    # invalidFilter (matching nothing instead hides the client's mistake).
    if kind == Kind.BINARY and op in _ORDERINGS:
        raise InvalidFilter(f"the operator {op} does not apply to a binary attribute")


def _bound(kind: Kind | None, value: str) -> str:
    """A filter's string as the attribute's column compares it: lowered for case-insensitive
    text, a name's key for keys (connectors.name_keys: composed and lowered, as they are
    stored); an email as its key."""
    if kind is Kind.KEY:
        return name_key(value)
    if kind is Kind.EMAIL:
        return email_key(value)
    if kind is Kind.TEXT:
        return value.lower()
    return value


def _compare_slot(column: Column, op: str, slot: Slot) -> ColumnElement[bool]:
    """compare() of a string attribute with a string yet to be bound, in the same SQL (as
    compare() has it, bound as stored: a whole value, not a pattern, see ShapeCache)."""
    if column.kind not in _STRINGS or op not in _ORDERED_OPERATORS:
        raise _NotShared(op)
    _refuse_binary_order(column.kind, op)
    expr = func.lower(column.expr) if column.kind is Kind.TEXT else column.expr
    slot.kind = column.kind
    value: Any = bindparam(slot.key, type_=String())
    if op == "ne":
        return or_(expr.is_(None), expr != value)
    if op in ("gt", "ge", "lt", "le"):
        expr = code_points(expr)
    return _ordered(expr, op, value)


_ORDERED_OPERATORS = ("eq", "ne", "gt", "ge", "lt", "le")


def _ordered(expr: Any, op: str, value: Any) -> ColumnElement[bool]:
    operations: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
        "eq": lambda a, b: a == b,
        "ne": lambda a, b: or_(a.is_(None), a != b),
        "gt": lambda a, b: a > b,
        "ge": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "le": lambda a, b: a <= b,
    }
    if op not in operations:
        raise InvalidFilter(f"the operator {op} does not apply to this attribute")
    return operations[op](expr, value)


def _compare_boolean(expr: Any, op: str, value: Any) -> ColumnElement[bool]:
    check_operand(Kind.BOOLEAN, op, value)
    value = boolean_of(value)
    # IS TRUE / IS FALSE and their negations, never SQL's unknown. An unset boolean (an email
    # that never said `primary`) is absent, not false: `eq false` does not match it and `ne`
    # does, as for every other attribute (RFC 7644 section 3.4.2.2), and as a PATCH value
    # filter (`matches`) reads it.
    return expr.is_(value) if op == "eq" else expr.is_not(value)


def _compare_uuid(expr: Any, op: str, value: Any, *, case_exact: bool) -> ColumnElement[bool]:
    if op not in ("eq", "ne"):
        raise InvalidFilter(f"the operator {op} does not apply to id")
    wanted = named_id(value, case_exact=case_exact)
    if wanted is None:  # a string that is no id here equals none
        return false() if op == "eq" else true()
    return expr == wanted if op == "eq" else expr != wanted


def _datetime(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidFilter(f"{value!r} is not a dateTime") from None
    if parsed.tzinfo is None:
        raise InvalidFilter(f"{value!r} has no time zone")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-12:00: past the last date a column holds
        raise InvalidFilter(f"{value!r} is out of range") from None


# --- one resource's multi-valued elements (PATCH value paths) ----------------------------


def matches(node: Any, element: Any, attribute: Attribute | None = None) -> bool:
    """Whether one element of a multi-valued attribute satisfies a value filter; strings
    compare as the `attribute`'s sub-attributes' caseExact says (unknown ones in any case)."""
    if isinstance(node, ast.Filter):
        if node.namespace is not None:
            raise InvalidFilter("value paths cannot be nested")
        result = matches(node.expr, element, attribute)
        return not result if node.negated else result
    if isinstance(node, ast.LogExpr):
        if node.op.lower() == "and":
            return matches(node.expr1, element, attribute) and matches(
                node.expr2, element, attribute
            )
        return matches(node.expr1, element, attribute) or matches(node.expr2, element, attribute)
    if isinstance(node, ast.AttrExpr):
        path = node.attr_path
        if not isinstance(path.attr_name, str) or path.sub_attr is not None:
            raise InvalidFilter("a value filter names sub-attributes of the parent")
        if not isinstance(element, dict):
            return False
        actual = _get_ci(element, path.attr_name)
        sub = attribute.sub(path.attr_name) if attribute is not None else None
        exact = sub is not None and sub.case_exact
        wanted = comp_value(node.comp_value)
        if sub is not None and sub.type == "boolean":
            # Entra's app roles: `roles[primary eq "True"].value` names the primary role.
            wanted, actual = _as_boolean(wanted), _as_boolean(actual)
        return _match_value(node.value.lower(), actual, wanted, exact)
    raise InvalidFilter("the filter is malformed")


def comparisons(node: Any) -> Iterator[tuple[str, str, Any]]:
    """The sub-attribute, operator and value of each comparison of a value filter."""
    if isinstance(node, ast.Filter):
        yield from comparisons(node.expr)
    elif isinstance(node, ast.LogExpr):
        yield from comparisons(node.expr1)
        yield from comparisons(node.expr2)
    elif isinstance(node, ast.AttrExpr) and isinstance(node.attr_path.attr_name, str):
        yield node.attr_path.attr_name, node.value.lower(), comp_value(node.comp_value)


def equalities(node: Any) -> dict[str, Any] | None:
    """The sub-attribute values a filter of `eq` joined by `and` pins down, else None."""
    if isinstance(node, ast.Filter) and not node.negated and node.namespace is None:
        return equalities(node.expr)
    if isinstance(node, ast.LogExpr) and node.op.lower() == "and":
        left, right = equalities(node.expr1), equalities(node.expr2)
        return {**left, **right} if left is not None and right is not None else None
    if (
        isinstance(node, ast.AttrExpr)
        and node.value.lower() == "eq"
        and isinstance(node.attr_path.attr_name, str)
        and node.attr_path.sub_attr is None
    ):
        return {node.attr_path.attr_name: comp_value(node.comp_value)}
    return None


def _as_boolean(value: Any) -> Any:
    boolean = boolean_of(value)
    return value if boolean is None else boolean


def _get_ci(element: dict[str, Any], name: str) -> Any:
    wanted = name.lower()
    return next((v for k, v in element.items() if k.lower() == wanted), None)


def _match_value(op: str, actual: Any, wanted: Any, case_exact: bool) -> bool:
    if op == "pr":
        return actual not in (None, "", [], {})
    if isinstance(wanted, str) and op in _ORDERED_OPERATORS:
        wanted = as_stored(wanted)
    if isinstance(actual, str) and isinstance(wanted, str) and not case_exact:
        actual, wanted = actual.lower(), wanted.lower()
    if op == "eq":
        return bool(actual == wanted)
    if op == "ne":
        return bool(actual != wanted)
    if not isinstance(actual, str) or not isinstance(wanted, str):
        if op in ("gt", "ge", "lt", "le") and isinstance(actual, int | float):
            return _ordered_python(op, actual, wanted)
        return False
    if op == "co":
        return wanted in actual
    if op == "sw":
        return actual.startswith(wanted)
    if op == "ew":
        return actual.endswith(wanted)
    return _ordered_python(op, actual, wanted)


def _ordered_python(op: str, actual: Any, wanted: Any) -> bool:
    try:
        return bool(
            {
                "gt": actual > wanted,
                "ge": actual >= wanted,
                "lt": actual < wanted,
                "le": actual <= wanted,
            }[op]
        )
    except (TypeError, KeyError):
        raise InvalidFilter(f"cannot compare {actual!r} with {wanted!r}") from None
