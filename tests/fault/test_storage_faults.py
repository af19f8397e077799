"""test_storage_faults.py - the primary's data store fills, its LMDB map fills,
and storaged is killed while large PUTs are being written.

  - Data store full: a PUT that finds no contiguous extent is 507
    InsufficientStorage; everything acknowledged reads back byte for byte, the
    log holds exactly one record per acknowledged mutation, deletes give space
    back, and the replica converges on what the client was told.
  - Metadata map full (server.meta_map_size, LMDB's map): a mutation that
    needs more pages than the map has left is 507 InsufficientStorage whose
    text names server.meta_map_size, and so does storaged's log. The
    transaction is aborted whole: no object without its log record, no
    record without its object. While the map is full a DELETE may be refused
    too (it needs pages to record the extent it releases); the remedy is a
    restart with a larger meta_map_size, after which everything is there and
    writes work. repld trims shipped records from the same map and survives
    it being full; its trimming gives the primary room again.
  - SIGKILL in the middle of PUTs, large ones (extents allocated in a
    commit of their own) and small ones (cut in memory from reserved chunks,
    or reusing the extents of overwritten objects): start-up returns every
    extent left in `pending` (allocated for a write that never committed,
    reserved and not used, or released by a commit and still quarantined)
    to the free map, and logs how much ("reclaimed space left by
    interrupted writes"). Used space is then exactly the superblock plus
    the 4 KiB-rounded extents of the objects listed, and every acknowledged
    PUT is intact. A clean stop leaves nothing to reclaim.

Sizes: the smallest meta_map_size with which a new store starts is 64 KiB
(LMDB needs a few 4 KiB pages for its two meta pages and the eleven named
databases; 32 KiB fails at start-up with the map-full error). The tests use
256 KiB, which holds a few hundred small objects with their log records.
"""

import http.client
import os
import random
import re
import threading
import time

import pytest

from harness.comio import Client, expect_error, md5, settled_used, wait_for
from harness.replication import Workload, converge_or_fail, wait_until

BLOCK = 4096
SUPERBLOCK = 4096
SMALL_MAP = "256KB"


def aligned(n):
    return (n + BLOCK - 1) // BLOCK * BLOCK


def listed_sizes(c, bucket):
    """{key: size} of a bucket through paged listings (bounded)."""
    out, start = {}, None
    for _ in range(100):
        r = c.list(bucket, start_after=start)
        if r.status == 404:
            return out
        assert r.status == 200, r
        page = r.json()
        out.update((o["key"], o["size"]) for o in page["objects"])
        if not page["is_truncated"]:
            return out
        start = page["next_start_after"]
    raise AssertionError("listing of %s did not end" % bucket)


def all_sizes(c):
    sizes = {}
    for b in c.raw("GET", "/").json()["buckets"]:
        for k, size in listed_sizes(c, b["name"]).items():
            sizes[(b["name"], k)] = size
    return sizes


def log_figures(c):
    st = c.repl_status()
    m = c.metrics()
    return {"head": st["log_head_seq"], "queued": st["events_queued"], "records": m.value("comio_replog_records"),
            "objects": m.value("comio_objects")}


# --- the data store fills -------------------------------------------------------------------


def test_store_full_with_replication_then_replica_converges(sites):
    a, b = sites(a_kw={"size": "24MB"})
    c = a.client()
    w = Workload()
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    stored = {}
    refused = None
    for i in range(200):
        key, data = "f%03d" % i, rng.randbytes(rng.randint(50_000, 1_500_000))
        r = w.put(c, "fill", key, data)
        assert r is not None, "PUT %s failed without an answer" % key
        if r.status == 200:
            stored[key] = data
            continue
        expect_error(r, 507, "InsufficientStorage")
        refused = (key, data)
        break
    assert refused is not None, "a 24MB store accepted %d objects" % len(stored)
    assert len(stored) >= 10, "a 24MB store held only %d objects" % len(stored)
    print("store full after %d PUTs (%d bytes)" % (len(stored), sum(map(len, stored.values()))))

    # nothing of the refused PUT, everything of the others, one record each
    expect_error(c.get("fill", refused[0]), 404, "NoSuchKey")
    for key, data in stored.items():
        r = c.get("fill", key)
        assert r.status == 200 and md5(r.body) == md5(data), "acknowledged %s reads back wrong" % key
    puts = len(stored)
    assert a.status()["events_queued"] == puts
    assert a.status()["log_head_seq"] == puts

    # deletes give space back and writes succeed again
    big = max(stored, key=lambda k: len(stored[k]))
    used_full = c.metrics().value("comio_store_used_bytes")
    assert w.delete(c, "fill", big).status == 204
    size = len(stored.pop(big))
    used = settled_used(c, lambda u: u <= used_full - aligned(size))
    assert used <= used_full - aligned(size), "DELETE did not give the space back"
    data = refused[1][:size]
    assert w.put(c, "fill", refused[0], data).status == 200, "PUT still refused after a DELETE freed its size"
    stored[refused[0]] = data
    assert c.get("fill", refused[0]).body == data
    assert a.status()["events_queued"] == puts + 2  # + the DELETE and the PUT after it

    converge_or_fail(a, b)
    assert w.check(b, "B") == [], w.summary()
    assert w.check(a, "A") == [], w.summary()
    wait_until(lambda: a.status()["events_pending"] == 0, 30, what=a.describe)


# --- the LMDB map fills -------------------------------------------------------------------


def fill_map(c, acked, limit=20000):
    """PUTs small objects, short and 1 KiB keys in turn, until one is refused; returns that reply."""
    for i in range(limit):
        key = "s%05d" % i if i % 2 == 0 else "l%05d-" % i + "k" * 1000
        data = b"v%d" % i
        r = c.put("meta", key, data)
        if r.status != 200:
            return r
        acked[key] = data
    raise AssertionError("a %s map held %d objects" % (SMALL_MAP, limit))


def test_meta_map_full_is_507_and_a_larger_map_recovers(make_server):
    srv = make_server(replication=True, config="server:\n  meta_map_size: %s\n" % SMALL_MAP)
    c = srv.client()
    acked = {}
    r = fill_map(c, acked)
    body = expect_error(r, 507, "InsufficientStorage")
    assert "meta_map_size" in body["error"], body
    # each object costs its record, its block checksums (keyed by the same objkey) and its log record: 38 fit
    # since the checksums (50 and more before)
    assert len(acked) >= 30, "a %s map held only %d objects" % (SMALL_MAP, len(acked))
    assert wait_for(lambda: "server.meta_map_size" in srv.log()), "no log line names server.meta_map_size"
    print("map of %s full after %d objects" % (SMALL_MAP, len(acked)))

    # still serving; further mutations are answered (507, or 2xx once LMDB found pages)
    deleted = []
    for i in range(3):
        r = c.put("meta", "more%d" % i, b"more")
        assert r.status in (200, 507), r
        if r.status == 200:
            acked["more%d" % i] = b"more"
    key = sorted(acked)[0]
    r = c.delete("meta", key)
    assert r.status in (204, 507), r
    if r.status == 204:
        acked.pop(key)
        deleted.append(key)
    assert c.health().status == 200

    def check_everything(c, extra_records=0):
        for key, data in acked.items():
            r = c.get("meta", key)
            assert r.status == 200 and r.body == data, "acknowledged %s: %r" % (key[:20], r)
        for key in deleted:
            expect_error(c.get("meta", key), 404, "NoSuchKey")
        assert sorted(c.list_all("meta")[0]) == sorted(acked)
        f = log_figures(c)
        # one record per acknowledged mutation, none for a refused one
        n = len(acked) + 2 * len(deleted) + extra_records
        assert f == {"head": n, "queued": n, "records": n, "objects": len(acked)}, (f, n)

    check_everything(c)

    # the same map after a restart: it starts, and keeps everything
    srv.restart()
    c = srv.client()
    check_everything(c)

    # a larger map: everything is there and writes work again
    srv.stop()
    srv.config_path.write_text("server:\n  meta_map_size: 64MB\n")
    srv.start()
    c = srv.client()
    check_everything(c)
    head = c.repl_status()["log_head_seq"]
    r = c.put("meta", "after", b"after")
    assert r.status == 200, r
    assert c.repl_status()["log_head_seq"] == head + 1  # one record more: the seq, not the version (a clock value)
    acked["after"] = b"after"
    for key in sorted(acked)[:5]:
        assert c.delete("meta", key).status == 204
        acked.pop(key)
        deleted.append(key)
    check_everything(c)


def test_repld_survives_a_full_map(sites):
    a, b = sites(repld=False, a_extra={"server": {"meta_map_size": SMALL_MAP}})
    c = a.client()
    acked = {}
    r = fill_map(c, acked)
    expect_error(r, 507, "InsufficientStorage")
    assert a.status()["log_pending"] == len(acked)

    # repld ships and trims the log in the full map
    a.start_repld()
    wait_until(lambda: a.status()["events_pending"] == 0, 60, what=a.describe)
    assert a.repld.alive(), a.repld.log_tail()
    # the trimmed records gave A room again (bounded: LMDB reuses freed pages a commit later)
    wait_until(lambda: c.put("meta", "after-trim", b"room again").status == 200, 10, what="a PUT accepted after the trim")
    acked["after-trim"] = b"room again"
    converge_or_fail(a, b)
    for key, data in list(acked.items())[:20]:
        assert b.client().get("meta", key).body == data
    failures = a.repld.log().count("cannot persist the replication cursor")
    print("repld: %d failed cursor commits while the map was full" % failures)
    assert failures < 20, "repld keeps failing to persist its cursor:\n" + a.repld.log_tail(20)
    assert a.repld.alive() and a.storaged.alive()


# --- SIGKILL while large PUTs are written ---------------------------------------------------------


RECLAIM = re.compile(r'"reclaimed space left by interrupted writes".*?"extents":"(\d+)".*?"bytes":"(\d+)"')


def reclaimed(text):
    """(extents, bytes) of every reclaim line in a storaged log."""
    return [(int(m.group(1)), int(m.group(2))) for m in RECLAIM.finditer(text)]


PUT_SIZES = {
    # allocated one by one, in a commit before the body is written
    "large": ([1_000_000, 2_500_000, 4_000_000], 40, 12),
    # cut from reserved chunks or reused (up to 64 KiB), and a few allocated ones
    "small": ([1, 4096, 5_000, 30_000, 65_536, 70_000, 300_000], 4000, 300),
}


@pytest.mark.parametrize("kind", sorted(PUT_SIZES))
def test_kill_during_puts_reclaims_space_and_keeps_acked(make_server, monkeypatch, kind):
    srv = make_server(replication=True, size="256MB", config="logging:\n  format: json\n")
    sizes_sent, puts_per_writer, acks_before_kill = PUT_SIZES[kind]
    rounds, writers, keys_per_writer = 3, 4, 5
    attempted = {}  # key -> set of md5s sent
    acked = {}  # key -> (version, md5) of the newest acknowledged PUT
    lock = threading.Lock()
    figures = []

    for rnd_no in range(rounds):
        stop = threading.Event()
        errors = []
        acked_this_round = [0]

        def writer(n, rnd_no=rnd_no, stop=stop, errors=errors, acked_this_round=acked_this_round):
            rng = random.Random(rnd_no * 100 + n)
            wc = Client(srv.host, srv.port, timeout=30)
            try:
                for i in range(puts_per_writer):
                    if stop.is_set():
                        return
                    key = "w%d/%d" % (n, i % keys_per_writer)  # overwrites release extents too
                    data = rng.randbytes(rng.choice(sizes_sent))
                    digest = md5(data)
                    with lock:
                        attempted.setdefault(key, set()).add(digest)
                    try:
                        r = wc.put("kill", key, data)
                    except (OSError, http.client.HTTPException):
                        return  # the server is gone
                    if r.status != 200:
                        if not stop.is_set():
                            errors.append((key, r))
                        return
                    version = int(r.headers["X-Comio-Version"])
                    with lock:
                        if key not in acked or acked[key][0] < version:
                            acked[key] = (version, digest)
                        acked_this_round[0] += 1
            finally:
                wc.close()

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and acked_this_round[0] < acks_before_kill and any(
                t.is_alive() for t in threads):
            time.sleep(0.005)
        srv.kill9()  # PUTs in every stage: body arriving, allocated, being written, committing
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
        assert not errors, errors[:3]
        assert acked_this_round[0] >= acks_before_kill, "only %d PUTs acknowledged before the kill" % acked_this_round[0]

        log_before = len(srv.log())
        srv.start()
        c = srv.client()
        startup = srv.log()[log_before:]
        assert "error" not in [line.split('"level":"')[1].split('"')[0] for line in startup.splitlines()
                               if '"level":"' in line], startup
        got = reclaimed(startup)
        figures.append(got[0] if got else (0, 0))

        # every acknowledged PUT is intact: its bytes, or a newer PUT's that committed before the kill
        for key, (version, digest) in sorted(acked.items()):
            r = c.get("kill", key)
            assert r.status == 200, "acknowledged %s lost after kill -9: %r" % (key, r)
            v = int(r.headers["X-Comio-Version"])
            assert v >= version, (key, v, version)
            assert md5(r.body) in attempted[key], "%s holds bytes nobody sent (torn)" % key
            if v == version:
                assert md5(r.body) == digest, key
        # used space is exactly what the listed objects need; one record per committed PUT
        sizes = all_sizes(c)
        want_used = SUPERBLOCK + sum(aligned(s) for s in sizes.values())
        used = settled_used(c, lambda u: u == want_used)
        assert used == want_used, "used %d, the %d objects need %d: %d bytes leaked" % (used, len(sizes), want_used,
                                                                                        used - want_used)
        f = log_figures(c)
        assert f["objects"] == len(sizes)
        assert f["records"] == f["head"] == f["queued"], f  # nothing trimmed (no repld): every record is there

    print("reclaimed at start-up after each kill (extents, bytes): %r" % figures)
    assert all(f[0] > 0 for f in figures), "a kill in the middle of PUTs left nothing pending? %r" % figures
    # a clean stop hands back what it reserved, and what overwrites released (kept in quarantine
    # until the stop by a long poll): nothing to reclaim at the next start
    srv.stop()
    monkeypatch.setenv("COMIO_QUARANTINE_POLL_MS", "3600000")
    srv.start()
    c = srv.client()
    for i in range(50):  # takes chunks, reuses extents, and leaves released ones in quarantine
        assert c.put("kill", "after%d" % (i % 5), b"a" * (i * 1000)).status == 200
    srv.stop()
    log_before = len(srv.log())
    srv.start()
    c = srv.client()
    assert reclaimed(srv.log()[log_before:]) == [], srv.log()[log_before:]
    sizes = all_sizes(c)
    want_used = SUPERBLOCK + sum(aligned(s) for s in sizes.values())
    assert settled_used(c, lambda u: u == want_used) == want_used
