"""What the gateway adds: latency and most requests/s through Grounded and through LiteLLM,
against calling the model server directly, all in the same run.

    .venv/bin/python bench/gateway.py                 # full run, about 5 minutes
    .venv/bin/python bench/gateway.py --quick         # smoke run, about 2 minutes
    .venv/bin/python bench/gateway.py --no-auth --skip-litellm

Starts three servers on loopback, one process each:
  - the LLM simulator (tests/support), configured fast (no time to first token, no delay
    between tokens, short answers) so that what a proxy costs dominates what is measured;
    served by uvicorn with httptools and uvloop (`--sim-http h11` for the simulator's own
    default);
  - `grounded serve` (one worker) in front of it, response cache off, with API keys
    (`grounded keys create`), tier quotas (a premium tier with limits too high to refuse
    anything here) and routing (`model: auto`, small and large model both on the simulator)
    switched on; requests turn retrieval off (`"grounded": {"retrieval": false}`);
  - the LiteLLM proxy (`litellm --num_workers 1`, master key on) pointed at the same
    simulator, installed into its own venv (bench/.cache/litellm-venv, reused if present).

For each mode (non-streaming; streaming, timed to the end of the stream) and concurrency
(1, 16, 64, 256), each target (direct, Grounded, LiteLLM) gets a closed-loop run of
`--duration` seconds after `--warmup` seconds (the window opens only once every client had
an answer and closes only after one answer per client, so a slow target at concurrency 256
gets a longer cell): p50 and p99 latency, requests (or streams) per second, errors
(anything but a 200 with a complete, non-degraded answer), and the CPU time the target's
own process used per answer (the proxy alone, not the simulator behind it). "Added" is the
target's latency minus the direct latency at the same mode and concurrency. The load comes
from this process: a minimal HTTP/1.1 keep-alive client on asyncio protocols and uvloop, one
connection per concurrent client (aiohttp is not in the project's venv, and httpx's
connection pool is too slow to load a server at thousands of requests per second); its own
CPU use per answer is printed too.
Targets checked at the end (the reference: LiteLLM 1.108 adds about 9–11 ms p50 at
concurrency 1 and tops out near 110 req/s and 28 streams/s per worker):
  - Grounded's added p50 at concurrency 1 <= 1 ms;
  - Grounded's added p99 at concurrency 64 <= LiteLLM's / 10;
  - Grounded's most requests/s >= 10 x LiteLLM's; each in both modes.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
from _common import console, p50, percentile, print_table, save  # noqa: E402

LITELLM_VENV = BENCH / ".cache" / "litellm-venv"
LITELLM_KEY = "sk-bench-master"
QUESTION = "What is the return policy for a laptop bought 45 days ago?"
MODES = ("non-stream", "stream")
REFERENCE_ADDED_P50_MS = "9–11"  # LiteLLM 1.108, one worker, concurrency 1
REFERENCE_RATE = {"non-stream": 110.0, "stream": 28.0}
UNLIMITED = 10**12


# ----------------------------------------------------------------------------------------------
# Subprocesses


class Servers:
    """Every subprocess this bench starts, each in its own session; all stopped on exit."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []
        atexit.register(self.stop)

    def start(
        self, cmd: list[str], env: dict[str, str], log: Path, stdout: int | None = None
    ) -> subprocess.Popen[bytes]:
        with log.open("ab") as err:
            process = subprocess.Popen(
                cmd,
                env=env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=stdout if stdout is not None else err,
                stderr=err,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        while self.processes:
            process = self.processes.pop()
            if process.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(
    method: str,
    url: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: server exited ({process.returncode}):\n{tail(log)}")
        with contextlib.suppress(OSError):
            if http("GET", url, timeout=2)[0] == 200:
                return
        time.sleep(0.25)
    raise RuntimeError(f"{url} not ready after {timeout:.0f} s:\n{tail(log)}")


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def serve_simulator(args: argparse.Namespace) -> None:
    """Child process: the simulator app on uvicorn; prints its base URL on stdout."""
    import uvicorn

    sys.path.insert(0, str(ROOT))
    from tests.support.llm_simulator import SimulatorConfig, create_simulator

    config = SimulatorConfig(
        model_name="sim", ttft_s=args.sim_ttft, itl_s=args.sim_itl, completion_tokens=args.tokens
    )
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(f"http://127.0.0.1:{sock.getsockname()[1]}/v1", flush=True)
    fast = args.sim_http == "httptools"
    uvicorn.Server(
        uvicorn.Config(
            create_simulator(config),
            http=args.sim_http,
            loop="uvloop" if fast else "asyncio",
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            backlog=4096,
            timeout_graceful_shutdown=2,
        )
    ).run(sockets=[sock])


def start_simulator(servers: Servers, args: argparse.Namespace, tmp: Path) -> tuple[int, str]:
    cmd = [sys.executable, __file__, "--serve-simulator", "--sim-http", args.sim_http]
    cmd += ["--tokens", str(args.tokens), "--sim-ttft", str(args.sim_ttft)]
    cmd += ["--sim-itl", str(args.sim_itl)]
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    log = tmp / "simulator.log"
    process = servers.start(cmd, env, log, stdout=subprocess.PIPE)
    assert process.stdout is not None
    url = process.stdout.readline().decode().strip()
    if not url.startswith("http"):
        raise RuntimeError(f"simulator did not start:\n{tail(log)}")
    wait_ready(f"{url}/models", process, log, 30)
    return process.pid, url


def grounded_command() -> list[str]:
    script = ROOT / ".venv" / "bin" / "grounded"
    return [str(script)] if script.exists() else [sys.executable, "-m", "grounded"]


def grounded_env(args: argparse.Namespace, tmp: Path, sim_url: str) -> dict[str, str]:
    model = {"url": sim_url, "max_in_flight": 512, "max_output_tokens": 256}
    models = [{"name": "sim", **model}, {"name": "sim-large", **model}]
    tier = {
        "name": "premium",
        "priority": 2,
        "requests_per_minute": UNLIMITED,
        "tokens_per_day": UNLIMITED,
        "max_output_tokens": 4096,
        "max_input_chars": 64_000,
    }
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "GROUNDED_DATA_DIR": str(tmp / "data"),
        "GROUNDED_EMBED__CACHE_DIR": str(ROOT / ".grounded" / "models"),
        "GROUNDED_GENERATE__MODELS": json.dumps(models),
        "GROUNDED_GENERATE__DEFAULT_MODEL": "sim",
        "GROUNDED_CACHE__ENABLED": "false",
        "GROUNDED_GATEWAY__AUTH": "false" if args.no_auth else "true",
        "GROUNDED_GATEWAY__TIERS": json.dumps([tier]),
        "GROUNDED_GATEWAY__DEFAULT_TIER": "premium",
        "GROUNDED_GATEWAY__OPEN_TIER": "premium",
        "GROUNDED_GATEWAY__QUEUE_SIZE": "4096",
        "GROUNDED_GATEWAY__ROUTING__SMALL_MODEL": "sim",
        "GROUNDED_GATEWAY__ROUTING__LARGE_MODEL": "sim-large",
    }
    if not args.request_log:
        env["GROUNDED_SERVE__REQUEST_LOG"] = "false"
    return env


def create_key(env: dict[str, str], tmp: Path) -> str:
    cmd = [*grounded_command(), "keys", "create", "--tenant", "bench", "--tier", "premium"]
    done = subprocess.run(
        [*cmd, "--json"], env=env, cwd=tmp, capture_output=True, text=True, timeout=120
    )
    try:
        key = json.loads(done.stdout)["key"]
    except (ValueError, KeyError, TypeError):
        key = None
    if done.returncode != 0 or not isinstance(key, str):
        raise SystemExit(
            f"`grounded keys create` failed (exit {done.returncode}): "
            f"{(done.stderr or done.stdout).strip()[-400:]}\n"
            "Run with --no-auth to measure without API keys."
        )
    return key


def start_grounded(
    servers: Servers, args: argparse.Namespace, tmp: Path, sim_url: str
) -> tuple[int, str, str | None]:
    env = grounded_env(args, tmp, sim_url)
    key = None if args.no_auth else create_key(env, tmp)
    port = free_port()
    log = tmp / "grounded.log"
    process = servers.start([*grounded_command(), "serve", "--port", str(port)], env, log)
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/healthz", process, log, 180)
    return process.pid, url, key


def install_litellm(venv: Path, spec: str) -> Path:
    binary = venv / "bin" / "litellm"
    if binary.exists():
        return binary
    console.print(f"installing {spec} into {venv} (once) …")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    done = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", spec], capture_output=True, text=True
    )
    if done.returncode != 0 or not binary.exists():
        raise RuntimeError(f"pip install {spec} failed:\n{done.stderr[-2000:]}")
    return binary


def litellm_version(venv: Path) -> str:
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True
    )
    return done.stdout.strip() or "?"


def start_litellm(
    servers: Servers, args: argparse.Namespace, tmp: Path, sim_url: str
) -> tuple[int, str]:
    binary = install_litellm(args.litellm_venv, args.litellm_spec)
    config = {
        "model_list": [
            {
                "model_name": "sim",
                "litellm_params": {"model": "openai/sim", "api_base": sim_url, "api_key": "x"},
            }
        ],
        "general_settings": {"master_key": LITELLM_KEY},
        "litellm_settings": {"telemetry": False, "set_verbose": False},
    }
    path = tmp / "litellm.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    port = free_port()
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    env.pop("PYTHONPATH", None)
    cmd = [str(binary), "--config", str(path), "--host", "127.0.0.1", "--port", str(port)]
    log = tmp / "litellm.log"
    process = servers.start([*cmd, "--num_workers", "1"], env, log)
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/health/liveliness", process, log, 300)
    return process.pid, url


def cpu_seconds(pid: int) -> float:
    import psutil

    try:
        process = psutil.Process(pid)
        total = 0.0
        for each in [process, *process.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = each.cpu_times()
                total += times.user + times.system
        return total
    except psutil.Error:
        return float("nan")


# ----------------------------------------------------------------------------------------------
# Load generator: HTTP/1.1 keep-alive, one connection per concurrent client

_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _TRAILER, _UNTIL_CLOSE, _IDLE = range(7)
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)")


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; `send` writes a request and resolves with the response."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._body = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes, float]] | None = None
        self._state = _IDLE
        self._need = 0
        self._status = 0
        self.keep_alive = True
        self.sent_at = 0.0
        self.timed_out = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._state == _UNTIL_CLOSE and not self.timed_out:
            self._finish()
            return
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(
                TimeoutError() if self.timed_out else ConnectionError(str(exc or "closed"))
            )

    def send(self, raw: bytes) -> asyncio.Future[tuple[int, bytes, float]]:
        assert self._transport is not None
        self._waiter = self._loop.create_future()
        self._state, self._status = _HEAD, 0
        self._body.clear()
        self.sent_at = time.perf_counter()
        self._transport.write(raw)
        return self._waiter

    def abort(self) -> None:
        self.timed_out = True
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        if self._transport is not None and not self.lost:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        body = self._body
        while True:
            state = self._state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(buf[:end]).lower()
                del buf[: end + 4]
                self._status = int(head[9:12])
                self.keep_alive = b"\r\nconnection: close" not in head
                if b"\r\ntransfer-encoding: chunked" in head:
                    self._state = _CHUNK_SIZE
                else:
                    match = _CONTENT_LENGTH.search(head)
                    if match:
                        self._need, self._state = int(match.group(1)), _LENGTH
                    else:
                        self._state, self.keep_alive = _UNTIL_CLOSE, False
            elif state == _LENGTH:
                if len(buf) < self._need:
                    return
                body += buf[: self._need]
                del buf[: self._need]
                self._finish()
                return
            elif state == _CHUNK_SIZE:
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                size = int(bytes(buf[:end]).split(b";")[0], 16)
                del buf[: end + 2]
                self._need, self._state = size + 2, (_CHUNK_DATA if size else _TRAILER)
            elif state == _CHUNK_DATA:
                if len(buf) < self._need:
                    return
                body += buf[: self._need - 2]
                del buf[: self._need]
                self._state = _CHUNK_SIZE
            elif state == _TRAILER:
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                del buf[: end + 2]
                if end == 0:
                    self._finish()
                    return
            elif state == _UNTIL_CLOSE:
                body += buf
                buf.clear()
                return
            else:
                buf.clear()
                return

    def _finish(self) -> None:
        self._state, self.sent_at = _IDLE, 0.0
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self._status, bytes(self._body), time.perf_counter()))


@dataclass
class Target:
    name: str
    host: str
    port: int
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    pid: int

    def request(self, stream: bool) -> bytes:
        payload = json.dumps({**self.body, "stream": stream}).encode()
        lines = [
            f"POST {self.path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            *(f"{k}: {v}" for k, v in self.headers.items()),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


_BAD = re.compile(rb'"degraded":\s*true|"error":\s*\{')


def check_complete(body: bytes) -> bool:
    return b'"choices"' in body and _BAD.search(body) is None


def check_stream(body: bytes) -> bool:
    return body.rstrip().endswith(b"data: [DONE]") and _BAD.search(body) is None


@dataclass
class Cell:
    target: str
    mode: str
    concurrency: int
    duration: float
    latencies_ms: list[float] = field(default_factory=list)  # good answers in the window
    ok: int = 0  # every good answer, warm-up included (for CPU per request)
    errors: Counter[str] = field(default_factory=Counter)
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    samples: list[str] = field(default_factory=list)
    window_from: float | None = None
    window_to: float | None = None
    in_window: int = 0  # answers of any kind that ended in the window

    @property
    def window_s(self) -> float:
        if self.window_from is None or self.window_to is None:
            return 0.0
        return self.window_to - self.window_from

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.window_s if self.window_s else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "mode": self.mode,
            "concurrency": self.concurrency,
            "requests": len(self.latencies_ms),
            "window_s": self.window_s,
            "rate": self.rate,
            "p50_ms": p50(self.latencies_ms),
            "p99_ms": percentile(self.latencies_ms, 99),
            "errors": dict(self.errors),
            "server_cpu_us_per_request": self.server_cpu_s / self.ok * 1e6 if self.ok else None,
            "client_cpu_us_per_request": self.client_cpu_s / self.ok * 1e6 if self.ok else None,
            "error_samples": self.samples,
        }


async def run_cell(
    target: Target, mode: str, concurrency: int, warmup: float, duration: float, timeout: float
) -> Cell:
    loop = asyncio.get_running_loop()
    stream = mode == "stream"
    raw = target.request(stream)
    check: Callable[[bytes], bool] = check_stream if stream else check_complete
    cell = Cell(target.name, mode, concurrency, duration)
    live: set[Connection] = set()

    async def connect() -> Connection:
        _, conn = await loop.create_connection(lambda: Connection(loop), target.host, target.port)
        live.add(conn)
        return conn

    conns = await asyncio.gather(*(connect() for _ in range(concurrency)))
    cpu0, client0 = cpu_seconds(target.pid), time.process_time()
    begin = time.perf_counter()
    warm_until = begin + warmup
    hard_stop = warm_until + duration + max(timeout, 30.0)
    done = 0

    def completed(ended: float, latency_ms: float | None) -> None:
        # The window opens after the warm-up once every client had an answer (at high
        # concurrency a slow target needs longer than the warm-up for one round), and closes
        # after `duration` seconds and at least one answer per client.
        nonlocal done
        done += 1
        if cell.window_from is None:
            if ended >= warm_until and done >= concurrency:
                cell.window_from = ended
            return
        if cell.window_to is not None:
            return
        cell.in_window += 1
        if latency_ms is not None:
            cell.latencies_ms.append(latency_ms)
        if ended - cell.window_from >= duration and cell.in_window >= concurrency:
            cell.window_to = ended

    def fail(kind: str, detail: bytes = b"") -> None:
        cell.errors[kind] += 1
        completed(time.perf_counter(), None)
        if len(cell.samples) < 3:
            cell.samples.append(f"{kind}: {detail[:300].decode(errors='replace')}")

    async def client(conn: Connection | None) -> None:
        while cell.window_to is None and time.perf_counter() < hard_stop:
            if conn is None or conn.lost or not conn.keep_alive:
                if conn is not None:
                    conn.close()
                    live.discard(conn)
                try:
                    conn = await connect()
                except OSError as exc:
                    fail("connect", str(exc).encode())
                    await asyncio.sleep(0.05)
                    conn = None
                    continue
            started = time.perf_counter()
            try:
                status, body, ended = await conn.send(raw)
            except TimeoutError:
                fail("timeout")
                conn = None
                continue
            except ConnectionError as exc:
                fail("disconnected", str(exc).encode())
                conn = None
                await asyncio.sleep(0.01)
                continue
            if status != 200:
                fail(f"http {status}", body)
            elif not check(body):
                fail("bad body", body)
            else:
                cell.ok += 1
                completed(ended, (ended - started) * 1000)
        if conn is not None:
            conn.close()

    async def watchdog() -> None:
        while True:
            await asyncio.sleep(0.25)
            now = time.perf_counter()
            for conn in list(live):
                if conn.sent_at and now - conn.sent_at > timeout:
                    conn.abort()

    guard = asyncio.create_task(watchdog())
    try:
        await asyncio.gather(*(client(conn) for conn in conns))
    finally:
        guard.cancel()
        for conn in live:
            conn.close()
    if cell.window_from is not None and cell.window_to is None:
        cell.window_to = time.perf_counter()  # stopped at the hard limit
    cell.server_cpu_s = cpu_seconds(target.pid) - cpu0
    cell.client_cpu_s = time.process_time() - client0
    return cell


async def probe(target: Target, stream: bool) -> tuple[int, bytes]:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(lambda: Connection(loop), target.host, target.port)
    try:
        status, body, _ = await asyncio.wait_for(conn.send(target.request(stream)), 60)
    finally:
        conn.close()
    return status, body


# ----------------------------------------------------------------------------------------------
# Report


def added(cells: dict[tuple[str, str, int], Cell], target: str, mode: str, c: int) -> Any:
    mine, direct = cells.get((target, mode, c)), cells.get(("direct", mode, c))
    if not mine or not direct or not mine.latencies_ms or not direct.latencies_ms:
        return None
    return (
        p50(mine.latencies_ms) - p50(direct.latencies_ms),
        percentile(mine.latencies_ms, 99) - percentile(direct.latencies_ms, 99),
    )


def best_rate(cells: dict[tuple[str, str, int], Cell], target: str, mode: str) -> float | None:
    rates = [cell.rate for key, cell in cells.items() if key[0] == target and key[1] == mode]
    return max(rates) if rates else None


def ms(value: float) -> str:
    return f"{value:,.2f}"


def num(value: float | None) -> str:
    return "" if value is None else f"{value:,.2f}"


def report(cells: dict[tuple[str, str, int], Cell], levels: list[int]) -> list[dict[str, Any]]:
    rows: list[list[Any]] = []
    for (target, mode, c), cell in cells.items():
        extra = added(cells, target, mode, c) if target != "direct" else None
        s = cell.summary()
        rows.append(
            [
                mode,
                c,
                target,
                f"{s['requests']:,}",
                f"{s['rate']:,.0f}",
                ms(s["p50_ms"]),
                ms(s["p99_ms"]),
                ms(extra[0]) if extra else "",
                ms(extra[1]) if extra else "",
                sum(cell.errors.values()),
                f"{s['server_cpu_us_per_request']:,.0f}" if cell.ok else "",
                f"{s['client_cpu_us_per_request']:,.0f}" if cell.ok else "",
            ]
        )
    print_table(
        "Gateway overhead (latency in ms; streams timed to their end)",
        [
            "mode",
            "conc.",
            "target",
            "requests",
            "req/s",
            "p50",
            "p99",
            "added p50",
            "added p99",
            "errors",
            "server CPU µs/req",
            "client CPU µs/req",
        ],
        rows,
    )
    for cell in cells.values():
        if cell.errors:
            console.print(
                f"[red]{cell.target} {cell.mode} c{cell.concurrency}[/red]: "
                f"{dict(cell.errors)} e.g. {cell.samples[:1]}"
            )

    checks: list[dict[str, Any]] = []

    def verdict(name: str, value: float | None, limit: float | None, higher: bool) -> None:
        if value is None or limit is None:
            checks.append({"target": name, "value": value, "limit": limit, "met": None})
            return
        met = value >= limit if higher else value <= limit
        checks.append({"target": name, "value": value, "limit": limit, "met": met})

    low, high = min(levels), 64 if 64 in levels else max(levels)
    for mode in MODES:
        g1 = added(cells, "grounded", mode, low)
        verdict(f"{mode}: Grounded added p50 @c{low} <= 1 ms", g1[0] if g1 else None, 1.0, False)
        g64, l64 = added(cells, "grounded", mode, high), added(cells, "litellm", mode, high)
        verdict(
            f"{mode}: Grounded added p99 @c{high} <= LiteLLM's / 10",
            g64[1] if g64 else None,
            l64[1] / 10 if l64 else None,
            False,
        )
        g, lite = best_rate(cells, "grounded", mode), best_rate(cells, "litellm", mode)
        verdict(
            f"{mode}: Grounded most req/s >= 10 x LiteLLM's",
            g,
            lite * 10 if lite is not None else None,
            True,
        )
    mark = {True: "[green]met[/green]", False: "[red]NOT met[/red]", None: "n/a"}
    print_table(
        "Targets",
        ["target", "measured", "limit", ""],
        [[c["target"], num(c["value"]), num(c["limit"]), mark[c["met"]]] for c in checks],
    )
    ref = []
    for mode in MODES:
        lite = added(cells, "litellm", mode, low)
        ref.append(
            [
                mode,
                ms(lite[0]) if lite else "",
                REFERENCE_ADDED_P50_MS,
                num(best_rate(cells, "litellm", mode)),
                f"{REFERENCE_RATE[mode]:,.0f}",
                num(best_rate(cells, "grounded", mode)),
                num(best_rate(cells, "direct", mode)),
            ]
        )
    print_table(
        "LiteLLM against its reference figures; most req/s of each target",
        [
            "mode",
            f"LiteLLM added p50 @c{low}",
            "reference",
            "LiteLLM req/s",
            "reference",
            "Grounded req/s",
            "direct req/s",
        ],
        ref,
    )
    return checks


# ----------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run (~2 minutes)")
    parser.add_argument("--concurrency", default="1,16,64,256", help="comma-separated levels")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--duration", type=float, default=7.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=1.5, help="unmeasured seconds per cell")
    parser.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    parser.add_argument("--tokens", type=int, default=16, help="simulator answer length, words")
    parser.add_argument("--sim-ttft", type=float, default=0.0, help="simulator first token, s")
    parser.add_argument("--sim-itl", type=float, default=0.0, help="simulator token gap, s")
    parser.add_argument("--sim-http", choices=("httptools", "h11"), default="httptools")
    parser.add_argument("--no-auth", action="store_true", help="Grounded without API keys")
    parser.add_argument("--model", default="auto", help="model Grounded is asked for")
    parser.add_argument(
        "--request-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Grounded's request log (on by default, as in production)",
    )
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--litellm-venv", type=Path, default=LITELLM_VENV)
    parser.add_argument("--litellm-spec", default="litellm[proxy]")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="record Grounded with py-spy (if installed) into this file: .svg flame graph, "
        ".txt collapsed stacks, else speedscope JSON",
    )
    parser.add_argument("--serve-simulator", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup = min(args.duration, 1.5), min(args.warmup, 0.5)
    return args


def grounded_target(url: str, key: str | None, model: str, pid: int) -> Target:
    port = int(url.rsplit(":", 1)[1])
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {
        "model": model,
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": 64,
        "grounded": {"retrieval": False},
    }
    return Target("grounded", "127.0.0.1", port, "/v1/chat/completions", headers, body, pid)


async def check_grounded(target: Target, args: argparse.Namespace) -> Target:
    """Routing and auth really on? Falls back to a plain model name if `auto` is unknown."""
    status, body = await probe(target, False)
    if status == 404 and b"model_not_found" in body and target.body["model"] != "sim":
        console.print(
            f"[yellow]warning:[/yellow] Grounded does not know model {target.body['model']!r}"
            " (routing not available in this build); asking for 'sim'"
        )
        target.body["model"] = "sim"
        status, body = await probe(target, False)
    if status != 200:
        raise RuntimeError(f"Grounded answered {status}: {body[:500]!r}")
    if not args.no_auth:
        anonymous = Target(**{**target.__dict__, "headers": {}})
        status, _ = await probe(anonymous, False)
        if status == 200:
            console.print(
                "[yellow]warning:[/yellow] Grounded answered a request without a key: "
                "auth is not enforced by this build"
            )
    return target


async def measure(
    targets: list[Target], args: argparse.Namespace, levels: list[int], modes: list[str]
) -> dict[tuple[str, str, int], Cell]:
    for target in targets:
        for stream in (False, True):
            status, body = await probe(target, stream)
            good = check_stream(body) if stream else check_complete(body)
            if status != 200 or not good:
                raise RuntimeError(f"{target.name} answered {status}: {body[:500]!r}")
    cells: dict[tuple[str, str, int], Cell] = {}
    for mode in modes:
        for c in levels:
            for target in targets:
                cell = await run_cell(target, mode, c, args.warmup, args.duration, args.timeout)
                cells[(target.name, mode, c)] = cell
                s = cell.summary()
                errors = sum(cell.errors.values())
                console.print(
                    f"  {mode:>10} c{c:<3} {target.name:>8}: {s['rate']:8,.0f}/s  "
                    f"p50 {s['p50_ms']:7.2f}  p99 {s['p99_ms']:7.2f} ms"
                    + (f"  [red]{errors} errors[/red]" if errors else "")
                )
    return cells


def start_profiler(pid: int, out: Path, tmp: Path, venv: Path) -> subprocess.Popen[bytes] | None:
    found = [shutil.which("py-spy"), ROOT / ".venv" / "bin" / "py-spy", venv / "bin" / "py-spy"]
    spy = next((str(p) for p in found if p and Path(p).exists()), None)
    if spy is None:
        console.print(f"[yellow]py-spy not found (pip install py-spy into {venv})[/yellow]")
        return None
    kind = {".txt": "raw", ".svg": "flamegraph"}.get(out.suffix, "speedscope")
    cmd = [spy, "record", "--pid", str(pid), "--format", kind, "--output", str(out)]
    with (tmp / "py-spy.log").open("ab") as log:
        return subprocess.Popen([*cmd, "--rate", "200"], stdout=log, stderr=log)


def main() -> None:
    args = parse_args()
    if args.serve_simulator:
        serve_simulator(args)
        return
    if not console.is_terminal:
        console.width = max(console.width, 150)
    levels = [int(c) for c in args.concurrency.split(",") if c]
    modes = [m for m in args.modes.split(",") if m]
    servers = Servers()

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    profiler: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryDirectory(prefix="grounded-gateway-bench-") as name:
        tmp = Path(name)
        try:
            sim_pid, sim_url = start_simulator(servers, args, tmp)
            console.print(f"simulator at {sim_url} ({args.sim_http}, {args.tokens} words)")
            g_pid, g_url, key = start_grounded(servers, args, tmp, sim_url)
            console.print(f"Grounded at {g_url} (auth {'off' if args.no_auth else 'on'})")
            sim_port = int(sim_url.split(":")[2].split("/")[0])
            plain = {
                "model": "sim",
                "messages": [{"role": "user", "content": QUESTION}],
                "max_tokens": 64,
            }
            chat = "/v1/chat/completions"
            direct = Target("direct", "127.0.0.1", sim_port, chat, {}, plain, sim_pid)
            targets = [direct, grounded_target(g_url, key, args.model, g_pid)]
            version = None
            if not args.skip_litellm:
                l_pid, l_url = start_litellm(servers, args, tmp, sim_url)
                version = litellm_version(args.litellm_venv)
                console.print(f"LiteLLM {version} at {l_url}")
                auth = {"Authorization": f"Bearer {LITELLM_KEY}"}
                port = int(l_url.rsplit(":", 1)[1])
                targets.append(Target("litellm", "127.0.0.1", port, chat, auth, plain, l_pid))
            try:
                import uvloop

                runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
            except ImportError:
                runner = asyncio.Runner()
            with runner:
                targets[1] = runner.run(check_grounded(targets[1], args))
                if args.profile:
                    profiler = start_profiler(g_pid, args.profile, tmp, args.litellm_venv)
                cells = runner.run(measure(targets, args, levels, modes))
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/yellow]")
            raise SystemExit(130) from None
        finally:
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    profiler.wait(timeout=30)
            servers.stop()
    checks = report(cells, levels)
    path = save(
        "gateway",
        {
            "settings": {k: str(v) for k, v in vars(args).items()},
            "litellm_version": version,
            "grounded_model": targets[1].body["model"],
            "auth": not args.no_auth,
            "cells": [cell.summary() for cell in cells.values()],
            "checks": checks,
        },
    )
    console.print(f"saved {path}")
    if args.profile and args.profile.exists():
        console.print(f"profile: {args.profile}")


if __name__ == "__main__":
    main()
