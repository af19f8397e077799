"""test_replica_apply.py - the replica side of replication against real storaged processes.

Batches are built here with the msgpack module, records exactly as
docs/protocol.md lays them out, and POSTed to a storaged started with an
accept_token. Large objects are fetched from a second real storaged acting
as the primary (presigned URLs built here with hmac/hashlib), or from a small
scripted primary that misbehaves on purpose. Every wait is bounded.
"""

import hashlib
import http.client
import http.server
import json
import os
import ssl
import subprocess
import threading
import time

import msgpack
import pytest

from harness import comio
from harness.comio import expect_error, md5, wait_for
from harness.replication import presign

TOKEN = "replica-accept-token-0123456789abcdef"
PUT, DELETE, PURGE = 1, 2, 3
APPLIED, SKIPPED, RETRY, PERMANENT = 0, 1, 2, 3
MT = 1764000000000  # a fixed modification time (ms), so that Last-Modified can be checked


# --- building batches ------------------------------------------------------------


def record(seq, op, bucket, key="", data=None, size=None, etag=None, ctype=None, mt=MT, origin="site-a", hlc=None,
           parent=None):
    """A log record (docs/protocol.md) encoded with msgpack: format 1 (the version is the seq), or with `hlc`
    format 2 (a version of its own, and `parent`, a (version, origin) pair, when given)."""
    r = {"v": 1, "seq": seq, "op": op, "b": bucket}
    if hlc is not None:
        r["v"] = 2
        r["h"] = hlc
        if parent is not None:
            r["ph"], r["po"] = parent
    if op != PURGE:
        r["k"] = key
    if op == PUT:
        r["sz"] = len(data) if size is None else size
        r["et"] = hashlib.md5(data).digest() if etag is None else etag
        if ctype is not None:
            r["ct"] = ctype
    r["mt"] = mt
    r["o"] = origin
    return msgpack.packb(r, use_bin_type=True)


def put_event(seq, bucket, key, data, **kw):
    return {"r": record(seq, PUT, bucket, key, data=data, **kw), "d": data}


def url_event(seq, bucket, key, url, size, etag, **kw):
    return {"r": record(seq, PUT, bucket, key, data=b"", size=size, etag=etag, **kw), "u": url}


def delete_event(seq, bucket, key, **kw):
    return {"r": record(seq, DELETE, bucket, key, **kw)}


def purge_event(seq, bucket, **kw):
    return {"r": record(seq, PURGE, bucket, **kw)}


def batch(*events, src="site-a"):
    return msgpack.packb({"v": 1, "src": src, "ev": list(events)}, use_bin_type=True)


def send(client, body, token=TOKEN):
    headers = {"Content-Type": "application/msgpack"}
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    return client.raw("POST", "/admin/replication/batch", body, headers)


def apply(client, *events):
    """Sends one batch; returns the list of results, checked against the events."""
    r = send(client, batch(*events))
    assert r.status == 200, r
    assert r.headers.get("Content-Type") == "application/msgpack", r
    reply = msgpack.unpackb(r.body, raw=False)
    assert reply["v"] == 1
    res = reply["res"]
    assert len(res) == len(events), reply
    for ev, one in zip(events, res):
        assert one["seq"] == msgpack.unpackb(ev["r"], raw=False)["seq"]
    return res


def codes(res):
    return [x["r"] for x in res]


def replica_events(client):
    m = client.metrics()
    return {res: m.value("comio_replica_events_total", result=res) for res in ("applied", "skipped", "retry", "permanent")}


# --- fixtures --------------------------------------------------------------------


@pytest.fixture
def replica(make_server):
    return make_server(extra_args=["--accept-token", TOKEN])


@pytest.fixture
def rc(replica):
    return replica.client()


@pytest.fixture
def primary(make_server):
    """A second storaged acting as the primary: its remote_token is the replica's accept_token,
    and it has an access token that the fetch endpoint must not need."""
    return make_server(config="server:\n  access_token: primary-access\nreplication:\n  remote_token: %s\n" % TOKEN)


# --- apply: idempotence, ordering, tombstones, purges --------------------------------


def test_put_applies_then_resend_is_skipped(replica, rc):
    data = os.urandom(5000)
    ev = put_event(5, "photos", "a/b.jpg", data, ctype="image/jpeg")
    assert codes(apply(rc, ev)) == [APPLIED]
    r = rc.get("photos", "a/b.jpg")
    assert r.status == 200 and r.body == data
    assert r.header("Content-Type") == "image/jpeg"
    assert r.header("ETag") == '"%s"' % md5(data)
    assert r.header("X-Comio-Version") == "5"  # the primary's version, not a local one
    assert r.header("Last-Modified") == time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(MT // 1000))

    res = apply(rc, ev)
    assert codes(res) == [SKIPPED] and res[0]["st"] == 200
    assert rc.get("photos", "a/b.jpg").body == data
    buckets = rc.raw("GET", "/").json()["buckets"]
    assert [(b["name"], b["objects"], b["bytes"]) for b in buckets] == [("photos", 1, 5000)]
    ev_counts = replica_events(rc)
    assert ev_counts == {"applied": 1, "skipped": 1, "retry": 0, "permanent": 0}

    # durable: a restart keeps it, and still skips the duplicate
    replica.restart()
    rc = replica.client()
    assert rc.get("photos", "a/b.jpg").body == data
    assert codes(apply(rc, ev)) == [SKIPPED]


def test_out_of_order_put_is_skipped(rc):
    v7, v5 = b"version seven", b"version five"
    assert codes(apply(rc, put_event(7, "bkt", "k", v7))) == [APPLIED]
    res = apply(rc, put_event(5, "bkt", "k", v5))
    assert codes(res) == [SKIPPED] and "7" in res[0]["e"]
    r = rc.get("bkt", "k")
    assert r.body == v7 and r.header("X-Comio-Version") == "7"


def test_events_of_one_key_in_one_batch_apply_in_order(rc):
    res = apply(rc, put_event(5, "bkt", "k", b"five"), delete_event(6, "bkt", "k"), put_event(8, "bkt", "k", b"eight"),
                put_event(7, "bkt", "k", b"seven"))
    assert codes(res) == [APPLIED, APPLIED, APPLIED, SKIPPED]
    assert rc.get("bkt", "k").body == b"eight"
    assert rc.metrics().value("comio_replica_tombstones") == 0  # the PUT v8 replaced the tombstone


def test_delete_leaves_a_tombstone(replica, rc):
    assert codes(apply(rc, put_event(3, "bkt", "k", b"three"))) == [APPLIED]
    assert codes(apply(rc, delete_event(9, "bkt", "k"))) == [APPLIED]
    expect_error(rc.get("bkt", "k"), 404, "NoSuchKey")
    assert rc.metrics().value("comio_replica_tombstones") == 1

    # a late PUT older than the DELETE cannot bring the object back, not even after a restart
    assert codes(apply(rc, put_event(8, "bkt", "k", b"eight"))) == [SKIPPED]
    replica.restart()
    rc = replica.client()
    assert codes(apply(rc, put_event(8, "bkt", "k", b"eight"))) == [SKIPPED]
    assert codes(apply(rc, delete_event(9, "bkt", "k"), delete_event(4, "bkt", "k"))) == [SKIPPED, SKIPPED]
    expect_error(rc.get("bkt", "k"), 404, "NoSuchKey")
    assert rc.raw("GET", "/").json()["buckets"][0]["objects"] == 0

    # a newer PUT does
    assert codes(apply(rc, put_event(10, "bkt", "k", b"ten"))) == [APPLIED]
    assert rc.get("bkt", "k").body == b"ten"
    assert rc.metrics().value("comio_replica_tombstones") == 0


def test_delete_of_an_unknown_key_still_guards_it(rc):
    # the DELETE overtook the PUT it deletes: the PUT must not appear afterwards
    assert codes(apply(rc, delete_event(12, "fresh", "k"))) == [APPLIED]
    assert codes(apply(rc, put_event(11, "fresh", "k", b"eleven"))) == [SKIPPED]
    expect_error(rc.get("fresh", "k"), 404, "NoSuchBucket")


def test_tombstones_of_long_keys(rc):
    # keys longer than an LMDB key are hashed in the objkey scheme; two share their stored prefix
    k1, k2 = "x" * 1000 + "1", "x" * 1000 + "2"
    assert codes(apply(rc, put_event(1, "bkt", k1, b"one"), put_event(2, "bkt", k2, b"two"), delete_event(3, "bkt", k1))) == [
        APPLIED, APPLIED, APPLIED
    ]
    assert codes(apply(rc, put_event(2, "bkt", k1, b"late"))) == [SKIPPED]
    expect_error(rc.get("bkt", k1), 404, "NoSuchKey")
    assert rc.get("bkt", k2).body == b"two"
    assert codes(apply(rc, put_event(4, "bkt", k2, b"four"))) == [APPLIED]
    assert rc.get("bkt", k2).body == b"four"


def test_purge_keeps_newer_objects(rc):
    assert codes(apply(rc, put_event(10, "pbk", "old", b"ten"), put_event(25, "pbk", "new", b"twenty-five"),
                       delete_event(12, "pbk", "gone"))) == [APPLIED] * 3
    assert rc.metrics().value("comio_replica_tombstones") == 1
    assert codes(apply(rc, purge_event(20, "pbk"))) == [APPLIED]
    expect_error(rc.get("pbk", "old"), 404, "NoSuchKey")
    assert rc.get("pbk", "new").body == b"twenty-five"
    keys, _ = rc.list_all("pbk")
    assert keys == ["new"]
    assert [(b["objects"], b["bytes"]) for b in rc.raw("GET", "/").json()["buckets"]] == [(1, 11)]
    assert rc.metrics().value("comio_objects") == 1
    assert rc.metrics().value("comio_replica_tombstones") == 0  # the purge version covers them

    # PUTs older than the purge are skipped, newer ones apply; the purge itself is idempotent
    res = apply(rc, put_event(15, "pbk", "late", b"fifteen"), put_event(21, "pbk", "later", b"twenty-one"), purge_event(20, "pbk"),
                purge_event(18, "pbk"))
    assert codes(res) == [SKIPPED, APPLIED, SKIPPED, SKIPPED]
    expect_error(rc.get("pbk", "late"), 404, "NoSuchKey")
    assert rc.get("pbk", "later").body == b"twenty-one"


def test_purge_of_an_unknown_bucket_guards_it(rc):
    assert codes(apply(rc, purge_event(30, "nobucket"))) == [APPLIED]
    assert codes(apply(rc, put_event(29, "nobucket", "k", b"x"))) == [SKIPPED]
    assert codes(apply(rc, put_event(31, "nobucket", "k", b"y"))) == [APPLIED]


def test_local_and_remote_writes_order_by_version(replica, rc):
    """Versions are comparable across sites (a hybrid logical clock, then the site id): a local write and another
    site's are ordered the same way on every site, whichever came first."""
    r = rc.put("lwb", "j", b"written on B")
    assert r.status == 200
    local = int(r.header("X-Comio-Version"))
    site = r.header("X-Comio-Origin")
    assert site and r.json()["origin"] == site and r.json()["version"] == local
    # an older version from A (a legacy seq, or a clock value before the local write's) loses to it
    assert codes(apply(rc, put_event(2, "lwb", "j", b"from A, long ago"))) == [SKIPPED]
    assert codes(apply(rc, put_event(3, "lwb", "j", b"from A, just before", hlc=local - 1))) == [SKIPPED]
    r = rc.get("lwb", "j")
    assert r.body == b"written on B" and int(r.header("X-Comio-Version")) == local and r.header("X-Comio-Origin") == site
    # the same version: the site ids break the tie, byte by byte (a longer id that starts with the other sorts after)
    assert codes(apply(rc, put_event(4, "lwb", "j", b"from site+z", hlc=local, origin=site + "z"))) == [APPLIED]
    assert rc.get("lwb", "j").body == b"from site+z"
    # a newer one wins; the listing shows its version and origin
    assert codes(apply(rc, put_event(5, "lwb", "j", b"from A, later", hlc=local + 2, parent=(local, site)))) == [APPLIED]
    r = rc.get("lwb", "j")
    assert r.body == b"from A, later" and int(r.header("X-Comio-Version")) == local + 2
    assert r.header("X-Comio-Origin") == "site-a"
    listed = rc.raw("GET", "/lwb").json()["objects"]
    assert [(o["key"], o["version"], o["origin"]) for o in listed] == [("j", local + 2, "site-a")]

    # a local write made after applying a version orders after it (the clock follows what it applies)
    assert rc.metrics().value("comio_replication_clock_skew_events_total") == 0
    ahead = local + (3600 * 1000 << 16)  # an hour ahead: applied, counted, logged
    assert codes(apply(rc, put_event(6, "lwb", "k", b"from the future", hlc=ahead))) == [APPLIED]
    r = rc.put("lwb", "k", b"local, after")
    assert r.status == 200 and int(r.header("X-Comio-Version")) > ahead
    assert rc.metrics().value("comio_replication_clock_skew_events_total") == 1
    assert rc.metrics().value("comio_clock_seconds") * 1000 >= (int(r.header("X-Comio-Version")) >> 16) - 1
    warned = [line for line in replica.log().splitlines() if "far ahead of this site's clock" in line]
    assert len(warned) == 1 and '"origin":"site-a"' in warned[0], warned

    # a local DELETE leaves a tombstone: an older PUT from A arriving later does not bring the key back
    r = rc.delete("lwb", "k")
    assert r.status == 204
    deleted = int(r.header("X-Comio-Version"))
    assert deleted > ahead and r.header("X-Comio-Origin") == site
    assert codes(apply(rc, put_event(7, "lwb", "k", b"older", hlc=deleted - 1))) == [SKIPPED]
    expect_error(rc.get("lwb", "k"), 404, "NoSuchKey")
    assert codes(apply(rc, put_event(8, "lwb", "k", b"newer", hlc=deleted + 1))) == [APPLIED]
    assert rc.get("lwb", "k").body == b"newer"

    # a local PURGE keeps its version: older PUTs from A stay out, newer ones come in
    r = rc.purge("lwb")
    assert r.status == 200
    purged = r.json()["version"]
    assert int(r.header("X-Comio-Version")) == purged and r.json()["origin"] == site
    assert rc.list_all("lwb")[0] == []
    assert codes(apply(rc, put_event(9, "lwb", "old", b"x", hlc=purged - 1))) == [SKIPPED]
    assert codes(apply(rc, put_event(10, "lwb", "new", b"y", hlc=purged + 1))) == [APPLIED]
    # and a PURGE from A keeps what is newer than it, from any site
    assert codes(apply(rc, purge_event(11, "lwb", hlc=purged + 1, origin="site-0"))) == [APPLIED]
    assert rc.list_all("lwb")[0] == ["new"]
    assert codes(apply(rc, purge_event(12, "lwb", hlc=purged + 1, origin="site-b"))) == [APPLIED]
    assert rc.list_all("lwb")[0] == []
    assert rc.raw("GET", "/").json()["buckets"][0]["objects"] == 0


def test_space_is_freed_by_overwrites_deletes_and_purges(rc):
    used0 = rc.metrics().value("comio_store_used_bytes")
    assert codes(apply(rc, put_event(1, "spc", "a", b"a" * 10000), put_event(2, "spc", "b", b"b" * 10000))) == [APPLIED] * 2
    assert codes(apply(rc, put_event(3, "spc", "a", b"A" * 100))) == [APPLIED]
    assert codes(apply(rc, delete_event(4, "spc", "b"), purge_event(5, "spc"))) == [APPLIED] * 2
    assert comio.settled_used(rc, lambda u: u == used0) == used0


# --- refusals: permanent errors, 507, tokens, malformed batches ---------------------


def test_inline_data_with_wrong_md5_is_permanent(rc):
    used0 = rc.metrics().value("comio_store_used_bytes")
    data = b"the real bytes" * 100
    res = apply(rc, put_event(4, "bkt", "k", data, etag=hashlib.md5(b"other bytes").digest()), put_event(5, "bkt", "ok", b"fine"))
    assert codes(res) == [PERMANENT, APPLIED]
    assert res[0]["st"] == 400 and "ETag" in res[0]["e"]
    expect_error(rc.get("bkt", "k"), 404, "NoSuchKey")
    assert comio.settled_used(rc, lambda u: u == used0 + 4096) == used0 + 4096  # only "ok" holds space
    assert replica_events(rc)["permanent"] == 1


def test_events_no_replica_can_apply_are_permanent(rc):
    res = apply(rc, put_event(1, "admin", "k", b"x"), put_event(2, "Bad_Name", "k", b"x"),
                put_event(3, "bkt", "nul\x00key", b"x"), url_event(4, "bkt", "k", "ftp://example.com/x", 10, b"\0" * 16),
                put_event(5, "bkt", "empty", b"", etag=b"\1" * 16),
                # an origin that is no site id would go into X-Comio-Origin headers and fetch URLs
                put_event(6, "bkt", "k", b"x", origin="site\r\nX-Evil: 1"), put_event(7, "bkt", "k", b"x", origin="o" * 65),
                put_event(8, "bkt", "k", b"x", hlc=9, parent=(8, "a b")))
    assert codes(res) == [PERMANENT] * 8
    assert rc.raw("GET", "/").json()["buckets"] == []


def test_dates_of_any_replicated_mtime_are_well_formed(rc):
    """A record's mtime is any int64 off the wire: the dates shown are clamped to
    1970..9999, never a five-digit year, a negative fraction or garbage."""
    cases = [(-1, "Thu, 01 Jan 1970 00:00:00 GMT", "1970-01-01T00:00:00.000Z"),
             (-(2**63), "Thu, 01 Jan 1970 00:00:00 GMT", "1970-01-01T00:00:00.000Z"),
             (253402300800000 * 10, "Fri, 31 Dec 9999 23:59:59 GMT", "9999-12-31T23:59:59.999Z"),
             (2**63 - 1, "Fri, 31 Dec 9999 23:59:59 GMT", "9999-12-31T23:59:59.999Z")]
    events = [put_event(i + 1, "dates", "k%d" % i, b"x", mt=mt) for i, (mt, _, _) in enumerate(cases)]
    assert codes(apply(rc, *events)) == [APPLIED] * len(cases)
    listed = {o["key"]: o["last_modified"] for o in rc.raw("GET", "/dates").json()["objects"]}
    for i, (mt, http_date, iso) in enumerate(cases):
        r = rc.get("dates", "k%d" % i)
        assert r.status == 200 and r.header("Last-Modified") == http_date, (mt, r.header("Last-Modified"))
        assert listed["k%d" % i] == iso, (mt, listed)


def test_conditional_requests_compare_the_date_that_was_shown(rc):
    """A client sends back the Last-Modified it was given: for a replicated
    mtime outside 1970..9999 the comparison uses that clamped date too."""
    events = [put_event(1, "cdates", "late", b"x", mt=2**63 - 1), put_event(2, "cdates", "early", b"x", mt=-1500)]
    assert codes(apply(rc, *events)) == [APPLIED, APPLIED]
    for key in ("late", "early"):
        shown = rc.get("cdates", key).header("Last-Modified")
        r = rc.get("cdates", key, {"If-Modified-Since": shown})
        assert r.status == 304, (key, shown, r.status)
        r = rc.get("cdates", key, {"If-Unmodified-Since": shown})
        assert r.status == 200, (key, shown, r.status)
        r = rc.get("cdates", key, {"Range": "bytes=0-0", "If-Range": shown})
        assert r.status == 206, (key, shown, r.status)


def test_full_replica_answers_retry_and_writes_nothing(make_server):
    replica = make_server(size="1MB", extra_args=["--accept-token", TOKEN])
    rc = replica.client()
    used0 = rc.metrics().value("comio_store_used_bytes")
    first, second = os.urandom(600000), os.urandom(600000)
    res = apply(rc, put_event(1, "bkt", "first", first), put_event(2, "bkt", "second", second), delete_event(3, "bkt", "x"))
    assert codes(res) == [APPLIED, RETRY, APPLIED]
    assert res[1]["st"] == 507
    assert rc.get("bkt", "first").body == first
    expect_error(rc.get("bkt", "second"), 404, "NoSuchKey")
    assert rc.metrics().value("comio_store_used_bytes") == used0 + 602112  # "second" holds nothing
    assert replica_events(rc)["retry"] == 1

    # once space is back, the same event applies
    assert codes(apply(rc, delete_event(4, "bkt", "first"))) == [APPLIED]
    comio.settled_used(rc, lambda u: u == used0)
    assert codes(apply(rc, put_event(2, "bkt", "second", second))) == [APPLIED]
    assert rc.get("bkt", "second").body == second


def test_tokens(make_server, replica, rc):
    body = batch(put_event(1, "bkt", "k", b"x"))
    expect_error(send(rc, body, token=None), 401, "Unauthorized")
    expect_error(send(rc, body, token="wrong"), 401, "Unauthorized")
    expect_error(send(rc, body, token=TOKEN + "x"), 401, "Unauthorized")
    expect_error(rc.raw("GET", "/admin/replication/batch", None, {"Authorization": "Bearer " + TOKEN}), 405, "MethodNotAllowed")
    expect_error(rc.get("bkt", "k"), 404, "NoSuchBucket")

    # the access token is not the replication token, and is not needed either
    guarded = make_server(config="server:\n  access_token: acc\nreplication:\n  accept_token: %s\n" % TOKEN)
    gc = guarded.client()
    expect_error(send(gc, body, token="acc"), 401, "Unauthorized")
    assert codes(apply(gc, put_event(1, "bkt", "k", b"x"))) == [APPLIED]

    # no accept_token: every batch is refused, and the log says why once, not per request
    closed = make_server()
    cc = closed.client()
    for _ in range(3):
        r = expect_error(send(cc, body), 403, "ReplicationNotAccepted")
        assert "accept_token" in r["error"]
    expect_error(cc.get("bkt", "k"), 404, "NoSuchBucket")
    assert closed.log().count("replication.accept_token is not set") == 1


def test_malformed_batches_change_nothing(rc):
    good = put_event(1, "bkt", "k", b"x")
    bad_record = {"r": msgpack.packb({"v": 1, "seq": 2, "op": 9, "b": "bkt", "k": "k", "mt": 0, "o": "a"}), "d": b""}
    both = dict(put_event(3, "bkt", "k2", b"y"), u="http://127.0.0.1:9/x")
    short = {"r": record(4, PUT, "bkt", "k3", data=b"abc"), "d": b"ab"}
    for body in (b"", b"\xc1", b"not msgpack at all", msgpack.packb([1, 2, 3]), msgpack.packb({"v": 2, "src": "a", "ev": []}),
                 batch(good, bad_record), batch(good, both), batch(good, short), batch(good) + b"\x00"):
        expect_error(send(rc, body), 400, "MalformedBatch")
    expect_error(rc.get("bkt", "k"), 404, "NoSuchBucket")
    assert replica_events(rc) == {"applied": 0, "skipped": 0, "retry": 0, "permanent": 0}
    assert apply(rc) == []  # an empty batch is fine


def test_a_batch_takes_few_commits(rc):
    events = [put_event(i + 1, "many", "k%03d" % i, os.urandom(100 + i)) for i in range(100)]
    before = rc.metrics().value("comio_commits_total")
    assert codes(apply(rc, *events)) == [APPLIED] * 100
    mid = rc.metrics().value("comio_commits_total")
    assert mid - before <= 2  # allocate, then finish every event in one synced commit
    # deletes of keys never seen (tombstones only: no extent is released, so no
    # later round frees one): nothing to write, one commit
    assert codes(apply(rc, *[delete_event(200 + i, "many", "x%03d" % i) for i in range(100)])) == [APPLIED] * 100
    assert rc.metrics().value("comio_commits_total") - mid <= 1
    assert rc.metrics().value("comio_replica_tombstones") == 100
    assert len(rc.list_all("many")[0]) == 100


def test_applied_events_are_logged_again_for_a_chain(make_server):
    """A site with replication enabled itself logs what it applies (a chain A -> B -> C), a duplicate or a stale
    event never (what ends every loop); one that loses a conflict is logged, once; its own writes are logged too."""
    replica = make_server(replication=True, extra_args=["--accept-token", TOKEN])
    rc = replica.client()
    events = (put_event(1, "bkt", "k", b"x"), delete_event(2, "bkt", "j"), purge_event(3, "other"))
    assert codes(apply(rc, *events)) == [APPLIED] * 3
    st = rc.repl_status()
    assert st["log_head_seq"] == 3
    assert codes(apply(rc, *events)) == [SKIPPED] * 3  # duplicates
    # stale: older than site-a's DELETE of the key, which this site has seen
    assert codes(apply(rc, put_event(4, "bkt", "j", b"stale", hlc=1, origin="site-a"))) == [SKIPPED]
    assert rc.repl_status()["log_head_seq"] == 3
    # written on site "a" without seeing site-a's PUT of k: a conflict it loses, logged for the sites further on
    loser = put_event(5, "bkt", "k", b"concurrent", hlc=1, origin="a")
    assert codes(apply(rc, loser)) == [SKIPPED]
    assert rc.repl_status()["log_head_seq"] == 4
    assert rc.metrics().value("comio_replication_conflicts_total") == 1
    assert codes(apply(rc, loser)) == [SKIPPED]  # a copy of it: seen now, not logged again, no second conflict
    assert rc.repl_status()["log_head_seq"] == 4
    assert rc.metrics().value("comio_replication_conflicts_total") == 1
    assert rc.put("bkt", "local", b"local write").status == 200  # a local write is logged
    assert rc.repl_status()["log_head_seq"] == 5


def test_expired_tombstones_are_collected(make_server):
    replica = make_server(config="replication:\n  accept_token: %s\n  tombstone_ttl: 1ms\n" % TOKEN)
    rc = replica.client()
    assert codes(apply(rc, put_event(3, "bkt", "k", b"x"), delete_event(9, "bkt", "k"))) == [APPLIED, APPLIED]
    # a collection pass runs at start-up (then at most once a minute)
    replica.restart()
    rc = replica.client()
    assert wait_for(lambda: rc.metrics().value("comio_replica_tombstones") == 0)
    assert "expired tombstones collected" in replica.log()
    # the documented price: a PUT older than a forgotten DELETE applies again
    assert codes(apply(rc, put_event(8, "bkt", "k", b"resurrected"))) == [APPLIED]


# --- large objects: fetched from the primary ------------------------------------------


def test_fetch_from_the_primary(primary, rc):
    pc = primary.client(token="primary-access")
    data = os.urandom(3 * 1024 * 1024 + 123)
    put = pc.put("big", "dir/large object+1.bin", data, {"Content-Type": "application/x-big"}).json()
    url = presign(TOKEN, primary.url("").rstrip("/"), "big", "dir/large object+1.bin", put["version"], int(time.time()) + 600)
    res = apply(rc, url_event(put["version"], "big", "dir/large object+1.bin", url, len(data), hashlib.md5(data).digest(),
                              ctype="application/x-big"))
    assert codes(res) == [APPLIED], res
    r = rc.get("big", "dir/large object+1.bin")
    assert r.status == 200 and r.body == data  # byte for byte
    assert r.header("Content-Type") == "application/x-big"
    assert r.header("X-Comio-Version") == str(put["version"])

    # mixed with inline events in the same batch
    small = b"small and inline"
    put2 = pc.put("big", "second", data[::-1]).json()
    url2 = presign(TOKEN, primary.url("").rstrip("/"), "big", "second", put2["version"], int(time.time()) + 600)
    res = apply(rc, put_event(100, "big", "inline", small),
                url_event(put2["version"], "big", "second", url2, len(data), hashlib.md5(data[::-1]).digest()),
                delete_event(101, "big", "nothing"))
    assert codes(res) == [APPLIED, APPLIED, APPLIED]
    assert rc.get("big", "second").body == data[::-1]
    assert rc.get("big", "inline").body == small


def test_fetch_of_an_overwritten_or_deleted_version_is_skipped(primary, rc):
    pc = primary.client(token="primary-access")
    old, new = os.urandom(200000), os.urandom(200000)
    v1 = pc.put("bk1", "k", old).json()["version"]
    v2 = pc.put("bk1", "k", new).json()["version"]
    base = primary.url("").rstrip("/")
    exp = int(time.time()) + 600
    res = apply(rc, url_event(v1, "bk1", "k", presign(TOKEN, base, "bk1", "k", v1, exp), len(old), hashlib.md5(old).digest()))
    assert codes(res) == [SKIPPED] and res[0]["st"] == 410
    expect_error(rc.get("bk1", "k"), 404, "NoSuchBucket")
    assert codes(apply(rc, url_event(v2, "bk1", "k", presign(TOKEN, base, "bk1", "k", v2, exp), len(new),
                                     hashlib.md5(new).digest()))) == [APPLIED]
    assert pc.delete("bk1", "k").status == 204
    res = apply(rc, url_event(v2 + 5, "bk1", "k", presign(TOKEN, base, "bk1", "k", v2, exp), len(new), hashlib.md5(new).digest()))
    assert codes(res) == [SKIPPED] and res[0]["st"] == 410
    assert rc.get("bk1", "k").body == new


def test_fetch_with_wrong_size_or_etag_is_retried(primary, replica, rc):
    pc = primary.client(token="primary-access")
    data = os.urandom(100000)
    v = pc.put("bk2", "k", data).json()["version"]
    url = presign(TOKEN, primary.url("").rstrip("/"), "bk2", "k", v, int(time.time()) + 600)
    used0 = rc.metrics().value("comio_store_used_bytes")
    res = apply(rc, url_event(v, "bk2", "k", url, len(data), hashlib.md5(b"something else").digest()),
                url_event(v, "bk2", "k", url, len(data) - 1, hashlib.md5(data).digest()),
                url_event(v, "bk2", "k", url, len(data) + 1, hashlib.md5(data).digest()))
    assert codes(res) == [RETRY] * 3, res
    assert all(x["st"] == 502 for x in res)
    assert "ETag" in res[0]["e"] and "bytes" in res[1]["e"] and "size" in res[2]["e"]
    expect_error(rc.get("bk2", "k"), 404, "NoSuchBucket")
    assert comio.settled_used(rc, lambda u: u == used0) == used0
    assert "fetch from the primary failed" in replica.log()
    # the right record applies
    assert codes(apply(rc, url_event(v, "bk2", "k", url, len(data), hashlib.md5(data).digest()))) == [APPLIED]


def test_unreachable_primary_is_a_retry(rc):
    port = comio.free_port()  # nobody listens there
    res = apply(rc, url_event(1, "bk3", "k", "http://127.0.0.1:%d/admin/replication/fetch/bk3/k?version=1" % port, 5,
                              hashlib.md5(b"hello").digest()))
    assert codes(res) == [RETRY] and res[0]["st"] == 504


class _Scripted(http.server.BaseHTTPRequestHandler):
    """A primary that misbehaves on purpose: the path picks the answer."""

    protocol_version = "HTTP/1.1"
    body = b"0123456789" * 10000
    stalled = threading.Event()  # set once a "stall" request is being answered

    def do_GET(self):
        what = self.path.split("?")[0].rsplit("/", 1)[-1]
        if what == "stall":
            # headers, then a byte now and then: alive, but never done (bounded: 2 minutes)
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            _Scripted.stalled.set()
            try:
                for i in range(240):
                    self.wfile.write(self.body[i:i + 1])
                    self.wfile.flush()
                    time.sleep(0.5)
            except OSError:
                pass  # the replica gave up: that is the point
            self.close_connection = True
        elif what == "gone":
            self._send(410, b'{"error":"gone","code":"VersionGone"}')
        elif what == "busy":
            self._send(503, b"try later")
        elif what == "short":
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body[: len(self.body) // 2])
            self.wfile.flush()
            self.close_connection = True
        else:
            self._send(200, self.body)

    def _send(self, status, payload):
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield "http://127.0.0.1:%d" % srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def test_misbehaving_primary(scripted, rc):
    body = _Scripted.body
    et = hashlib.md5(body).digest()
    res = apply(rc, url_event(1, "bk4", "gone", scripted + "/x/gone", len(body), et),
                url_event(2, "bk4", "busy", scripted + "/x/busy", len(body), et),
                url_event(3, "bk4", "short", scripted + "/x/short", len(body), et),
                url_event(4, "bk4", "fine", scripted + "/x/fine", len(body), et))
    assert codes(res) == [SKIPPED, RETRY, RETRY, APPLIED], res
    assert [x["st"] for x in res] == [410, 502, 502, 200]
    assert "503" in res[1]["e"]
    assert rc.get("bk4", "fine").body == body
    keys, _ = rc.list_all("bk4")
    assert keys == ["fine"]


def make_ca_and_cert(d):
    """A test CA and a certificate for 127.0.0.1 signed by it (openssl CLI)."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=comio replica test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem",
        "-days", "2", "-extfile", "san.ext")


def test_shutdown_does_not_wait_for_a_fetch(scripted, replica, rc):
    body = _Scripted.body
    _Scripted.stalled.clear()
    replies = []

    def send_batch():
        try:
            replies.append(apply(rc, put_event(1, "bk6", "inline", b"inline"),
                                 url_event(2, "bk6", "slow", scripted + "/x/stall", len(body), hashlib.md5(body).digest())))
        except Exception as e:  # recorded, so that the assertion below shows it
            replies.append(e)

    t = threading.Thread(target=send_batch, daemon=True)
    t.start()
    assert _Scripted.stalled.wait(timeout=20), "the replica never started the fetch"
    # SIGTERM: the harness fails the test if storaged needs SIGKILL (10 s)
    assert replica.stop() == 0
    t.join(timeout=20)
    assert not t.is_alive()
    # the batch in flight was answered before the server went: inline applied, the fetch to be retried
    assert len(replies) == 1 and isinstance(replies[0], list), replies
    assert codes(replies[0]) == [APPLIED, RETRY], replies
    assert replies[0][1]["st"] == 503 and "shutting down" in replies[0][1]["e"]
    replica.start()
    rc = replica.client()
    assert rc.get("bk6", "inline").body == b"inline"
    expect_error(rc.get("bk6", "slow"), 404, "NoSuchKey")


def test_https_primary_is_verified(make_server, tmp_path):
    make_ca_and_cert(tmp_path)
    ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    primary = make_server(start=False, config="server:\n  tls: {cert: %s, key: %s}\nreplication:\n  remote_token: %s\n" %
                          (tmp_path / "server.pem", tmp_path / "server.key", TOKEN))

    def wait_tls():  # comio.Server polls plain HTTP; this one speaks HTTPS only
        def up():
            assert primary.proc.poll() is None, primary.log_tail()
            try:
                c = http.client.HTTPSConnection(primary.host, primary.port, context=ctx, timeout=2)
                try:
                    c.request("GET", "/admin/health")
                    return c.getresponse().status == 200
                finally:
                    c.close()
            except OSError:
                return False
        assert wait_for(up, timeout=comio.START_TIMEOUT), "the TLS primary did not come up"

    primary._wait_ready = wait_tls
    primary.start()
    data = os.urandom(150000)
    c = http.client.HTTPSConnection(primary.host, primary.port, context=ctx, timeout=10)
    c.request("PUT", "/tbk/k", body=data)
    resp = c.getresponse()
    version = json.loads(resp.read())["version"]
    c.close()
    url = presign(TOKEN, "https://127.0.0.1:%d" % primary.port, "tbk", "k", version, int(time.time()) + 600)
    ev = url_event(version, "tbk", "k", url, len(data), hashlib.md5(data).digest())

    # the system's CAs do not know the test CA: the fetch fails, to be retried
    plain = make_server(extra_args=["--accept-token", TOKEN]).client()
    res = apply(plain, ev)
    assert codes(res) == [RETRY] and res[0]["st"] == 504 and "certificate" in res[0]["e"], res
    expect_error(plain.get("tbk", "k"), 404, "NoSuchBucket")

    # replication.ca_file names it: verified, fetched
    trusting = make_server(config="replication:\n  accept_token: %s\n  ca_file: %s\n" % (TOKEN, tmp_path / "ca.pem")).client()
    assert codes(apply(trusting, ev)) == [APPLIED]
    assert trusting.get("tbk", "k").body == data


# --- the primary's fetch endpoint -------------------------------------------------------


def test_fetch_endpoint_checks_signature_expiry_and_version(primary, make_server):
    pc = primary.client(token="primary-access")
    anon = primary.client()  # no Authorization header at all
    data = os.urandom(70000)
    v = pc.put("fbk", "a/k", data, {"Content-Type": "text/x-test"}).json()["version"]
    base = ""
    exp = int(time.time()) + 600

    good = presign(TOKEN, base, "fbk", "a/k", v, exp)
    r = anon.raw("GET", good, None, {})
    assert r.status == 200 and r.body == data
    assert r.header("ETag") == '"%s"' % md5(data) and r.header("X-Comio-Version") == str(v)
    assert r.header("Content-Type") == "text/x-test"

    tampered_sig = good[:-1] + ("0" if good[-1] != "0" else "1")
    tampered_version = good.replace("version=%d" % v, "version=%d" % (v + 1))
    tampered_key = good.replace("/a/k?", "/a/j?")
    tampered_expiry = good.replace("expires=%d" % exp, "expires=%d" % (exp + 1))
    upper = good[:-64] + good[-64:].upper()
    for url in (tampered_sig, tampered_version, tampered_key, tampered_expiry, upper, good.split("&sig=")[0],
                good.replace("version=%d" % v, "version=x")):
        expect_error(anon.raw("GET", url, None, {}), 403, "SignatureDoesNotMatch")
    # a version past 2^64 is not read as 2^64-1: it is a URL nobody signed
    top = presign(TOKEN, base, "fbk", "a/k", 2**64 - 1, exp)
    expect_error(anon.raw("GET", top, None, {}), 410, "VersionGone")
    expect_error(anon.raw("GET", top.replace("version=%d" % (2**64 - 1), "version=99999999999999999999"), None, {}),
                 403, "SignatureDoesNotMatch")
    expired = presign(TOKEN, base, "fbk", "a/k", v, int(time.time()) - 10)
    expect_error(anon.raw("GET", expired, None, {}), 403, "ExpiredSignature")
    other_token = presign("not-the-token", base, "fbk", "a/k", v, exp)
    expect_error(anon.raw("GET", other_token, None, {}), 403, "SignatureDoesNotMatch")

    # a good signature for a version that is no longer current: 410
    stale = presign(TOKEN, base, "fbk", "a/k", v - 1 if v > 1 else v + 100, exp)
    expect_error(anon.raw("GET", stale, None, {}), 410, "VersionGone")
    assert pc.put("fbk", "a/k", b"newer").status == 200
    expect_error(anon.raw("GET", good, None, {}), 410, "VersionGone")
    assert pc.delete("fbk", "a/k").status == 204
    expect_error(anon.raw("GET", good, None, {}), 410, "VersionGone")
    expect_error(anon.raw("GET", presign(TOKEN, base, "nob", "k", 1, exp), None, {}), 410, "VersionGone")
    expect_error(anon.raw("PUT", good, b"x", {}), 405, "MethodNotAllowed")

    # no remote_token: the endpoint serves nothing
    plain = make_server()
    pl = plain.client()
    assert pl.put("fbk", "a/k", data).status == 200
    expect_error(pl.raw("GET", presign(TOKEN, base, "fbk", "a/k", 1, exp), None, {}), 403, "AccessDenied")


def test_metrics_document_the_replica(rc):
    m = rc.metrics()
    assert m.types.get("comio_replica_events_total") == "counter"
    assert m.types.get("comio_replica_tombstones") == "gauge"
    assert replica_events(rc) == {"applied": 0, "skipped": 0, "retry": 0, "permanent": 0}
