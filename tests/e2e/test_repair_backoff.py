"""test_repair_backoff.py - repair when a peer does not answer (storaged/repair.h, storaged/repair_backoff.h;
docs/operations.md "Repair from the other site", "A peer down").

Three sites: A ships to B and C. An object X whose only good copy besides A's is on B, and an object Y that C holds
too, are both damaged on A; B's storaged is then stopped with SIGSTOP (a hung peer: its kernel still accepts
connections, nothing answers, every fetch from it runs into storage.repair_timeout). C fetching X again and again
(its event is retried) queues background repairs of X that hang on B; they must not make a client's GET of Y wait:
the GET's repair runs in its own lane, asks C first (B is remembered as down) and answers the good bytes at once.
After X's repair failed, the background requests for it are dropped for a while (counted, said once per interval);
once B answers again X is repaired and C gets it; an operator's POST /admin/scrub?bucket&key within the back-off is
told so (429), and force=true asks anyway.

A repair does not wait for a hung peer while another could answer: a client GET whose repair asks the hung B first (B
not yet known down) asks C as well after the hedge delay and answers C's good bytes in about that delay.

Damage is written into the image files behind storaged's back (harness/damage.py). Every wait is bounded."""

import contextlib
import json
import os
import signal
import subprocess
import time

import pytest

from harness import comio
from harness.comio import expect_error
from harness.damage import find_extent, zero
from harness.replication import Site, comio_path, converge_or_fail, finish_sites, new_token, wait_until

BLOCK = 64 * 1024
LARGE = (1 << 20) + 4321  # shipped as a URL (above the inline thresholds): the target fetches it
TIMEOUT_S = 4  # what each repair that asks the hung B spends on it: most of this test's time
# no scheduled scrub; a short cap on the back-off so that the test sees the object retried once B is back
STORAGE = {"scrub_rate": "0", "repair_timeout": "%ds" % TIMEOUT_S, "repair_backoff": "8s"}
BACKOFF_SAID = "repair not tried again yet: it found no good copy a moment ago (back-off)"
PEER_DOWN = "repair: a peer did not answer; the next repairs ask it after the others"
HEDGED = "repair: a peer has not answered yet; asking the next one as well"
HEDGE_S = min(1.0, TIMEOUT_S / 4)  # REPAIR_HEDGE_MS, capped at a quarter of repair_timeout


def log_lines(site, msg):
    return [j for j in (json.loads(x) for x in site.storaged.log().splitlines() if x.startswith("{")) if j.get("msg") == msg]


def metric(c, name, **labels):
    return c.metrics().value(name, **labels)


def scrub_cli(site, *args):
    argv = [str(comio_path()), "scrub", "--url", site.url()] + list(args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, env=comio.sanitizer_env())


class Sites:
    """A ships to B and C, in that order: a repair on A asks B first while B is not known to be down (peer order:
    replication.targets as listed, those not known down first). Not started. hang_b() stops B's storaged with
    SIGSTOP, resume_b() lets it go on."""

    def __init__(self, tmp_path):
        tb, tc = new_token(), new_token()
        self.b = Site(tmp_path / "b", "site-b", accept_token=tb, extra={"storage": dict(STORAGE)})
        self.c = Site(tmp_path / "c", "site-c", accept_token=tc, extra={"storage": dict(STORAGE)})
        self.a = Site(tmp_path / "a", "site-a", extra={"storage": dict(STORAGE)},
                      repl={"targets": [{"name": "b", "url": self.b.url(), "token": tb},
                                        {"name": "c", "url": self.c.url(), "token": tc}]})
        self.b_stopped = False

    def hang_b(self):
        os.kill(self.b.storaged.proc.pid, signal.SIGSTOP)
        self.b_stopped = True

    def resume_b(self):
        os.kill(self.b.storaged.proc.pid, signal.SIGCONT)
        self.b_stopped = False


@contextlib.contextmanager
def three_sites(tmp_path):
    s = Sites(tmp_path)
    try:
        yield s
    finally:
        if s.b_stopped:
            s.resume_b()
        problems = finish_sites([s.a, s.b, s.c])
        if problems:
            raise AssertionError("teardown:\n" + "\n".join(problems))


@pytest.mark.long
def test_a_hung_peer_holds_up_neither_a_client_get_nor_the_repair_thread(tmp_path):
    with three_sites(tmp_path) as s:
        a, b, c = s.a, s.b, s.c
        b.start()
        c.start()
        a.start()
        ca, cc = a.client(), c.client()
        y = os.urandom(300_000)
        assert ca.put("bkt", "y", y).status == 200
        converge_or_fail(a, b)
        converge_or_fail(a, c)
        c.stop()  # X reaches B only
        x = os.urandom(LARGE)
        assert ca.put("bkt", "x", x).status == 200
        converge_or_fail(a, b)
        ia = a.workdir / "store.img"
        ex, ey = find_extent(ia, x), find_extent(ia, y)
        zero(ia, ex + 100, 4096)  # block 0: C's fetch answered 503 DataDamaged, a repair queued behind it
        zero(ia, ey + 2 * BLOCK + 7, 512)
        s.hang_b()

        c.start()
        # X's first repair asks B first (not known down yet), C as well after the hedge delay (C has no X), and runs
        # into the timeout on B: B is remembered as down
        wait_until(lambda: metric(ca, "comio_repair_failed_total") >= 1, 60, what="X's first repair failing on the hung B")
        assert [j["peer"] for j in log_lines(a, PEER_DOWN)] == ["b"]

        # a background request right after the failure is dropped (POST /admin/scrub?bucket&key asks one, as repld
        # does), counted every time, said once for the interval; C's retries meanwhile are dropped the same way.
        # The operator who asked is told so: 429 RepairBackoff with the last failure and when asking runs again.
        before = metric(ca, "comio_repair_skipped_total", reason="backoff")
        for _ in range(5):
            r = ca.raw("POST", "/admin/scrub?bucket=bkt&key=x")
            assert r.status == 429, r
            body = r.json()
            assert body["code"] == "RepairBackoff" and body["queued"] is False, body
            assert "no peer gave a good copy" in body["last_failure"], body
            assert 0 < body["retry_in_ms"] <= 8000 and 1 <= int(r.header("retry-after")) <= 8, r
        assert metric(ca, "comio_repair_skipped_total", reason="backoff") >= before + 5
        said = [j for j in log_lines(a, BACKOFF_SAID) if j["key"] == "x"]
        assert 1 <= len(said) <= metric(ca, "comio_repair_failed_total"), said
        expect_error(ca.raw("POST", "/admin/scrub?bucket=bkt&key=x&force=yes"), 400, "InvalidArgument")

        # comio scrub --object says the same (exit 5); with --force (force=true) it asks within the back-off: queued
        # (202), or joined to a repair of X queued or running already
        for bad in (["--force"], ["--object", "bkt"], ["--object", "bkt/"], ["--object", "bkt/x", "--now"]):
            assert scrub_cli(a, *bad).returncode == 2, bad
        r = scrub_cli(a, "--object", "bkt/x")
        assert r.returncode == 5 and "check of bkt/x not queued: its last repair found no good copy" in r.stdout, r
        n = metric(ca, "comio_repair_attempted_total")
        r = scrub_cli(a, "--object", "bkt/x", "--force")
        assert r.returncode == 0 and ("check of bkt/x queued" in r.stdout or "queued or running already" in r.stdout), r

        # a client GET of Y while a background repair of X hangs on B: wait until one starts (the count of attempts
        # grows: the forced one, or C's retry), then GET. It runs in the client lane, asks C first, and answers the
        # good bytes well before the timeout a repair of X spends on B.
        wait_until(lambda: metric(ca, "comio_repair_attempted_total") > n, 90, interval=0.02,
                   what="a background repair of X starting (forced, or C's fetch retried past the back-off)")
        t0 = time.monotonic()
        r = ca.get("bkt", "y")
        took = time.monotonic() - t0
        assert r.status == 200 and r.body == y, r.status
        assert took < TIMEOUT_S / 2, "the GET of Y took %.1f s, with a repair of X hanging on B" % took
        print("GET of Y while a repair of X hangs on B: %.3f s (repair_timeout %d s)" % (took, TIMEOUT_S))
        m = ca.metrics()
        assert m.value("comio_repair_repaired_total") == 1 and m.value("comio_repair_failed_total") >= 1, m.text
        # X itself, read by a client: its repair still asks B (the only peer holding it), so the client gets its 503
        # within the timeout; a GET right after shares that failure at once
        t0 = time.monotonic()
        expect_error(ca.get("bkt", "x"), 503, "DataDamaged")
        assert time.monotonic() - t0 < TIMEOUT_S * 2 + 5
        recent = metric(ca, "comio_repair_skipped_total", reason="recent_failure")
        t0 = time.monotonic()
        expect_error(ca.get("bkt", "x"), 503, "DataDamaged")
        assert time.monotonic() - t0 < 1.0 and metric(ca, "comio_repair_skipped_total", reason="recent_failure") == recent + 1

        # C's retries keep asking; most are dropped (backoff) or joined to the one running (duplicate), and the
        # back-off is said at most once per failed attempt, never once per request
        wait_until(lambda: metric(ca, "comio_repair_skipped_total", reason="backoff") >= before + 7, 120,
                   what="C's retried fetches dropped by the back-off")
        m = ca.metrics()
        said = [j for j in log_lines(a, BACKOFF_SAID) if j["key"] == "x"]
        assert len(said) <= m.value("comio_repair_failed_total") < m.value("comio_repair_skipped_total", reason="backoff")
        assert cc.get("bkt", "x").status == 404  # C never gets a damaged byte

        # B answers again: X's next repair (after at most the back-off's cap) takes B's copy, and C gets it
        s.resume_b()
        wait_until(lambda: metric(ca, "comio_repair_repaired_total") >= 2, 90, what="X repaired once B answers")
        wait_until(lambda: cc.get("bkt", "x").body == x, 60, what="C holding X")
        assert ca.get("bkt", "x").body == x
        converge_or_fail(a, c)
        assert "repair: a peer answers again" in a.storaged.log()


def test_a_client_get_is_repaired_from_the_next_peer_while_the_first_hangs(tmp_path):
    """Y and Z, on both B and C, damaged on A; B hung. A GET of Y asks B first, hears nothing for the hedge delay,
    marks B down, asks C as well and answers C's bytes well before the repair_timeout it would have spent on B; a GET
    of Z right after asks C first (B remembered as down): no hedge."""
    with three_sites(tmp_path) as s:
        a = s.a
        s.b.start()
        s.c.start()
        a.start()
        ca = a.client()
        y, z = os.urandom(300_000), os.urandom(200_000)
        assert ca.put("bkt", "y", y).status == 200
        assert ca.put("bkt", "z", z).status == 200
        converge_or_fail(a, s.b)
        converge_or_fail(a, s.c)
        ia = a.workdir / "store.img"
        ey, ez = find_extent(ia, y), find_extent(ia, z)
        zero(ia, ey + 2 * BLOCK + 7, 512)
        zero(ia, ez + 100, 512)
        s.hang_b()
        assert log_lines(a, PEER_DOWN) == []  # B is not known down: Y's repair asks it first

        t0 = time.monotonic()
        r = ca.get("bkt", "y")
        took = time.monotonic() - t0
        assert r.status == 200 and r.body == y, r.status
        print("GET of Y repaired while the first peer hangs: %.3f s (hedge %.1f s, repair_timeout %d s)"
              % (took, HEDGE_S, TIMEOUT_S))
        assert HEDGE_S * 0.9 <= took < TIMEOUT_S / 2, "the GET of Y took %.2f s" % took
        m = ca.metrics()
        assert m.value("comio_repair_repaired_total") == 1 and m.value("comio_repair_hedged_total") == 1, m.text
        assert m.value("comio_repair_failed_total") == 0, m.text
        hedged = log_lines(a, HEDGED)
        assert [(j["peer"], j["next"], j["key"]) for j in hedged] == [("b", "c", "y")], hedged
        assert [j["peer"] for j in log_lines(a, PEER_DOWN)] == ["b"]  # marked down as one that timed out
        repaired = [j for j in log_lines(a, "object repaired from a peer: the damaged extent is quarantined") if j["key"] == "y"]
        assert [j["peer"] for j in repaired] == ["c"], repaired

        # B is remembered as down: Z's repair asks C first and needs no hedge
        t0 = time.monotonic()
        r = ca.get("bkt", "z")
        took = time.monotonic() - t0
        assert r.status == 200 and r.body == z, r.status
        assert took < HEDGE_S, "the GET of Z took %.2f s" % took
        m = ca.metrics()
        assert m.value("comio_repair_repaired_total") == 2 and m.value("comio_repair_hedged_total") == 1, m.text
        assert ca.get("bkt", "y").body == y and ca.get("bkt", "z").body == z  # the good copies stay
