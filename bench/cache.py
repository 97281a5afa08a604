"""Response cache: hit latency and throughput over HTTP, and hit / false-hit rates.

    python bench/cache.py --entries 100000            # latency, throughput, open loop
    python bench/cache.py --paraphrases-only           # hit and false-hit rate by threshold

Latency: a real server (uvicorn on loopback, in-process cache) over the sample index,
holding `--entries` cached answers (a few hundred real ones, the rest filler entries with
random unit question vectors, so the exact map and the semantic HNSW index have that
size). Exact hits, semantic hits (a paraphrase: query embedding + ANN + passage check +
lineage check) and misses (full retrieval + extractive answer) at concurrency 1; the most
hits/s with 16 concurrent clients, next to the most `GET /healthz`/s (the server's
pass-through ceiling) in the same run; and hit p99 at an open-loop rate of half that
maximum. Paraphrases: samples/cache_paraphrases.jsonl (canonical questions cached, then
paraphrases and near misses asked) at similarity thresholds 0.90 / 0.95 / 0.98.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import console, p50, percentile, print_table, save

from grounded.cache.responses import CachedAnswer, CacheScope
from grounded.gateway.tenancy import DEFAULT_TENANT
from grounded.generate.answer import AnswerRequest
from grounded.generate.prompt import PROMPT_VERSION
from grounded.models import SearchFilter
from grounded.runtime import Runtime
from grounded.settings import load_settings
from tests.conftest import run_cli
from tests.serve.conftest import running_server

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "samples" / "queries.jsonl"
PARAPHRASES = ROOT / "samples" / "cache_paraphrases.jsonl"


def build_index(tmp: Path) -> tuple[Path, Path]:
    data, models = tmp / "data", tmp / "models"
    run_cli("ingest", str(ROOT / "samples" / "support"), data_dir=data, model_cache=models)
    return data, models


def post(client: httpx.Client, url: str, question: str) -> tuple[float, str]:
    started = time.perf_counter()
    response = client.post(
        f"{url}/v1/chat/completions",
        json={"model": "grounded-extractive", "messages": [{"role": "user", "content": question}]},
    )
    elapsed = (time.perf_counter() - started) * 1000
    return elapsed, response.headers.get("x-grounded-cache", "?")


async def add_filler(app: Any, count: int) -> None:
    runtime: Runtime = app.state.grounded.runtime
    cache = await runtime.response_cache()
    scope = scope_for(runtime)
    rng = np.random.default_rng(7)
    entry = CachedAnswer("filler", "filler answer", [], {}, [], 0, time.time())
    raw = entry.to_bytes()
    for i in range(count):
        key = f"{scope.key()}:q:{hashlib.sha256(str(i).encode()).hexdigest()}"
        await cache._state.put(key, raw, 86_400)
        vector = rng.standard_normal(runtime.embedder.dimension).astype(np.float32)
        await cache._semantic.add(scope.key(), key, vector / np.linalg.norm(vector))
    started = time.perf_counter()
    await cache._semantic.warm(scope.key())
    console.print(
        f"semantic index of {count:,} filler entries built in {time.perf_counter() - started:.0f} s"
    )


def scope_for(runtime: Runtime) -> CacheScope:
    settings = runtime.settings
    model = settings.generate.default_model
    return CacheScope(
        DEFAULT_TENANT,
        model,
        settings.retrieve.k,
        SearchFilter(settings.collection),
        PROMPT_VERSION,
        512,
    )


async def closed_loop(url: str, path: str, question: str | None, seconds: float) -> float:
    done = 0
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(timeout=30) as client:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                if question is None:
                    await client.get(f"{url}{path}")
                else:
                    await client.post(
                        f"{url}{path}",
                        json={
                            "model": "grounded-extractive",
                            "messages": [{"role": "user", "content": question}],
                        },
                    )
                done += 1

        await asyncio.gather(*(worker() for _ in range(16)))
    return done / seconds


async def open_loop(url: str, question: str, rate: float, seconds: float) -> list[float]:
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=30) as client:

        async def one() -> None:
            started = time.perf_counter()
            await client.post(
                f"{url}/v1/chat/completions",
                json={
                    "model": "grounded-extractive",
                    "messages": [{"role": "user", "content": question}],
                },
            )
            latencies.append((time.perf_counter() - started) * 1000)

        tasks = []
        start = time.perf_counter()
        for n in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return latencies


def latency(entries: int, seconds: float) -> dict[str, Any]:
    questions = [json.loads(line)["query"] for line in QUESTIONS.read_text().splitlines()][:100]
    with tempfile.TemporaryDirectory() as tmp:
        data, models = build_index(Path(tmp))
        settings = load_settings(
            data_dir=data,
            embed={"cache_dir": models},
            cache={"max_entries": entries + 1000},
            serve={"request_log": False},
            gateway={"auth": False},
        )
        from grounded.serve.app import create_app

        app = create_app(settings)
        with running_server(settings, app=app) as url, httpx.Client(timeout=60) as client:
            misses = [post(client, url, q) for q in questions]
            # The server is idle meanwhile; the in-process state is plain Python objects.
            asyncio.run(add_filler(app, entries - len(questions)))
            exact = [post(client, url, q) for q in questions]
            semantic = [post(client, url, q + " please?") for q in questions]
            hit_rate = closed_loop_sync(url, questions[0], seconds)
            ceiling = asyncio.run(closed_loop(url, "/healthz", None, seconds))
            offered = hit_rate / 2
            open_ms = asyncio.run(open_loop(url, questions[0], offered, seconds))
    return {
        "entries": entries,
        "exact": summarise(exact, "hit-exact"),
        "semantic": summarise(semantic, "hit-semantic"),
        "miss": summarise(misses, "miss"),
        "hits_per_s_c16": hit_rate,
        "healthz_per_s_c16": ceiling,
        "open_loop_rate": offered,
        "open_loop_p50_ms": p50(open_ms),
        "open_loop_p99_ms": percentile(open_ms, 99),
    }


def closed_loop_sync(url: str, question: str, seconds: float) -> float:
    return asyncio.run(closed_loop(url, "/v1/chat/completions", question, seconds))


def summarise(samples: list[tuple[float, str]], kind: str) -> dict[str, float]:
    wanted = [ms for ms, got in samples if got == kind]
    return {
        "count": len(wanted),
        "of": len(samples),
        "p50_ms": p50(wanted),
        "p99_ms": percentile(wanted, 99),
    }


async def paraphrase_rates(thresholds: list[float]) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in PARAPHRASES.read_text().splitlines() if line.strip()]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data, models = build_index(Path(tmp))
        for threshold in thresholds:
            settings = load_settings(
                data_dir=data,
                embed={"cache_dir": models},
                cache={"similarity": threshold},
                serve={"request_log": False},
            )
            runtime = Runtime(settings)
            answerer = await runtime.answerer()
            cache = await runtime.response_cache()
            scope = scope_for(runtime)
            group_of: dict[str, str] = {}  # cached question -> the fact that answers it
            for row in rows:
                if row["kind"] != "canonical":
                    continue
                answer = await answerer.prepare(AnswerRequest(row["question"]))
                async for _ in answer.stream():
                    pass
                citations = [c.as_dict() for c in answer.citations]
                await cache.save(scope, row["question"], "".join(answer.text), citations, 0)
                group_of[" ".join(row["question"].lower().split())] = row["answer_key"]
            counts = {"paraphrase": [0, 0, 0], "near_miss": [0, 0, 0]}  # asked, hits, false
            for row in rows:
                if row["kind"] == "canonical":
                    continue
                tally = counts[row["kind"]]
                tally[0] += 1
                hit = await cache.lookup(scope, row["question"])
                if hit is None:
                    continue
                tally[1] += 1
                # A hit is false when the cached answer is for a different fact (a near miss
                # landing on another question with the same fact is a correct hit).
                if group_of.get(" ".join(hit.question.lower().split())) != row["answer_key"]:
                    tally[2] += 1
            asked = counts["paraphrase"][0] + counts["near_miss"][0]
            results.append(
                {
                    "threshold": threshold,
                    "paraphrase_hit_rate": counts["paraphrase"][1]
                    / max(1, counts["paraphrase"][0]),
                    "near_miss_hits": counts["near_miss"][1],
                    "near_misses": counts["near_miss"][0],
                    "false_hits": counts["paraphrase"][2] + counts["near_miss"][2],
                    "false_hit_rate": (counts["paraphrase"][2] + counts["near_miss"][2]) / asked,
                }
            )
            await runtime.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--paraphrases-only", action="store_true")
    parser.add_argument("--thresholds", default="0.80,0.85,0.90,0.95,0.98")
    args = parser.parse_args()
    payload: dict[str, Any] = {"args": vars(args)}
    rates = asyncio.run(paraphrase_rates([float(t) for t in args.thresholds.split(",")]))
    payload["paraphrases"] = rates
    print_table(
        "Semantic cache on the paraphrase set",
        list(rates[0]),
        [list(r.values()) for r in rates],
    )
    if not args.paraphrases_only:
        result = latency(args.entries, args.seconds)
        payload["latency"] = result
        rows = [
            [
                kind,
                result[kind]["count"],
                result[kind]["of"],
                result[kind]["p50_ms"],
                result[kind]["p99_ms"],
            ]
            for kind in ("exact", "semantic", "miss")
        ]
        print_table(
            f"Over HTTP, concurrency 1, {args.entries:,} cached entries",
            ["request", "as expected", "of", "p50 ms", "p99 ms"],
            rows,
        )
        print_table(
            "Throughput (16 clients) and open loop",
            ["hits/s", "healthz/s", "hits / healthz", "open-loop rate", "p50 ms", "p99 ms"],
            [
                [
                    result["hits_per_s_c16"],
                    result["healthz_per_s_c16"],
                    result["hits_per_s_c16"] / result["healthz_per_s_c16"],
                    result["open_loop_rate"],
                    result["open_loop_p50_ms"],
                    result["open_loop_p99_ms"],
                ]
            ],
        )
    console.print(f"saved {save('cache', payload)}")


if __name__ == "__main__":
    main()
