"""Pick the store backend from settings: PostgreSQL when a URL is set, else the embedded one."""

from __future__ import annotations

from grounded.settings import Settings
from grounded.store.protocol import Store


def build_store(settings: Settings) -> Store:
    if settings.store_url is not None:
        from grounded.store.postgres import PostgresStore

        return PostgresStore(settings.store_url.get_secret_value(), settings.postgres)

    from grounded.store.sqlite import SqliteStore

    return SqliteStore(
        settings.data_dir,
        expansion_search=settings.retrieve.expansion_search,
        exact_below=settings.retrieve.exact_below,
    )
