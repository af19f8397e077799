"""test_object_metadata.py - an object's metadata (docs/api.md, "Object metadata"): Content-Encoding,
Content-Disposition, Cache-Control, Expires, Content-Language and X-Amz-Meta-* are stored with the object,
returned on GET and HEAD, refused with 400 when invalid or too large (nothing stored), carried to a replica
inline, fetched and by a full sync, cleared by an overwrite without them, and compared by `comio diff`.

Real storaged and repld on loopback ports; every wait is bounded."""

import gzip
import json
import shutil
import subprocess

import pytest

from harness import comio
from harness.replication import comio_diff, comio_path, finish_sites, make_pair, wait_until

CONVERGE_TIMEOUT = 60
INLINE_THRESHOLD = 64 * 1024

STANDARD = {
    "Content-Encoding": "gzip",
    "Content-Disposition": 'attachment; filename="report.csv"',
    "Cache-Control": "max-age=3600, must-revalidate",
    "Expires": "Thu, 01 Dec 2033 16:00:00 GMT",
    "Content-Language": "en-GB",
}
USER = {"X-Amz-Meta-Colour": "Blue", "x-amz-meta-owner": "Ada Lovelace", "X-AMZ-META-EMPTY": ""}
META_NAMES = [n.lower() for n in list(STANDARD) + list(USER)]


def expected(headers):
    """{lower-case name: value} of the metadata headers among `headers`."""
    return {k.lower(): v for k, v in headers.items() if k.lower() in META_NAMES or k.lower().startswith("x-amz-meta-")}


def metadata_of(reply):
    """{lower-case name: value} of the metadata headers of a reply; a name twice fails."""
    out = {}
    for k, v in reply.headers.items():
        k = k.lower()
        if k in META_NAMES or k.startswith("x-amz-meta-"):
            assert k not in out, (k, reply)
            out[k] = v
    return out


@pytest.fixture
def pair(tmp_path):
    """pair(**kw) -> (a, b) started (make_pair); torn down, failing on a sanitizer report or a forced kill."""
    made = []

    def make(**kw):
        a, b = make_pair(tmp_path / ("pair%d" % len(made)), start=False, **kw)
        made.extend([a, b])
        b.start()
        a.start()
        return a, b

    yield make
    problems = finish_sites(made)
    if problems:
        pytest.fail("teardown:\n" + "\n".join(problems), pytrace=False)


def wait_clean(a, b):
    last = []

    def clean():
        nonlocal last
        last, counts = comio_diff(a, b)
        return not last and counts is not None and a.status()["log_pending"] == 0

    wait_until(clean, CONVERGE_TIMEOUT, interval=0.2, what=lambda: "comio diff clean: %s" % last[:10])


def test_put_stores_each_header_and_get_head_return_them(pair):
    a, _ = pair()
    c = a.client()
    body = gzip.compress(b"id,total\n1,10\n" * 100)
    hdrs = dict(STANDARD, **USER)
    hdrs["Content-Type"] = "text/csv"
    assert c.put("docs", "report.csv.gz", body, headers=hdrs).status == 200
    want = expected(hdrs)
    for method in (c.get, c.head):
        r = method("docs", "report.csv.gz")
        assert r.status == 200, r
        assert metadata_of(r) == want, r
        assert r.header("Content-Type") == "text/csv"
        assert r.header("Content-Length") == str(len(body))
    # stored as the client's bytes: Content-Encoding is the client's, not undone
    assert c.get("docs", "report.csv.gz").body == body
    # each header alone too
    for name, value in list(STANDARD.items()) + [("X-Amz-Meta-Solo", "1")]:
        key = "one/" + name
        assert c.put("docs", key, b"x", headers={name: value}).status == 200
        assert metadata_of(c.get("docs", key)) == {name.lower(): value}
    # a client's Content-Encoding: zstd is the client's too: never taken for replication's own (which only the
    # batch endpoint decodes), stored and served as sent
    assert c.put("docs", "z", b"not a zstd frame", headers={"Content-Encoding": "zstd"}).status == 200
    r = c.get("docs", "z", headers={"Accept-Encoding": "zstd"})
    assert r.body == b"not a zstd frame" and metadata_of(r) == {"content-encoding": "zstd"}, r
    # an object without any: none returned (not even an empty one)
    assert c.put("docs", "plain", b"x").status == 200
    assert metadata_of(c.head("docs", "plain")) == {}
    # a 304 and a range keep to their rules; a range still carries the metadata
    r = c.get("docs", "report.csv.gz", headers={"Range": "bytes=0-9"})
    assert r.status == 206 and metadata_of(r) == want, r
    # the listing carries a digest: equal metadata, equal digest; none is ""
    objs = {o["key"]: o for o in c.list("docs").json()["objects"]}
    assert objs["plain"]["meta_digest"] == ""
    assert len(objs["report.csv.gz"]["meta_digest"]) == 16
    assert objs["one/Cache-Control"]["meta_digest"] != objs["one/Expires"]["meta_digest"]


def test_overwrite_without_metadata_clears_it(pair):
    a, _ = pair()
    c = a.client()
    assert c.put("bkt1", "k", b"v1", headers=dict(USER, **{"Cache-Control": "no-store"})).status == 200
    assert metadata_of(c.get("bkt1", "k")) == expected(dict(USER, **{"Cache-Control": "no-store"}))
    assert c.put("bkt1", "k", b"v2").status == 200
    r = c.get("bkt1", "k")
    assert r.body == b"v2" and metadata_of(r) == {}, r
    # and another set replaces the first whole
    assert c.put("bkt1", "k", b"v3", headers={"x-amz-meta-new": "n"}).status == 200
    assert metadata_of(c.get("bkt1", "k")) == {"x-amz-meta-new": "n"}


def test_user_metadata_of_exactly_2_kib_is_stored_and_one_byte_more_refused(pair):
    """S3 counts user metadata as each name after X-Amz-Meta- plus its value: "big" (3) + 2045 = 2048."""
    a, _ = pair()
    c = a.client()
    fits = {"X-Amz-Meta-Big": "v" * (2048 - 3)}
    assert c.put("bkt1", "fits", b"x", headers=fits).status == 200
    assert metadata_of(c.get("bkt1", "fits")) == expected(fits)
    r = c.put("bkt1", "over", b"x", headers={"X-Amz-Meta-Big": "v" * (2048 - 2)})
    assert r.status == 400 and r.json()["code"] == "MetadataTooLarge", r
    assert c.get("bkt1", "over").status == 404


@pytest.mark.parametrize("headers, code, names", [
    ({"X-Amz-Meta-A": "v" * 1024, "X-Amz-Meta-B": "v" * 1024}, "MetadataTooLarge", "X-Amz-Meta-"),
    ({"Cache-Control": "c" * 3000, "Content-Disposition": "d" * 1200}, "MetadataTooLarge", "Content-Disposition"),
    ({"X-Amz-Meta-": "nameless"}, "InvalidArgument", "X-Amz-Meta-"),
    ({"X-Amz-Meta-" + "n" * 245: "v"}, "InvalidArgument", "X-Amz-Meta-nnnn"),  # a name of 256 bytes
    # a control character: h2o's parser refuses the request before storaged sees it (objmeta refuses it too)
    ({"X-Amz-Meta-Ctl": "a\x01b"}, None, None),
])
def test_invalid_or_oversized_metadata_is_refused_and_nothing_stored(pair, headers, code, names):
    a, _ = pair()
    c = a.client()
    assert c.put("bkt1", "k", b"old", headers={"x-amz-meta-keep": "1"}).status == 200
    version = c.head("bkt1", "k").header("x-comio-version")
    r = c.put("bkt1", "k", b"new", headers=headers)
    assert r.status == 400, r
    if code is not None:
        doc = r.json()
        assert doc["code"] == code and names.lower() in doc["error"].lower(), doc
    got = c.get("bkt1", "k")
    assert got.body == b"old" and metadata_of(got) == {"x-amz-meta-keep": "1"}, got
    assert got.header("x-comio-version") == version
    assert c.put("bkt1", "new", b"x", headers=headers).status == 400
    assert c.get("bkt1", "new").status == 404


def test_a_header_given_twice_is_refused(pair):
    """The harness client takes a dict: the request is written with http.client's putheader, twice."""
    import http.client
    a, _ = pair()
    h = http.client.HTTPConnection(a.host, a.port, timeout=10)
    try:
        h.putrequest("PUT", "/bkt1/twice")
        if a.access_token:
            h.putheader("Authorization", "Bearer %s" % a.access_token)
        h.putheader("X-Amz-Meta-Dup", "1")
        h.putheader("x-amz-meta-dup", "2")
        h.putheader("Content-Length", "1")
        h.endheaders(b"x")
        r = h.getresponse()
        body = json.loads(r.read())
        assert r.status == 400 and body["code"] == "InvalidArgument" and "twice" in body["error"], body
    finally:
        h.close()
    assert a.client().get("bkt1", "twice").status == 404


def test_replication_carries_metadata_inline_fetched_with_zstd_and_overwrites(pair):
    a, b = pair(a_repl={"compression": "zstd", "inline_threshold": INLINE_THRESHOLD})
    ca, cb = a.client(), b.client()
    small = b"small object"
    # larger than inline_threshold and compressible, so that the fetch endpoint's own zstd applies to it; a
    # gzip stream of stored blocks (level 0) is valid gzip and compresses well
    large = gzip.compress(b"".join(b"line %06d of a report\n" % i for i in range(20000)), compresslevel=0)
    assert len(large) > 2 * INLINE_THRESHOLD
    objs = {
        "inline": (small, dict(USER, **{"Content-Disposition": "inline"})),
        "large.gz": (large, dict(STANDARD, **{"X-Amz-Meta-Kind": "large"})),
        "bare": (b"no metadata", {}),
    }
    for key, (data, hdrs) in objs.items():
        assert ca.put("rep", key, data, headers=hdrs).status == 200
    wait_clean(a, b)
    for key, (data, hdrs) in objs.items():
        for c in (ca, cb):
            r = c.get("rep", key)
            assert r.status == 200 and r.body == data, (key, r.status, len(r.body))
            assert metadata_of(r) == expected(hdrs), (key, r)
    # the large one was fetched compressed: replication's zstd and the object's gzip stayed apart
    t = a.repld_status()["targets"][0]
    m = a.client().metrics()
    payload = m.value("comio_replication_fetch_payload_bytes_total", target=t["name"])
    wire = m.value("comio_replication_fetch_wire_bytes_total", target=t["name"])
    assert payload == len(large) and wire < payload * 0.7, (payload, wire)
    assert t["events_failed"] == 0, t
    # an overwrite without metadata clears it on B too; one with other metadata replaces it
    assert ca.put("rep", "inline", small).status == 200
    assert ca.put("rep", "large.gz", large, headers={"Cache-Control": "no-cache"}).status == 200
    wait_clean(a, b)
    assert metadata_of(cb.get("rep", "inline")) == {}
    assert metadata_of(cb.get("rep", "large.gz")) == {"cache-control": "no-cache"}


@pytest.mark.long
def test_full_sync_of_a_wiped_replica_ships_metadata(pair):
    a, b = pair()
    ca = a.client()
    objs = {"k%02d" % i: (b"x" * (10 + i), {"X-Amz-Meta-N": str(i), "Content-Language": "fr"} if i % 2 else {})
            for i in range(20)}
    for key, (data, hdrs) in objs.items():
        assert ca.put("fsync", key, data, headers=hdrs).status == 200
    wait_clean(a, b)
    store_before = b.status()["store_id"]
    # B loses its disk; repld sees a new store and rebuilds it by a full sync
    b.stop_storaged()
    for p in b.workdir.iterdir():
        if p.name.startswith("store.img"):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    b.start_storaged()
    assert b.status()["store_id"] != store_before

    def synced():
        s = a.repld_status()["targets"][0]["sync"]
        return s["phase"] == "done" and s.get("reason") == "store replaced" and s["objects_shipped"] >= len(objs)
    wait_until(synced, CONVERGE_TIMEOUT, interval=0.2, what="the full sync of the wiped B")
    wait_clean(a, b)
    cb = b.client()
    for key, (data, hdrs) in objs.items():
        r = cb.get("fsync", key)
        assert r.status == 200 and r.body == data and metadata_of(r) == expected(hdrs), (key, r)


def run_diff(a, b, *extra):
    p = subprocess.run([str(comio_path()), "diff", "--source", a.url(), "--target", b.url()] + list(extra),
                       capture_output=True, text=True, timeout=60, env=comio.sanitizer_env())
    assert comio.sanitizer_report(p.stderr) is None, p.stderr
    return p


def test_comio_diff_reports_same_bytes_with_other_metadata(pair):
    a, b = pair()
    ca, cb = a.client(), b.client()
    for i in range(5):
        assert ca.put("ddd", "k%d" % i, b"same bytes %d" % i, headers={"X-Amz-Meta-I": str(i)}).status == 200
    wait_clean(a, b)
    assert run_diff(a, b).returncode == 0
    # B written directly (B does not replicate): the same bytes, other metadata, and none at all
    assert cb.put("ddd", "k1", b"same bytes 1", headers={"X-Amz-Meta-I": "other"}).status == 200
    assert cb.put("ddd", "k2", b"same bytes 2").status == 200
    # and one with other bytes: still "different"
    assert cb.put("ddd", "k3", b"other bytes", headers={"X-Amz-Meta-I": "3"}).status == 200
    p = run_diff(a, b, "--json")
    assert p.returncode == 1, p.stdout + p.stderr
    doc = json.loads(p.stdout)
    kinds = {d["key"]: d["type"] for d in doc["differences"]}
    assert kinds == {"k1": "metadata", "k2": "metadata", "k3": "different"}, doc
    assert doc["counts"]["metadata"] == 2 and doc["counts"]["different"] == 1 and doc["counts"]["differences"] == 3
    k2 = [d for d in doc["differences"] if d["key"] == "k2"][0]
    assert len(k2["source"]["meta_digest"]) == 16 and k2["target"]["meta_digest"] == "", k2
    text = run_diff(a, b)
    assert text.returncode == 1
    lines = [x for x in text.stdout.splitlines() if x.startswith("other metadata")]
    assert len(lines) == 2 and "ddd/k1" in lines[0] and "ddd/k2" in lines[1], text.stdout
    assert "2 with other metadata" in text.stdout, text.stdout
    # --no-versions still compares metadata (it is the object's, not its version's)
    assert run_diff(a, b, "--no-versions", "--quiet").returncode == 1
    # B set back to A's metadata (a newer version on B): only the version differs, not "metadata"
    assert cb.put("ddd", "k1", b"same bytes 1", headers={"X-Amz-Meta-I": "1"}).status == 200
    doc = json.loads(run_diff(a, b, "--json").stdout)
    kinds = {d["key"]: d["type"] for d in doc["differences"]}
    assert kinds["k1"] == "version", doc
