"""Benchmark of ``serve``: latency, throughput and a 6 MB request against the real server.

Fits a motor claim-frequency model (10 numeric and 4 categorical predictors, exposure) on
synthetic data, starts ``python -m smglm.runtime serve`` with 2 workers on 127.0.0.1, and
measures over keep-alive connections with a lean raw-socket client:

- latency (p50/p99) of sequential 1-row and 1,000-row CSV requests, on one connection;
- throughput (requests/s) of 1-row CSV requests with 8/16/32 concurrent connections, and of
  ``GET /ping`` with the same clients: the ping figure bounds what the client and gunicorn
  can do at all on this machine, and the ratio shows how much scoring costs on top;
- the time of one CSV request just under the 6 MiB limit.

Run: ``python benchmarks/serve.py [--workers 2] [--seconds 4] [--clients 8 16 32]``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
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

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
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


def _csv(df, header: bool) -> bytes:  # type: ignore[no-untyped-def]
    return df.to_csv(index=False, header=header, float_format="%.6g").encode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="threads per worker")
    ap.add_argument("--seconds", type=float, default=4.0, help="duration of each load run")
    ap.add_argument("--clients", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--client-procs", type=int, default=2, help="client processes for load")
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

    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "smglm.runtime",
        "serve",
        "--model-dir",
        str(tmp / "model"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(args.workers),
    ]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    server = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while True:
            try:
                if Client(port).send(_request("/ping"))[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.1)
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
            assert status == 200 and payload.count(b"\n") == len(big_rows), status
        rows_out.append(
            (
                f"6 MiB CSV ({len(big)} B, {len(big_rows)} rows), s",
                f"median {statistics.median(times):.3f}",
                f"max {max(times):.3f}",
                "",
            )
        )
        for k in args.clients:
            ping = throughput(port, _request("/ping"), k, args.seconds, args.client_procs)
            inv = throughput(
                port, _request("/invocations", one), k, args.seconds, args.client_procs
            )
            rows_out.append(
                (
                    f"throughput, {k} connections, req/s",
                    f"1-row CSV {inv:.0f}",
                    f"GET /ping {ping:.0f}",
                    f"ratio {inv / ping:.2f}",
                )
            )
    finally:
        server.terminate()
        code = server.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"serve benchmark: {args.workers} workers x {args.threads or 'default'} threads, "
        f"{os.cpu_count()} CPUs, {args.client_procs} client processes; 1-min load average "
        f"before {load_before:.2f} (other processes); server exit code after SIGTERM: {code}"
    )
    width = max(len(r[0]) for r in rows_out)
    for r in rows_out:
        print(f"{r[0]:<{width}}  {r[1]:<18} {r[2]:<18} {r[3]}")


if __name__ == "__main__":
    main()
