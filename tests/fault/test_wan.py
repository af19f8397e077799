"""test_wan.py - replication across a WAN link between two network namespaces.

Site A (storaged + repld) and site B (storaged) run in two network namespaces
joined by a veth pair (harness/netns.py): batches A -> B and B's fetches of large
objects from A cross that link, and only that link.

  test_wan_lag_and_drain[clean]  the bare link: baseline figures.
  test_wan_lag_and_drain[netem]  tc netem 50 ms delay and 1 % loss on both ends. Skipped, with the
                                 reason, where the kernel has no netem.
  test_wan_link_cut              `ip link set dev ... down` on B's end for longer than
                                 retry_attempts x retry_delay while A takes writes, then up.

Each records a workload (small PUTs, objects above inline_threshold, deletes),
converges, and checks B against what A acknowledged to the client, and that no
event was counted as failed. Figures are printed (pytest -s shows them): lag of
single PUTs (A's 200 to readable on B), drain rate of a backlog, time to
converge after the link is restored. Everything skips, with the reason, where
namespaces cannot be made (not root, no iproute2, no netns or veth).
"""

import json
import random
import time

import pytest

from harness import netns, replication
from harness.measure import (CONVERGE_TIMEOUT, LARGE, SMALL_MAX, check_converged, check_nothing_failed, measure_drain,
                             measure_lag, ms, pct, record_workload, wait_drained)
from harness.replication import Workload, payload

LAG_SAMPLES = 30
DRAIN_EVENTS = 300

IMPAIRMENTS = {"clean": None, "netem": ("delay", "50ms", "loss", "1%")}


@pytest.fixture
def wan(tmp_path):
    """wan(netem=None, a_repl=None) -> (link, a, b): a fresh WanLink (netem spec applied on both ends)
    with A shipping to B across it, both started. Skips when the machine cannot make the link or the
    netem. Sites are torn down, then the namespaces deleted, also when the test fails."""
    links, made = [], []

    def make(netem=None, a_repl=None):
        try:
            link = netns.WanLink.create()
        except netns.Unavailable as e:
            pytest.skip(str(e))
        links.append(link)
        if netem:
            try:
                link.netem(*netem)
            except netns.Unavailable as e:
                pytest.skip("%s; the netem run needs it (the link-cut run does not)" % e)
        a, b = netns.make_wan_pair(link, tmp_path / ("pair%d" % len(links)), a_repl=a_repl)
        made.extend([a, b])
        b.start()
        a.start()
        return link, a, b

    yield make
    problems = []
    try:
        for link in links:  # a test that failed during a cut: let repld finish its batches promptly
            for which in ("a", "b"):
                ns, dev = link.side(which)
                ns.ip("link", "set", "dev", dev, "up", check=False)
        problems = replication.finish_sites(made)
    finally:
        for link in links:
            problems += link.destroy()
    if problems:
        pytest.fail("WAN teardown:\n" + "\n".join(problems), pytrace=False)


# --- helpers ---------------------------------------------------------------------------------------------------------


def link_bytes(link):
    """Bytes sent by each end of the veth pair: {"a->b": n, "b->a": n}."""
    out = {}
    for which, name in (("a", "a->b"), ("b", "b->a")):
        ns, dev = link.side(which)
        stats = netns.run(["ip", "-n", ns.name, "-s", "-j", "link", "show", "dev", dev]).stdout
        out[name] = json.loads(stats)[0]["stats64"]["tx"]["bytes"]
    return out


# --- the tests --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("impairment", sorted(IMPAIRMENTS))
def test_wan_lag_and_drain(wan, impairment):
    link, a, b = wan(netem=IMPAIRMENTS[impairment])
    tag = "WAN %s (%s)" % (impairment, " ".join(IMPAIRMENTS[impairment] or ("bare veth",)))
    ok, rtt = link.probe(timeout=5.0)
    assert ok, "no TCP connection from A to B across %r: %s" % (link, rtt)
    print("\n%s: %r; TCP handshake A->B %s; qdiscs %s" % (tag, link, ms(rtt), link.qdiscs()))
    rng = random.Random(impairment)
    w = Workload()

    # A recorded workload, shipped while it is written.
    record_workload(w, a.client(), rng, "wan", small=300, large=4, deletes=30)
    t0 = time.monotonic()
    check_converged(w, a, b)
    print("%s: workload %s converged %.2f s after the last write" % (tag, w.summary(), time.monotonic() - t0))

    lags = measure_lag(a, b, "lag", rng, LAG_SAMPLES)
    print("%s: lag of a single 1 KiB PUT (A's 200 to readable on B), %d samples: p50 %s, p99 %s, max %s; "
          "%d samples over 500 ms" % (tag, len(lags), ms(pct(lags, 50)), ms(pct(lags, 99)), ms(max(lags)),
                                      sum(1 for x in lags if x > 0.5)))

    events, took = measure_drain(a, b, w, rng, "drain", DRAIN_EVENTS)
    print("%s: drained a backlog of %d events (%d objects above inline_threshold) in %.2f s after repld "
          "started: %.0f events/s" % (tag, events, max(1, events // 50), took, events / took))
    check_converged(w, a, b)
    st = check_nothing_failed(a)
    print("%s: events_replicated %d, events_failed %d; bytes sent on the link %s" %
          (tag, st["events_replicated"], st["events_failed"], link_bytes(link)))


def test_wan_link_cut(wan):
    attempts, delay = 3, 0.5
    link, a, b = wan(a_repl={"retry_attempts": attempts, "retry_delay": "500ms"})
    cut_for = 4.0
    assert cut_for > 2 * attempts * delay, "the cut must outlast the retry budget"
    ca, cb = a.client(), b.client()
    rng = random.Random(7)
    w = Workload()
    record_workload(w, ca, rng, "before", small=20, large=2, deletes=2)
    check_converged(w, a, b)

    link.set_up("b", False)
    t_cut = time.monotonic()
    ok, err = link.probe(timeout=0.5)
    assert not ok, "A still reaches B after 'ip link set dev %s down'" % link.dev_b
    print("\nlink cut: 'ip link set dev %s down' in %s; A -> B: %r" % (link.dev_b, link.b.name, err))

    # A takes writes while the link is down: small PUTs, one large object in 20, deletes.
    written, i = [], 0
    while time.monotonic() - t_cut < cut_for and i < 2000:
        key = "k%04d" % i
        if i % 10 == 9 and written:
            victim = written.pop(rng.randrange(len(written)))
            r = w.delete(ca, "during", victim)
            assert r is not None and r.status == 204, "DELETE during the cut: %r" % (r,)
        else:
            size = LARGE if i % 20 == 0 else rng.randrange(16, SMALL_MAX)
            r = w.put(ca, "during", key, payload(key, size, rng))
            assert r is not None and r.status == 200, "PUT during the cut: %r" % (r,)
            written.append(key)
        i += 1
        time.sleep(0.01)
    st = a.status()
    held = st["events_pending"]
    assert held > 0, "nothing pending on A at the end of the cut: were the writes shipped? %s" % st
    assert st["events_failed"] == 0, "events counted as failed during the cut: %s" % st
    assert cb.head("during", written[-1]).status == 404, "an object written during the cut is on B"
    print("link cut: %d requests to A during %.1f s down (retry budget %d x %.1f s); %d events pending; "
          "remote %s" % (i, time.monotonic() - t_cut, attempts, delay, held, st.get("remote")))

    link.set_up("b", True)
    t_up = time.monotonic()
    drained = wait_drained(a, CONVERGE_TIMEOUT)
    check_converged(w, a, b, sample=None)
    converged = time.monotonic() - t_up
    st = check_nothing_failed(a)
    print("link cut: after 'ip link set up': log drained in %.2f s, B converged in %.2f s; %s; "
          "events_replicated %d, events_failed %d" % (drained, converged, w.summary(), st["events_replicated"],
                                                       st["events_failed"]))
