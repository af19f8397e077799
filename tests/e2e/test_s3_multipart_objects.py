"""test_s3_multipart_objects.py - what a completed multipart object is afterwards: read whole and by ranges across
its parts' boundaries (native and S3), copied (CopyObject, UploadPartCopy), overwritten and deleted with its space
returned, damaged and found, scrubbed, replicated byte for byte, and a storaged SIGKILLed around its Complete leaking
no space."""

import hashlib
import os
import subprocess
import threading
import time

import pytest
from botocore.exceptions import ClientError

from harness import comio
from harness.damage import damage, find_whole
from harness.replication import comio_path, converge_or_fail, wait_until
from test_block_checksums import stream_get
from test_diff_deep import deep_pages
from test_s3_multipart import MIB, free_bytes, multipart_etag, upload_parts
from test_s3_objects import AK, SECRET, s3_client, s3_config

BLOCK = 64 * 1024  # BLOCKSUM_BLOCK
FAST_SCRUB = "storage:\n  scrub_rate: 10GB/s\n"


def complete(s3, key, parts, bucket="mpu-test"):
    uid, done = upload_parts(s3, key, parts, bucket=bucket)
    r = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": done})
    assert r["ETag"] == multipart_etag(parts)
    return b"".join(parts)


def server(make_server, extra="", size="256MB", **kw):
    srv = make_server(config=s3_config(extra), size=size, **kw)
    s3 = s3_client(srv)
    s3.create_bucket(Bucket="mpu-test")
    return srv, s3


# over 16 MiB: the copy and the hash pass on two threads (commit_mpu.c); under it: one thread
@pytest.mark.parametrize("sizes", [[8 * MIB, 8 * MIB, 1000], [8 * MIB + 1, 8 * MIB + 4097, 3], [5 * MIB, 5 * MIB + 3, 9]],
                         ids=["block-aligned", "unaligned", "one-thread"])
def test_ranges_across_part_boundaries(make_server, sizes):
    srv, s3 = server(make_server)
    data = complete(s3, "k", [os.urandom(n) for n in sizes])
    b1, b2 = sizes[0], sizes[0] + sizes[1]  # where parts 2 and 3 start
    c = srv.client()
    r = c.get("mpu-test", "k")
    assert r.status == 200 and r.body == data
    assert s3.get_object(Bucket="mpu-test", Key="k")["Body"].read() == data
    for first, last in [(b1 - 10, b1 + 10), (b1 - BLOCK - 1, b2 + BLOCK + 1), (b2 - 1, b2), (0, len(data) - 1),
                        (b2, len(data) - 1), (b1 - 1, b1 - 1)]:
        r = c.get("mpu-test", "k", {"Range": "bytes=%d-%d" % (first, last)})
        assert r.status == 206 and r.body == data[first:last + 1], (first, last, r.status)
        g = s3.get_object(Bucket="mpu-test", Key="k", Range="bytes=%d-%d" % (first, last))
        assert g["Body"].read() == data[first:last + 1], (first, last)
    g = s3.get_object(Bucket="mpu-test", Key="k", Range="bytes=-%d" % (sizes[2] + 7))  # a suffix over the last boundary
    assert g["Body"].read() == data[-(sizes[2] + 7):]
    # the deep listing reads it whole and verifies it against its block checksums
    (obj,) = [o for page in deep_pages(c, "mpu-test") for o in page["objects"]]
    assert obj.get("verified") == "blocks" and "damaged" not in obj, obj


def test_overwrite_and_delete_return_the_space(make_server):
    srv, s3 = server(make_server)
    before = free_bytes(srv)
    data = complete(s3, "k", [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(2 * MIB)])
    # the parts' extents come back (after the quarantine); the object's stays taken
    wait_until(lambda: free_bytes(srv) == before - len(data), 10, what="the parts' space returned after Complete")
    # overwritten by a smaller multipart object: the old one's space comes back
    data2 = complete(s3, "k", [os.urandom(5 * MIB), os.urandom(MIB)])
    wait_until(lambda: free_bytes(srv) == before - len(data2), 10, what="the first object's space after overwrite")
    assert srv.client().get("mpu-test", "k").body == data2
    s3.delete_object(Bucket="mpu-test", Key="k")
    wait_until(lambda: free_bytes(srv) == before, 10, what="all the space back after DELETE")
    with pytest.raises(ClientError):
        s3.head_object(Bucket="mpu-test", Key="k")
    del data


def test_copies_from_a_multipart_source(make_server):
    srv, s3 = server(make_server)
    data = complete(s3, "src", [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(123)])
    r = s3.copy_object(Bucket="mpu-test", Key="copy", CopySource="mpu-test/src")
    assert r["CopyObjectResult"]["ETag"] == '"%s"' % hashlib.md5(data).hexdigest()
    assert s3.get_object(Bucket="mpu-test", Key="copy")["Body"].read() == data
    # UploadPartCopy of a range across the source's first part boundary, and of all of it
    first, last = 5 * MIB - 3 * BLOCK - 5, 10 * MIB + 50
    uid = s3.create_multipart_upload(Bucket="mpu-test", Key="assembled")["UploadId"]
    p1 = s3.upload_part_copy(Bucket="mpu-test", Key="assembled", UploadId=uid, PartNumber=1, CopySource="mpu-test/src",
                             CopySourceRange="bytes=%d-%d" % (first, last))
    assert p1["CopyPartResult"]["ETag"] == '"%s"' % hashlib.md5(data[first:last + 1]).hexdigest()
    p2 = s3.upload_part_copy(Bucket="mpu-test", Key="assembled", UploadId=uid, PartNumber=2, CopySource="mpu-test/src")
    parts = [{"PartNumber": 1, "ETag": p1["CopyPartResult"]["ETag"]}, {"PartNumber": 2, "ETag": p2["CopyPartResult"]["ETag"]}]
    s3.complete_multipart_upload(Bucket="mpu-test", Key="assembled", UploadId=uid, MultipartUpload={"Parts": parts})
    assert s3.get_object(Bucket="mpu-test", Key="assembled")["Body"].read() == data[first:last + 1] + data


def test_damage_in_the_second_part_is_found(make_server):
    """Flipped bits in the second part's bytes: GET refuses the damaged block, serves the ranges before it, and the
    scrub names the block (counted from the object's start)."""
    srv, s3 = server(make_server, FAST_SCRUB)
    parts = [os.urandom(8 * MIB), os.urandom(8 * MIB), os.urandom(777)]
    data = complete(s3, "k", parts)
    c = srv.client()
    assert c.get("mpu-test", "k").body == data
    where = 8 * MIB + BLOCK + 5  # block 129 of the object: the second block of part 2
    for at in find_whole(srv.storage, data):  # the object's extent (and any freed copy of the parts)
        damage(srv.storage, at + where)
    # a whole GET finds it after its headers went: cut short before the damaged block's bytes
    status, _, got, whole = stream_get(srv.port, "/mpu-test/k")
    assert status == 200 and not whole and len(got) <= where - where % BLOCK and got == data[:len(got)], len(got)
    r = c.get("mpu-test", "k", {"Range": "bytes=%d-" % (where - 5)})  # found before the headers: 503
    assert r.status == 503 and "checksum" in r.json()["error"], (r.status, r.body[:200])
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="mpu-test", Key="k", Range="bytes=%d-%d" % (where - 10, where + 10))["Body"].read()
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    r = c.get("mpu-test", "k", {"Range": "bytes=0-%d" % (8 * MIB + BLOCK - 1)})
    assert r.status == 206 and r.body == data[:8 * MIB + BLOCK]
    p = subprocess.run([str(comio_path()), "scrub", "--url", srv.url(), "--now"], capture_output=True, text=True,
                       timeout=120, env=comio.sanitizer_env())
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "k  block %d" % (where // BLOCK) in p.stdout, p.stdout


def test_restart_and_the_object_still_reads(make_server):
    srv, s3 = server(make_server)
    data = complete(s3, "k", [os.urandom(5 * MIB), os.urandom(3 * MIB)])
    for graceful in (True, False):
        srv.restart(graceful=graceful)
        assert srv.client().get("mpu-test", "k").body == data
        r = srv.client().get("mpu-test", "k", {"Range": "bytes=%d-%d" % (5 * MIB - 2, 5 * MIB + 2)})
        assert r.status == 206 and r.body == data[5 * MIB - 2:5 * MIB + 3]


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.3])
def test_sigkill_around_complete_leaks_no_space(make_server, delay):
    """storaged killed at some moment of a Complete (before its copy, during it, after its commit): after the
    restart either the object is there whole or the upload is, never both, and once the survivor is removed the
    store's free space is what it was before the upload."""
    srv, s3 = server(make_server)
    before = free_bytes(srv)
    parts = [os.urandom(8 * MIB), os.urandom(8 * MIB), os.urandom(8 * MIB), os.urandom(99)]
    uid, done = upload_parts(s3, "k", parts)
    t = threading.Thread(target=_complete_quietly, args=(s3, uid, done))
    t.start()
    time.sleep(delay)
    srv.kill9()
    t.join(60)
    assert not t.is_alive()
    srv.start()
    s3 = s3_client(srv)
    try:
        s3.head_object(Bucket="mpu-test", Key="k")
        have_object = True
    except ClientError:
        have_object = False
    try:
        s3.list_parts(Bucket="mpu-test", Key="k", UploadId=uid)
        have_upload = True
    except ClientError:
        have_upload = False
    assert have_object != have_upload, (have_object, have_upload)
    if have_object:
        assert s3.get_object(Bucket="mpu-test", Key="k")["Body"].read() == b"".join(parts)
        s3.delete_object(Bucket="mpu-test", Key="k")
    else:
        s3.abort_multipart_upload(Bucket="mpu-test", Key="k", UploadId=uid)
    wait_until(lambda: free_bytes(srv) == before, 10, what="the store's free space back to before the upload")


def _complete_quietly(s3, uid, done):
    try:
        s3.complete_multipart_upload(Bucket="mpu-test", Key="k", UploadId=uid, MultipartUpload={"Parts": done})
    except Exception:  # the connection dies with storaged: either outcome is checked after the restart
        pass


def test_replicates_byte_for_byte(sites):
    creds = {"s3": {"credentials": [{"access_key": AK, "secret_key": SECRET}]}}
    a, b = sites(a_extra=creds, b_extra=creds)
    sa = s3_client(a.storaged)
    sa.create_bucket(Bucket="mp-repl")
    data = complete(sa, "joined", [os.urandom(5 * MIB), os.urandom(5 * MIB + 17), os.urandom(5)], bucket="mp-repl")
    converge_or_fail(a, b)
    assert b.storaged.client().get("mp-repl", "joined").body == data
    p = subprocess.run([str(comio_path()), "diff", "--source", a.url(), "--target", b.url(), "--deep"],
                       capture_output=True, text=True, timeout=120, env=comio.sanitizer_env())
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)


def test_power_cut_after_complete_keeps_the_object(tmp_path):
    """The store on forgetfs (tests/powerloss: it forgets every write not synced): a Complete acknowledged, then
    storaged SIGKILLed and the power cut. The object, its parts' extents joined (no copy), was synced part by part
    before each part's commit: it reads whole after the restart. An upload in progress at the cut keeps its parts,
    and its Abort frees them all."""
    from harness import forgetfs
    why = forgetfs.skip_reason()
    if why is not None:
        pytest.skip(why)
    with forgetfs.Forgetfs(tmp_path / "disk", tmp_path / "mnt") as fs:
        srv = comio.Server(tmp_path / "site", size="128MB", config=s3_config())
        srv.storage = fs.mountpoint / "store.img"
        try:
            srv.start()
            s3 = s3_client(srv)
            s3.create_bucket(Bucket="mpu-test")
            before = free_bytes(srv)
            data = complete(s3, "k", [os.urandom(8 * MIB), os.urandom(8 * MIB), os.urandom(4097)])
            # stored one after the other on a new store, the parts lay back to back: the object is their extents
            assert srv.client().metrics().value("comio_s3_multipart_joined_bytes_total") == len(data)
            # and an upload in progress, its parts synced before their 200s
            pending = [os.urandom(8 * MIB), os.urandom(3 * MIB)]
            uid, _ = upload_parts(s3, "pending", pending)
            srv.kill9()
            fs.cut()
            fs.start()
            srv.start()
            r = srv.client().get("mpu-test", "k")
            assert r.status == 200 and r.body == data
            (obj,) = [o for page in deep_pages(srv.client(), "mpu-test") for o in page["objects"]]
            assert obj.get("verified") == "blocks" and "damaged" not in obj, obj
            # the upload survived whole; its Abort and the object's delete give back every byte
            s3 = s3_client(srv)
            assert [p["Size"] for p in s3.list_parts(Bucket="mpu-test", Key="pending", UploadId=uid)["Parts"]] == \
                [len(p) for p in pending]
            s3.abort_multipart_upload(Bucket="mpu-test", Key="pending", UploadId=uid)
            s3.delete_object(Bucket="mpu-test", Key="k")
            wait_until(lambda: free_bytes(srv) == before, 10, what="the store's free space back to before the uploads")
        finally:
            if srv.alive():
                srv.stop()
        assert srv.finish() == []  # no sanitizer report, no error in its log
