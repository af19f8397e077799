"""test_http_if_range.py - If-Range: a resumed download never splices two versions.

A client that resumes a download sends Range with If-Range naming the copy it
has (its ETag or its Last-Modified date). When the object was overwritten
meanwhile, RFC 9110 section 13.1.5 asks for a 200 with the whole current
object, never a 206 with the new object's tail."""

import email.utils

from harness.comio import expect_ok_json, md5

OLD = bytes(range(256)) * 8  # 2048 bytes
NEW = bytes(reversed(range(256))) * 8


def overwrite(client):
    assert client.create_bucket("ifr").status == 200
    expect_ok_json(client.put("ifr", "obj", OLD))
    r = client.head("ifr", "obj")
    old_etag, old_date = r.headers["ETag"], r.headers["Last-Modified"]
    expect_ok_json(client.put("ifr", "obj", NEW))
    r = client.head("ifr", "obj")
    assert r.headers["ETag"] == '"%s"' % md5(NEW), r
    return old_etag, r.headers["ETag"], r.headers["Last-Modified"]


def test_old_etag_gets_the_whole_new_object(client):
    old_etag, _, _ = overwrite(client)
    r = client.get("ifr", "obj", {"Range": "bytes=500-", "If-Range": old_etag})
    assert r.status == 200, r
    assert r.body == NEW, "a stale If-Range must get the whole current object"
    assert r.headers.get("Content-Range") is None, r
    assert int(r.headers["Content-Length"]) == len(NEW), r


def test_current_etag_gets_the_range(client):
    _, new_etag, _ = overwrite(client)
    r = client.get("ifr", "obj", {"Range": "bytes=500-", "If-Range": new_etag})
    assert r.status == 206, r
    assert r.body == NEW[500:], r
    assert r.headers["Content-Range"] == "bytes 500-%d/%d" % (len(NEW) - 1, len(NEW)), r


def test_weak_etag_never_matches(client):
    _, new_etag, _ = overwrite(client)
    r = client.get("ifr", "obj", {"Range": "bytes=500-", "If-Range": "W/" + new_etag})
    assert r.status == 200 and r.body == NEW, r


def test_date_forms(client):
    _, _, new_date = overwrite(client)
    r = client.get("ifr", "obj", {"Range": "bytes=500-", "If-Range": new_date})
    assert r.status == 206 and r.body == NEW[500:], r
    older = email.utils.formatdate(email.utils.parsedate_to_datetime(new_date).timestamp() - 3600, usegmt=True)
    r = client.get("ifr", "obj", {"Range": "bytes=500-", "If-Range": older})
    assert r.status == 200 and r.body == NEW, r
    r = client.get("ifr", "obj", {"Range": "bytes=500-", "If-Range": "not a date"})
    assert r.status == 200 and r.body == NEW, r


def test_stale_if_range_with_unsatisfiable_range_gets_the_object(client):
    old_etag, _, _ = overwrite(client)
    r = client.get("ifr", "obj", {"Range": "bytes=9000-", "If-Range": old_etag})
    assert r.status == 200 and r.body == NEW, r


def test_large_object_streamed(client):
    """Objects over 1 MiB are streamed: the same rule holds there."""
    assert client.create_bucket("ifr").status == 200
    old = b"a" * (3 << 20)
    new = b"b" * (3 << 20)
    expect_ok_json(client.put("ifr", "big", old))
    old_etag = client.head("ifr", "big").headers["ETag"]
    expect_ok_json(client.put("ifr", "big", new))
    r = client.get("ifr", "big", {"Range": "bytes=%d-" % (1 << 20), "If-Range": old_etag})
    assert r.status == 200 and len(r.body) == len(new) and r.body == new, r.status
