"""Document-level duplicate detection: exact (content hash) and near (MinHash + LSH).

The LSH index lives in memory and is rebuilt from the signatures the store keeps, so a
near-duplicate is caught across runs and processes without a second database.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from datasketch import MinHash, MinHashLSH

from grounded.types import DocId

# Stored signatures are only comparable under the scheme that made them: pin it.
_SCHEME = "affine32"
_WORD = re.compile(r"\w+", re.UNICODE)


def content_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.lower().split()).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class DuplicateOf:
    doc_id: DocId
    source: str
    kind: str  # "exact" or "near"


class DuplicateIndex:
    """Finds a stored document that an incoming one duplicates, within one collection."""

    def __init__(self, threshold: float, shingle_words: int, permutations: int) -> None:
        self._threshold = threshold
        self._shingle_words = shingle_words
        self._permutations = permutations
        self._enabled = threshold < 1.0
        self._lsh = (
            MinHashLSH(threshold=threshold, num_perm=permutations) if self._enabled else None
        )
        self._by_hash: dict[str, tuple[DocId, str]] = {}
        self._sources: dict[DocId, str] = {}
        self._hash_of: dict[DocId, str] = {}

    def signature(self, text: str) -> bytes:
        words = [w.lower() for w in _WORD.findall(text)]
        n = self._shingle_words
        shingles = {" ".join(words[i : i + n]).encode() for i in range(max(1, len(words) - n + 1))}
        minhash = MinHash(num_perm=self._permutations, scheme=_SCHEME)
        minhash.update_batch(list(shingles))
        return bytes(minhash.hashvalues.astype(np.uint64).tobytes())

    def _minhash(self, signature: bytes) -> MinHash:
        values = np.frombuffer(signature, dtype=np.uint64)
        return MinHash(num_perm=len(values), hashvalues=values, scheme=_SCHEME)

    def add(self, doc_id: DocId, source: str, hash_: str, signature: bytes | None) -> None:
        self.remove(doc_id)
        self._by_hash.setdefault(hash_, (doc_id, source))
        self._sources[doc_id] = source
        self._hash_of[doc_id] = hash_
        if self._lsh is not None and signature and len(signature) == self._permutations * 8:
            self._lsh.insert(doc_id, self._minhash(signature), check_duplication=False)

    def add_all(self, rows: Iterable[tuple[DocId, str, str, bytes | None]]) -> None:
        for doc_id, source, hash_, signature in rows:
            self.add(doc_id, source, hash_, signature)

    def remove(self, doc_id: DocId) -> None:
        if doc_id not in self._sources:
            return
        del self._sources[doc_id]
        hash_ = self._hash_of.pop(doc_id)
        if self._by_hash.get(hash_, (None, ""))[0] == doc_id:
            del self._by_hash[hash_]
        if self._lsh is not None and doc_id in self._lsh.keys:
            self._lsh.remove(doc_id)

    def find(self, doc_id: DocId, hash_: str, signature: bytes) -> DuplicateOf | None:
        """The stored document this one duplicates; never itself (an older version)."""
        exact = self._by_hash.get(hash_)
        if exact is not None and exact[0] != doc_id:
            return DuplicateOf(exact[0], exact[1], "exact")
        if self._lsh is None:
            return None
        for other in sorted(self._lsh.query(self._minhash(signature))):
            if other != doc_id:
                return DuplicateOf(DocId(other), self._sources[DocId(other)], "near")
        return None
