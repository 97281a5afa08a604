"""Benchmark approximate-nearest-neighbour libraries for the embedded vector store.

Compares usearch, hnswlib and faiss on the operations the store actually performs:

* build by adding vectors in batches of 1,000 (as ingestion does), vectors/s;
* single-query search latency (p50/p99, one query at a time, one thread) and
  recall@10 against exact brute force, sweeping the search-time parameter
  (usearch ``expansion_search``, hnswlib ``ef``, faiss ``efSearch``/``nprobe``)
  and reporting the first value that reaches the target recall;
* deleting 10 % of the keys: time, whether deleted keys still come back, and
  recall against the exact answer over the surviving vectors;
* re-adding the deleted vectors under new keys (a re-index): time and recall;
* save + load (and mmap view for usearch): time, file size, recall after load;
* self-hit: a stored vector searched for itself must come back (catches nodes
  that are stored but unreachable in the graph).

Data are synthetic clustered Gaussians (``--centres`` random unit centres plus
isotropic noise, normalised) because uniformly random vectors in 384 dimensions
have no neighbourhood structure and are unrealistically hard for any ANN index.

Usage::

    python bench/ann_choice.py                       # 10k and 100k, default libraries
    python bench/ann_choice.py --sizes 1000000 --libs usearch-f32,usearch-f16
    python bench/ann_choice.py --libs usearch-f16 --sweep-to 256 --operating-param 64

Results are printed as a table and written as JSON under ``bench/results/``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

K = 10
GT_DEPTH = 64  # exact neighbours kept per query; enough to re-derive top-10 after deletes
SELF_HIT_SAMPLE = 1000
DELETE_PROBES = 200
WARMUP_QUERIES = 20

EF_GRID = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
NPROBE_GRID = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)

DEFAULT_LIBS = (
    "usearch-f32",
    "usearch-f16",
    "usearch-i8",
    "hnswlib",
    "faiss-hnsw",
    "faiss-ivf",
)
# "-ip": inner product instead of cosine; same ranking for unit vectors, skips the norms.
ALL_LIBS = (*DEFAULT_LIBS, "usearch-f32-ip", "usearch-f16-ip")


class NotSupportedError(Exception):
    """The library cannot perform the requested operation."""


# --------------------------------------------------------------------------- data


def make_vectors(
    n: int, dim: int, centres: np.ndarray, noise: float, rng: np.random.Generator
) -> np.ndarray:
    """Clustered Gaussian vectors: a random centre plus isotropic noise, unit-normalised."""
    out = np.empty((n, dim), dtype=np.float32)
    chunk = 100_000
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        labels = rng.integers(0, len(centres), m)
        x = centres[labels] + (noise / np.sqrt(dim)) * rng.standard_normal(
            (m, dim), dtype=np.float32
        )
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start : start + m] = x
    return out


def make_dataset(
    n: int, n_queries: int, dim: int, n_centres: int, noise: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_centres, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    base = make_vectors(n, dim, centres, noise, rng)
    queries = make_vectors(n_queries, dim, centres, noise, rng)  # not in the index
    return base, queries


def exact_topk(queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product (= cosine for unit vectors), chunked over the base."""
    nq = len(queries)
    best_ids = np.empty((nq, 0), dtype=np.int64)
    best_sims = np.empty((nq, 0), dtype=np.float32)
    chunk = 100_000
    for start in range(0, len(base), chunk):
        sims = queries @ base[start : start + chunk].T
        kk = min(k, sims.shape[1])
        part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        ids = np.concatenate([best_ids, part + start], axis=1)
        vals = np.concatenate([best_sims, np.take_along_axis(sims, part, axis=1)], axis=1)
        order = np.argsort(-vals, axis=1)[:, :k]
        best_ids = np.take_along_axis(ids, order, axis=1)
        best_sims = np.take_along_axis(vals, order, axis=1)
    return best_ids, best_sims


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    hits = 0
    for f, t in zip(found, truth, strict=True):
        hits += len(set(f[:K].tolist()) & set(t[:K].tolist()))
    return hits / (len(truth) * K)


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else float("nan")


# --------------------------------------------------------------------------- adapters


class Adapter:
    """Uniform interface over one index instance. Keys are positive int64 (SQLite rowids)."""

    lib = ""
    param_name = ""
    grid: Sequence[int] = EF_GRID
    delete_mode = "remove"

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        raise NotImplementedError

    def set_param(self, value: int) -> None:
        raise NotImplementedError

    def search(self, query: np.ndarray, k: int) -> np.ndarray:
        raise NotImplementedError

    def remove(self, keys: np.ndarray) -> None:
        raise NotImplementedError

    def save(self, path: str) -> None:
        raise NotImplementedError

    def load(self, path: str) -> Adapter:
        raise NotImplementedError

    def view(self, path: str) -> Adapter:
        raise NotSupportedError("no memory-mapped view")

    def info(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass


class USearchAdapter(Adapter):
    param_name = "expansion_search"

    def __init__(
        self,
        dim: int,
        dtype: str,
        metric: str,
        connectivity: int,
        expansion_add: int,
        threads: int,
    ) -> None:
        from usearch.index import Index

        self.lib = f"usearch-{dtype}" + ("" if metric == "cos" else f"-{metric}")
        self.dim, self.dtype, self.threads = dim, dtype, threads
        self.connectivity, self.expansion_add = connectivity, expansion_add
        self.index: Any = Index(
            ndim=dim,
            metric=metric,
            dtype=dtype,
            connectivity=connectivity,
            expansion_add=expansion_add,
            expansion_search=64,
        )

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self.index.add(keys.astype(np.uint64), vectors, threads=self.threads)

    def set_param(self, value: int) -> None:
        self.index.expansion_search = value

    def search(self, query: np.ndarray, k: int) -> np.ndarray:
        return np.asarray(self.index.search(query, k, threads=1).keys, dtype=np.int64)

    def remove(self, keys: np.ndarray) -> None:
        self.index.remove(keys.astype(np.uint64))

    def save(self, path: str) -> None:
        self.index.save(path)

    def _restored(self, path: str, view: bool) -> USearchAdapter:
        from usearch.index import Index

        clone = object.__new__(USearchAdapter)
        clone.__dict__.update({k: v for k, v in self.__dict__.items() if k != "index"})
        # expansion_add / expansion_search are not stored in the file: pass them again.
        clone.index = Index.restore(
            path,
            view=view,
            expansion_add=self.expansion_add,
            expansion_search=self.index.expansion_search,
        )
        return clone

    def load(self, path: str) -> Adapter:
        return self._restored(path, view=False)

    def view(self, path: str) -> Adapter:
        return self._restored(path, view=True)

    def info(self) -> dict[str, Any]:
        return {
            "connectivity": self.index.connectivity,
            "expansion_add": self.index.expansion_add,
            "memory_usage_bytes": int(self.index.memory_usage),
            "size": len(self.index),
        }

    def close(self) -> None:
        self.index.reset()


class HnswlibAdapter(Adapter):
    lib = "hnswlib"
    param_name = "ef"

    def __init__(self, dim: int, m: int, ef_construction: int, threads: int) -> None:
        import hnswlib

        self.dim, self.m, self.efc, self.threads = dim, m, ef_construction, threads
        self.index: Any = hnswlib.Index(space="cosine", dim=dim)
        # Capacity is fixed up front; grow by doubling, as a store that does not know N would.
        self.index.init_index(
            max_elements=16_384, M=m, ef_construction=ef_construction, allow_replace_deleted=True
        )
        self.deleted = 0
        self.resizes = 0

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        reuse = min(self.deleted, len(keys))
        need = self.index.element_count + len(keys) - reuse  # slots incl. tombstones
        if need > self.index.max_elements:
            self.index.resize_index(max(need, 2 * self.index.max_elements))
            self.resizes += 1
        self.index.add_items(vectors, keys, num_threads=self.threads, replace_deleted=True)
        self.deleted -= reuse

    def set_param(self, value: int) -> None:
        self.index.set_ef(value)

    def search(self, query: np.ndarray, k: int) -> np.ndarray:
        labels, _ = self.index.knn_query(query, k=k, num_threads=1)
        return np.asarray(labels[0], dtype=np.int64)

    def remove(self, keys: np.ndarray) -> None:
        for key in keys.tolist():  # no batch API
            self.index.mark_deleted(key)
        self.deleted += len(keys)

    def save(self, path: str) -> None:
        self.index.save_index(path)

    def load(self, path: str) -> Adapter:
        import hnswlib

        clone = object.__new__(HnswlibAdapter)
        clone.__dict__.update({k: v for k, v in self.__dict__.items() if k != "index"})
        clone.index = hnswlib.Index(space="cosine", dim=self.dim)
        clone.index.load_index(path, allow_replace_deleted=True)
        clone.index.set_ef(self.index.ef)  # ef is not stored in the file
        return clone

    def info(self) -> dict[str, Any]:
        return {
            "M": self.m,
            "ef_construction": self.efc,
            "max_elements": self.index.max_elements,
            "resizes": self.resizes,
        }


class FaissHNSWAdapter(Adapter):
    """IndexHNSWFlat (inner product on unit vectors) wrapped in IndexIDMap2.

    HNSW in faiss has no remove_ids; deletes are emulated with a tombstone
    IDSelector passed at search time (nodes stay in the graph forever).
    """

    lib = "faiss-hnsw"
    param_name = "efSearch"
    delete_mode = "tombstone filter (remove_ids unsupported)"

    def __init__(self, dim: int, m: int, ef_construction: int, threads: int) -> None:
        import faiss

        self.faiss: Any = faiss
        self.dim, self.threads = dim, threads
        self.inner: Any = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        self.inner.hnsw.efConstruction = ef_construction
        self.index: Any = faiss.IndexIDMap2(self.inner)
        self.ef = 64
        self.tombstones = np.empty(0, dtype=np.int64)
        self.params: Any = None
        self.remove_error = ""

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self.faiss.omp_set_num_threads(self.threads)
        self.index.add_with_ids(vectors, keys.astype(np.int64))
        self.faiss.omp_set_num_threads(1)

    def _make_params(self) -> None:
        params = self.faiss.SearchParametersHNSW()
        params.efSearch = self.ef
        if len(self.tombstones):
            self._batch = self.faiss.IDSelectorBatch(self.tombstones)
            self._not = self.faiss.IDSelectorNot(self._batch)
            params.sel = self._not
        self.params = params

    def set_param(self, value: int) -> None:
        self.ef = value
        self.inner.hnsw.efSearch = value
        self._make_params()

    def search(self, query: np.ndarray, k: int) -> np.ndarray:
        _, ids = self.index.search(query[None, :], k, params=self.params)
        return np.asarray(ids[0], dtype=np.int64)

    def remove(self, keys: np.ndarray) -> None:
        try:
            self.index.remove_ids(keys.astype(np.int64))
        except RuntimeError as exc:
            self.remove_error = str(exc).splitlines()[0][:160]
        self.tombstones = np.union1d(self.tombstones, keys.astype(np.int64))
        self._make_params()

    def save(self, path: str) -> None:
        self.faiss.write_index(self.index, path)

    def load(self, path: str) -> Adapter:
        clone = object.__new__(FaissHNSWAdapter)
        clone.__dict__.update(
            {k: v for k, v in self.__dict__.items() if k not in ("index", "inner")}
        )
        clone.index = self.faiss.read_index(path)
        clone.inner = self.faiss.downcast_index(clone.index.index)
        clone.set_param(self.ef)
        return clone

    def info(self) -> dict[str, Any]:
        return {
            "M": self.inner.hnsw.nb_neighbors(1),
            "efConstruction": self.inner.hnsw.efConstruction,
            "remove_ids_error": self.remove_error,
            "tombstones": len(self.tombstones),
        }


class FaissIVFAdapter(Adapter):
    """IndexIVFFlat with inner product; trained on the first vectors it sees."""

    lib = "faiss-ivf"
    param_name = "nprobe"
    grid = NPROBE_GRID

    def __init__(self, dim: int, n_expected: int, threads: int) -> None:
        import faiss

        self.faiss: Any = faiss
        self.dim, self.threads = dim, threads
        self.nlist = int(min(2048, max(16, round(4 * np.sqrt(n_expected)))))
        self.quantizer: Any = faiss.IndexFlatIP(dim)
        self.index: Any = faiss.IndexIVFFlat(
            self.quantizer, dim, self.nlist, faiss.METRIC_INNER_PRODUCT
        )
        self.train_n = min(n_expected, 30 * self.nlist)
        self.train_s = 0.0
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_n = 0

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self.faiss.omp_set_num_threads(self.threads)
        if not self.index.is_trained:
            # Buffer until there is enough data to train the coarse quantiser.
            self._pending.append((keys, vectors))
            self._pending_n += len(keys)
            if self._pending_n >= self.train_n:
                all_keys = np.concatenate([k for k, _ in self._pending])
                all_vecs = np.concatenate([v for _, v in self._pending])
                t0 = time.perf_counter()
                self.index.train(all_vecs[: self.train_n])
                self.train_s = time.perf_counter() - t0
                self.index.add_with_ids(all_vecs, all_keys.astype(np.int64))
                self._pending = []
        else:
            self.index.add_with_ids(vectors, keys.astype(np.int64))
        self.faiss.omp_set_num_threads(1)

    def set_param(self, value: int) -> None:
        self.index.nprobe = value

    def search(self, query: np.ndarray, k: int) -> np.ndarray:
        _, ids = self.index.search(query[None, :], k)
        return np.asarray(ids[0], dtype=np.int64)

    def remove(self, keys: np.ndarray) -> None:
        self.faiss.omp_set_num_threads(self.threads)
        self.index.remove_ids(keys.astype(np.int64))
        self.faiss.omp_set_num_threads(1)

    def save(self, path: str) -> None:
        self.faiss.write_index(self.index, path)

    def load(self, path: str) -> Adapter:
        clone = object.__new__(FaissIVFAdapter)
        clone.__dict__.update({k: v for k, v in self.__dict__.items() if k != "index"})
        clone.index = self.faiss.read_index(path)
        clone.index.nprobe = self.index.nprobe
        return clone

    def info(self) -> dict[str, Any]:
        return {"nlist": self.nlist, "train_vectors": self.train_n, "train_s": self.train_s}


def make_adapter(lib: str, args: argparse.Namespace, n: int) -> Adapter:
    if lib.startswith("usearch-"):
        parts = lib.split("-")
        return USearchAdapter(
            args.dim,
            parts[1],
            parts[2] if len(parts) > 2 else "cos",
            args.usearch_connectivity,
            args.usearch_expansion_add,
            args.threads,
        )
    if lib == "hnswlib":
        return HnswlibAdapter(args.dim, 16, 200, args.threads)
    if lib == "faiss-hnsw":
        return FaissHNSWAdapter(args.dim, 16, 200, args.threads)
    if lib == "faiss-ivf":
        return FaissIVFAdapter(args.dim, n, args.threads)
    raise ValueError(f"unknown library {lib!r}")


# --------------------------------------------------------------------------- protocol


@dataclass
class QueryRun:
    found: np.ndarray
    latencies_ms: list[float]

    @property
    def p50(self) -> float:
        return pct(self.latencies_ms, 50)

    @property
    def p99(self) -> float:
        return pct(self.latencies_ms, 99)


def run_queries(index: Adapter, queries: np.ndarray) -> QueryRun:
    for q in queries[:WARMUP_QUERIES]:
        index.search(q, K)
    found = np.full((len(queries), K), -1, dtype=np.int64)
    lat: list[float] = []
    clock = time.perf_counter
    for i, q in enumerate(queries):
        t0 = clock()
        keys = index.search(q, K)
        lat.append((clock() - t0) * 1e3)
        found[i, : len(keys)] = keys[:K]
    return QueryRun(found, lat)


def add_in_batches(
    index: Adapter,
    keys: np.ndarray,
    vectors: np.ndarray,
    batch: int,
    deadline: float | None = None,
) -> tuple[float, list[float], int]:
    """Returns (seconds, per-batch ms, vectors added). Stops early past the deadline."""
    batch_ms: list[float] = []
    t_start = time.perf_counter()
    added = 0
    for start in range(0, len(keys), batch):
        t0 = time.perf_counter()
        index.add(keys[start : start + batch], vectors[start : start + batch])
        batch_ms.append((time.perf_counter() - t0) * 1e3)
        added = min(len(keys), start + batch)
        if deadline is not None and time.perf_counter() > deadline:
            break
    return time.perf_counter() - t_start, batch_ms, added


@dataclass
class SizeContext:
    n: int
    base: np.ndarray
    queries: np.ndarray
    keys: np.ndarray  # key of base row i is i + 1 (SQLite rowids start at 1)
    gt_ids: np.ndarray  # (nq, GT_DEPTH) exact neighbour row indices
    stats: dict[str, float] = field(default_factory=dict)


def self_hit(
    index: Adapter, ctx: SizeContext, key_of: np.ndarray, rng: np.random.Generator
) -> float:
    rows = rng.choice(ctx.n, min(SELF_HIT_SAMPLE, ctx.n), replace=False)
    hits = sum(int(key_of[r] in index.search(ctx.base[r], K)) for r in rows)
    return hits / len(rows)


def concurrency_probe(
    index: USearchAdapter, ctx: SizeContext, key_of: np.ndarray, batch: int
) -> dict[str, Any]:
    """Searches from Python threads while another thread re-indexes batches.

    usearch serialises calls on one index (GIL and/or an internal lock), so this
    measures how long a search can stall behind an add and whether two searching
    threads gain anything over one. Only run for usearch: hnswlib documents that
    add_items is not safe concurrently with knn_query, faiss likewise.
    """
    import threading

    queries = ctx.queries
    out: dict[str, Any] = {}

    def searcher(count: int, sink: list[float]) -> None:
        for i in range(count):
            t0 = time.perf_counter()
            index.search(queries[i % len(queries)], K)
            sink.append((time.perf_counter() - t0) * 1e3)

    per_thread = 2 * len(queries)
    t0 = time.perf_counter()
    searcher(2 * per_thread, [])
    out["qps_1_thread"] = 2 * per_thread / (time.perf_counter() - t0)
    threads = [threading.Thread(target=searcher, args=(per_thread, [])) for _ in range(2)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["qps_2_threads"] = 2 * per_thread / (time.perf_counter() - t0)

    # Re-index 5 batches (remove then add the same rows) while the main thread searches.
    rows = np.arange(min(5 * batch, ctx.n))
    writer_ms: list[float] = []

    def writer() -> None:
        for start in range(0, len(rows), batch):
            part = rows[start : start + batch]
            t0 = time.perf_counter()
            index.remove(key_of[part])
            index.add(key_of[part], ctx.base[part])
            writer_ms.append((time.perf_counter() - t0) * 1e3)

    lat: list[float] = []
    w = threading.Thread(target=writer)
    w.start()
    i = 0
    while w.is_alive():
        t0 = time.perf_counter()
        index.search(queries[i % len(queries)], K)
        lat.append((time.perf_counter() - t0) * 1e3)
        i += 1
    w.join()
    out["search_during_reindex_p50_ms"] = pct(lat, 50)
    out["search_during_reindex_p99_ms"] = pct(lat, 99)
    out["search_during_reindex_max_ms"] = max(lat) if lat else float("nan")
    out["searches_during_reindex"] = len(lat)
    out["reindex_batch_ms_max"] = max(writer_ms)
    return out


def bench_config(
    lib: str, ctx: SizeContext, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed + 7)
    n = ctx.n
    res: dict[str, Any] = {"lib": lib, "n": n}
    index = make_adapter(lib, args, n)
    res["param_name"] = index.param_name
    res["delete_mode"] = index.delete_mode

    # 1. build in ingestion-sized batches
    deadline = time.perf_counter() + args.budget_s
    build_s, batch_ms, added = add_in_batches(
        index, ctx.keys, ctx.base, args.batch, deadline=deadline
    )
    if added < n:
        res["status"] = f"aborted: build exceeded {args.budget_s:.0f}s after {added} vectors"
        res["build_vps_partial"] = added / build_s
        index.close()
        return res
    res["build_s"] = build_s
    res["build_vps"] = n / build_s
    res["add_batch_ms_p50"] = pct(batch_ms, 50)
    res["add_batch_ms_max"] = max(batch_ms)

    # 2. sweep the search parameter
    truth_keys = ctx.keys[ctx.gt_ids[:, :K]]
    sweep = []
    chosen = None
    operating = args.operating_param if index.param_name == "expansion_search" else None
    sweep_to = max(args.sweep_to, operating or 0)
    for value in index.grid:
        index.set_param(value)
        run = run_queries(index, ctx.queries)
        rec = recall_at_k(run.found, truth_keys)
        sweep.append({"param": value, "recall": rec, "p50_ms": run.p50, "p99_ms": run.p99})
        if chosen is None and rec >= args.target_recall:
            chosen = sweep[-1]
        past = chosen is not None and value >= 2 * chosen["param"]
        if (rec >= 0.995 or past) and value >= sweep_to:
            break
    res["sweep"] = sweep
    res["target_reached"] = chosen is not None
    if chosen is None:
        chosen = max(sweep, key=lambda s: s["recall"])
    res["param"] = chosen["param"]
    res["recall"] = chosen["recall"]
    res["p50_ms"] = chosen["p50_ms"]
    res["p99_ms"] = chosen["p99_ms"]
    # Deletes, re-adds and reloads run at the threshold setting unless told otherwise.
    res["operating_param"] = operating or chosen["param"]
    index.set_param(res["operating_param"])

    key_of = ctx.keys.copy()
    res["self_hit"] = self_hit(index, ctx, key_of, rng)

    # 3. delete 10 %
    del_rows = np.sort(rng.choice(n, n // 10, replace=False))
    del_keys = ctx.keys[del_rows]
    t0 = time.perf_counter()
    index.remove(del_keys)
    res["delete_s"] = time.perf_counter() - t0
    run = run_queries(index, ctx.queries)
    probes = ctx.base[del_rows[:DELETE_PROBES]]
    probe_found = np.stack([index.search(p, K) for p in probes])
    leaked = int(np.isin(run.found, del_keys).sum() + np.isin(probe_found, del_keys).sum())
    res["deleted_keys_returned"] = leaked
    alive = np.ones(n, dtype=bool)
    alive[del_rows] = False
    truth_after = np.stack([row[alive[row]][:K] for row in ctx.gt_ids])
    res["recall_after_delete"] = recall_at_k(run.found, ctx.keys[truth_after])
    res["p99_ms_after_delete"] = run.p99

    # 4. re-add the same vectors under new keys (a re-index)
    new_keys = np.arange(n + 1, n + 1 + len(del_rows), dtype=np.int64)
    readd_s, readd_ms, _ = add_in_batches(index, new_keys, ctx.base[del_rows], args.batch)
    res["readd_vps"] = len(del_rows) / readd_s
    res["readd_batch_ms_max"] = max(readd_ms)
    key_of[del_rows] = new_keys
    truth_readd = key_of[ctx.gt_ids[:, :K]]
    run = run_queries(index, ctx.queries)
    res["recall_after_readd"] = recall_at_k(run.found, truth_readd)
    res["p50_ms_after_readd"] = run.p50
    res["p99_ms_after_readd"] = run.p99
    res["self_hit_after_readd"] = self_hit(index, ctx, key_of, rng)
    res["info"] = index.info()

    # 5. save, free, load (and view)
    path = str(workdir / f"{lib}-{n}.idx")
    t0 = time.perf_counter()
    index.save(path)
    res["save_s"] = time.perf_counter() - t0
    res["file_mb"] = os.path.getsize(path) / 2**20
    loader = index
    del index  # drop the in-memory index before loading to keep peak RSS down
    gc.collect()
    t0 = time.perf_counter()
    loaded = loader.load(path)
    res["load_s"] = time.perf_counter() - t0
    run = run_queries(loaded, ctx.queries)
    res["recall_after_load"] = recall_at_k(run.found, truth_readd)
    res["p99_ms_after_load"] = run.p99
    if args.concurrency and isinstance(loaded, USearchAdapter):
        res["concurrency"] = concurrency_probe(loaded, ctx, key_of, args.batch)
    loaded.close()
    del loaded
    gc.collect()
    try:
        t0 = time.perf_counter()
        viewed = loader.view(path)
        res["view_s"] = time.perf_counter() - t0
        run = run_queries(viewed, ctx.queries)
        res["recall_view"] = recall_at_k(run.found, truth_readd)
        res["p99_ms_view"] = run.p99
        viewed.close()
        del viewed
    except NotSupportedError:
        pass
    loader.close()
    del loader
    gc.collect()
    os.remove(path)
    res["status"] = "ok"
    return res


# --------------------------------------------------------------------------- reporting


COLUMNS = (
    ("lib", "lib", "{}"),
    ("n", "n", "{:,}"),
    ("build v/s", "build_vps", "{:,.0f}"),
    ("param", "param", "{}"),
    ("recall", "recall", "{:.3f}"),
    ("p50 ms", "p50_ms", "{:.2f}"),
    ("p99 ms", "p99_ms", "{:.2f}"),
    ("add1k ms", "add_batch_ms_p50", "{:.0f}"),
    ("del10% s", "delete_s", "{:.2f}"),
    ("leaked", "deleted_keys_returned", "{}"),
    ("rec del", "recall_after_delete", "{:.3f}"),
    ("rec readd", "recall_after_readd", "{:.3f}"),
    ("self-hit", "self_hit_after_readd", "{:.3f}"),
    ("save s", "save_s", "{:.2f}"),
    ("load s", "load_s", "{:.2f}"),
    ("view s", "view_s", "{:.3f}"),
    ("file MB", "file_mb", "{:.0f}"),
)


def format_table(results: list[dict[str, Any]]) -> str:
    header = [c[0] for c in COLUMNS]
    rows = []
    for r in results:
        if r.get("status") != "ok":
            rows.append([r["lib"], f"{r['n']:,}", r.get("status", "?")] + [""] * (len(COLUMNS) - 3))
            continue
        row = []
        for _, key, fmt in COLUMNS:
            value = r.get(key)
            cell = "-" if value is None else fmt.format(value)
            if key == "param":
                cell = f"{r['param_name']}={value}" + ("" if r["target_reached"] else "!")
                if r.get("operating_param", value) != value:
                    cell += f" (ops@{r['operating_param']})"
            row.append(cell)
        rows.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    for row in rows:
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=False)]
        if len(cells) < len(widths):  # aborted rows: status spans the rest
            cells += [""] * (len(widths) - len(cells))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("usearch", "hnswlib", "faiss"):
        try:
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", "installed")
        except ImportError:
            out[mod] = "missing"
    return out


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10000,100000", help="comma-separated index sizes")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--libs", default=",".join(DEFAULT_LIBS), help=f"subset of {','.join(ALL_LIBS)}")
    p.add_argument("--batch", type=int, default=1000, help="vectors per add call (ingestion)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for adds")
    p.add_argument("--target-recall", type=float, default=0.95)
    p.add_argument("--centres", type=int, default=1000)
    p.add_argument("--noise", type=float, default=0.75, help="noise norm relative to centre")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--usearch-connectivity", type=int, default=16)
    p.add_argument("--usearch-expansion-add", type=int, default=128)
    p.add_argument(
        "--budget-s",
        type=float,
        default=900.0,
        help="per-configuration build budget; longer builds are aborted, and skipped up "
        "front when the rate measured at a smaller size predicts they would not fit",
    )
    p.add_argument(
        "--sweep-to",
        type=int,
        default=0,
        help="keep sweeping the search parameter at least up to this value",
    )
    p.add_argument(
        "--operating-param",
        type=int,
        default=None,
        help="usearch only: expansion_search used for the delete/re-add/reload steps "
        "(default: the value that first reaches the target recall)",
    )
    p.add_argument(
        "--concurrency",
        action="store_true",
        help="usearch only: search from threads while another thread re-indexes",
    )
    p.add_argument("--workdir", default=None, help="where index files are written (temp dir)")
    p.add_argument("--out", default=None, help="JSON output path (default bench/results/...)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    libs = [s.strip() for s in args.libs.split(",") if s.strip()]
    unknown = set(libs) - set(ALL_LIBS)
    if unknown:
        print(f"unknown libraries: {sorted(unknown)}", file=sys.stderr)
        return 2
    available = versions()
    libs = [lib for lib in libs if available[lib.split("-")[0]] != "missing"]

    out_path = (
        Path(args.out)
        if args.out
        else (
            Path(__file__).resolve().parent
            / "results"
            / f"ann_choice-{time.strftime('%Y%m%d-%H%M%S')}.json"
        )
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="ann_choice-", dir=args.workdir))
    command = "python bench/ann_choice.py " + " ".join(sys.argv[1:] if argv is None else list(argv))

    print(
        f"ANN benchmark: dim={args.dim} k={K} queries={args.queries} batch={args.batch} "
        f"add-threads={args.threads} search-threads=1 target recall@{K}>={args.target_recall}"
    )
    print(
        f"data: {args.centres} random unit centres + isotropic Gaussian noise "
        f"(norm {args.noise}), normalised; queries are fresh draws, not in the index.\n"
        "Uniformly random vectors in this many dimensions have no neighbourhood structure and "
        "are unrealistically hard for any ANN index, so they are not used."
    )
    print(f"versions: {available}")

    results: list[dict[str, Any]] = []
    rates: dict[str, float] = {}
    report: dict[str, Any] = {
        "command": command,
        "args": vars(args),
        "versions": available,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "datasets": {},
        "results": results,
    }
    try:
        for n in sizes:
            t0 = time.perf_counter()
            base, queries = make_dataset(
                n, args.queries, args.dim, args.centres, args.noise, args.seed
            )
            gt_ids, gt_sims = exact_topk(queries, base, GT_DEPTH)
            stats = {
                "top1_cos": float(gt_sims[:, 0].mean()),
                "top10_cos": float(gt_sims[:, K - 1].mean()),
                "random_pair_cos": float((queries[:50] @ base[:2000].T).mean()),
                "prep_s": time.perf_counter() - t0,
            }
            report["datasets"][str(n)] = stats
            print(
                f"\n== n={n:,}: mean cos to exact top-1 {stats['top1_cos']:.3f}, "
                f"top-{K} {stats['top10_cos']:.3f}, random pair {stats['random_pair_cos']:.3f} "
                f"(data + ground truth {stats['prep_s']:.1f}s)"
            )
            ctx = SizeContext(
                n=n,
                base=base,
                queries=queries,
                keys=np.arange(1, n + 1, dtype=np.int64),
                gt_ids=gt_ids,
                stats=stats,
            )
            for lib in libs:
                if lib in rates:
                    predicted = 1.15 * n / rates[lib]
                    if predicted > args.budget_s:
                        res = {
                            "lib": lib,
                            "n": n,
                            "status": f"skipped: predicted build {predicted:.0f}s > budget",
                        }
                        results.append(res)
                        print(f"  {lib:12s} {res['status']}")
                        continue
                t_cfg = time.perf_counter()
                res = bench_config(lib, ctx, args, workdir)
                res["wall_s"] = time.perf_counter() - t_cfg
                results.append(res)
                if "build_vps" in res:
                    rates[lib] = res["build_vps"]
                elif "build_vps_partial" in res:
                    rates[lib] = res["build_vps_partial"]
                if res["status"] == "ok":
                    print(
                        f"  {lib:12s} build {res['build_vps']:8,.0f} v/s  "
                        f"{res['param_name']}={res['param']:<4} recall {res['recall']:.3f}  "
                        f"p50 {res['p50_ms']:.2f} ms  p99 {res['p99_ms']:.2f} ms  "
                        f"after delete {res['recall_after_delete']:.3f} / "
                        f"re-add {res['recall_after_readd']:.3f}  ({res['wall_s']:.0f}s)"
                    )
                else:
                    print(f"  {lib:12s} {res['status']}")
                if "concurrency" in res:
                    c = res["concurrency"]
                    print(
                        f"  {'':12s} searches: {c['qps_1_thread']:,.0f} q/s from 1 thread, "
                        f"{c['qps_2_threads']:,.0f} q/s from 2; while re-indexing "
                        f"{args.batch}-vector batches: p50 "
                        f"{c['search_during_reindex_p50_ms']:.2f} ms, p99 "
                        f"{c['search_during_reindex_p99_ms']:.1f} ms, max "
                        f"{c['search_during_reindex_max_ms']:.1f} ms"
                    )
                out_path.write_text(json.dumps(report, indent=2, default=float))
            del base, queries, ctx
            gc.collect()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        out_path.write_text(json.dumps(report, indent=2, default=float))

    print(f"\n{format_table(results)}")
    print(
        f"\nparam: search-time parameter at which recall@{K} first reaches "
        f"{args.target_recall} ('!' = never reached; best shown); recall/p50/p99 are at that "
        "value, the later columns at it or at 'ops@'. add1k ms: median time of one "
        "1,000-vector add call. leaked: deleted keys returned by searches after the delete. "
        "rec del / rec readd: recall vs exact after deleting 10% / after re-adding them under "
        "new keys. self-hit: share of stored vectors found by searching for themselves."
    )
    print(f"JSON: {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
