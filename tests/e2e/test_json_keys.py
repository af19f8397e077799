"""test_json_keys.py - keys of arbitrary bytes (not UTF-8 too) come back from a listing
exactly: as strict JSON (UTF-8 text, bytes that are not UTF-8 as \\udcXX escapes) and,
with encoding-type=url, percent-encoded. docs/api.md, "Key encoding in listings"."""

import json
import urllib.parse

from harness.comio import expect_error, expect_ok_json, key_bytes

# Every byte a key may hold (not NUL), alone and after ASCII, and the sequences a UTF-8
# decoder must refuse next to ones it must accept.
KEYS = [b"k" + bytes([c]) for c in range(1, 256)] + [bytes([c]) for c in range(0x80, 0x100)] + [
    b"caf\xc3\xa9",  # valid UTF-8: stays as it is
    b"\xe2\x82\xac/\xf0\x9f\x98\x80",
    b"\xf4\x8f\xbf\xbf",  # U+10FFFF, the last code point
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\xed\xb2\x80",  # U+DC80 encoded: must not read back as the escape of byte 0x80
    b"\xc0\x80",  # overlong NUL
    b"\xe0\x9f\xbf",  # overlong U+07FF
    b"\xf0\x8f\xbf\xbf",  # overlong U+FFFF
    b"\xe2\x82",  # truncated
    b"\xe2\x82x",
    b"\xf0\x9f\x98\xc3\xa9",
    b"\xff\xfe\xfd",
    b"\\udc80",  # the escape's own text, as ASCII: stays distinct from byte 0x80
    b"\\u00e9",
    b"\"quoted\"\x7f\x1f",
    b"p/\xff/a",
    b"p/\xff/b",
    b"p/\xfe",
]


def strict_json(r):
    """The reply parsed the strict way: the body must be UTF-8 (RFC 8259), then JSON."""
    assert r.status == 200, r
    text = r.body.decode("utf-8")  # raises on bytes that are not UTF-8
    return json.loads(text)


def put_all(c, bucket):
    assert c.create_bucket(bucket).status in (200, 409)
    for k in KEYS:
        r = c.put(bucket, k, k)
        assert r.status == 200, (k, r)


def test_listing_returns_any_key_bytes(client):
    put_all(client, "bytes")
    want = sorted(set(KEYS))  # storaged lists in byte order

    # the default encoding: strict JSON, keys recovered with surrogateescape, across pages
    got, pages = [], []
    start = None
    for _ in range(200):
        page = strict_json(client.list("bytes", start_after=start, max_keys=37))
        assert "encoding_type" not in page, page
        pages.append(page)
        got += [key_bytes(o["key"]) for o in page["objects"]]
        if not page["is_truncated"]:
            break
        start = page["next_start_after"]
    assert got == want
    assert len(pages) > 1

    # keys that are valid UTF-8 are written as before: the raw bytes, not escapes
    body = client.list("bytes", prefix="caf").body
    assert b'"key":"caf\xc3\xa9"' in body, body
    body = client.list("bytes", prefix=b"\xf4\x8f").body
    assert b'"key":"\xf4\x8f\xbf\xbf"' in body, body
    body = client.list("bytes", prefix=b"\xc0").body
    assert b'"key":"\\udcc0\\udc80"' in body, body

    # every listed key names its object
    for k in got[::7]:
        r = client.get("bytes", k)
        assert r.status == 200 and r.body == k, (k, r)

    # a prefix that is not UTF-8 is echoed losslessly and selects by bytes
    page = strict_json(client.list("bytes", prefix=b"p/\xff/"))
    assert key_bytes(page["prefix"]) == b"p/\xff/"
    assert [key_bytes(o["key"]) for o in page["objects"]] == [b"p/\xff/a", b"p/\xff/b"]


def test_listing_encoding_type_url(client):
    put_all(client, "urlenc")
    want = sorted(set(KEYS))

    got, start = [], None
    for _ in range(200):
        r = client.list("urlenc", start_after=start, max_keys=50, encoding_type="url")
        r.body.decode("ascii")  # nothing but ASCII
        page = strict_json(r)
        assert page["encoding_type"] == "url", page
        for o in page["objects"]:
            assert all(ch.isalnum() or ch in "-._~%" for ch in o["key"]), o
        got += [urllib.parse.unquote_to_bytes(o["key"]) for o in page["objects"]]
        if not page["is_truncated"]:
            break
        start = urllib.parse.unquote_to_bytes(page["next_start_after"])
    assert got == want
    keys, _ = client.list_all("urlenc", max_keys=99, encoding_type="url")
    assert keys == want

    page = strict_json(client.list("urlenc", prefix=b"p/\xff/", encoding_type="url"))
    assert page["prefix"] == "p%2F%FF%2F", page
    assert [o["key"] for o in page["objects"]] == ["p%2F%FF%2Fa", "p%2F%FF%2Fb"]
    page = strict_json(client.list("urlenc", prefix="caf", encoding_type="url"))
    assert [o["key"] for o in page["objects"]] == ["caf%C3%A9"]


def test_listing_encoding_type_refused(client):
    put_all(client, "badenc")
    for value in ("URL", "", "base64", "url2", "x" * 100):
        body = expect_error(client.raw("GET", "/badenc?encoding-type=" + urllib.parse.quote(value)), 400,
                            "InvalidArgument")
        assert "encoding-type" in body["error"], body
    # nothing changed: the listing is whole
    keys, _ = client.list_all("badenc")
    assert [key_bytes(k) for k in keys] == sorted(set(KEYS))
    assert expect_ok_json(client.list("badenc", max_keys=1))["is_truncated"] is True
