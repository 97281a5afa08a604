"""What an ingest run did, for the summary table and the exit code."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str, str]] = field(default_factory=list)  # source, of, kind
    failed: list[tuple[str, str]] = field(default_factory=list)  # source, reason
    ignored: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    chunks_written: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    duplicate_chunks: int = 0
    embed_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed
