"""test_durability.py - what survives restarts, crashes, full stores and torn
uploads, and what the replication log records."""

import http.client
import os
import random
import socket
import threading
import time

from harness.comio import Client, expect_error, expect_ok_json, expect_too_large, md5, settled_used, wait_for


def put_ok(c, bucket, key, data, headers=None):
    r = c.put(bucket, key, data, headers)
    assert r.status == 200, r
    return int(r.headers["X-Comio-Version"])


# --- restarts ----------------------------------------------------------------


def test_graceful_restart_keeps_everything(make_server):
    srv = make_server(replication=True)
    c = srv.client()
    objects = {
        ("docs", "a.txt"): (b"alpha", "text/plain"),
        ("docs", "dir/b.bin"): (bytes(range(256)) * 100, "application/x-bin"),
        ("docs", "empty"): (b"", "application/octet-stream"),
        ("media", "big"): (os.urandom(3_000_001), "video/mp4"),
    }
    versions = {}
    for (b, k), (data, ctype) in objects.items():
        versions[(b, k)] = put_ok(c, b, k, data, {"Content-Type": ctype})
    # an overwrite and a delete that must stay done
    versions[("docs", "a.txt")] = put_ok(c, "docs", "a.txt", b"alpha-2", {"Content-Type": "text/plain"})
    objects[("docs", "a.txt")] = (b"alpha-2", "text/plain")
    put_ok(c, "docs", "gone", b"bye")
    assert c.delete("docs", "gone").status == 204
    assert expect_ok_json(c.create_bucket("emptybucket"))["created"] is True
    m0 = c.metrics()
    st0 = c.repl_status()
    last_modified = {bk: c.head(*bk).headers["Last-Modified"] for bk in objects}

    srv.restart(graceful=True)
    c = srv.client()
    for (b, k), (data, ctype) in objects.items():
        r = c.get(b, k)
        assert r.status == 200 and r.body == data, (b, k, r.status)
        assert r.headers["Content-Type"] == ctype
        assert r.headers["ETag"] == '"%s"' % md5(data)
        assert int(r.headers["X-Comio-Version"]) == versions[(b, k)]
        assert r.headers["Last-Modified"] == last_modified[(b, k)]
    expect_error(c.get("docs", "gone"), 404, "NoSuchKey")
    names = sorted(b["name"] for b in expect_ok_json(c.raw("GET", "/"))["buckets"])
    assert names == ["docs", "emptybucket", "media"]
    assert [o["key"] for o in expect_ok_json(c.list("docs"))["objects"]] == ["a.txt", "dir/b.bin", "empty"]
    m1 = c.metrics()
    for name in ("comio_objects", "comio_store_used_bytes", "comio_store_capacity_bytes", "comio_replog_head_seq"):
        assert m1.value(name) == m0.value(name), name
    st1 = c.repl_status()
    assert st1["log_head_seq"] == st0["log_head_seq"], (st0, st1)

    # numbering goes on where it stopped
    v = put_ok(c, "docs", "after", b"after")
    assert v > max(versions.values())
    assert c.repl_status()["log_head_seq"] == st0["log_head_seq"] + 1


def test_kill9_keeps_every_acknowledged_put(make_server):
    srv = make_server(replication=True)
    c = srv.client()
    used0 = c.metrics().value("comio_store_used_bytes")
    put_ok(c, "pre", "over", b"first")
    put_ok(c, "pre", "over", b"second")
    put_ok(c, "pre", "del", b"doomed")
    assert c.delete("pre", "del").status == 204
    head0 = c.repl_status()["log_head_seq"]

    lock = threading.Lock()
    attempted = {}  # key -> md5 of what was sent (acknowledged or not)
    acked = {}  # key -> (md5, version), only for 200 replies
    errors = []
    stop = threading.Event()

    def worker(n):
        rnd = random.Random(n)
        wc = Client(srv.host, srv.port, timeout=30)
        try:
            for i in range(60):
                if stop.is_set():
                    return
                key = "t%d/%03d" % (n, i)
                data = rnd.randbytes(rnd.choice([0, 1, 100, 4096, 65536, 200_000]))
                with lock:
                    attempted[key] = md5(data)
                try:
                    r = wc.put("crash", key, data)
                except (OSError, http.client.HTTPException):
                    return  # the server is gone
                if r.status != 200:
                    if not stop.is_set():
                        errors.append((key, r))
                    return
                with lock:
                    acked[key] = (md5(data), int(r.headers["X-Comio-Version"]))
        finally:
            wc.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(acked) < 120 and any(t.is_alive() for t in threads):
        time.sleep(0.005)
    srv.kill9()
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:3]
    assert len(acked) >= 100, "too few PUTs were acknowledged before the kill: %d" % len(acked)

    srv.start()
    c = srv.client()
    for key, (digest, version) in sorted(acked.items()):
        r = c.get("crash", key)
        assert r.status == 200, "acknowledged %s lost after kill -9: %r" % (key, r)
        assert md5(r.body) == digest, "acknowledged %s has other bytes after kill -9" % key
        assert int(r.headers["X-Comio-Version"]) == version
    assert c.get("pre", "over").body == b"second"
    expect_error(c.get("pre", "del"), 404, "NoSuchKey")

    keys, _ = c.list_all("crash")
    assert set(acked) <= set(keys)
    for key in set(keys) - set(acked):  # in flight at the kill: whole or absent, never torn
        assert key in attempted, key
        r = c.get("crash", key)
        assert r.status == 200 and md5(r.body) == attempted[key], "in-flight %s survived torn" % key
    m = c.metrics()
    assert m.value("comio_objects") == len(keys) + 1  # + pre/over
    st = c.repl_status()
    assert st["log_head_seq"] >= head0 + len(acked), (head0, len(acked), st)

    # the store works, numbering goes on, and no space leaked in the crash
    v = put_ok(c, "crash", "after", b"after")
    assert v > max(ver for _, ver in acked.values())
    assert expect_ok_json(c.purge("crash"))["deleted_count"] == len(keys) + 1
    assert expect_ok_json(c.purge("pre"))["deleted_count"] == 1
    assert c.metrics().value("comio_objects") == 0
    used = settled_used(c, lambda u: u == used0)
    assert used == used0, "space leaked across kill -9"


# --- full store ----------------------------------------------------------------


def test_store_full_507_then_delete_frees_space(make_server):
    srv = make_server(size="16MB")
    c = srv.client()
    stored = []
    failed = None
    for i in range(40):
        key, data = "o%02d" % i, os.urandom(1_000_000)
        r = c.put("full", key, data)
        if r.status == 200:
            stored.append((key, data))
            continue
        expect_error(r, 507, "InsufficientStorage")
        failed = (key, data)
        break
    assert failed is not None, "a 16MB store accepted 40 MB"
    assert len(stored) >= 10, "a 16MB store held only %d MB" % len(stored)

    # still serving, and the failed PUT left nothing behind
    assert c.health().status == 200
    expect_error(c.get("full", failed[0]), 404, "NoSuchKey")
    for key, data in stored:
        r = c.get("full", key)
        assert r.status == 200 and r.body == data, key
    assert c.metrics().value("comio_objects") == len(stored)
    expect_error(c.put("full", failed[0], failed[1]), 507, "InsufficientStorage")
    assert c.put("full", "small", b"s" * 100).status in (200, 507)
    c.delete("full", "small")

    used_full = c.metrics().value("comio_store_used_bytes")
    assert c.delete("full", stored[0][0]).status == 204
    used = settled_used(c, lambda u: u <= used_full - 1_000_000)
    assert used <= used_full - 1_000_000, "DELETE did not give the space back"
    r = c.put("full", failed[0], failed[1])
    assert r.status == 200, "PUT still fails after a DELETE freed its size: %r" % (r,)
    assert c.get("full", failed[0]).body == failed[1]
    stored = stored[1:] + [failed]

    srv.restart()
    c = srv.client()
    for key, data in stored:
        assert md5(c.get("full", key).body) == md5(data), key
    expect_error(c.get("full", "o00"), 404, "NoSuchKey")


# --- torn uploads ------------------------------------------------------------------


def torn_put(port, path, declared, sent):
    """Sends a PUT head announcing `declared` bytes, then `sent` bytes, then closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(b"PUT " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/torn\r\n"
                  b"Content-Length: %d\r\n\r\n" % declared)
        view = memoryview(b"t" * min(sent, 1 << 20))
        left = sent
        while left > 0:
            n = min(left, len(view))
            s.sendall(view[:n])
            left -= n
    finally:
        s.close()


def test_torn_uploads_leave_nothing(repl_server):
    c = repl_server.client()
    put_ok(c, "torn", "keep", b"original")
    st0 = c.repl_status()
    m0 = c.metrics()
    used0 = m0.value("comio_store_used_bytes")

    torn_put(repl_server.port, "/torn/a", 100_000, 1000)
    torn_put(repl_server.port, "/torn/b", 100_000, 0)
    torn_put(repl_server.port, "/torn/keep", 100_000, 5000)  # an overwrite that never completes
    torn_put(repl_server.port, "/torn/big", 40_000_000, 3_000_000)
    torn_put(repl_server.port, "/newbucket/x", 100_000, 10)

    # let the server notice the closed connections and release what they held
    used = wait_for(lambda: c.metrics().value("comio_store_used_bytes") == used0)
    assert used, "space held by torn uploads was not released"
    for key in ("a", "b", "big"):
        expect_error(c.get("torn", key), 404, "NoSuchKey")
    assert c.get("newbucket", "x").status == 404
    r = c.get("torn", "keep")
    assert r.status == 200 and r.body == b"original" and r.headers["Content-Type"] == "application/octet-stream"
    assert [o["key"] for o in expect_ok_json(c.list("torn"))["objects"]] == ["keep"]
    st1 = c.repl_status()
    assert st1["events_queued"] == st0["events_queued"], (st0, st1)
    assert st1["log_head_seq"] == st0["log_head_seq"], (st0, st1)
    assert c.metrics().value("comio_objects") == m0.value("comio_objects")

    # still serving: a complete PUT works and adds exactly one record
    put_ok(c, "torn", "a", b"complete")
    assert c.get("torn", "a").body == b"complete"
    st2 = c.repl_status()
    assert st2["events_queued"] == st0["events_queued"] + 1
    assert st2["log_head_seq"] == st0["log_head_seq"] + 1


# --- replication log -----------------------------------------------------------------


def test_replog_one_record_per_mutation(repl_server):
    c = repl_server.client()
    st = c.repl_status()
    assert st["enabled"] is True
    for field in ("events_queued", "events_replicated", "events_failed", "log_head_seq", "log_pending"):
        assert isinstance(st[field], int) and st[field] >= 0, (field, st)
    assert "last_replication" in st
    base_q, base_h = st["events_queued"], st["log_head_seq"]
    count = 0

    def expect_records(n):
        s = c.repl_status()
        assert s["events_queued"] == base_q + n, (n, s)
        assert s["log_head_seq"] == base_h + n, (n, s)
        assert c.metrics().value("comio_replog_head_seq") == base_h + n

    put_ok(c, "replog", "a", b"1")  # creates the bucket too: still one record
    count += 1
    expect_records(count)
    put_ok(c, "replog", "a", b"2")
    count += 1
    expect_records(count)
    put_ok(c, "replog", "b", b"3")
    count += 1
    expect_records(count)
    assert c.delete("replog", "a").status == 204
    count += 1
    expect_records(count)

    # reads and dry runs log nothing
    c.get("replog", "b")
    c.head("replog", "b")
    c.list("replog")
    c.raw("GET", "/")
    assert expect_ok_json(c.purge("replog", confirm=False))["count"] == 1
    expect_records(count)

    assert expect_ok_json(c.purge("replog", confirm=True))["deleted_count"] == 1
    count += 1
    expect_records(count)


def test_replog_failed_requests_log_nothing(make_server):
    srv = make_server(replication=True, config="server:\n  max_object_size: 1000\n")
    c = srv.client()
    put_ok(c, "ok-bucket", "k", b"v")
    st0 = c.repl_status()
    expect_error(c.put("Bad_Bucket", "k", b"v"), 400, "InvalidBucketName")
    expect_error(c.raw("PUT", "/ok-bucket/a%00b", b"v"), 400, "InvalidKey")
    expect_error(c.put("ok-bucket", "k" * 1025, b"v"), 400, "KeyTooLong")
    expect_error(c.raw("PUT", "/ok-bucket/%zz", b"v"), 400, "InvalidURI")
    expect_too_large(c.put("ok-bucket", "big", b"x" * 1001))
    expect_error(c.delete("no-such-bucket", "k"), 404, "NoSuchBucket")
    expect_error(c.raw("POST", "/ok-bucket/k", b"v"), 405, "MethodNotAllowed")
    expect_error(c.get("ok-bucket", "missing"), 404, "NoSuchKey")
    st1 = c.repl_status()
    assert st1["events_queued"] == st0["events_queued"], (st0, st1)
    assert st1["log_head_seq"] == st0["log_head_seq"], (st0, st1)
    expect_error(c.get("ok-bucket", "big"), 404, "NoSuchKey")
    put_ok(c, "ok-bucket", "fits", b"x" * 1000)
    assert c.repl_status()["log_head_seq"] == st0["log_head_seq"] + 1


def test_replication_disabled_logs_nothing(client):
    st = client.repl_status()
    assert st["enabled"] is False
    put_ok(client, "nolog", "a", b"1")
    put_ok(client, "nolog", "a", b"2")
    assert client.delete("nolog", "a").status == 204
    put_ok(client, "nolog", "b", b"3")
    assert client.purge("nolog").status == 200
    st = client.repl_status()
    assert st["enabled"] is False
    assert st["events_queued"] == 0, st
    assert st["log_head_seq"] in (0, None), st
    assert client.metrics().value("comio_replog_head_seq") == 0
