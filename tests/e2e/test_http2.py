"""test_http2.py - HTTP/2 in cleartext (h2c), and how slow HTTP/2 clients are bounded.

storaged serves HTTP/2 over TLS (ALPN) and in cleartext, both with prior
knowledge and with "Upgrade: h2c" (docs/api.md). A connection that stalls
(no request in progress, or stopped inside a HEADERS block) is closed after
the HTTP/2 idle timeout, 10 s; at most 16 requests of one connection are
processed at once (h2o queues the rest), so a connection whose client reads
nothing holds at most 16 response windows of 64 KiB (docs/security.md).

The raw client here speaks just enough HTTP/2 (frames, a few HPACK literals)
to stall on purpose."""

import socket
import struct
import subprocess
import time

import pytest

from harness.comio import expect_ok_json, md5, memory_figures_mean_something, vm_rss

IDLE_TIMEOUT = 10.0
CLOSE_BOUND = 30.0  # generous: the machine may be busy
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, SETTINGS, GOAWAY = 0, 1, 4, 7
END_STREAM, END_HEADERS = 0x1, 0x4
SETTINGS_INITIAL_WINDOW_SIZE = 0x4


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def hpack_literal(index, value):
    """A header field as a literal without indexing, its name from the static table."""
    assert index < 15 and len(value) < 127
    return bytes([index]) + bytes([len(value)]) + value


def get_block(path):
    # :method GET (2), :scheme http (6), :path (4), :authority (1)
    return b"\x82\x86" + hpack_literal(4, path.encode()) + hpack_literal(1, b"127.0.0.1")


def h2_connect(port, settings=b""):
    s = socket.create_connection(("127.0.0.1", port), timeout=CLOSE_BOUND)
    s.sendall(PREFACE + frame(SETTINGS, 0, 0, settings))
    return s


def wait_closed(s, bound):
    """Reads (and drops) until the server closes; returns the seconds it took, or None past bound."""
    start = time.monotonic()
    while time.monotonic() - start < bound:
        s.settimeout(max(0.1, bound - (time.monotonic() - start)))
        try:
            if not s.recv(65536):
                return time.monotonic() - start
        except socket.timeout:
            return None
        except ConnectionResetError:
            return time.monotonic() - start
    return None


def curl(*args):
    out = subprocess.run(["curl", "-s", *args], capture_output=True, timeout=60, check=True)
    return out.stdout.decode()


def test_h2c_prior_knowledge_and_upgrade(server, client):
    assert client.create_bucket("htwo").status == 200
    base = "http://127.0.0.1:%d" % server.port
    out = curl("--http2-prior-knowledge", "-X", "PUT", "--data-binary", "over h2c", "-o", "/dev/null", "-w",
               "%{http_version} %{http_code}", base + "/htwo/prior")
    assert out == "2 200", out
    assert curl("--http2-prior-knowledge", base + "/htwo/prior") == "over h2c"
    out = curl("--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", base + "/htwo/prior")
    assert out == "2 200", out  # Upgrade: h2c


@pytest.mark.long
def test_stalled_headers_closed_while_others_served(server, client):
    assert client.create_bucket("htwo").status == 200
    expect_ok_json(client.put("htwo", "obj", b"served"))
    stalled = h2_connect(server.port)
    idle = h2_connect(server.port)
    try:
        # a HEADERS frame without END_HEADERS: the server waits for a CONTINUATION that never comes
        stalled.sendall(frame(HEADERS, END_STREAM, 1, b"\x82\x86"))
        time.sleep(0.5)
        # meanwhile others are served, over HTTP/1 and HTTP/2
        r = client.get("htwo", "obj")
        assert r.status == 200 and r.body == b"served", r
        assert curl("--http2-prior-knowledge", "http://127.0.0.1:%d/htwo/obj" % server.port) == "served"
        took = wait_closed(stalled, CLOSE_BOUND)
        assert took is not None, "a client stalled inside a HEADERS block was not closed within %.0f s" % CLOSE_BOUND
        took = wait_closed(idle, CLOSE_BOUND)
        assert took is not None, "an idle HTTP/2 connection was not closed within %.0f s" % CLOSE_BOUND
    finally:
        stalled.close()
        idle.close()


def test_streams_per_connection_bounded(server, client):
    """10 connections, each with 100 GETs of a 5 MiB object and a receive window of 0: every
    request processed holds one 64 KiB window, so at most 16 per connection may run at once."""
    if not memory_figures_mean_something():
        pytest.skip("RSS under ThreadSanitizer is mostly shadow memory; the normal and ASan runs check this bound")
    data = bytes(range(256)) * (5 << 12)
    assert client.create_bucket("htwo").status == 200
    expect_ok_json(client.put("htwo", "big", data))
    assert md5(client.get("htwo", "big").body) == md5(data)
    pid = server.proc.pid
    time.sleep(0.5)
    before = vm_rss(pid)
    conns = []
    try:
        for _ in range(10):
            s = h2_connect(server.port, struct.pack(">HI", SETTINGS_INITIAL_WINDOW_SIZE, 0))
            s.sendall(b"".join(frame(HEADERS, END_STREAM | END_HEADERS, 2 * i + 1, get_block("/htwo/big"))
                               for i in range(100)))
            conns.append(s)
        samples = []
        for _ in range(15):  # bounded: 3 s
            time.sleep(0.2)
            samples.append(vm_rss(pid))
        per_conn = (max(samples) - before) / len(conns)
        print("RSS growth per HTTP/2 connection: %.0f KiB" % (per_conn / 1024))
        assert per_conn < 3 << 20, "%.0f KiB per HTTP/2 connection that reads nothing" % (per_conn / 1024)
        r = client.get("htwo", "big", {"Range": "bytes=0-9"})
        assert r.status == 206 and r.body == data[:10], r
    finally:
        for s in conns:
            s.close()
