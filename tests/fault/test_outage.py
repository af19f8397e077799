"""test_outage.py - the replica away for many retry windows under load: everything arrives, nothing fails.

B is stopped (SIGTERM, or SIGKILL) while A's writers run the recording
workload (recorder.MixedOps), stays down through several windows of
retry_attempts x retry_delay, and comes back; while A's repld is still
draining the backlog, B goes down a second time and comes back again. A
keeps taking writes all along. Nobody touches A: everything arrives,
events_failed in A's /admin/replication/status stays 0 at every look, and
A and B hold what the client was told.

tests/e2e/test_replication.py::test_replica_down_longer_than_retries is the
short version (one writer, PUTs and DELETEs, one outage after B had caught
up); this one adds concurrent writers, hot keys, large objects fetched from
A, PURGEs, an outage that begins mid-stream and one that begins mid-drain.
The SIGKILL outage runs a second time with compression: zstd and a
bandwidth_limit (harness/links.py).
"""

import time

import pytest

from harness.links import check_link, use_link
from harness.recorder import MixedOps, check_both_sites, damage, fault_seed, inline_threshold, op_counts
from harness.replication import Workload, Writer, snapshot, wait_until


A_REPL = {"batch_size": 50, "retry_attempts": 2, "retry_delay": "200ms"}
RETRY_WINDOW_S = 2 * 0.2
WINDOWS_DOWN = 8  # the first outage lasts this many retry windows (at least OUTAGE_MIN_S)
OUTAGE_MIN_S = 3.0
WRITERS = 3
CONVERGE_TIMEOUT = 120.0


def watch_outage(a, seconds, samples):
    """Looks at A's status every 0.2 s for `seconds`; appends each to `samples`. Fails at once if an
    event was recorded as failed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        st = a.status()
        samples.append(st)
        assert st["events_failed"] == 0, "an event failed during the outage: %s\n%s" % (st, a.list_failed()[:5])
        time.sleep(0.2)


def take_down(b, how):
    if how == "sigterm":
        rc = b.stop_storaged()
        assert rc == 0, "B's storaged exited %s after SIGTERM" % rc
    else:
        b.kill9_storaged()


@pytest.mark.parametrize("how, link", [("sigterm", "plain"), ("sigkill", "plain"), ("sigkill", "zstd")])
def test_replica_outage_under_load(sites, figures, monkeypatch, how, link):
    seed = fault_seed()
    print("outage: seed %d (replay with COMIO_FAULT_SEED=%d), %s link" % (seed, seed, link))
    a, b = sites(a_repl=use_link(monkeypatch, link, A_REPL))
    w = Workload()
    ops = MixedOps(w, "out", seed, inline_threshold(A_REPL), pause=0.002)
    writers = [Writer(a, ops.fn(t)) for t in range(WRITERS)]
    t_start = time.monotonic()
    for x in writers:
        x.start()
    samples = []
    try:
        wait_until(lambda: snapshot(b), 30, what=lambda: "B receiving before the outage\n" + a.describe())

        # 1: mid-stream, for many retry windows
        take_down(b, how)
        t_down = time.monotonic()
        watch_outage(a, max(WINDOWS_DOWN * RETRY_WINDOW_S, OUTAGE_MIN_S), samples)
        down_s = time.monotonic() - t_down
        st = samples[-1]
        print("B down %.1f s (%.0f retry windows): %s" % (down_s, down_s / RETRY_WINDOW_S, st))
        assert st["log_pending"] > 0 and st["remote"]["state"] != "up", \
            "A did not notice the outage (its remote is still up, nothing pending): %s" % st
        b.start_storaged()

        # 2: again, while A drains the backlog of the first
        replicated = samples[-1]["events_replicated"]
        st = wait_until(lambda: (lambda s: s if s["events_replicated"] > replicated else None)(a.status()), 60,
                        interval=0.01, what=lambda: "A's repld shipping to B again\n" + a.describe())
        pending = st["log_pending"]
        take_down(b, how)
        print("second outage with %d events pending on A" % pending)
        watch_outage(a, 2 * RETRY_WINDOW_S + 0.5, samples)
        b.start_storaged()
        watch_outage(a, 1.0, samples)
    finally:
        for x in writers:
            x.stop()
    for x in writers:
        x.join_checked(60)
    counts = op_counts(w)
    verdict_a, verdict_b, converge_s = check_both_sites(w, a, b, seed, CONVERGE_TIMEOUT)
    st = wait_until(lambda: (lambda s: s if s["events_pending"] == 0 else None)(a.status()), 30,
                    what=lambda: "A's log drained\n" + a.describe())
    assert st["events_failed"] == 0 and a.list_failed() == [], st
    t = check_link(a, b, link)
    peak = max(s["log_pending"] for s in samples)
    figures(seed=seed, how=how, link=link, wire_ratio=t["wire_bytes"] / t["payload_bytes"] if t else 1.0,
            down_s=down_s, retry_windows=int(down_s / RETRY_WINDOW_S), acked=counts["acked"],
            unknown=counts["unknown"], peak_pending=peak, pending_at_second=pending, **damage(verdict_a, verdict_b), events_failed=st["events_failed"],
            converge_s=converge_s, events_per_s=st["events_replicated"] / (time.monotonic() - t_start))
