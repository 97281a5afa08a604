"""The admission queue: capacity, priority, shedding, timeouts and cancellation."""

from __future__ import annotations

import asyncio

import pytest

from grounded.errors import GroundedError
from grounded.gateway.admission import (
    AdmissionError,
    AdmissionQueue,
    Lease,
    NoCapacity,
    QueueTimeout,
    Shed,
)

pytestmark = pytest.mark.anyio


class Capacity:
    def __init__(self, value: int) -> None:
        self.value = value

    def __call__(self) -> int:
        return self.value


def queue(capacity: int = 1, max_waiting: int = 10, timeout_s: float = 5.0) -> AdmissionQueue:
    return AdmissionQueue("m", Capacity(capacity), max_waiting=max_waiting, timeout_s=timeout_s)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_admits_up_to_capacity_then_waits_and_release_is_idempotent() -> None:
    q = queue(capacity=2)
    a = await q.acquire(0)
    b = await q.acquire(0)
    waiter = asyncio.create_task(q.acquire(0))
    await settle()
    assert not waiter.done()
    assert (q.in_use, q.waiting) == (2, 1)
    a.release()
    a.release()  # a second release must not free a second slot
    c = await asyncio.wait_for(waiter, 1)
    assert (q.in_use, q.waiting) == (2, 0)
    with b, c:
        pass
    assert q.in_use == 0
    assert q.stats()["admitted"] == 3


async def test_higher_priority_first_fifo_within_a_priority() -> None:
    q = queue(capacity=1)
    holder = await q.acquire(0)
    order: list[str] = []

    async def client(label: str, priority: int) -> None:
        lease = await q.acquire(priority)
        order.append(label)
        await asyncio.sleep(0)
        lease.release()

    tasks = []
    for label, priority in [("low1", 0), ("high1", 5), ("low2", 0), ("mid", 3), ("high2", 5)]:
        tasks.append(asyncio.create_task(client(label, priority)))
        await settle()
    assert q.stats()["waiting_by_priority"] == {5: 2, 3: 1, 0: 2}
    holder.release()
    await asyncio.wait_for(asyncio.gather(*tasks), 2)
    assert order == ["high1", "high2", "mid", "low1", "low2"]


async def test_a_newcomer_does_not_jump_equal_priority_waiters_even_with_a_free_slot() -> None:
    cap = Capacity(1)
    q = AdmissionQueue("m", cap, max_waiting=10, timeout_s=5)
    holder = await q.acquire(0)
    first = asyncio.create_task(q.acquire(0))
    await settle()
    cap.value = 2  # grew, but nobody called notify() yet
    second = asyncio.create_task(q.acquire(0))
    await settle()
    assert first.done() and not second.done()  # the newcomer's check admitted the waiter first
    holder.release()
    (await first).release()
    (await asyncio.wait_for(second, 1)).release()
    assert q.in_use == 0


async def test_full_queue_sheds_the_newest_lowest_priority_waiter_for_a_more_important_one() -> (
    None
):
    q = queue(capacity=1, max_waiting=2)
    holder = await q.acquire(0)
    old_low = asyncio.create_task(q.acquire(0))
    await settle()
    new_low = asyncio.create_task(q.acquire(0))
    await settle()

    with pytest.raises(Shed) as same:  # equally important newcomer: shed at once
        await q.acquire(0)
    assert same.value.status == 429 and same.value.retry_after_s >= 1

    high = asyncio.create_task(q.acquire(9))
    await settle()
    assert new_low.done()
    with pytest.raises(Shed) as shed:
        new_low.result()
    assert "overloaded" in str(shed.value)
    assert not old_low.done() and not high.done()
    assert q.stats()["shed"] == 2

    holder.release()
    (await asyncio.wait_for(high, 1)).release()
    (await asyncio.wait_for(old_low, 1)).release()
    assert q.in_use == 0 and q.waiting == 0


async def test_zero_max_waiting_never_queues() -> None:
    q = queue(capacity=1, max_waiting=0)
    lease = await q.acquire(0)
    with pytest.raises(Shed):
        await q.acquire(100)
    lease.release()


async def test_waiting_longer_than_the_timeout_raises_queue_timeout() -> None:
    q = queue(capacity=1, timeout_s=0.1)
    holder = await q.acquire(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(QueueTimeout) as caught:
        await q.acquire(0)
    assert 0.09 <= loop.time() - started < 1.0
    assert caught.value.status == 503 and caught.value.retry_after_s >= 1
    assert "0.1 s" in str(caught.value)
    assert q.waiting == 0 and q.stats()["timed_out"] == 1
    holder.release()
    assert q.in_use == 0


async def test_no_capacity_fails_at_once() -> None:
    cap = Capacity(0)
    q = AdmissionQueue("m", cap, max_waiting=10, timeout_s=5)
    with pytest.raises(NoCapacity) as caught:
        await asyncio.wait_for(q.acquire(0), 0.5)
    assert caught.value.status == 503 and caught.value.retry_after_s >= 1
    assert "no worker" in str(caught.value)


async def test_waiters_fail_with_no_capacity_when_the_last_worker_goes() -> None:
    cap = Capacity(1)
    q = AdmissionQueue("m", cap, max_waiting=10, timeout_s=5)
    holder = await q.acquire(0)
    waiter = asyncio.create_task(q.acquire(0))
    await settle()
    cap.value = 0
    q.notify()
    with pytest.raises(NoCapacity):
        await asyncio.wait_for(waiter, 1)
    holder.release()
    assert (q.in_use, q.waiting) == (0, 0)


async def test_notify_admits_waiters_when_capacity_grows() -> None:
    cap = Capacity(1)
    q = AdmissionQueue("m", cap, max_waiting=10, timeout_s=5)
    holder = await q.acquire(0)
    waiters = [asyncio.create_task(q.acquire(0)) for _ in range(3)]
    await settle()
    assert q.waiting == 3
    cap.value = 3
    await settle()
    assert q.waiting == 3  # nobody told it
    q.notify()
    await settle()
    assert sum(w.done() for w in waiters) == 2 and q.in_use == 3
    holder.release()
    leases = await asyncio.wait_for(asyncio.gather(*waiters), 1)
    for lease in leases:
        lease.release()
    assert q.in_use == 0


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    q = queue(capacity=1)
    holder = await q.acquire(0)
    waiter = asyncio.create_task(q.acquire(0))
    await settle()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert q.waiting == 0
    holder.release()
    assert q.in_use == 0
    (await asyncio.wait_for(q.acquire(0), 0.5)).release()


async def test_a_waiter_cancelled_just_as_it_was_granted_gives_the_slot_back() -> None:
    q = queue(capacity=1)
    holder = await q.acquire(0)
    waiter = asyncio.create_task(q.acquire(0))
    behind = asyncio.create_task(q.acquire(0))
    await settle()
    holder.release()  # grants the slot to `waiter`, which has not run yet
    assert q.in_use == 1
    waiter.cancel()  # ... and its client goes away before it does
    with pytest.raises(asyncio.CancelledError):
        await waiter
    lease: Lease = await asyncio.wait_for(behind, 1)  # the slot went on, not lost
    assert q.in_use == 1
    lease.release()
    assert (q.in_use, q.waiting) == (0, 0)


async def test_stats_report_wait_percentiles() -> None:
    q = queue(capacity=1)
    holder = await q.acquire(0)
    waiter = asyncio.create_task(q.acquire(0))
    await asyncio.sleep(0.05)
    holder.release()
    (await waiter).release()
    stats = q.stats()
    wait_ms = stats["wait_ms"]
    assert isinstance(wait_ms, dict)
    assert wait_ms["p50"] < 10 and 40 <= wait_ms["max"] < 1000
    assert stats["name"] == "m" and stats["capacity"] == 1 and stats["in_use"] == 0


async def test_under_overload_important_requests_wait_briefly_and_unimportant_ones_are_shed() -> (
    None
):
    q = AdmissionQueue("m", Capacity(4), max_waiting=8, timeout_s=5)
    service_s = 0.02
    waits: dict[int, list[float]] = {0: [], 10: []}
    shed: dict[int, int] = {0: 0, 10: 0}

    async def client(priority: int, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            lease = await q.acquire(priority)
        except Shed:
            shed[priority] += 1
            return
        waits[priority].append(lease.waited_s)
        await asyncio.sleep(service_s)
        lease.release()

    # 8 low-priority requests arrive every 10 ms (2x what 4 slots of 20 ms serve), and one
    # important request every 25 ms.
    clients = [client(0, i * 0.00125) for i in range(160)]
    clients += [client(10, 0.005 + i * 0.025) for i in range(8)]
    await asyncio.wait_for(asyncio.gather(*clients), 10)

    assert shed[10] == 0 and len(waits[10]) == 8
    assert shed[0] >= 40  # far more arrive than can be served
    assert max(waits[10]) < 3 * service_s
    assert max(waits[0]) > max(waits[10])
    assert q.in_use == 0 and q.waiting == 0


def test_errors_share_one_branch_of_the_error_tree() -> None:
    for kind, status in ((Shed, 429), (QueueTimeout, 503), (NoCapacity, 503)):
        error = kind("full", 2.5)
        assert isinstance(error, AdmissionError) and isinstance(error, GroundedError)
        assert error.status == error.http_status == status
        assert error.retry_after_s == 2.5


async def test_try_acquire_takes_a_free_slot_and_never_queues() -> None:
    q = queue(capacity=1)
    background = q.try_acquire(-1)
    assert background is not None and q.in_use == 1
    assert q.try_acquire(-1) is None  # full: background work is dropped, not queued
    waiter = asyncio.create_task(q.acquire(0))
    await settle()
    background.release()
    lease = await asyncio.wait_for(waiter, 1)
    assert q.try_acquire(-1) is None and q.waiting == 0
    lease.release()
    assert q.try_acquire(-1) is not None
