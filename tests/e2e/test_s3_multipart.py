"""test_s3_multipart.py - S3 multipart uploads on storaged: boto3, aws-cli, restarts, expiry and replication."""

import hashlib
import os
import time

import pytest
from botocore.exceptions import ClientError

from harness.replication import comio_diff, converge_or_fail, finish_sites, make_pair, wait_converged, wait_until
from test_diff_deep import deep_pages
from test_s3_objects import AK, SECRET, aws, code_of, s3_client, s3_config

MIB = 1024 * 1024


@pytest.fixture
def s3srv(make_server):
    return make_server(config=s3_config(), size="256MB")


@pytest.fixture
def s3(s3srv):
    s = s3_client(s3srv)
    s.create_bucket(Bucket="mpu-test")
    return s


def multipart_etag(parts):
    """S3's ETag of an object made of `parts` (bytes): hex(MD5 of the parts' binary MD5s)-N, quoted."""
    return '"%s-%d"' % (hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest(), len(parts))


def upload_parts(s3, key, parts, bucket="mpu-test", **create):
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)["UploadId"]
    done = []
    for i, p in enumerate(parts, 1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=i, Body=p)
        assert r["ETag"] == '"%s"' % hashlib.md5(p).hexdigest()
        done.append({"PartNumber": i, "ETag": r["ETag"]})
    return uid, done


def free_bytes(srv):
    return srv.client().metrics().value("comio_store_free_bytes")


def test_multipart_roundtrip(s3srv, s3):
    parts = [os.urandom(5 * MIB) for _ in range(3)] + [os.urandom(12345)]
    uid, done = upload_parts(s3, "big/obj", parts, ContentType="application/x-mp", Metadata={"color": "blue"},
                             ContentDisposition="attachment")
    listed = s3.list_parts(Bucket="mpu-test", Key="big/obj", UploadId=uid)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed["Parts"]] == \
        [(d["PartNumber"], d["ETag"], len(p)) for d, p in zip(done, parts)]
    assert listed["IsTruncated"] is False
    page = s3.list_parts(Bucket="mpu-test", Key="big/obj", UploadId=uid, MaxParts=2)
    assert [p["PartNumber"] for p in page["Parts"]] == [1, 2] and page["IsTruncated"] is True
    page = s3.list_parts(Bucket="mpu-test", Key="big/obj", UploadId=uid, PartNumberMarker=page["NextPartNumberMarker"])
    assert [p["PartNumber"] for p in page["Parts"]] == [3, 4]
    # nothing of the object exists before Complete
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="mpu-test", Key="big/obj")
    assert code_of(e)[1] == 404
    r = s3.complete_multipart_upload(Bucket="mpu-test", Key="big/obj", UploadId=uid, MultipartUpload={"Parts": done})
    assert r["ETag"] == multipart_etag(parts)
    data = b"".join(parts)
    g = s3.get_object(Bucket="mpu-test", Key="big/obj")
    assert g["Body"].read() == data and g["ContentLength"] == len(data)
    assert g["ContentType"] == "application/x-mp" and g["Metadata"] == {"color": "blue"}
    assert g["ContentDisposition"] == "attachment"
    # GET, HEAD and the listing give the multipart ETag; If-Match and If-None-Match compare with it
    assert g["ETag"] == multipart_etag(parts)
    assert s3.head_object(Bucket="mpu-test", Key="big/obj", IfMatch=multipart_etag(parts))["ETag"] == multipart_etag(parts)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="mpu-test", Key="big/obj", IfNoneMatch=multipart_etag(parts))
    assert code_of(e)[1] == 304
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="mpu-test", Key="big/obj", IfMatch='"%s"' % hashlib.md5(data).hexdigest())
    assert code_of(e)[1] == 412
    listed = s3.list_objects_v2(Bucket="mpu-test")["Contents"]
    assert [(o["Key"], o["ETag"], o["Size"]) for o in listed] == [("big/obj", multipart_etag(parts), len(data))]
    # and so does a native GET (the native listing keeps the MD5 of the bytes: docs/s3.md)
    assert s3srv.client().get("mpu-test", "big/obj").headers["ETag"] == multipart_etag(parts)
    # a range across the boundary of parts 1 and 2, and one into the small last part
    lo = 5 * MIB - 100
    g = s3.get_object(Bucket="mpu-test", Key="big/obj", Range="bytes=%d-%d" % (lo, lo + 199))
    assert g["Body"].read() == data[lo:lo + 200]
    g = s3.get_object(Bucket="mpu-test", Key="big/obj", Range="bytes=-20000")
    assert g["Body"].read() == data[-20000:]
    # the upload is gone: its id answers NoSuchUpload
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket="mpu-test", Key="big/obj", UploadId=uid)
    assert code_of(e) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket="mpu-test", Key="big/obj", UploadId=uid, MultipartUpload={"Parts": done})
    assert code_of(e) == ("NoSuchUpload", 404)
    assert s3srv.client().metrics().value("comio_s3_multipart_uploads") == 0


def test_multipart_errors(s3srv, s3):
    small = [os.urandom(1000), os.urandom(2000)]
    uid, done = upload_parts(s3, "k", small)
    # a part but the last under 5 MiB
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket="mpu-test", Key="k", UploadId=uid, MultipartUpload={"Parts": done})
    assert code_of(e) == ("EntityTooSmall", 400)
    # parts out of order
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket="mpu-test", Key="k", UploadId=uid, MultipartUpload={"Parts": done[::-1]})
    assert code_of(e) == ("InvalidPartOrder", 400)
    # an ETag that is not the part's, a part never uploaded
    bad = [{"PartNumber": 1, "ETag": '"%s"' % hashlib.md5(b"other").hexdigest()}]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket="mpu-test", Key="k", UploadId=uid, MultipartUpload={"Parts": bad})
    assert code_of(e) == ("InvalidPart", 400)
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket="mpu-test", Key="k", UploadId=uid,
                                     MultipartUpload={"Parts": [{"PartNumber": 7, "ETag": done[0]["ETag"]}]})
    assert code_of(e) == ("InvalidPart", 400)
    # part numbers out of range, unknown uploads, an upload of another key
    for n in (0, 10001):
        with pytest.raises(ClientError) as e:
            s3.upload_part(Bucket="mpu-test", Key="k", UploadId=uid, PartNumber=n, Body=b"x")
        assert code_of(e)[1] == 400
    for other in ("0" * 32, "not-an-id"):
        with pytest.raises(ClientError) as e:
            s3.upload_part(Bucket="mpu-test", Key="k", UploadId=other, PartNumber=1, Body=b"x")
        assert code_of(e) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket="mpu-test", Key="other-key", UploadId=uid, PartNumber=1, Body=b"x")
    assert code_of(e) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as e:
        s3.create_multipart_upload(Bucket="no-such-bucket", Key="k")
    assert code_of(e) == ("NoSuchBucket", 404)
    # a malformed list
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket="mpu-test", Key="k", UploadId=uid, MultipartUpload={"Parts": []})
    assert code_of(e) == ("MalformedXML", 400)
    # nothing of the refused requests changed the upload; a single small part completes
    assert [p["PartNumber"] for p in s3.list_parts(Bucket="mpu-test", Key="k", UploadId=uid)["Parts"]] == [1, 2]
    r = s3.complete_multipart_upload(Bucket="mpu-test", Key="k", UploadId=uid, MultipartUpload={"Parts": done[1:]})
    assert r["ETag"] == multipart_etag(small[1:])
    assert s3.get_object(Bucket="mpu-test", Key="k")["Body"].read() == small[1]


def test_multipart_abort_and_list_uploads(s3srv, s3):
    before = free_bytes(s3srv)
    ids = {}
    for key in ("b/two", "a/one", "b/two", "c/three"):
        ids.setdefault(key, []).append(s3.create_multipart_upload(Bucket="mpu-test", Key=key)["UploadId"])
    s3.upload_part(Bucket="mpu-test", Key="a/one", UploadId=ids["a/one"][0], PartNumber=1, Body=os.urandom(3 * MIB))
    assert free_bytes(s3srv) <= before - 3 * MIB
    got = s3.list_multipart_uploads(Bucket="mpu-test")
    listed = [(u["Key"], u["UploadId"]) for u in got["Uploads"]]
    assert listed == sorted((k, i) for k, v in ids.items() for i in v)
    assert got["IsTruncated"] is False
    assert [u["Key"] for u in s3.list_multipart_uploads(Bucket="mpu-test", Prefix="b/")["Uploads"]] == ["b/two", "b/two"]
    page = s3.list_multipart_uploads(Bucket="mpu-test", MaxUploads=2)
    assert page["IsTruncated"] is True and len(page["Uploads"]) == 2
    rest = s3.list_multipart_uploads(Bucket="mpu-test", KeyMarker=page["NextKeyMarker"], UploadIdMarker=page["NextUploadIdMarker"])
    assert [(u["Key"], u["UploadId"]) for u in page["Uploads"] + rest["Uploads"]] == listed
    assert s3srv.client().metrics().value("comio_s3_multipart_uploads") == 4
    # abort: the upload and its space go
    s3.abort_multipart_upload(Bucket="mpu-test", Key="a/one", UploadId=ids["a/one"][0])
    with pytest.raises(ClientError) as e:
        s3.abort_multipart_upload(Bucket="mpu-test", Key="a/one", UploadId=ids["a/one"][0])
    assert code_of(e) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket="mpu-test", Key="a/one", UploadId=ids["a/one"][0], PartNumber=2, Body=b"late")
    assert code_of(e) == ("NoSuchUpload", 404)
    wait_until(lambda: free_bytes(s3srv) == before, 10, what="the aborted part's space returned")
    assert "a/one" not in [u["Key"] for u in s3.list_multipart_uploads(Bucket="mpu-test")["Uploads"]]


def test_multipart_part_replaced(s3srv, s3):
    uid = s3.create_multipart_upload(Bucket="mpu-test", Key="r")["UploadId"]
    first = os.urandom(5 * MIB)
    old = s3.upload_part(Bucket="mpu-test", Key="r", UploadId=uid, PartNumber=1, Body=first)["ETag"]
    used = free_bytes(s3srv)
    second = os.urandom(5 * MIB)
    new = s3.upload_part(Bucket="mpu-test", Key="r", UploadId=uid, PartNumber=1, Body=second)["ETag"]
    last = s3.upload_part(Bucket="mpu-test", Key="r", UploadId=uid, PartNumber=2, Body=b"tail")["ETag"]
    assert [p["ETag"] for p in s3.list_parts(Bucket="mpu-test", Key="r", UploadId=uid)["Parts"]] == [new, last]
    # the replaced part's ETag no longer completes
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket="mpu-test", Key="r", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": old}, {"PartNumber": 2, "ETag": last}]})
    assert code_of(e) == ("InvalidPart", 400)
    s3.complete_multipart_upload(Bucket="mpu-test", Key="r", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": new}, {"PartNumber": 2, "ETag": last}]})
    assert s3.get_object(Bucket="mpu-test", Key="r")["Body"].read() == second + b"tail"
    # the old part's extent and then both parts' were freed: what is left is the object's
    wait_until(lambda: free_bytes(s3srv) >= used - 64 * 1024, 10, what="replaced and completed parts' space returned")


def test_upload_part_copy(s3srv, s3):
    src = os.urandom(7 * MIB + 3)
    s3.put_object(Bucket="mpu-test", Key="source obj", Body=src)
    uid = s3.create_multipart_upload(Bucket="mpu-test", Key="copied")["UploadId"]
    # a range of the source, the whole source, and a part uploaded as usual
    r1 = s3.upload_part_copy(Bucket="mpu-test", Key="copied", UploadId=uid, PartNumber=1,
                             CopySource={"Bucket": "mpu-test", "Key": "source obj"},
                             CopySourceRange="bytes=%d-%d" % (MIB, 6 * MIB - 1))["CopyPartResult"]
    assert r1["ETag"] == '"%s"' % hashlib.md5(src[MIB:6 * MIB]).hexdigest()
    r2 = s3.upload_part_copy(Bucket="mpu-test", Key="copied", UploadId=uid, PartNumber=2,
                             CopySource="mpu-test/source obj")["CopyPartResult"]
    assert r2["ETag"] == '"%s"' % hashlib.md5(src).hexdigest()
    r3 = s3.upload_part(Bucket="mpu-test", Key="copied", UploadId=uid, PartNumber=3, Body=b"end")
    # errors: no such source, a range past its end or malformed, a version, an unknown upload
    for kwargs, want in ((dict(CopySource="mpu-test/missing"), ("NoSuchKey", 404)),
                         (dict(CopySource="mpu-test/source obj", CopySourceRange="bytes=0-%d" % len(src)),
                          ("InvalidRange", 416)),
                         (dict(CopySource="mpu-test/source obj", CopySourceRange="bytes=5-"), ("InvalidArgument", 400)),
                         (dict(CopySource={"Bucket": "mpu-test", "Key": "source obj", "VersionId": "v1"}),
                          ("InvalidArgument", 400))):
        with pytest.raises(ClientError) as e:
            s3.upload_part_copy(Bucket="mpu-test", Key="copied", UploadId=uid, PartNumber=4, **kwargs)
        assert code_of(e) == want, kwargs
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(Bucket="mpu-test", Key="copied", UploadId="0" * 32, PartNumber=1,
                            CopySource="mpu-test/source obj")
    assert code_of(e) == ("NoSuchUpload", 404)
    assert [p["PartNumber"] for p in s3.list_parts(Bucket="mpu-test", Key="copied", UploadId=uid)["Parts"]] == [1, 2, 3]
    # the source overwritten after the copy: the part keeps the bytes it copied
    s3.put_object(Bucket="mpu-test", Key="source obj", Body=b"overwritten")
    parts = [src[MIB:6 * MIB], src, b"end"]
    r = s3.complete_multipart_upload(Bucket="mpu-test", Key="copied", UploadId=uid, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": r1["ETag"]}, {"PartNumber": 2, "ETag": r2["ETag"]}, {"PartNumber": 3, "ETag": r3["ETag"]}]})
    assert r["ETag"] == multipart_etag(parts)
    assert s3.get_object(Bucket="mpu-test", Key="copied")["Body"].read() == b"".join(parts)


def test_multipart_64mib_part(s3srv, s3):
    big = os.urandom(64 * MIB)
    uid, done = upload_parts(s3, "huge", [big, b"end"])
    s3.complete_multipart_upload(Bucket="mpu-test", Key="huge", UploadId=uid, MultipartUpload={"Parts": done})
    g = s3.get_object(Bucket="mpu-test", Key="huge")
    assert hashlib.md5(g["Body"].read()).hexdigest() == hashlib.md5(big + b"end").hexdigest()


@pytest.mark.parametrize("sizes", [[5 * MIB, 777], [8 * MIB, 8 * MIB, 3 * MIB + 5]], ids=["one-thread", "md5-pass"])
def test_multipart_object_md5_is_the_bytes(make_server, sizes):
    """The MD5 Complete stores (the native ETag, what replication and the deep listing verify) is that of the bytes,
    whether the copy hashes them itself (under 16 MiB) or a second thread does beside it. Without block checksums
    the deep listing checks every object against that MD5, so a wrong one shows as damage."""
    srv = make_server(config=s3_config("storage:\n  checksums: false\n"), size="256MB")
    s3 = s3_client(srv)
    s3.create_bucket(Bucket="mpu-test")
    parts = [os.urandom(n) for n in sizes]
    uid, done = upload_parts(s3, "hashed", parts)
    s3.complete_multipart_upload(Bucket="mpu-test", Key="hashed", UploadId=uid, MultipartUpload={"Parts": done})
    (obj,) = [o for page in deep_pages(srv.client(), "mpu-test") for o in page["objects"]]
    assert obj["key"] == "hashed" and obj.get("verified") == "md5" and "damaged" not in obj, obj
    assert obj["size"] == sum(sizes)
    assert s3.get_object(Bucket="mpu-test", Key="hashed")["Body"].read() == b"".join(parts)


def test_multipart_survives_sigkill(s3srv, s3):
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), b"last"]
    uid = s3.create_multipart_upload(Bucket="mpu-test", Key="crash", ContentType="text/x-crash")["UploadId"]
    e1 = s3.upload_part(Bucket="mpu-test", Key="crash", UploadId=uid, PartNumber=1, Body=parts[0])["ETag"]
    s3srv.restart(graceful=False)
    s3 = s3_client(s3srv)
    assert [p["ETag"] for p in s3.list_parts(Bucket="mpu-test", Key="crash", UploadId=uid)["Parts"]] == [e1]
    e2 = s3.upload_part(Bucket="mpu-test", Key="crash", UploadId=uid, PartNumber=2, Body=parts[1])["ETag"]
    e3 = s3.upload_part(Bucket="mpu-test", Key="crash", UploadId=uid, PartNumber=3, Body=parts[2])["ETag"]
    s3.complete_multipart_upload(Bucket="mpu-test", Key="crash", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": e} for n, e in ((1, e1), (2, e2), (3, e3))]})
    s3srv.restart(graceful=False)
    s3 = s3_client(s3srv)
    g = s3.get_object(Bucket="mpu-test", Key="crash")
    assert g["Body"].read() == b"".join(parts) and g["ContentType"] == "text/x-crash"


def test_multipart_complete_without_room(make_server):
    """Complete needs the object's size free and contiguous besides the parts: 507, and the upload stays."""
    srv = make_server(config=s3_config(), size="64MB")
    s3 = s3_client(srv)
    s3.create_bucket(Bucket="mpu-test")
    before = free_bytes(srv)
    size = max(5 * MIB, int(before * 0.3))  # three parts take 90% of the space: the object cannot fit besides them
    parts = [os.urandom(size) for _ in range(3)]
    uid, done = upload_parts(s3, "roomless", parts)
    assert free_bytes(srv) < 3 * size
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket="mpu-test", Key="roomless", UploadId=uid, MultipartUpload={"Parts": done})
    assert code_of(e) == ("InsufficientStorage", 507)
    assert [p["ETag"] for p in s3.list_parts(Bucket="mpu-test", Key="roomless", UploadId=uid)["Parts"]] == \
        [d["ETag"] for d in done]
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="mpu-test", Key="roomless")
    assert code_of(e)[1] == 404
    s3.abort_multipart_upload(Bucket="mpu-test", Key="roomless", UploadId=uid)
    wait_until(lambda: free_bytes(srv) == before, 10, what="the parts' space returned after Abort")


CRASH_EXIT = 86  # storaged's exit status at a crash point (COMIO_STORAGED_CRASH_AT, storaged/commit.c)


@pytest.mark.parametrize("shape", ["joined", "copied", "tail"])
@pytest.mark.parametrize("point", ["mpu-copied", "mpu-committed"])
def test_multipart_complete_crash(make_server, monkeypatch, point, shape):
    """A Complete cut short by a crash either happened whole (the object, the upload gone, one log record) or not
    at all (the upload intact, the copy's extent freed at start-up). Joined: the parts lie back to back and become
    the object's extent (no copy); copied: the first part's bytes end inside a block, so they are copied; tail: the
    short last part was stored first, elsewhere, and is copied right after part 1, which joins."""
    monkeypatch.setenv("COMIO_STORAGED_CRASH_AT", point)
    srv = make_server(config=s3_config(), size="256MB", replication=True)
    monkeypatch.delenv("COMIO_STORAGED_CRASH_AT")
    s3 = s3_client(srv)
    s3.create_bucket(Bucket="mpu-test")
    parts = [os.urandom(5 * MIB + 1 if shape == "copied" else 5 * MIB), b"tail of the object"]
    if shape == "tail":
        uid = s3.create_multipart_upload(Bucket="mpu-test", Key="cut")["UploadId"]
        etags = {n: s3.upload_part(Bucket="mpu-test", Key="cut", UploadId=uid, PartNumber=n, Body=parts[n - 1])["ETag"]
                 for n in (2, 1)}
        done = [{"PartNumber": n, "ETag": etags[n]} for n in (1, 2)]
    else:
        uid, done = upload_parts(s3, "cut", parts)
    free_before = free_bytes(srv)
    log_before = srv.client().metrics().value("comio_replog_head_seq")
    with pytest.raises(Exception):
        s3.complete_multipart_upload(Bucket="mpu-test", Key="cut", UploadId=uid, MultipartUpload={"Parts": done})
    wait_until(lambda: srv.proc.poll() is not None, 30, what="storaged exiting at the crash point")
    assert srv.proc.returncode == CRASH_EXIT, srv.log_tail(30)
    assert "crash point " + point in srv.log()
    srv.proc = None  # reaped: started again below
    srv.start()
    s3 = s3_client(srv)
    m = srv.client().metrics()
    if point == "mpu-copied":
        # not committed: the upload as it was, the copy's space back, nothing logged
        assert [p["ETag"] for p in s3.list_parts(Bucket="mpu-test", Key="cut", UploadId=uid)["Parts"]] == \
            [d["ETag"] for d in done]
        assert m.value("comio_store_free_bytes") == free_before
        assert m.value("comio_replog_head_seq") == log_before
        with pytest.raises(ClientError) as e:
            s3.head_object(Bucket="mpu-test", Key="cut")
        assert code_of(e)[1] == 404
        s3.complete_multipart_upload(Bucket="mpu-test", Key="cut", UploadId=uid, MultipartUpload={"Parts": done})
        joined = srv.client().metrics().value("comio_s3_multipart_joined_bytes_total")
        assert joined == {"joined": sum(len(p) for p in parts), "copied": 0, "tail": len(parts[0])}[shape]
    else:
        # committed: the object with its ETag, one PUT in the log, the upload gone
        with pytest.raises(ClientError) as e:
            s3.list_parts(Bucket="mpu-test", Key="cut", UploadId=uid)
        assert code_of(e) == ("NoSuchUpload", 404)
        assert m.value("comio_replog_head_seq") == log_before + 1
        assert m.value("comio_s3_multipart_uploads") == 0
    g = s3.get_object(Bucket="mpu-test", Key="cut")
    assert g["Body"].read() == b"".join(parts) and g["ETag"] == multipart_etag(parts)


def test_multipart_ttl_expiry(make_server):
    srv = make_server(config=s3_config("  multipart_ttl: 2s\n"))
    s3 = s3_client(srv)
    s3.create_bucket(Bucket="mpu-test")
    before = free_bytes(srv)
    uid = s3.create_multipart_upload(Bucket="mpu-test", Key="left")["UploadId"]
    s3.upload_part(Bucket="mpu-test", Key="left", UploadId=uid, PartNumber=1, Body=os.urandom(2 * MIB))
    assert free_bytes(srv) <= before - 2 * MIB
    wait_until(lambda: srv.client().metrics().value("comio_s3_multipart_uploads_expired_total") == 1, 20,
               what="the upload expired")
    assert srv.client().metrics().value("comio_s3_multipart_uploads") == 0
    wait_until(lambda: free_bytes(srv) == before, 10, what="the expired upload's space returned")
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket="mpu-test", Key="left", UploadId=uid)
    assert code_of(e) == ("NoSuchUpload", 404)
    assert "expired multipart upload removed" in srv.log()


def test_aws_cli_multipart(s3srv, tmp_path):
    aws(s3srv, tmp_path, "s3api", "create-bucket", "--bucket", "cli-mp")
    src = tmp_path / "up.bin"
    data = os.urandom(40 * MIB)
    src.write_bytes(data)
    aws(s3srv, tmp_path, "s3", "cp", str(src), "s3://cli-mp/forty")
    head = s3_client(s3srv).head_object(Bucket="cli-mp", Key="forty")
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == multipart_etag([data[i:i + 8 * MIB] for i in range(0, len(data), 8 * MIB)])
    dst = tmp_path / "down.bin"
    aws(s3srv, tmp_path, "s3", "cp", "s3://cli-mp/forty", str(dst))
    assert dst.read_bytes() == data


def test_multipart_replicates(sites):
    creds = {"s3": {"credentials": [{"access_key": AK, "secret_key": SECRET}]}}
    a, b = sites(a_extra=creds, b_extra=creds)
    sa, sb = s3_client(a.storaged), s3_client(b.storaged)
    sa.create_bucket(Bucket="mp-repl")
    parts = [os.urandom(5 * MIB), os.urandom(777)]
    uid, done = upload_parts(sa, "joined", parts, bucket="mp-repl", ContentType="text/x-joined")
    # an unfinished upload on A: its parts never reach B
    open_uid, _ = upload_parts(sa, "unfinished", [os.urandom(100000)], bucket="mp-repl")
    sa.complete_multipart_upload(Bucket="mp-repl", Key="joined", UploadId=uid, MultipartUpload={"Parts": done})
    assert wait_converged(a, b, timeout=60) == []
    assert comio_diff(a, b)[0] == []
    g = sb.get_object(Bucket="mp-repl", Key="joined")
    assert g["Body"].read() == b"".join(parts) and g["ContentType"] == "text/x-joined"
    assert g["ETag"] == sa.head_object(Bucket="mp-repl", Key="joined")["ETag"] == multipart_etag(parts)
    assert sb.list_multipart_uploads(Bucket="mp-repl").get("Uploads", []) == []
    with pytest.raises(ClientError) as e:
        sb.head_object(Bucket="mp-repl", Key="unfinished")
    assert code_of(e)[1] == 404
    assert [u["UploadId"] for u in sa.list_multipart_uploads(Bucket="mp-repl")["Uploads"]] == [open_uid]


def test_multipart_object_full_sync(tmp_path):
    """A multipart object A stored while replication was off reaches B by the full sync, with its multipart ETag."""
    creds = {"s3": {"credentials": [{"access_key": AK, "secret_key": SECRET}]}}
    a, b = make_pair(tmp_path / "pair", start=False, a_extra=creds, b_extra=creds)
    try:
        repl = a.repl
        a.repl = None
        a.write_config()
        b.start()
        a.start()
        sa = s3_client(a.storaged)
        sa.create_bucket(Bucket="mp-sync")
        parts = [os.urandom(5 * MIB), os.urandom(4321)]
        uid, done = upload_parts(sa, "synced", parts, bucket="mp-sync")
        sa.complete_multipart_upload(Bucket="mp-sync", Key="synced", UploadId=uid, MultipartUpload={"Parts": done})
        a.stop()
        a.repl = repl  # B becomes A's target: the log holds nothing of what A stores
        a.write_config()
        a.start()
        converge_or_fail(a, b, timeout=60)
        g = s3_client(b.storaged).get_object(Bucket="mp-sync", Key="synced")
        assert g["Body"].read() == b"".join(parts) and g["ETag"] == multipart_etag(parts)
    finally:
        problems = finish_sites([a, b])
    assert not problems, problems
