"""test_api.py - the HTTP API of storaged, endpoint by endpoint, with headers."""

import email.utils
import os
import random
import re
import threading
import time

import pytest

from harness.comio import Client, expect_error, expect_ok_json, md5, settled_used

EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"
RFC7231_DATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
                          r"\d{2}:\d{2}:\d{2} GMT$")


def put_ok(c, bucket, key, data, headers=None):
    r = c.put(bucket, key, data, headers)
    body = expect_ok_json(r)
    assert body["bucket"] == bucket and body["key"] == (key if isinstance(key, str) else key.decode()), body
    assert body["size"] == len(data), body
    assert body["etag"] == md5(data), body
    assert r.headers["ETag"] == '"%s"' % md5(data), r
    version = int(r.headers["X-Comio-Version"])
    assert body["version"] == version, body
    return version


def check_object_headers(r, data, ctype, version=None):
    assert r.headers["Content-Type"] == ctype, r
    assert int(r.headers["Content-Length"]) == len(data), r
    assert r.headers["ETag"] == '"%s"' % md5(data), r
    assert r.headers["Accept-Ranges"] == "bytes", r
    lm = r.headers["Last-Modified"]
    assert lm and RFC7231_DATE.match(lm), "Last-Modified %r is not an RFC 7231 date" % lm
    when = email.utils.parsedate_to_datetime(lm).timestamp()
    assert abs(when - time.time()) < 600, "Last-Modified %r is not about now" % lm
    if version is not None:
        assert int(r.headers["X-Comio-Version"]) == version, r


# --- objects -----------------------------------------------------------------


def test_put_get_head_roundtrip(client):
    data = b"hello, comio\n"
    v = put_ok(client, "photos", "2024/cat.txt", data, {"Content-Type": "text/plain; charset=utf-8"})
    r = client.get("photos", "2024/cat.txt")
    assert r.status == 200, r
    assert r.body == data
    check_object_headers(r, data, "text/plain; charset=utf-8", v)

    h = client.head("photos", "2024/cat.txt")
    assert h.status == 200, h
    assert h.body == b""
    check_object_headers(h, data, "text/plain; charset=utf-8", v)
    assert h.headers["Last-Modified"] == r.headers["Last-Modified"]


def test_default_content_type(client):
    put_ok(client, "ctypes", "noctype", b"abc")
    r = client.get("ctypes", "noctype")
    assert r.status == 200 and r.headers["Content-Type"] == "application/octet-stream", r
    put_ok(client, "ctypes", "json", b"{}", {"Content-Type": "application/json"})
    assert client.head("ctypes", "json").headers["Content-Type"] == "application/json"


def test_zero_length_object(client):
    v = put_ok(client, "empty", "nothing", b"")
    r = client.get("empty", "nothing")
    assert r.status == 200 and r.body == b"", r
    check_object_headers(r, b"", "application/octet-stream", v)
    assert r.headers["ETag"] == '"%s"' % EMPTY_MD5
    listing = expect_ok_json(client.list("empty"))
    assert [(o["key"], o["size"]) for o in listing["objects"]] == [("nothing", 0)]
    r = client.get("empty", "nothing", {"Range": "bytes=0-0"})
    assert r.status == 416 and r.headers["Content-Range"] == "bytes */0", r


def test_binary_all_byte_values(client):
    data = bytes(range(256)) * 257 + bytes(reversed(range(256)))
    put_ok(client, "binary", "all-bytes", data, {"Content-Type": "application/x-test"})
    r = client.get("binary", "all-bytes")
    assert r.status == 200 and r.body == data
    check_object_headers(r, data, "application/x-test")


def test_large_object_crosses_in_memory_body_limit(client):
    size = 40 * 1000 * 1000 + 12345  # over h2o's 32 MiB in-memory request body limit
    data = os.urandom(size)
    put_ok(client, "large", "blob", data)
    r = client.get("large", "blob")
    assert r.status == 200, r.status
    assert len(r.body) == size and md5(r.body) == md5(data)
    assert r.headers["ETag"] == '"%s"' % md5(data)
    off = 32 * 1024 * 1024 - 5
    r = client.get("large", "blob", {"Range": "bytes=%d-%d" % (off, off + 9)})
    assert r.status == 206 and r.body == data[off : off + 10], r
    h = client.head("large", "blob")
    assert int(h.headers["Content-Length"]) == size


def test_missing_object_and_bucket(client):
    expect_error(client.get("nobucket", "k"), 404, "NoSuchBucket")
    put_ok(client, "somebucket", "present", b"x")
    expect_error(client.get("somebucket", "absent"), 404, "NoSuchKey")
    h = client.head("somebucket", "absent")
    assert h.status == 404 and h.body == b"", h
    h = client.head("nobucket", "k")
    assert h.status == 404 and h.body == b"", h
    expect_error(client.list("nobucket"), 404, "NoSuchBucket")


def test_overwrite_changes_etag_version_and_frees_space(client):
    m0 = client.metrics()
    used0 = m0.value("comio_store_used_bytes")
    objects0 = m0.value("comio_objects")
    first = os.urandom(2_000_000)
    v1 = put_ok(client, "over", "k", first, {"Content-Type": "text/a"})
    m1 = client.metrics()
    used1 = m1.value("comio_store_used_bytes")
    assert used1 >= used0 + len(first), (used0, used1)
    assert m1.value("comio_objects") == objects0 + 1

    second = os.urandom(2_000_000)
    v2 = put_ok(client, "over", "k", second, {"Content-Type": "text/b"})
    assert v2 > v1
    r = client.get("over", "k")
    assert r.body == second and r.headers["ETag"] == '"%s"' % md5(second)
    assert r.headers["ETag"] != '"%s"' % md5(first)
    assert r.headers["Content-Type"] == "text/b"
    assert int(r.headers["X-Comio-Version"]) == v2
    used2 = settled_used(client, lambda u: u == used1)
    assert used2 == used1, "the overwritten body's space did not come back"
    assert client.metrics().value("comio_objects") == objects0 + 1

    small = b"tiny"
    v3 = put_ok(client, "over", "k", small)
    assert v3 > v2
    used3 = settled_used(client, lambda u: u < used0 + len(first))
    assert used3 < used0 + len(first), "old space was not freed"
    listing = expect_ok_json(client.list("over"))
    assert [(o["key"], o["size"]) for o in listing["objects"]] == [("k", 4)]

    assert client.delete("over", "k").status == 204
    assert settled_used(client, lambda u: u == used0) == used0
    assert client.metrics().value("comio_objects") == objects0


def test_versions_strictly_increase_across_mutations(client):
    seen = []
    seen.append(put_ok(client, "vers", "a", b"1"))
    seen.append(put_ok(client, "vers", "b", b"2"))
    seen.append(put_ok(client, "vers2", "a", b"3"))
    assert client.delete("vers", "a").status == 204
    seen.append(put_ok(client, "vers", "a", b"4"))
    seen.append(put_ok(client, "vers", "a", b"5"))
    assert all(b > a for a, b in zip(seen, seen[1:])), seen
    assert int(client.head("vers", "a").headers["X-Comio-Version"]) == seen[-1]


def test_delete_object(client):
    put_ok(client, "del", "k1", b"data")
    r = client.delete("del", "k1")
    assert r.status == 204, r
    expect_error(client.get("del", "k1"), 404, "NoSuchKey")
    # absent key in an existing bucket: still 204
    assert client.delete("del", "k1").status == 204
    assert client.delete("del", "never-there").status == 204
    expect_error(client.delete("nosuchbucket", "k1"), 404, "NoSuchBucket")


def test_key_encoding_and_slashes(client):
    data = b"slashes"
    put_ok(client, "keys", "a/b/c", data)
    # %2F decodes to '/', so it names the same key
    r = client.raw("GET", "/keys/a%2Fb%2Fc")
    assert r.status == 200 and r.body == data, r
    put_ok(client, "keys", "with space+plus?#&", b"sp")
    r = client.raw("GET", "/keys/with%20space%2Bplus%3F%23%26")
    assert r.status == 200 and r.body == b"sp", r
    # '+' in a path is a plus, not a space
    r = client.raw("GET", "/keys/with%20space+plus%3F%23%26")
    assert r.status == 200 and r.body == b"sp", r
    put_ok(client, "keys", "日本/ファイル", b"utf8")
    keys = [o["key"] for o in expect_ok_json(client.list("keys"))["objects"]]
    assert keys == sorted(["a/b/c", "with space+plus?#&", "日本/ファイル"], key=lambda k: k.encode())


def test_key_length_limits(client):
    k1024 = "k" * 1024
    put_ok(client, "klen", k1024, b"max")
    assert client.get("klen", k1024).body == b"max"
    expect_error(client.put("klen", "k" * 1025, b"x"), 400, "KeyTooLong")
    # the limit applies after percent-decoding
    r = client.raw("PUT", "/klen/" + "%41" * 1024, b"enc")
    assert r.status == 200, r
    assert client.get("klen", "A" * 1024).body == b"enc"
    expect_error(client.raw("PUT", "/klen/" + "%41" * 1025, b"enc"), 400, "KeyTooLong")
    keys = [o["key"] for o in expect_ok_json(client.list("klen"))["objects"]]
    assert keys == ["A" * 1024, k1024]


# --- ranges ------------------------------------------------------------------


RANGE_DATA = bytes((i * 7 + 3) % 256 for i in range(1000))


@pytest.mark.parametrize(
    "spec,first,last",
    [
        ("bytes=0-0", 0, 0),
        ("bytes=10-19", 10, 19),
        ("bytes=0-999", 0, 999),
        ("bytes=990-", 990, 999),
        ("bytes=0-", 0, 999),
        ("bytes=-10", 990, 999),
        ("bytes=-1", 999, 999),
        ("bytes=-2000", 0, 999),  # suffix longer than the object: all of it
        ("bytes=500-5000", 500, 999),  # last-byte-pos past the end is clamped
        ("bytes=999-999", 999, 999),
    ],
)
def test_range_satisfiable(client, spec, first, last):
    put_ok(client, "ranges", "obj", RANGE_DATA, {"Content-Type": "text/x-range"})
    r = client.get("ranges", "obj", {"Range": spec})
    assert r.status == 206, r
    assert r.body == RANGE_DATA[first : last + 1]
    assert r.headers["Content-Range"] == "bytes %d-%d/1000" % (first, last), r
    assert int(r.headers["Content-Length"]) == last - first + 1
    assert r.headers["ETag"] == '"%s"' % md5(RANGE_DATA)
    assert r.headers["Content-Type"] == "text/x-range"


@pytest.mark.parametrize("spec", ["bytes=1000-", "bytes=1000-1001", "bytes=5000-6000", "bytes=-0"])
def test_range_unsatisfiable(client, spec):
    put_ok(client, "ranges", "obj", RANGE_DATA)
    r = client.get("ranges", "obj", {"Range": spec})
    assert r.status == 416, r
    assert r.headers["Content-Range"] == "bytes */1000", r
    assert r.headers.get("Content-Length") is not None
    # the connection stays usable
    assert client.get("ranges", "obj").body == RANGE_DATA
    assert client.connects == 1


@pytest.mark.parametrize("spec", ["bytes=5-2", "bytes=abc", "items=0-1"])
def test_range_malformed_is_not_served_as_partial(client, spec):
    put_ok(client, "ranges", "obj", RANGE_DATA)
    r = client.get("ranges", "obj", {"Range": spec})
    # RFC 7233 says to ignore an invalid Range (200); a 416 is tolerated; never a wrong slice
    assert r.status in (200, 416), r
    if r.status == 200:
        assert r.body == RANGE_DATA


# --- buckets -----------------------------------------------------------------


def test_create_bucket_and_list_buckets(client):
    r = client.create_bucket("alpha")
    assert expect_ok_json(r) == {"bucket": "alpha", "created": True}
    assert expect_ok_json(client.create_bucket("alpha")) == {"bucket": "alpha", "created": False}
    put_ok(client, "beta", "k", b"v")  # created on first use
    body = expect_ok_json(client.raw("GET", "/"))
    names = [b["name"] for b in body["buckets"]]
    assert sorted(names) == ["alpha", "beta"], body
    for b in body["buckets"]:
        assert isinstance(b["created"], str) and b["created"], b
    listing = expect_ok_json(client.list("alpha"))
    assert listing["bucket"] == "alpha" and listing["objects"] == [] and listing["is_truncated"] is False


def test_delete_bucket(client):
    put_ok(client, "full", "k1", b"1")
    put_ok(client, "full", "k2", b"2")
    expect_error(client.delete_bucket("full"), 409, "BucketNotEmpty")
    assert client.get("full", "k1").body == b"1"
    assert client.delete("full", "k1").status == 204
    assert client.delete("full", "k2").status == 204
    r = client.delete_bucket("full")
    assert r.status == 204, r
    expect_error(client.list("full"), 404, "NoSuchBucket")
    expect_error(client.delete_bucket("full"), 404, "NoSuchBucket")
    names = [b["name"] for b in expect_ok_json(client.raw("GET", "/"))["buckets"]]
    assert "full" not in names


def test_list_objects_fields(client):
    objs = {"b": b"bb", "a": b"a", "c/d": b"cdcd", "B": b"", "~x": b"tilde", "é": b"accent"}
    for k, v in objs.items():
        put_ok(client, "fields", k, v)
    body = expect_ok_json(client.list("fields"))
    assert body["bucket"] == "fields" and body["prefix"] == ""
    assert body["is_truncated"] is False and body["next_start_after"] is None
    keys = [o["key"] for o in body["objects"]]
    assert keys == sorted(objs, key=lambda k: k.encode("utf-8")), keys  # byte order: B < a < b < c/d < ~x < é
    for o in body["objects"]:
        assert o["size"] == len(objs[o["key"]])
        assert o["etag"].strip('"') == md5(objs[o["key"]])
        assert isinstance(o["last_modified"], str) and o["last_modified"]


@pytest.fixture
def many_keys(server):
    """2500 keys: p/a/0000..p/a/1499, p/b/0000..p/b/0999, plus q0..q4; put from 4 threads."""
    keys = ["p/a/%04d" % i for i in range(1500)] + ["p/b/%04d" % i for i in range(1000)] + ["q%d" % i for i in range(5)]
    errors = []

    def worker(part):
        c = Client(server.host, server.port)
        try:
            for k in part:
                r = c.put("many", k, k.encode())
                if r.status != 200:
                    errors.append((k, r))
                    return
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(keys[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "PUT workers did not finish"
    assert not errors, errors[:3]
    return keys


def test_list_pagination(server, many_keys):
    c = server.client()
    expected = sorted(k for k in many_keys if k.startswith("p/"))
    keys, pages = c.list_all("many", prefix="p/")
    assert keys == expected
    assert [len(p["objects"]) for p in pages] == [1000, 1000, 500]
    assert [p["is_truncated"] for p in pages] == [True, True, False]
    assert pages[0]["next_start_after"] == expected[999]
    assert pages[1]["next_start_after"] == expected[1999]
    assert pages[2]["next_start_after"] is None
    assert all(p["prefix"] == "p/" for p in pages)

    # everything, in small pages
    keys, pages = c.list_all("many", max_keys=333)
    assert keys == sorted(many_keys)
    assert len(pages) == 8 and all(len(p["objects"]) == 333 for p in pages[:-1])

    # exactly max-keys keys left: not truncated
    body = expect_ok_json(c.list("many", prefix="p/b/"))
    assert len(body["objects"]) == 1000 and body["is_truncated"] is False and body["next_start_after"] is None

    # start-after an existing key and between keys
    body = expect_ok_json(c.list("many", prefix="p/a/", start_after="p/a/0499", max_keys=10))
    assert [o["key"] for o in body["objects"]] == ["p/a/%04d" % i for i in range(500, 510)]
    assert body["is_truncated"] is True and body["next_start_after"] == "p/a/0509"
    body = expect_ok_json(c.list("many", start_after="p/a/0499x", max_keys=2))
    assert [o["key"] for o in body["objects"]] == ["p/a/0500", "p/a/0501"]
    body = expect_ok_json(c.list("many", start_after="p/b/0999"))
    assert [o["key"] for o in body["objects"]] == ["q%d" % i for i in range(5)]
    assert body["is_truncated"] is False
    body = expect_ok_json(c.list("many", start_after="zzz"))
    assert body["objects"] == [] and body["is_truncated"] is False
    body = expect_ok_json(c.list("many", prefix="nomatch"))
    assert body["objects"] == [] and body["is_truncated"] is False
    body = expect_ok_json(c.list("many", prefix="q", max_keys=1))
    assert [o["key"] for o in body["objects"]] == ["q0"] and body["is_truncated"] is True
    assert c.metrics().value("comio_objects") == len(many_keys)


@pytest.mark.parametrize("max_keys", ["0", "1001", "-1", "abc", "", "99999999999999999999"])
def test_list_max_keys_invalid(client, max_keys):
    put_ok(client, "maxkeys", "k", b"v")
    expect_error(client.raw("GET", "/maxkeys?max-keys=" + max_keys), 400, "InvalidArgument")


def test_list_max_keys_bounds(client):
    for i in range(3):
        put_ok(client, "maxkeys", "k%d" % i, b"v")
    body = expect_ok_json(client.raw("GET", "/maxkeys?max-keys=1"))
    assert [o["key"] for o in body["objects"]] == ["k0"] and body["is_truncated"] is True
    body = expect_ok_json(client.raw("GET", "/maxkeys?max-keys=1000"))
    assert len(body["objects"]) == 3


def test_list_query_is_percent_decoded(client):
    put_ok(client, "qdec", "a b/1", b"1")
    put_ok(client, "qdec", "a+b/2", b"2")
    put_ok(client, "qdec", "a b/3", b"3")
    body = expect_ok_json(client.raw("GET", "/qdec?prefix=a%20b%2F"))
    assert [o["key"] for o in body["objects"]] == ["a b/1", "a b/3"]
    assert body["prefix"] == "a b/"
    body = expect_ok_json(client.raw("GET", "/qdec?prefix=a%2Bb"))
    assert [o["key"] for o in body["objects"]] == ["a+b/2"]


# --- admin: purge, health ----------------------------------------------------


def test_purge_dry_run_and_confirm(client):
    sizes = [0, 1, 1000, 70_000]
    for i, n in enumerate(sizes):
        put_ok(client, "purgeme", "o%d" % i, os.urandom(n))
    put_ok(client, "keepme", "stay", b"stay")
    used_before = client.metrics().value("comio_store_used_bytes")

    body = expect_ok_json(client.purge("purgeme", confirm=False))
    assert body["count"] == len(sizes) and body["total_size"] == sum(sizes), body
    assert len(expect_ok_json(client.list("purgeme"))["objects"]) == len(sizes)
    body = expect_ok_json(client.raw("DELETE", "/admin/purgeme/objects?confirm=false"))
    assert body["count"] == len(sizes)
    assert len(expect_ok_json(client.list("purgeme"))["objects"]) == len(sizes)

    body = expect_ok_json(client.purge("purgeme", confirm=True))
    assert body["deleted_count"] == len(sizes) and body["freed_size"] == sum(sizes), body
    assert expect_ok_json(client.list("purgeme"))["objects"] == []
    expect_error(client.get("purgeme", "o2"), 404, "NoSuchKey")
    assert client.get("keepme", "stay").body == b"stay"
    used = settled_used(client, lambda u: u <= used_before - sum(sizes))
    assert used <= used_before - sum(sizes)
    assert client.metrics().value("comio_objects") == 1
    # purging again finds nothing
    body = expect_ok_json(client.purge("purgeme", confirm=True))
    assert body["deleted_count"] == 0 and body["freed_size"] == 0


def test_health(client):
    body = expect_ok_json(client.health())
    assert body["status"] == "ok"


# --- metrics -----------------------------------------------------------------


def test_metrics(client):
    m0 = client.metrics()
    assert m0.content_type.startswith("text/plain") and "version=0.0.4" in m0.content_type, m0.content_type
    for name in ("comio_http_requests_total", "comio_http_received_bytes_total", "comio_http_sent_bytes_total",
                 "comio_objects", "comio_store_used_bytes", "comio_store_free_bytes", "comio_store_capacity_bytes",
                 "comio_replog_head_seq"):
        assert name in m0.names(), "%s missing from /metrics:\n%s" % (name, m0.text)
    cap = m0.value("comio_store_capacity_bytes")
    assert 0 < cap <= 64_000_000
    assert m0.value("comio_store_used_bytes") + m0.value("comio_store_free_bytes") == cap

    for _ in range(3):
        expect_error(client.get("metricsb", "x"), 404, "NoSuchBucket")
    data = os.urandom(123_456)
    put_ok(client, "metricsb", "obj", data)
    got = client.get("metricsb", "obj")
    assert got.body == data
    assert client.health().status == 200
    m1 = client.metrics()
    d404 = m1.sum("comio_http_requests_total", method="GET", status="404") - \
        m0.sum("comio_http_requests_total", method="GET", status="404")
    assert d404 == 3, d404
    dput = m1.sum("comio_http_requests_total", method="PUT", status="200") - \
        m0.sum("comio_http_requests_total", method="PUT", status="200")
    assert dput == 1, dput
    assert m1.value("comio_http_received_bytes_total") - m0.value("comio_http_received_bytes_total") >= len(data)
    assert m1.value("comio_http_sent_bytes_total") - m0.value("comio_http_sent_bytes_total") >= len(data)
    assert m1.value("comio_objects") == m0.value("comio_objects") + 1
    assert m1.value("comio_store_used_bytes") >= m0.value("comio_store_used_bytes") + len(data)
    assert m1.value("comio_store_used_bytes") + m1.value("comio_store_free_bytes") == cap


# --- protocol ----------------------------------------------------------------


def test_keep_alive_holds_across_statuses(client):
    put_ok(client, "keepalive", "obj", b"0123456789")
    for _ in range(5):
        assert client.get("keepalive", "obj").status == 200
        assert client.head("keepalive", "obj").status == 200
        assert client.get("keepalive", "obj", {"Range": "bytes=2-3"}).status == 206
        assert client.get("keepalive", "obj", {"Range": "bytes=50-"}).status == 416
        assert client.get("keepalive", "missing").status == 404
        assert client.head("keepalive", "missing").status == 404
        assert client.get("nobucket-ka", "x").status == 404
        assert client.put("keepalive", "tmp", b"t").status == 200
        assert client.delete("keepalive", "tmp").status == 204
        assert client.raw("PUT", "/keepalive/%zz", b"x").status == 400
        assert client.raw("POST", "/keepalive/obj", b"x").status == 405
        assert client.list("keepalive").status == 200
        assert client.metrics() is not None
    assert client.connects == 1, "the server closed a keep-alive connection"


def test_every_reply_has_content_length(client):
    put_ok(client, "contentlen", "obj", b"abc")
    replies = [
        client.get("contentlen", "obj"),
        client.get("contentlen", "obj", {"Range": "bytes=0-0"}),
        client.get("contentlen", "obj", {"Range": "bytes=9-"}),
        client.get("contentlen", "nope"),
        client.list("contentlen"),
        client.raw("GET", "/"),
        client.health(),
        client.raw("GET", "/metrics"),
        client.raw("GET", "/admin/replication/status"),
        client.raw("PATCH", "/cl/obj", b""),
        client.raw("PUT", "/BadName/k", b""),
    ]
    for r in replies:
        assert r.headers.get("Content-Length") is not None, r
        assert int(r.headers["Content-Length"]) == len(r.body), r


@pytest.mark.parametrize("method", ["POST", "PATCH", "OPTIONS", "TRACE"])
def test_other_methods_not_allowed(client, method):
    put_ok(client, "meth", "obj", b"v")
    body = b"x" if method in ("POST", "PATCH") else None
    expect_error(client.raw(method, "/meth/obj", body), 405, "MethodNotAllowed")
    expect_error(client.raw(method, "/meth", body), 405, "MethodNotAllowed")
    assert client.get("meth", "obj").body == b"v"


def test_concurrent_clients(server):
    """8 clients write and read their own keys at once; every byte comes back."""
    errors = []

    def worker(n):
        c = Client(server.host, server.port)
        try:
            for i in range(40):
                data = os.urandom(100 + 997 * i)
                r = c.put("conc", "w%d/%d" % (n, i), data)
                if r.status != 200:
                    errors.append(r)
                    return
                g = c.get("conc", "w%d/%d" % (n, i))
                if g.status != 200 or g.body != data:
                    errors.append(("mismatch", n, i, g.status))
                    return
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:3]
    keys, _ = server.client().list_all("conc")
    assert len(keys) == 8 * 40


def test_listing_runs_of_long_keys(server):
    """Keys too long to be stored whole share an LMDB key prefix and are re-sorted per listing:
    every page, prefix and start-after must still come out in byte order, whatever was written when.
    The listing keeps at most max-keys of such a run in memory (meta_obj_list's limit)."""
    c = server.client()
    rng = random.Random(77)
    stem = "L" * 470  # longer than the stored part of a key in this bucket
    long_keys = [stem + "%s%03d" % (rng.choice("ab"), i) for i in range(300)]
    short_keys = ["K%03d" % i for i in range(20)] + ["M%03d" % i for i in range(20)]
    everything = long_keys + short_keys
    rng.shuffle(everything)
    for k in everything:
        assert c.put("runs", k, k[-4:].encode()).status == 200
    want = sorted(everything)

    keys, pages = c.list_all("runs", max_keys=7, max_pages=200)
    assert keys == want and len(pages) == -(-len(want) // 7)
    keys, _ = c.list_all("runs", prefix=stem + "b", max_keys=11, max_pages=200)
    assert keys == sorted(k for k in long_keys if k.startswith(stem + "b"))
    # start-after inside the run, and a prefix that ends inside it: the listing stops at its end
    body = expect_ok_json(c.list("runs", start_after=want[25], max_keys=5))
    assert [o["key"] for o in body["objects"]] == want[26:31]
    body = expect_ok_json(c.list("runs", prefix=stem + "a", max_keys=1000))
    assert [o["key"] for o in body["objects"]] == sorted(k for k in long_keys if k.startswith(stem + "a"))
    assert body["is_truncated"] is False
