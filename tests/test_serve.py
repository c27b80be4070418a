"""``serve`` over real HTTP on 127.0.0.1: formats, predictions, client errors, load, SIGTERM."""

from __future__ import annotations

import http.client
import io
import json
import re
import signal
import socket
import tarfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import smglm
from helpers import free_port
from serve_harness import CONFIG, SlowClients
from serve_harness import data as _data
from serve_harness import get as _get
from serve_harness import request as _request
from serve_harness import start as _start
from serve_harness import wait_listening as _wait_listening
from smglm.errors import ModelError
from smglm.glm.model import PortableModel, UnseenLevelWarning
from smglm.runtime._codec import RequestError, choose_response_type, parse_content_type
from smglm.runtime.serve import load_serving_model

TOL = {"rtol": 1e-12, "atol": 0}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serve") / "model"
    smglm.fit(CONFIG, _data(400, 0)).save(out)
    return out


@pytest.fixture(scope="module")
def model(model_dir) -> PortableModel:
    return PortableModel.load(model_dir)


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return _data(40, 1)[["age", "area", "expo"]]


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve-log") / "serve.log"
    proc = _start(["--model-dir", str(model_dir), "--port", "0", "--workers", "2"], log)
    port = _wait_listening(proc, log)
    yield port
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0  # exits in seconds; the margin is for a loaded machine
    assert "Traceback" not in log.read_text(errors="replace")


def _post(port: int, body: bytes | str, ctype: str, accept: str | None = None):
    headers = {"Content-Type": ctype}
    if accept is not None:
        headers["Accept"] = accept
    data = body.encode() if isinstance(body, str) else body
    return _request(port, "POST", "/invocations", data, headers)


def _decode(body: bytes, ctype: str) -> np.ndarray:
    if ctype == "text/csv":
        return np.array([float(x) for x in body.decode().splitlines()])
    if ctype == "application/json":
        return np.array(json.loads(body)["predictions"], dtype=float)
    assert ctype == "application/jsonlines"
    return np.array([json.loads(x)["prediction"] for x in body.decode().splitlines()])


def _bodies(rows: pd.DataFrame) -> dict[str, str]:
    records = rows.to_dict(orient="records")
    return {
        "text/csv": rows.to_csv(index=False),
        "application/json": json.dumps(records),
        "application/jsonlines": "".join(json.dumps(r) + "\n" for r in records),
    }


TYPES = ["text/csv", "application/json", "application/jsonlines"]


# -- health and batch parameters --------------------------------------------------------------
def test_ping_answers_200_with_an_empty_body(server):
    status, _, body = _get(server, "/ping")
    assert (status, body) == (200, b"")
    assert _request(server, "HEAD", "/ping")[0] == 200


def test_execution_parameters_report_workers_and_the_6_mb_limit(server):
    status, headers, body = _get(server, "/execution-parameters")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "MaxConcurrentTransforms": 2,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 6,
    }


def test_serve_refuses_to_start_without_a_model(tmp_path):
    empty = tmp_path / "model"
    empty.mkdir()
    port = free_port()
    log = tmp_path / "log"
    proc = _start(["--model-dir", str(empty), "--port", str(port)], log)
    while proc.poll() is None:  # until it exits, /ping never answers 200
        assert _get(port, "/ping")[0] != 200
        time.sleep(0.05)
    assert proc.returncode == 1
    text = log.read_text()
    assert "cannot start" in text and "no model.json" in text and str(empty) in text


# -- formats ------------------------------------------------------------------------------------
@pytest.mark.parametrize("accept", [None, "*/*", *TYPES])
@pytest.mark.parametrize("ctype", TYPES)
def test_invocations_each_format_and_accept_equal_portable_model(
    server, model, rows, ctype, accept
):
    status, headers, body = _post(server, _bodies(rows)[ctype], ctype, accept)
    assert status == 200, body
    expected_type = ctype if accept in (None, "*/*") else accept
    assert headers["content-type"] == expected_type
    np.testing.assert_allclose(_decode(body, expected_type), model.predict(rows), **TOL)


def test_invocations_accept_content_type_parameters_and_q_values(server, model, rows):
    ctype = "text/csv; charset=utf-8"
    accept = "application/xml;q=1, application/json;q=0.9, text/csv;q=0.5"
    status, headers, body = _post(server, _bodies(rows)["text/csv"], ctype, accept)
    assert status == 200 and headers["content-type"] == "application/json"
    np.testing.assert_allclose(_decode(body, "application/json"), model.predict(rows), **TOL)


@pytest.mark.parametrize("with_exposure", [True, False])
def test_invocations_csv_without_header_uses_model_column_order(server, model, rows, with_exposure):
    cols = ["age", "area", "expo"] if with_exposure else ["age", "area"]
    body = rows[cols].to_csv(index=False, header=False)
    status, _, out = _post(server, body, "text/csv")
    assert status == 200, out
    np.testing.assert_allclose(_decode(out, "text/csv"), model.predict(rows[cols]), **TOL)
    if not with_exposure:  # no exposure: the rate per unit of exposure
        rate = model.predict(rows, use_offset=False)
        np.testing.assert_allclose(_decode(out, "text/csv"), rate, **TOL)


def test_invocations_csv_header_in_any_order_with_extra_columns(server, model, rows):
    df = rows.assign(policy="p", y=1)[["y", "expo", "policy", "area", "age"]]
    status, _, out = _post(server, df.to_csv(index=False), "text/csv")
    assert status == 200, out
    np.testing.assert_allclose(_decode(out, "text/csv"), model.predict(rows), **TOL)


def test_invocations_large_csv_takes_the_pandas_path_with_the_same_numbers(server, model):
    big = _data(5000, 7)[["age", "area", "expo"]]  # over the fast path's 64 KiB
    body = big.to_csv(index=False, header=False)
    assert len(body) > 64 * 1024
    status, _, out = _post(server, body, "text/csv")
    assert status == 200
    np.testing.assert_allclose(_decode(out, "text/csv"), model.predict(big), **TOL)


def test_invocations_json_shapes(server, model, rows):
    expected = model.predict(rows)
    records = rows.to_dict(orient="records")
    shapes = {
        "columns": {c: rows[c].tolist() for c in rows.columns},
        "instances": {"instances": records},
        "positional": rows.to_numpy().tolist(),
    }
    for name, payload in shapes.items():
        status, _, out = _post(server, json.dumps(payload), "application/json")
        assert status == 200, (name, out)
        np.testing.assert_allclose(_decode(out, "application/json"), expected, **TOL)
    status, _, out = _post(server, json.dumps(records[0]), "application/json")
    assert status == 200
    np.testing.assert_allclose(_decode(out, "application/json"), expected[:1], **TOL)


def test_invocations_unseen_level_scores_as_reference_and_says_so(server, model, rows):
    df = rows.head(5).copy()
    df.loc[[1, 3], "area"] = "Z"
    status, headers, out = _post(server, df.to_csv(index=False), "text/csv")
    assert status == 200
    assert headers["x-smglm-unseen-levels"] == "area=2"
    with pytest.warns(UnseenLevelWarning):
        expected = model.predict(df)
    np.testing.assert_allclose(_decode(out, "text/csv"), expected, **TOL)
    reference = next(t for t in model.terms if t.name == "area").reference
    np.testing.assert_allclose(expected[1], model.predict(df.iloc[[1]].assign(area=reference))[0])


def test_invocations_level_spelled_with_spaces_or_numbers_is_not_unseen(server, model, rows):
    df = rows.head(3).copy()
    body = df.to_csv(index=False).replace(",B,", ", B ,").replace(",A,", ",A ,")
    status, headers, out = _post(server, body, "text/csv")
    assert status == 200 and "x-smglm-unseen-levels" not in headers
    np.testing.assert_allclose(_decode(out, "text/csv"), model.predict(df), **TOL)


# -- client errors -------------------------------------------------------------------------------
BAD = [
    ("missing column", "age,expo\n30,0.5\n", "text/csv", 400, "'area'"),
    ("mistyped column", "age,area,expo\nold,A,0.5\n", "text/csv", 400, "'age' must be numeric"),
    ("missing number", "age,area,expo\n,A,0.5\n", "text/csv", 400, "'age'"),
    ("bad exposure", "age,area,expo\n30,A,-1\n", "text/csv", 400, "'expo'"),
    ("headerless width", "30,A,0.5,9,9\n", "text/csv", 400, "5 value(s)"),
    ("ragged csv", "age,area,expo\n30,A,0.5\n31,B\n", "text/csv", 400, "expo"),
    ("duplicate column", "age,area,age\n1,A,2\n", "text/csv", 400, "['age'] more than once"),
    ("header only", "age,area,expo\n", "text/csv", 400, "no data rows"),
    ("unparsable json", '[{"age": 30,', "application/json", 400, "not valid JSON"),
    ("json scalar", "42", "application/json", 400, "got a number"),
    ("json nested", '[{"age": [1], "area": "A"}]', "application/json", 400, "'age' row 1"),
    ("json mixed rows", '[{"age": 1}, [1, "A"]]', "application/json", 400, "['array', 'object']"),
    ("json ragged columns", '{"age": [1, 2], "area": ["A"]}', "application/json", 400, "length"),
    ("json bool numbers", '[{"age": "x", "area": true}]', "application/json", 400, "'age'"),
    (
        "jsonlines bad line",
        '{"age": 1, "area": "A"}\n{oops\n',
        "application/jsonlines",
        400,
        "line 2",
    ),
    ("empty body", "", "text/csv", 400, "no rows"),
    ("blank body", "\n \n", "application/json", 400, "no rows"),
    ("bad utf-8", b"age,area\n\xff\xfe,A\n", "text/csv", 400, "not valid utf-8"),
    ("unknown type", "age=1", "application/x-www-form-urlencoded", 415, "text/csv"),
    ("unknown charset", "1,A", "text/csv; charset=klingon", 415, "charset"),
    ("huge number", "age,area,expo\n1e308,A,1\n", "text/csv", 400, "not finite"),
    (
        "huge integer",
        '[{"age": 1' + "0" * 400 + ', "area": "A"}]',
        "application/json",
        400,
        "too large",
    ),
]


@pytest.mark.parametrize(
    ("body", "ctype", "status", "needle"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_invocations_client_mistakes_get_4xx_naming_the_problem(
    server, body, ctype, status, needle
):
    got, headers, out = _post(server, body, ctype)
    assert got == status, out
    assert headers["content-type"] == "application/json"
    assert needle in json.loads(out)["error"]


def test_invocations_unknown_accept_is_406(server, rows):
    status, _, out = _post(server, _bodies(rows)["text/csv"], "text/csv", "application/xml")
    assert status == 406 and "application/xml" in json.loads(out)["error"]


def test_wrong_method_is_405_and_unknown_path_404(server):
    status, headers, _ = _request(server, "GET", "/invocations")
    assert status == 405 and headers["allow"] == "POST"
    assert _request(server, "POST", "/ping", b"x", {"Content-Type": "text/csv"})[0] == 405
    status, _, out = _request(server, "GET", "/predict")
    assert status == 404 and "/invocations" in json.loads(out)["error"]


def test_body_over_6_mb_is_413_from_content_length_before_reading(server):
    with socket.create_connection(("127.0.0.1", server), timeout=10) as s:
        s.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\n"
            b"Content-Length: 100000000\r\n\r\n"
        )  # no body follows
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413"), reply
    status, _, out = _post(server, b"1,A,1\n" * (6 * 2**20 // 6 + 1), "text/csv")
    assert status == 413 and "6291456" in json.loads(out)["error"]


def test_chunked_body_over_6_mb_is_413_while_reading(server):
    def chunks():
        for _ in range(7 * 16):
            yield b"30,A,0.5\n" * (2**16 // 9)

    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=30)
    conn.request(
        "POST", "/invocations", chunks(), {"Content-Type": "text/csv"}, encode_chunked=True
    )
    resp = conn.getresponse()
    assert resp.status == 413 and b"chunked" in resp.read()
    conn.close()


def test_chunked_body_under_the_limit_is_scored(server, model, rows):
    text = rows.to_csv(index=False).encode()
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=30)
    conn.request(
        "POST",
        "/invocations",
        iter([text[:50], text[50:]]),
        {"Content-Type": "text/csv"},
        encode_chunked=True,
    )
    resp = conn.getresponse()
    assert resp.status == 200
    np.testing.assert_allclose(_decode(resp.read(), "text/csv"), model.predict(rows), **TOL)
    conn.close()


def test_body_of_50_mb_gets_413_not_a_connection_reset(server):
    status, headers, out = _post(server, b"30,A,0.5\n" * (50 * 2**20 // 9), "text/csv")
    assert status == 413 and headers["connection"] == "close"
    assert "6291456" in json.loads(out)["error"]
    assert _get(server, "/ping")[0] == 200


# -- slow clients ----------------------------------------------------------------------------------
def test_slow_clients_stall_neither_ping_nor_invocations(model_dir, model, rows, tmp_path):
    """50 connections trickling headers (the issue's 4 took every thread of a 2 x 2 gthread
    server); /ping and one-row /invocations still answer, and SIGTERM still ends it at once.
    The latency figures are the benchmark's (benchmarks/serve.py --slow-clients)."""
    log = tmp_path / "serve.log"
    proc = _start(["--model-dir", str(model_dir), "--port", "0", "--workers", "2"], log)
    try:
        port = _wait_listening(proc, log)
        one = rows.head(1).to_csv(index=False).encode()
        with SlowClients(port, 50, every=0.2):
            time.sleep(0.5)  # every slow connection is open and has sent part of its headers
            for _ in range(20):
                assert _request(port, "GET", "/ping", timeout=5)[0] == 200
                status, _, out = _request(
                    port, "POST", "/invocations", one, {"Content-Type": "text/csv"}, timeout=5
                )
                assert status == 200, out
                np.testing.assert_allclose(float(out), model.predict(rows.head(1))[0], **TOL)
            proc.send_signal(signal.SIGTERM)  # slow connections open: closed at once
            assert proc.wait(timeout=15) == 0
    finally:
        proc.kill()
    text = log.read_text(errors="replace")
    assert "Using worker: AsyncFrontWorker" in text and "Traceback" not in text


def test_sigterm_lets_a_request_in_flight_finish(model_dir, model, rows, tmp_path):
    """Headers received, body still arriving: SIGTERM waits for it, answers, then exits 0."""
    log = tmp_path / "serve.log"
    proc = _start(["--model-dir", str(model_dir), "--port", "0", "--workers", "1"], log)
    try:
        port = _wait_listening(proc, log)
        body = rows.to_csv(index=False).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(
                b"POST /invocations HTTP/1.1\r\nContent-Type: text/csv\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[:100]
            )
            time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert proc.poll() is None  # waiting for the request in flight
            s.sendall(body[100:])
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        head, _, out = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" in head, reply
        np.testing.assert_allclose(_decode(out, "text/csv"), model.predict(rows), **TOL)
        assert proc.wait(timeout=15) == 0
    finally:
        proc.kill()


@pytest.mark.parametrize("worker_class", ["asyncio", "gthread"])
def test_sigterm_while_workers_boot_ends_serve_at_once(model_dir, tmp_path, worker_class):
    """A SIGTERM that reaches a worker between its fork and its own signal handlers is kept
    pending, not lost: before, the master waited its 20 s graceful timeout for that worker
    (a CI failure: a module fixture's teardown timed out right after the first /ping)."""
    args = ["--model-dir", str(model_dir), "--port", "0", "--workers", "4"]
    for attempt in range(4):
        log = tmp_path / f"serve-{attempt}.log"
        proc = _start([*args, "--worker-class", worker_class], log)
        try:
            deadline = time.monotonic() + 30
            while "Booting worker" not in log.read_text(errors="replace"):
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.005)
            proc.send_signal(signal.SIGTERM)  # the other workers are still being forked
            # a lost SIGTERM made the master wait its graceful timeout (20 s), then kill the
            # worker; delivered, every worker exits at once (seconds, on a loaded machine)
            assert proc.wait(timeout=17) == 0, log.read_text()
        finally:
            proc.kill()


def test_gthread_worker_class_still_serves(model_dir, model, rows, tmp_path):
    log = tmp_path / "serve.log"
    args = ["--model-dir", str(model_dir), "--port", "0", "--workers", "1"]
    proc = _start([*args, "--worker-class", "gthread"], log)
    try:
        port = _wait_listening(proc, log)
        status, _, out = _post(port, _bodies(rows)["text/csv"], "text/csv")
        assert status == 200, out
        np.testing.assert_allclose(_decode(out, "text/csv"), model.predict(rows), **TOL)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        proc.kill()
    assert "Using worker: _Worker" in log.read_text()  # serve's gthread subclass


def test_headers_not_complete_within_the_header_timeout_get_408(model, monkeypatch):
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from smglm.runtime import _front
    from smglm.runtime._app import ServeApp

    monkeypatch.setattr(_front, "HEADER_TIMEOUT", 0.3)
    logged: list[str] = []

    class Log:
        def info(self, msg: str, *args: object) -> None:
            logged.append(msg % args)

        exception = info

    async def scenario() -> bytes:
        with ThreadPoolExecutor(1) as pool:
            front = _front.Front(
                ServeApp(model, workers=1), max_body=2**20, executor=pool, log=Log()
            )
            server = await asyncio.start_server(front.connection, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /ping HTTP/1.1\r\nHost: slow\r\n")  # never finished
            reply = await asyncio.wait_for(reader.read(), 10)  # until the server closes
            writer.close()
            server.close()
            return reply

    reply = asyncio.run(scenario())
    assert reply.startswith(b"HTTP/1.1 408 "), reply
    assert b"within 0.3 s" in reply and b"Connection: close" in reply
    assert any("408" in line for line in logged)


# -- load ----------------------------------------------------------------------------------------
def test_500_concurrent_requests_all_answer_correctly(server, model):
    data = _data(500, 3)[["age", "area", "expo"]]
    expected = model.predict(data)
    local = threading.local()

    def one(i: int) -> float:
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection("127.0.0.1", server, timeout=30)
        local.conn.request(
            "POST", "/invocations", data.iloc[[i]].to_csv(index=False), {"Content-Type": "text/csv"}
        )
        resp = local.conn.getresponse()
        assert resp.status == 200
        return float(resp.read())

    with ThreadPoolExecutor(32) as pool:
        got = np.array(list(pool.map(one, range(500))))
    np.testing.assert_allclose(got, expected, **TOL)


# -- environment, archive and SIGTERM ------------------------------------------------------------
def test_serve_reads_environment_and_archive_and_stops_on_sigterm(model_dir, model, rows, tmp_path):
    root = tmp_path / "ml"
    (root / "model").mkdir(parents=True)
    with tarfile.open(root / "model" / "model.tar.gz", "w:gz") as tar:
        for f in model_dir.iterdir():
            tar.add(f, arcname=f.name)
    port = free_port()
    env = {
        "SMGLM_ML_ROOT": str(root),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "30",
    }
    proc = _start([], tmp_path / "log", env)
    assert _wait_listening(proc, tmp_path / "log") == port
    assert json.loads(_get(port, "/execution-parameters")[2])["MaxConcurrentTransforms"] == 1
    status, _, out = _post(port, _bodies(rows)["text/csv"], "text/csv")
    assert status == 200, out
    np.testing.assert_allclose(_decode(out, "text/csv"), model.predict(rows), **TOL)
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # a kept-alive connection
    idle.request("GET", "/ping")
    assert idle.getresponse().read() == b""
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=30) == 0  # SageMaker's grace for serving; graceful: exit 0
    finally:
        proc.kill()
        idle.close()


# -- model loading and negotiation, in process ---------------------------------------------------
def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, "/etc/passwd"
    return info, None


@pytest.mark.parametrize(
    ("member", "needle"),
    [
        (_file("/abs/model.json", b"{}"), "'/abs/model.json'"),
        (_file("../model.json", b"{}"), "'../model.json'"),
        (_file("sub/../../x", b"{}"), "'sub/../../x'"),
        (_file("..\\x", b"{}"), "'..\\\\x'"),
        (_link("evil", tarfile.SYMTYPE), "a link"),
        (_link("evil", tarfile.LNKTYPE), "a link"),
    ],
)
def test_load_serving_model_refuses_unsafe_archives(model_dir, tmp_path, member, needle):
    good = _file("model.json", (model_dir / "model.json").read_bytes())
    archive = _tar(tmp_path / "model.tar.gz", [good, member])
    with pytest.raises(ModelError, match=re.escape(needle)):
        load_serving_model(tmp_path)
    with pytest.raises(ModelError, match="refusing"):
        load_serving_model(archive)


def test_load_serving_model_reads_archives_and_names_what_is_missing(model_dir, model, tmp_path):
    good = _file("./model.json", (model_dir / "model.json").read_bytes())
    assert load_serving_model(_tar(tmp_path / "m.tar.gz", [good])) == model
    with pytest.raises(ModelError, match=r"no model\.json at its root.*'other\.txt'"):
        load_serving_model(_tar(tmp_path / "n.tar.gz", [_file("other.txt", b"x")]))
    with pytest.raises(ModelError, match="does not exist"):
        load_serving_model(tmp_path / "nowhere")
    assert load_serving_model(model_dir) == model


@pytest.mark.parametrize(
    ("accept", "request_type", "expected"),
    [
        (None, "text/csv", "text/csv"),
        ("", "application/json", "application/json"),
        ("*/*", "application/jsonlines", "application/jsonlines"),
        ("application/*", "text/csv", "application/json"),
        ("text/*;q=0.2, application/x-jsonlines", "text/csv", "application/jsonlines"),
        ("text/csv;q=0, application/json", "text/csv", "application/json"),
    ],
)
def test_choose_response_type(accept, request_type, expected):
    assert choose_response_type(accept, request_type) == expected


def test_choose_response_type_and_content_type_refuse_unknown_types():
    with pytest.raises(RequestError) as err:
        choose_response_type("image/png, text/csv;q=0", "text/csv")
    assert err.value.status == 406
    with pytest.raises(RequestError) as err:
        parse_content_type(None)
    assert err.value.status == 415 and "no Content-Type" in str(err.value)
    assert parse_content_type('Text/CSV; Charset="UTF-8"') == ("text/csv", {"charset": "UTF-8"})


def test_scorer_fast_and_reference_paths_agree_bit_for_bit(model):
    from smglm.runtime._app import Scorer
    from smglm.runtime._codec import parse_body

    scorer = Scorer(model)
    rows = _data(30, 9)[["age", "area", "expo"]]
    batch = parse_body(rows.to_csv(index=False), "text/csv", {}, scorer.columns)
    assert batch.columns is not None  # small and unquoted: the fast path applies
    fast, unseen = scorer.score(batch)
    batch.columns = None
    reference, _ = scorer.score(batch)
    assert unseen == {}
    np.testing.assert_array_equal(fast, reference)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(fast, model.predict(rows))


def _mutants(base: str, alphabet: str, n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        chars = list(base)
        for _ in range(int(rng.integers(1, 5))):
            pos, op = int(rng.integers(0, len(chars) + 1)), rng.random()
            if op < 0.4:
                chars.insert(pos, str(rng.choice(list(alphabet))))
            elif chars:
                del chars[min(pos, len(chars) - 1)]
        out.append("".join(chars))
    return out


def test_app_never_answers_5xx_to_mangled_bodies(model):
    from smglm.runtime._app import ServeApp

    app = ServeApp(model, workers=1)

    def status(body: str, ctype: str) -> int:
        data = body.encode()
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/invocations",
            "CONTENT_TYPE": ctype,
            "CONTENT_LENGTH": str(len(data)),
            "wsgi.input": io.BytesIO(data),
        }
        seen = []
        b"".join(app(environ, lambda s, h: seen.append(s)))
        return int(seen[0][:3])

    csv_base = "age,area,expo\n35.5,B,0.5\n40,C,1\n"
    json_base = '[{"age":35.5,"area":"B","expo":0.5},{"age":40,"area":"C"}]'
    cases = [(b, "text/csv") for b in _mutants(csv_base, ',\n"\r AB1.-e\t;x', 600, 1)]
    for body in _mutants(json_base, '[]{}",:1.eAB \ntruefalsnul-', 600, 2):
        cases += [(body, "application/json"), (body, "application/jsonlines")]
    statuses = [status(body, ctype) for body, ctype in cases]
    assert all(s < 500 for s in statuses)
    assert {200, 400} <= set(statuses)  # the mutants hit both outcomes
