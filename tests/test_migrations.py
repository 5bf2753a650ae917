"""The Alembic migrations build exactly the schema the models declare."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from models.base import Base
from models.migrate import include_object


def test_migrated_schema_matches_the_models(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_object": include_object})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_user_search_has_one_trigram_index_on_postgresql_only(engine):
    """0037 replaced 0002's two indexes (email, name) with one over the search text, where
    pg_trgm exists (the CI PostgreSQL has it); SQLite stays plain."""
    from sqlalchemy import inspect

    names = {index["name"] for index in inspect(engine).get_indexes("users")}
    assert not names & {"ix_users_email_key_trgm", "ix_users_name_trgm"}
    assert ("ix_users_search_trgm" in names) is (engine.dialect.name == "postgresql")


def test_the_user_search_uses_its_trigram_index_on_postgresql(engine):
    """The planner takes an expression index only for that very expression: the search's
    (models.queries.users.search_text) must be the index's."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's trigram index (SQLite searches unindexed)")
    from sqlalchemy import select, text

    from models.entities import User
    from models.queries.users import matching_search

    query = select(User.id).where(matching_search("smith", "postgresql"))
    compiled = query.compile(engine)
    with engine.connect() as connection:
        connection.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(
            connection.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params).scalars()
        )
    assert "ix_users_search_trgm" in plan, plan


def test_audit_stream_order_indexes_hold_numbered_events_only_on_postgresql(engine):
    """Events are written unnumbered: on PostgreSQL an insert adds no entry to the `seq`
    indexes (0034), which every query on `seq` can still use (it compares `seq`)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's partial indexes (0034 leaves SQLite as it is)")
    from sqlalchemy import text

    with engine.connect() as connection:
        definitions = dict(
            connection.execute(
                text(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'audit_events'"
                    " AND indexname IN ('ix_audit_events_seq', 'ix_audit_events_org_seq')"
                )
            ).all()
        )
        plan = "\n".join(
            connection.execute(text("EXPLAIN SELECT max(seq) FROM audit_events")).scalars()
        )
    assert set(definitions) == {"ix_audit_events_seq", "ix_audit_events_org_seq"}
    for definition in definitions.values():
        assert definition.endswith("WHERE (seq IS NOT NULL)"), definition
    assert "UNIQUE" in definitions["ix_audit_events_seq"]
    assert "ix_audit_events_seq" in plan, plan


def test_bulk_written_timestamps_default_to_now_and_audit_json_uses_lz4_on_postgresql(engine):
    """0035: a COPY that leaves the creation and update times out gets the transaction's
    start; the audit JSON is compressed with lz4 where the server has it."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's column defaults and TOAST compression (SQLite is left as it is)")
    from sqlalchemy import text

    with engine.connect() as connection:
        defaults = connection.execute(
            text(
                "SELECT table_name, column_name, column_default FROM information_schema.columns"
                " WHERE table_name IN ('users', 'identity_links', 'team_memberships')"
                " AND column_name IN ('created_at', 'updated_at')"
            )
        ).all()
        lz4 = connection.scalar(
            text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")
        )
        compression = dict(
            connection.execute(
                text(
                    "SELECT attname, attcompression FROM pg_attribute"
                    " WHERE attrelid = 'audit_events'::regclass AND attname IN ('before', 'after')"
                )
            ).all()
        )
    assert len(defaults) == 5
    assert {default for _, _, default in defaults} == {"now()"}, defaults
    if "lz4" in lz4:
        assert compression == {"before": "l", "after": "l"}


def test_deleting_an_organisation_removes_its_identity_links_through_their_users(session):
    """0036 dropped the links' own foreign key to the organisations: the cascade goes
    organisation -> users -> identity links, on both databases."""
    from sqlalchemy import inspect, select

    from models.entities import IdentityLink, Organisation, User
    from models.enums import Role, Source, UserStatus

    keys = inspect(session.get_bind()).get_foreign_keys("identity_links")
    assert [(key["referred_table"], key["constrained_columns"]) for key in keys] == [
        ("users", ["user_id"])
    ]
    kept, gone = Organisation(name="Kept", slug="kept"), Organisation(name="Gone", slug="gone")
    session.add_all([kept, gone])
    session.flush()
    for organisation in (kept, gone):
        user = User(organisation_id=organisation.id, name="Ann", role=Role.USER)
        user.status = UserStatus.ACTIVE
        user.set_email("ann@example.com")
        session.add(user)
        session.flush()
        session.add(
            IdentityLink(
                organisation_id=organisation.id,
                user_id=user.id,
                source=Source.LDAP,
                external_id="uuid-ann",
            )
        )
    session.commit()
    session.delete(gone)
    session.commit()
    session.expire_all()
    links = session.execute(select(IdentityLink.organisation_id)).scalars().all()
    assert links == [kept.id]
    assert session.execute(select(User.organisation_id)).scalars().all() == [kept.id]
