"""Alembic environment for the platform database.

Run through `retailflow db upgrade` (which hands a connection over in `config.attributes["connection"]`), or
with the `alembic` command from the repository root (`alembic.ini`), where the URL is
`RETAILFLOW_DATABASE_URL` / the settings' default. The target metadata is the live `retailflow.db.metadata`,
so `alembic revision --autogenerate` writes the difference between the models and the last revision.
"""

from __future__ import annotations

from alembic import context

from adapters import sql as db

config = context.config
target_metadata = db.metadata
if config.config_file_name and "connection" not in config.attributes:  # the `alembic` command line
    from logging.config import fileConfig

    fileConfig(config.config_file_name, disable_existing_loggers=False)


def render_item(type_, obj, autogen_context):
    """Migrations are frozen DDL: write the application's UtcDateTime as the column type it stores
    (`sa.DateTime(timezone=True)`), so an old revision never depends on today's Python code."""
    if type_ == "type" and isinstance(obj, db.UtcDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, db.ExactMoney):
        # what ExactMoney stores (0006_exact_money): integer 1/10000 units on SQLite, NUMERIC(18, 4) elsewhere
        dialect = getattr(autogen_context, "dialect", None)
        return "sa.BigInteger()" if dialect is not None and dialect.name == "sqlite" else \
            f"sa.Numeric({obj.impl.precision}, {obj.impl.scale})"
    return False


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_item=render_item,
        render_as_batch=connection.dialect.name == "sqlite",  # ALTER TABLE on SQLite needs batch mode
        compare_type=True,
    )


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from runtime.settings import Settings

    return Settings().effective_database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_item=render_item, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = db.make_engine(_url())
    try:
        with engine.connect() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
