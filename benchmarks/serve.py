"""Benchmark of ``serve``: latency, throughput and a 6 MB request against the real server.

Fits a motor claim-frequency model (10 numeric and 4 categorical predictors, exposure) on
synthetic data, starts ``python -m smglm.runtime serve`` with 2 workers on 127.0.0.1, and
measures over keep-alive connections with a lean raw-socket client:

- latency (p50/p99) of sequential 1-row and 1,000-row CSV requests, on one connection;
- throughput (requests/s) of 1-row CSV requests with 8/16/32 concurrent connections, and of
  ``GET /ping`` with the same clients: the ping figure bounds what the client and gunicorn
  can do at all on this machine, and the ratio shows how much scoring costs on top;
- the time of one CSV request just under the 6 MiB limit;
- with ``--slow-clients N`` open (default 50: connections that send part of their headers,
  then one more byte every half second, reopened when the server closes them), the latency
  (p50/p99) of sequential ``GET /ping`` and 1-row CSV requests on a fresh keep-alive
  connection. ``--baseline`` runs this scenario on gunicorn's ``gthread`` worker too (the server
  before the asyncio front, ``serve --worker-class gthread``), with fewer requests
  (``--baseline-requests``). Each request opens a new connection and gets ``--request-timeout``
  seconds (2); the table counts the ones answered in time, and a percentile that falls on a
  timeout shows as ``> 2000``.

Run: ``python benchmarks/serve.py [--workers 2] [--seconds 4] [--clients 8 16 32]
[--slow-clients 50] [--baseline] [--only-slow]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing as mp
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

LIMIT = 6 * 1024 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _request(path: str, body: bytes = b"", content_type: str = "text/csv") -> bytes:
    if not body:
        return f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


_CL = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


class Client:
    """A keep-alive HTTP/1.1 client on a raw socket: send, read one response (lean on CPU)."""

    def __init__(self, port: int, timeout: float | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, request: bytes) -> tuple[int, bytes]:
        self.sock.sendall(request)
        buf = self.buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            buf += self._recv()
        head, rest = buf[:end], buf[end + 4 :]
        m = _CL.search(head)
        n = int(m.group(1)) if m else 0
        while len(rest) < n:
            rest += self._recv()
        self.buf = rest[n:]
        return int(head[9:12]), rest[:n]

    def _recv(self) -> bytes:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("server closed the connection")
        return data


async def _load(port: int, request: bytes, conns: int, seconds: float) -> tuple[int, int]:
    """Each of ``conns`` connections sends requests back to back; (ok, failed) counts."""
    stop = time.perf_counter() + seconds
    counts = [0, 0]

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while time.perf_counter() < stop:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            m = _CL.search(head)
            await reader.readexactly(int(m.group(1)) if m else 0)
            counts[0 if head[9:12] == b"200" else 1] += 1
        writer.close()

    await asyncio.gather(*(one() for _ in range(conns)))
    return counts[0], counts[1]


def _load_proc(port: int, request: bytes, conns: int, seconds: float, q: mp.Queue) -> None:
    q.put(asyncio.run(_load(port, request, conns, seconds)))


def throughput(port: int, request: bytes, clients: int, seconds: float, procs: int) -> float:
    """Requests/s with ``clients`` connections spread over ``procs`` client processes."""
    q: mp.Queue = mp.Queue()
    per = [clients // procs + (i < clients % procs) for i in range(procs)]
    ps = [mp.Process(target=_load_proc, args=(port, request, c, seconds, q)) for c in per if c]
    for p in ps:
        p.start()
    results = [q.get() for _ in ps]
    for p in ps:
        p.join()
    ok = sum(r[0] for r in results)
    failed = sum(r[1] for r in results)
    if failed:
        raise RuntimeError(f"{failed} requests failed under load")
    return ok / seconds


def latency(client: Client, request: bytes, n: int, warmup: int = 50) -> list[float]:
    """Seconds per request, sequential on one keep-alive connection."""
    for _ in range(warmup):
        client.send(request)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        status, _ = client.send(request)
        out.append(time.perf_counter() - t)
        if status != 200:
            raise RuntimeError(f"status {status}")
    return out


class SlowClients:
    """``n`` connections trickling header bytes (never finishing a request), from one thread,
    reopened when the server closes them; stops by itself after ``limit`` seconds."""

    HEAD = b"POST /invocations HTTP/1.1\r\nHost: slow\r\nContent-Type: text/csv\r\nX-Slow: "

    def __init__(self, port: int, n: int, every: float = 0.5, limit: float = 600) -> None:
        self.port, self.n, self.every, self.limit = port, n, every, limit
        self.socks: list[socket.socket] = []
        self.reopened = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(self.HEAD)
        return s

    def __enter__(self) -> SlowClients:
        self.socks = [self._open() for _ in range(self.n)]
        self.thread.start()
        time.sleep(1.0)  # the server has seen every connection
        return self

    def _run(self) -> None:
        end = time.monotonic() + self.limit
        while not self.stop.wait(self.every) and time.monotonic() < end:
            for i, s in enumerate(self.socks):
                try:
                    s.sendall(b"x")
                except OSError:
                    s.close()
                    self.reopened += 1
                    with contextlib.suppress(OSError):
                        self.socks[i] = self._open()

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        for s in self.socks:
            s.close()


def slow_client_latency(
    port: int, n_slow: int, one: bytes, n: int, timeout: float
) -> list[tuple[str, str, str, str]]:
    """Rows of the table: /ping and 1-row CSV latency with ``n_slow`` slow connections open,
    ``n`` requests each, each on a new connection (as a health checker or a fresh client
    would); a request not answered within ``timeout`` counts as a timeout (and as infinitely
    slow in the percentiles)."""
    out = []
    with SlowClients(port, n_slow) as slow:
        for name, request in (
            ("GET /ping", _request("/ping")),
            ("1-row CSV", _request("/invocations", one)),
        ):
            lat = []
            for _ in range(n):
                t = time.perf_counter()
                try:
                    client = Client(port, timeout)
                    status, _ = client.send(request)
                    lat.append(time.perf_counter() - t)
                    client.sock.close()
                    if status != 200:
                        raise RuntimeError(f"status {status}")
                except OSError:  # socket.timeout included
                    lat.append(math.inf)
            a = np.array(lat) * 1e3
            timeouts = int(np.isinf(a).sum())

            def pct(q: float, a: np.ndarray = a) -> str:
                v = np.percentile(a, q, method="higher")
                return f"p{q:g} {v:.2f}" if math.isfinite(v) else f"p{q:g} > {timeout * 1e3:.0f}"

            out.append(
                (
                    f"{name}, new connection, {n_slow} slow connections open, ms",
                    pct(50),
                    pct(99),
                    f"{n - timeouts} of {n} answered within {timeout:g} s",
                )
            )
        out.append(
            ("slow connections closed by the server (header timeout)", str(slow.reopened), "", "")
        )
    return out


def _csv(df, header: bool) -> bytes:  # type: ignore[no-untyped-def]
    return df.to_csv(index=False, header=header, float_format="%.6g").encode()


def start_server(
    model_dir: Path, args: argparse.Namespace, worker_class: str
) -> tuple[subprocess.Popen, int]:
    """``serve`` with ``worker_class`` on a free port, once /ping answers: (process, port)."""
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "smglm.runtime",
        "serve",
        "--model-dir",
        str(model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(args.workers),
        "--worker-class",
        worker_class,
    ]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    server = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while True:
        try:
            if Client(port).send(_request("/ping"))[0] == 200:
                return server, port
        except OSError:
            pass
        if time.time() > deadline:
            server.kill()
            raise RuntimeError("server did not start")
        time.sleep(0.1)


def stop_server(server: subprocess.Popen) -> int:
    server.terminate()
    try:
        return server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        return server.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="threads per worker")
    ap.add_argument("--seconds", type=float, default=4.0, help="duration of each load run")
    ap.add_argument("--clients", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--client-procs", type=int, default=2, help="client processes for load")
    ap.add_argument("--slow-clients", type=int, default=50, help="slow connections (0: skip)")
    ap.add_argument("--slow-requests", type=int, default=1000, help="requests per slow measure")
    ap.add_argument("--baseline-requests", type=int, default=40, help="requests, gthread")
    ap.add_argument("--request-timeout", type=float, default=2.0, help="seconds, slow scenario")
    ap.add_argument(
        "--baseline", action="store_true", help="also the slow scenario on --worker-class gthread"
    )
    ap.add_argument("--only-slow", action="store_true", help="only the slow-client scenario")
    ap.add_argument(
        "--worker-class", choices=["asyncio", "gthread"], default="asyncio", help="serve's"
    )
    args = ap.parse_args()
    load_before = os.getloadavg()[0]

    import smglm
    from smglm.datasets import MOTOR_CATEGORICAL, MOTOR_NUMERIC, motor

    data = motor(20_000, seed=1)
    predictors = MOTOR_NUMERIC + MOTOR_CATEGORICAL
    config = {
        "target": "claim_count",
        "predictors": predictors,
        "exposure": "exposure",
        "family": "poisson",
    }
    tmp = Path(tempfile.mkdtemp(prefix="smglm-bench-serve-"))
    smglm.fit(config, data).save(tmp / "model")
    cols = [*predictors, "exposure"]
    rows = motor(120_000, seed=2)[cols]
    one = _csv(rows.iloc[:1], header=True)
    thousand = _csv(rows.iloc[:1000], header=True)
    big_rows = rows
    while len(_csv(big_rows, header=True)) > LIMIT:
        big_rows = big_rows.iloc[: int(len(big_rows) * 0.97)]
    big = _csv(big_rows, header=True)

    rows_out: list[tuple[str, str, str, str]] = []
    codes = []
    try:
        server, port = start_server(tmp / "model", args, args.worker_class)
        try:
            if not args.only_slow:
                rows_out += fast_scenarios(port, args, one, thousand, big, len(big_rows))
            if args.slow_clients:
                rows_out += slow_client_latency(
                    port, args.slow_clients, one, args.slow_requests, args.request_timeout
                )
        finally:
            codes.append(stop_server(server))
        if args.baseline and args.slow_clients:
            server, port = start_server(tmp / "model", args, "gthread")
            try:
                base = slow_client_latency(
                    port, args.slow_clients, one, args.baseline_requests, args.request_timeout
                )
                rows_out += [(f"[gthread] {r[0]}", r[1], r[2], r[3]) for r in base]
            finally:
                codes.append(stop_server(server))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"serve benchmark: {args.workers} {args.worker_class} workers x "
        f"{args.threads or 'default'} threads, "
        f"{os.cpu_count()} CPUs, {args.client_procs} client processes; 1-min load average "
        f"before {load_before:.2f} (other processes); server exit codes after SIGTERM: {codes}"
    )
    width = max(len(r[0]) for r in rows_out)
    for r in rows_out:
        print(f"{r[0]:<{width}}  {r[1]:<18} {r[2]:<18} {r[3]}")


def fast_scenarios(
    port: int, args: argparse.Namespace, one: bytes, thousand: bytes, big: bytes, n_big: int
) -> list[tuple[str, str, str, str]]:
    """Latency, the 6 MiB request and throughput (no slow clients)."""
    rows_out = []
    c = Client(port)
    for name, body, n in (("1-row CSV", one, 3000), ("1,000-row CSV", thousand, 300)):
        lat = np.array(latency(c, _request("/invocations", body), n)) * 1e3
        rows_out.append(
            (
                f"latency {name} ({len(body)} B), ms",
                f"p50 {np.percentile(lat, 50):.2f}",
                f"p99 {np.percentile(lat, 99):.2f}",
                f"mean {lat.mean():.2f}",
            )
        )
    times = []
    for _ in range(5):
        t = time.perf_counter()
        status, payload = c.send(_request("/invocations", big))
        times.append(time.perf_counter() - t)
        assert status == 200 and payload.count(b"\n") == n_big, status
    rows_out.append(
        (
            f"6 MiB CSV ({len(big)} B, {n_big} rows), s",
            f"median {statistics.median(times):.3f}",
            f"max {max(times):.3f}",
            "",
        )
    )
    for k in args.clients:
        ping = throughput(port, _request("/ping"), k, args.seconds, args.client_procs)
        inv = throughput(port, _request("/invocations", one), k, args.seconds, args.client_procs)
        rows_out.append(
            (
                f"throughput, {k} connections, req/s",
                f"1-row CSV {inv:.0f}",
                f"GET /ping {ping:.0f}",
                f"ratio {inv / ping:.2f}",
            )
        )
    return rows_out


if __name__ == "__main__":
    main()
