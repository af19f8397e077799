"""test_fanout.py - one site shipping to two targets (replication.targets): A -> B and A -> C.

A target that is down never holds the other back; the log keeps what the slow
target has not acknowledged (per-target cursors, trimming at the slowest) and
the status shows it per target; the slow target catches up once it is back,
and the log then drains to empty. Every wait is bounded."""

import re
import subprocess

import pytest

from harness import comio
from harness.replication import Site, comio_path, converge_or_fail, finish_sites, new_token, target_status, wait_until


@pytest.fixture
def fanout(tmp_path):
    """(a, b, c): A ships to the targets "b" and "c". Nothing is started."""
    tb, tc = new_token(), new_token()
    b = Site(tmp_path / "b", "site-b", accept_token=tb)
    c = Site(tmp_path / "c", "site-c", accept_token=tc)
    a = Site(tmp_path / "a", "site-a",
             repl={"targets": [{"name": "b", "url": b.url(), "token": tb}, {"name": "c", "url": c.url(), "token": tc}]})
    sites = [a, b, c]
    try:
        yield a, b, c
    finally:
        problems = finish_sites(sites)
        if problems:
            pytest.fail("teardown:\n" + "\n".join(problems), pytrace=False)


def test_a_dead_target_never_holds_back_the_other_and_catches_up(fanout):
    a, b, c = fanout
    for s in (b, c, a):
        s.start()
    ac = a.client()
    for i in range(20):
        assert ac.put("fan", "first%02d" % i, b"x" * (100 + i)).status == 200
    converge_or_fail(a, b, timeout=60)
    converge_or_fail(a, c, timeout=60)
    st = a.repld_status()
    assert [t["name"] for t in st["targets"]] == ["b", "c"], st
    assert all(t["site"] in ("site-b", "site-c") for t in st["targets"]), st

    # C goes away: B keeps converging, A's log keeps what C has not had
    c.stop_storaged()
    pending_bytes = 0
    for i in range(30):
        body = b"y" * (1000 + i)
        pending_bytes += len(body)
        assert ac.put("fan", "second%02d" % i, body).status == 200
    for i in range(5):
        assert ac.delete("fan", "first%02d" % i).status == 204
    converge_or_fail(a, b, timeout=60)

    def c_held():
        s = a.repld_status()
        tb, tc = target_status(s, "b"), target_status(s, "c")
        return s if tb["events_pending"] == 0 and tc["events_pending"] >= 35 and tc["last_error"] else None

    st = wait_until(c_held, 60, what="B caught up while C's events wait in A's log")
    tb, tc = target_status(st, "b"), target_status(st, "c")
    assert tc["bytes_pending"] >= pending_bytes and tb["bytes_pending"] == 0, st
    assert tc["state"] == "backing_off" and tb["state"] == "up", st
    assert st["log_pending"] >= 35 and st["events_pending"] >= 35, st  # not trimmed: C still needs them
    assert st["remote"]["url"] == b.url(), st  # the seed's "remote" is the first target
    # storaged renders the same per-target figures
    hst = a.status()
    assert target_status(hst, "c")["events_pending"] == tc["events_pending"], hst
    # metrics: one sample per target
    m = ac.metrics()
    assert m.value("comio_replication_pending_events", target="c") >= 35, m.text
    assert m.value("comio_replication_pending_events", target="b") == 0, m.text
    assert m.value("comio_replication_remote_up", target="b") == 1, m.text
    assert m.value("comio_replication_remote_up", target="c") == 0, m.text
    # comio status: one block per target
    p = subprocess.run([str(comio_path()), "status", "--url", a.url()], capture_output=True, text=True, timeout=30,
                       env=comio.sanitizer_env())
    assert re.search(r"^target: +c, .*, backing_off$", p.stdout, re.M), p.stdout
    assert re.search(r"^target: +b, .*, up$", p.stdout, re.M), p.stdout
    assert p.returncode == 1 and "target c does not accept batches" in p.stdout, p.stdout

    # C is back: it catches up, and the log drains
    c.start_storaged()
    converge_or_fail(a, c, timeout=120)
    converge_or_fail(b, c, timeout=60)

    def drained():
        s = a.repld_status()
        return s if s["log_pending"] == 0 and all(t["events_pending"] == 0 for t in s["targets"]) else None

    st = wait_until(drained, 60, what="A's log drained")
    assert st["bytes_pending"] == 0 and st["events_failed"] == 0, st
    assert target_status(st, "c")["events_replicated"] >= 55 and target_status(st, "b")["events_replicated"] >= 55, st
    assert a.list_failed() == []


def test_the_seeds_remote_is_one_target_in_status_metrics_and_commands(sites):
    """Without replication.targets, remote_url is one target named after the URL's host: the status,
    the metrics and the failed-event commands show it as such, beside the seed's fields."""
    a, b = sites()
    ac = a.client()
    for i in range(10):
        assert ac.put("one", "k%d" % i, b"v" * (10 + i)).status == 200
    converge_or_fail(a, b)
    st = wait_until(lambda: (lambda s: s if s["events_pending"] == 0 and s["targets"][0]["site"] else None)(a.repld_status()),
                    30, what="A caught up and B's site id known")
    assert len(st["targets"]) == 1, st
    t = st["targets"][0]
    assert t["name"] == "127.0.0.1" and t["url"] == b.url() and t["state"] == "up", st
    assert t["site"] == "site-b", st  # from B's batch replies
    assert t["events_replicated"] == st["events_replicated"] >= 10 and t["events_pending"] == 0, st
    assert t["bytes_replicated"] == st["bytes_replicated"] and t["events_skipped"] == 0, st
    assert st["clock_skew_events"] == 0, st
    # storaged renders the target from LMDB when repld is down
    a.stop_repld()
    hst = a.status()
    assert hst["repld"] == "down" and hst["targets"][0]["name"] == "127.0.0.1", hst
    assert hst["targets"][0]["state"] == "unknown" and hst["targets"][0]["cursor"] == t["cursor"], hst
    m = ac.metrics()
    assert m.value("comio_replication_events_replicated_total", target="127.0.0.1") == t["events_replicated"], m.text
    assert m.value("comio_replication_events_replicated_total") == st["events_replicated"], m.text
    assert m.value("comio_replication_clock_skew_events_total") == 0, m.text
    assert b.client().metrics().value("comio_replication_clock_skew_events_total") == 0  # B applies: it counts skew too
    # --target: one target's failed events, and a clear error for a name that is not configured
    r = a.repld_cmd("--list-failed", "--target", "127.0.0.1")
    assert r.returncode == 0 and r.stdout == "", r
    r = a.repld_cmd("--retry-failed", "--target", "nosuch")
    assert r.returncode == 1 and "no target named 'nosuch'" in r.stderr, r
    r = a.repld_cmd("--status", "--target", "127.0.0.1")
    assert r.returncode == 2 and "--target goes with --list-failed or --retry-failed" in r.stderr, r
