"""test_wan_link.py - the test link (harness/relay.py) and replication across it.

The relay is this suite's WAN (the kernel here has no netem): its own delay and
rate are checked first, against a plain loopback sink, so that what the later
tests measure through it is the link that was asked for.

  test_relay_*                      delay, rate cap, seeded resets, one link both ways
  test_drain_over_50ms_next_to_loopback
                                    batches grow with the backlog; both drains converge
  test_bandwidth_limit_holds_...    bandwidth_limit with 8 workers and fetches at once, measured
                                    by the relays' own byte counts and clocks (within 10%)
  test_sighup_changes_the_...       a new limit on SIGHUP; a bad config refused and named
  test_compression_and_limit_...    zstd and a limit through a link that resets connections

Rates are asserted only where the figure is the feature (the relay's own, and
the bandwidth limit: a cap that does not hold is the bug); drain rates are
printed, not asserted.
"""

import socket
import threading
import time

from harness.relay import Relay, parse_rate


class _Sink:
    """A loopback server that reads everything and, for each b"?" byte, answers b"!"."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.received = 0
        self.done_at = None
        self.expect = None
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        c, _ = self.lsock.accept()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        while True:
            try:
                data = c.recv(1 << 20)
            except OSError:  # the relay reset the connection (drops)
                break
            if not data:
                break
            if data.endswith(b"?"):
                c.sendall(b"!")
            self.received += len(data)
            if self.expect is not None and self.received >= self.expect:
                self.done_at = time.monotonic()
                self.done.set()
        c.close()


def _through(relay, sink):
    s = socket.create_connection(("127.0.0.1", relay.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    return s


def _send(relay, nbytes):
    sink = _Sink()
    relay.target_port = sink.port
    sink.expect = nbytes
    s = _through(relay, sink)
    block = b"x" * (1 << 20)
    t0 = time.monotonic()
    left = nbytes
    while left > 0:
        n = min(left, len(block))
        s.sendall(block[:n])
        left -= n
    assert sink.done.wait(120), (sink.received, nbytes)
    s.close()
    return sink.done_at - t0


def test_parse_rate():
    assert parse_rate("200Mbit") == 25e6
    assert parse_rate("20MB/s") == 20e6
    assert parse_rate("1MiB/s") == 1 << 20
    assert parse_rate("0") == 0


def test_relay_delay_is_what_was_asked(figures):
    sink = _Sink()
    relay = Relay(sink.port, one_way=0.025)
    try:
        s = _through(relay, sink)
        rtts = []
        for _ in range(10):
            t0 = time.monotonic()
            s.sendall(b"?")
            assert s.recv(1) == b"!"
            rtts.append(time.monotonic() - t0)
        s.close()
    finally:
        relay.close()
    rtts.sort()
    figures(rtt_min_ms=round(rtts[0] * 1e3, 2), rtt_median_ms=round(rtts[5] * 1e3, 2))
    assert 0.050 <= rtts[0] <= 0.050 * 1.04, rtts  # the delay is a floor, and at most a few % above it
    assert rtts[5] <= 0.050 * 1.10, rtts


def test_relay_rate_is_what_was_asked(figures):
    relay = Relay(0, one_way=0.025, rate="100Mbit")
    try:
        nbytes = 40 << 20
        seconds = _send(relay, nbytes)
        # the relay counts a chunk once its send has returned, which may be just after the sink has it
        deadline = time.monotonic() + 5
        st = relay.stats()
        while st["bytes_to_target"] < nbytes and time.monotonic() < deadline:
            time.sleep(0.01)
            st = relay.stats()
    finally:
        relay.close()
    want = parse_rate("100Mbit")
    measured = st["bytes_to_target"] / st["seconds"]
    figures(asked_mbit=want * 8 / 1e6, relay_mbit=round(measured * 8 / 1e6, 1),
            end_to_end_mbit=round(nbytes / seconds * 8 / 1e6, 1))
    assert st["bytes_to_target"] == nbytes
    assert abs(measured - want) <= 0.03 * want, (measured, want)


def test_relay_uncapped_carries_well_over_200mbit(figures):
    relay = Relay(0, one_way=0.025)
    try:
        nbytes = 400 << 20
        seconds = _send(relay, nbytes)
    finally:
        relay.close()
    mbit = nbytes / seconds * 8 / 1e6
    figures(uncapped_mbit_over_50ms=round(mbit))
    assert mbit > 400, mbit  # the 200 Mbit/s benchmark link must be the cap, never the relay


def test_relay_drops_connections_after_seeded_byte_counts():
    counts = []
    for _ in range(2):
        relay = Relay(0, drop_every=1 << 20, seed=7)
        try:
            sink = _Sink()
            relay.target_port = sink.port
            s = _through(relay, sink)
            sent = 0
            try:
                for _ in range(64):
                    s.sendall(b"y" * 65536)
                    sent += 65536
                    time.sleep(0.001)
            except OSError:
                pass
            deadline = time.monotonic() + 10
            while relay.drops == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert relay.drops == 1, relay.stats()
            counts.append(relay.stats()["bytes_to_target"])
        finally:
            relay.close()
    assert (1 << 19) <= counts[0] <= (3 << 19) + 65536 * 4, counts


# ---- replication across the relay ----------------------------------------------------------------------------------

import concurrent.futures  # noqa: E402

from harness.measure import check_nothing_failed, wait_drained  # noqa: E402
from harness.replication import Workload, comio_diff, payload  # noqa: E402
import random  # noqa: E402

DRAIN_EVENTS = 4000
EVENT_BYTES = 4096


def _backlog(site, w, bucket, n, rng, size=EVENT_BYTES, threads=8):
    """n PUTs of `size` bytes on `site` with repld stopped, from `threads` clients; all acknowledged."""
    clients = [site.client() for _ in range(threads)]
    bodies = [payload("%s%d" % (bucket, i), size, rng) for i in range(64)]

    def put(t):
        for i in range(t, n, threads):
            key = "k%06d" % i
            r = w.put(clients[t], bucket, key, bodies[i % len(bodies)])
            assert r is not None and r.status == 200, (key, r)

    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        list(ex.map(put, range(threads)))


def _drain(a, w, bucket, n, rng):
    a.stop_repld()
    _backlog(a, w, bucket, n, rng)
    t0 = time.monotonic()
    a.start_repld()
    wait_drained(a, 120)
    return n / (time.monotonic() - t0)


def test_drain_over_50ms_next_to_loopback(sites, figures):
    """A backlog of 4 KiB PUTs drains over the 50 ms relay, and the same backlog on loopback between two
    other sites; both converge (comio diff) to what the clients were told."""
    a, b = sites(start=False)
    la, lb = sites(start=False)
    to_b = Relay(b.port, one_way=0.025)
    to_a = Relay(a.port, one_way=0.025)
    try:
        a.repl.update({"remote_url": to_b.url, "workers": 5})
        a.extra.setdefault("server", {})["public_url"] = to_a.url
        a.write_config()
        la.repl.update({"workers": 5})
        la.write_config()
        for s in (b, a, lb, la):
            s.start()
        rng = random.Random(15)
        w, lw = Workload(), Workload()
        wan = _drain(a, w, "wan", DRAIN_EVENTS, rng)
        loop = _drain(la, lw, "loop", DRAIN_EVENTS, rng)
        for (x, y, wl) in ((a, b, w), (la, lb, lw)):
            assert comio_diff(x, y)[0] == []
            assert not wl.check(y, "B")
            check_nothing_failed(x)
        figures(events=DRAIN_EVENTS, wan_events_per_s=round(wan), loopback_events_per_s=round(loop),
                wan_over_loopback=round(wan / loop, 2), connections_to_b=to_b.connections)
    finally:
        to_b.close()
        to_a.close()


# ---- the bandwidth limit -------------------------------------------------------------------------------------------

import os  # noqa: E402
import signal  # noqa: E402

from harness.replication import wait_until  # noqa: E402

LARGE = 256 * 1024  # above the harness's inline_threshold (64KB): B fetches it from A, through to_a


def _mixed_backlog(site, w, bucket, nbytes, rng, threads=8):
    """About nbytes of PUTs on `site`: small ones (batched) and large ones (fetched), random bytes."""
    clients = [site.client() for _ in range(threads)]
    sizes = []
    total = 0
    while total < nbytes:
        size = LARGE if len(sizes) % 4 == 0 else rng.randrange(2048, 16384)
        sizes.append(size)
        total += size
    bodies = {s: os.urandom(s) for s in set(sizes)}

    def put(t):
        for i in range(t, len(sizes), threads):
            r = w.put(clients[t], bucket, "k%06d" % i, bodies[sizes[i]])
            assert r is not None and r.status == 200, r

    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        list(ex.map(put, range(threads)))
    return total


def _rate_to_b(to_b, to_a):
    """Bytes/s that crossed from A to B, by the relays' own counts and clocks: the batches (to B) and the
    large objects B fetched (from A), over the span from the first to the last byte of either."""
    sb, sa = to_b.stats(), to_a.stats()
    first = min(t for t in (to_b.first_byte_at, to_a.first_byte_at) if t is not None)
    last = max(t for t in (to_b.last_byte_at, to_a.last_byte_at) if t is not None)
    return (sb["bytes_to_target"] + sa["bytes_from_target"]) / (last - first)


def _limited_pair(sites, limit, workers=8):
    a, b = sites(start=False)
    to_b, to_a = Relay(b.port, one_way=0.005), Relay(a.port, one_way=0.005)
    a.repl.update({"remote_url": to_b.url, "workers": workers, "bandwidth_limit": limit})
    a.extra.setdefault("server", {})["public_url"] = to_a.url
    a.write_config()
    b.start()
    a.start()
    return a, b, to_b, to_a


def _limited_drain(a, w, bucket, nbytes, rng, to_b, to_a):
    a.stop_repld()
    _mixed_backlog(a, w, bucket, nbytes, rng)
    to_b.reset_counters()
    to_a.reset_counters()
    a.start_repld()
    wait_drained(a, 120)
    return _rate_to_b(to_b, to_a)


def test_bandwidth_limit_holds_with_many_workers_and_fetches(sites, figures):
    """8 workers posting batches and B fetching large objects at once share one 40 Mbit/s limit."""
    a, b, to_b, to_a = _limited_pair(sites, "40Mbit")
    try:
        w = Workload()
        rate = _limited_drain(a, w, "cap", 20_000_000, random.Random(40), to_b, to_a)
        assert comio_diff(a, b)[0] == []
        assert not w.check(b, "B")
        check_nothing_failed(a)
        limit = 40e6 / 8
        st = a.repld_status()["targets"][0]
        figures(limit_mbit=40, measured_mbit=round(rate * 8 / 1e6, 2), fetch_bytes=to_a.bytes_from_target,
                batch_bytes=to_b.bytes_to_target, status_limit=st["bandwidth_limit_bytes_per_s"])
        assert st["bandwidth_limit_bytes_per_s"] == limit
        assert to_a.bytes_from_target > 1_000_000 and to_b.bytes_to_target > 1_000_000  # both kinds crossed
        assert abs(rate - limit) <= 0.10 * limit, (rate, limit)
    finally:
        to_b.close()
        to_a.close()


def test_sighup_changes_the_bandwidth_limit(sites, figures):
    """A new bandwidth_limit in the config takes effect on SIGHUP to repld, without a restart."""
    a, b, to_b, to_a = _limited_pair(sites, "16Mbit")
    try:
        w = Workload()
        rng = random.Random(16)
        slow = _limited_drain(a, w, "slow", 6_000_000, rng, to_b, to_a)
        a.repl["bandwidth_limit"] = "64Mbit"
        a.write_config()
        pid = a.repld.proc.pid
        os.kill(pid, signal.SIGHUP)
        wait_until(lambda: a.repld_status()["targets"][0]["bandwidth_limit_bytes_per_s"] == 8_000_000, 10,
                   what="the new limit in repld's status")
        a.stop_repld()
        fast = _limited_drain(a, w, "fast", 24_000_000, rng, to_b, to_a)
        assert comio_diff(a, b)[0] == []
        assert not w.check(b, "B")
        figures(slow_mbit=round(slow * 8 / 1e6, 2), fast_mbit=round(fast * 8 / 1e6, 2))
        assert abs(slow - 2e6) <= 0.10 * 2e6, slow
        assert abs(fast - 8e6) <= 0.10 * 8e6, fast

        # a config with an error is not applied: the log names file, line and key, the limit in force stays
        a.repl["bandwidth_limit"] = "64"  # bits or bytes? refused
        a.write_config()
        for daemon in (a.storaged, a.repld):
            os.kill(daemon.proc.pid, signal.SIGHUP)
        for daemon in (a.storaged, a.repld):
            wait_until(lambda: "config not reloaded" in daemon.log(), 10, what="the bad config refused on SIGHUP")
            line = [x for x in daemon.log().splitlines() if "config not reloaded" in x][-1]
            assert "%s:" % a.config_path in line and "replication.bandwidth_limit" in line and "'64'" in line, line
            assert daemon.alive()
        a.repl["bandwidth_limit"] = "64Mbit"  # `repld --status` reads the config too
        a.write_config()
        assert a.repld_status()["targets"][0]["bandwidth_limit_bytes_per_s"] == 8_000_000
    finally:
        to_b.close()
        to_a.close()


def _text(i, size, rng):
    """Log-like lines: compressible, as the issue's text-like objects are."""
    words = ["GET", "PUT", "/api/v1/items", "200", "404", "user=%d" % rng.randrange(1000), "latency_ms=", "ok", "error"]
    out = []
    n = 0
    while n < size:
        line = "%08d %s %s\n" % (i, " ".join(rng.choice(words) for _ in range(8)), rng.randrange(10 ** 6))
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def test_compression_and_limit_converge_through_a_link_that_drops(sites, figures):
    """zstd and a bandwidth limit on, through a 20 ms relay that resets connections every ~300 KB: every
    acknowledged write arrives, nothing is counted failed, comio diff finds no difference."""
    a, b = sites(start=False)
    to_b = Relay(b.port, one_way=0.01, drop_every=300_000, seed=1515)
    to_a = Relay(a.port, one_way=0.01, drop_every=300_000, seed=5151)
    try:
        a.repl.update({"remote_url": to_b.url, "workers": 4, "bandwidth_limit": "80Mbit", "compression": "zstd",
                       "retry_delay": "100ms"})
        a.extra.setdefault("server", {})["public_url"] = to_a.url
        a.write_config()
        b.start()
        a.start()
        rng = random.Random(99)
        w = Workload()
        ca = a.client()
        for i in range(600):
            size = LARGE if i % 10 == 0 else rng.randrange(1024, 16384)
            body = _text(i, size, rng) if i % 3 else os.urandom(size)
            r = w.put(ca, "drop", "k%04d" % i, body)
            assert r is not None and r.status == 200, r
            if i % 25 == 24:
                r = w.delete(ca, "drop", "k%04d" % (i - 3))
                assert r is not None and r.status == 204, r
        wait_drained(a, 120)
        wait_until(lambda: comio_diff(a, b)[0] == [], 60, interval=0.5, what="comio diff to find nothing")
        assert not w.check(b, "B")
        check_nothing_failed(a)
        st = a.repld_status()["targets"][0]
        figures(drops=to_b.drops + to_a.drops, payload_bytes=st["payload_bytes"], wire_bytes=st["wire_bytes"])
        assert to_b.drops + to_a.drops >= 1, (to_b.stats(), to_a.stats())  # the link did drop connections
    finally:
        to_b.close()
        to_a.close()


def test_relay_reverse_shares_the_link():
    """Two relays on one link the other way round: the bytes one's target sends and the bytes the other's
    client sends share one 40 Mbit/s bottleneck (a site's batches out and the fetches it serves)."""
    fwd = Relay(0, rate="40Mbit")
    back = fwd.reverse(0)
    try:
        sink = _Sink()
        fwd.target_port = sink.port
        sink.expect = 10 << 20
        s = _through(fwd, sink)
        t0 = time.monotonic()
        th = threading.Thread(target=lambda: s.sendall(b"z" * (10 << 20)))
        th.start()
        # the reverse relay's target sends 10 MiB back to its client at the same time, on the same bottleneck
        src = socket.socket()
        src.bind(("127.0.0.1", 0))
        src.listen(1)
        back.target_port = src.getsockname()[1]
        c = socket.create_connection(("127.0.0.1", back.port))
        srv, _ = src.accept()
        th2 = threading.Thread(target=lambda: srv.sendall(b"w" * (10 << 20)))
        th2.start()
        got = 0
        while got < (10 << 20):
            d = c.recv(1 << 20)
            assert d
            got += len(d)
        assert sink.done.wait(60)
        seconds = max(sink.done_at, time.monotonic()) - t0
        th.join(10)
        th2.join(10)
        for x in (s, c, srv, src):
            x.close()
    finally:
        back.close()
        fwd.close()
    # 20 MiB over one 5 MB/s bottleneck: about 4.2 s; two bottlenecks would have taken half
    assert seconds >= 0.9 * (20 << 20) / 5e6, seconds
