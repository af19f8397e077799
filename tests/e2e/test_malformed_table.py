"""test_malformed_table.py - malformed HTTP requests and malformed replication
batches, one table each: every row gets its documented 4xx, and after every
row the server still serves and nothing changed.

One storaged serves the whole module: replication enabled (so that there is a
log whose head must not move) and an accept_token (so that batches reach the
decoder). Each row is its own test; the state compared after it is taken
right before it, so a row that changes something fails alone.

Where an answer comes from:
  - "json": storaged's handler, a JSON error {"error", "code"} with a
    Content-Length (docs/api.md);
  - "h2o": h2o 2.2.5 refuses the request while parsing it, before storaged's
    handler runs, with its own plain-text 4xx (broken framing, broken
    chunked encoding, unknown Transfer-Encoding, bad header syntax, a body
    over server.max_object_size). Nothing reaches storaged.

What the server accepts on purpose, so not in the table: chunked request
bodies (h2o decodes them; a Transfer-Encoding: chunked beside a Content-Length
wins, RFC 9112 6.3), repeated Content-Length headers (h2o 2.2.5 frames the
body by the first one and keeps no other in the request, so storaged cannot
tell; a proxy in front must refuse conflicting ones), an
unparsable or multi-range Range header (ignored: the whole object, 200), and
unknown keys in a batch, whatever their value or nesting depth (skipped,
docs/protocol.md): a batch whose only oddity is a 200 000-deep unknown value
is answered 200 with no results.
"""

import hashlib
import json
import struct

import msgpack
import pytest

from harness import comio
from harness.comio import Client, expect_error, raw_exchange, status_of

TOKEN = "malformed-table-accept-token-0123456789"
PUT, DELETE, PURGE = 1, 2, 3
PERMANENT = 3
KEEP = b"still here"


# --- the server and what must not change ---------------------------------------------


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = comio.Server(tmp_path_factory.mktemp("malformed"), replication=True,
                          extra_args=["--accept-token", TOKEN])
    server.start()
    c = server.client()
    assert c.put("bkt", "keep", KEEP).status == 200
    yield server
    problems = server.finish()
    if problems:
        pytest.fail("storaged teardown:\n" + "\n".join(problems), pytrace=False)


def state(server):
    """What no malformed request may change, read on a fresh connection."""
    c = Client(server.host, server.port, timeout=10)
    try:
        assert c.health().status == 200
        r = c.get("bkt", "keep")
        assert r.status == 200 and r.body == KEEP, r
        buckets = sorted((b["name"], b["objects"], b["bytes"]) for b in c.raw("GET", "/").json()["buckets"])
        st = c.repl_status()
        m = c.metrics()
        return {
            "buckets": buckets,
            "keys": c.list_all("bkt")[0],
            "log_head_seq": st["log_head_seq"],
            "events_queued": st["events_queued"],
            "objects": m.value("comio_objects"),
            "replica_events": {res: m.value("comio_replica_events_total", result=res)
                               for res in ("applied", "skipped", "retry", "permanent")},
        }
    finally:
        c.close()


def parse_raw(raw):
    """(status, headers dict with lower-case names, body) of the first response in raw bytes."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return status_of(raw), headers, body


def check_answer(name, raw, status, code):
    """The answer of one row: `status` with the JSON `code`, or with code "h2o" h2o's own plain-text 4xx."""
    got, headers, body = parse_raw(raw)
    assert got == status, "%s: expected %d, got %r" % (name, status, raw[:300])
    assert "content-length" in headers and int(headers["content-length"]) == len(body), \
        "%s: no Content-Length or a short body: %r" % (name, raw[:300])
    if code == "h2o":
        assert not headers.get("content-type", "").startswith("application/json"), raw[:300]
        return
    assert headers.get("content-type", "").startswith("application/json"), "%s: not JSON: %r" % (name, raw[:300])
    err = json.loads(body.decode())
    assert err.get("code") == code, "%s: expected code %s, got %r" % (name, code, err)
    assert isinstance(err.get("error"), str) and err["error"], err


# --- HTTP ----------------------------------------------------------------------------------


def req(line, headers=b"", body=b""):
    return line + b"\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n" + body


def put_req(path, body=b"abc", headers=b""):
    return req(b"PUT " + path + b" HTTP/1.1", headers + b"Content-Length: %d\r\n" % len(body), body)


# (name, raw request, status, code): code is the JSON error code, or "h2o" (see the module doc)
HTTP_ROWS = [
    # paths and percent-encoding (docs/api.md, Names)
    ("pct-bad-hex", put_req(b"/bkt/%zz"), 400, "InvalidURI"),
    ("pct-truncated", put_req(b"/bkt/key%4"), 400, "InvalidURI"),
    ("pct-nul-in-key", put_req(b"/bkt/a%00b"), 400, "InvalidKey"),
    ("key-1025", put_req(b"/bkt/" + b"k" * 1025), 400, "KeyTooLong"),
    ("key-1025-encoded", put_req(b"/bkt/" + b"%6b" * 1025), 400, "KeyTooLong"),
    ("absolute-form-target", req(b"GET http://127.0.0.1/bkt/keep HTTP/1.1"), 400, "InvalidURI"),
    ("asterisk-target", req(b"OPTIONS * HTTP/1.1"), 400, "InvalidURI"),
    ("empty-bucket-segment", req(b"GET //bkt/keep HTTP/1.1"), 400, "InvalidBucketName"),
    ("encoded-slash-in-bucket", req(b"GET /bk%2Ft/keep HTTP/1.1"), 400, "InvalidBucketName"),
    ("nul-in-target", req(b"GET /bkt/ke\x00ep HTTP/1.1"), 400, "h2o"),
    ("space-in-target", req(b"GET /bkt/ke ep HTTP/1.1"), 400, "h2o"),
    # bucket names
    ("bucket-upper", put_req(b"/Bucket/k"), 400, "InvalidBucketName"),
    ("bucket-too-short", req(b"PUT /ab HTTP/1.1", b"Content-Length: 0\r\n"), 400, "InvalidBucketName"),
    ("bucket-ipv4", req(b"PUT /10.1.2.3 HTTP/1.1", b"Content-Length: 0\r\n"), 400, "InvalidBucketName"),
    ("bucket-xn-prefix", req(b"PUT /xn--abc HTTP/1.1", b"Content-Length: 0\r\n"), 400, "InvalidBucketName"),
    ("bucket-s3alias-suffix", req(b"PUT /abc-s3alias HTTP/1.1", b"Content-Length: 0\r\n"), 400, "InvalidBucketName"),
    ("bucket-encoded-upper", put_req(b"/%41bc/k"), 400, "InvalidBucketName"),
    ("bucket-reserved-metrics", req(b"PUT /metrics HTTP/1.1", b"Content-Length: 0\r\n"), 400, "InvalidBucketName"),
    ("purge-bad-bucket", req(b"DELETE /admin/Bad_B/objects?confirm=true HTTP/1.1"), 400, "InvalidBucketName"),
    # Range: one that starts beyond the end is 416 with Content-Range
    ("range-beyond-end", req(b"GET /bkt/keep HTTP/1.1", b"Range: bytes=10-\r\n"), 416, "InvalidRange"),
    ("range-suffix-zero", req(b"GET /bkt/keep HTTP/1.1", b"Range: bytes=-0\r\n"), 416, "InvalidRange"),
    ("range-huge-start", req(b"GET /bkt/keep HTTP/1.1", b"Range: bytes=99999999999999999999999-\r\n"), 416, "InvalidRange"),
    # max-keys is 1 to 1000, and the other listing parameters are bounded
    ("max-keys-0", req(b"GET /bkt?max-keys=0 HTTP/1.1"), 400, "InvalidArgument"),
    ("max-keys-1001", req(b"GET /bkt?max-keys=1001 HTTP/1.1"), 400, "InvalidArgument"),
    ("max-keys-word", req(b"GET /bkt?max-keys=ten HTTP/1.1"), 400, "InvalidArgument"),
    ("max-keys-empty", req(b"GET /bkt?max-keys= HTTP/1.1"), 400, "InvalidArgument"),
    ("max-keys-negative", req(b"GET /bkt?max-keys=-1 HTTP/1.1"), 400, "InvalidArgument"),
    ("max-keys-leading-space", req(b"GET /bkt?max-keys=%2010 HTTP/1.1"), 400, "InvalidArgument"),
    ("max-keys-overflow", req(b"GET /bkt?max-keys=99999999999999999999999 HTTP/1.1"), 400, "InvalidArgument"),
    ("prefix-bad-escape", req(b"GET /bkt?prefix=%zz HTTP/1.1"), 400, "InvalidArgument"),
    ("prefix-too-long", req(b"GET /bkt?prefix=" + b"p" * 1025 + b" HTTP/1.1"), 400, "KeyTooLong"),
    ("start-after-too-long", req(b"GET /bkt?start-after=" + b"p" * 1025 + b" HTTP/1.1"), 400, "KeyTooLong"),
    # methods
    ("method-patch", req(b"PATCH /bkt/keep HTTP/1.1", b"Content-Length: 0\r\n"), 405, "MethodNotAllowed"),
    ("method-options", req(b"OPTIONS /bkt/keep HTTP/1.1"), 405, "MethodNotAllowed"),
    ("method-unknown", req(b"FROB /bkt/keep HTTP/1.1"), 405, "MethodNotAllowed"),
    ("method-lowercase", req(b"get /bkt/keep HTTP/1.1"), 405, "MethodNotAllowed"),
    ("method-post-object", put_req(b"/bkt/keep").replace(b"PUT", b"POST", 1), 405, "MethodNotAllowed"),
    ("method-post-root", req(b"POST / HTTP/1.1", b"Content-Length: 0\r\n"), 405, "MethodNotAllowed"),
    ("method-get-batch", req(b"GET /admin/replication/batch HTTP/1.1"), 405, "MethodNotAllowed"),
    ("method-put-health", req(b"PUT /admin/health HTTP/1.1", b"Content-Length: 0\r\n"), 405, "MethodNotAllowed"),
    ("method-get-purge", req(b"GET /admin/bkt/objects HTTP/1.1"), 405, "MethodNotAllowed"),
    ("admin-unknown", req(b"GET /admin/nothing HTTP/1.1"), 404, "NotFound"),
    # framing
    ("content-length-plus", req(b"PUT /bkt/x HTTP/1.1", b"Content-Length: +3\r\n", b"abc"), 400, "h2o"),
    ("content-length-hex", req(b"PUT /bkt/x HTTP/1.1", b"Content-Length: 0x3\r\n", b"abc"), 400, "h2o"),
    ("content-length-two-numbers", req(b"PUT /bkt/x HTTP/1.1", b"Content-Length: 3 3\r\n", b"abc"), 400, "h2o"),
    ("content-length-overflow", req(b"PUT /bkt/x HTTP/1.1", b"Content-Length: 99999999999999999999999\r\n", b"abc"), 400, "h2o"),
    ("content-length-over-max", req(b"PUT /bkt/x HTTP/1.1", b"Content-Length: 2000000000\r\n", b"abc"), 413, "h2o"),
    ("chunked-bad-size", req(b"PUT /bkt/x HTTP/1.1", b"Transfer-Encoding: chunked\r\n", b"zz\r\nabc\r\n0\r\n\r\n"), 400, "h2o"),
    ("transfer-encoding-gzip", req(b"PUT /bkt/x HTTP/1.1", b"Transfer-Encoding: gzip\r\n", b"abc"), 400, "h2o"),
    ("expect-unknown", req(b"PUT /bkt/x HTTP/1.1", b"Expect: bogus\r\nContent-Length: 3\r\n", b"abc"), 417, "h2o"),
    ("space-before-colon", req(b"GET /bkt/keep HTTP/1.1", b"X-A : 1\r\n"), 400, "h2o"),
    # headers storaged bounds itself
    ("content-type-256", put_req(b"/bkt/x", headers=b"Content-Type: " + b"t" * 256 + b"\r\n"), 400, "InvalidArgument"),
    ("headers-over-32k", req(b"GET /bkt/keep HTTP/1.1", b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(40))),
     431, "RequestHeaderFieldsTooLarge"),
    # well-formed requests for things that are not there change nothing either
    ("delete-bucket-not-empty", req(b"DELETE /bkt HTTP/1.1"), 409, "BucketNotEmpty"),
    ("delete-missing-bucket", req(b"DELETE /no-such-bucket HTTP/1.1"), 404, "NoSuchBucket"),
    ("delete-key-missing-bucket", req(b"DELETE /no-such-bucket/k HTTP/1.1"), 404, "NoSuchBucket"),
    ("purge-missing-bucket", req(b"DELETE /admin/no-such-bucket/objects?confirm=true HTTP/1.1"), 404, "NoSuchBucket"),
    ("list-missing-bucket", req(b"GET /no-such-bucket HTTP/1.1"), 404, "NoSuchBucket"),
    # this site has an accept_token: it serves fetches signed with it (a repair from a site shipping here)
    ("fetch-unsigned", req(b"GET /admin/replication/fetch/bkt/keep?version=1&expires=1&sig=00 HTTP/1.1"), 403,
     "SignatureDoesNotMatch"),
]


@pytest.mark.parametrize("name,data,status,code", HTTP_ROWS, ids=[r[0] for r in HTTP_ROWS])
def test_malformed_http(srv, name, data, status, code):
    before = state(srv)
    raw, closed = raw_exchange(srv.port, data, read_timeout=10)
    check_answer(name, raw, status, code)
    assert state(srv) == before, "%s changed the server's state" % name


# --- batches -----------------------------------------------------------------------------------


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def record(seq=7, **over):
    """A PUT log record of "abc" (docs/protocol.md); a key set to None is left out."""
    r = {"v": 1, "seq": seq, "op": PUT, "b": "bkt", "k": "fromtable", "sz": 3, "et": hashlib.md5(b"abc").digest(),
         "mt": 1764000000000, "o": "site-a"}
    r.update(over)
    return pack({k: v for k, v in r.items() if v is not None})


def delete_record(**over):
    return record(op=DELETE, sz=None, et=None, **over)


def event(r=None, **over):
    e = {"r": record() if r is None else r, "d": b"abc"}
    e.update(over)
    return {k: v for k, v in e.items() if v is not None}


def batch(events=None, **over):
    b = {"v": 1, "src": "site-a", "ev": [event()] if events is None else events}
    b.update(over)
    return pack({k: v for k, v in b.items() if v is not None})


def envelope(ev_bytes, count, extra=b""):
    """A batch written by hand: `count` declared in an array32 header, followed by ev_bytes."""
    return b"\x83" + pack("v") + pack(1) + pack("src") + pack("site-a") + extra + pack("ev") + b"\xdd" + \
        struct.pack(">I", count) + ev_bytes


def with_unknown(m, n):
    """The record m (a dict) with n unknown keys added."""
    return pack(dict(m, **{"x%02d" % i: 1 for i in range(n)}))


GOOD_RECORD = msgpack.unpackb(record(), raw=False)
MALFORMED = "MalformedBatch"

# (name, body, expected): expected is MALFORMED (400, nothing applied), ("permanent", error text part)
# for an event that decodes but can never apply, or "empty" for a 200 with no results
BATCH_ROWS = [
    # the envelope
    ("empty-body", b"", MALFORMED),
    ("not-msgpack", b"this is not msgpack", MALFORMED),
    ("json", b'{"v":1,"src":"a","ev":[]}', MALFORMED),
    ("never-used-byte", b"\xc1", MALFORMED),
    ("truncated", batch()[:-10], MALFORMED),
    ("trailing-garbage", batch() + b"\x00", MALFORMED),
    ("top-level-array", pack([1, "site-a", []]), MALFORMED),
    ("top-level-str", pack("batch"), MALFORMED),
    ("top-level-nil", pack(None), MALFORMED),
    ("missing-v", batch(v=None), MALFORMED),
    ("v-zero", batch(v=0), MALFORMED),
    ("v-unknown", batch(v=2), MALFORMED),
    ("v-str", batch(v="1"), MALFORMED),
    ("v-negative", batch(v=-1), MALFORMED),
    ("v-twice", b"\x84" + pack("v") + pack(1) + pack("v") + pack(1) + pack("src") + pack("a") + pack("ev") + pack([]),
     MALFORMED),
    ("missing-src", batch(src=None), MALFORMED),
    ("src-empty", batch(src=""), MALFORMED),
    ("src-256", batch(src="s" * 256), MALFORMED),
    ("src-int", batch(src=5), MALFORMED),
    ("src-bin", batch(src=b"site-a"), MALFORMED),
    ("missing-ev", batch(ev=None), MALFORMED),
    ("ev-map", batch(ev={"r": record()}), MALFORMED),
    ("ev-str", batch(ev="events"), MALFORMED),
    ("ev-10001-declared", envelope(pack(event()), 10001), MALFORMED),
    ("ev-declares-more", envelope(pack(event()), 5), MALFORMED),
    ("ev-declares-fewer", envelope(pack(event()) * 2, 1), MALFORMED),
    ("envelope-33-entries", pack(dict({"v": 1, "src": "a", "ev": []}, **{"x%02d" % i: 1 for i in range(30)})), MALFORMED),
    ("map-key-65", pack({"v": 1, "src": "a", "ev": [], "k" * 65: 1}), MALFORMED),
    # events
    ("event-int", batch([5]), MALFORMED),
    ("event-without-r", batch([{"d": b"abc"}]), MALFORMED),
    ("r-str", batch([event(r="record")]), MALFORMED),
    ("r-empty", batch([event(r=b"")]), MALFORMED),
    ("r-truncated", batch([event(r=record()[:-3])]), MALFORMED),
    ("r-trailing", batch([event(r=record() + b"\x00")]), MALFORMED),
    ("good-then-bad", batch([event(), event(r=record(op=9))]), MALFORMED),
    # the log record inside
    ("rec-missing-v", batch([event(r=record(v=None))]), MALFORMED),
    ("rec-v-unknown", batch([event(r=record(v=2))]), MALFORMED),
    ("rec-op-unknown", batch([event(r=record(op=9))]), MALFORMED),
    ("rec-op-zero", batch([event(r=record(op=0))]), MALFORMED),
    ("rec-seq-str", batch([event(r=record(seq="7"))]), MALFORMED),
    ("rec-seq-negative", batch([event(r=record(seq=-7))]), MALFORMED),
    ("rec-bucket-empty", batch([event(r=record(b=""))]), MALFORMED),
    ("rec-bucket-64", batch([event(r=record(b="b" * 64))]), MALFORMED),
    ("rec-bucket-int", batch([event(r=record(b=1))]), MALFORMED),
    ("rec-key-empty", batch([event(r=record(k=""))]), MALFORMED),
    ("rec-key-1025", batch([event(r=record(k="k" * 1025))]), MALFORMED),
    ("rec-etag-15", batch([event(r=record(et=b"e" * 15))]), MALFORMED),
    ("rec-etag-str", batch([event(r=record(et="e" * 16))]), MALFORMED),
    ("rec-missing-sz", batch([event(r=record(sz=None))]), MALFORMED),
    ("rec-missing-mt", batch([event(r=record(mt=None))]), MALFORMED),
    ("rec-missing-o", batch([event(r=record(o=None))]), MALFORMED),
    ("rec-origin-empty", batch([event(r=record(o=""))]), MALFORMED),
    ("rec-ctype-256", batch([event(r=record(ct="c" * 256))]), MALFORMED),
    ("rec-delete-with-sz", batch([{"r": record(op=DELETE, et=None)}]), MALFORMED),
    ("rec-purge-with-key", batch([{"r": record(op=PURGE, sz=None, et=None, k="x")}]), MALFORMED),
    ("rec-33-entries", batch([event(r=with_unknown(GOOD_RECORD, 24))]), MALFORMED),
    ("rec-map-key-65", batch([event(r=pack(dict(GOOD_RECORD, **{"k" * 65: 1})))]), MALFORMED),
    # the object bytes
    ("d-and-u", batch([event(u="http://127.0.0.1:9/x")]), MALFORMED),
    ("neither-d-nor-u", batch([event(d=None)]), MALFORMED),
    ("d-shorter-than-sz", batch([event(d=b"ab")]), MALFORMED),
    ("d-longer-than-sz", batch([event(d=b"abcd")]), MALFORMED),
    ("d-str", batch([event(d="abc")]), MALFORMED),
    ("d-on-delete", batch([{"r": delete_record(), "d": b""}]), MALFORMED),
    ("u-on-delete", batch([{"r": delete_record(), "u": "http://127.0.0.1:9/x"}]), MALFORMED),
    ("u-empty", batch([event(d=None, u="")]), MALFORMED),
    ("u-4097", batch([event(d=None, u="http://" + "u" * 4090)]), MALFORMED),
    # declared lengths far beyond the body, and nesting
    ("bin32-4GiB", envelope(b"\x81" + pack("r") + b"\xc6\xff\xff\xff\xff", 1), MALFORMED),
    ("str32-4GiB", b"\x83" + pack("v") + pack(1) + pack("src") + b"\xdb\xff\xff\xff\xff" + b"a", MALFORMED),
    ("map32-4G-entries", b"\x84" + pack("v") + pack(1) + pack("src") + pack("a") + pack("zz") + b"\xdf\xff\xff\xff\xff",
     MALFORMED),
    ("array32-4G-unknown", b"\x84" + pack("v") + pack(1) + pack("src") + pack("a") + pack("zz") + b"\xdd\xff\xff\xff\xff",
     MALFORMED),
    ("nesting-bomb-unclosed", b"\x84" + pack("v") + pack(1) + pack("src") + pack("a") + pack("zz") + b"\x91" * 200000,
     MALFORMED),
    ("nesting-bomb-in-event", envelope(b"\x82" + pack("r") + record() + pack("zz") + b"\x91" * 100000, 1), MALFORMED),
    ("nesting-bomb-skipped", b"\x84" + pack("v") + pack(1) + pack("src") + pack("a") + pack("zz") + b"\x91" * 200000 +
     b"\xc0" + pack("ev") + pack([]), "empty"),
    # decodes, but an event can never apply: answered per event, nothing applied
    ("bucket-invalid-name", batch([event(r=record(b="Bad_Bucket"))]), ("permanent", "invalid bucket name")),
    ("bucket-reserved", batch([event(r=record(b="admin"))]), ("permanent", "invalid bucket name")),
    ("key-with-nul", batch([event(r=record(k="a\x00b"))]), ("permanent", "NUL")),
    # seqs start at 1: a format-1 record at seq 0 (version 0) was never written, and the decoder
    # refuses it, as it refuses a format-2 record whose version is 0 (so the encoder never meets one)
    ("seq-zero", batch([event(r=record(seq=0))]), MALFORMED),
    ("version-zero", batch([event(r=record(v=2, h=0))]), MALFORMED),
    ("url-not-http", batch([event(d=None, u="ftp://127.0.0.1/x")]), ("permanent", "URL")),
    ("inline-bytes-not-the-etag", batch([event(r=record(et=b"\x00" * 16))]), ("permanent", "")),
]


def post_batch(server, body):
    c = Client(server.host, server.port, timeout=30)
    try:
        return c.raw("POST", "/admin/replication/batch", body,
                     {"Authorization": "Bearer " + TOKEN, "Content-Type": "application/msgpack"})
    finally:
        c.close()


@pytest.mark.parametrize("name,body,expected", BATCH_ROWS, ids=[r[0] for r in BATCH_ROWS])
def test_malformed_batch(srv, name, body, expected):
    before = state(srv)
    r = post_batch(srv, body)
    after_counts = dict(before["replica_events"])
    if expected == MALFORMED:
        expect_error(r, 400, "MalformedBatch")
    else:
        assert r.status == 200 and r.headers.get("Content-Type") == "application/msgpack", r
        reply = msgpack.unpackb(r.body, raw=False)
        assert reply["v"] == 1, reply
        if expected == "empty":
            assert reply["res"] == [], reply
        else:
            kind, text = expected
            assert [x["r"] for x in reply["res"]] == [PERMANENT], reply
            assert reply["res"][0]["st"] == 400 and text in reply["res"][0]["e"], reply
            after_counts["permanent"] += 1
    after = state(srv)
    assert after == dict(before, replica_events=after_counts), "%s changed the server's state" % name


def test_valid_batch_after_the_table_applies(srv):
    """The decoder was left in no bad state: the batch the rows were made from applies."""
    r = post_batch(srv, batch([event(r=record(seq=10 ** 9))]))
    assert r.status == 200, r
    assert [x["r"] for x in msgpack.unpackb(r.body, raw=False)["res"]] == [0]
    c = Client(srv.host, srv.port, timeout=10)
    try:
        assert c.get("bkt", "fromtable").body == b"abc"
        assert c.delete("bkt", "fromtable").status == 204
    finally:
        c.close()
