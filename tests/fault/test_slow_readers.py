"""test_slow_readers.py - slow readers cost storaged a bounded amount of memory.

A GET of a large object is streamed: storaged reads a small window of the
object from the store, hands it to the socket, and reads the next window
only once the socket took the previous one. A client that reads nothing
therefore holds one window per connection, not the object (docs/storage.md,
docs/security.md: at most 64 KiB of object data per GET).

The test opens N connections with a tiny receive buffer, asks each for a
5 MiB object and reads nothing, then samples storaged's VmRSS until it
settles: the growth per connection must stay well below 1 MiB. Before the
window was bounded, each connection held a 1 MiB read buffer (about 1 MB of
RSS per slow reader: 500 readers took storaged from 58 MB to 532 MB)."""

import socket
import time

import pytest

from harness.comio import expect_ok_json, md5, memory_figures_mean_something, vm_rss

N = 200
OBJECT = 5 << 20
PER_CONNECTION_MAX = 256 << 10  # documented bound 64 KiB of data, plus the connection's own buffers
SETTLE_TIMEOUT = 20.0


def settled_rss(pid, timeout=SETTLE_TIMEOUT):
    """RSS once three samples 200 ms apart agree within 1 MiB (bounded by timeout)."""
    deadline = time.monotonic() + timeout
    samples = [vm_rss(pid)]
    while time.monotonic() < deadline:
        time.sleep(0.2)
        samples.append(vm_rss(pid))
        last = samples[-3:]
        if len(last) == 3 and max(last) - min(last) < (1 << 20):
            break
    return max(samples[-3:])


def slow_reader(port, path):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window stays small
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    return s


def test_slow_readers_hold_a_small_window(server, client):
    if not memory_figures_mean_something():
        pytest.skip("RSS under ThreadSanitizer is mostly shadow memory; the normal and ASan runs check this bound")
    data = bytes(range(256)) * (OBJECT // 256)
    assert client.create_bucket("slow").status == 200
    expect_ok_json(client.put("slow", "big", data))
    r = client.get("slow", "big")  # warm every path once
    assert r.status == 200 and md5(r.body) == md5(data)
    pid = server.proc.pid
    before = settled_rss(pid)

    readers = []
    try:
        for _ in range(N):
            readers.append(slow_reader(server.port, "/slow/big"))
        # every reader got its reply started (a few bytes arrive) before we measure
        for s in readers:
            assert s.recv(16), "no reply started"
        during = settled_rss(pid)
        growth = during - before
        per_conn = growth / N
        print("RSS before %.1f MiB, with %d slow readers %.1f MiB: %.0f KiB per connection" %
              (before / 2**20, N, during / 2**20, per_conn / 1024))
        assert per_conn < PER_CONNECTION_MAX, "%.0f KiB per slow reader (bound %d KiB)" % (per_conn / 1024,
                                                                                          PER_CONNECTION_MAX >> 10)
        # the server still serves others meanwhile
        r = client.get("slow", "big", {"Range": "bytes=0-99"})
        assert r.status == 206 and r.body == data[:100], r
    finally:
        for s in readers:
            s.close()
    # and a reader that finally reads gets the whole object
    s = slow_reader(server.port, "/slow/big")
    try:
        got = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            got += chunk
            head, sep, body = got.partition(b"\r\n\r\n")
            if sep and len(body) >= OBJECT:
                break
        head, _, body = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head[:100]
        assert md5(body[:OBJECT]) == md5(data)
    finally:
        s.close()
