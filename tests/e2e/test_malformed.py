"""test_malformed.py - bad names, bad encodings and broken HTTP: each gets a 4xx
(or, for garbage, a closed connection), changes nothing, and the server goes on."""

import socket
import time

import pytest

from harness.comio import Client, expect_error, expect_ok_json, raw_exchange, status_of


@pytest.fixture
def seeded(server):
    """A server holding bkt/keep, and a client to it."""
    c = server.client()
    r = c.put("bkt", "keep", b"still here")
    assert r.status == 200, r
    return server, c


def still_serving(server, c, valid_buckets=("bkt",)):
    """The server answers, bkt/keep is intact, and no bucket other than the valid ones exists."""
    fresh = Client(server.host, server.port, timeout=10)
    try:
        assert fresh.health().status == 200
        assert fresh.get("bkt", "keep").body == b"still here"
        names = sorted(b["name"] for b in expect_ok_json(fresh.raw("GET", "/"))["buckets"])
        assert names == sorted(valid_buckets), names
        assert [o["key"] for o in expect_ok_json(fresh.list("bkt"))["objects"]] == ["keep"]
    finally:
        fresh.close()
    assert c.get("bkt", "keep").status == 200


BAD_PATHS = [
    # bad percent-encoding
    ("PUT", "/bkt/%zz", "InvalidURI"),
    ("PUT", "/bkt/k%", "InvalidURI"),
    ("PUT", "/bkt/k%4", "InvalidURI"),
    ("PUT", "/bkt/k%g1", "InvalidURI"),
    ("GET", "/bkt/%zz", "InvalidURI"),
    ("DELETE", "/bkt/k%", "InvalidURI"),
    # NUL in key
    ("PUT", "/bkt/%00", "InvalidKey"),
    ("PUT", "/bkt/a%00b", "InvalidKey"),
    ("GET", "/bkt/a%00", "InvalidKey"),
    ("DELETE", "/bkt/%00", "InvalidKey"),
    # key too long after decoding
    ("PUT", "/bkt/" + "k" * 1025, "KeyTooLong"),
    ("GET", "/bkt/" + "k" * 1025, "KeyTooLong"),
    ("PUT", "/bkt/" + "%6B" * 1025, "KeyTooLong"),
    ("PUT", "/bkt/" + "k" * 5000, "KeyTooLong"),
]

BAD_BUCKETS = [
    "ab",  # too short
    "a" * 64,  # too long
    "ABC",
    "Bucket",
    "-abc",
    "abc-",
    ".abc",
    "abc.",
    "a..b",
    "ab_c",
    "ab%20c",
    "abc!",
    "192.168.1.1",
    "10.0.0.1",
    "admin",  # reserved
    "metrics",  # reserved
]


@pytest.mark.parametrize("method,path,code", BAD_PATHS, ids=lambda v: v if len(str(v)) < 40 else str(v)[:30] + "...")
def test_bad_paths(seeded, method, path, code):
    server, c = seeded
    body = b"payload" if method == "PUT" else None
    expect_error(c.raw(method, path, body), 400, code)
    still_serving(server, c)


@pytest.mark.parametrize("name", BAD_BUCKETS)
def test_bad_bucket_names(seeded, name):
    server, c = seeded
    expect_error(c.raw("PUT", "/" + name, None), 400, "InvalidBucketName")
    r = c.raw("DELETE", "/" + name)
    if name == "metrics" and r.status == 405:  # /metrics is a route of its own: 405 is an answer too
        expect_error(r, 405, "MethodNotAllowed")
    else:
        expect_error(r, 400, "InvalidBucketName")
    if name not in ("admin", "metrics"):  # GET /metrics and /admin/... are routes of their own
        expect_error(c.raw("PUT", "/%s/key" % name, b"data"), 400, "InvalidBucketName")
        expect_error(c.raw("GET", "/%s/key" % name), 400, "InvalidBucketName")
        expect_error(c.raw("GET", "/" + name), 400, "InvalidBucketName")
    still_serving(server, c)


def test_metrics_bucket_object_refused(seeded):
    server, c = seeded
    expect_error(c.raw("PUT", "/metrics/key", b"data"), 400, "InvalidBucketName")
    still_serving(server, c)


def test_valid_bucket_name_boundaries(seeded):
    server, c = seeded
    good = ["abc", "a" * 63, "my.bucket-1", "0ab", "1.2.3", "a-b.c-d"]
    for name in good:
        r = c.raw("PUT", "/%s/key" % name, b"ok")
        assert r.status == 200, (name, r)
        assert c.get(name, "key").body == b"ok"
    still_serving(server, c, valid_buckets=["bkt"] + good)


def send_head_and_read(port, data, timeout=10.0):
    raw, closed = raw_exchange(port, data, read_timeout=timeout)
    return status_of(raw), raw, closed


def test_oversize_header_gets_4xx(seeded):
    server, c = seeded
    req = b"GET /bkt/keep HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    status, raw, closed = send_head_and_read(server.port, req)
    assert status is not None and 400 <= status < 500, raw[:200]
    still_serving(server, c)


def test_oversize_request_line_gets_4xx(seeded):
    server, c = seeded
    req = b"GET /bkt/" + b"k" * 100_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    status, raw, closed = send_head_and_read(server.port, req)
    assert status is not None and 400 <= status < 500, raw[:200]
    still_serving(server, c)


@pytest.mark.parametrize(
    "req",
    [
        b"GARBAGE\r\n\r\n",
        b"\x00\x01\x02\xff\xfe\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"PUT /bkt/k HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"PUT /bkt/k HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"GET bkt/keep HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /bkt/keep HTTP/7.0\r\nHost: x\r\n\r\n",
        b"\r\n\r\n\r\n" + b"\xff" * 3000,
    ],
    ids=["word", "binary", "no-target", "header-no-colon", "cl-not-number", "cl-negative", "relative-target",
         "bad-version", "junk"],
)
def test_garbage_gets_400_or_close(seeded, req):
    server, c = seeded
    status, raw, closed = send_head_and_read(server.port, req, timeout=5.0)
    if status is None:
        assert closed and raw == b"", "neither a response nor a close: %r" % raw[:200]
    else:
        assert 400 <= status < 500, raw[:200]
    still_serving(server, c)


def test_many_headers(seeded):
    server, c = seeded
    req = b"GET /bkt/keep HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(500)) + b"\r\n"
    status, raw, closed = send_head_and_read(server.port, req)
    # either served or refused with a 4xx, never a 5xx or a hang
    assert status is not None and (status == 200 or 400 <= status < 500), raw[:200]
    still_serving(server, c)


def test_http10_without_host(seeded):
    server, c = seeded
    status, raw, closed = send_head_and_read(server.port, b"GET /bkt/keep HTTP/1.0\r\n\r\n")
    assert status == 200, raw[:200]
    assert raw.endswith(b"still here")
    still_serving(server, c)


def test_pipelined_requests(seeded):
    server, c = seeded
    one = b"GET /bkt/keep HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /bkt/keep HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    full = read_until_close(server.port, one * 3 + last)
    assert full.count(b"HTTP/1.1 200") == 4, full[:400]
    assert full.count(b"still here") == 4
    still_serving(server, c)


def read_until_close(port, data, timeout=10.0):
    """Sends data, returns everything received until the server closes (bounded by timeout and 1 MiB)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(buf) < 1 << 20:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return buf
    finally:
        s.close()


def test_body_on_get_and_delete_is_harmless(seeded):
    server, c = seeded
    r = c.raw("GET", "/bkt/keep", b"unexpected body")
    assert r.status in (200, 400), r
    if r.status == 200:
        assert r.body == b"still here"
    still_serving(server, c)
