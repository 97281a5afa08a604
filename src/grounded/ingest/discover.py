"""Which files an ingest run reads, and the source name each one gets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from grounded.ingest.loaders import is_supported


@dataclass(frozen=True, slots=True)
class SourceFile:
    path: Path
    source: str  # relative to the folder given on the command line, '/'-separated
    root: Path


def discover(paths: list[Path]) -> tuple[list[SourceFile], list[Path]]:
    """Supported files under the given paths (sorted, hidden entries skipped), and the rest."""
    files: list[SourceFile] = []
    ignored: list[Path] = []
    for given in paths:
        if given.is_dir():
            root = given.resolve()
            for path in sorted(root.rglob("*")):
                rel = path.relative_to(root)
                if any(part.startswith(".") for part in rel.parts) or not path.is_file():
                    continue
                if is_supported(path):
                    files.append(SourceFile(path, rel.as_posix(), root))
                else:
                    ignored.append(path)
        else:
            # A file named on the command line is always attempted, so its failure is reported.
            files.append(SourceFile(given, given.name, given.resolve().parent))
    return files, ignored
