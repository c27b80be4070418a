"""What the ``serve`` test modules share: the model's data, a real server process on 127.0.0.1,
HTTP requests through ``http.client`` and raw bytes through a socket, and slow clients.

Imported as ``serve_harness`` (``tests/`` is on ``sys.path``, as for ``helpers``).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

CONFIG = {"target": "y", "predictors": ["age", "area"], "exposure": "expo", "family": "poisson"}


def data(n: int, seed: int) -> pd.DataFrame:
    """``n`` rows of the test model's columns (``age``, ``area`` A/B/C, ``expo``) and target."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "age": rng.uniform(18, 80, n).round(3),
            "area": rng.choice(["A", "B", "C"], n, p=[0.5, 0.3, 0.2]),
            "expo": rng.uniform(0.1, 1.0, n).round(4),
        }
    )
    eff = df["area"].map({"A": 0.0, "B": 0.3, "C": -0.2})
    df["y"] = rng.poisson(df["expo"] * np.exp(-1.5 + 0.01 * df["age"] + eff))
    return df


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``python -m smglm.runtime serve --host 127.0.0.1 ARGS``, its output to ``log``."""
    cmd = [sys.executable, "-m", "smglm.runtime", "serve", "--host", "127.0.0.1", *args]
    full_env = {**os.environ, **(env or {})}
    with open(log, "wb") as f:
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=full_env)


def wait_listening(proc: subprocess.Popen, log: Path, timeout: float = 30) -> int:
    """The port from gunicorn's 'Listening at' line, once /ping answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
        if m and get(int(m.group(1)), "/ping")[0] == 200:
            return int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"serve did not start:\n{log.read_text(errors='replace')}")


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict | None = None,
    timeout: float = 30,
) -> tuple[int, dict[str, str], bytes]:
    """One request on a new connection: (status, headers lower-cased, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``path``; status -1 when nothing answers."""
    try:
        return request(port, "GET", path)
    except OSError:
        return -1, {}, b""


def raw(port: int, data: bytes, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` as is, read one response (skipping ``100 Continue``); status -1 if none."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    return -1, {}, buf
                buf += chunk
            head, _, rest = buf.partition(b"\r\n\r\n")
            if head.startswith(b"HTTP/1.1 100"):
                buf = rest
                continue
            lines = head.decode("latin-1").split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in lines[1:])
            n = int(headers.get("content-length", "0"))
            while len(rest) < n:
                chunk = s.recv(65536)
                if not chunk:
                    break
                rest += chunk
            return int(lines[0].split()[1]), headers, rest[:n]


class SlowClients:
    """``n`` connections that each send a partial request and then one more header byte every
    ``every`` seconds (never completing it), from one thread; reopened when the server closes
    them. A context manager; the loop also stops by itself after ``limit`` seconds."""

    HEAD = b"POST /invocations HTTP/1.1\r\nHost: slow\r\nContent-Type: text/csv\r\nX-Slow: "

    def __init__(self, port: int, n: int, every: float = 0.2, limit: float = 120) -> None:
        self.port, self.n, self.every, self.limit = port, n, every, limit
        self.socks: list[socket.socket] = []
        self.reopened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(self.HEAD)
        return s

    def __enter__(self) -> SlowClients:
        self.socks = [self._open() for _ in range(self.n)]
        self._thread.start()
        return self

    def _run(self) -> None:
        end = time.monotonic() + self.limit
        while not self._stop.wait(self.every) and time.monotonic() < end:
            for i, s in enumerate(self.socks):
                try:
                    s.sendall(b"x")
                except OSError:  # closed by the server (header timeout): open another
                    s.close()
                    self.reopened += 1
                    with contextlib.suppress(OSError):
                        self.socks[i] = self._open()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for s in self.socks:
            s.close()
