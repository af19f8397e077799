"""test_http_error_headers.py - an error reply carries the error body's headers only.

An object handler adds the object's headers (Content-Type, ETag,
Last-Modified, ...) before it knows whether the request can be served; when
it then answers with an error, none of them may leak into the error reply
(a 416 once carried "Content-Type: text/plain, application/json")."""

from harness.comio import expect_error, expect_ok_json

OBJECT_HEADERS = ("ETag", "Last-Modified", "Accept-Ranges", "X-Comio-Version")


def one_json_content_type(r):
    ctypes = r.headers.get_all("Content-Type") or []
    assert ctypes == ["application/json"], r


def test_416_carries_one_content_type(client):
    assert client.create_bucket("errh").status == 200
    expect_ok_json(client.put("errh", "obj", b"x" * 1000, {"Content-Type": "text/plain"}))
    r = client.get("errh", "obj", {"Range": "bytes=5000-"})
    expect_error(r, 416, "InvalidRange")
    one_json_content_type(r)
    assert r.headers.get_all("Content-Range") == ["bytes */1000"], r
    for name in OBJECT_HEADERS:
        assert r.headers.get(name) is None, (name, r)


def test_416_head_carries_one_content_type(client):
    assert client.create_bucket("errh").status == 200
    expect_ok_json(client.put("errh", "obj", b"x" * 10, {"Content-Type": "image/png"}))
    r = client.head("errh", "obj", {"Range": "bytes=50-"})
    assert r.status == 416, r
    one_json_content_type(r)
    for name in OBJECT_HEADERS:
        assert r.headers.get(name) is None, (name, r)


def test_416_empty_object(client):
    assert client.create_bucket("errh").status == 200
    expect_ok_json(client.put("errh", "empty", b"", {"Content-Type": "text/html"}))
    r = client.get("errh", "empty", {"Range": "bytes=0-"})
    expect_error(r, 416, "InvalidRange")
    one_json_content_type(r)
    assert r.headers.get("Content-Range") == "bytes */0", r


def test_success_keeps_object_headers(client):
    assert client.create_bucket("errh").status == 200
    expect_ok_json(client.put("errh", "obj", b"y" * 100, {"Content-Type": "text/plain"}))
    r = client.get("errh", "obj", {"Range": "bytes=10-19"})
    assert r.status == 206 and r.body == b"y" * 10, r
    assert r.headers.get_all("Content-Type") == ["text/plain"], r
    for name in OBJECT_HEADERS:
        assert r.headers.get(name) is not None, (name, r)
