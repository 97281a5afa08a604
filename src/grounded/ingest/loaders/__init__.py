"""File formats Grounded reads, chosen by file suffix."""

from __future__ import annotations

from pathlib import Path

from grounded.errors import LoadError
from grounded.ingest.loaders.html import HtmlLoader
from grounded.ingest.loaders.jsonl import JsonlLoader
from grounded.ingest.loaders.markdown import MarkdownLoader
from grounded.ingest.loaders.pdf import PdfLoader
from grounded.ingest.loaders.protocol import Loaded, Loader
from grounded.ingest.loaders.text import TextLoader

LOADERS: tuple[Loader, ...] = (
    MarkdownLoader(),
    HtmlLoader(),
    TextLoader(),
    PdfLoader(),
    JsonlLoader(),
)
_BY_SUFFIX = {suffix: loader for loader in LOADERS for suffix in loader.suffixes}

__all__ = ["Loaded", "Loader", "is_supported", "load_file"]


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in _BY_SUFFIX


def load_file(path: Path, source: str, max_bytes: int) -> Loaded:
    """Read and parse one file; every problem becomes a `LoadError` with a plain reason."""
    loader = _BY_SUFFIX.get(path.suffix.lower())
    if loader is None:
        raise LoadError(f"unsupported file type {path.suffix or '(none)'!r}")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise LoadError(f"file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit")
        data = path.read_bytes()
    except PermissionError as exc:
        raise LoadError("permission denied") from exc
    except OSError as exc:
        raise LoadError(f"cannot read file: {exc.strerror or exc}") from exc
    result = loader.load(data, source, str(path.resolve()))
    return result if isinstance(result, Loaded) else Loaded(documents=result)
