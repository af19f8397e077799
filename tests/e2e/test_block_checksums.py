"""test_block_checksums.py - every object's bytes carry CRC32C checksums per 64 KiB block
(common/blocksum.h, docs/storage.md): damage written into the data store
behind storaged's back is never served. A whole GET of a damaged object is a
503, a Range GET is refused only when it touches a damaged block, a stream
whose damage lies past its first window is cut short (every byte the client
got is right), S3 answers an XML error, a replica never applies damaged bytes,
and storage.checksums: false serves what is on disk (that is what off means).

The damage is written into the image file through another file descriptor:
storaged reads with pread through the page cache, so the next read sees it.
An object's extent is found by its bytes, which are random and unique."""

import http.client
import json
import os
import time

import boto3
import pytest
from botocore.client import Config
from botocore.exceptions import ClientError

from harness.comio import expect_error, md5, run_storaged
from harness.damage import damage, find_extent
from harness.replication import wait_until

BLOCK = 64 * 1024
SIZES = [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, (1 << 20) + 12345, 3 * (1 << 20) + 7]

AK = "AKIDCOMIOTEST"
SECRET = "s3cr3t/KEY+with/slashes"
S3_CONFIG = "s3:\n  region: us-east-1\n  credentials:\n    - access_key: %s\n      secret_key: %s\n" % (AK, SECRET)


def get_range(c, bucket, key, first, last):
    return c.get(bucket, key, {"Range": "bytes=%d-%d" % (first, last)})


def stream_get(port, path):
    """A GET read to the end or until the server cuts it: (status, headers, body got, complete)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        got = bytearray()
        complete = True
        while True:
            try:
                piece = resp.read(65536)
            except (http.client.IncompleteRead, ConnectionResetError) as e:
                if isinstance(e, http.client.IncompleteRead):
                    got += e.partial
                complete = False
                break
            if not piece:
                break
            got += piece
        if resp.length not in (None, 0):
            complete = False
        return resp.status, resp.headers, bytes(got), complete
    finally:
        conn.close()


def metric(c, name, **labels):
    return c.metrics().get(name, 0.0, **labels)


def test_objects_of_every_size_round_trip_and_are_verified(make_server):
    srv = make_server()
    c = srv.client()
    objects = {}
    for n in SIZES:
        data = os.urandom(n)
        assert c.put("bkt", "obj-%d" % n, data).status == 200
        objects[n] = data
    before = metric(c, "comio_checksum_blocks_verified_total")
    total_blocks = 0
    for n, data in objects.items():
        r = c.get("bkt", "obj-%d" % n)
        assert r.status == 200 and r.body == data, n
        assert int(r.headers["Content-Length"]) == n and r.headers.get("Content-Encoding") is None, r.headers
        assert r.headers["ETag"] == '"%s"' % md5(data)  # the ETag stays the MD5
        total_blocks += (n + BLOCK - 1) // BLOCK
    m = c.metrics()
    assert m.value("comio_checksum_blocks_verified_total") - before == total_blocks
    assert m.value("comio_checksum_objects_unverified") == 0
    assert m.value("comio_checksum_mismatches_total", path="get") == 0
    # ranges at and across block boundaries, and in the partial last block
    data = objects[(1 << 20) + 12345]
    for first, last in [(0, 0), (BLOCK - 1, BLOCK), (BLOCK, 2 * BLOCK - 1), (5, 3 * BLOCK + 17), (len(data) - 10, len(data) - 1),
                        (16 * BLOCK, len(data) - 1)]:
        r = get_range(c, "bkt", "obj-%d" % len(data), first, last)
        assert r.status == 206 and r.body == data[first:last + 1], (first, last)
    # a range reads and verifies the blocks it touches, no more and no fewer (its CRCs are those blocks'),
    # as an open or suffix range, or a whole object when If-Range names another version
    key = "obj-%d" % len(data)
    last_block = (len(data) - 1) // BLOCK
    for hdrs, status, first, last in [({"Range": "bytes=%d-" % (3 * BLOCK + 1)}, 206, 3 * BLOCK + 1, len(data) - 1),
                                      ({"Range": "bytes=-%d" % (BLOCK + 5)}, 206, len(data) - BLOCK - 5, len(data) - 1),
                                      ({"Range": "bytes=%d-%d" % (7 * BLOCK, 7 * BLOCK)}, 206, 7 * BLOCK, 7 * BLOCK),
                                      ({"Range": "bytes=%d-%d" % (BLOCK, 2 * BLOCK), "If-Range": '"0123"'}, 200, 0,
                                       len(data) - 1)]:
        before = metric(c, "comio_checksum_blocks_verified_total")
        r = c.get("bkt", key, hdrs)
        assert r.status == status and r.body == data[first:last + 1], hdrs
        want = min(last // BLOCK, last_block) - first // BLOCK + 1
        assert metric(c, "comio_checksum_blocks_verified_total") - before == want, hdrs


def test_damage_is_never_served(make_server):
    srv = make_server()
    c = srv.client()
    small = os.urandom(BLOCK - 100)         # read whole before anything is answered
    tail = os.urandom(2 * BLOCK + 1)        # three blocks, the last of 1 byte
    big = os.urandom(3 * (1 << 20) + 7)     # streamed: 49 blocks
    first = os.urandom(2 * BLOCK)           # damaged in its first block
    whole = os.urandom(1000)
    for k, d in (("small", small), ("tail", tail), ("big", big), ("first", first), ("whole", whole)):
        assert c.put("bkt", k, d).status == 200
    damage(srv.storage, find_extent(srv.storage, small) + 5000)
    damage(srv.storage, find_extent(srv.storage, tail) + 2 * BLOCK)  # the 1-byte last block
    off_big = find_extent(srv.storage, big)
    damage(srv.storage, off_big + 40 * BLOCK + 99)  # well past the first window
    damage(srv.storage, find_extent(srv.storage, first) + 7)

    # a whole GET of a damaged object: 503 with a clear JSON error, no byte of the object
    r = c.get("bkt", "small")
    expect_error(r, 503, "DataDamaged")
    assert "checksum" in r.json()["error"]
    assert get_range(c, "bkt", "small", 100, 200).status == 503  # one block: any range of it is refused
    # a range that does not touch the damaged block is served, right; one that does is refused
    r = get_range(c, "bkt", "tail", 0, 2 * BLOCK - 1)
    assert r.status == 206 and r.body == tail[:2 * BLOCK]
    assert get_range(c, "bkt", "tail", 2 * BLOCK - 5, 2 * BLOCK).status == 503
    assert get_range(c, "bkt", "tail", 2 * BLOCK, 2 * BLOCK).status == 503
    status, _, got, complete = stream_get(srv.port, "/bkt/tail")
    assert status == 200 and not complete and got == tail[:len(got)] and len(got) <= 2 * BLOCK
    # damage in the first window of a stream: a clean 503 before any header of success
    expect_error(c.get("bkt", "first"), 503, "DataDamaged")
    assert get_range(c, "bkt", "first", BLOCK, 2 * BLOCK - 1).body == first[BLOCK:]
    # damage later in a stream: the response is cut short; every byte received is right
    status, _, got, complete = stream_get(srv.port, "/bkt/big")
    assert status == 200 and not complete
    assert len(got) <= 40 * BLOCK and got == big[:len(got)]
    # ranges of the big object around the damage
    assert get_range(c, "bkt", "big", 0, 40 * BLOCK - 1).body == big[:40 * BLOCK]
    assert get_range(c, "bkt", "big", 41 * BLOCK, 42 * BLOCK).body == big[41 * BLOCK:42 * BLOCK + 1]
    assert get_range(c, "bkt", "big", 40 * BLOCK + 99, 40 * BLOCK + 99).status == 503
    # an object not damaged is unaffected
    assert c.get("bkt", "whole").body == whole
    m = c.metrics()
    assert m.value("comio_checksum_mismatches_total", path="get") >= 5
    # the log names bucket, key, version and block, once per damaged block however often it is read
    lines = [json.loads(line) for line in srv.log().splitlines() if "object data damaged" in line]
    tail_lines = [x for x in lines if x.get("key") == "tail"]
    assert len(tail_lines) == 1, tail_lines  # read three times, logged once
    assert tail_lines[0]["bucket"] == "bkt" and tail_lines[0]["block"] == "2" and int(tail_lines[0]["version"]) > 0
    assert any(x.get("key") == "small" and x["block"] == "0" for x in lines)
    assert any(x.get("key") == "big" and x["block"] == "40" for x in lines)
    assert any(x.get("key") == "first" and x["block"] == "0" for x in lines)
    # an overwrite gets new checksums with its new bytes, and is served
    fresh = os.urandom(2 * BLOCK + 1)
    assert c.put("bkt", "tail", fresh).status == 200
    assert c.get("bkt", "tail").body == fresh


def test_s3_get_and_copy_of_damaged_object(make_server):
    srv = make_server(config=S3_CONFIG)
    s3 = boto3.client("s3", endpoint_url="http://%s:%d" % (srv.host, srv.port), aws_access_key_id=AK,
                      aws_secret_access_key=SECRET, region_name="us-east-1",
                      config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=10,
                                    read_timeout=30))
    s3.create_bucket(Bucket="bkt")
    data = os.urandom(5 * BLOCK)
    s3.put_object(Bucket="bkt", Key="k", Body=data)
    assert s3.get_object(Bucket="bkt", Key="k")["Body"].read() == data
    damage(srv.storage, find_extent(srv.storage, data) + 100)  # the first block: found before the headers go
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="bkt", Key="k")["Body"].read()
    assert e.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    # the server's failure is in its log under the RequestId the client was given
    rid = e.value.response["ResponseMetadata"]["RequestId"]
    assert [ln for ln in srv.log().splitlines() if "S3 request failed" in ln and rid in ln and "GET /bkt/k" in ln], rid
    # the blocks after it are served
    assert s3.get_object(Bucket="bkt", Key="k", Range="bytes=%d-" % BLOCK)["Body"].read() == data[BLOCK:]
    # a copy of the damaged object is refused: damaged bytes never get fresh checksums
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket="bkt", Key="copy", CopySource={"Bucket": "bkt", "Key": "k"})
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    with pytest.raises(ClientError):
        s3.head_object(Bucket="bkt", Key="copy")
    # UploadPartCopy verifies its source range as it reads it: a range of good blocks is copied, one over the damage refused
    up = s3.create_multipart_upload(Bucket="bkt", Key="pc")["UploadId"]
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(Bucket="bkt", Key="pc", UploadId=up, PartNumber=1, CopySource={"Bucket": "bkt", "Key": "k"},
                            CopySourceRange="bytes=50-%d" % (BLOCK + 10))
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert e.value.response["Error"]["Code"] == "ServiceUnavailable"
    verified = srv.client().metrics().value("comio_checksum_blocks_verified_total")
    part = s3.upload_part_copy(Bucket="bkt", Key="pc", UploadId=up, PartNumber=1, CopySource={"Bucket": "bkt", "Key": "k"},
                               CopySourceRange="bytes=%d-%d" % (BLOCK + 7, 4 * BLOCK + 3))["CopyPartResult"]["ETag"]
    assert srv.client().metrics().value("comio_checksum_blocks_verified_total") - verified == 4  # blocks 1 to 4
    s3.complete_multipart_upload(Bucket="bkt", Key="pc", UploadId=up,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part}]})
    assert s3.get_object(Bucket="bkt", Key="pc")["Body"].read() == data[BLOCK + 7:4 * BLOCK + 4]
    # a multipart upload's object gets checksums from Complete's copy: its damage is found too
    mp = os.urandom(5 << 20)
    up = s3.create_multipart_upload(Bucket="bkt", Key="mp")["UploadId"]
    e1 = s3.upload_part(Bucket="bkt", Key="mp", UploadId=up, PartNumber=1, Body=mp[:5 << 20])["ETag"]
    s3.complete_multipart_upload(Bucket="bkt", Key="mp", UploadId=up,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}]})
    assert s3.get_object(Bucket="bkt", Key="mp")["Body"].read() == mp
    c = srv.client()
    assert c.metrics().value("comio_checksum_objects_unverified") == 0


def test_checksums_off_serves_what_is_on_disk(make_server):
    """storage.checksums: false computes nothing and verifies nothing: damaged bytes go out. Turned
    back on, objects written while off are served unverified (and counted), those written on are checked."""
    srv = make_server(config="storage:\n  checksums: false\n")
    c = srv.client()
    data = os.urandom(3 * BLOCK)
    assert c.put("bkt", "k", data).status == 200
    m = c.metrics()
    assert m.value("comio_checksum_objects_unverified") == 1
    off = find_extent(srv.storage, data)
    damage(srv.storage, off + BLOCK + 5)
    r = c.get("bkt", "k")
    bad = bytearray(data)
    bad[BLOCK + 5] ^= 1
    assert r.status == 200 and r.body == bytes(bad)  # off means off
    assert c.metrics().value("comio_checksum_blocks_verified_total") == 0
    srv.stop()
    srv.config_path.write_text("storage:\n  checksums: true\n")
    srv.start()
    c = srv.client()
    # written while off: no checksums, served unverified
    assert c.get("bkt", "k").body == bytes(bad)
    assert c.metrics().value("comio_checksum_objects_unverified") == 1
    data2 = os.urandom(3 * BLOCK)
    assert c.put("bkt", "k2", data2).status == 200
    damage(srv.storage, find_extent(srv.storage, data2) + 5)
    assert c.get("bkt", "k2").status == 503
    assert c.metrics().value("comio_checksum_objects_unverified") == 1


def test_bad_config_value_is_refused(make_server):
    srv = make_server(start=False, config="storage:\n  checksums: maybe\n")
    p = run_storaged(srv.argv()[1:], srv.workdir)
    assert p.returncode != 0
    assert "config.yaml:2: storage.checksums: expected true or false, got 'maybe'" in p.stderr, p.stderr


# --- replication --------------------------------------------------------------------------------------------------


def test_replica_never_gets_damaged_bytes(sites):
    """Objects damaged on the primary before repld ships them: the inline one is not shipped inline
    (repld verifies what it reads), the fetched one is refused by the fetch endpoint (503); neither
    reaches the replica, whose events stay retrying; a good copy written again on A then replicates."""
    a, b = sites(repld=False, a_repl={"retry_attempts": 100})
    ca, cb = a.client(), b.client()
    small = os.urandom(20_000)    # under inline_threshold (64 KB): read by repld into the batch
    large = os.urandom(300_000)   # over it: fetched by B from A's fetch endpoint
    good = os.urandom(30_000)
    for k, d in (("small", small), ("large", large), ("good", good)):
        assert ca.put("bkt", k, d).status == 200
    image = a.workdir / "store.img"
    damage(image, find_extent(image, small) + 10_000)
    damage(image, find_extent(image, large) + 3 * BLOCK + 1)
    a.start_repld()
    wait_until(lambda: cb.get("bkt", "good").status == 200, 30, what="the undamaged object on B")
    assert cb.get("bkt", "good").body == good
    # the damaged ones are tried again and again, and never applied
    wait_until(lambda: "not shipped inline" in a.repld.log(), 30, what="repld's log of the damaged inline object")
    wait_until(lambda: ca.metrics().value("comio_checksum_mismatches_total", path="get") >= 2, 30,
               what="A's fetch endpoint refusing both damaged objects")
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        for k in ("small", "large"):
            assert cb.get("bkt", k).status == 404, k
        time.sleep(0.2)
    lines = [json.loads(x) for x in a.repld.log().splitlines() if "not shipped inline" in x]
    assert lines[0]["bucket"] == "bkt" and lines[0]["key"] == "small" and lines[0]["block"] == "0"
    # the operator writes the objects again: the new versions replicate, byte for byte
    small2, large2 = os.urandom(20_000), os.urandom(300_000)
    assert ca.put("bkt", "small", small2).status == 200
    assert ca.put("bkt", "large", large2).status == 200
    wait_until(lambda: cb.get("bkt", "small").body == small2 and cb.get("bkt", "large").body == large2, 30,
               what="the rewritten objects on B")
    # B computed its own checksums from the bytes it verified: it serves them verified
    m = cb.metrics()
    assert m.value("comio_checksum_objects_unverified") == 0
    before = m.value("comio_checksum_blocks_verified_total")
    assert cb.get("bkt", "large").body == large2
    assert cb.metrics().value("comio_checksum_blocks_verified_total") - before == (300_000 + BLOCK - 1) // BLOCK


def test_old_store_objects_are_served_unverified(make_server):
    """An object whose checksum record is gone (as for one written before format 5) is served, unverified, counted."""
    srv = make_server(config="storage:\n  checksums: false\n")
    c = srv.client()
    data = os.urandom(2 * BLOCK + 3)
    assert c.put("bkt", "old", data).status == 200
    srv.stop()
    srv.config_path.write_text("")
    srv.start()
    c = srv.client()
    assert c.get("bkt", "old").body == data
    assert get_range(c, "bkt", "old", BLOCK, BLOCK + 2).body == data[BLOCK:BLOCK + 3]
    assert c.metrics().value("comio_checksum_objects_unverified") == 1
