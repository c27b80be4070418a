"""The bad-input table of ``serve`` (entry ``serve``): requests against a real server process.

Each case is a request: a dict (``method``, ``path``, ``body``, ``headers``) sent with
``http.client``, or raw bytes sent as they are (for what ``http.client`` cannot send). A refused
case must get its ``status`` (always a 4xx: a client mistake never gets a 5xx, a reset or a hang)
with a JSON body ``{"error": ...}`` holding the expected fragment; an accepted case
(``expect=None``) gets 200 and finite predictions.
"""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path
from typing import Any

import pytest

import smglm
from bad_inputs import Case, ids
from serve_harness import CONFIG, data, raw, request, start, wait_listening

CSV = "text/csv"
JSON = "application/json"
JSONL = "application/jsonlines"
LIMIT = 6 * 2**20


def post(body: str | bytes | Any, ctype: str | None = CSV, **headers: str) -> dict[str, Any]:
    """A POST /invocations request; ``body`` may be a callable building it (large bodies)."""
    h = dict(headers)
    if ctype is not None:
        h["Content-Type"] = ctype
    return {"method": "POST", "path": "/invocations", "body": body, "headers": h}


def call(method: str, path: str) -> dict[str, Any]:
    return {"method": method, "path": path, "body": None, "headers": {}}


def head(*lines: str, body: bytes = b"") -> bytes:
    """Raw request bytes: the request line and headers given, then ``body``."""
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def refused(case: str, given: Any, status: int, expect: str) -> Case:
    return Case(case, "serve", given, expect, {"status": status})


def accepted(case: str, given: Any, rows: int = 1) -> Case:
    return Case(case, "serve", given, None, {"rows": rows})


ROW = "age,area,expo\n30,A,0.5\n"
DEEP = "[" * 100_000 + "]" * 100_000

CASES: list[Case] = [
    # -- methods and paths
    refused("GET /invocations", call("GET", "/invocations"), 405, "use POST"),
    refused("DELETE /ping", call("DELETE", "/ping"), 405, "use GET or HEAD"),
    refused("POST /ping", post("x", CSV) | {"path": "/ping"}, 405, "method POST"),
    refused("unknown path", call("GET", "/predict"), 404, "/invocations"),
    # -- HTTP framing (raw bytes)
    refused("garbage request line", head("GARBAGE"), 400, "bad request line 'GARBAGE'"),
    refused("HTTP/2.0 request line", head("GET /ping HTTP/2.0"), 400, "'HTTP/2.0' is not"),
    refused("header without colon", head("GET /ping HTTP/1.1", "Bad Header x"), 400, "header"),
    refused("space before colon", head("GET /ping HTTP/1.1", "Host : a"), 400, "'Host : a'"),
    refused(
        "headers over 64 KiB",
        head("GET /ping HTTP/1.1", "X-Big: " + "a" * 70_000),
        431,
        "65536 bytes",
    ),
    refused(
        "too many header fields",
        head("GET /ping HTTP/1.1", *(f"X-{i}: {i}" for i in range(120))),
        431,
        "more than 100 header fields",
    ),
    refused(
        "Content-Length not a number",
        head("POST /invocations HTTP/1.1", "Content-Type: text/csv", "Content-Length: abc"),
        400,
        "Content-Length 'abc'",
    ),
    refused(
        "two different Content-Lengths",
        head("POST /invocations HTTP/1.1", "Content-Length: 5", "Content-Length: 6"),
        400,
        "Content-Length '5,6'",
    ),
    refused(
        "Content-Length and chunked",
        head("POST /invocations HTTP/1.1", "Content-Length: 5", "Transfer-Encoding: chunked"),
        400,
        "both Transfer-Encoding and Content-Length",
    ),
    refused(
        "gzip transfer coding",
        head("POST /invocations HTTP/1.1", "Transfer-Encoding: gzip"),
        400,
        "Transfer-Encoding 'gzip'",
    ),
    refused(
        "bad chunk size",
        head("POST /invocations HTTP/1.1", "Transfer-Encoding: chunked", body=b"zz\r\n"),
        400,
        "bad chunk size line 'zz'",
    ),
    refused(
        "unknown Expect",
        head("POST /invocations HTTP/1.1", "Content-Length: 3", "Expect: 200-ok"),
        417,
        "Expect '200-ok'",
    ),
    # -- size
    refused(
        "50 MB body",
        post(lambda: b"30,A,0.5\n" * (50 * 2**20 // 9)),
        413,
        f"the limit is {LIMIT} bytes",
    ),
    refused(
        "oversize declared, Expect 100-continue",
        head(
            "POST /invocations HTTP/1.1",
            "Content-Type: text/csv",
            "Content-Length: 100000000",
            "Expect: 100-continue",
        ),
        413,
        "the body is 100000000 bytes",
    ),
    refused(
        "oversize chunked body",
        head(
            "POST /invocations HTTP/1.1",
            "Content-Type: text/csv",
            "Transfer-Encoding: chunked",
            body=b"".join([b"100000\r\n" + b"1" * 0x100000 + b"\r\n"] * 7) + b"0\r\n\r\n",
        ),
        413,
        "chunked body is too large",
    ),
    # -- content types
    refused(
        "form content type", post("age=1", "application/x-www-form-urlencoded"), 415, "text/csv"
    ),
    refused("no content type", post(ROW, None), 415, "no Content-Type"),
    refused("unknown charset", post(ROW, "text/csv; charset=klingon"), 415, "'klingon'"),
    refused("Accept xml only", post(ROW, CSV, Accept="application/xml"), 406, "xml"),
    refused(
        "latin-1 bytes as utf-8", post("age,area\n30,Zürich\n".encode("latin-1")), 400, "utf-8"
    ),
    # -- empty
    refused("empty body", post(""), 400, "no rows to score"),
    refused("blank lines only", post("\n\r\n \n"), 400, "no rows to score"),
    refused("CSV header only", post("age,area,expo\n"), 400, "no data rows"),
    refused("JSON empty list", post("[]", JSON), 400, "no rows to score"),
    refused("JSON empty columns", post('{"age": [], "area": []}', JSON), 400, "no rows"),
    # -- CSV shape and values
    refused("CSV missing column", post("age,expo\n30,0.5\n"), 400, "'area'"),
    refused("CSV 5 values, no header", post("30,A,0.5,9,9\n"), 400, "5 value(s)"),
    refused("CSV 1 value, no header", post("30\n"), 400, "1 value(s)"),
    refused("CSV ragged rows", post("age,area,expo\n30,A,0.5\n31,B\n"), 400, "expo"),
    refused("CSV duplicate header", post("age,area,age\n1,A,2\n"), 400, "['age'] more than once"),
    refused("CSV text number", post("age,area\nold,A\n"), 400, "'age' must be numeric"),
    refused("CSV decimal comma", post('age,area\n"30,5",A\n'), 400, "'age' must be numeric"),
    refused("CSV empty number", post("age,area\n,A\n"), 400, "'age'"),
    refused("CSV nan", post("age,area\nnan,A\n"), 400, "'age' has 1 missing or infinite"),
    refused("CSV NaN string", post("age,area\nNaN,A\n"), 400, "'age' has 1 missing or infinite"),
    refused("CSV inf", post("age,area\ninf,A\n"), 400, "'age' has 1 missing or infinite"),
    refused("CSV -Infinity", post("age,area\n-Infinity,A\n"), 400, "'age' has 1 missing"),
    refused("CSV 1e400", post("age,area\n1e400,A\n"), 400, "'age' has 1 missing or infinite"),
    refused("CSV 1e308 overflows", post("age,area,expo\n1e308,A,1\n"), 400, "not finite"),
    refused("CSV true for a number", post("age,area\ntrue,A\n"), 400, "holds the boolean true"),
    refused("CSV TRUE among numbers", post("age,area\nTRUE,A\n30,B\n"), 400, "'TRUE'"),
    refused("CSV negative exposure", post("age,area,expo\n30,A,-1\n"), 400, "'expo'"),
    refused("CSV zero exposure", post("age,area,expo\n30,A,0\n"), 400, "'expo'"),
    # -- JSON shape and values
    refused("JSON unparsable", post('[{"age": 30,', JSON), 400, "not valid JSON"),
    refused("JSON scalar", post("42", JSON), 400, "got a number"),
    refused("JSON string", post('"age"', JSON), 400, "got a string"),
    refused("JSON nested 100,000 deep", post(DEEP, JSON), 400, "nests arrays or objects too"),
    refused("JSON lines nested deep", post(DEEP + "\n", JSONL), 400, "line 1 nests"),
    refused("JSON value is a list", post('[{"age": [1], "area": "A"}]', JSON), 400, "'age' row 1"),
    refused(
        "JSON value is an object", post('[{"age": {"v": 1}, "area": "A"}]', JSON), 400, "a dict"
    ),
    refused("JSON mixed rows", post('[{"age": 1}, [1, "A"]]', JSON), 400, "['array', 'object']"),
    refused("JSON ragged columns", post('{"age": [1, 2], "area": ["A"]}', JSON), 400, "lengths"),
    refused("JSON lists and scalars", post('{"age": [1], "area": "A"}', JSON), 400, "every column"),
    refused("JSON row width 1", post("[[30]]", JSON), 400, "1 value(s)"),
    refused("JSON rows of varying width", post('[[30, "A"], [30]]', JSON), 400, "[1, 2]"),
    refused(
        "JSON true for a number",
        post('[{"age": true, "area": "A"}]', JSON),
        400,
        "column 'age' must be numeric; row 1 holds the boolean true",
    ),
    refused(
        "JSON false in row 2",
        post('[{"age": 30, "area": "A"}, {"age": false, "area": "B"}]', JSON),
        400,
        "row 2 holds the boolean false",
    ),
    refused(
        "JSON true exposure",
        post('[{"age": 30, "area": "A", "expo": true}]', JSON),
        400,
        "column 'expo' must be numeric; row 1 holds the boolean true",
    ),
    refused(
        "JSON true for a level",
        post('[{"age": 30, "area": true}]', JSON),
        400,
        "column 'area' is categorical",
    ),
    refused(
        "JSON positional boolean",
        post('[[true, "A"]]', JSON),
        400,
        "column 'age' must be numeric",
    ),
    refused("JSON NaN", post('[{"age": NaN, "area": "A"}]', JSON), 400, "'age' has 1 missing"),
    refused("JSON Infinity", post('[{"age": Infinity, "area": "A"}]', JSON), 400, "'age' has 1"),
    refused("JSON null number", post('[{"age": null, "area": "A"}]', JSON), 400, "'age'"),
    refused("JSON text number", post('[{"age": "old", "area": "A"}]', JSON), 400, "numeric"),
    refused(
        "JSON 400-digit integer",
        post('[{"age": 1' + "0" * 400 + ', "area": "A"}]', JSON),
        400,
        "too large",
    ),
    refused("JSON 1e400", post('[{"age": 1e400, "area": "A"}]', JSON), 400, "'age' has 1"),
    refused("JSON unknown columns only", post('[{"zzz": 1}]', JSON), 400, "missing column(s)"),
    refused("JSON lines bad line", post('{"age": 1, "area": "A"}\n{oops\n', JSONL), 400, "line 2"),
    # -- correct accepts
    accepted("CSV one row with header", post(ROW)),
    accepted("CSV without header", post("30,A,0.5\n")),
    accepted("CSV without exposure", post("30,A\n31,B\n"), rows=2),
    accepted("CSV extra columns ignored", post("id,age,area,expo,y\n7,30,A,0.5,1\n")),
    accepted("CSV CRLF lines", post("age,area,expo\r\n30,A,0.5\r\n31,C,1\r\n"), rows=2),
    accepted("CSV with BOM", post("\ufeffage,area,expo\n30,A,0.5\n".encode())),
    accepted("CSV quoted number", post('age,area\n"30",A\n')),
    accepted("JSON record", post('{"age": 30, "area": "A", "expo": 0.5}', JSON)),
    accepted("JSON string number", post('[{"age": "30", "area": "A"}]', JSON)),
    accepted("JSON unknown field ignored", post('[{"age": 30, "area": "A", "id": 7}]', JSON)),
    accepted("JSON instances", post('{"instances": [[30, "A", 0.5], [40, "B", 1]]}', JSON), 2),
    accepted("JSON unseen level", post('[{"age": 30, "area": "Z"}]', JSON)),
    accepted(
        "JSON lines", post('{"age": 30, "area": "A"}\n{"age": 31, "area": "B"}\n', JSONL), rows=2
    ),
    accepted(
        "chunked body",
        head(
            "POST /invocations HTTP/1.1",
            "Content-Type: text/csv",
            "Transfer-Encoding: chunked",
            body=b"5\r\n30,A,\r\n4\r\n0.5\n\r\n0\r\n\r\n",
        ),
    ),
    accepted(
        "Expect 100-continue",
        head(
            "POST /invocations HTTP/1.1",
            "Content-Type: text/csv",
            "Content-Length: 9",
            "Expect: 100-continue",
            body=b"30,A,0.5\n",
        ),
    ),
    accepted("HTTP/1.0 ping", head("GET /ping HTTP/1.0"), rows=0),
    accepted("HEAD ping", call("HEAD", "/ping"), rows=0),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-bad")
    smglm.fit(CONFIG, data(300, 0)).save(root / "model")
    log = root / "serve.log"
    proc = start(["--model-dir", str(root / "model"), "--port", "0", "--workers", "1"], log)
    port = wait_listening(proc, log)
    yield port, log
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert "Traceback" not in log.read_text(errors="replace")


def send(port: int, given: Any) -> tuple[int, dict[str, str], bytes]:
    if isinstance(given, bytes):
        return raw(port, given, timeout=30)
    body = given["body"]() if callable(given["body"]) else given["body"]
    if isinstance(body, str):
        body = body.encode()
    return request(port, given["method"], given["path"], body, given["headers"])


def predictions(body: bytes, ctype: str) -> list[float]:
    if ctype == JSON:
        return json.loads(body)["predictions"]
    if ctype == JSONL:
        return [json.loads(line)["prediction"] for line in body.decode().splitlines()]
    return [float(x) for x in body.decode().splitlines()]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_serve_bad_input(server: tuple[int, Path], case: Case) -> None:
    port, _ = server
    status, headers, body = send(port, case.given)
    if case.accepted:
        assert status == 200, body
        values = predictions(body, headers.get("content-type", CSV))
        assert len(values) == case.extra["rows"]
        assert all(math.isfinite(v) and v > 0 for v in values)
        return
    assert 400 <= status < 500, (status, body)
    assert status == case.extra["status"], body
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert case.expect in error, error


def test_the_table_is_large_and_mixed() -> None:
    assert all(c.entry == "serve" for c in CASES)
    assert len(CASES) >= 25
    assert sum(c.accepted for c in CASES) >= 10
