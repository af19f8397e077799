"""test_s3_body_hash.py - a signed S3 body of 1 MiB or more is hashed off the event loop (storaged/s3_bodyhash.c):
it still verifies, a wrong one is still refused and stores nothing, more uploads than hashing threads all verify
(the rest are hashed on the loop), and a client that goes away while its body is hashed leaves the server well.

Requests are signed by hand with test_s3_auth's helpers (x-amz-content-sha256: the body's SHA-256, as boto3 signs a
body over plain HTTP)."""

import concurrent.futures
import hashlib
import os
import socket

from test_s3_auth import error_code, s3, send, sign, srv, stored  # noqa: F401 (fixtures)

MiB = 1 << 20


def put(srv, key, body, claimed=None):
    path = "/auth-bucket/" + key
    h = sign(srv, "PUT", path, body, payload=claimed)
    return send(srv, "PUT", path, h, body)


def test_large_signed_put_verifies(srv, s3):
    for size in (MiB - 1, MiB, 5 * MiB + 3):  # both sides of the threshold
        body = os.urandom(size)
        status, headers, text = put(srv, "big-%d" % size, body)
        assert status == 200, text
        assert headers["etag"] == '"%s"' % hashlib.md5(body).hexdigest()
        assert stored(srv, "big-%d" % size) == body


def test_large_signed_put_wrong_hash_refused(srv, s3):
    old = b"the object as it was"
    assert put(srv, "kept", old)[0] == 200
    for size in (MiB - 1, MiB, 5 * MiB):
        body = os.urandom(size)
        other = hashlib.sha256(body[:-1] + bytes([body[-1] ^ 1])).hexdigest()  # one bit off: signed, but not this body
        status, _, text = put(srv, "kept", body, claimed=other)
        assert (status, error_code(text)) == (400, "XAmzContentSHA256Mismatch"), text
        status, _, text = put(srv, "new-%d" % size, body, claimed=other)
        assert (status, error_code(text)) == (400, "XAmzContentSHA256Mismatch"), text
        assert stored(srv, "new-%d" % size) is None
    assert stored(srv, "kept") == old


def test_more_uploads_than_hashing_threads(srv, s3):
    """20 uploads of 2 MiB at once: beyond the 8 hashing threads the rest hash on the loop; every good one is stored,
    every bad one refused."""
    bodies = {"par-%02d" % i: os.urandom(2 * MiB) for i in range(20)}

    def one(key):
        body = bodies[key]
        claimed = None if int(key[-2:]) % 2 == 0 else hashlib.sha256(b"not " + body).hexdigest()
        return key, claimed is None, put(srv, key, body, claimed=claimed)

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as ex:
        results = list(ex.map(one, sorted(bodies)))
    for key, good, (status, _, text) in results:
        if good:
            assert status == 200, (key, text)
            assert stored(srv, key) == bodies[key]
        else:
            assert (status, error_code(text)) == (400, "XAmzContentSHA256Mismatch"), (key, text)
            assert stored(srv, key) is None


def test_client_gone_while_hashing(srv, s3):
    """Clients that send a 48 MiB signed body and close at once: the server stops hashing a body it is about to free
    (ASan builds would report a read after free), stores nothing of them, and goes on serving."""
    body = os.urandom(48 * MiB)
    for i in range(3):
        path = "/auth-bucket/gone-%d" % i
        h = sign(srv, "PUT", path, body, payload=hashlib.sha256(b"x" + body).hexdigest())  # refused if it ever completes
        head = "PUT %s HTTP/1.1\r\n" % path + "".join("%s: %s\r\n" % (k, v) for k, v in h.items() if not k.startswith("_"))
        head += "content-length: %d\r\n\r\n" % len(body)
        with socket.create_connection((srv.host, srv.port), timeout=30) as c:
            c.sendall(head.encode() + body)
    for i in range(3):
        assert stored(srv, "gone-%d" % i) is None
    status, _, text = put(srv, "after", b"still here" * 200000)
    assert status == 200, text
    assert stored(srv, "after") == b"still here" * 200000
