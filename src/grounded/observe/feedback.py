"""Thumbs up/down on answers, kept per tenant: in DATA_DIR/feedback.db by default, in
PostgreSQL (table `feedback`, migration 0003) when the store is there, so that every
replica writes to one place and a replaced pod loses nothing."""

from __future__ import annotations

from typing import Any, Protocol

from grounded.settings import Settings


class FeedbackStore(Protocol):
    async def add(self, tenant: str, answer_id: str, rating: str, comment: str | None) -> int:
        """Store one rating; returns its id."""
        ...

    async def for_tenant(self, tenant: str, limit: int = 100) -> list[dict[str, Any]]:
        """This tenant's feedback, newest first."""
        ...

    async def close(self) -> None: ...


def build_feedback_store(settings: Settings) -> FeedbackStore:
    if settings.store_url is not None:
        from grounded.observe.feedback_postgres import PostgresFeedbackStore

        return PostgresFeedbackStore(settings.store_url.get_secret_value(), settings.postgres)
    from grounded.observe.feedback_sqlite import SqliteFeedbackStore

    return SqliteFeedbackStore(settings.data_dir / "feedback.db")
