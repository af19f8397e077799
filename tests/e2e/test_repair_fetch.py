"""test_repair_fetch.py - a damaged copy that a replica is fetching, and the verify-only fetch (storaged/handler_object.h
repair_behind, storaged/repl_verify.h; docs/operations.md "A damaged object a replica is fetching", docs/replication.md
"Failures").

A large object (shipped as a URL, not inline) damaged on the primary: the replica's fetch gets 503 DataDamaged (damage in
the first block) or a reply cut short (later), never a damaged byte, and the fetch endpoint queues a repair of the
primary's copy from its peers, so that the replica's retry gets the good bytes. When no peer holds the version the fetch
keeps failing, said once in a while, and repld keeps the event pending: never shipped damaged, never dropped; a new
write of the key then replicates. The verify-only fetch (`&verify=1`) reads the object off the event loop.

Damage is written into the image files behind storaged's back (harness/damage.py). Every wait is bounded."""

import json
import os
import subprocess
import threading
import time

from harness import comio
from harness.comio import expect_error
from harness.damage import damage, find_all, find_extent, read_at, zero
from harness.replication import Site, comio_path, converge_or_fail, finish_sites, new_token, presign, wait_until

BLOCK = 64 * 1024
# above the harness's inline_threshold (64 KB) and repld's default (1 MB): shipped as a URL, fetched by the target
LARGE = (1 << 20) + 4321
# no scheduled scrub: only the fetches find the damage; no repair back-off (test_repair_backoff.py tests it), so that
# each of the replica's retries runs a repair and the test need not wait out the back-off's intervals
STORAGE = {"scrub_rate": "0", "repair_timeout": "10s", "repair_backoff": "0"}
CLI_TIMEOUT = 120


def log_lines(site, msg):
    return [j for j in (json.loads(x) for x in site.storaged.log().splitlines() if x.startswith("{")) if j.get("msg") == msg]


def deep_diff(src, dst):
    """`comio diff --deep --json` of two sites: (exit code, document)."""
    r = subprocess.run([str(comio_path()), "diff", "--deep", "--json", "--source", src.url(), "--target", dst.url()],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", timeout=CLI_TIMEOUT,
                       env=comio.sanitizer_env())
    assert comio.sanitizer_report(r.stderr) is None, r.stderr
    assert r.returncode in (0, 1, 4), (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    return r.returncode, json.loads(r.stdout)


def scrub_status(c):
    r = c.raw("GET", "/admin/scrub")
    assert r.status == 200, r
    return r.json()


REPAIRED = "object repaired from a peer: the damaged extent is quarantined"
FAILED = "repair failed: the object stays damaged here"
DAMAGED = "object data damaged: a block does not match its checksum, the read failed"


def test_a_replica_fetching_a_damaged_copy_gets_it_repaired_from_another_peer(tmp_path):
    """A ships to B and C; C is down while A's copies of two large objects are damaged (B holds them). C's fetches
    meet the damage (a 503 for the first block, a cut reply for a later one); A repairs its copies from B, quarantines
    the damaged extents, and C converges byte for byte."""
    tb, tc = new_token(), new_token()
    b = Site(tmp_path / "b", "site-b", accept_token=tb, extra={"storage": dict(STORAGE)})
    c = Site(tmp_path / "c", "site-c", accept_token=tc, extra={"storage": dict(STORAGE)})
    a = Site(tmp_path / "a", "site-a", extra={"storage": dict(STORAGE)},
             repl={"targets": [{"name": "b", "url": b.url(), "token": tb}, {"name": "c", "url": c.url(), "token": tc}]})
    try:
        b.start()
        a.start()
        ca, cc = a.client(), c.client()
        objs = {"first": os.urandom(LARGE), "late": os.urandom(LARGE), "clean": os.urandom(LARGE)}
        for k, d in objs.items():
            assert ca.put("bkt", k, d).status == 200, k
        converge_or_fail(a, b)
        ia = a.workdir / "store.img"
        ext = {k: find_extent(ia, objs[k]) for k in ("first", "late")}
        zero(ia, ext["first"] + 100, 4096)          # block 0: the fetch answers 503 DataDamaged
        damage(ia, ext["late"] + 9 * BLOCK + 5)     # block 9: the fetch streams 9 blocks, then cuts its reply
        assert ca.metrics().value("comio_repair_attempted_total") == 0

        c.start()
        wait_until(lambda: all(cc.get("bkt", k).status == 200 for k in objs), 60, what=lambda: "C holding the objects\n"
                   + a.describe())
        for k, d in objs.items():
            r = cc.get("bkt", k)
            assert r.status == 200 and r.body == d, k  # byte for byte: never a damaged byte
        rc, doc = deep_diff(a, c)
        assert rc == 0 and doc["counts"]["damaged_source"] == 0 and doc["differences"] == [], doc

        # A's copies were repaired from B, asked by C's fetches (no client read them): counted, logged, quarantined
        m = ca.metrics()
        assert m.value("comio_repair_repaired_total") == 2 and m.value("comio_repair_failed_total") == 0, m.text
        assert m.value("comio_checksum_mismatches_total", path="get") >= 2  # the fetches that met the damage
        lines = {j["key"]: j for j in log_lines(a, REPAIRED)}
        assert set(lines) == {"first", "late"}, lines
        assert (lines["first"]["block"], lines["late"]["block"]) == ("0", "9"), lines
        assert all(j["peer"] == "b" and j["bucket"] == "bkt" and j["origin"] == "site-a" for j in lines.values()), lines
        assert lines["late"]["version"] == ca.head("bkt", "late").header("x-comio-version")
        q = scrub_status(ca)["quarantine"]
        assert q["extents"] == 2 and sorted(x["offset"] for x in q["list"]) == sorted(ext.values()), q
        for k in ext:
            new = [o for o in find_all(ia, objs[k]) if o != ext[k]]
            assert len(new) == 1 and read_at(ia, new[0], LARGE) == objs[k], (k, new)
            assert read_at(ia, ext[k], LARGE) != objs[k], k  # the quarantined extent is left as it was found
        # A serves the repaired copies; no repair more
        for k, d in objs.items():
            assert ca.get("bkt", k).body == d
        assert ca.metrics().value("comio_repair_attempted_total") == 2
        rc, doc = deep_diff(a, b)
        assert rc == 0 and doc["differences"] == [], doc
    finally:
        problems = finish_sites([a, b, c])
        if problems:
            raise AssertionError("teardown:\n" + "\n".join(problems))


def test_a_damaged_object_no_peer_holds_is_never_shipped_and_the_event_waits(sites):
    """A -> B with B down while a large object written on A is damaged there: no site holds that version but A. B's
    fetch gets 503 DataDamaged every time and applies nothing; each try asks A for a repair, which finds no peer
    holding the version: counted, logged once. repld keeps the event pending with the reason in its status (not
    failed, not dropped). Written again, the key replicates."""
    a, b = sites(start=False, a_extra={"storage": dict(STORAGE)})
    a.start()
    ca, cb = a.client(), b.client()
    data = os.urandom(LARGE)
    assert ca.put("bkt", "lonely", data).status == 200
    assert ca.put("bkt", "fine", b"fine").status == 200
    ia = a.workdir / "store.img"
    ea = find_extent(ia, data)
    damage(ia, ea + 1000)  # block 0: a 503 DataDamaged to every fetch
    b.start()
    wait_until(lambda: cb.get("bkt", "fine").status == 200, 30, what="the undamaged object on B")
    # a fetch of the damaged copy queues a repair (one at a time), and each finds no peer holding the version
    wait_until(lambda: ca.metrics().value("comio_repair_failed_total") >= 3, 60, what="repairs asked by B's retries")
    m = ca.metrics()
    assert m.value("comio_repair_repaired_total") == 0 and m.value("comio_repair_damaged_everywhere_total") == 0
    assert 3 <= m.value("comio_repair_attempted_total") <= m.value("comio_checksum_mismatches_total", path="get")
    # said once in a while, not once per try
    failed = [j for j in log_lines(a, FAILED) if j["key"] == "lonely"]
    assert len(failed) == 1 and "no peer holds this version" in failed[0]["error"], failed
    assert failed[0]["version"] == ca.head("bkt", "lonely").header("x-comio-version") and failed[0]["block"] == "0"
    assert [(j["key"], j["block"]) for j in log_lines(a, DAMAGED)] == [("lonely", "0")]
    # B never gets a damaged byte: absent there for as long as we look
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        assert cb.get("bkt", "lonely").status == 404
        time.sleep(0.2)
    rc, doc = deep_diff(a, b)
    kinds = sorted((d["key"], d["type"], d.get("side")) for d in doc["differences"])
    assert rc == 4 and kinds == [("lonely", "damaged", "source"), ("lonely", "missing", None)], doc
    # the event waits, not failed and not dropped, and the status says why
    st = wait_until(lambda: (lambda s: s if "DataDamaged" in s["targets"][0]["last_error"] else None)(a.repld_status()), 30,
                    what="the reason in repld's status")
    t = st["targets"][0]
    assert t["events_pending"] >= 1 and t["events_failed"] == 0 and t["state"] == "up", t
    assert a.list_failed() == []
    assert "replica could not fetch objects from this site; events are kept and retried" in a.repld.log()
    assert cb.get("bkt", "lonely").status == 404

    # written again: the new version replicates, the stuck event is skipped
    data2 = os.urandom(LARGE)
    assert ca.put("bkt", "lonely", data2).status == 200
    wait_until(lambda: cb.get("bkt", "lonely").body == data2, 60, what="the rewritten object on B")
    converge_or_fail(a, b)
    rc, doc = deep_diff(a, b)
    assert rc == 0 and doc["differences"] == [], doc
    wait_until(lambda: (lambda t: t["events_pending"] == 0 and t["events_failed"] == 0)(a.repld_status()["targets"][0]), 60,
               what="the stuck event retired")


def _presigned(site, token, key, version, origin, verify=True):
    path = presign(token, "", "bkt", key, version, int(time.time()) + 600, origin)
    return path + ("&verify=1" if verify else "")


def test_verify_only_fetch_reads_off_the_event_loop(tmp_path):
    """`&verify=1` answers 200 (good), 410 (not that version) or 503 DataDamaged without the bytes; a verify of a 64 MiB
    object does not hold the event loop: on a server with one loop, GETs of another object are answered while it reads."""
    token = new_token()
    s = Site(tmp_path / "v", "site-v", accept_token=token, size="256MB",
             extra={"server": {"threads": 1}, "storage": dict(STORAGE)})
    try:
        s.start()
        c = s.client()
        big = os.urandom(64 << 20)
        assert c.put("bkt", "big", big).status == 200
        assert c.put("bkt", "small", b"s" * 100).status == 200
        h = c.head("bkt", "big")
        version, origin = int(h.header("x-comio-version")), h.header("x-comio-origin")
        url = _presigned(s, token, "big", version, origin)
        r = c.raw("GET", url)
        assert r.status == 200 and r.body == b"", r
        expect_error(c.raw("GET", _presigned(s, token, "big", version + 1, origin)), 410, "VersionGone")
        expect_error(c.raw("GET", _presigned(s, new_token(), "big", version, origin)), 403, "SignatureDoesNotMatch")
        verified = c.metrics().value("comio_checksum_blocks_verified_total")
        assert verified >= (64 << 20) // BLOCK  # it did read the whole object

        # GETs answered while a verify reads: counted as those whose answer came before the verify's. With the read on
        # the loop none can be (the loop answers nothing while it reads; at most one racing the verify's answer).
        def verify_once(out):
            vc = s.client(register=False)
            try:
                r = vc.raw("GET", url)
                out.append((r, time.monotonic()))
            finally:
                vc.close()

        best = 0
        for _ in range(5):  # bounded: at most five verifies
            out, answered = [], []
            gc = s.client(register=False)
            th = threading.Thread(target=verify_once, args=(out,))
            th.start()
            time.sleep(0.005)  # the verify reaches the loop first
            try:
                while th.is_alive() and len(answered) < 2000:
                    r = gc.get("bkt", "small")
                    assert r.status == 200 and r.body == b"s" * 100
                    answered.append(time.monotonic())
            finally:
                th.join(60)
                gc.close()
            assert not th.is_alive() and len(out) == 1, "the verify did not answer within 60 s"
            r, at = out[0]
            assert r.status == 200 and r.body == b"", r
            best = max(best, sum(1 for x in answered if x < at))
            if best >= 3:
                break
        assert best >= 3, "no GET was answered while a verify of 64 MiB read (best round: %d)" % best

        # damage: 503 DataDamaged, counted and logged; nothing of the object in the answer
        img = s.workdir / "store.img"
        damage(img, find_extent(img, big) + 40 * BLOCK + 3)
        before = c.metrics().value("comio_checksum_mismatches_total", path="get")
        body = expect_error(c.raw("GET", url), 503, "DataDamaged")
        assert "block checksum" in body["error"]
        assert c.metrics().value("comio_checksum_mismatches_total", path="get") == before + 1
        assert [(j["key"], j["block"]) for j in log_lines(s, DAMAGED)] == [("big", "40")]
        assert c.get("bkt", "small").status == 200
    finally:
        problems = finish_sites([s])
        if problems:
            raise AssertionError("teardown:\n" + "\n".join(problems))
