"""What the benchmark scripts share: child processes, wrk runs, the baselines, options.

Everything binds to 127.0.0.1. Child processes lead their own process group and are
stopped by id; wrk runs bench/webhook.lua, whose fingerprints are unique per
(nonce, phase, wrk thread), so every wrk process of one invocation gets its own phase.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from benchdb import DEFAULT_POSTGRES_URL

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
LUA_SCRIPT = BENCH_DIR / "webhook.lua"
BARE_HANDLER = BENCH_DIR / "bare_handler.py"
FLOOR_HANDLER = BENCH_DIR / "floor_handler.py"
HOST = "127.0.0.1"

ALERTS_PER_REQUEST = 10
MAX_PHASE = 15  # webhook.lua puts the phase into one hex digit of each fingerprint
MAX_DURATION_S = 40
MAX_WARMUP_S = 5
BARE_READY_TIMEOUT_S = 10.0
RECEIVER_READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 8.0
WRK_TIMEOUT = "5s"

# urllib must never go through a proxy taken from the environment
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class BenchError(Exception):
    """The benchmark could not run to completion."""


@dataclass
class WrkResult:
    """The figures one wrk process printed (or several, combined)."""

    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    ok_2xx: int
    non_2xx: int
    status_errors: int
    socket_errors: dict[str, int]
    first_error: str

    @property
    def socket_error_total(self) -> int:
        return sum(self.socket_errors.values())

    @staticmethod
    def combine(parts: list[WrkResult]) -> WrkResult:
        """Concurrent runs as one: counts and requests/s summed, latencies the worst part's."""
        if len(parts) == 1:
            return parts[0]
        sockets: dict[str, int] = {}
        for part in parts:
            for key, value in part.socket_errors.items():
                sockets[key] = sockets.get(key, 0) + value
        return WrkResult(
            requests=sum(p.requests for p in parts),
            duration_s=max(p.duration_s for p in parts),
            rps=sum(p.rps for p in parts),
            p50_ms=max(p.p50_ms for p in parts),
            p90_ms=max(p.p90_ms for p in parts),
            p99_ms=max(p.p99_ms for p in parts),
            max_ms=max(p.max_ms for p in parts),
            ok_2xx=sum(p.ok_2xx for p in parts),
            non_2xx=sum(p.non_2xx for p in parts),
            status_errors=sum(p.status_errors for p in parts),
            socket_errors=sockets,
            first_error=next((p.first_error for p in parts if p.first_error), ""),
        )


@dataclass
class TargetResult:
    """Warm-up and measured run against one target; ``parts`` are the runs' wrk processes."""

    name: str
    warmup: WrkResult | None
    run: WrkResult
    parts: list[WrkResult] = field(default_factory=list)

    @property
    def ok_2xx_total(self) -> int:
        return self.run.ok_2xx + (self.warmup.ok_2xx if self.warmup else 0)

    @property
    def non_2xx_total(self) -> int:
        return self.run.non_2xx + (self.warmup.non_2xx if self.warmup else 0)

    @property
    def timeouts_total(self) -> int:
        warm = self.warmup.socket_errors.get("timeout", 0) if self.warmup else 0
        return self.run.socket_errors.get("timeout", 0) + warm


@dataclass(frozen=True)
class Load:
    """How wrk drives a target."""

    wrk: str
    threads: int
    connections: int
    duration: int
    warmup: int
    verbose: bool = False


class Proc:
    """A child process in its own session, output to a log file, stopped by its id."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None
        self._log: TextIO | None = None

    def start(self) -> None:
        self._log = self.log_path.open("w")
        self.popen = subprocess.Popen(
            self.argv,
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def exited(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def memory_kb(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak) of the running process from /proc, in KiB."""
        if self.popen is None:
            return {}
        found: dict[str, int] = {}
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    found[key] = int(value.split()[0])
        return found

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; returns the exit code."""
        code: int | None = None
        if self.popen is not None:
            if self.popen.poll() is None:
                self._signal(signal.SIGTERM)
                try:
                    self.popen.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    print(f"  {self.name}: no exit {STOP_TIMEOUT_S:.0f}s after SIGTERM, SIGKILL")
                    self._signal(signal.SIGKILL)
                    self.popen.wait(timeout=STOP_TIMEOUT_S)
            code = self.popen.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def _signal(self, sig: signal.Signals) -> None:
        assert self.popen is not None
        # the child leads its own process group (start_new_session): its id is the group's
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def stop_all(procs: list[Proc]) -> list[int | None]:
    """Stop every process, even when stopping one of them fails; their exit codes."""
    codes: list[int | None] = []
    failure: BaseException | None = None
    for proc in procs:
        try:
            codes.append(proc.stop())
        except BaseException as exc:  # the others must still be stopped
            codes.append(None)
            failure = failure or exc
    if failure is not None:
        raise failure
    return codes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def http_status(url: str, data: bytes | None = None, timeout: float = 2.0) -> int:
    headers = {"Content-Type": "application/json"} if data is not None else {}
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with HTTP.open(req, timeout=timeout) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def wait_ready(
    proc: Proc, url: str, data: bytes | None, timeout_s: float, status_ready: int = 200
) -> float:
    """Polls url until it answers status_ready (200); returns the seconds it took."""
    start = time.monotonic()
    last = "no answer"
    while time.monotonic() - start < timeout_s:
        code = proc.exited()
        if code is not None:
            raise BenchError(
                f"{proc.name} exited with code {code} before it was ready; log tail:\n"
                + proc.log_tail()
            )
        try:
            status = http_status(url, data)
            if status == status_ready:
                return time.monotonic() - start
            last = f"HTTP {status}"
        except (OSError, urllib.error.URLError) as exc:
            last = str(exc)
        time.sleep(0.1)
    raise BenchError(
        f"{proc.name} not ready at {url} within {timeout_s:.0f}s (last: {last}); log tail:\n"
        + proc.log_tail()
    )


def check_crashed(procs: list[Proc]) -> None:
    """Raise if a server exited while it was being measured."""
    for proc in procs:
        code = proc.exited()
        if code is not None:
            raise BenchError(
                f"{proc.name} exited with code {code} during the run; log tail:\n" + proc.log_tail()
            )


def _wrk_argv(
    load: Load, url: str, threads: int, connections: int, seconds: int, nonce: str, phase: int
) -> list[str]:
    if not 0 <= phase <= MAX_PHASE:
        raise BenchError(f"wrk phase {phase} outside 0..{MAX_PHASE}")
    return [
        load.wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        WRK_TIMEOUT,
        "--latency",
        "-s",
        str(LUA_SCRIPT),
        url,
        "--",
        nonce,
        str(phase),
    ]


def _wrk_result(argv: list[str], code: int, stdout: str, stderr: str, verbose: bool) -> WrkResult:
    if verbose:
        print(stdout.rstrip())
    line = next((x for x in stdout.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if code != 0 or line is None:
        raise BenchError(
            f"wrk failed (exit {code}): {' '.join(argv)}\n{stdout[-2000:]}{stderr[-2000:]}"
        )
    raw: dict[str, Any] = json.loads(line.removeprefix("BENCH_RESULT "))
    return WrkResult(
        requests=int(raw["requests"]),
        duration_s=float(raw["duration_s"]),
        rps=float(raw["rps"]),
        p50_ms=float(raw["p50_ms"]),
        p90_ms=float(raw["p90_ms"]),
        p99_ms=float(raw["p99_ms"]),
        max_ms=float(raw["max_ms"]),
        ok_2xx=int(raw["ok_2xx"]),
        non_2xx=int(raw["non_2xx"]),
        status_errors=int(raw["status_errors"]),
        socket_errors={k: int(v) for k, v in raw["socket_errors"].items()},
        first_error=str(raw["first_error"]),
    )


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` integers that differ by at most one."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_wrk(
    load: Load, urls: list[str], seconds: int, nonce: str, phases: list[int]
) -> list[WrkResult]:
    """One wrk per url, all at once for the same time; with one url it gets every thread,
    with several each gets one thread and an even share of the connections."""
    if len(urls) == 1:
        shares = [(load.threads, load.connections)]
    else:
        shares = [(1, c) for c in split_evenly(load.connections, len(urls))]
    argvs = [
        _wrk_argv(load, url, threads, conns, seconds, nonce, phase)
        for url, (threads, conns), phase in zip(urls, shares, phases, strict=True)
    ]
    procs: list[subprocess.Popen[str]] = []
    try:
        for argv in argvs:
            procs.append(
                subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        deadline = time.monotonic() + seconds + 20
        outputs: list[tuple[str, str]] = []
        for argv, proc in zip(argvs, procs, strict=True):
            try:
                outputs.append(proc.communicate(timeout=max(1.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired as exc:
                raise BenchError(
                    f"wrk did not finish within {seconds + 20}s: {' '.join(argv)}"
                ) from exc
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return [
        _wrk_result(argv, proc.returncode, out, err, load.verbose)
        for argv, proc, (out, err) in zip(argvs, procs, outputs, strict=True)
    ]


def measure(name: str, urls: list[str], load: Load, nonce: str, phase: int) -> TargetResult:
    """Warm-up, then the measured run; wrk processes get phases phase, phase + 1, ..."""
    n = len(urls)
    warmup = None
    if load.warmup > 0:
        print(f"  {name}: warm-up {load.warmup}s ...", flush=True)
        warm_parts = run_wrk(load, urls, load.warmup, nonce, list(range(phase, phase + n)))
        warmup = WrkResult.combine(warm_parts)
        if warmup.non_2xx:
            print(f"  {name}: warm-up non-2xx {warmup.non_2xx}, first: {warmup.first_error}")
    print(f"  {name}: measuring {load.duration}s ...", flush=True)
    parts = run_wrk(load, urls, load.duration, nonce, list(range(phase + n, phase + 2 * n)))
    run = WrkResult.combine(parts)
    if run.non_2xx:
        print(f"  {name}: non-2xx {run.non_2xx}, first: {run.first_error}")
    return TargetResult(name=name, warmup=warmup, run=run, parts=parts)


def child_env(log_format: bool, database_url: str | None = None) -> dict[str, str]:
    """The caller's environment without RECEIVER_* settings: no tokens, no accounts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    if log_format:
        env["RECEIVER_LOG_FORMAT"] = "json"
    if database_url is not None:
        env["RECEIVER_DATABASE_URL"] = database_url
    return env


def bare_proc(workdir: Path) -> tuple[Proc, str]:
    """The bare handler on a free port, not started, and its webhook URL."""
    port = free_port()
    proc = Proc(
        "bare",
        [sys.executable, str(BARE_HANDLER), "--host", HOST, "--port", str(port)],
        child_env(log_format=False),
        workdir / "bare.log",
    )
    return proc, f"http://{HOST}:{port}/webhook"


def floor_proc(workdir: Path) -> tuple[Proc, str]:
    """The floor handler on a free port, writing workdir/floor.db, not started, and its
    webhook URL."""
    port = free_port()
    argv = [sys.executable, str(FLOOR_HANDLER), "--host", HOST, "--port", str(port)]
    argv += ["--db", str(workdir / "floor.db")]
    proc = Proc("floor", argv, child_env(log_format=False), workdir / "floor.log")
    return proc, f"http://{HOST}:{port}/webhook"


def receiver_proc(name: str, rules: Path, database_url: str, log_path: Path) -> tuple[Proc, str]:
    """``python -m receiver serve`` on a free port, not started, and its base URL.

    A SQLite URL goes on the command line, any other through RECEIVER_DATABASE_URL, so
    that a password in it never shows in the process list."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "receiver",
        "serve",
        "--rules",
        str(rules),
        "--host",
        HOST,
        "--port",
        str(port),
    ]
    env_url: str | None = database_url
    if database_url.startswith("sqlite:"):
        argv += ["--database-url", database_url]
        env_url = None
    return Proc(name, argv, child_env(log_format=True, database_url=env_url), log_path), (
        f"http://{HOST}:{port}"
    )


def log_errors(log_path: Path) -> list[str]:
    """Lines of a receiver log at error level or above, and tracebacks."""
    found: list[str] = []
    try:
        with log_path.open(errors="replace") as fh:
            for line in fh:
                low = line.lower()
                if (
                    '"level": "error"' in low
                    or '"level":"error"' in low
                    or '"level": "critical"' in low
                    or '"level":"critical"' in low
                    or low.startswith("traceback")
                ):
                    found.append(line.rstrip())
    except OSError:
        pass
    return found


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def add_load_args(parser: argparse.ArgumentParser, duration: int) -> None:
    """The wrk, rules and backend options both scripts take."""
    parser.add_argument(
        "--duration", type=int, default=duration, help=f"seconds per target ({duration})"
    )
    parser.add_argument("--connections", type=int, default=16, help="open connections (16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per target (2)")
    parser.add_argument(
        "--backend",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="receiver's store: a fresh SQLite file or a fresh PostgreSQL schema (sqlite)",
    )
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="server for --backend postgres (RECEIVER_TEST_POSTGRES_URL, else "
        "postgresql://postgres@127.0.0.1:5432/test)",
    )
    parser.add_argument(
        "--rules",
        type=Path,
        default=REPO / "routing_rules.yaml",
        help="rules file for the receiver",
    )
    parser.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk", help="wrk binary")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temp dir (databases, logs) and schemas"
    )
    parser.add_argument("--verbose", action="store_true", help="print wrk's own output too")


def check_load_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit 2 with a message on out-of-range load options."""
    if not 1 <= args.duration <= MAX_DURATION_S:
        parser.error(f"--duration must be 1..{MAX_DURATION_S}")
    if not 0 <= args.warmup <= MAX_WARMUP_S:
        parser.error(f"--warmup must be 0..{MAX_WARMUP_S}")
    if not 1 <= args.connections <= 1024:
        parser.error("--connections must be 1..1024")
    if not 1 <= args.threads <= min(64, args.connections):
        parser.error("--threads must be 1..64 and at most --connections")
    args.rules = args.rules.resolve()


def load_of(args: argparse.Namespace) -> Load:
    return Load(
        wrk=args.wrk,
        threads=args.threads,
        connections=args.connections,
        duration=args.duration,
        warmup=args.warmup,
        verbose=args.verbose,
    )


def preflight(args: argparse.Namespace) -> str | None:
    """Why the run cannot start (wrk or rules missing), or None."""
    if not Path(args.wrk).is_file():
        return f"wrk not found at {args.wrk} (apt-get install wrk)"
    if not args.rules.is_file():
        return f"rules file not found: {args.rules}"
    return None


def on_sigterm(signum: int, frame: object) -> None:
    raise BenchError(f"stopped by signal {signum}")
