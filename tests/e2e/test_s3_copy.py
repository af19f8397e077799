"""test_s3_copy.py - S3's CopyObject (PUT with x-amz-copy-source) through boto3 and aws-cli, and its replication."""

import datetime
import hashlib
import os

import pytest
from botocore.exceptions import ClientError

from harness.replication import comio_diff, wait_converged, wait_until
from harness.s3clients import SITE_CREDS, aws, s3_client, s3_config


@pytest.fixture
def s3srv(make_server):
    return make_server(config=s3_config())


@pytest.fixture
def s3(s3srv):
    return s3_client(s3srv)


def code_of(excinfo):
    return excinfo.value.response["Error"]["Code"], excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


def copy_with_headers(s3, headers, **kwargs):
    """copy_object with extra (signed) request headers, or with the modelled ones replaced."""
    def add(request, **_):
        for k, v in headers.items():
            if k in request.headers:
                del request.headers[k]  # botocore's headers append on assignment
            request.headers[k] = v
    s3.meta.events.register_first("before-sign.s3.CopyObject", add, unique_id="copy-headers")
    try:
        return s3.copy_object(**kwargs)
    finally:
        s3.meta.events.unregister("before-sign.s3.CopyObject", unique_id="copy-headers")


def test_copy_same_and_other_bucket(s3):
    s3.create_bucket(Bucket="src")
    s3.create_bucket(Bucket="dst")
    data = os.urandom(300000)  # more than one 64 KiB window of the store
    put = s3.put_object(Bucket="src", Key="dir/a b+c%.bin", Body=data, ContentType="text/x-src", Metadata={"m": "1"},
                        ContentDisposition="inline", CacheControl="max-age=5")
    r = s3.copy_object(Bucket="src", Key="copy", CopySource={"Bucket": "src", "Key": "dir/a b+c%.bin"})
    etag = hashlib.md5(data).hexdigest()
    assert r["CopyObjectResult"]["ETag"] == '"%s"' % etag == put["ETag"]
    lm = r["CopyObjectResult"]["LastModified"]
    assert abs((datetime.datetime.now(datetime.timezone.utc) - lm).total_seconds()) < 60
    # encoded by hand (lower-case hex), as the header is sent
    r = copy_with_headers(s3, {"x-amz-copy-source": "src/dir/a%20b%2bc%25.bin"}, Bucket="dst", Key="deep/x",
                          CopySource="src/whatever")
    assert r["CopyObjectResult"]["ETag"] == put["ETag"]
    for bucket, key in (("src", "copy"), ("dst", "deep/x")):
        g = s3.get_object(Bucket=bucket, Key=key)
        assert g["Body"].read() == data
        # COPY (the default): the source's content type and metadata
        assert g["ContentType"] == "text/x-src" and g["Metadata"] == {"m": "1"}
        assert g["ContentDisposition"] == "inline" and g["CacheControl"] == "max-age=5"
    # an empty object, and a leading slash in the header
    s3.put_object(Bucket="src", Key="empty", Body=b"")
    copy_with_headers(s3, {"x-amz-copy-source": "/src/empty"}, Bucket="dst", Key="empty2", CopySource="src/empty")
    assert s3.get_object(Bucket="dst", Key="empty2")["Body"].read() == b""
    # the source stays as it was
    assert s3.get_object(Bucket="src", Key="dir/a b+c%.bin")["Body"].read() == data


def test_copy_metadata_directive(s3):
    s3.create_bucket(Bucket="meta")
    s3.put_object(Bucket="meta", Key="k", Body=b"hello", ContentType="text/plain", Metadata={"old": "1"},
                  ContentLanguage="en")
    s3.copy_object(Bucket="meta", Key="r", CopySource="meta/k", MetadataDirective="REPLACE", ContentType="image/png",
                   Metadata={"new": "2"})
    h = s3.head_object(Bucket="meta", Key="r")
    assert h["ContentType"] == "image/png" and h["Metadata"] == {"new": "2"} and "ContentLanguage" not in h
    # COPY ignores the request's metadata
    s3.copy_object(Bucket="meta", Key="c", CopySource="meta/k", MetadataDirective="COPY", Metadata={"ignored": "x"})
    h = s3.head_object(Bucket="meta", Key="c")
    assert h["ContentType"] == "text/plain" and h["Metadata"] == {"old": "1"} and h["ContentLanguage"] == "en"
    # onto itself: only with REPLACE (how clients change metadata in place)
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket="meta", Key="k", CopySource="meta/k")
    assert code_of(e) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket="meta", Key="k", CopySource="meta/k", MetadataDirective="COPY")
    assert code_of(e) == ("InvalidRequest", 400)
    s3.copy_object(Bucket="meta", Key="k", CopySource="meta/k", MetadataDirective="REPLACE", ContentType="text/x-new",
                   Metadata={"again": "3"})
    g = s3.get_object(Bucket="meta", Key="k")
    assert g["Body"].read() == b"hello" and g["ContentType"] == "text/x-new" and g["Metadata"] == {"again": "3"}
    # a directive that is neither, and REPLACE with bad metadata: 400, nothing written
    with pytest.raises(ClientError) as e:
        copy_with_headers(s3, {"x-amz-metadata-directive": "MERGE"}, Bucket="meta", Key="bad", CopySource="meta/k")
    assert code_of(e) == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as e:
        copy_with_headers(s3, {"x-amz-meta-big": "v" * 3000}, Bucket="meta", Key="bad", CopySource="meta/k",
                          MetadataDirective="REPLACE")
    assert code_of(e) == ("MetadataTooLarge", 400)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="meta", Key="bad")
    assert code_of(e)[1] == 404


def test_copy_conditions(s3):
    s3.create_bucket(Bucket="cond")
    etag = s3.put_object(Bucket="cond", Key="k", Body=b"v1")["ETag"]
    lm = s3.head_object(Bucket="cond", Key="k")["LastModified"]
    before, after = lm - datetime.timedelta(hours=1), lm + datetime.timedelta(hours=1)
    ok = [{"CopySourceIfMatch": etag}, {"CopySourceIfNoneMatch": '"00000000000000000000000000000000"'},
          {"CopySourceIfModifiedSince": before}, {"CopySourceIfUnmodifiedSince": after},
          # If-Match holds: If-Unmodified-Since is not looked at (S3's and RFC 9110's rule)
          {"CopySourceIfMatch": etag, "CopySourceIfUnmodifiedSince": before}]
    failing = [{"CopySourceIfMatch": '"00000000000000000000000000000000"'}, {"CopySourceIfNoneMatch": etag},
               {"CopySourceIfModifiedSince": after}, {"CopySourceIfUnmodifiedSince": before},
               # If-None-Match fails: 412 whatever If-Modified-Since says
               {"CopySourceIfNoneMatch": etag, "CopySourceIfModifiedSince": before}]
    for i, cond in enumerate(ok):
        s3.copy_object(Bucket="cond", Key="ok%d" % i, CopySource="cond/k", **cond)
        assert s3.get_object(Bucket="cond", Key="ok%d" % i)["Body"].read() == b"v1"
    for i, cond in enumerate(failing):
        with pytest.raises(ClientError) as e:
            s3.copy_object(Bucket="cond", Key="no%d" % i, CopySource="cond/k", **cond)
        assert code_of(e) == ("PreconditionFailed", 412), cond
        with pytest.raises(ClientError) as e:
            s3.head_object(Bucket="cond", Key="no%d" % i)
        assert code_of(e)[1] == 404


def test_copy_errors(s3srv, s3):
    s3.create_bucket(Bucket="err")
    s3.put_object(Bucket="err", Key="k", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket="err", Key="d", CopySource="err/missing")
    assert code_of(e) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket="err", Key="d", CopySource="nobucket/k")
    assert code_of(e) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket="nobucket", Key="d", CopySource="err/k")
    assert code_of(e) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket="err", Key="d", CopySource={"Bucket": "err", "Key": "k", "VersionId": "v1"})
    assert code_of(e) == ("NotImplemented", 501)
    for bad in ("err", "err/", "/", "", "err/%zz", "Bad_Bucket!/k", "err/k?other=1"):
        with pytest.raises(ClientError) as e:
            copy_with_headers(s3, {"x-amz-copy-source": bad}, Bucket="err", Key="d", CopySource="err/k")
        assert code_of(e) == ("InvalidArgument", 400), bad
    # nothing was written by any of them
    assert [o["key"] for o in s3srv.client().list("err").json()["objects"]] == ["k"]
def test_copy_larger_than_max_object_size(make_server):
    # a source stored before the limit was lowered: the copy is refused, nothing is written
    srv = make_server(config=s3_config())
    s3 = s3_client(srv)
    s3.create_bucket(Bucket="big")
    s3.put_object(Bucket="big", Key="k", Body=os.urandom(200000))
    srv.stop()
    srv.config_path.write_text(srv.config_path.read_text() + "server:\n  max_object_size: 100000\n")
    srv.start()
    s3 = s3_client(srv)
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket="big", Key="k2", CopySource="big/k")
    assert code_of(e) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="big", Key="k2")
    assert code_of(e)[1] == 404


def test_copy_many_at_once(s3):
    """Concurrent copies of several sources: each reads its own bytes off the loop."""
    from concurrent.futures import ThreadPoolExecutor
    s3.create_bucket(Bucket="par")
    srcs = {"s%d" % i: os.urandom(100000 + i) for i in range(6)}
    for k, v in srcs.items():
        s3.put_object(Bucket="par", Key=k, Body=v)

    def one(i):
        k = "s%d" % (i % 6)
        try:
            s3.copy_object(Bucket="par", Key="c%d" % i, CopySource="par/" + k)
            return k
        except ClientError as e:
            assert code_of(e) == ("SlowDown", 503)  # over the cap: refused, never half done
            return None

    with ThreadPoolExecutor(8) as ex:
        done = list(ex.map(one, range(24)))
    assert sum(1 for d in done if d) >= 6
    for i, k in enumerate(done):
        if k is not None:
            assert s3.get_object(Bucket="par", Key="c%d" % i)["Body"].read() == srcs[k]


def test_aws_cli_cp_and_mv(s3srv, s3, tmp_path):
    s3.create_bucket(Bucket="cli-a")
    s3.create_bucket(Bucket="cli-b")
    data = os.urandom(500000)  # under aws-cli's 8 MiB multipart threshold: one CopyObject
    s3.put_object(Bucket="cli-a", Key="x", Body=data, ContentType="application/x-test", Metadata={"who": "cli"})
    aws(s3srv, tmp_path / "home", "s3", "cp", "s3://cli-a/x", "s3://cli-b/y")
    g = s3.get_object(Bucket="cli-b", Key="y")
    assert g["Body"].read() == data and g["ContentType"] == "application/x-test" and g["Metadata"] == {"who": "cli"}
    aws(s3srv, tmp_path / "home", "s3", "mv", "s3://cli-b/y", "s3://cli-a/moved")
    assert s3.get_object(Bucket="cli-a", Key="moved")["Body"].read() == data
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="cli-b", Key="y")
    assert code_of(e)[1] == 404
    p = aws(s3srv, tmp_path / "home", "s3", "cp", "s3://cli-a/nothing", "s3://cli-b/z", check=False)
    assert p.returncode != 0 and b"404" in p.stderr


def test_copy_replicates(sites):
    a, b = sites(a_extra=SITE_CREDS, b_extra=SITE_CREDS)
    sa, sb = s3_client(a.storaged), s3_client(b.storaged)
    sa.create_bucket(Bucket="repl-src")
    sa.create_bucket(Bucket="repl-dst")
    data = os.urandom(200000)
    sa.put_object(Bucket="repl-src", Key="orig", Body=data, ContentType="text/x-orig", Metadata={"k": "v"})
    sa.copy_object(Bucket="repl-dst", Key="copied", CopySource="repl-src/orig")
    sa.copy_object(Bucket="repl-src", Key="orig", CopySource="repl-src/orig", MetadataDirective="REPLACE", ContentType="text/x-new",
                   Metadata={"k": "replaced"})
    assert wait_converged(a, b, timeout=60) == []
    assert comio_diff(a, b)[0] == []
    g = sb.get_object(Bucket="repl-dst", Key="copied")
    assert g["Body"].read() == data and g["ContentType"] == "text/x-orig" and g["Metadata"] == {"k": "v"}
    wait_until(lambda: sb.head_object(Bucket="repl-src", Key="orig")["Metadata"] == {"k": "replaced"}, 60,
               what="the in-place REPLACE on B")
    assert sb.head_object(Bucket="repl-src", Key="orig")["ContentType"] == "text/x-new"


def signed_copy_request(srv, bucket, key, source):
    """The bytes of a signed CopyObject request (HTTP/1.1, no body), for a raw socket."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from harness.s3clients import AK, REGION, SECRET
    host = "%s:%d" % (srv.host, srv.port)
    r = AWSRequest(method="PUT", url="http://%s/%s/%s" % (host, bucket, key),
                   headers={"x-amz-copy-source": source, "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "Host": host}, data=b"")
    S3SigV4Auth(Credentials(AK, SECRET), "s3", REGION).add_auth(r)
    lines = ["PUT /%s/%s HTTP/1.1" % (bucket, key)] + ["%s: %s" % (k, v) for k, v in r.headers.items()]
    return ("\r\n".join(lines + ["Content-Length: 0", "", ""])).encode()


def test_copy_client_gone(make_server):
    """Clients that send a copy of a large object and hang up at once: the server finishes or drops each copy, whole."""
    import socket
    srv = make_server(config=s3_config(), size="512MB")
    s3 = s3_client(srv)
    s3.create_bucket(Bucket="gone")
    data = os.urandom(24 * 1024 * 1024)
    s3.put_object(Bucket="gone", Key="src", Body=data)
    for i in range(8):
        with socket.create_connection((srv.host, srv.port), timeout=10) as sock:
            sock.sendall(signed_copy_request(srv, "gone", "dst%d" % i, "gone/src"))
    # the server still answers (503 SlowDown, which S3 clients retry, while the 8 copies still run: a slow build
    # takes seconds over them), and every copy that was made is whole
    def copied():
        try:
            s3.copy_object(Bucket="gone", Key="after", CopySource="gone/src")
            return True
        except ClientError as e:
            assert e.response["Error"]["Code"] == "SlowDown", e.response
            return False
    wait_until(copied, 60, interval=0.2, what="a copy once the hung-up ones are done")
    assert s3.get_object(Bucket="gone", Key="after")["Body"].read() == data
    for i in range(8):
        try:
            got = s3.get_object(Bucket="gone", Key="dst%d" % i)["Body"].read()
        except ClientError as e:
            assert e.response["Error"]["Code"] == "NoSuchKey"
            continue
        assert got == data


def test_copy_while_source_overwritten(s3):
    """Copies racing with overwrites of their source: each copy is one whole version, with that version's ETag."""
    import threading
    s3.create_bucket(Bucket="race")
    versions = [bytes([i]) * (512 * 1024) + os.urandom(64) for i in range(12)]
    s3.put_object(Bucket="race", Key="src", Body=versions[0])
    errors = []

    def overwrite():
        try:
            for v in versions[1:]:
                s3.put_object(Bucket="race", Key="src", Body=v)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t = threading.Thread(target=overwrite)
    t.start()
    etags = [s3.copy_object(Bucket="race", Key="c%d" % i, CopySource="race/src")["CopyObjectResult"]["ETag"]
             for i in range(12)]
    t.join(120)
    assert not t.is_alive() and errors == []
    by_md5 = {'"%s"' % hashlib.md5(v).hexdigest(): v for v in versions}
    for i, etag in enumerate(etags):
        assert etag in by_md5
        g = s3.get_object(Bucket="race", Key="c%d" % i)
        assert g["ETag"] == etag and g["Body"].read() == by_md5[etag]


def test_copy_of_multipart_object(s3):
    """A multipart upload's object as the source: its conditions see its multipart ETag; the copy is one PUT, whose
    ETag is the MD5 of the bytes."""
    s3.create_bucket(Bucket="mpsrc")
    try:
        up = s3.create_multipart_upload(Bucket="mpsrc", Key="big", ContentType="text/x-parts", Metadata={"p": "2"})
    except ClientError as e:
        if code_of(e) == ("NotImplemented", 501):
            pytest.skip("multipart upload is not implemented (POST ?uploads answers 501)")
        raise
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(1000)]
    etags = [s3.upload_part(Bucket="mpsrc", Key="big", UploadId=up["UploadId"], PartNumber=i + 1, Body=p)["ETag"]
             for i, p in enumerate(parts)]
    done = s3.complete_multipart_upload(Bucket="mpsrc", Key="big", UploadId=up["UploadId"], MultipartUpload={
        "Parts": [{"ETag": e, "PartNumber": i + 1} for i, e in enumerate(etags)]})
    mp_etag = done["ETag"]
    assert mp_etag.endswith('-2"')
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket="mpsrc", Key="c", CopySource="mpsrc/big",
                       CopySourceIfMatch='"%s"' % hashlib.md5(b"".join(parts)).hexdigest())
    assert code_of(e) == ("PreconditionFailed", 412)
    r = s3.copy_object(Bucket="mpsrc", Key="c", CopySource="mpsrc/big", CopySourceIfMatch=mp_etag)
    assert r["CopyObjectResult"]["ETag"] == '"%s"' % hashlib.md5(b"".join(parts)).hexdigest()
    g = s3.get_object(Bucket="mpsrc", Key="c")
    assert g["Body"].read() == b"".join(parts) and g["ContentType"] == "text/x-parts" and g["Metadata"] == {"p": "2"}
