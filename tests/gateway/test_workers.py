"""The worker pool against real OpenAI-compatible servers (the test simulator) on loopback:
balancing, affinity, failover, circuit breakers, health checks and early close."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import pytest

from grounded.gateway.workers import WorkerPool
from grounded.generate.protocol import BackendError, ChatBackend, GenerationRequest, Message
from grounded.settings import ModelSettings
from tests.support.llm_simulator import NO_PASSAGES_ANSWER, RunningSimulator, SimulatorConfig

pytestmark = pytest.mark.anyio

FAST = SimulatorConfig(ttft_s=0.01, itl_s=0.002, completion_tokens=10)


@pytest.fixture(scope="module")
def sims() -> Iterator[list[RunningSimulator]]:
    with RunningSimulator(FAST) as a, RunningSimulator(FAST) as b, RunningSimulator(FAST) as c:
        yield [a, b, c]


@pytest.fixture(autouse=True)
def fresh(sims: list[RunningSimulator]) -> None:
    for sim in sims:
        sim.reset()


def model(*urls: str, **extra: Any) -> ModelSettings:
    options: dict[str, Any] = {
        "name": "sim",
        "url": urls[0],
        "workers": list(urls[1:]),
        "upstream_model": "sim-small",
        "connect_timeout_s": 1.0,
        "read_timeout_s": 2.0,
        "max_in_flight": 4,
        "retries": 2,
        "retry_backoff_s": 0.01,
        "breaker_failures": 3,
        "breaker_cooldown_s": 0.3,
        "health_interval_s": 0,
        "session_affinity": True,
    }
    options.update(extra)
    return ModelSettings(**options)


def request(affinity: str | None = None, max_tokens: int = 32) -> GenerationRequest:
    return GenerationRequest(
        messages=[Message("user", "Hello there")],
        max_tokens=max_tokens,
        question="Hello there",
        affinity=affinity,
    )


@contextlib.asynccontextmanager
async def open_pool(settings: ModelSettings) -> AsyncIterator[WorkerPool]:
    pool = WorkerPool(settings)
    try:
        yield pool
    finally:
        await pool.close()


async def collect(backend: ChatBackend, req: GenerationRequest | None = None) -> str:
    return "".join([delta.text async for delta in backend.stream(req or request())])


def requests_per_sim(sims: list[RunningSimulator]) -> list[int]:
    return [sim.stats()["requests"] for sim in sims]


def in_flight(pool: WorkerPool) -> list[int]:
    return [cast(int, w["in_flight"]) for w in pool.snapshot()]


def dead_url() -> str:
    """The URL of a server that was killed: connections are refused."""
    sim = RunningSimulator(FAST).start()
    sim.stop()
    return sim.url


async def test_concurrent_streams_spread_over_the_least_loaded_workers(
    sims: list[RunningSimulator],
) -> None:
    async with open_pool(model(*(s.url for s in sims))) as pool:
        texts = await asyncio.gather(*(collect(pool) for _ in range(9)))
        assert all(t.startswith(NO_PASSAGES_ANSWER) for t in texts)
        assert requests_per_sim(sims) == [3, 3, 3]
        assert pool.in_flight() == 0

        streams = [pool.stream(request()) for _ in range(6)]
        placed: list[int] = []
        for stream in streams:
            before = in_flight(pool)
            await anext(stream)
            placed.append(
                next(
                    i
                    for i, (a, b) in enumerate(zip(before, in_flight(pool), strict=True))
                    if a != b
                )
            )
        assert in_flight(pool) == [2, 2, 2]
        for stream, worker in zip(streams, placed, strict=True):
            if worker == 1:
                await stream.aclose()
        assert in_flight(pool) == [2, 0, 2]
        more = [pool.stream(request()) for _ in range(2)]
        await anext(more[0])
        assert in_flight(pool) == [2, 1, 2]  # the emptiest worker, not the next in turn
        await anext(more[1])
        assert in_flight(pool) == [2, 2, 2]
        for stream in streams + more:
            await stream.aclose()
        assert pool.in_flight() == 0


async def test_affinity_keeps_a_conversation_on_one_worker_until_it_is_full(
    sims: list[RunningSimulator],
) -> None:
    urls = [s.url for s in sims]
    async with open_pool(model(*urls, max_in_flight=2)) as pool:
        for _ in range(6):
            await collect(pool, request(affinity="conversation-42"))
        counts = requests_per_sim(sims)
        assert sorted(counts) == [0, 0, 6]
        home = counts.index(6)

        held = [pool.stream(request(affinity="conversation-42")) for _ in range(3)]
        for stream in held:
            await anext(stream)
        loads = in_flight(pool)
        assert loads[home] == 2 and sum(loads) == 3  # the third spilled to another worker
        for stream in held:
            await stream.aclose()

    for sim in sims:
        sim.reset_stats()
    async with open_pool(model(*urls, session_affinity=False)) as pool:
        for _ in range(6):
            await collect(pool, request(affinity="conversation-42"))
        assert max(requests_per_sim(sims)) < 6


async def test_a_failing_worker_is_failed_over_and_its_breaker_opens_then_closes_again(
    sims: list[RunningSimulator],
) -> None:
    cooldown_s = 1.0
    settings = model(*(s.url for s in sims), breaker_failures=3, breaker_cooldown_s=cooldown_s)
    loop = asyncio.get_running_loop()
    async with open_pool(settings) as pool:
        changes: list[int] = []
        pool.on_change = lambda: changes.append(pool.capacity())
        sims[1].set_mode("error_500")
        for _ in range(30):
            text = await collect(pool)  # no error reaches the caller
            assert text.startswith(NO_PASSAGES_ANSWER)
            if pool.snapshot()[1]["breaker"] == "open":
                break
        opened_at = loop.time()
        worker = pool.snapshot()[1]
        assert worker["breaker"] == "open" and worker["failures"] == 3
        assert sims[1].stats()["errors_500"] == 3
        assert pool.capacity() == 8 and changes[-1] == 8
        since_open = len(changes)

        for _ in range(6):  # while open, the worker gets nothing
            await collect(pool)
        assert sims[1].stats()["requests"] == 3
        assert loop.time() - opened_at < cooldown_s  # (or the probe below came early)

        sims[1].set_mode("ok")
        await asyncio.sleep(opened_at + cooldown_s + 0.05 - loop.time())
        assert 9 in changes[since_open:]  # told when the cooldown ended: room for a probe
        assert pool.capacity() == 9
        for _ in range(6):
            await collect(pool)
        worker = pool.snapshot()[1]
        assert worker["breaker"] == "closed" and worker["consecutive_failures"] == 0
        assert pool.capacity() == 12
        assert sims[1].stats()["requests"] > 3


async def test_a_killed_worker_is_failed_over(sims: list[RunningSimulator]) -> None:
    settings = model(sims[0].url, dead_url(), sims[2].url, breaker_failures=2)
    async with open_pool(settings) as pool:
        texts = [await collect(pool) for _ in range(6)]
        assert all(t.startswith(NO_PASSAGES_ANSWER) for t in texts)
        dead = pool.snapshot()[1]
        assert dead["failures"] == 2 and dead["breaker"] == "open"
        assert sum(requests_per_sim(sims)) == 6


async def test_no_failover_after_the_first_token(sims: list[RunningSimulator]) -> None:
    sims[0].set_mode("drop_mid_stream", drop_after=3)
    async with open_pool(model(sims[0].url, sims[1].url)) as pool:
        received: list[str] = []
        with pytest.raises(BackendError) as caught:
            for _ in range(10):  # until the dropping worker's turn comes
                received = []
                async for delta in pool.stream(request()):
                    received.append(delta.text)
        assert caught.value.before_output is False
        assert len(received) == 3
        assert sims[0].stats()["requests"] == 1  # not retried
        assert pool.snapshot()[0]["failures"] == 1
        assert pool.in_flight() == 0


async def test_a_drop_before_the_first_token_is_failed_over(sims: list[RunningSimulator]) -> None:
    sims[0].set_mode("drop_mid_stream", drop_after=0)
    async with open_pool(model(sims[0].url, sims[1].url)) as pool:
        for _ in range(4):
            assert (await collect(pool)).startswith(NO_PASSAGES_ANSWER)
        assert sims[0].stats()["requests"] >= 1
        assert pool.snapshot()[0]["failures"] == sims[0].stats()["requests"]


async def test_a_client_error_goes_straight_to_the_caller(sims: list[RunningSimulator]) -> None:
    async with open_pool(model(*(s.url for s in sims))) as pool:
        with pytest.raises(BackendError, match="400"):
            await collect(pool, request(max_tokens=0))  # the server refuses max_tokens=0
        assert sum(requests_per_sim(sims)) == 1
        assert all(w["failures"] == 0 and w["breaker"] == "closed" for w in pool.snapshot())


async def test_a_slow_worker_gets_fewer_requests(sims: list[RunningSimulator]) -> None:
    sims[2].set_mode("slow", slow_ttft_s=0.4)

    async with open_pool(model(*(s.url for s in sims))) as pool:

        async def client(delay: float) -> str:
            await asyncio.sleep(delay)
            return await collect(pool)

        texts = await asyncio.gather(*(client(i * 0.02) for i in range(15)))
        assert all(t.startswith(NO_PASSAGES_ANSWER) for t in texts)
        fast_a, fast_b, slow = requests_per_sim(sims)
        assert slow <= 3 and slow < min(fast_a, fast_b)


async def test_health_checks_take_a_dead_worker_out_of_capacity(
    sims: list[RunningSimulator],
) -> None:
    extra = RunningSimulator(FAST).start()
    try:
        async with open_pool(model(sims[0].url, extra.url, health_interval_s=0.05)) as pool:
            changes: list[int] = []
            pool.on_change = lambda: changes.append(pool.capacity())
            pool.start()
            pool.start()
            await asyncio.sleep(0.15)
            assert pool.capacity() == 8 and changes == []
            extra.stop()
            for _ in range(100):
                if pool.capacity() == 4:
                    break
                await asyncio.sleep(0.02)
            assert pool.capacity() == 4 and changes == [4]
            assert pool.snapshot()[1]["healthy"] is False
            assert await pool.ready()
            for _ in range(3):
                await collect(pool)
            assert sims[0].stats()["requests"] == 3
            assert pool.snapshot()[1]["requests"] == 0
    finally:
        extra.stop()


async def test_no_available_worker_fails_at_once(sims: list[RunningSimulator]) -> None:
    async with open_pool(model(dead_url(), breaker_failures=1)) as pool:
        with pytest.raises(BackendError, match="1 attempt") as first:
            await collect(pool)
        assert first.value.before_output
        assert pool.capacity() == 0 and not await pool.ready()
        with pytest.raises(BackendError, match="no worker of model sim is available") as second:
            await collect(pool)
        assert second.value.before_output
        assert pool.snapshot()[0]["requests"] == 1


async def test_retries_are_bounded(sims: list[RunningSimulator]) -> None:
    for sim in sims:
        sim.set_mode("error_500")
    async with open_pool(model(*(s.url for s in sims), retries=1)) as pool:
        with pytest.raises(BackendError, match="2 attempt") as caught:
            await collect(pool)
        assert caught.value.before_output
        assert sum(requests_per_sim(sims)) == 2
        assert sorted(requests_per_sim(sims)) == [0, 1, 1]  # two different workers


async def test_closing_early_or_cancelling_releases_the_worker_and_the_upstream(
    sims: list[RunningSimulator],
) -> None:
    sims[0].configure(completion_tokens=300, itl_s=0.01)
    async with open_pool(model(sims[0].url)) as pool:
        assert await pool.ready()
        stream = pool.stream(request(max_tokens=300))
        await anext(stream)
        assert pool.in_flight() == 1
        await stream.aclose()
        assert pool.in_flight() == 0
        stats = await asyncio.to_thread(sims[0].wait_for, lambda s: s["streams_cancelled"] == 1)
        assert stats["streams_cancelled"] == 1

        async def consume() -> None:
            async for _ in pool.stream(request(max_tokens=300)):
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.1)
        assert pool.in_flight() == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool.in_flight() == 0
        stats = await asyncio.to_thread(sims[0].wait_for, lambda s: s["streams_cancelled"] == 2)
        assert stats["streams_cancelled"] == 2
        worker = pool.snapshot()[0]
        assert worker["failures"] == 0 and worker["breaker"] == "closed"
