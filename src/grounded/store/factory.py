"""Pick the store backend from settings."""

from __future__ import annotations

from grounded.settings import Settings
from grounded.store.protocol import Store


def build_store(settings: Settings) -> Store:
    from grounded.store.sqlite import SqliteStore

    return SqliteStore(
        settings.data_dir,
        expansion_search=settings.retrieve.expansion_search,
        exact_below=settings.retrieve.exact_below,
    )
