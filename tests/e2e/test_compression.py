"""test_compression.py - zstd between sites (replication.compression, docs/replication.md, Compression).

Two real sites with a relay (harness TcpProxy) between A's repld and B, and
another between B and A's public_url (B's fetches of large objects): the
relays count the bytes that crossed, independently of the daemons' own
figures. Compressible (JSON-like) and random data, inline and fetched, must
arrive byte for byte (`comio diff` exit 0 and reads), and compressible data
must cross in clearly fewer bytes than with compression off. A peer that
refuses zstd (a scripted receiver) gets the batches uncompressed without an
event spending an attempt. Bad config values name file, line and key; a zstd
bomb, a corrupt frame and an unknown encoding POSTed by hand are refused and
change nothing. Every wait is bounded.
"""

import hashlib
import random
import subprocess
import time

import msgpack
import pytest

from harness import comio
from harness.fake_replica import FakeReplica
from harness.replication import (Site, TcpProxy, comio_diff, diff_snapshots, finish_sites, new_token, presign,
                                 repld_path, snapshot, wait_until)

CONVERGE_TIMEOUT = 60
INLINE_THRESHOLD = 64 * 1024


def log_text(rng, size):
    """`size` bytes of JSON log lines: what compresses well (logs, JSON documents)."""
    out, n = [], 0
    while n < size:
        line = ('{"ts":%d,"level":"%s","path":"/api/v1/items/%d","status":%d,"ms":%d,"user":"u%04d"}\n' %
                (1764000000 + rng.randrange(100000), rng.choice(["info", "warn", "debug"]), rng.randrange(5000),
                 rng.choice([200, 200, 200, 404, 500]), rng.randrange(900), rng.randrange(300))).encode()
        out.append(line)
        n += len(line)
    return b"".join(out)[:size]


def noise(rng, size):
    return rng.randbytes(size)


def workload(seed):
    """{(bucket, key): bytes}: text and random data, inline and fetched (over INLINE_THRESHOLD)."""
    rng = random.Random(seed)
    objs = {}
    for i in range(120):
        objs[("logs", "inline/%03d.json" % i)] = log_text(rng, 6000 + rng.randrange(2000))
    for i in range(20):
        objs[("blobs", "inline/%03d.bin" % i)] = noise(rng, 6000 + rng.randrange(2000))
    for i in range(3):
        objs[("logs", "large/%d.json" % i)] = log_text(rng, 200 * 1024 + i)
    for i in range(2):
        objs[("blobs", "large/%d.bin" % i)] = noise(rng, 200 * 1024 + i)
    return objs


def wait_diff_clean(a, b, timeout=CONVERGE_TIMEOUT):
    """Until `comio diff` of A and B finds nothing (exit 0) and A's log is drained."""
    last = []

    def clean():
        nonlocal last
        last, counts = comio_diff(a, b)
        return not last and counts is not None and a.status()["log_pending"] == 0

    wait_until(clean, timeout, interval=0.2, what=lambda: "comio diff clean: %s" % last[:10])


def target_status(site):
    targets = site.repld_status()["targets"]
    assert len(targets) == 1, targets
    return targets[0]


@pytest.fixture
def relayed(tmp_path):
    """relayed(compression) -> (a, b, to_b, to_a): A ships to B through the relay to_b; B fetches
    A's large objects through to_a (A's public_url). Started."""
    made, relays = [], []

    def make(compression, **repl):
        token = new_token()
        d = tmp_path / ("pair%d" % len(made))
        b = Site(d / "b", "site-b", accept_token=token)
        to_b, to_a = TcpProxy(b.port), None
        relays.append(to_b)
        conf = {"remote_url": to_b.url, "remote_token": token, "compression": compression,
                "inline_threshold": INLINE_THRESHOLD}
        conf.update(repl)
        a = Site(d / "a", "site-a", repl=conf)
        to_a = TcpProxy(a.port)
        relays.append(to_a)
        a.extra.setdefault("server", {})["public_url"] = to_a.url
        a.write_config()
        made.extend([a, b])
        b.start()
        a.start()
        return a, b, to_b, to_a

    yield make
    problems = finish_sites(made)
    for r in relays:
        r.close()
    if problems:
        pytest.fail("teardown:\n" + "\n".join(problems), pytrace=False)


def replicate(a, b, objs):
    ca, cb = a.client(), b.client()
    for (bucket, key), data in objs.items():
        assert ca.put(bucket, key, data).status == 200
    wait_diff_clean(a, b)
    for (bucket, key), data in objs.items():
        r = cb.get(bucket, key)
        assert r.status == 200 and r.body == data, (bucket, key, r.status, len(r.body))
        assert r.header("ETag") == '"%s"' % hashlib.md5(data).hexdigest()  # stored uncompressed: ETags unchanged


def test_compressible_data_crosses_in_fewer_bytes_and_arrives_intact(relayed):
    objs = workload(1515)
    figures = {}
    for compression in ("none", "zstd"):
        a, b, to_b, to_a = relayed(compression)
        replicate(a, b, objs)
        t = target_status(a)
        assert t["compression"] == compression and t["compression_fallback"] is False, t
        assert t["events_replicated"] == len(objs) and t["events_failed"] == 0, t
        m = a.client().metrics()
        posts = m.value("comio_replication_batch_duration_seconds_count", target=t["name"])
        assert m.value("comio_replication_payload_bytes_total", target=t["name"]) == t["payload_bytes"]
        assert m.value("comio_replication_wire_bytes_total", target=t["name"]) == t["wire_bytes"]
        figures[compression] = (to_b.bytes_to_target, to_a.bytes_from_target, t["payload_bytes"], t["wire_bytes"], posts)
        print(compression, "relay to B %d, fetches from A %d, daemon payload %d wire %d, %d POSTs" % figures[compression])
        # A's storaged served the fetches: its figures, against the relay's
        fetched = sum(len(d) for d in objs.values() if len(d) >= INLINE_THRESHOLD)
        payload = m.value("comio_replication_fetch_payload_bytes_total", target=t["name"])
        wire = m.value("comio_replication_fetch_wire_bytes_total", target=t["name"])
        print(compression, "fetches: A served %d object bytes in %d, the relay carried %d" % (payload, wire,
                                                                                              to_a.bytes_from_target))
        assert payload == fetched, (payload, fetched)
        assert wire == payload if compression == "none" else wire < payload * 0.7, (wire, payload)
        assert wire <= to_a.bytes_from_target <= wire + 16 * 1024, (wire, to_a.bytes_from_target)

    off, on = figures["none"], figures["zstd"]
    # the batches: the same payload, clearly fewer bytes on the link
    assert off[2] == off[3], off  # compression off: sent as is
    assert on[3] < on[2] * 0.5, on
    assert on[0] < off[0] * 0.5, (on, off)
    # the large objects B fetched from A: the text ones compressed, the random ones as is
    assert on[1] < off[1] * 0.7, (on, off)
    # the daemon's wire figure is what the relay carried, less the HTTP heads (a few hundred bytes a POST)
    for relay, _, _, wire, posts in (off, on):
        assert posts >= 1 and wire <= relay <= wire + posts * 1024, (relay, wire, posts)


@pytest.mark.parametrize("status", [415, 400])
def test_a_peer_refusing_zstd_gets_batches_uncompressed(tmp_path, status):
    """415: a receiver that knows no Content-Encoding; 400: what a storaged of a release without
    compression answers to a zstd body (it reads the frame as msgpack)."""
    token = new_token()
    fake = FakeReplica(token=token, refuse_encoding=status)
    # no retry: an event that spent an attempt on the refusal would be recorded as failed
    a = Site(tmp_path / "a", "site-a", repl={"remote_url": fake.url, "remote_token": token, "compression": "zstd",
                                             "retry_attempts": 0})
    try:
        a.start()
        ca = a.client()
        rng = random.Random(415)
        objs = {}
        for round_ in range(3):
            for i in range(15):
                objs[("logs", "r%d/%02d.json" % (round_, i))] = log_text(rng, 4000)
            for (bucket, key), data in list(objs.items())[-15:]:
                assert ca.put(bucket, key, data).status == 200
            wait_until(lambda: not diff_snapshots(snapshot(a), fake.snapshot()) and a.status()["log_pending"] == 0,
                       CONVERGE_TIMEOUT, interval=0.1, what="the fake holds what A holds")
        st = a.status()
        assert st["events_failed"] == 0 and st["events_replicated"] == len(objs), st
        t = target_status(a)
        assert t["compression"] == "zstd" and t["compression_fallback"] is True, t
        # refused compressed, then sent as is: at most one compressed batch per worker, before the first refusal
        encs = list(fake.encodings)
        assert 1 <= encs.count("zstd") <= 2 and encs[-1] == "", encs
        assert set(encs) <= {"zstd", ""}, encs
        lines = [x for x in a.repld.log_json() if "refuses zstd" in x.get("msg", "")]
        assert len(lines) == 1, lines
        assert lines[0]["target"] and "compression: none" in lines[0]["msg"], lines
        assert not fake.errors, fake.errors
    finally:
        problems = finish_sites([a])
        fake.close()
    assert not problems, problems


RETRY_WINDOW_MS = 4000  # COMIO_REPLD_ZSTD_RETRY_MS below: ten minutes in production


def test_zstd_is_tried_again_after_the_fallback_window(tmp_path, monkeypatch):
    """A peer that refused zstd gets batches as is for the window, then compressed again once it takes
    them (an upgraded peer): the window is shortened for the test through COMIO_REPLD_ZSTD_RETRY_MS."""
    monkeypatch.setenv("COMIO_REPLD_ZSTD_RETRY_MS", str(RETRY_WINDOW_MS))
    token = new_token()
    fake = FakeReplica(token=token, refuse_encoding=415)
    a = Site(tmp_path / "a", "site-a", repl={"remote_url": fake.url, "remote_token": token, "compression": "zstd",
                                             "retry_attempts": 0})
    rng = random.Random(416)
    objs = {}

    def write_round(name):
        made = {("logs", "%s/%02d.json" % (name, i)): log_text(rng, 4000) for i in range(10)}
        objs.update(made)
        for (bucket, key), data in made.items():
            assert ca.put(bucket, key, data).status == 200
        wait_until(lambda: not diff_snapshots(snapshot(a), fake.snapshot()) and a.status()["log_pending"] == 0,
                   CONVERGE_TIMEOUT, interval=0.1, what="the fake holds what A holds (%s)" % name)

    try:
        a.start()
        ca = a.client()
        t0 = time.monotonic()
        write_round("refused")
        encs = list(fake.encodings)
        assert "zstd" in encs and encs[-1] == "", encs
        assert target_status(a)["compression_fallback"] is True

        # the peer is upgraded: within the window the batches still go as is
        fake.refuse_encoding = None
        n = len(fake.encodings)
        write_round("window")
        within = time.monotonic() - t0 < RETRY_WINDOW_MS / 1000.0
        print("second round %s the window: %s" % ("within" if within else "past", fake.encodings[n:]))
        if within:  # else the machine was too slow for this half of the check; the next half still holds
            assert set(fake.encodings[n:]) == {""}, fake.encodings[n:]

        # after the window: compressed again, and taken
        wait_until(lambda: target_status(a)["compression_fallback"] is False, RETRY_WINDOW_MS / 1000.0 + 10,
                   interval=0.1, what="the fallback window over")
        n = len(fake.encodings)
        write_round("after")
        assert fake.encodings[n:] and set(fake.encodings[n:]) == {"zstd"}, fake.encodings[n:]
        st = a.status()
        assert st["events_failed"] == 0 and st["events_replicated"] == len(objs), st
        t = target_status(a)
        assert t["compression_fallback"] is False and t["wire_bytes"] < t["payload_bytes"], t
        assert not fake.errors, fake.errors
        lines = [x for x in a.repld.log_json() if "refuses zstd" in x.get("msg", "")]
        assert len(lines) == 1 and lines[0].get("retry_compression_in") == "%dms" % RETRY_WINDOW_MS, lines

        # refused again (the peer was downgraded): a new window, and the operator is told again
        fake.refuse_encoding = 415
        write_round("refused-again")
        assert target_status(a)["compression_fallback"] is True
        lines = [x for x in a.repld.log_json() if "refuses zstd" in x.get("msg", "")]
        assert len(lines) == 2, lines
        assert a.status()["events_failed"] == 0
    finally:
        problems = finish_sites([a])
        fake.close()
    assert not problems, problems


@pytest.mark.parametrize("where, config, lineno, key, shown", [
    ("top", "replication:\n  compression: gzip\n", 2, "replication.compression", "'gzip'"),
    ("top", "replication:\n  enabled: false\n  compression_level: 20\n", 3, "replication.compression_level", "'20'"),
    ("target", "replication:\n  targets:\n    - name: b\n      url: http://b.example\n      compression: lz4\n", 5,
     "replication.targets[0].compression", "'lz4'"),
    ("target", "replication:\n  targets:\n    - {name: b, url: 'http://b.example', compression_level: 0}\n", 3,
     "replication.targets[0].compression_level", "'0'"),
])
def test_bad_compression_values_name_file_line_and_key(tmp_path, where, config, lineno, key, shown):
    (tmp_path / "config.yaml").write_text(config)
    for exe in (comio.storaged_path(), repld_path()):
        p = subprocess.run([str(exe), "--config", "config.yaml"], cwd=str(tmp_path), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=20, env=comio.sanitizer_env())
        assert p.returncode == 2, (exe.name, p.returncode, p.stderr)
        assert "config.yaml:%d: %s: expected" % (lineno, key) in p.stderr and shown in p.stderr, (exe.name, p.stderr)


# --- the batch endpoint, by hand ---------------------------------------------------------------------------------

TOKEN = "compression-accept-token-0123456789"
CAP = 1000000  # server.max_object_size of the replica below: the largest batch body it takes


def put_record(seq, bucket, key, data):
    r = {"v": 1, "seq": seq, "op": 1, "b": bucket, "k": key, "sz": len(data), "et": hashlib.md5(data).digest(),
         "mt": 1764000000000, "o": "site-a"}
    return msgpack.packb(r, use_bin_type=True)


def batch(*events):
    return msgpack.packb({"v": 1, "src": "site-a", "ev": list(events)}, use_bin_type=True)


def zstd(data, declare=True):
    """A zstd frame made by the zstd CLI from a pipe: its header gives the content size only when told
    (--stream-size), as a frame made by a streaming compressor need not."""
    argv = ["zstd", "-q", "-c"] + (["--stream-size=%d" % len(data)] if declare else [])
    frame = subprocess.run(argv, input=data, capture_output=True, timeout=60, check=True).stdout
    assert (frame[4] & 0xC0 != 0 or frame[4] & 0x20 != 0) == declare, frame[:8]  # the frame header's FCS fields
    return frame


def post(client, body, encoding):
    headers = {"Content-Type": "application/msgpack", "Authorization": "Bearer " + TOKEN}
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    return client.raw("POST", "/admin/replication/batch", body, headers)


def test_bomb_corrupt_frame_and_unknown_encoding_are_refused_and_change_nothing(make_server):
    srv = make_server(config="server:\n  max_object_size: %d\n" % CAP, extra_args=["--accept-token", TOKEN])
    c = srv.client()
    data = log_text(random.Random(7), 50000)
    good = batch({"r": put_record(1, "zbk", "k", data), "d": data})
    frame = zstd(good)
    assert len(frame) < len(good) // 3

    corrupt = bytearray(frame)
    corrupt[len(corrupt) // 2] ^= 0x55
    truncated = frame[:-7]
    big = batch({"r": put_record(2, "zbk", "big", b"\0" * (CAP + 1)), "d": b"\0" * (CAP + 1)})
    cases = [
        ("a bomb that declares its size", zstd(big), "zstd", 400, "BatchTooLarge"),
        ("a bomb that hides its size", zstd(big, declare=False), "zstd", 400, "BatchTooLarge"),
        ("a corrupt frame", bytes(corrupt), "zstd", 400, "MalformedCompressedBatch"),
        ("a truncated frame", truncated, "zstd", 400, "MalformedCompressedBatch"),
        ("not zstd at all", good, "zstd", 400, "MalformedCompressedBatch"),
        # a release without compression ignores the header and reads the frame as msgpack: this is its answer,
        # which repld takes, like 415, as "send it as is" (test_a_peer_refusing_zstd_gets_batches_uncompressed)
        ("a frame without the header", frame, None, 400, "MalformedBatch"),
        ("an encoding it does not know", frame, "gzip", 415, "UnsupportedContentEncoding"),
        ("two encodings", frame, "zstd, gzip", 415, "UnsupportedContentEncoding"),
    ]
    for what, body, enc, status, code in cases:
        r = post(c, body, enc)
        assert r.status == status, (what, r)
        assert r.json()["code"] == code, (what, r.json())
        assert r.headers.get("Content-Type") == "application/json", (what, r.headers)
    # nothing was applied
    assert c.raw("GET", "/").json()["buckets"] == []
    m = c.metrics()
    assert m.value("comio_replica_events_total", result="applied") == 0

    # the same batch, compressed right, applies; "identity" is the body as is
    r = post(c, frame, "zstd")
    assert r.status == 200, r
    res = msgpack.unpackb(r.body, raw=False)["res"]
    assert [x["r"] for x in res] == [0], res
    assert c.get("zbk", "k").body == data
    again = batch({"r": put_record(3, "zbk", "k2", b"as is"), "d": b"as is"})
    assert post(c, again, "identity").status == 200
    assert c.get("zbk", "k2").body == b"as is"


def unzstd(frame):
    return subprocess.run(["zstd", "-q", "-d", "-c"], input=frame, capture_output=True, timeout=60, check=True).stdout


def test_a_fetch_is_compressed_for_a_target_with_zstd(make_server):
    """The fetch endpoint compresses for the target whose token signed the URL, when that target has
    compression: zstd and the fetcher accepts zstd; ranges, data that does not compress and the
    other target's fetches go as is."""
    far, near = new_token(), new_token()
    srv = make_server(config="replication:\n  targets:\n"
                             "    - {name: far, url: 'http://127.0.0.1:9', token: %s, compression: zstd}\n"
                             "    - {name: near, url: 'http://127.0.0.1:10', token: %s}\n" % (far, near))
    c = srv.client()
    rng = random.Random(99)
    objs = {"text": log_text(rng, 300000), "noise": noise(rng, 300000)}
    urls = {}
    for key, data in objs.items():
        r = c.put("big", key, data)
        assert r.status == 200
        v, o = int(r.header("X-Comio-Version")), r.header("X-Comio-Origin")
        urls[key] = {t: presign(t, "", "big", key, v, int(time.time()) + 600, origin=o) for t in (far, near)}

    def fetch(key, token, **headers):
        r = c.raw("GET", urls[key][token], None, headers)
        assert r.status in (200, 206), r
        return r

    before = c.metrics()
    r = fetch("text", far, **{"Accept-Encoding": "zstd"})
    assert r.header("Content-Encoding") == "zstd" and len(r.body) < len(objs["text"]) // 4, r.headers
    # the body bytes sent are the frame's, not the object's (and the first scrape's own reply)
    sent = c.metrics().value("comio_http_sent_bytes_total") - before.value("comio_http_sent_bytes_total")
    assert sent == len(r.body) + len(before.text.encode()), (sent, len(r.body))
    assert unzstd(r.body) == objs["text"]
    assert r.header("ETag") == '"%s"' % hashlib.md5(objs["text"]).hexdigest()  # the object's, not the frame's
    assert fetch("text", far, **{"Accept-Encoding": "gzip, zstd;q=0.5"}).header("Content-Encoding") == "zstd"
    for headers in ({}, {"Accept-Encoding": "gzip"}, {"Accept-Encoding": "zstd;q=0"},
                    {"Accept-Encoding": "zstd", "Range": "bytes=0-99999"}):
        r = fetch("text", far, **headers)
        assert r.header("Content-Encoding") is None, (headers, r.headers)
        assert r.body == objs["text"][:len(r.body)] and len(r.body) == (100000 if "Range" in headers else 300000)
    r = fetch("text", near, **{"Accept-Encoding": "zstd"})  # that target has compression: none
    assert r.header("Content-Encoding") is None and r.body == objs["text"]
    r = fetch("noise", far, **{"Accept-Encoding": "zstd"})  # does not compress: as is
    assert r.header("Content-Encoding") is None and r.body == objs["noise"]
