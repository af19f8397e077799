"""test_http_expect.py - Expect: 100-continue, and what is answered before the body.

A client that sends Expect: 100-continue waits for "100 Continue" before it
uploads the body; a request refused on its head alone should be refused
before that, so that the body never crosses the network.

What storaged (on h2o 2.2.5) does:
  - A Content-Length over server.max_object_size is answered 413 at header
    time, before any 100 Continue (h2o's max_request_entity_size, which
    storaged sets to max_object_size): the body is never sent.
  - An Expect other than 100-continue is answered 417.
  - Every other refusal (invalid bucket, key too long, wrong method, missing
    or wrong token) comes from storaged's handler, which h2o 2.2.5 calls only
    once the whole body is buffered: lib/http1.c handle_incoming_request()
    writes "HTTP/1.1 100 Continue" as soon as the head parses and
    create_entity_reader() accepted the length, and the handler runs from
    on_entity_read_complete() -> process_request() -> h2o_process_request().
    There is no hook between the two in 2.2.5 (a streaming request body API
    arrived in h2o 2.3). The strict xfail below records it.
"""

import socket
import subprocess
import time

import pytest

LIMIT = 1 << 20
CONFIG = "server:\n  max_object_size: %d\n" % LIMIT


def head_reply(port, head, wait=1.0):
    """Sends a request head only; returns what the server sent within `wait` seconds."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(head)
        got = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and b"\r\n\r\n" not in got:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(4096)
            except socket.timeout:
                break
            if not chunk:
                break
            got += chunk
        return got
    finally:
        s.close()


def put_head(path, length, extra=""):
    return ("PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nExpect: 100-continue\r\n%s\r\n" %
            (path, length, extra)).encode()


def test_over_the_size_limit_refused_before_continue(make_server):
    srv = make_server(config=CONFIG)
    got = head_reply(srv.port, put_head("/bkt/key", LIMIT + 1))
    assert got.startswith(b"HTTP/1.1 413 "), got
    assert b"100 Continue" not in got, got


def test_curl_uploads_nothing_over_the_limit(make_server, tmp_path):
    srv = make_server(config=CONFIG)
    big = tmp_path / "big"
    big.write_bytes(b"\0" * (LIMIT + 1))
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_upload}", "-T", str(big), "-H",
                          "Expect: 100-continue", "http://127.0.0.1:%d/bkt/key" % srv.port],
                         capture_output=True, timeout=60, check=True)
    status, uploaded = out.stdout.decode().split()
    assert status == "413" and int(uploaded) == 0, out.stdout


def test_unknown_expectation_is_417(server):
    got = head_reply(server.port, ("PUT /bkt/key HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: something\r\n\r\n"
                                   ).encode())
    assert got.startswith(b"HTTP/1.1 417 "), got


def test_within_the_limit_continues_and_stores(server, client):
    assert client.create_bucket("bkt").status == 200
    got = head_reply(server.port, put_head("/bkt/key", 10))
    assert got.startswith(b"HTTP/1.1 100 Continue"), got


@pytest.mark.xfail(strict=True, reason="h2o 2.2.5 sends 100 Continue before any handler sees the request "
                   "(lib/http1.c handle_incoming_request); refusing on the head alone needs h2o >= 2.3 or a patch")
def test_invalid_bucket_refused_before_continue(server):
    got = head_reply(server.port, put_head("/BAD_bucket/key", 10 << 20))
    assert got.startswith(b"HTTP/1.1 400 "), got
