"""test_diff_deep.py - `comio diff --deep` and the deep listing (GET /{bucket}?deep=1) against real
sites: each site reads every object's bytes, verifies them (block checksums, or the MD5 where an
object has none) and lists a content digest, or the damage it found. Identical sites report
nothing; damage written into A's, B's or both images is reported as damaged on the right side and
never as a replication difference, while a plain diff does not see it at all (that is why --deep
exists); digests agree between a site with block checksums and one without; many objects over many
pages are all compared; progress on a terminal only; --rate-limit paces the sites' reads; the deep
listing needs the access token and bounds a page in bytes read. The oracle is what the test wrote
and damaged, and a CRC32C computed here. Every wait is bounded."""

import json
import re
import os
import pty
import subprocess
import sys
import threading
import time

from harness import comio
from harness.damage import damage, find_extent
from harness.replication import comio_path, converge_or_fail, new_token

BLOCK = 64 * 1024
CLI_TIMEOUT = 120.0


def _env():
    env = comio.sanitizer_env()
    env.pop("COMIO_TOKEN", None)
    return env


def comio_run(*args, expect=None):
    args = [str(a) for a in args]
    r = subprocess.run([str(comio_path())] + args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       errors="replace", timeout=CLI_TIMEOUT, env=_env())
    marker = comio.sanitizer_report(r.stderr)
    assert marker is None, "comio %s: sanitizer report (%s):\n%s" % (" ".join(args), marker, r.stderr)
    if expect is not None:
        assert r.returncode == expect, "comio %s exited %d, expected %d\n--- stdout:\n%s\n--- stderr:\n%s" % (
            " ".join(args), r.returncode, expect, r.stdout[-3000:], r.stderr[-3000:])
    return r


def diff(a, b, *args, expect=None):
    return comio_run("diff", "--source", a.url(), "--target", b.url(), *args, expect=expect)


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_T = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for x in data:
        c = _T[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def deep_pages(c, bucket, query=""):
    """Every page of the deep listing of bucket, following next_start_after, or the same start-after
    with the resume cursor of a page that stopped inside an object (bounded)."""
    pages, after, resume = [], None, None
    for _ in range(1000):
        path = "/%s?deep=1%s" % (bucket, query)
        if after is not None:
            path += "&start-after=" + after
        if resume is not None:
            path += "&resume=" + resume
        r = c.raw("GET", path)
        assert r.status == 200, (r.status, r.body)
        j = r.json()
        pages.append(j)
        if not j["is_truncated"]:
            return pages
        resume = j.get("resume")
        if resume is None:
            after = j["next_start_after"]
        else:
            assert j["objects"] == [] and j["next_start_after"] is None, j
    raise AssertionError("the deep listing did not end within 1000 pages")


def test_identical_sites_report_nothing(sites):
    a, b = sites()
    ca = a.client()
    sizes = [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 300_000, (1 << 20) + 7]
    for i, n in enumerate(sizes):
        assert ca.put("bkt", "k%d" % i, os.urandom(n)).status == 200
    converge_or_fail(a, b)
    r = diff(a, b, "--deep", expect=0)
    assert r.stdout.splitlines()[0] == "%d keys in 1 bucket (source %d, target %d): no differences" % (
        len(sizes), len(sizes), len(sizes)), r.stdout
    assert "no damaged objects" in r.stdout and r.stderr == "", (r.stdout, r.stderr)
    j = json.loads(diff(a, b, "--deep", "--json", expect=0).stdout)
    assert j["complete"] and j["differences"] == []
    c = j["counts"]
    assert (c["keys"], c["differences"], c["content"], c["damaged_source"], c["damaged_target"]) == (len(sizes), 0, 0, 0, 0)
    assert c["bytes"] == 2 * sum(sizes)


def test_damage_on_a_b_and_both_is_reported_apart(sites):
    a, b = sites()
    ca = a.client()
    data = {k: os.urandom(n) for k, n in (("on-a", 5 * BLOCK), ("on-b", 200_000), ("on-both", 4 * BLOCK + 9),
                                          ("clean", 3 * BLOCK))}
    for k, d in data.items():
        assert ca.put("bkt", k, d).status == 200
    converge_or_fail(a, b)
    ia, ib = a.workdir / "store.img", b.workdir / "store.img"
    damage(ia, find_extent(ia, data["on-a"]) + 3 * BLOCK + 1)      # block 3
    damage(ib, find_extent(ib, data["on-b"]) + 10)                 # block 0
    damage(ia, find_extent(ia, data["on-both"]) + 4 * BLOCK + 2)   # block 4, the partial last one
    damage(ib, find_extent(ib, data["on-both"]) + BLOCK + 7)       # block 1

    # a plain diff compares listings: the damage does not show (sizes, ETags and versions agree)
    r = diff(a, b, expect=0)
    assert "no differences" in r.stdout

    r = diff(a, b, "--deep", expect=4)
    lines = r.stdout.splitlines()
    assert "damaged on source  bkt/on-a  source: block 3 fails its checksum" in lines, r.stdout
    assert "damaged on target  bkt/on-b  target: block 0 fails its checksum" in lines, r.stdout
    assert "damaged on source  bkt/on-both  source: block 4 fails its checksum" in lines, r.stdout
    assert "damaged on target  bkt/on-both  target: block 1 fails its checksum" in lines, r.stdout
    assert not any("clean" in x for x in lines), r.stdout
    assert "4 keys in 1 bucket (source 4, target 4): no differences" in lines, r.stdout
    assert any(x.endswith("damaged: 2 on source, 2 on target") for x in lines), r.stdout
    assert len(lines) == 6, r.stdout  # four damage lines and the two summary lines, no replication difference

    j = json.loads(diff(a, b, "--deep", "--json", expect=4).stdout)
    c = j["counts"]
    assert (c["differences"], c["damaged_source"], c["damaged_target"]) == (0, 2, 2), c
    found = sorted((d["key"], d["side"], (d["source"] or d["target"])["damaged"]["block"]) for d in j["differences"])
    assert found == [("on-a", "source", 3), ("on-b", "target", 0), ("on-both", "source", 4), ("on-both", "target", 1)]
    assert all(d["type"] == "damaged" for d in j["differences"])
    # source and target swapped: the sides swap with them
    r = diff(b, a, "--deep", expect=4)
    assert "damaged on target  bkt/on-a  target: block 3 fails its checksum" in r.stdout.splitlines(), r.stdout
    # the sites counted and logged what they found
    assert ca.metrics().value("comio_checksum_mismatches_total", path="get") >= 2


def test_objects_without_checksums_are_checked_against_their_md5(sites):
    """B keeps no block checksums: its digest comes from the bytes and MD5 vouches for them. The
    digests agree with A's (taken with checksums) while the bytes are whole; damage on B is then
    reported through the MD5, without a block."""
    a, b = sites(b_extra={"storage": {"checksums": False}})
    ca = a.client()
    data = {"x": os.urandom(3 * BLOCK + 5), "y": os.urandom(1000), "empty": b""}
    for k, d in data.items():
        assert ca.put("bkt", k, d).status == 200
    converge_or_fail(a, b)
    for site, how in ((a, "blocks"), (b, "md5")):
        (page,) = deep_pages(site.client(), "bkt")
        got = {o["key"]: o for o in page["objects"]}
        for k, d in data.items():
            assert got[k]["digest"] == "%08x" % crc32c(d), (site.site_id, k, got[k])
            assert got[k]["verified"] == (how if d else "md5"), got[k]  # an empty object has no block
        assert page["bytes_read"] == sum(len(d) for d in data.values())
    diff(a, b, "--deep", expect=0)
    ib = b.workdir / "store.img"
    damage(ib, find_extent(ib, data["x"]) + 2 * BLOCK)
    r = diff(a, b, "--deep", expect=4)
    assert "damaged on target  bkt/x  target: the bytes fail the object's MD5 (no block checksums)" in r.stdout.splitlines()
    (page,) = deep_pages(b.client(), "bkt")
    x = [o for o in page["objects"] if o["key"] == "x"][0]
    assert x["damaged"] == {"reason": "md5", "block": None} and "digest" not in x


def test_many_objects_over_many_pages(sites):
    a, b = sites()
    ca = a.client()
    n = 230
    for i in range(n):
        assert ca.put("many", "k%04d" % i, os.urandom(100 + i)).status == 200
    converge_or_fail(a, b)
    ib = b.workdir / "store.img"
    last = os.urandom(5000)
    assert ca.put("many", "zz-last", last).status == 200  # the last key of the last page
    converge_or_fail(a, b)
    damage(ib, find_extent(ib, last) + 4000)
    j = json.loads(diff(a, b, "--deep", "--json", "--page-size", "7", expect=4).stdout)
    c = j["counts"]
    assert (c["keys"], c["source_keys"], c["target_keys"], c["damaged_target"]) == (n + 1, n + 1, n + 1, 1), c
    assert [d["key"] for d in j["differences"]] == ["zz-last"]


def test_deep_page_is_bounded_in_bytes(server):
    """max-bytes ends a page before the object whose bytes would pass it; an object larger than it is
    read over several pages, each given a resume cursor; every object still comes, once, in order,
    with the digest of its whole content."""
    c = server.client()
    sizes = [40_000] * 6 + [200_000] + [10_000] * 5
    want = {}
    for i, n in enumerate(sizes):
        d = os.urandom(n)
        want["k%02d" % i] = "%08x" % crc32c(d)
        assert c.put("bkt", "k%02d" % i, d).status == 200
    pages = deep_pages(c, "bkt", "&max-bytes=65536")
    got = [(o["key"], o["digest"]) for p in pages for o in p["objects"]]
    assert got == sorted(want.items())
    # 40 KB objects one a page; the 200 KB one cut at 64 KiB three times, its last 3392 bytes read with the
    # 10 KB ones (it is the page's first object: it comes whole, its budget counts what this page read)
    assert [p["bytes_read"] for p in pages] == [40_000] * 6 + [65536] * 3 + [3392 + 5 * 10_000]
    assert ["resume" in p for p in pages] == [False] * 6 + [True] * 3 + [False]
    # a cursor that is not one is refused; one for another version of the object starts it over
    r = c.raw("GET", "/bkt?deep=1&resume=1.zz.3.61")
    assert r.status == 400 and "resume" in r.json()["error"]
    r = c.raw("GET", "/bkt?deep=1&max-keys=1&start-after=k05&resume=65536.00000000.1.61")
    assert r.status == 200 and r.json()["objects"][0]["digest"] == want["k06"], r.body
    for q, what in (("&max-bytes=100", "max-bytes"), ("&max-bytes=x", "max-bytes"), ("&max-keys=0", "max-keys"),
                    ("&rate=-1", "rate"), ("&rate=65535", "rate")):
        r = c.raw("GET", "/bkt?deep=1" + q)
        assert r.status == 400 and what in r.json()["error"], (q, r.status, r.body)
    r = c.raw("GET", "/bkt?deep=yes")
    assert r.status == 400
    assert c.raw("GET", "/nobucket?deep=1").json()["code"] == "NoSuchBucket"


def test_deep_listing_needs_the_access_token(make_server):
    token = new_token()
    srv = make_server(config="server:\n  access_token: %s\n" % token, token=token)
    c = srv.client()
    assert c.put("bkt", "k", b"hello").status == 200
    anon = comio.Client("127.0.0.1", srv.port)
    try:
        assert anon.raw("GET", "/bkt?deep=1").status == 401
    finally:
        anon.close()
    (page,) = deep_pages(c, "bkt")
    assert page["objects"][0]["digest"] == "%08x" % crc32c(b"hello")


def test_rate_limit_paces_the_reads(sites):
    """At 1 MB/s a site's page reads about 1 MB and its reply waits out the second: the 2.5 MB object
    is read over three pages (resume cursors), and damage in its last blocks is still found."""
    a, b = sites()
    ca = a.client()
    for i in range(2):
        assert ca.put("bkt", "k%d" % i, os.urandom(500_000)).status == 200
    big = os.urandom(2_500_000)
    assert ca.put("bkt", "big", big).status == 200
    converge_or_fail(a, b)
    started = time.monotonic()
    r = diff(a, b, "--deep", "--rate-limit", "1MB/s", expect=0)
    assert r.stdout.startswith("3 keys in 1 bucket (source 3, target 3): no differences\n"), r.stdout
    assert "7.0 MB read and verified on the two sites; no damaged objects" in r.stdout, r.stdout
    # 3.5 MB a site at 1 MB/s, the sites in turn: each site's replies are held for about 3.5 s in all
    assert time.monotonic() - started >= 3.0
    ib = b.workdir / "store.img"
    damage(ib, find_extent(ib, big) + 2_400_000)
    r = diff(a, b, "--deep", "--rate-limit", "1MB/s", expect=4)
    assert "damaged on target  bkt/big  target: block %d fails its checksum" % (2_400_000 // BLOCK) in r.stdout, r.stdout
    pages = deep_pages(ca, "bkt", "&rate=1000000")  # what comio asked of A: the big object over 3 pages
    assert [len(p["objects"]) for p in pages] == [0, 0, 1, 2] and "resume" in pages[0] and "resume" in pages[1]
    diff(a, b, "--rate-limit", "1MB/s", expect=2)          # without --deep
    diff(a, b, "--deep", "--rate-limit", "fast", expect=2)  # not a rate
    r = diff(a, b, "--deep", "--rate-limit", "1KB/s", expect=2)  # a page would be held for a minute
    assert "at least 64KiB/s" in r.stderr, r.stderr


def test_progress_on_a_terminal_only(sites):
    """The progress line shows the objects and bytes compared and the rate, also while a large object
    is read over several pages (the first key: nothing is compared yet but its bytes)."""
    a, b = sites()
    ca = a.client()
    assert ca.put("bkt", "a-big", os.urandom(2_000_000)).status == 200
    for i in range(19):
        assert ca.put("bkt", "k%02d" % i, os.urandom(50_000)).status == 200
    converge_or_fail(a, b)
    master, slave = pty.openpty()
    chunks = []

    def reader():
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        p = subprocess.run([str(comio_path()), "diff", "--source", a.url(), "--target", b.url(), "--deep", "--page-size", "3",
                            "--rate-limit", "1MB/s"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, timeout=CLI_TIMEOUT, env=_env())
    finally:
        os.close(slave)
    t.join(10)
    os.close(master)
    shown = b"".join(chunks).decode(errors="replace")
    assert comio.sanitizer_report(shown) is None, shown
    assert p.returncode == 0, (p.returncode, shown)
    assert "comio diff --deep:" in shown and "MB compared" in shown and "MB/s" in shown, repr(shown)
    assert shown.endswith("\r\x1b[K"), repr(shown[-80:])
    assert re.search(r"diff --deep: 0 objects, (?!0\.0 MB)[0-9]+\.[0-9] MB compared", shown), repr(shown)
    assert p.stdout.decode().startswith("20 keys in 1 bucket (source 20, target 20): no differences\n")
    r = diff(a, b, "--deep", "--page-size", "3", expect=0)
    assert r.stderr == "" and "\r" not in r.stdout


# Runs argv[2:] as its child and writes the child's peak RSS (KiB) to the file argv[1] (test_cli.py's
# way: comio is forked from this small interpreter, not from pytest, whose RSS it would inherit).
_MEASURE = """
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execv(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def _fill(site, bucket, count, keyfmt, workers=8):
    """PUTs `count` small objects of random bytes on several connections."""
    errors = []

    def work(k):
        c = site.client(register=False)
        try:
            for i in range(k, count, workers):
                r = c.put(bucket, keyfmt % i, os.urandom(100))
                if r.status != 200:
                    errors.append(r)
                    return
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and not any(t.is_alive() for t in threads), errors[:3]


def test_memory_stays_flat_in_the_number_of_objects(sites, tmp_path):
    """comio diff --deep holds one page per site, never a listing: its peak memory for 3000 objects
    is that for 300, and every object is compared."""
    a, b = sites()
    keyfmt = "%05d/" + "k" * 200  # long keys: a listing kept in memory would show
    _fill(a, "big", 3000, keyfmt)
    _fill(a, "small", 300, keyfmt)
    converge_or_fail(a, b, sample=4)
    env = _env()
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
    rss = {}
    for bucket, n in (("small", 300), ("big", 3000)):
        rss_path = tmp_path / ("maxrss-" + bucket)
        r = subprocess.run([sys.executable, "-I", "-S", "-c", _MEASURE, str(rss_path), str(comio_path()), "diff", "--source",
                            a.url(), "--target", b.url(), "--bucket", bucket, "--deep", "--page-size", "100", "--json"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", timeout=CLI_TIMEOUT,
                           env=env)
        assert comio.sanitizer_report(r.stderr) is None, r.stderr
        assert r.returncode == 0, (r.returncode, r.stderr)
        c = json.loads(r.stdout)["counts"]
        assert (c["keys"], c["bytes"], c["damaged_source"], c["damaged_target"]) == (n, 2 * 100 * n, 0, 0), c
        rss[bucket] = int(rss_path.read_text())
    print("comio diff --deep peak RSS: %d KiB for 300 objects, %d KiB for 3000" % (rss["small"], rss["big"]))
    # keeping the 6000 listed entries of 206-byte keys would add more than 1 MB
    assert rss["big"] - rss["small"] < 1024, rss
