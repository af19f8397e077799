"""test_s3_multipart_join.py - a Complete whose parts lie back to back in the store, in order, each but the last
filling its extent: the parts' extents become the object's, with no copy (commit_mpu.c, docs/storage.md "Multipart
uploads"), and the cases that must copy instead: parts whose bytes leave a gap, parts out of place. A last part
stored elsewhere (first, before the upload had a place, as a client sending its parts at once stores a short last
part) is copied next to the others and the rest joined. Either way the object reads back whole,
verifies against its block checksums, survives a restart, frees exactly its space when deleted, and replicates. The
metric comio_s3_multipart_joined_bytes_total counts the bytes a Complete joined (not copied)."""

import concurrent.futures
import hashlib
import os
import subprocess

from botocore.exceptions import ClientError

from harness import comio
from harness.replication import comio_path, converge_or_fail, wait_until
from test_diff_deep import deep_pages
from test_s3_multipart import MIB, free_bytes, multipart_etag, upload_parts
from test_s3_objects import AK, SECRET, s3_client, s3_config

BUCKET = "mpu-test"


def joined(srv):
    return srv.client().metrics().value("comio_s3_multipart_joined_bytes_total")


def server(make_server, size="256MB"):
    srv = make_server(config=s3_config(), size=size)
    s3 = s3_client(srv)
    s3.create_bucket(Bucket=BUCKET)
    return srv, s3


def complete(srv, s3, key, parts, listed=None, want_joined=True):
    """Uploads `parts` one after the other (part n is parts[n-1]), completes with the numbers `listed` (all by
    default), checks the object whole and verified, and that the Complete joined (or copied) its parts."""
    uid, done = upload_parts(s3, key, parts, bucket=BUCKET)
    listed = listed or list(range(1, len(parts) + 1))
    before = joined(srv)
    r = s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=uid,
                                     MultipartUpload={"Parts": [done[n - 1] for n in listed]})
    assert r["ETag"] == multipart_etag([parts[n - 1] for n in listed])
    data = b"".join(parts[n - 1] for n in listed)
    assert joined(srv) - before == (len(data) if want_joined else 0), key
    check_object(srv, key, data)
    return data


def check_object(srv, key, data):
    body = srv.client().get(BUCKET, key).body
    assert len(body) == len(data) and hashlib.md5(body).digest() == hashlib.md5(data).digest(), key
    (obj,) = [o for page in deep_pages(srv.client(), BUCKET) for o in page["objects"] if o["key"] == key]
    assert obj.get("verified") == "blocks" and "damaged" not in obj, obj


def test_joined_object_reads_restarts_and_frees_its_space(make_server):
    srv, s3 = server(make_server)
    before = free_bytes(srv)
    data = complete(srv, s3, "joined", [os.urandom(8 * MIB), os.urandom(8 * MIB), os.urandom(8 * MIB), os.urandom(4097)])
    r = srv.client().get(BUCKET, "joined", {"Range": "bytes=%d-%d" % (8 * MIB - 3, 16 * MIB + 2)})
    assert r.status == 206 and r.body == data[8 * MIB - 3:16 * MIB + 3]
    for graceful in (True, False):
        srv.restart(graceful=graceful)
        check_object(srv, "joined", data)
    s3 = s3_client(srv)
    s3.delete_object(Bucket=BUCKET, Key="joined")
    wait_until(lambda: free_bytes(srv) == before, 10, what="the joined object's space freed, and only it")
    assert srv.finish() == []


def test_unlisted_part_is_freed_and_the_listed_ones_kept(make_server):
    """Parts 1, 2 and 3 back to back, the Complete lists 1 and 2: they join, part 3's extent is freed."""
    srv, s3 = server(make_server)
    before = free_bytes(srv)
    data = complete(srv, s3, "k", [os.urandom(8 * MIB), os.urandom(5 * MIB + 3), os.urandom(6 * MIB)], listed=[1, 2])
    s3.delete_object(Bucket=BUCKET, Key="k")
    wait_until(lambda: free_bytes(srv) == before, 10, what="the store's free space back to before the upload")
    assert len(data) == 13 * MIB + 3


def test_parts_that_cannot_join_are_copied(make_server):
    srv, s3 = server(make_server)
    before = free_bytes(srv)
    # a first part that ends inside its last block: the object's bytes would have a gap
    complete(srv, s3, "gap", [os.urandom(5 * MIB + 1), os.urandom(5 * MIB)], want_joined=False)
    # parts 1, 2, 4 of four: part 3's extent lies between 2 and 4
    parts = [os.urandom(5 * MIB) for _ in range(4)]
    complete(srv, s3, "skip", parts, listed=[1, 2, 4], want_joined=False)
    # a part larger than the first one stored does not fit its place
    complete(srv, s3, "larger", [os.urandom(5 * MIB), os.urandom(6 * MIB), os.urandom(10)], want_joined=False)
    for key in ("gap", "skip", "larger"):
        s3.delete_object(Bucket=BUCKET, Key=key)
    wait_until(lambda: free_bytes(srv) == before, 10, what="the store's free space back to before the uploads")


def test_other_writes_between_parts_leave_their_places(make_server):
    """Objects written while an upload goes on take the space before its first part (best fit), not the places of
    its next parts: the Complete still joins. (Part 1 goes an eighth into the largest free extent: on this 1 GB
    store, 128 MB are left in front of it.)"""
    srv, s3 = server(make_server, size="1GB")
    uid = s3.create_multipart_upload(Bucket=BUCKET, Key="between")["UploadId"]
    parts, done = [os.urandom(5 * MIB) for _ in range(3)] + [os.urandom(5)], []
    for n, body in enumerate(parts, 1):
        done.append({"PartNumber": n, "ETag": s3.upload_part(Bucket=BUCKET, Key="between", UploadId=uid, PartNumber=n,
                                                             Body=body)["ETag"]})
        s3.put_object(Bucket=BUCKET, Key="other-%d" % n, Body=os.urandom(6 * MIB))
        s3.put_object(Bucket=BUCKET, Key="small-%d" % n, Body=b"x" * 100)
    j0 = joined(srv)
    s3.complete_multipart_upload(Bucket=BUCKET, Key="between", UploadId=uid, MultipartUpload={"Parts": done})
    assert joined(srv) - j0 == sum(len(p) for p in parts)
    check_object(srv, "between", b"".join(parts))


def test_parts_stored_concurrently_join(make_server):
    """boto3's way: parts sent in order, 6 at a time, stored in any order; each goes to its place, and the Complete
    joins them."""
    srv, s3 = server(make_server)
    parts = [os.urandom(5 * MIB) for _ in range(17)] + [os.urandom(777)]
    uid = s3.create_multipart_upload(Bucket=BUCKET, Key="concurrent")["UploadId"]
    etags = {}

    def put(n):
        etags[n] = s3.upload_part(Bucket=BUCKET, Key="concurrent", UploadId=uid, PartNumber=n, Body=parts[n - 1])["ETag"]

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        list(pool.map(put, range(1, len(parts) + 1), timeout=120))
    j0 = joined(srv)
    s3.complete_multipart_upload(Bucket=BUCKET, Key="concurrent", UploadId=uid,
                                 MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]}
                                                            for n in range(1, len(parts) + 1)]})
    assert joined(srv) - j0 == sum(len(p) for p in parts)
    check_object(srv, "concurrent", b"".join(parts))
    assert srv.finish() == []


def upload_in_order(s3, key, parts, order):
    uid = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    etags = {n: s3.upload_part(Bucket=BUCKET, Key=key, UploadId=uid, PartNumber=n, Body=parts[n - 1])["ETag"]
             for n in order}
    return uid, [{"PartNumber": n, "ETag": etags[n]} for n in range(1, len(parts) + 1)]


def test_last_part_stored_first_is_copied_next_to_the_joined_rest(make_server):
    """A short last part stored first: under 5 MiB it gets no place; of 5 MiB or more it sets a place too narrow for
    the others, which the next, longer part sets again. Either way the Complete copies the last part right after the
    others and joins them (joined: all but the last part's bytes); the object reads back, survives a restart, and its
    deletion frees exactly what the upload took."""
    srv, s3 = server(make_server)
    before = free_bytes(srv)
    cases = {"short": [os.urandom(8 * MIB), os.urandom(8 * MIB), os.urandom(2 * MIB + 5)],
             "narrow": [os.urandom(8 * MIB), os.urandom(8 * MIB), os.urandom(6 * MIB + 1)]}
    for key, parts in cases.items():
        uid, done = upload_in_order(s3, key, parts, [3, 2, 1])  # 2 before 1: by best fit they would be out of order
        j0 = joined(srv)
        r = s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=uid, MultipartUpload={"Parts": done})
        assert r["ETag"] == multipart_etag(parts)
        assert joined(srv) - j0 == 16 * MIB, key
        check_object(srv, key, b"".join(parts))
    srv.restart(graceful=False)
    s3 = s3_client(srv)
    for key, parts in cases.items():
        check_object(srv, key, b"".join(parts))
        s3.delete_object(Bucket=BUCKET, Key=key)
    wait_until(lambda: free_bytes(srv) == before, 10, what="the objects' space freed, and the moved last parts' too")
    assert srv.finish() == []


def test_parts_sent_at_once_with_a_short_last_part_join(make_server):
    """boto3's way for a file of a few parts: all of them sent at once, the short last one usually stored first. The
    Complete joins every part, or all but the last, which it copies (never the whole object). (1 GB: a place is set
    again in the largest free extent, which must hold 16 parts.)"""
    srv, s3 = server(make_server, size="1GB")
    for key, last in (("under-min", 3 * MIB + 7), ("over-min", 6 * MIB + 7)):
        parts = [os.urandom(8 * MIB) for _ in range(4)] + [os.urandom(last)]
        uid = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
        etags = {}

        def put(n, key=key, uid=uid, parts=parts):
            etags[n] = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=uid, PartNumber=n, Body=parts[n - 1])["ETag"]

        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            list(pool.map(put, range(5, 0, -1), timeout=120))
        j0 = joined(srv)
        s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=uid,
                                     MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in range(1, 6)]})
        assert joined(srv) - j0 in (32 * MIB, 32 * MIB + last), key
        check_object(srv, key, b"".join(parts))
    assert srv.finish() == []


def test_abort_and_refused_complete_keep_the_parts(make_server):
    """A Complete refused (a wrong ETag) after its parts could have joined changes nothing: the upload is whole and
    can still be completed; an Abort then frees every part."""
    srv, s3 = server(make_server)
    before = free_bytes(srv)
    parts = [os.urandom(8 * MIB), os.urandom(8 * MIB), os.urandom(100)]
    uid, done = upload_parts(s3, "k", parts, bucket=BUCKET)
    bad = [dict(d) for d in done]
    bad[2]["ETag"] = '"%s"' % ("0" * 32)
    try:
        s3.complete_multipart_upload(Bucket=BUCKET, Key="k", UploadId=uid, MultipartUpload={"Parts": bad})
        raise AssertionError("a Complete with a wrong ETag succeeded")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "InvalidPart", e.response
    assert len(s3.list_parts(Bucket=BUCKET, Key="k", UploadId=uid)["Parts"]) == 3
    s3.abort_multipart_upload(Bucket=BUCKET, Key="k", UploadId=uid)
    wait_until(lambda: free_bytes(srv) == before, 10, what="every part freed by the Abort")
    assert srv.finish() == []


def test_expiry_frees_the_placed_parts(make_server):
    srv = make_server(config=s3_config("  multipart_ttl: 2s\n"), size="256MB")
    s3 = s3_client(srv)
    s3.create_bucket(Bucket=BUCKET)
    before = free_bytes(srv)
    uid = s3.create_multipart_upload(Bucket=BUCKET, Key="left")["UploadId"]
    for n in (2, 1, 3):
        s3.upload_part(Bucket=BUCKET, Key="left", UploadId=uid, PartNumber=n, Body=os.urandom(5 * MIB))
    assert free_bytes(srv) <= before - 15 * MIB
    wait_until(lambda: srv.client().metrics().value("comio_s3_multipart_uploads_expired_total") == 1, 20,
               what="the upload expired")
    wait_until(lambda: free_bytes(srv) == before, 10, what="the expired upload's space returned")
    # the next upload is placed (and joined) as if the first had never been
    complete(srv, s3, "next", [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(3)])
    assert srv.finish() == []


def test_joined_object_replicates(sites):
    creds = {"s3": {"credentials": [{"access_key": AK, "secret_key": SECRET}]}}
    fast_scrub = dict(creds, storage={"scrub_rate": "10GB/s"})
    a, b = sites(a_extra=fast_scrub, b_extra=fast_scrub, size="512MB")
    s3 = s3_client(a.storaged)
    s3.create_bucket(Bucket=BUCKET)
    data = complete(a.storaged, s3, "r", [os.urandom(8 * MIB), os.urandom(8 * MIB), os.urandom(77)])
    p = subprocess.run([str(comio_path()), "scrub", "--url", a.storaged.url(), "--now"], capture_output=True, text=True,
                       timeout=120, env=comio.sanitizer_env())
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    converge_or_fail(a, b)
    assert b.storaged.client().get(BUCKET, "r").body == data
    p = subprocess.run([str(comio_path()), "diff", "--source", a.url(), "--target", b.url(), "--deep"],
                       capture_output=True, text=True, timeout=120, env=comio.sanitizer_env())
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
