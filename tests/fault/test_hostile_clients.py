"""test_hostile_clients.py - torn and hostile clients against a storaged with
replication enabled: a client that disconnects mid-body (also above 32 MiB,
where h2o spills the body to a temporary file), one that announces more bytes
than it sends and half-closes, one that trickles its request, and hundreds of
idle connections. After each: no object appeared, no log record was written,
the space used is back where it was, and a normal client was served the whole
time, while the hostile connections were still open.

test_durability.py::test_torn_uploads_leave_nothing covers a plain close
mid-body below 32 MiB; this file covers the rest.

What the server does (h2o 2.2.5 HTTP/1):
  - It buffers a request body whole before storaged's handler runs; a body
    over 32 MiB goes to a memory-mapped temporary file, created in
    <meta_path>/bodies/ and unlinked at once. A client that goes away before
    its body is complete never reaches the handler: nothing is allocated,
    nothing logged, and the temporary file is closed with the connection.
  - A connection that trickles its head or body is kept for
    http1.req_timeout, which storaged sets to 300 s because it covers the
    whole request, body included (a large upload on a slow link must fit in
    it). An idle keep-alive connection is closed after that same 300 s.
    There is no cap on connections other than the file descriptor limit.
    Tricklers and idle connections each hold a socket and a small buffer,
    and cost the event loop nothing while they are silent, so other clients
    are served as usual.
"""

import os
import socket
import struct
import threading
import time
from pathlib import Path

from harness.comio import Client, expect_error, md5, raw_exchange, status_of, wait_for

BLOCK = 4096
SPILL = 32 * 1024 * 1024  # h2o's threshold for spilling a body to a temporary file
IDLE_CONNECTIONS = 250
NORMAL_TIMEOUT = 10.0  # a normal request that takes longer than this fails the test


def aligned(n):
    return (n + BLOCK - 1) // BLOCK * BLOCK


def log_state(c):
    """The figures a hostile client must not move: log records, objects, space used."""
    st = c.repl_status()
    m = c.metrics()
    return {
        "log_head_seq": st["log_head_seq"],
        "events_queued": st["events_queued"],
        "replog_records": m.value("comio_replog_records"),
        "objects": m.value("comio_objects"),
        "used": m.value("comio_store_used_bytes"),
    }


def settled_state(c, want, timeout=10.0):
    """Waits (bounded) until log_state equals want; returns the last state seen."""
    seen = []

    def same():
        seen.append(log_state(c))
        return seen[-1] == want

    wait_for(same, timeout)
    return seen[-1]


def spill_files(srv):
    """Temporary body files storaged holds open (h2o unlinks them at once: they show in /proc only)."""
    out = []
    fd_dir = Path("/proc/%d/fd" % srv.proc.pid)
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if "/bodies/h2o.b." in target:
            out.append(target)
    return out


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def put_head(path, length, extra=b""):
    return (b"PUT " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra +
            b"Content-Length: %d\r\n\r\n" % length)


def send_zeros(s, n, chunk=1 << 20):
    view = memoryview(bytes(min(n, chunk)))
    while n > 0:
        k = min(n, len(view))
        s.sendall(view[:k])
        n -= k


def still_open(s):
    """True when the server has not closed the connection (nothing to read, no EOF)."""
    s.setblocking(False)
    try:
        data = s.recv(1, socket.MSG_PEEK)
        return data != b""  # b"": the server closed it; data: it answered something
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        s.setblocking(True)


class Trickler(threading.Thread):
    """Sends `data` one byte every `interval` seconds, never the last byte, until stopped."""

    def __init__(self, port, data, interval=0.05):
        super().__init__(daemon=True)
        self.sock = connect(port)
        self.data = data
        self.interval = interval
        self.sent = 0
        self.error = None
        self.halt = threading.Event()

    def run(self):
        try:
            while not self.halt.is_set() and self.sent < len(self.data) - 1:
                self.sock.sendall(self.data[self.sent:self.sent + 1])
                self.sent += 1
                self.halt.wait(self.interval)
        except OSError as e:
            self.error = e

    def stop(self):
        self.halt.set()
        self.join(timeout=10)
        assert not self.is_alive()
        self.sock.close()


def normal_round(c, i, payloads):
    """One PUT, GET and HEAD of a normal client; returns the bytes it stored."""
    data = payloads[i % len(payloads)]
    key = "n%03d" % i
    r = c.put("served", key, data)
    assert r.status == 200, "normal PUT %s refused while attacked: %r" % (key, r)
    r = c.get("served", key)
    assert r.status == 200 and md5(r.body) == md5(data), "normal GET %s wrong while attacked: %r" % (key, r)
    assert c.head("served", "seed").status == 200
    return data


def test_served_while_attacked(repl_server):
    srv = repl_server
    c = srv.client(timeout=NORMAL_TIMEOUT)
    assert c.put("served", "seed", b"seed").status == 200
    base = log_state(c)
    hostile = []
    tricklers = []
    try:
        # idle connections of every kind: silent, half a request head, a PUT head
        # with part of its body
        for i in range(IDLE_CONNECTIONS):
            s = connect(srv.port)
            if i % 3 == 1:
                s.sendall(b"GET /served/seed HTTP/1.1\r\nHost: 12")
            elif i % 3 == 2:
                s.sendall(put_head("/served/idle%03d" % i, 10_000) + b"x" * 100)
            hostile.append(s)
        # a head trickled a byte at a time, and a body trickled a byte at a time
        tricklers.append(Trickler(srv.port, b"GET /served/seed HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"s" * 200 +
                                  b"\r\n\r\n"))
        tricklers.append(Trickler(srv.port, put_head("/served/trickled", 1000) + b"t" * 1000))
        for t in tricklers:
            t.start()

        # a normal client, on its keep-alive connection and on fresh ones, while they hang on
        payloads = [b"", b"small", os.urandom(70_000), os.urandom(150_000)]
        stored = 0
        rounds = 0
        # at least 40 rounds, and on until the tricklers are well under way (at most 300 rounds, 30 s)
        deadline = time.monotonic() + 30
        while rounds < 40 or (rounds < 300 and time.monotonic() < deadline and min(t.sent for t in tricklers) < 30):
            time.sleep(0.01)
            stored += aligned(len(normal_round(c, rounds, payloads)))
            if rounds % 10 == 0:
                fresh = Client(srv.host, srv.port, timeout=NORMAL_TIMEOUT)
                try:
                    assert fresh.get("served", "seed").body == b"seed"
                finally:
                    fresh.close()
            rounds += 1
        during = log_state(c)
        assert all(t.sent >= 30 and t.error is None for t in tricklers), [(t.sent, t.error) for t in tricklers]
        open_now = sum(still_open(s) for s in hostile + [t.sock for t in tricklers])
        print("normal rounds served: %d, with %d hostile connections open (of %d), tricklers at %r bytes" %
              (rounds, open_now, len(hostile) + len(tricklers), [t.sent for t in tricklers]))
        # within http1.req_timeout (300 s) h2o closes none of them
        assert open_now == len(hostile) + len(tricklers)
        assert srv.alive()
    finally:
        for t in tricklers:
            t.stop()
        for s in hostile:
            s.close()

    # exactly the normal client's PUTs were logged, nothing of the hostile ones
    want = dict(base, log_head_seq=base["log_head_seq"] + rounds, events_queued=base["events_queued"] + rounds,
                replog_records=base["replog_records"] + rounds, objects=base["objects"] + rounds,
                used=base["used"] + stored)
    assert during == want, (during, want)
    assert settled_state(c, want) == want
    keys, _ = c.list_all("served")
    assert keys == ["n%03d" % i for i in range(rounds)] + ["seed"], keys[:5]
    expect_error(c.get("served", "trickled"), 404, "NoSuchKey")
    assert c.health().status == 200


def test_content_length_larger_than_body(repl_server):
    srv = repl_server
    c = srv.client()
    assert c.put("clen", "keep", b"original").status == 200
    base = log_state(c)

    cases = [
        ("/clen/one-short", 1000, 999),  # one byte missing
        ("/clen/keep", 5_000_000, 4_000_000),  # an overwrite that never completes
        ("/clen/half", 10_000_000, 5_000_000),
        ("/newbucket/x", 1000, 10),  # would have created a bucket
    ]
    for path, declared, sent in cases:
        # half-close: the client then waits for an answer that must not be a success
        s = connect(srv.port)
        try:
            s.sendall(put_head(path, declared))
            send_zeros(s, sent)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(10)
            raw = b""
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    break
                raw += chunk
        finally:
            s.close()
        # h2o sees the end of the stream before the end of the body and closes without an answer
        assert raw == b"", (path, raw[:200])
        assert log_state(c)["log_head_seq"] == base["log_head_seq"], path

    # a complete PUT and a short one pipelined on one connection: the first only
    first = put_head("/clen/complete", 5) + b"whole"
    raw, closed = raw_exchange(srv.port, first + put_head("/clen/torn", 100) + b"z" * 50, read_timeout=5, shut_write=True)
    assert status_of(raw) == 200, raw[:200]

    want = dict(base, log_head_seq=base["log_head_seq"] + 1, events_queued=base["events_queued"] + 1,
                replog_records=base["replog_records"] + 1, objects=base["objects"] + 1, used=base["used"] + BLOCK)
    assert settled_state(c, want) == want
    assert c.get("clen", "keep").body == b"original"
    assert c.get("clen", "complete").body == b"whole"
    assert c.list_all("clen")[0] == ["complete", "keep"]
    for key in ("one-short", "half", "torn"):
        expect_error(c.get("clen", key), 404, "NoSuchKey")
    assert c.get("newbucket", "x").status == 404
    assert "newbucket" not in [b["name"] for b in c.raw("GET", "/").json()["buckets"]]


def test_disconnect_mid_body_above_spill_threshold(make_server):
    srv = make_server(replication=True, size="128MB")
    c = srv.client()
    assert c.put("big", "keep", b"original").status == 200
    base = log_state(c)
    assert spill_files(srv) == []

    declared, sent = 40 * 1024 * 1024, 36 * 1024 * 1024
    for path in ("/big/torn", "/big/keep"):  # a new key, and an overwrite
        s = connect(srv.port)
        try:
            s.sendall(put_head(path, declared))
            send_zeros(s, sent)
            # the body went past 32 MiB: h2o holds it in a temporary file now
            files = wait_for(lambda: spill_files(srv), timeout=10)
            assert files, "no spilled body file while %d bytes of the body are in" % sent
            print("spilled body held in %s" % files[0])
        finally:
            s.close()
        assert wait_for(lambda: spill_files(srv) == [], timeout=10), \
            "the spilled body was not released: %r" % spill_files(srv)
        assert log_state(c) == base

    expect_error(c.get("big", "torn"), 404, "NoSuchKey")
    assert c.get("big", "keep").body == b"original"

    # the same size sent whole is stored from the spilled body, byte for byte
    data = os.urandom(34 * 1024 * 1024)
    r = c.put("big", "whole", data)
    assert r.status == 200, r
    assert md5(c.get("big", "whole").body) == md5(data)
    want = dict(base, log_head_seq=base["log_head_seq"] + 1, events_queued=base["events_queued"] + 1,
                replog_records=base["replog_records"] + 1, objects=base["objects"] + 1,
                used=base["used"] + aligned(len(data)))
    assert settled_state(c, want) == want
    assert wait_for(lambda: spill_files(srv) == [], timeout=10)


def test_many_idle_connections_then_reset(repl_server):
    srv = repl_server
    c = srv.client(timeout=NORMAL_TIMEOUT)
    assert c.put("idle", "k", b"v").status == 200
    base = log_state(c)
    socks = [connect(srv.port) for _ in range(IDLE_CONNECTIONS)]
    try:
        for i, s in enumerate(socks[:50]):  # some send a complete request and then idle on keep-alive
            s.sendall(b"GET /idle/k HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        for s in socks[:50]:
            s.settimeout(10)
            assert status_of(s.recv(4096)) == 200
        assert c.get("idle", "k").body == b"v"
        assert c.put("idle", "k2", b"v2").status == 200
    finally:
        # abortive close (RST) of every one of them at once
        for s in socks:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
    assert c.health().status == 200
    assert c.get("idle", "k2").body == b"v2"
    want = dict(base, log_head_seq=base["log_head_seq"] + 1, events_queued=base["events_queued"] + 1,
                replog_records=base["replog_records"] + 1, objects=base["objects"] + 1, used=base["used"] + BLOCK)
    assert settled_state(c, want) == want
