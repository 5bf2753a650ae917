"""models.db's statements compiled once for psycopg: PostgreSQL's own placeholders, numbered
once per statement, run through a RawCursor as SQLAlchemy would run them."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import ColumnElement, Engine, bindparam, literal_column, select
from sqlalchemy.dialects.postgresql import JSONB

from models import db


def test_named_placeholders_become_numbered_ones_a_repeated_name_one_number() -> None:
    sql = "SELECT %(a)s, %(b)s WHERE x = %(a)s AND y LIKE 'p%%' AND z %% 2 = %(c)s"
    assert db.numbered_placeholders(sql) == (
        "SELECT $1, $2 WHERE x = $1 AND y LIKE 'p%' AND z % 2 = $3",
        ("a", "b", "c"),
    )


@pytest.mark.parametrize("sql", ["SELECT %s", "SELECT %(a)s, 5 %", "SELECT %(a)b"])
def test_other_placeholders_are_left_to_sqlalchemy(sql: str) -> None:
    assert db.numbered_placeholders(sql) is None


def test_a_statement_runs_through_the_driver_as_sqlalchemy_runs_it(engine: Engine) -> None:
    """A repeated parameter, a literal percent sign, a value SQLAlchemy converts before
    sending it (JSON) and more parameters than psycopg's cache of conversions takes (50)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs every statement through SQLAlchemy")
    many: list[ColumnElement[Any]] = [bindparam(f"p{n}") for n in range(60)]
    statement = select(
        bindparam("n") % 7,
        literal_column("'100%'"),
        bindparam("n") + 1,
        bindparam("doc", type_=JSONB)["k"].astext,
        sum(many[1:], many[0]),
    )
    values = {"n": 23, "doc": {"k": "v"}, **{f"p{n}": n for n in range(60)}}
    with engine.connect() as connection:
        expected = connection.execute(statement, values).one()
    compiled = db.driver_statement(statement, engine.dialect)
    assert compiled is not None and "%(" not in compiled.sql
    pooled = engine.raw_connection()
    try:
        driver = pooled.driver_connection
        rows = db.run_prepared(driver, compiled.sql, compiled.parameters(values))
    finally:
        pooled.close()  # rolls back
    assert [compiled.row(row) for row in rows] == [tuple(expected)] == [(2, "100%", 24, "v", 1770)]
