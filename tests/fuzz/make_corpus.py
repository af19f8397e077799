#!/usr/bin/env python3
"""make_corpus.py - writes the seed corpora of tests/fuzz/corpus/<target>/.

Small valid and near-valid inputs for each fuzz target, built from the formats
in docs/protocol.md and docs/configuration.md. Run it again after a format
change and commit the result; the fuzzers grow their own corpora from these
(outside the tree). Needs python3-msgpack.

    tests/fuzz/make_corpus.py [OUTDIR]     (default: tests/fuzz/corpus)
"""
import hashlib
import hmac
import os
import struct
import subprocess
import sys
import urllib.parse

import msgpack

ETAG = bytes.fromhex("d41d8cd98f00b204e9800998ecf8427e")


def rec(op, seq=7, bucket="photos", key="2024/cat.jpg", size=5, ctype="image/jpeg", extra=None):
    m = {"v": 1, "seq": seq, "op": op, "b": bucket, "mt": 1701234567890, "o": "site-a"}
    if op != 3:
        m["k"] = key
    if op == 1:
        m.update({"sz": size, "et": ETAG, "ct": ctype})
    if extra:
        m.update(extra)
    return msgpack.packb(m, use_bin_type=True)


def logrec_seeds():
    put = rec(1)
    return {
        "put": put,
        "put-empty-ctype": rec(1, size=0, ctype=""),
        "delete": rec(2),
        "purge": rec(3),
        "unknown-field": rec(2, extra={"future": [1, {"x": None}]}),
        "version-2": rec(2, extra={"v": 2}),
        "truncated": put[:-3],
        "trailing-byte": put + b"\x00",
        # the same PUT with non-minimal headers: map16, str8 keys, uint64 seq
        "wide-headers": b"\xde\x00\x0a" + b"".join(
            b"\xd9" + bytes([len(k)]) + k.encode() + v for k, v in [
                ("v", b"\x01"), ("seq", b"\xcf" + struct.pack(">Q", 7)), ("op", b"\x01"),
                ("b", b"\xd9\x06photos"), ("k", b"\xda\x00\x03a/b"), ("sz", b"\x05"),
                ("et", b"\xc4\x10" + ETAG), ("ct", b"\xa0"), ("mt", b"\xd3" + struct.pack(">q", -1)),
                ("o", b"\xa6site-a")]),
    }


def batch(events, src="site-a", extra=None):
    m = {"v": 1, "src": src, "ev": events}
    if extra:
        m.update(extra)
    return b"\x00" + msgpack.packb(m, use_bin_type=True)


def reply(results):
    body = msgpack.packb({"v": 1, "res": results}, use_bin_type=True)
    return b"\x01" + struct.pack(">H", len(results)) + body


def batch_seeds():
    url = "http://127.0.0.1:8080/admin/replication/fetch/photos/big.bin?version=9&expires=1700000000&sig=" + "0" * 64
    return {
        "mixed": batch([
            {"r": rec(1), "d": b"hello"},
            {"r": rec(1, seq=9, key="big.bin", size=10 ** 9), "u": url},
            {"r": rec(2, seq=10)},
            {"r": rec(3, seq=11)},
        ]),
        "empty": batch([]),
        "unknown-keys": batch([{"r": rec(2), "x": 1}], extra={"later": {"a": [1, 2]}}),
        "put-size-mismatch": batch([{"r": rec(1, size=4), "d": b"hello"}]),
        "put-both": batch([{"r": rec(1), "d": b"hello", "u": url}]),
        "delete-with-data": batch([{"r": rec(2), "d": b""}]),
        "reply": reply([
            {"seq": 7, "r": 0, "st": 200, "e": ""},
            {"seq": 9, "r": 2, "st": 507, "e": "no space"},
            {"seq": 10, "r": 3, "st": 400, "e": "malformed record"},
        ]),
        "reply-empty": reply([]),
        "reply-no-e": reply([{"seq": 1, "r": 1, "st": 200}]),
        "reply-count-off": b"\x01\x00\x05" + msgpack.packb({"v": 1, "res": [{"seq": 1, "r": 0, "st": 200}]}),
    }


def path_seeds():
    return {
        "root": b"/",
        "bucket": b"/photos",
        "bucket-slash": b"/photos/",
        "key": b"/photos/2024/cat.jpg",
        "escaped": b"/photos/a%20b%2Fc+d?x=1",
        "query": b"/photos/k?version=3&expires=1700000000&sig=abc%20def&flag",
        "fetch": b"/admin/replication/fetch/photos/dir/k%3F?version=1&expires=2&sig=00",
        "bad-escape": b"/photos/%zz",
        "nul": b"/photos/a%00b",
        "bad-bucket": b"/Photos/x",
        "ipv4-bucket": b"/192.168.1.1/x",
        "long-key": b"/photos/" + b"k" * 1025,
    }


def units_seeds():
    vals = ["512MB", "2GiB", "1.5K", "0", "1 KiB", "18446744073709551615", "16EiB", "0.5B",
            "500ms", "1h", "7d", "0.5s", "1.0001s", "1e3", "-1", "1.", "5m"]
    return {"v%02d" % i: v.encode() for i, v in enumerate(vals)}


def cksum_seeds():
    vals = [b"", b"Zg==", b"Zm8=", b"Zm9vYmFy", b"y/Q5Jg==", b"rosUhgp5mIg=", b"Zh==", b"Zg=", b"Zm9v\n", b"Z===",
            b"FeKw08M4keuw8e9gnsQZQgwg4yDOlMZfvIwzEkSOsiU=", b"123456789", bytes(range(256))]
    return {"v%02d" % i: v for i, v in enumerate(vals)}


def conf_seeds():
    here = os.path.dirname(os.path.abspath(__file__))
    seeds = {}
    for name in ("site-a.yaml", "site-b.yaml"):
        with open(os.path.join(here, "..", "..", "deploy", "config", name), "rb") as f:
            text = f.read()
        # token files through the fuzz target's fake file system
        text = text.replace(b"/etc/comio/access.token", b"fuzz:access-secret")
        text = text.replace(b"/etc/comio/replication.token", b'"fuzz:repl-secret\\n"')
        seeds[name] = b"\x00" + text
    seeds["flow"] = b"\x00server: {port: 9000, tls: {cert: a.pem, key: a.key}}\nlogging: {level: debug, format: text}\n"
    seeds["unknown-key"] = b"\x00server:\n  storage_pth: /x\n"
    seeds["dotted"] = b"\x00server.port: 1\n"
    seeds["duplicate"] = b"\x00server:\n  port: 1\n  port: 2\n"
    seeds["two-tokens"] = b"\x00server:\n  access_token: abc\n  access_token_file: fuzz:abc\n"
    seeds["sizes"] = (b"\x00server:\n  storage_size: 1.5TiB\n  max_object_size: 5GB\n  meta_map_size: ~\n"
                      b"replication:\n  batch_interval: 250ms\n  tombstone_ttl: 0\n  inline_threshold: 64KiB\n")
    seeds["alias"] = b"\x00site: &a {id: x}\nserver: *a\n"
    seeds["targets"] = (b"\x00replication:\n  enabled: true\n  retry_attempts: 2\n  targets:\n"
                        b"    - name: site-b\n      url: https://b.example.com\n      token_file: fuzz:tok-b\n"
                        b"    - {name: site-c, url: 'http://c:8080/', token: tok-c, retry_attempts: 0, workers: 1,"
                        b" batch_size: 10, retry_delay: 250ms, inline_threshold: 64KiB, mode: async}\n")
    seeds["targets-bad"] = (b"\x00replication:\n  remote_url: http://a\n  targets: [{name: b, url: 'http://b'},"
                            b" {name: b}, x, []]\n")
    seeds["args"] = b"\x01" + b"\x00".join([b"--port", b"8081", b"--storage=/srv/data.img", b"--size", b"1GiB",
                                           b"--replication-enabled", b"--log-level=debug", b"--status"])
    seeds["args-config"] = b"\x01" + b"\x00".join([b"--config", b"fuzz:server: {port: 1}", b"--port=2"])
    seeds["args-bad"] = b"\x01" + b"\x00".join([b"--port", b"http", b"--storage", b"--size"])
    return seeds


def presign_input(secret, bucket, key, version, expires, delta, rest):
    return (bytes([len(secret)]) + secret + bytes([len(bucket)]) + bucket + struct.pack(">H", len(key)) + key +
            struct.pack(">Q", version) + struct.pack(">q", expires) + bytes([delta]) + rest)


def presign_sig(secret, bucket, key, version, expires):
    msg = b"GET\n" + bucket + b"\n" + key + b"\n" + str(version).encode() + b"\n" + str(expires).encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest().encode()


def presign_seeds():
    seeds = {}
    cases = [
        ("plain", b"s3cret", b"photos", b"2024/cat.jpg", 7, 1700000000, 1),
        ("odd-key", b"token", b"my.bucket-1", b"a b?c#d%e+f/\xc3\xa9", 1, 0, 2),
        ("expired", b"s3cret", b"photos", b"k", 3, 1700000000, 2),
        ("long-key", b"k" * 64, b"b" * 63, b"\xff" * 1024, 2 ** 64 - 1, 2 ** 63 - 1, 0),
    ]
    for name, secret, bucket, key, version, expires, delta in cases:
        sig = presign_sig(secret, bucket, key, version, expires)
        seeds[name + "-sig"] = presign_input(secret, bucket, key, version, expires, delta, sig)
        target = ("/admin/replication/fetch/%s/%s?version=%d&expires=%d&sig=%s" % (
            urllib.parse.quote(bucket, safe=""), urllib.parse.quote(key, safe="/"), version, expires,
            sig.decode())).encode()
        seeds[name + "-url"] = presign_input(secret, bucket, key, version, expires, delta, target)
    seeds["empty-secret"] = presign_input(b"", b"photos", b"k", 1, 1, 1, b"0" * 64)
    seeds["bad-bucket"] = presign_input(b"s", b"Photos", b"k", 1, 1, 1, b"/admin/replication/fetch/Photos/k?sig=x")
    return seeds


def zcodec_seeds():
    """2-byte cap, then a body: frames made by the zstd CLI (with and without the content size), cut, flipped."""
    def frame(data, declare=True):
        argv = ["zstd", "-q", "-c"] + (["--stream-size=%d" % len(data)] if declare else [])
        return subprocess.run(argv, input=data, capture_output=True, check=True).stdout

    text = b"".join(b'{"ts":%d,"level":"info","msg":"request done"}\n' % i for i in range(400))
    whole = frame(text)
    flipped = bytearray(whole)
    flipped[len(flipped) // 2] ^= 0x40
    return {
        "text": struct.pack(">H", 65535) + whole,
        "text-no-size": struct.pack(">H", 65535) + frame(text, declare=False),
        "over-cap": struct.pack(">H", 1000) + whole,
        "bomb-no-size": struct.pack(">H", 4096) + frame(b"\0" * 200000, declare=False),
        "truncated": struct.pack(">H", 65535) + whole[:-5],
        "flipped": struct.pack(">H", 65535) + bytes(flipped),
        "two-frames": struct.pack(">H", 65535) + frame(b"one") + frame(b"two", declare=False),
        "empty-frame": struct.pack(">H", 0) + frame(b""),
        "not-zstd": struct.pack(">H", 100) + b"\x82\xa1v\x01",
    }


def synclist_seeds():
    """Listings of GET /admin/replication/list (proto/synclist.h)."""
    def listing(kind, entries, more=False, store="0123456789abcdef0123456789abcdef", extra=None):
        m = {"v": 1, "site": "site-b", "store": store, "more": more, kind: entries}
        if extra:
            m.update(extra)
        return msgpack.packb(m, use_bin_type=True)
    obj = {"k": b"2024/cat.jpg", "h": 1 << 40, "o": "site-a", "d": False, "e": ETAG, "s": 5}
    tomb = {"k": b"gone", "h": 7, "o": "site-c", "d": True}
    bucket = {"n": "photos", "h": 3, "o": "site-a", "d": False, "ph": 9, "po": "site-a"}
    keys = listing("keys", [obj, tomb], more=True)
    return {
        "keys": keys,
        "keys-empty": listing("keys", []),
        "buckets": listing("buckets", [bucket, dict(bucket, n="logs", d=True, ph=0, po="")]),
        "no-store": listing("buckets", [], store=""),
        "unknown-fields": listing("keys", [dict(obj, future=[1, {"x": None}])], extra={"next": "later"}),
        "tombstone-with-size": listing("keys", [dict(tomb, s=3)]),
        "key-without-d": listing("keys", [{"k": b"x", "h": 1}]),
        "version-2": listing("keys", [], extra={"v": 2}),
        "truncated": keys[:-4],
        "trailing-byte": keys + b"\x00",
    }


def awschunk_seeds():
    """fuzz_awschunk: mode byte (even: raw body, odd: pieces to encode), options (bit 0 signed, bit 1 trailers)."""
    def raw(opt, dlen, body):
        return bytes([0, opt]) + struct.pack(">I", dlen) + body

    def pieces(opt, alter, *ps):
        return bytes([1, opt]) + struct.pack(">H", alter) + b"".join(bytes([len(p)]) + p for p in ps)

    return {
        "unsigned": raw(0, 11, b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
        "unsigned-trailer": raw(2, 5, b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n"),
        "signed-bad": raw(1, 3, b"3;chunk-signature=" + b"0" * 64 + b"\r\nabc\r\n0;chunk-signature=" + b"0" * 64 + b"\r\n\r\n"),
        "truncated": raw(0, 5, b"5\r\nhel"),
        "empty": raw(0, 0, b"0\r\n\r\n"),
        "encode-unsigned": pieces(0, 0, b"abc", b"defgh"),
        "encode-signed": pieces(1, 40, b"abc", b"x" * 200),
        "encode-signed-trailer": pieces(3, 300, b"hello", b" world"),
        "encode-unsigned-trailer": pieces(2, 0, b"data"),
    }


def objmeta_seeds():
    """Object metadata blobs (common/objmeta.h)."""
    def pair(n, v):
        return bytes([len(n)]) + n + struct.pack(">H", len(v)) + v
    standard = pair(b"cache-control", b"no-cache") + pair(b"content-encoding", b"gzip") + pair(b"x-amz-meta-a", b"1")
    return {
        "empty": b"",
        "standard": standard,
        "out-of-order": pair(b"b", b"") + pair(b"a", b""),
        "truncated": standard[:-3],
    }


def s3xml_seeds():
    """S3 request bodies (proto/s3xml.h): a mode byte (0 Delete, 1 Complete, 2 bucket configuration), then the XML."""
    ns = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
    delete = ('<?xml version="1.0" encoding="UTF-8"?>\n<Delete%s><Quiet>true</Quiet>'
              '<Object><Key>a/b c.txt</Key></Object><Object><Key>x&amp;y&#x4E2D;</Key><VersionId>v1</VersionId></Object>'
              '</Delete>' % ns).encode()
    complete = ('<CompleteMultipartUpload%s><Part><PartNumber>1</PartNumber><ETag>"0cc175b9c0f1b6a831c399e269772661"</ETag>'
                '<ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part><Part><PartNumber>2</PartNumber><ETag>&quot;e&quot;</ETag></Part>'
                '</CompleteMultipartUpload>' % ns).encode()
    conf = ('<CreateBucketConfiguration%s><LocationConstraint>eu-west-1</LocationConstraint>'
            '</CreateBucketConfiguration>' % ns).encode()
    return {
        "delete": b"\x00" + delete,
        "delete-no-ns": b"\x00<Delete><Object><Key>k</Key></Object></Delete>",
        "delete-cdata-unknown": b"\x00<Delete><Object><Size>1</Size><Key><![CDATA[<&>]]></Key></Object><X><Y/></X></Delete>",
        "delete-prefixed": b'\x00<s:Delete xmlns:s="http://s3.amazonaws.com/doc/2006-03-01/"><s:Object><s:Key>k</s:Key>'
                           b'</s:Object></s:Delete>',
        "delete-bomb": b'\x00<!DOCTYPE d [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><Delete><Object><Key>&b;</Key>'
                       b'</Object></Delete>',
        "delete-truncated": b"\x00" + delete[:-9],
        "complete": b"\x01" + complete,
        "complete-bad-number": b"\x01<CompleteMultipartUpload><Part><PartNumber>0</PartNumber><ETag>e</ETag></Part>"
                               b"</CompleteMultipartUpload>",
        "bucket-conf": b"\x02" + conf,
        "bucket-conf-empty": b"\x02<CreateBucketConfiguration/>",
    }


def blocksum_seeds():
    """Block checksum records (common/blocksum.h): format, log2 block, version, origin, extent offset, size, CRC32Cs."""
    def record(size, crcs, origin=b"site-a", shift=16, fmt=1):
        return (struct.pack(">BBQB", fmt, shift, 1764000000000 << 16, len(origin)) + origin +
                struct.pack(">QQ", 4096, size) + b"".join(struct.pack(">I", c) for c in crcs))
    return {
        "empty": record(0, []),
        "one-byte": record(1, [0x527D5351]),
        "three-blocks": record(2 * 65536 + 5, [1, 2, 3]),
        "small-blocks": record(1024, [0, 0], shift=9),
        "missing-crc": record(65537, [1]),
        "bad-format": record(0, [], fmt=2),
    }


def sigv4_seeds():
    """fuzz_sigv4: mode byte (even: signed by the target, odd: raw Authorization, x-amz-date, x-amz-content-sha256)."""
    def sl(b, two=False):
        return (struct.pack(">H", len(b)) if two else bytes([len(b)])) + b
    sig = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    auth = ("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=" + sig).encode()
    empty = hashlib.sha256(b"").hexdigest().encode()
    return {
        "signed-empty": b"\x00",
        "signed-value": b"\x00" + sl(b"/b/k%20x") + b"\x00\x00\x00" + sl(b"  a  b\tc ") + sl(b"body"),
        "signed-upper": b"\x00" + sl(b"/b/k") + b"\xff\xff\x01" + sl(b"v") + sl(b"x"),
        "signed-streaming": b"\x00" + sl(b"/") + b"\x00\x15\x02" + sl(b""),
        "raw-valid": b"\x01\x07\xd0" + sl(auth, True) + sl(b"20130524T000000Z") + sl(empty),
        "raw-unsigned": b"\x01\x07\xd0" + sl(auth, True) + sl(b"20130524T000000Z") + sl(b"UNSIGNED-PAYLOAD"),
        "raw-bad-date": b"\x01\x07\xd0" + sl(auth, True) + sl(b"20130231T250000Z") + sl(empty),
    }


def scrubrec_seeds():
    """The scrub's records (storaged/scrubrec.h): a damaged object, the state (two passes, a position, the passes'
    repaired counts, the losers' walk; and the older form without them), and a quarantined extent (its length, then the damaged object it held)."""
    def damaged(origin=b"site-a", bucket=b"photos", key=b"2024/cat.jpg", block=3):
        return (struct.pack(">BQQQ", 1, 1764000000000 << 16, block, 1764000000123) + bytes([len(origin)]) + origin +
                bytes([len(bucket)]) + bucket + struct.pack(">H", len(key)) + key)

    def state(running=1, pos=b"photos\x002024/cat.jpg", trailer=True, lpos=None):
        return (struct.pack(">BB", 1, running) + struct.pack(">8Q", 12, 1764000000000, 0, 9120, 48101000000, 1, 0, 3) +
                struct.pack(">8Q", 11, 1763000000000, 1763000024070, 18190, 96300000000, 0, 0, 2) +
                struct.pack(">H", len(pos)) + pos + (struct.pack(">QQ", 1, 0) if trailer else b"") +
                (b"\x01" + struct.pack(">H", len(lpos)) + lpos if lpos is not None else b""))
    return {
        "state-old-form": state(trailer=False),
        "damaged": damaged(),
        "damaged-md5": damaged(block=(1 << 64) - 1),
        "damaged-empty-origin": damaged(origin=b""),
        "state": state(),
        "state-idle": state(running=0, pos=b""),
        "state-losers": state(lpos=b"photos\x00" + hashlib.md5(b"2024/cat.jpg").digest() + struct.pack(">Q", 7) + b"site-a"),
        "state-losers-first": state(lpos=b""),
        "quarantine": struct.pack(">Q", 2031616) + damaged(),
    }


def conflictrec_seeds():
    """Conflict records (common/conflictrec.h): a kept loser, format 1 (none), 2 (metadata), 3 (block checksums)."""
    meta = bytes([12]) + b"x-amz-meta-w" + struct.pack(">H", 1) + b"a"

    def record(fmt, size=5, deleted=0, ctype=b"text/plain", key=b"2024/cat.jpg", meta=None, shift=None, crcs=()):
        r = (struct.pack(">B6Q", fmt, 1764000000000 << 16, (1764000000000 << 16) + 1, 1764000000123, 4096, size, size) +
             ETAG + struct.pack(">qB", 1764000000000, deleted) + struct.pack(">H", len(ctype)) + ctype +
             bytes([6]) + b"site-a" + bytes([6]) + b"site-b" + struct.pack(">H", len(key)) + key)
        if meta is not None:
            r += struct.pack(">H", len(meta)) + meta
        if shift is not None:
            r += bytes([shift]) + b"".join(struct.pack(">I", c) for c in crcs)
        return r
    full = record(3, size=2 * 65536 + 5, meta=meta, shift=16, crcs=(1, 2, 3))
    return {
        "put": record(1),
        "delete": record(1, size=0, deleted=1, ctype=b""),
        "meta": record(2, meta=meta),
        "sums-inline": record(3, meta=b"", shift=16, crcs=(0x527D5351,)),
        "sums-empty": record(3, size=0, meta=b"", shift=16),
        "sums-blocks-meta": full,
        "sums-small-blocks": record(3, size=1024, meta=b"", shift=9, crcs=(7, 8)),
        "missing-crc": full[:-4],
        "trailing-byte": record(1) + b"\x00",
        "meta-empty-format-2": record(2, meta=b""),
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    targets = {"fuzz_logrec": logrec_seeds(), "fuzz_batch": batch_seeds(), "fuzz_path": path_seeds(),
               "fuzz_units": units_seeds(), "fuzz_conf": conf_seeds(), "fuzz_presign": presign_seeds(),
               "fuzz_zcodec": zcodec_seeds(), "fuzz_synclist": synclist_seeds(), "fuzz_cksum": cksum_seeds(),
               "fuzz_awschunk": awschunk_seeds(), "fuzz_objmeta": objmeta_seeds(),
               "fuzz_s3xml": s3xml_seeds(), "fuzz_blocksum": blocksum_seeds(), "fuzz_sigv4": sigv4_seeds(),
               "fuzz_scrubrec": scrubrec_seeds(), "fuzz_conflictrec": conflictrec_seeds()}
    total = 0
    for target, seeds in targets.items():
        d = os.path.join(out, target)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
            total += len(data)
        print("%-13s %3d seeds" % (target, len(seeds)))
    print("total %d bytes" % total)


if __name__ == "__main__":
    main()
