"""test_s3_multipart_concurrent.py - multipart uploads that run at once (rclone --transfers, aws s3 cp/sync of several
large files, restic's packs): each upload's parts get a run of space of their own, kept clear of the other uploads
and of plain PUTs (commit_mpu.c, docs/storage.md "Multipart uploads"), so that every Complete joins its parts with no
copy, whichever order the uploads' parts arrive in; and after a restart of storaged, an upload's later parts still go
next to the ones stored before it. Each object reads back whole and verified, and deleting them all gives the store's
free space back exactly."""

import concurrent.futures
import hashlib
import os

import pytest

from harness.replication import wait_until
from test_s3_multipart import MIB, free_bytes, multipart_etag
from test_s3_multipart_join import BUCKET, check_object, joined, server
from test_s3_objects import s3_client


def put_part(s3, key, uid, n, body):
    r = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=uid, PartNumber=n, Body=body)
    assert r["ETag"] == '"%s"' % hashlib.md5(body).hexdigest()
    return r["ETag"]


def complete(srv, s3, key, uid, parts, etags):
    """Completes with every part and reads the object back; returns whether the Complete joined them all (no
    byte copied)."""
    j0 = joined(srv)
    r = s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=uid,
                                     MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]}
                                                                for n in range(1, len(parts) + 1)]})
    assert r["ETag"] == multipart_etag(parts)
    check_object(srv, key, b"".join(parts))
    return joined(srv) - j0 == sum(len(p) for p in parts)


def complete_joined(srv, s3, key, uid, parts, etags):
    """Completes with every part; the Complete must join them all (no byte copied) and the object read back."""
    assert complete(srv, s3, key, uid, parts, etags), key + ": the Complete copied"


def uploads_at_once(srv, s3, nuploads, nparts, threads, min_joined=None):
    """nuploads uploads of nparts parts of 5 MiB (the last one short), their parts sent alternately (upload 1's part
    1, upload 2's part 1, ..., upload 1's part 2, ...), by `threads` threads at once (1: strictly alternately). Every
    Complete joins (at least min_joined of them, when given); every object reads back whole; deleting the objects
    frees exactly what they took."""
    before = free_bytes(srv)
    keys = ["obj-%d" % i for i in range(nuploads)]
    parts = {k: [os.urandom(5 * MIB) for _ in range(nparts - 1)] + [os.urandom(123_457)] for k in keys}
    uids = {k: s3.create_multipart_upload(Bucket=BUCKET, Key=k)["UploadId"] for k in keys}
    etags = {k: {} for k in keys}
    order = [(k, n) for n in range(1, nparts + 1) for k in keys]

    def send(job):
        k, n = job
        etags[k][n] = put_part(s3, k, uids[k], n, parts[k][n - 1])

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, order, timeout=120))
    if min_joined is None:
        for k in keys:
            complete_joined(srv, s3, k, uids[k], parts[k], etags[k])
    else:
        n = sum(complete(srv, s3, k, uids[k], parts[k], etags[k]) for k in keys)
        assert n >= min_joined, "%d of %d Completes joined, fewer than %d" % (n, nuploads, min_joined)
    for k in keys:
        s3.delete_object(Bucket=BUCKET, Key=k)
    wait_until(lambda: free_bytes(srv) == before, 10, what="the objects' space freed, and only it")


def test_two_uploads_sent_at_once_both_join(make_server):
    srv, s3 = server(make_server)
    uploads_at_once(srv, s3, 2, 8, threads=4)
    assert srv.finish() == []


def test_three_uploads_sent_alternately_all_join(make_server):
    srv, s3 = server(make_server)
    uploads_at_once(srv, s3, 3, 6, threads=1)
    # and again at once, on the space the first three gave back: with every part of the three in flight together,
    # an upload whose parts land before it has a place of its own may still be copied at Complete (docs/s3.md)
    uploads_at_once(srv, s3, 3, 6, threads=6, min_joined=1)
    assert srv.finish() == []


def test_puts_between_concurrent_uploads_keep_off_their_runs(make_server):
    """Plain PUTs of the parts' size between the parts of two uploads go outside the uploads' runs."""
    srv, s3 = server(make_server)
    before = free_bytes(srv)
    keys = ("a", "b")
    parts = {k: [os.urandom(5 * MIB) for _ in range(5)] for k in keys}
    uids = {k: s3.create_multipart_upload(Bucket=BUCKET, Key=k)["UploadId"] for k in keys}
    etags = {k: {} for k in keys}
    for n in range(1, 6):
        for k in keys:
            etags[k][n] = put_part(s3, k, uids[k], n, parts[k][n - 1])
            s3.put_object(Bucket=BUCKET, Key="other-%s-%d" % (k, n), Body=os.urandom(5 * MIB))
    for k in keys:
        complete_joined(srv, s3, k, uids[k], parts[k], etags[k])
    for k in keys:
        s3.delete_object(Bucket=BUCKET, Key=k)
        for n in range(1, 6):
            s3.delete_object(Bucket=BUCKET, Key="other-%s-%d" % (k, n))
    wait_until(lambda: free_bytes(srv) == before, 10, what="every object's space freed")
    assert srv.finish() == []


@pytest.mark.parametrize("graceful", [True, False])
def test_parts_after_a_restart_join_those_before(make_server, graceful):
    """3 parts, storaged restarted (stopped, or killed), 3 more: the place is rebuilt from the stored parts, and the
    Complete joins all six."""
    srv, s3 = server(make_server)
    before = free_bytes(srv)
    parts = [os.urandom(5 * MIB) for _ in range(5)] + [os.urandom(4321)]
    uid = s3.create_multipart_upload(Bucket=BUCKET, Key="restarted")["UploadId"]
    etags = {n: put_part(s3, "restarted", uid, n, parts[n - 1]) for n in (1, 2, 3)}
    srv.restart(graceful=graceful)
    s3 = s3_client(srv)
    s3.put_object(Bucket=BUCKET, Key="between", Body=os.urandom(5 * MIB))  # before the upload's next part
    etags.update({n: put_part(s3, "restarted", uid, n, parts[n - 1]) for n in (4, 5, 6)})
    complete_joined(srv, s3, "restarted", uid, parts, etags)
    for key in ("restarted", "between"):
        s3.delete_object(Bucket=BUCKET, Key=key)
    wait_until(lambda: free_bytes(srv) == before, 10, what="the objects' space freed, and only it")
    assert srv.finish() == []


def test_a_run_gives_way_when_nothing_else_fits(make_server):
    """A run is a preference: on a 128 MB store where part 1 of an upload sits 16 MB in and its run reaches about 25
    MB past it, a 95 MiB PUT fits only across the run, and is stored, not refused. The upload goes on (its part 2's
    place taken, it lands elsewhere) and aborts; everything's space comes back."""
    srv, s3 = server(make_server, size="128MB")
    before = free_bytes(srv)
    uid = s3.create_multipart_upload(Bucket=BUCKET, Key="up")["UploadId"]
    put_part(s3, "up", uid, 1, os.urandom(5 * MIB))
    big = os.urandom(95 * MIB)
    s3.put_object(Bucket=BUCKET, Key="big", Body=big)
    body = srv.client().get(BUCKET, "big").body
    assert hashlib.md5(body).digest() == hashlib.md5(big).digest()
    put_part(s3, "up", uid, 2, os.urandom(5 * MIB))
    s3.abort_multipart_upload(Bucket=BUCKET, Key="up", UploadId=uid)
    s3.delete_object(Bucket=BUCKET, Key="big")
    wait_until(lambda: free_bytes(srv) == before, 10, what="the object's and the parts' space freed")
    assert srv.finish() == []
