"""Postgres connection pool and plain-SQL migrations (applied in order, tracked, under an advisory lock)."""

from __future__ import annotations

import json
import logging
from importlib import resources

import asyncpg

from infra.errors import DatabaseUnavailable, MigrationError

log = logging.getLogger("voxflow.db")

# Any fixed number works; it only has to be the same for every process migrating this database.
_MIGRATION_LOCK_ID = 0x766F78666C6F77


async def _init_connection(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 5) -> asyncpg.Pool:
    try:
        return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init_connection)
    except (OSError, asyncpg.CannotConnectNowError, asyncpg.InvalidCatalogNameError) as error:
        raise DatabaseUnavailable(f"cannot connect to Postgres at {_redact(dsn)}: {error}") from error


async def check_database(pool: asyncpg.Pool) -> None:
    """``SELECT 1`` on a pooled connection; ``DatabaseUnavailable`` when Postgres does not answer it."""
    try:
        async with pool.acquire() as connection:
            await connection.fetchval("SELECT 1")
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise DatabaseUnavailable(f"Postgres did not answer SELECT 1: {type(error).__name__}: {error}") from error


def _redact(dsn: str) -> str:
    if "@" not in dsn:
        return dsn
    scheme, rest = dsn.split("://", 1)
    credentials, host = rest.split("@", 1)
    return f"{scheme}://{credentials.split(':', 1)[0]}@{host}"


def migration_files() -> list[tuple[str, str]]:
    folder = resources.files("infra") / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text()) for f in files]


async def apply_migrations(pool: asyncpg.Pool) -> list[str]:
    """Apply every migration not yet recorded in `schema_migrations`; returns the names applied."""
    applied_now = []
    async with pool.acquire() as connection:
        await connection.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_ID)
        try:
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["name"] for r in await connection.fetch("SELECT name FROM schema_migrations")}
            for name, sql in migration_files():
                if name in done:
                    continue
                await _apply_one(connection, name, sql)
                applied_now.append(name)
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK_ID)
    return applied_now


async def _apply_one(connection: asyncpg.Connection, name: str, sql: str) -> None:
    try:
        async with connection.transaction():
            await connection.execute(sql)
            await connection.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
    except asyncpg.PostgresError as error:
        raise MigrationError(f"migration {name} failed: {error}") from error
    log.info("applied migration %s", name)
