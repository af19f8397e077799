"""test_http_conditional.py - conditional requests (RFC 9110 section 13).

GET and HEAD answer 304 to If-None-Match (the ETag, its weak form, "*") and
If-Modified-Since, with ETag and Last-Modified and no body; If-Match and
If-Unmodified-Since that do not hold answer 412. A PUT whose If-Match or
If-None-Match does not hold answers 412 and writes nothing, also when another
PUT of the key commits between the check and its own commit."""

import email.utils
import subprocess
import threading

from harness.comio import expect_error, expect_ok_json, md5

DATA = b"conditional body " * 100


def put_object(client, key="obj", data=DATA, ctype="text/plain"):
    if client.head("cond", key).status == 404 and client.list("cond").status == 404:
        assert client.create_bucket("cond").status == 200
    expect_ok_json(client.put("cond", key, data, {"Content-Type": ctype}))
    r = client.head("cond", key)
    assert r.status == 200, r
    return r.headers["ETag"], r.headers["Last-Modified"]


def shifted(date, seconds):
    return email.utils.formatdate(email.utils.parsedate_to_datetime(date).timestamp() + seconds, usegmt=True)


def expect_304(r, etag, date):
    assert r.status == 304, r
    assert r.body == b"", r
    assert r.headers["ETag"] == etag, r
    assert r.headers["Last-Modified"] == date, r
    assert r.headers.get("Content-Type") is None, r


def test_if_none_match(client):
    etag, date = put_object(client)
    for value in (etag, "W/" + etag, "*", '"00000000000000000000000000000000", ' + etag):
        expect_304(client.get("cond", "obj", {"If-None-Match": value}), etag, date)
        expect_304(client.head("cond", "obj", {"If-None-Match": value}), etag, date)
    r = client.get("cond", "obj", {"If-None-Match": '"00000000000000000000000000000000"'})
    assert r.status == 200 and r.body == DATA, r


def test_connection_stays_usable_after_304(client):
    etag, date = put_object(client)
    for _ in range(3):
        expect_304(client.get("cond", "obj", {"If-None-Match": etag}), etag, date)
        r = client.get("cond", "obj")
        assert r.status == 200 and r.body == DATA, r
    assert client.connects == 1


def test_if_modified_since(client):
    etag, date = put_object(client)
    expect_304(client.get("cond", "obj", {"If-Modified-Since": date}), etag, date)
    expect_304(client.get("cond", "obj", {"If-Modified-Since": shifted(date, 3600)}), etag, date)
    r = client.get("cond", "obj", {"If-Modified-Since": shifted(date, -3600)})
    assert r.status == 200 and r.body == DATA, r
    r = client.get("cond", "obj", {"If-Modified-Since": "not a date"})
    assert r.status == 200 and r.body == DATA, r
    # If-None-Match takes precedence: a changed ETag is served even if the date says otherwise
    r = client.get("cond", "obj", {"If-None-Match": '"00000000000000000000000000000000"', "If-Modified-Since": date})
    assert r.status == 200 and r.body == DATA, r


def test_if_match_and_if_unmodified_since(client):
    etag, date = put_object(client)
    r = client.get("cond", "obj", {"If-Match": etag})
    assert r.status == 200 and r.body == DATA, r
    r = client.get("cond", "obj", {"If-Match": "*"})
    assert r.status == 200, r
    r = client.get("cond", "obj", {"If-Match": '"00000000000000000000000000000000"'})
    expect_error(r, 412, "PreconditionFailed")
    assert r.headers.get_all("Content-Type") == ["application/json"], r
    assert r.headers.get("ETag") is None, r
    r = client.get("cond", "obj", {"If-Unmodified-Since": shifted(date, -3600)})
    expect_error(r, 412, "PreconditionFailed")
    r = client.get("cond", "obj", {"If-Unmodified-Since": date})
    assert r.status == 200, r
    # a missing object is a 404 whatever the preconditions say
    r = client.get("cond", "absent", {"If-Match": etag})
    expect_error(r, 404, "NoSuchKey")


def test_put_if_none_match_star_creates_only(client):
    etag, _ = put_object(client)
    r = client.put("cond", "obj", b"overwrite", {"If-None-Match": "*"})
    expect_error(r, 412, "PreconditionFailed")
    r = client.get("cond", "obj")
    assert r.status == 200 and r.body == DATA and r.headers["ETag"] == etag, "nothing may be written"
    expect_ok_json(client.put("cond", "fresh", b"new key", {"If-None-Match": "*"}))
    assert client.get("cond", "fresh").body == b"new key"


def test_put_if_match(client):
    etag, _ = put_object(client)
    expect_ok_json(client.put("cond", "obj", b"second", {"If-Match": etag}))
    r = client.put("cond", "obj", b"third", {"If-Match": etag})  # etag is the first version's
    expect_error(r, 412, "PreconditionFailed")
    r = client.get("cond", "obj")
    assert r.body == b"second" and r.headers["ETag"] == '"%s"' % md5(b"second"), r
    r = client.put("cond", "missing", b"x", {"If-Match": "*"})
    expect_error(r, 412, "PreconditionFailed")
    assert client.get("cond", "missing").status == 404
    # a bucket not created yet holds no object either; nothing is created
    r = client.put("condnew", "key", b"x", {"If-Match": "*"})
    expect_error(r, 412, "PreconditionFailed")
    expect_error(client.list("condnew"), 404, "NoSuchBucket")


def race(server, key, headers, writers=16):
    """`writers` clients PUT `key` at once, each its own body, all with `headers`.
    Returns {body: status}. Bodies differ from every earlier race's too: If-Match
    compares ETags, so a writer that put the checked object's very bytes back
    would rightly leave it matching for the next."""
    clients = [server.client() for _ in range(writers)]
    start = threading.Barrier(writers)
    results = {}

    def one(i):
        body = b"%s %s writer %02d" % (key.encode(), repr(sorted(headers.items())).encode(), i)
        start.wait(timeout=30)
        results[body] = clients[i].put("cond", key, body, headers).status

    threads = [threading.Thread(target=one, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for c in clients:
        c.close()
    assert len(results) == writers, results
    return results


def test_concurrent_conditional_puts_are_atomic(server, client):
    """Concurrent PUTs that each ask If-None-Match: * (create only) or If-Match the
    same ETag: exactly one may win, and the object is the winner's. Without the
    check inside the commit's transaction, every PUT that arrives before the first
    commit passes its check and all of them answer 200."""
    put_object(client)
    for round_ in range(8):
        key = "race%d" % round_
        results = race(server, key, {"If-None-Match": "*"})
        winners = [b for b, st in results.items() if st == 200]
        assert len(winners) == 1 and all(st in (200, 412) for st in results.values()), results
        assert client.get("cond", key).body == winners[0]

        etag = client.head("cond", key).headers["ETag"]
        results = race(server, key, {"If-Match": etag})
        winners = [b for b, st in results.items() if st == 200]
        assert len(winners) == 1 and all(st in (200, 412) for st in results.values()), results
        assert client.get("cond", key).body == winners[0]


def test_curl_conditional_get(server, client):
    """A real client: curl's --etag-compare sends If-None-Match from a saved ETag."""
    etag, _ = put_object(client)
    url = "http://%s:%d/cond/obj" % (server.host, server.port)
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "-H",
                          "If-None-Match: " + etag, url], capture_output=True, timeout=30, check=True)
    assert out.stdout.decode() == "304 0", out
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-z", "Thu, 01 Jan 2015 00:00:00 GMT", url],
                         capture_output=True, timeout=30, check=True)
    assert out.stdout.decode() == "200", out


def test_repeated_headers(server, client):
    """A list header sent in several lines is one list; a date header sent twice is invalid and ignored; of two
    Range lines the first is served (curl sends each -H as its own line)."""
    etag, date = put_object(client)
    url = "http://%s:%d/cond/obj" % (server.host, server.port)

    def code(*headers):
        args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}"]
        for h in headers:
            args += ["-H", h]
        return subprocess.run(args + [url], capture_output=True, timeout=30, check=True).stdout.decode()

    none = '"00000000000000000000000000000000"'
    assert code("If-None-Match: " + none, "If-None-Match: " + etag) == "304 0"
    assert code("If-None-Match: " + none, "If-None-Match: " + none) == "200 %d" % len(DATA)
    assert code("If-Match: " + none, "If-Match: " + etag) == "200 %d" % len(DATA)
    assert code("If-Match: " + none, "If-Match: " + none) == "412 %s" % code("If-Match: " + none).split()[1]
    # one If-Modified-Since would answer 304; the same header twice is ignored
    assert code("If-Modified-Since: " + date) == "304 0"
    assert code("If-Modified-Since: " + date, "If-Modified-Since: " + date) == "200 %d" % len(DATA)
    assert code("If-Unmodified-Since: " + shifted(date, -3600)).startswith("412 ")
    assert code("If-Unmodified-Since: " + shifted(date, -3600), "If-Unmodified-Since: " + shifted(date, -3600)) == \
        "200 %d" % len(DATA)
    assert code("Range: bytes=0-9", "Range: bytes=0-19") == "206 10"
    # If-Range that names another version: the whole object, whatever a second If-Range line says
    assert code("Range: bytes=0-9", "If-Range: " + none, "If-Range: " + etag) == "200 %d" % len(DATA)
    assert code("Range: bytes=0-9", "If-Range: " + etag, "If-Range: " + none) == "206 10"
