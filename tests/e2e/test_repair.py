"""test_repair.py - repair from the other site (storaged/repair.h, docs/operations.md "Repair from the other site").

A block that fails its checksum is fetched from the peer that holds the same version, verified there and here, written
to a new extent, and the damaged extent is quarantined (kept out of the allocator, across a restart, until released).
A GET waits for the repair and answers with the good bytes; the scrub repairs what it finds; damage on both sites is a
503 and leaves both copies; an object only one site holds yet cannot be repaired.

Two sites: A ships to B (one way); A repairs from B through its replication target, B from A through
storage.repair_peers. Damage is written into the image files behind storaged's back (harness/damage.py)."""

import json
import os
import subprocess
import threading

import pytest

from harness import comio
from harness.comio import expect_error
from harness.damage import damage, find_all, find_extent, read_at, zero
from harness.replication import Site, comio_path, converge_or_fail, finish_sites, make_pair, new_token, wait_until

BLOCK = 64 * 1024
STORAGE = {"scrub_rate": "0", "repair_timeout": "10s"}


AK, SECRET = "AKIDCOMIOREPAIR", "s3cr3t/repair"


def repair_pair(sites, repld=True, s3=False):
    """A -> B, B able to repair from A; both started (A's repld only when repld); A with S3 credentials when s3."""
    a_extra = {"storage": dict(STORAGE)}
    if s3:
        a_extra["s3"] = {"region": "us-east-1", "credentials": [{"access_key": AK, "secret_key": SECRET}]}
    a, b = sites(start=False, a_extra=a_extra)
    b.extra = {"storage": dict(STORAGE, repair_peers=[{"name": "site-a", "url": a.url()}])}
    b.write_config()
    b.start()
    a.start(repld=repld)
    return a, b


def scrub_status(c):
    r = c.raw("GET", "/admin/scrub")
    assert r.status == 200, r
    return r.json()


def run_pass(c):
    """Asks for a scrub pass and waits for its end; returns the finished pass."""
    wait_until(lambda: not scrub_status(c)["running"], 30, what="the first scrub pass")
    before = (scrub_status(c)["last"] or {"pass": 0})["pass"]
    assert c.raw("POST", "/admin/scrub").status == 202
    wait_until(lambda: (lambda s: not s["running"] and s["last"] and s["last"]["pass"] > before)(scrub_status(c)), 60,
               what="the scrub pass asked for")
    return scrub_status(c)["last"]


def scrub_cli(site, *args):
    argv = [str(comio_path()), "scrub", "--url", site.url()] + list(args)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=comio.sanitizer_env())
    assert comio.sanitizer_report(r.stderr) is None, r.stderr
    return r


def log_lines(site, msg):
    return [j for j in (json.loads(x) for x in site.storaged.log().splitlines() if x.startswith("{")) if j.get("msg") == msg]


def put_all(c, objs):
    for k, d in objs.items():
        assert c.put("bkt", k, d).status == 200, k


def test_get_repairs_damage_on_either_side(sites):
    a, b = repair_pair(sites)
    ca, cb = a.client(), b.client()
    objs = {"small": os.urandom(20_000), "first": os.urandom(5 * BLOCK), "tail": os.urandom(4 * BLOCK + 9),
            "ranged": os.urandom(3 * BLOCK), "on-b": os.urandom(300_000), "clean": os.urandom(2 * BLOCK)}
    put_all(ca, objs)
    converge_or_fail(a, b)
    ia, ib = a.workdir / "store.img", b.workdir / "store.img"
    ext = {k: find_extent(ia, objs[k]) for k in ("small", "first", "tail", "ranged")}
    damage(ia, ext["small"] + 10_000)                      # a bit flipped in a one-block object
    zero(ia, ext["first"], 4096)                            # the first block's first page zeroed
    damage(ia, ext["tail"] + 4 * BLOCK + 3, flip=0x80)      # the last, partial block
    damage(ia, ext["ranged"] + BLOCK + 77)                  # block 1, under a Range GET
    eb = find_extent(ib, objs["on-b"])
    zero(ib, eb + 2 * BLOCK, BLOCK)                         # a whole block on B

    # every GET answers the written bytes, never a damaged one
    for k in ("small", "first", "tail"):
        r = ca.get("bkt", k)
        assert r.status == 200 and r.body == objs[k], (k, r.status)
    first, last = BLOCK + 50, BLOCK + 5000
    r = ca.raw("GET", "/bkt/ranged", headers={"Range": "bytes=%d-%d" % (first, last)})
    assert r.status == 206 and r.body == objs["ranged"][first:last + 1], r.status
    r = cb.get("bkt", "on-b")
    assert r.status == 200 and r.body == objs["on-b"]
    assert ca.get("bkt", "clean").body == objs["clean"]

    # counted, logged with bucket, key, version and block, the damaged extents quarantined
    m = ca.metrics()
    assert m.value("comio_repair_repaired_total") == 4 and m.value("comio_repair_failed_total") == 0
    assert m.value("comio_repair_quarantined_extents") == 4
    assert m.value("comio_repair_bytes_total") == sum(len(objs[k]) for k in ext)
    assert cb.metrics().value("comio_repair_repaired_total") == 1
    lines = {j["key"]: j for j in log_lines(a, "object repaired from a peer: the damaged extent is quarantined")}
    assert set(lines) == set(ext), lines
    assert lines["tail"]["block"] == "4" and lines["first"]["block"] == "0" and lines["ranged"]["block"] == "1"
    assert lines["small"]["bucket"] == "bkt" and lines["small"]["peer"] == "127.0.0.1"
    version = ca.head("bkt", "small").header("x-comio-version")
    assert lines["small"]["version"] == version and lines["small"]["origin"] == "site-a"
    q = scrub_status(ca)["quarantine"]
    assert q["extents"] == 4 and sorted(x["offset"] for x in q["list"]) == sorted(ext.values()), q
    # the good copy is in a new extent, byte for byte; the old one still holds the damaged bytes
    for k in ("small", "tail", "ranged"):
        offs = find_all(ia, objs[k])
        assert ext[k] in offs and any(read_at(ia, o, len(objs[k])) == objs[k] for o in offs if o != ext[k]), k
        assert read_at(ia, ext[k], len(objs[k])) != objs[k], k
    # served again from the repaired copy: no new repair
    for k in ext:
        assert ca.get("bkt", k).body == objs[k]
    assert ca.metrics().value("comio_repair_attempted_total") == 4


# --- the damage matrix: one pair of sites for every case ----------------------------------------------------------

# (name, size, where the damage starts inside the object, how): a small object; a multi-block one damaged in its
# first block, a middle block and its last partial block; each by a flipped bit and by a zeroed run of bytes.
SIZE = 5 * BLOCK + 1234
SHAPES = [("small", 20_000, 7_000), ("first", SIZE, 100), ("middle", SIZE, 2 * BLOCK + 999), ("last", SIZE, 5 * BLOCK + 17)]
CASES = [(shape, how, side) for shape in SHAPES for how in ("flip", "zero") for side in ("a", "b")]


@pytest.fixture(scope="module")
def matrix_pair(tmp_path_factory):
    """One A -> B pair (B repairs from A) shared by the matrix's cases: each writes its own keys."""
    a, b = make_pair(tmp_path_factory.mktemp("matrix"), start=False, a_extra={"storage": dict(STORAGE)})
    b.extra = {"storage": dict(STORAGE, repair_peers=[{"name": "site-a", "url": a.url()}])}
    b.write_config()
    try:
        b.start()
        a.start()
        yield a, b
    finally:
        problems = finish_sites([a, b])
        if problems:
            pytest.fail("teardown:\n" + "\n".join(problems), pytrace=False)


@pytest.mark.parametrize("shape,how,side", CASES, ids=["%s-%s-on-%s" % (c[0][0], c[1], c[2]) for c in CASES])
def test_damage_matrix(matrix_pair, shape, how, side):
    """Damaged on one side: a Range GET over the damaged block and a whole GET answer the written bytes, never a
    damaged one; the site repaired holds the written bytes byte for byte at the object's new extent; the old extent
    (quarantined) still holds the damage."""
    name, size, at = shape
    a, b = matrix_pair
    site = a if side == "a" else b
    c = site.client()
    key = "m-%s-%s-%s" % (name, how, side)
    data = os.urandom(size)
    assert a.client().put("bkt", key, data).status == 200
    wait_until(lambda: b.client().get("bkt", key).status == 200, 30, what="the object on B")
    img = site.workdir / "store.img"
    ext = find_extent(img, data)
    if how == "flip":
        damage(img, ext + at, flip=0x10)
    else:
        zero(img, ext + at, min(4096, size - at))
    assert read_at(img, ext, size) != data
    before = c.metrics().value("comio_repair_repaired_total")
    blk = at // BLOCK
    first, last = blk * BLOCK + (at % BLOCK) // 2, min(size - 1, at + 100)
    r = c.raw("GET", "/bkt/" + key, headers={"Range": "bytes=%d-%d" % (first, last)})
    assert r.status == 206 and r.body == data[first:last + 1], (r.status, len(r.body))
    r = c.get("bkt", key)
    assert r.status == 200 and r.body == data
    assert c.metrics().value("comio_repair_repaired_total") == before + 1
    lines = [j for j in log_lines(site, "object repaired from a peer: the damaged extent is quarantined") if j["key"] == key]
    assert len(lines) == 1 and lines[0]["block"] == str(blk), lines
    new = [o for o in find_all(img, data) if o != ext]  # (a zeroed first page hides the old extent from find_all)
    assert len(new) == 1 and read_at(img, new[0], size) == data, new
    assert read_at(img, ext, size) != data  # the quarantined extent is left as it was found


def test_scrub_repairs_and_the_quarantine_holds_across_a_restart(sites):
    a, b = repair_pair(sites)
    ca = a.client()
    objs = {"q%d" % i: os.urandom(n) for i, n in enumerate((3000, BLOCK, 3 * BLOCK + 1, 700_000))}
    put_all(ca, objs)
    converge_or_fail(a, b)
    ia = a.workdir / "store.img"
    ext = {k: find_extent(ia, d) for k, d in objs.items()}
    for k, d in objs.items():
        damage(ia, ext[k] + len(d) - 1)                    # the last byte of each: the last block
    last = run_pass(ca)
    assert (last["damaged"], last["repaired"]) == (4, 4), last
    st = scrub_status(ca)
    assert st["damaged_objects"] == 0 and st["repair"]["repaired"] == 4, st
    assert sorted(x["offset"] for x in st["quarantine"]["list"]) == sorted(ext.values())
    r = scrub_cli(a)  # nothing left damaged: exit 0; the quarantine is shown
    assert r.returncode == 0 and "damaged 4, repaired 4" in r.stdout and "quarantined extents: 4 (" in r.stdout, r.stdout
    held = {k: read_at(ia, ext[k], len(d)) for k, d in objs.items()}
    for k, d in objs.items():
        assert held[k] != d and ca.get("bkt", k).body == d

    # the allocator does not hand the quarantined extents out: many writes later they are untouched
    for i in range(40):
        assert ca.put("bkt", "fill-%d" % i, os.urandom(BLOCK + i)).status == 200
    for k in objs:
        assert ca.delete("bkt", k).status == 204  # the repaired copies are freed; the quarantined ones stay
    for i in range(40):
        assert ca.put("bkt", "refill-%d" % i, os.urandom(4096 + i)).status == 200
    assert {k: read_at(ia, ext[k], len(d)) for k, d in objs.items()} == held

    # the quarantine is in LMDB: it survives a restart
    a.stop_storaged()
    a.start_storaged()
    st = scrub_status(ca)
    assert (st["last"]["pass"], st["last"]["damaged"], st["last"]["repaired"]) == (last["pass"], 4, 4), st["last"]
    assert st["quarantine"]["extents"] == 4 and sorted(x["offset"] for x in st["quarantine"]["list"]) == sorted(ext.values())
    assert ca.metrics().value("comio_repair_quarantined_bytes") == st["quarantine"]["bytes"] > 0
    # released by the operator: back in the free map
    expect_error(ca.raw("POST", "/admin/scrub?release-quarantine=yes"), 400, "InvalidArgument")
    free_before = ca.metrics().value("comio_store_free_bytes")
    r = ca.raw("POST", "/admin/scrub?release-quarantine=true")
    assert r.status == 200 and r.json() == {"released_extents": 4, "released_bytes": st["quarantine"]["bytes"]}, r.body
    assert scrub_status(ca)["quarantine"]["extents"] == 0
    assert ca.metrics().value("comio_store_free_bytes") == free_before + st["quarantine"]["bytes"]
    r = scrub_cli(a, "--release-quarantine")
    assert r.returncode == 0 and r.stdout == "released 0 quarantined extents (0B)\n", (r.stdout, r.stderr)


def test_damage_on_both_sites_is_503_and_leaves_both(sites):
    a, b = repair_pair(sites)
    ca, cb = a.client(), b.client()
    data = os.urandom(3 * BLOCK)
    assert ca.put("bkt", "both", data).status == 200
    converge_or_fail(a, b)
    ia, ib = a.workdir / "store.img", b.workdir / "store.img"
    ea, eb = find_extent(ia, data), find_extent(ib, data)
    damage(ia, ea + 100)
    damage(ib, eb + 200)
    bad_a, bad_b = read_at(ia, ea, len(data)), read_at(ib, eb, len(data))
    expect_error(ca.get("bkt", "both"), 503, "DataDamaged")
    expect_error(cb.get("bkt", "both"), 503, "DataDamaged")
    r = ca.raw("GET", "/bkt/both", headers={"Range": "bytes=0-10"})
    assert r.status == 503 and data[:11] not in r.body
    for site, c in ((a, ca), (b, cb)):
        m = c.metrics()
        assert m.value("comio_repair_damaged_everywhere_total") >= 1 and m.value("comio_repair_repaired_total") == 0
        assert m.value("comio_repair_quarantined_extents") == 0
        lines = log_lines(site, "object data damaged on every site: no good copy anywhere, both copies left as they are")
        assert lines and lines[0]["level"] == "error" and lines[0]["key"] == "both" and lines[0]["block"] == "0", lines
    assert read_at(ia, ea, len(data)) == bad_a and read_at(ib, eb, len(data)) == bad_b
    wait_until(lambda: not scrub_status(ca)["running"], 30, what="the first scrub pass")
    r = scrub_cli(a, "--now")  # found and not repaired: exit 1, on record
    assert r.returncode == 1 and "damaged 1, repaired 0" in r.stdout and "bkt/both  block 0" in r.stdout, r.stdout
    assert scrub_status(ca)["damaged_objects"] == 1


def test_damage_on_both_sites_past_the_first_block_is_damaged_everywhere(sites):
    """Both copies damaged in a later block: the peer streams its first blocks and then cuts its reply. The repairer
    asks the peer to verify its copy (a verify-only fetch) and counts "damaged on every site", not a plain failure;
    both copies are left as they are."""
    a, b = repair_pair(sites)
    ca, cb = a.client(), b.client()
    data = os.urandom(5 * BLOCK + 10)
    assert ca.put("bkt", "late", data).status == 200
    converge_or_fail(a, b)
    ia, ib = a.workdir / "store.img", b.workdir / "store.img"
    ea, eb = find_extent(ia, data), find_extent(ib, data)
    damage(ia, ea + 3 * BLOCK + 7)
    zero(ib, eb + 3 * BLOCK + 100, 300)
    bad_a, bad_b = read_at(ia, ea, len(data)), read_at(ib, eb, len(data))
    last = run_pass(ca)  # the scrub on A: repaired from nobody
    assert (last["damaged"], last["repaired"]) == (1, 0), last
    r = cb.raw("GET", "/bkt/late", headers={"Range": "bytes=%d-%d" % (3 * BLOCK, 3 * BLOCK + 999)})
    assert r.status == 503 and b"DataDamaged" in r.body, r.status
    for site, c in ((a, ca), (b, cb)):
        m = c.metrics()
        assert m.value("comio_repair_damaged_everywhere_total") == 1 and m.value("comio_repair_repaired_total") == 0, site
        lines = log_lines(site, "object data damaged on every site: no good copy anywhere, both copies left as they are")
        assert [(j["key"], j["block"]) for j in lines] == [("late", "3")], lines
    assert read_at(ia, ea, len(data)) == bad_a and read_at(ib, eb, len(data)) == bad_b
    assert scrub_status(ca)["quarantine"]["extents"] == 0


def test_no_peer_is_logged_once_per_object(sites):
    """A site with nothing to repair from (B without storage.repair_peers): each GET of its damaged object is a 503
    and a failed repair (or, within a second of one, shares it: counted as skipped), but "no peer to repair from" is
    logged once for the object, not on every GET."""
    a, b = sites(a_extra={"storage": dict(STORAGE)}, b_extra={"storage": dict(STORAGE)})
    ca, cb = a.client(), b.client()
    objs = {"np1": os.urandom(30_000), "np2": os.urandom(30_000)}
    put_all(ca, objs)
    converge_or_fail(a, b)
    ib = b.workdir / "store.img"
    for d in objs.values():
        damage(ib, find_extent(ib, d) + 17)
    for _ in range(3):
        for k in objs:
            expect_error(cb.get("bkt", k), 503, "DataDamaged")
    m = cb.metrics()
    failed, recent = m.value("comio_repair_failed_total"), m.value("comio_repair_skipped_total", reason="recent_failure")
    assert failed >= 2 and failed + recent == 6, m.text
    lines = log_lines(b, "repair: no peer to repair from (replication.targets, storage.repair_peers)")
    assert sorted(j["key"] for j in lines) == ["np1", "np2"], lines


def test_object_only_on_one_site_cannot_be_repaired(sites):
    """Replication paused: B has no copy, so A's damaged object is a 503, counted as failed. Once repld runs, B does
    not get the damaged bytes either (repld verifies what it reads to inline, B's apply verifies the MD5); repld asks
    storaged for a repair, which fails the same way; after replication.retry_attempts the event is recorded as failed
    and the log moves on. The object stays damaged on A and absent on B until it is written again."""
    a, b = repair_pair(sites, repld=False)
    ca, cb = a.client(), b.client()
    data = os.urandom(20_000)
    assert ca.put("bkt", "lonely", data).status == 200
    assert ca.put("bkt", "fine", b"fine").status == 200
    ia = a.workdir / "store.img"
    damage(ia, find_extent(ia, data) + 5)
    expect_error(ca.get("bkt", "lonely"), 503, "DataDamaged")
    m = ca.metrics()
    assert m.value("comio_repair_failed_total") == 1 and m.value("comio_repair_damaged_everywhere_total") == 0
    assert any(j["key"] == "lonely" and j["status"] in ("404", "410") for j in log_lines(a, "repair: a peer gave no good copy"))
    a.start_repld()
    wait_until(lambda: cb.get("bkt", "fine").status == 200, 30, what="the undamaged object on B")
    wait_until(lambda: "not shipped inline" in a.repld.log(), 30, what="repld refusing the damaged object")
    # repld asks storaged for a repair, which has no good copy to take: counted as failed again, or, asked within the
    # back-off after the GET's failed repair, dropped (storaged answers 429, repld says so) and counted as skipped;
    # nothing changed
    asked = ("asked storaged to repair a damaged object", "storaged holds back the repair of a damaged object")
    wait_until(lambda: any(m in a.repld.log() for m in asked), 30, what="repld asking a repair")
    wait_until(lambda: (lambda m: m.value("comio_repair_failed_total") + m.value("comio_repair_skipped_total", reason="backoff"))(
        ca.metrics()) >= 2, 30, what="the asked repair failing or dropped")
    # the event does not block the log: after replication.retry_attempts it is recorded as failed (comio failed)
    wait_until(lambda: "Failed to replicate event" in a.repld.log(), 60, what="the event given up")
    assert cb.get("bkt", "lonely").status == 404
    expect_error(ca.get("bkt", "lonely"), 503, "DataDamaged")
    # written again, it replicates; the next damage is repaired
    assert ca.put("bkt", "lonely", data).status == 200
    wait_until(lambda: cb.get("bkt", "lonely").body == data, 30, what="the rewritten object on B")
    damage(ia, find_extent(ia, data) + 5)
    assert ca.get("bkt", "lonely").body == data


def test_inline_read_of_damage_asks_a_repair_and_ships_the_good_bytes(tmp_path):
    """A ships to B and C; C is down while A's copy is damaged, B holds the version. repld's inline read for C finds
    the damage: it ships no damaged byte and asks storaged (POST /admin/scrub?bucket=&key=), which repairs A's copy
    from B; the retried event then carries the good bytes to C."""
    tb, tc = new_token(), new_token()
    b = Site(tmp_path / "b", "site-b", accept_token=tb)
    c = Site(tmp_path / "c", "site-c", accept_token=tc)
    a = Site(tmp_path / "a", "site-a", extra={"storage": dict(STORAGE)},
             repl={"targets": [{"name": "b", "url": b.url(), "token": tb}, {"name": "c", "url": c.url(), "token": tc}],
                   "retry_attempts": 50, "retry_delay": "300ms"})
    try:
        b.start()
        a.start()
        ca, cb, cc = a.client(), b.client(), c.client()
        data = os.urandom(60_000)  # under the inline threshold (64 KB): read by repld, shipped in the batch
        assert ca.put("bkt", "inl", data).status == 200
        wait_until(lambda: cb.get("bkt", "inl").status == 200, 30, what="the object on B")
        ia = a.workdir / "store.img"
        ea = find_extent(ia, data)
        damage(ia, ea + 40_000)
        c.start()
        wait_until(lambda: cc.get("bkt", "inl").status == 200, 60, what="the object on C")
        assert cc.get("bkt", "inl").body == data
        assert "not shipped inline" in a.repld.log() and "asked storaged to repair a damaged object" in a.repld.log()
        m = ca.metrics()
        assert m.value("comio_repair_repaired_total") == 1 and m.value("comio_checksum_mismatches_total", path="scrub") >= 1
        new = [o for o in find_all(ia, data) if o != ea]
        assert len(new) == 1 and read_at(ia, new[0], len(data)) == data and ca.get("bkt", "inl").body == data
        # nothing to repair in a good object: the check answers 202 and repairs nothing; bad arguments are 400/404
        r = ca.raw("POST", "/admin/scrub?bucket=bkt&key=inl")
        assert r.status == 202 and r.json() == {"queued": True}, r.body
        expect_error(ca.raw("POST", "/admin/scrub?bucket=bkt"), 400, "InvalidArgument")
        expect_error(ca.raw("POST", "/admin/scrub?bucket=bkt&key=nope"), 404, "NoSuchKey")
        wait_until(lambda: ca.metrics().value("comio_repair_attempted_total") >= 1, 10, what="the repair counted")
        assert ca.metrics().value("comio_repair_attempted_total") == 1
    finally:
        problems = finish_sites([a, b, c])
        if problems:
            pytest.fail("teardown:\n" + "\n".join(problems), pytrace=False)


def test_damage_while_writes_and_replication_run(sites):
    """A writer PUTs to A (objects shipped inline and by URL) while repld ships them to B; meanwhile objects written
    before are damaged on A and on B (first block, a middle one, the last partial one). GETs on either site repair
    what they read and never answer a damaged byte; the scrub repairs what nobody read. At the end both sites hold
    the same bytes (comio diff --deep: no difference, no damage) and every key reads what was written last."""
    a, b = repair_pair(sites)
    ca, cb = a.client(), b.client()
    objs = {"old-%d" % i: os.urandom(BLOCK * (i + 1) + 1000 * i + 7) for i in range(8)}
    put_all(ca, objs)
    converge_or_fail(a, b)
    ia, ib = a.workdir / "store.img", b.workdir / "store.img"
    on_a, on_b = ["old-0", "old-1", "old-2", "old-3"], ["old-4", "old-5", "old-6", "old-7"]
    ext = {k: find_extent(ia if k in on_a else ib, objs[k]) for k in objs}
    stop, errors, last = threading.Event(), [], {}

    def writer():
        c = a.client(register=False)
        try:
            for i in range(400):  # bounded: at most 400 writes, or until stopped
                if stop.is_set():
                    break
                key, data = "new-%d" % (i % 40), os.urandom(1000 + 997 * i)  # 1 KB to 400 KB: inline and fetched
                r = c.put("bkt", key, data)
                if r.status == 200:
                    last[key] = data
                else:
                    errors.append((key, r.status))
        finally:
            c.close()

    t = threading.Thread(target=writer)
    t.start()
    try:
        wait_until(lambda: len(last) >= 5, 30, what="the writer under way")
        for k in objs:
            img, d = (ia if k in on_a else ib), objs[k]
            where = {0: 10, 1: len(d) // 2, 2: len(d) - 1, 3: BLOCK + 3}[int(k[-1]) % 4]
            damage(img, ext[k] + where)
        # read now, while the writes and their replication go on: repaired first, then answered; old-1 and old-5
        # (damaged in a middle block) first by a Range GET over that block
        for site_c, k in ((ca, "old-1"), (cb, "old-5")):
            d = objs[k]
            first, last_byte = len(d) // 2 - 5000, len(d) // 2 + 5000
            r = site_c.raw("GET", "/bkt/" + k, headers={"Range": "bytes=%d-%d" % (first, last_byte)})
            assert r.status == 206 and r.body == d[first:last_byte + 1], (k, r.status)
        for site_c, k in ((ca, "old-0"), (ca, "old-1"), (cb, "old-4"), (cb, "old-5")):
            r = site_c.get("bkt", k)
            assert r.status == 200 and r.body == objs[k], (k, r.status)
        # nobody read old-2, old-3 (A) and old-6, old-7 (B): the scrub finds and repairs them
        for site_c in (ca, cb):
            p = run_pass(site_c)
            assert (p["damaged"], p["repaired"]) == (2, 2), p
    finally:
        stop.set()
        t.join(60)
    assert not t.is_alive() and errors == [] and len(last) >= 5, (errors, len(last))
    for site_c in (ca, cb):
        m = site_c.metrics()
        assert m.value("comio_repair_repaired_total") == 4 and m.value("comio_repair_failed_total") == 0, m.text
        assert m.value("comio_repair_quarantined_extents") == 4
    converge_or_fail(a, b)
    r = scrub_cli(a)  # nothing left damaged
    assert r.returncode == 0, r.stdout
    deep = subprocess.run([str(comio_path()), "diff", "--deep", "--source", a.url(), "--target", b.url()],
                          capture_output=True, text=True, timeout=120, env=comio.sanitizer_env())
    assert comio.sanitizer_report(deep.stderr) is None, deep.stderr
    assert deep.returncode == 0 and "no differences" in deep.stdout and "no damaged objects" in deep.stdout, deep.stdout
    for k, d in list(objs.items()) + list(last.items()):
        for site_c in (ca, cb):
            r = site_c.get("bkt", k)
            assert r.status == 200 and r.body == d, (k, r.status)
    for site_c in (ca, cb):
        assert run_pass(site_c)["damaged"] == 0


def test_s3_get_and_copy_are_repaired(sites):
    import boto3
    from botocore.client import Config

    a, b = repair_pair(sites, s3=True)
    ca = a.client()
    objs = {"first": os.urandom(3 * BLOCK), "later": os.urandom(6 * BLOCK + 5), "src": os.urandom(2 * BLOCK)}
    put_all(ca, objs)
    converge_or_fail(a, b)
    ia = a.workdir / "store.img"
    damage(ia, find_extent(ia, objs["first"]) + 9)               # before the headers go
    damage(ia, find_extent(ia, objs["later"]) + 4 * BLOCK + 1)   # in the middle of the stream
    damage(ia, find_extent(ia, objs["src"]) + BLOCK + 1)         # a CopyObject's source
    s3 = boto3.client("s3", endpoint_url=a.url(), aws_access_key_id=AK, aws_secret_access_key=SECRET,
                      region_name="us-east-1", config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                                             connect_timeout=10, read_timeout=30))
    assert s3.get_object(Bucket="bkt", Key="first")["Body"].read() == objs["first"]
    assert s3.get_object(Bucket="bkt", Key="later")["Body"].read() == objs["later"]
    s3.copy_object(Bucket="bkt", Key="copy", CopySource={"Bucket": "bkt", "Key": "src"})
    assert ca.get("bkt", "copy").body == objs["src"] and ca.get("bkt", "src").body == objs["src"]
    assert ca.metrics().value("comio_repair_repaired_total") == 3


def test_s3_upload_part_copy_of_a_damaged_source_is_repaired(sites):
    """UploadPartCopy reading a damaged source: a retryable 503 (no damaged byte becomes a part) and a repair from
    the peer queued; the client's retry copies the repaired bytes."""
    import boto3
    from botocore.client import Config
    from botocore.exceptions import ClientError

    a, b = repair_pair(sites, s3=True)
    ca = a.client()
    src = os.urandom(3 * BLOCK + 11)
    assert ca.put("bkt", "part-src", src).status == 200
    converge_or_fail(a, b)
    ia = a.workdir / "store.img"
    damage(ia, find_extent(ia, src) + 2 * BLOCK + 5)
    s3 = boto3.client("s3", endpoint_url=a.url(), aws_access_key_id=AK, aws_secret_access_key=SECRET,
                      region_name="us-east-1", config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 0},
                                                             connect_timeout=10, read_timeout=30))  # no retry: the 503 shows
    up = s3.create_multipart_upload(Bucket="bkt", Key="assembled")["UploadId"]
    copy = dict(Bucket="bkt", Key="assembled", UploadId=up, PartNumber=1, CopySource={"Bucket": "bkt", "Key": "part-src"})
    try:
        s3.upload_part_copy(**copy)
        assert False, "a damaged source was copied"
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 503, e.response
    wait_until(lambda: ca.metrics().value("comio_repair_repaired_total") == 1, 30, what="the source repaired")
    etag = s3.upload_part_copy(**copy)["CopyPartResult"]["ETag"]
    s3.complete_multipart_upload(Bucket="bkt", Key="assembled", UploadId=up,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert ca.get("bkt", "assembled").body == src and ca.get("bkt", "part-src").body == src


def test_peer_down_then_repaired_after_a_restart(sites):
    """The peer unreachable: a 503, counted as failed, nothing changed. After a restart of the damaged site and with
    the peer back, the same object is repaired."""
    a, b = repair_pair(sites)
    ca = a.client()
    data = os.urandom(2 * BLOCK + 3)
    assert ca.put("bkt", "k", data).status == 200
    converge_or_fail(a, b)
    ia = a.workdir / "store.img"
    ea = find_extent(ia, data)
    damage(ia, ea + 3)  # the first block: found before the headers go, so a clean 503 (later: a cut reply)
    a.stop_repld()
    b.stop_storaged()
    expect_error(ca.get("bkt", "k"), 503, "DataDamaged")
    m = ca.metrics()
    assert m.value("comio_repair_failed_total") == 1 and m.value("comio_repair_quarantined_extents") == 0
    assert [j["key"] for j in log_lines(a, "repair failed: the object stays damaged here")] == ["k"]
    a.stop_storaged()
    a.start_storaged()
    b.start_storaged()
    assert ca.get("bkt", "k").body == data
    assert find_extent(ia, data) != ea and ca.metrics().value("comio_repair_quarantined_extents") == 1
