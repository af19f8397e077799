"""test_bench_s3sign.py - the requests tests/bench/s3sign.py writes for the s3 benchmark phase are what storaged
accepts: each signed PUT and GET answers 200 and stores the body s3req.lua sends, the --native ones go to the
native API, and a wrong secret is refused (403 SignatureDoesNotMatch). Each request is sent as s3req.lua builds it
(the line's fields joined by CRLF, Content-Length and the body of FILE.body)."""

import os
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIGN = os.path.join(ROOT, "tests", "bench", "s3sign.py")
AK = "AKIDBENCHSIGN"
SECRET = "bench/s3cr3t+KEY"


@pytest.fixture
def srv(make_server):
    return make_server(config="s3:\n  credentials:\n    - access_key: %s\n      secret_key: %s\n" % (AK, SECRET))


def sign(srv, tmp_path, name, method, keys, count, *extra, secret=SECRET):
    out = str(tmp_path / name)
    subprocess.run([sys.executable, SIGN, "--host", "%s:%d" % (srv.host, srv.port), "--method", method, "--keys", keys,
                    "--count", str(count), "--size", "4096", "--out", out, "--access-key", AK, "--secret", secret] +
                   list(extra), check=True, timeout=60)
    with open(out) as f:
        lines = f.read().splitlines()
    with open(out + ".body", "rb") as f:
        body = f.read()
    return lines, body


def send_raw(srv, line, body):
    """One request as s3req.lua sends it; returns (status, response text)."""
    fields = line.split("\t")
    head = fields[0] + " HTTP/1.1\r\n" + "\r\n".join(fields[1:]) + "\r\n"
    if body:
        head += "Content-Length: %d\r\n" % len(body)
    head += "Connection: close\r\n\r\n"
    with socket.create_connection((srv.host, srv.port), timeout=10) as c:
        c.sendall(head.encode() + body)
        data = b""
        for _ in range(1000):  # bounded: the server closes after its answer
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]), data.decode(errors="replace")


def test_signed_requests_accepted(srv, tmp_path):
    srv.client().put("bench", "seed", b"x")  # the bucket (a native PUT makes it)
    lines, body = sign(srv, tmp_path, "put.req", "PUT", "bench/put/s%03d", 5)
    assert len(lines) == 5 and len(body) == 4096 and len(set(body)) > 1
    for i, line in enumerate(lines):
        assert "Authorization: AWS4-HMAC-SHA256 Credential=%s/" % AK in line
        status, text = send_raw(srv, line, body)
        assert status == 200, text
        assert srv.client().get("bench", "put/s%03d" % i).body == body
    lines, body = sign(srv, tmp_path, "get.req", "GET", "bench/put/s%03d", 5)
    assert body == b""
    for line in lines:
        status, text = send_raw(srv, line, body)
        assert status == 200, text
    # --check sends the first request itself
    sign(srv, tmp_path, "check.req", "GET", "bench/put/s%03d", 2, "--check")


def test_native_requests(srv, tmp_path):
    lines, body = sign(srv, tmp_path, "n.req", "PUT", "bench/put/n%03d", 3, "--native")
    assert not any("Authorization" in x or "x-amz-" in x for x in lines)
    for i, line in enumerate(lines):
        status, text = send_raw(srv, line, body)
        assert status == 200, text
        assert srv.client().get("bench", "put/n%03d" % i).body == body


def test_wrong_secret_refused(srv, tmp_path):
    srv.client().put("bench", "seed", b"x")
    lines, body = sign(srv, tmp_path, "bad.req", "PUT", "bench/put/bad%03d", 2, secret="not the secret")
    for i, line in enumerate(lines):
        status, text = send_raw(srv, line, body)
        assert status == 403 and "SignatureDoesNotMatch" in text, text
        assert srv.client().get("bench", "put/bad%03d" % i).status == 404
    with pytest.raises(subprocess.CalledProcessError):
        sign(srv, tmp_path, "bad-check.req", "PUT", "bench/put/bad%03d", 1, "--check", secret="not the secret")
