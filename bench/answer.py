"""What Grounded adds to an answer: time to first token and streaming throughput.

    python bench/answer.py --chunks 100000 --requests 200

Starts the LLM simulator (tests/support) and `grounded serve` as separate processes on
loopback, over an index of --chunks chunks (synthetic clustered vectors, Zipf text, built
through the Store API and bound to the real embedder so questions are embedded for real).
Measures, in the same run:
  1. time to first content token straight from the simulator vs through Grounded
     (retrieval + prompt assembly + relay added), sequential requests, p50/p99;
  2. tokens/s received through Grounded vs straight from the simulator at concurrency
     1, 16 and 64 (retrieval off for this part, so it isolates the relay).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))
from _common import console, p50, percentile, print_table, save  # noqa: E402
from retrieval import build  # noqa: E402

from grounded.ingest.embedders.minilm import DIMENSION  # noqa: E402
from grounded.settings import load_settings  # noqa: E402
from grounded.store.sqlite import SqliteStore  # noqa: E402

QUESTIONS = [
    "Can I return a laptop after 45 days?",
    "how long does express shipping take",
    "what is the warranty on a tent",
    "do you price match amazon",
    "how do I cancel my order",
    "can I pay with klarna",
    "student discount on phones?",
    "my package arrived damaged",
]


def start(
    cmd: list[str], env: dict[str, str], ready_url: str | None = None
) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    url = ready_url or (process.stdout.readline().strip() if process.stdout else "")
    return process, url


def wait_ready(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


async def build_index(data_dir: Path, chunks: int, embedder_name: str) -> None:
    from retrieval import clustered, texts, vocabulary  # noqa: F401

    store = SqliteStore(data_dir)
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((1000, DIMENSION)).astype(np.float32)
    original = store.bind_embedder

    async def bind(name: str, dimension: int) -> None:
        await original(embedder_name, dimension)

    store.bind_embedder = bind  # type: ignore[method-assign]
    await build(store, chunks, rng, centres, vocabulary())
    await store.close()


def has_content(line: str) -> bool:
    if not line.startswith("data:") or "content" not in line or line.endswith("[DONE]"):
        return False
    choices = json.loads(line[5:]).get("choices") or [{}]
    return bool((choices[0].get("delta") or {}).get("content"))


async def first_token_ms(
    client: httpx.AsyncClient, url: str, model: str, question: str, retrieval: bool = True
) -> float:
    body: dict[str, object] = {
        "model": model,
        "stream": True,
        "messages": [{"role": "user", "content": question}],
    }
    if not retrieval:
        body["grounded"] = {"retrieval": False}
    started = time.perf_counter()
    elapsed: float | None = None
    async with client.stream("POST", f"{url}/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if elapsed is None and has_content(line):
                elapsed = (time.perf_counter() - started) * 1000
    if elapsed is not None:
        return elapsed
    raise RuntimeError("no token")


async def tokens_per_second(
    url: str, model: str, concurrency: int, requests: int, grounded: bool
) -> float:
    body: dict[str, object] = {
        "model": model,
        "stream": True,
        "messages": [{"role": "user", "content": "relay"}],
    }
    if grounded:
        body["grounded"] = {"retrieval": False}
    tokens = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        queue = list(range(requests))

        async def worker() -> None:
            nonlocal tokens
            while queue:
                queue.pop()
                async with client.stream("POST", f"{url}/chat/completions", json=body) as response:
                    async for line in response.aiter_lines():
                        if has_content(line):
                            tokens += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return tokens / (time.perf_counter() - started)


async def measure(sim_url: str, grounded_url: str, requests: int) -> dict[str, object]:
    async with httpx.AsyncClient(timeout=60) as client:
        for q in QUESTIONS:  # warm both paths (embedding cache stays cold: questions vary below)
            await first_token_ms(client, grounded_url, "sim-small", q)
        direct, through = [], []
        for i in range(requests):
            question = f"{QUESTIONS[i % len(QUESTIONS)]} (case {i})"
            direct.append(await first_token_ms(client, sim_url, "sim-small", question))
            through.append(await first_token_ms(client, grounded_url, "sim-small", question))
    added = [t - d for t, d in zip(through, direct, strict=True)]
    relay = []
    for concurrency in (1, 16, 64):
        n = max(concurrency * 4, 16)
        straight = await tokens_per_second(sim_url, "sim-small", concurrency, n, grounded=False)
        relayed = await tokens_per_second(grounded_url, "sim-small", concurrency, n, grounded=True)
        relay.append({"concurrency": concurrency, "direct_tps": straight, "grounded_tps": relayed})
    return {
        "ttft_direct_ms": direct,
        "ttft_grounded_ms": through,
        "added_ms": added,
        "relay": relay,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--ttft", type=float, default=0.05, help="simulator time to first token, s")
    parser.add_argument("--itl", type=float, default=0.002, help="simulator inter-token delay, s")
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    cache = ROOT / ".grounded" / "models"
    embedder_name = load_settings(embed={"cache_dir": cache}).embed
    from grounded.ingest.embedders.factory import build_embedder

    name = build_embedder(embedder_name, cache).name
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        console.print(f"building {args.chunks:,} chunks …")
        asyncio.run(build_index(data_dir, args.chunks, name))
        sim, sim_url = start(
            [
                sys.executable,
                "-m",
                "tests.support.llm_simulator",
                "--ttft",
                str(args.ttft),
                "--itl",
                str(args.itl),
                "--completion-tokens",
                "200",
            ],
            env,
        )
        port = 8790
        # The simulator stands for one worker batching every stream: admission must not
        # queue any of them, or the relay ratio would measure the queue, not the relay.
        models = json.dumps(
            [{"name": "sim-small", "url": sim_url, "max_output_tokens": 256, "max_in_flight": 512}]
        )
        server_env = {
            **env,
            "GROUNDED_DATA_DIR": str(data_dir),
            "GROUNDED_EMBED__CACHE_DIR": str(cache),
            "GROUNDED_GENERATE__MODELS": models,
            "GROUNDED_GENERATE__DEFAULT_MODEL": "sim-small",
            "GROUNDED_SERVE__REQUEST_LOG": "false",
        }
        server, _ = start(
            [sys.executable, "-m", "grounded", "serve", "--port", str(port), "--no-auth"],
            server_env,
            ready_url=f"http://127.0.0.1:{port}/v1",
        )
        try:
            wait_ready(f"http://127.0.0.1:{port}/healthz")
            result = asyncio.run(measure(sim_url, f"http://127.0.0.1:{port}/v1", args.requests))
        finally:
            server.terminate()
            sim.terminate()
    added = result["added_ms"]
    rows = [
        [
            "simulator direct",
            p50(result["ttft_direct_ms"]),
            percentile(result["ttft_direct_ms"], 99),
        ],  # type: ignore[arg-type]
        [
            "through Grounded",
            p50(result["ttft_grounded_ms"]),
            percentile(result["ttft_grounded_ms"], 99),
        ],  # type: ignore[arg-type]
        ["added by Grounded", p50(added), percentile(added, 99)],  # type: ignore[arg-type]
    ]
    print_table(
        f"Time to first token, ms ({args.chunks:,} chunks, {args.requests} requests)",
        ["path", "p50", "p99"],
        rows,
    )
    relay_rows = [
        [r["concurrency"], r["direct_tps"], r["grounded_tps"], r["grounded_tps"] / r["direct_tps"]]
        for r in result["relay"]
    ]  # type: ignore[attr-defined]
    print_table(
        "Streaming relay, tokens/s received",
        ["concurrency", "direct", "through Grounded", "ratio"],
        relay_rows,
    )
    console.print(f"saved {save('answer', {'chunks': args.chunks, **result})}")


if __name__ == "__main__":
    main()
