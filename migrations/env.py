"""Alembic environment: the database comes from the settings, the schema from models."""

from alembic import context
from sqlalchemy import Connection

import models.entities  # noqa: F401  (registers every table)
from models.base import Base
from models.db import make_engine
from models.migrate import include_object
from models.settings import load_settings

config = context.config


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    engine = make_engine(load_settings())
    with engine.connect() as conn:
        run(conn)
    engine.dispose()
