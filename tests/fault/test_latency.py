"""test_latency.py - replication across a link with a 50 ms round trip, on any machine.

tc netem (test_wan.py) needs a kernel with sch_netem and root. This test gets
the round trip that matters to the protocol without either: every byte
between the sites goes through a loopback relay that holds it 25 ms in each
direction (DelayRelay), both ways, for batches A -> B and for B's fetches of
large objects from A (A's public_url points at a second relay). Packet loss
is not modelled: TCP hides it from the daemons as extra delay.

It records a workload (small and large PUTs, deletes), measures the lag of
single PUTs and the drain of a backlog, converges, checks B against what A
acknowledged, and that no event failed. Figures are printed; nothing is
asserted about speed.
"""

import queue
import random
import select
import threading
import time

from harness.replication import TcpProxy, Workload
from harness.measure import check_converged, check_nothing_failed, measure_drain, measure_lag, pct

ONE_WAY_S = 0.025
LAG_SAMPLES = 20
DRAIN_EVENTS = 2000


class DelayRelay(TcpProxy):
    """TcpProxy whose bytes arrive `one_way` seconds after they were sent, in order, without
    limiting throughput (a bandwidth-delay product's worth of bytes can be in flight)."""

    def __init__(self, target_port, one_way):
        self.one_way = one_way
        super().__init__(target_port)

    def _pipe(self, pair, src, dst):
        held = queue.Queue()

        def deliver():
            while True:
                item = held.get()
                if item is None:
                    return
                due, data = item
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                try:
                    dst.sendall(data)
                except OSError:
                    return

        writer = threading.Thread(target=deliver, daemon=True)
        writer.start()
        try:
            while not self.closed.is_set():
                r, _, _ = select.select([src], [], [], 0.1)
                if not r:
                    continue
                data = src.recv(65536)
                if not data:
                    break
                held.put((time.monotonic() + self.one_way, data))
        except (OSError, ValueError):
            pass
        finally:
            held.put(None)  # what is in flight still arrives, then the connection closes
            writer.join(timeout=10)
            self._drop(pair, reset=False)


def test_replication_over_a_50ms_round_trip(sites, figures):
    a, b = sites(start=False)
    to_b = DelayRelay(b.port, ONE_WAY_S)
    to_a = DelayRelay(a.port, ONE_WAY_S)
    try:
        a.repl["remote_url"] = to_b.url
        a.extra.setdefault("server", {})["public_url"] = to_a.url
        a.write_config()
        b.start()
        a.start()
        rng = random.Random(5050)
        w = Workload()

        lags = measure_lag(a, b, "rtt", rng, LAG_SAMPLES)
        events, seconds = measure_drain(a, b, w, rng, "rtt-drain", DRAIN_EVENTS)
        check_converged(w, a, b)
        st = check_nothing_failed(a)
        figures(rtt_ms=2 * ONE_WAY_S * 1e3, lag_p50_ms=round(pct(lags, 50) * 1e3, 1),
                lag_p99_ms=round(pct(lags, 99) * 1e3, 1), lag_max_ms=round(max(lags) * 1e3, 1),
                drain_events=events, drain_s=round(seconds, 2), drain_events_per_s=round(events / seconds),
                connections_to_b=to_b.connections, fetch_connections_to_a=to_a.connections,
                events_replicated=st["events_replicated"])
        # the relays carried the traffic: batches to B, and B's fetches of the large objects from A
        assert to_b.connections >= 1 and to_a.connections >= 1, (to_b.connections, to_a.connections)
    finally:
        to_b.close()
        to_a.close()
