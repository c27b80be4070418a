"""The HTTP front of ``serve``: each gunicorn worker reads whole requests with asyncio, then
runs the WSGI application on a small thread pool.

Why: a thread-per-connection worker (gunicorn's ``gthread``) gives a connection a thread as soon
as its first bytes arrive, and the thread then blocks until the headers are complete. Four
clients trickling partial headers took every thread of a 2 x 2 server, and ``/ping`` stalled.
SageMaker's own containers put nginx, a buffering reverse proxy, in front of gunicorn for this
reason; this front does the same job inside the worker, without a second program in the image:

- the event loop reads the request line, the headers and the body of every connection
  (any number of slow clients cost a socket and a buffer each, never a thread), with limits:
  the headers must arrive within :data:`HEADER_TIMEOUT` seconds (else 408) and within
  :data:`MAX_HEADER_BYTES` (else 431); the body may pause at most :data:`BODY_IDLE_TIMEOUT`
  seconds between reads (else 408) and may not exceed the payload limit: 413, decided from
  ``Content-Length`` before any byte of the body is read (``Expect: 100-continue`` clients send
  nothing), or while reading a chunked body. After a 413 the rest of the body is read and
  dropped for a while (a *lingering close*, as nginx does), so that a client that writes its
  whole body before reading sees the 413 rather than a connection reset;
- only complete requests reach the application: ``/invocations`` with a body over
  :data:`INLINE_BYTES` on the worker's thread pool (``--threads``), so a health check never
  queues behind a large batch; everything else (``/ping``, a few rows to score) on the event
  loop itself, as a thread hop would cost more than the work;
- keep-alive connections close after :data:`KEEPALIVE` idle seconds; on SIGTERM the worker stops
  accepting, closes at once the connections that are idle or still sending headers, lets the
  requests in flight (headers received) finish, up to gunicorn's ``graceful_timeout``, and
  exits.

Client mistakes at the HTTP level get a 4xx (an unsupported HTTP version or transfer coding
included: 400, not 505/501, as they are the client's to fix) with the same JSON body as the
application's: ``{"error": "<what was wrong>"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_to_bytes

__all__ = [
    "BODY_IDLE_TIMEOUT",
    "HEADER_TIMEOUT",
    "KEEPALIVE",
    "MAX_HEADER_BYTES",
    "Front",
    "worker_class",
]

#: Seconds a client has, from its first byte, to send the request line and all the headers.
HEADER_TIMEOUT = 10.0
#: Seconds the body may pause between two reads.
BODY_IDLE_TIMEOUT = 20.0
#: Seconds an idle kept-alive connection stays open.
KEEPALIVE = 60.0
#: Seconds a slow reader has to take each part of a response.
SEND_TIMEOUT = 30.0
#: Bodies up to this size are scored on the event loop (well under a millisecond for the few
#: rows they hold: a thread hop would cost more); larger ones on the worker's threads.
INLINE_BYTES = 16 * 1024
#: Largest request line plus headers, bytes.
MAX_HEADER_BYTES = 64 * 1024
#: Most header fields in one request.
MAX_HEADER_FIELDS = 100
#: After a 413, the rest of the body is read and dropped until the client stops sending, for at
#: most this many seconds in all, and at most this many between two reads.
LINGER_TOTAL = 30.0
LINGER_IDLE = 2.0

_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_HEX = frozenset(b"0123456789abcdefABCDEF")


class _HTTPError(Exception):
    """A request the front refuses: the status, the message, and whether to linger."""

    def __init__(self, status: int, message: str, *, linger: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.linger = linger


class _Request:
    __slots__ = ("close", "headers", "method", "target", "version")

    def __init__(
        self, method: str, target: str, version: str, headers: list[tuple[str, str]]
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.close = False

    def get(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name]
        return ",".join(values) if values else None


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Front:
    """Serve ``app`` (WSGI) over HTTP/1.1 on asyncio streams; see the module's docstring.

    Parameters
    ----------
    app
        The WSGI application.
    max_body
        The largest request body in bytes (413 beyond).
    executor
        Where ``POST /invocations`` runs.
    log
        Where connection-level problems are logged (gunicorn's logger in a worker).
    """

    def __init__(
        self, app: WSGIApp, *, max_body: int, executor: ThreadPoolExecutor, log: Any
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.executor = executor
        self.log = log
        self.stopping = False
        #: Connections with a request in flight (headers received, until the answer is sent).
        self.busy: set[asyncio.Task[Any]] = set()
        #: Connections idle between requests, or still sending a request's headers.
        self.idle: set[asyncio.Task[Any]] = set()
        self.requests = 0

    # -- connections ---------------------------------------------------------------------------
    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer the requests of one connection until it closes."""
        task = asyncio.current_task()
        assert task is not None
        self.idle.add(task)
        try:
            await self._serve(reader, writer, task)
        except (asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:  # a bug of the front: log it, drop the connection
            self.log.exception("serve: error on a connection")
        finally:
            self.idle.discard(task)
            self.busy.discard(task)
            writer.close()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, task: asyncio.Task[Any]
    ) -> None:
        peer = writer.get_extra_info("peername")
        sock = writer.get_extra_info("sockname")
        while not self.stopping:
            try:
                request, body = await self._read_request(reader, writer)
            except _HTTPError as exc:
                await self._refuse(reader, writer, exc)
                return
            if request is None:
                return  # the client closed (or stayed idle past the keep-alive)
            try:
                status, headers, payload = await self._call(request, body, peer, sock)
                request.close = request.close or self.stopping
                await self._respond(writer, request, status, headers, payload)
            finally:
                self.busy.discard(task)
                self.idle.add(task)
            self.requests += 1
            if request.close:
                return

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[_Request | None, bytes]:
        # Idle until the first byte (empty lines between requests are allowed: RFC 9112 2.2).
        while True:
            try:
                first = await asyncio.wait_for(reader.read(1), KEEPALIVE)
            except asyncio.TimeoutError:
                return None, b""
            if not first:
                return None, b""
            if first not in b"\r\n":
                break
        try:
            rest = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEADER_TIMEOUT)
        except asyncio.TimeoutError:
            raise _HTTPError(
                408, f"the request headers did not arrive within {HEADER_TIMEOUT:g} s"
            ) from None
        except asyncio.LimitOverrunError:
            raise _HTTPError(
                431, f"the request line and headers exceed {MAX_HEADER_BYTES} bytes"
            ) from None
        except asyncio.IncompleteReadError:
            return None, b""
        request = _parse_head(first + rest)
        task = asyncio.current_task()
        if task is not None:  # from here on the request is in flight: SIGTERM lets it finish
            self.idle.discard(task)
            self.busy.add(task)
        body = await self._read_body(request, reader, writer)
        return request, body

    async def _read_body(
        self, request: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bytes:
        te = request.get("transfer-encoding")
        cl = request.get("content-length")
        if te is not None:
            if cl is not None:
                raise _HTTPError(
                    400, "a request may not have both Transfer-Encoding and Content-Length"
                )
            if te.strip().lower() != "chunked":  # 400 rather than 501: the client's to fix
                raise _HTTPError(
                    400,
                    f"Transfer-Encoding {te!r} is not supported; send Content-Length or 'chunked'",
                )
            await self._continue(request, writer)
            return await self._read_chunked(reader)
        if cl is None:
            return b""
        values = {v.strip() for v in cl.split(",")}
        if len(values) != 1 or not (n := values.pop()).isdigit() or not n.isascii():
            raise _HTTPError(400, f"Content-Length {cl!r} is not a number of bytes")
        length = int(n)
        if length > self.max_body:
            raise _HTTPError(413, f"the body is {length} bytes; {self._limit_text()}", linger=True)
        if length == 0:
            return b""
        await self._continue(request, writer)
        chunks, left = [], length
        while left:
            chunk = await self._body_read(reader, min(left, 1 << 20))
            if not chunk:
                raise _HTTPError(400, f"the body ended after {length - left} of {length} bytes")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    async def _read_chunked(self, reader: asyncio.StreamReader) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = await self._body_line(reader)
            size_text = line.split(b";", 1)[0].strip()
            if not size_text or not _HEX.issuperset(size_text) or len(size_text) > 16:
                raise _HTTPError(400, f"bad chunk size line {line[:40].decode('latin-1')!r}")
            size = int(size_text, 16)
            if size == 0:
                while await self._body_line(reader):  # trailers, up to the empty line
                    pass
                return b"".join(chunks)
            total += size
            if total > self.max_body:
                raise _HTTPError(
                    413, f"the chunked body is too large; {self._limit_text()}", linger=True
                )
            data = await self._body_exactly(reader, size)
            if await self._body_exactly(reader, 2) != b"\r\n":
                raise _HTTPError(400, "a chunk is not followed by CRLF")
            chunks.append(data)

    async def _body_read(self, reader: asyncio.StreamReader, n: int) -> bytes:
        try:
            return await asyncio.wait_for(reader.read(n), BODY_IDLE_TIMEOUT)
        except asyncio.TimeoutError:
            raise _HTTPError(408, f"the body paused for over {BODY_IDLE_TIMEOUT:g} s") from None

    async def _body_exactly(self, reader: asyncio.StreamReader, n: int) -> bytes:
        parts = []
        while n:
            chunk = await self._body_read(reader, min(n, 1 << 20))
            if not chunk:
                raise _HTTPError(400, "the chunked body ended early")
            parts.append(chunk)
            n -= len(chunk)
        return b"".join(parts)

    async def _body_line(self, reader: asyncio.StreamReader) -> bytes:
        try:
            line = await asyncio.wait_for(reader.readuntil(b"\r\n"), BODY_IDLE_TIMEOUT)
        except asyncio.TimeoutError:
            raise _HTTPError(408, f"the body paused for over {BODY_IDLE_TIMEOUT:g} s") from None
        except asyncio.LimitOverrunError:
            raise _HTTPError(400, "a chunk size line is too long") from None
        except asyncio.IncompleteReadError:
            raise _HTTPError(400, "the chunked body ended early") from None
        if len(line) > 4096:
            raise _HTTPError(400, "a chunk size or trailer line is too long")
        return line[:-2]

    async def _continue(self, request: _Request, writer: asyncio.StreamWriter) -> None:
        expect = request.get("expect")
        if expect is not None and request.version == "HTTP/1.1":
            if expect.strip().lower() != "100-continue":
                raise _HTTPError(417, f"Expect {expect!r} is not supported")
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await self._drain(writer)

    def _limit_text(self) -> str:
        limit = self.max_body
        return (
            f"the limit is {limit} bytes ({limit / 2**20:g} MiB): split the rows over several "
            "requests"
        )

    # -- the application -------------------------------------------------------------------------
    async def _call(
        self, request: _Request, body: bytes, peer: Any, sock: Any
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        environ = _environ(request, body, peer, sock)
        if environ["PATH_INFO"] == "/invocations" and len(body) > INLINE_BYTES:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.executor, self._run_app, environ)
        return self._run_app(environ)  # quick: on the loop, without a thread hop

    def _run_app(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        started: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            started[:] = [status, headers]
            return lambda data: None  # the legacy write(): unused by this app

        result = self.app(environ, start_response)
        try:
            payload = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return started[0], list(started[1]), payload

    # -- responses -------------------------------------------------------------------------------
    async def _respond(
        self,
        writer: asyncio.StreamWriter,
        request: _Request,
        status: str,
        headers: list[tuple[str, str]],
        payload: bytes,
    ) -> None:
        if request.version == "HTTP/1.0":
            request.close = request.close or (request.get("connection") or "").lower() != (
                "keep-alive"
            )
        names = {k.lower() for k, _ in headers}
        out = [f"HTTP/1.1 {status}\r\n"]
        out += [f"{k}: {v}\r\n" for k, v in headers if k.lower() != "connection"]
        if "content-length" not in names:
            out.append(f"Content-Length: {len(payload)}\r\n")
        if "date" not in names:
            out.append(f"Date: {formatdate(usegmt=True)}\r\n")
        if request.close:
            out.append("Connection: close\r\n")
        elif request.version == "HTTP/1.0":
            out.append("Connection: keep-alive\r\n")
        out.append("\r\n")
        writer.write("".join(out).encode("latin-1"))
        if request.method != "HEAD":
            writer.write(payload)
        await self._drain(writer)

    async def _refuse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, exc: _HTTPError
    ) -> None:
        """Answer a request the front refuses (then close), lingering after a 413."""
        body = json.dumps({"error": str(exc)}).encode()
        self.log.info("serve: refused a request with %d: %s", exc.status, exc)
        writer.write(
            (
                f"HTTP/1.1 {_status_line(exc.status)}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nDate: {formatdate(usegmt=True)}\r\n"
                "Connection: close\r\n\r\n"
            ).encode("latin-1")
            + body
        )
        try:
            await self._drain(writer)
            if exc.linger:
                await self._linger(reader, writer)
        except (ConnectionError, OSError):
            pass

    async def _linger(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read and drop what the client still sends (bounded in time), so that closing does
        not reset the connection before the client has read the answer."""
        if writer.can_write_eof():
            writer.write_eof()
        deadline = time.monotonic() + LINGER_TOTAL
        while (left := deadline - time.monotonic()) > 0 and not self.stopping:
            try:
                chunk = await asyncio.wait_for(reader.read(1 << 20), min(left, LINGER_IDLE))
            except asyncio.TimeoutError:
                return
            if not chunk:
                return

    async def _drain(self, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(writer.drain(), SEND_TIMEOUT)
        except asyncio.TimeoutError:
            raise ConnectionError("the client did not read the response") from None

    # -- shutdown -------------------------------------------------------------------------------
    async def close_idle(self) -> None:
        """Close every connection not answering a request (idle, or still sending one)."""
        self.stopping = True
        await _cancel(self.idle)

    async def close_all(self) -> None:
        """Close every connection, answering or not."""
        self.stopping = True
        await _cancel(self.idle | self.busy)


async def _cancel(tasks: set[asyncio.Task[Any]]) -> None:
    pending = list(tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def _parse_head(head: bytes) -> _Request:
    """The request line and headers (strict: no folded lines, no space before a colon)."""
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[0] or not _TOKEN.issuperset(parts[0]) or not parts[1]:
        raise _HTTPError(400, f"bad request line {lines[0][:80].decode('latin-1')!r}")
    method, target, version = (p.decode("latin-1") for p in parts)
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise _HTTPError(400, f"HTTP version {version[:20]!r} is not supported; use HTTP/1.1")
    if len(lines) - 1 > MAX_HEADER_FIELDS:
        raise _HTTPError(431, f"more than {MAX_HEADER_FIELDS} header fields")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or not _TOKEN.issuperset(name):
            raise _HTTPError(400, f"bad header line {line[:80].decode('latin-1')!r}")
        headers.append((name.decode("latin-1").lower(), value.strip(b" \t").decode("latin-1")))
    request = _Request(method, target, version, headers)
    connection = (request.get("connection") or "").lower()
    request.close = "close" in connection
    return request


def _environ(request: _Request, body: bytes, peer: Any, sock: Any) -> dict[str, Any]:
    path, _, query = request.target.partition("?")
    if path.startswith(("http://", "https://")):  # absolute form
        path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": request.version,
        "SERVER_NAME": str(sock[0]) if isinstance(sock, tuple) else "localhost",
        "SERVER_PORT": str(sock[1]) if isinstance(sock, tuple) else "",
        "REMOTE_ADDR": str(peer[0]) if isinstance(peer, tuple) else "",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, _ in request.headers:
        if "_" in name:  # dropped, as nginx and gunicorn do: 'x_a' could pose as 'x-a'
            continue
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            environ[key] = request.get(name)
        elif key not in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
            environ["HTTP_" + key] = request.get(name)
    return environ


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


#: Signals a booting worker must not lose: gunicorn's master blocks them across ``fork`` (see
#: :func:`spawn_with_signals_blocked`) and the worker unblocks them once its own handlers are in.
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGQUIT})


def spawn_with_signals_blocked(spawn: Callable[[], Any]) -> Any:
    """Run the master's ``spawn_worker`` with :data:`STOP_SIGNALS` blocked.

    Between ``fork`` and the worker's own ``init_signals`` the child still has the master's
    handlers, which only queue the signal in the child's copy of the master: a SIGTERM sent
    to a worker still booting was lost, and the master waited ``graceful_timeout`` (20 s)
    before killing it. Blocked, the signal stays pending until :func:`unblock_stop_signals`.
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        return spawn()
    finally:  # in the master at once; in the child only as it exits
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def unblock_stop_signals() -> None:
    """In a worker, once its handlers are installed: deliver what arrived while it booted."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def worker_class(max_body: int) -> type:
    """A gunicorn worker class serving with :class:`Front` (gunicorn imported here)."""
    from gunicorn.workers.base import Worker

    class AsyncFrontWorker(Worker):
        """One event loop reading requests, ``threads`` threads scoring them."""

        def init_process(self) -> None:
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            self.wake = asyncio.Event()
            self.quick = False
            super().init_process()

        def init_signals(self) -> None:
            for s in self.SIGNALS:
                signal.signal(s, signal.SIG_DFL)
            self.loop.add_signal_handler(signal.SIGTERM, self._stop, False)
            self.loop.add_signal_handler(signal.SIGINT, self._stop, True)
            self.loop.add_signal_handler(signal.SIGQUIT, self._stop, True)
            self.loop.add_signal_handler(signal.SIGUSR1, self.log.reopen_files)
            self.loop.add_signal_handler(signal.SIGWINCH, lambda: None)
            unblock_stop_signals()

        def _stop(self, quick: bool) -> None:
            self.alive = False
            self.quick = self.quick or quick
            self.wake.set()

        def run(self) -> None:
            try:
                self.loop.run_until_complete(self._main())
            finally:
                self.loop.close()

        async def _main(self) -> None:
            executor = ThreadPoolExecutor(max(1, self.cfg.threads), "smglm-serve")
            front = Front(self.wsgi, max_body=max_body, executor=executor, log=self.log)
            limit = self.cfg.worker_connections

            async def accept(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                if len(front.idle) + len(front.busy) >= limit:
                    w.close()  # over worker_connections: refuse at once
                    return
                await front.connection(r, w)

            servers = [
                await asyncio.start_server(accept, sock=s.sock, limit=MAX_HEADER_BYTES)
                for s in self.sockets
            ]
            while self.alive:
                self.notify()
                if self.ppid != os.getppid():
                    self.log.info("serve: the master is gone; worker %s exits", self.pid)
                    break
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), 1.0)
            for server in servers:
                server.close()
            await front.close_idle()
            deadline = time.monotonic() + self.cfg.graceful_timeout
            while front.busy and not self.quick and time.monotonic() < deadline:
                self.notify()
                await asyncio.sleep(0.05)
            await front.close_all()
            executor.shutdown(wait=False, cancel_futures=True)

    return AsyncFrontWorker
