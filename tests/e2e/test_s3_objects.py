"""test_s3_objects.py - S3's bucket and object operations on storaged's port, through boto3 and aws-cli."""

import os
import shutil
import subprocess

import boto3
import pytest
from botocore.client import Config
from botocore.exceptions import ClientError

from harness.comio import md5
from harness.replication import comio_diff, wait_converged, wait_until

AK = "AKIDCOMIOTEST"
SECRET = "s3cr3t/KEY+with/slashes"


def s3_config(extra=""):
    return ("s3:\n  region: us-east-1\n  credentials:\n    - access_key: %s\n      secret_key: %s\n" % (AK, SECRET)) + extra


def s3_client(srv, secret=SECRET, access_key=AK, region="us-east-1"):
    return boto3.client("s3", endpoint_url="http://%s:%d" % (srv.host, srv.port), aws_access_key_id=access_key,
                        aws_secret_access_key=secret, region_name=region,
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                      connect_timeout=10, read_timeout=30))


@pytest.fixture
def s3srv(make_server):
    return make_server(config=s3_config())


@pytest.fixture
def s3(s3srv):
    return s3_client(s3srv)


def put_with_headers(s3, headers, **kwargs):
    """put_object with extra request headers (signed), for those this botocore does not model (If-None-Match)."""
    def add(request, **_):
        for k, v in headers.items():
            request.headers[k] = v
    s3.meta.events.register_first("before-sign.s3.PutObject", add, unique_id="extra-headers")
    try:
        return s3.put_object(**kwargs)
    finally:
        s3.meta.events.unregister("before-sign.s3.PutObject", unique_id="extra-headers")


def code_of(excinfo):
    return excinfo.value.response["Error"]["Code"], excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_buckets(s3):
    s3.create_bucket(Bucket="alpha")
    s3.create_bucket(Bucket="beta", CreateBucketConfiguration={"LocationConstraint": "us-east-1"})
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert names == ["alpha", "beta"]
    assert s3.list_buckets()["Owner"]["ID"]
    s3.head_bucket(Bucket="alpha")
    assert s3.get_bucket_location(Bucket="alpha")["LocationConstraint"] is None
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket="alpha")
    assert code_of(e) == ("BucketAlreadyOwnedByYou", 409)
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket="gamma", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert code_of(e) == ("IllegalLocationConstraintException", 400)
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket="gamma")
    assert code_of(e)[1] == 404
    with pytest.raises(ClientError) as e:
        s3.get_bucket_location(Bucket="gamma")
    assert code_of(e) == ("NoSuchBucket", 404)
    s3.put_object(Bucket="alpha", Key="k", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket="alpha")
    assert code_of(e) == ("BucketNotEmpty", 409)
    s3.delete_object(Bucket="alpha", Key="k")
    s3.delete_bucket(Bucket="alpha")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket="alpha")
    assert code_of(e) == ("NoSuchBucket", 404)
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["beta"]


def create_with_body(s3, bucket, body):
    """CreateBucket with a hand-made body, signed as sent."""
    def swap(request, **_):
        request.data = body
        request.headers["Content-Length"] = str(len(body))
    s3.meta.events.register_first("before-sign.s3.CreateBucket", swap, unique_id="swap-body")
    try:
        return s3.create_bucket(Bucket=bucket)
    finally:
        s3.meta.events.unregister("before-sign.s3.CreateBucket", unique_id="swap-body")


def test_create_bucket_configuration(s3):
    ns = b' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
    create_with_body(s3, "conf-ok", b"<CreateBucketConfiguration" + ns + b"><LocationConstraint>us-east-1"
                     b"</LocationConstraint></CreateBucketConfiguration>")
    create_with_body(s3, "conf-empty", b"<CreateBucketConfiguration" + ns + b"/>")
    create_with_body(s3, "conf-prefixed", b'<s3:CreateBucketConfiguration xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/">'
                     b"<s3:LocationConstraint> us-east-1 </s3:LocationConstraint></s3:CreateBucketConfiguration>")
    for name, body, code in (
            ("conf-other", b"<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint>"
             b"</CreateBucketConfiguration>", "IllegalLocationConstraintException"),
            ("conf-prefixed-other", b'<a:CreateBucketConfiguration xmlns:a="http://s3.amazonaws.com/doc/2006-03-01/">'
             b"<a:LocationConstraint>ap-south-1</a:LocationConstraint></a:CreateBucketConfiguration>",
             "IllegalLocationConstraintException"),
            ("conf-foreign-namespace", b'<a:CreateBucketConfiguration xmlns:a="x"><a:LocationConstraint>us-east-1'
             b"</a:LocationConstraint></a:CreateBucketConfiguration>", "MalformedXML"),
            ("conf-broken", b"<CreateBucketConfiguration><LocationConstraint>", "MalformedXML"),
            ("conf-wrong-root", b"<Delete><Object><Key>k</Key></Object></Delete>", "MalformedXML"),
            ("conf-not-xml", b"us-east-1", "MalformedXML"),
            ("conf-doctype", b'<!DOCTYPE c [<!ENTITY r "us-east-1">]><CreateBucketConfiguration><LocationConstraint>&r;'
             b"</LocationConstraint></CreateBucketConfiguration>", "MalformedXML")):
        with pytest.raises(ClientError) as e:
            create_with_body(s3, name, body)
        assert code_of(e) == (code, 400), name
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert names == ["conf-empty", "conf-ok", "conf-prefixed"]


def test_request_ids_name_one_request(s3):
    """Every reply's x-amz-request-id is its own (16 hex digits), and an error body's RequestId is its header's."""
    s3.create_bucket(Bucket="rid")
    ids = [s3.head_bucket(Bucket="rid")["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"] for _ in range(50)]
    assert len(set(ids)) == 50, ids
    assert all(len(i) == 16 and all(c in "0123456789ABCDEF" for c in i) for i in ids), ids
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="rid", Key="missing")
    meta = e.value.response["ResponseMetadata"]
    assert code_of(e) == ("NoSuchKey", 404)
    assert meta["RequestId"] == meta["HTTPHeaders"]["x-amz-request-id"] and meta["RequestId"] not in ids


def test_reserved_and_invalid_bucket_names(s3):
    for name in ("admin", "metrics"):
        with pytest.raises(ClientError) as e:
            s3.create_bucket(Bucket=name)
        assert code_of(e) == ("InvalidBucketName", 400)
    assert s3.list_buckets()["Buckets"] == []


def test_put_get_head_delete(s3, s3srv):
    s3.create_bucket(Bucket="bkt1")
    data = os.urandom(200000)
    r = s3.put_object(Bucket="bkt1", Key="dir/obj one+%.bin", Body=data, ContentType="application/x-test")
    assert r["ETag"] == '"%s"' % md5(data)
    g = s3.get_object(Bucket="bkt1", Key="dir/obj one+%.bin")
    assert g["Body"].read() == data
    assert g["ContentType"] == "application/x-test"
    assert g["ETag"] == '"%s"' % md5(data)
    assert g["ContentLength"] == len(data)
    assert g["ResponseMetadata"]["HTTPHeaders"].get("x-amz-request-id")
    h = s3.head_object(Bucket="bkt1", Key="dir/obj one+%.bin")
    assert h["ContentLength"] == len(data) and h["ETag"] == g["ETag"]
    assert h["LastModified"] == g["LastModified"]
    # the native API reads what S3 wrote
    n = s3srv.client().get("bkt1", "dir/obj one+%.bin")
    assert n.status == 200 and n.body == data
    # Range
    r = s3.get_object(Bucket="bkt1", Key="dir/obj one+%.bin", Range="bytes=10-19")
    assert r["Body"].read() == data[10:20] and r["ContentRange"] == "bytes 10-19/%d" % len(data)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="bkt1", Key="dir/obj one+%.bin", Range="bytes=%d-" % (len(data) + 5))
    assert code_of(e) == ("InvalidRange", 416)
    # missing key, missing bucket
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="bkt1", Key="nope")
    assert code_of(e) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="nobkt", Key="nope")
    assert code_of(e) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="nobkt", Key="k", Body=b"x")
    assert code_of(e) == ("NoSuchBucket", 404)
    assert s3srv.client().get("nobkt", "k").status == 404
    # delete, and delete of a missing key
    s3.delete_object(Bucket="bkt1", Key="dir/obj one+%.bin")
    s3.delete_object(Bucket="bkt1", Key="dir/obj one+%.bin")
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="bkt1", Key="dir/obj one+%.bin")
    assert code_of(e)[1] == 404


def test_conditionals(s3):
    s3.create_bucket(Bucket="cond")
    etag = s3.put_object(Bucket="cond", Key="k", Body=b"first")["ETag"]
    # If-None-Match: * creates only
    with pytest.raises(ClientError) as e:
        put_with_headers(s3, {"If-None-Match": "*"}, Bucket="cond", Key="k", Body=b"second")
    assert code_of(e) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket="cond", Key="k")["Body"].read() == b"first"
    put_with_headers(s3, {"If-None-Match": "*"}, Bucket="cond", Key="new", Body=b"n")
    assert s3.get_object(Bucket="cond", Key="new")["Body"].read() == b"n"
    g = s3.get_object(Bucket="cond", Key="k", IfMatch=etag)
    assert g["Body"].read() == b"first"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="cond", Key="k", IfMatch='"0000"')
    assert code_of(e) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="cond", Key="k", IfNoneMatch=etag)
    assert code_of(e)[1] == 304
    lm = g["LastModified"]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="cond", Key="k", IfModifiedSince=lm)
    assert code_of(e)[1] == 304
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="cond", Key="k", IfUnmodifiedSince=lm.replace(year=2000))
    assert code_of(e) == ("PreconditionFailed", 412)


def test_response_overrides(s3):
    s3.create_bucket(Bucket="ovr")
    s3.put_object(Bucket="ovr", Key="k", Body=b"abc", ContentType="text/plain")
    g = s3.get_object(Bucket="ovr", Key="k", ResponseContentType="image/png", ResponseContentDisposition="attachment; x=1",
                      ResponseCacheControl="no-cache", ResponseContentLanguage="de", ResponseExpires="Thu, 01 Dec 1994 16:00:00 GMT",
                      ResponseContentEncoding="identity")
    assert g["ContentType"] == "image/png"
    assert g["ContentDisposition"] == "attachment; x=1"
    assert g["CacheControl"] == "no-cache"
    assert g["ContentLanguage"] == "de"
    assert g["ContentEncoding"] == "identity"
    assert g["Body"].read() == b"abc"


def test_not_implemented(s3):
    s3.create_bucket(Bucket="nibkt")
    s3.put_object(Bucket="nibkt", Key="k", Body=b"abc")
    for call in (lambda: s3.put_bucket_acl(Bucket="nibkt", ACL="public-read"),
                 lambda: s3.put_bucket_versioning(Bucket="nibkt", VersioningConfiguration={"Status": "Enabled"}),
                 lambda: s3.get_object_tagging(Bucket="nibkt", Key="k"),
                 lambda: s3.copy_object(Bucket="nibkt", Key="k2", CopySource={"Bucket": "nibkt", "Key": "k", "VersionId": "1"}),
                 lambda: s3.put_bucket_tagging(Bucket="nibkt", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})):
        with pytest.raises(ClientError) as e:
            call()
        assert code_of(e) == ("NotImplemented", 501)
    # nothing was made by them
    with pytest.raises(ClientError):
        s3.head_object(Bucket="nibkt", Key="k2")


# ---- aws-cli ----

def aws_cli():
    """Debian's aws-cli (package awscli), else the first aws on PATH."""
    exe = "/usr/bin/aws" if os.path.exists("/usr/bin/aws") else shutil.which("aws")
    if exe is None:
        pytest.fail("aws-cli is not installed (apt-get install awscli)")
    return exe


def aws(srv, tmp_path, *args, check=True, input_data=None):
    """Runs aws with the endpoint, credentials from the environment and a config file of its own (never ~/.aws)."""
    cfg = tmp_path / "aws-config"
    cfg.write_text("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": AK, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_CONFIG_FILE": str(cfg), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_PAGER": "", "AWS_MAX_ATTEMPTS": "1",
                "HOME": str(tmp_path)})
    p = subprocess.run([aws_cli(), "--endpoint-url", "http://%s:%d" % (srv.host, srv.port)] + list(args),
                       capture_output=True, env=env, timeout=120, input=input_data)
    if check:
        assert p.returncode == 0, (args, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))
    return p


def test_aws_cli(s3srv, tmp_path):
    aws(s3srv, tmp_path, "s3api", "create-bucket", "--bucket", "cli-bucket")
    assert "cli-bucket" in aws(s3srv, tmp_path, "s3", "ls").stdout.decode()
    src = tmp_path / "up.bin"
    data = os.urandom(300000)
    src.write_bytes(data)
    aws(s3srv, tmp_path, "s3", "cp", str(src), "s3://cli-bucket/dir/up.bin")
    assert s3srv.client().get("cli-bucket", "dir/up.bin").body == data
    dst = tmp_path / "down.bin"
    aws(s3srv, tmp_path, "s3", "cp", "s3://cli-bucket/dir/up.bin", str(dst))
    assert dst.read_bytes() == data
    out = aws(s3srv, tmp_path, "s3api", "head-object", "--bucket", "cli-bucket", "--key", "dir/up.bin").stdout.decode()
    assert md5(data) in out and str(len(data)) in out
    aws(s3srv, tmp_path, "s3api", "put-object", "--bucket", "cli-bucket", "--key", "typed", "--body", str(src),
        "--content-type", "application/x-cli")
    out = aws(s3srv, tmp_path, "s3api", "get-object", "--bucket", "cli-bucket", "--key", "typed", str(dst)).stdout.decode()
    assert "application/x-cli" in out and dst.read_bytes() == data
    p = aws(s3srv, tmp_path, "s3api", "get-object", "--bucket", "cli-bucket", "--key", "missing", str(dst), check=False)
    assert p.returncode != 0 and b"NoSuchKey" in p.stderr
    aws(s3srv, tmp_path, "s3", "rm", "s3://cli-bucket/dir/up.bin")
    assert s3srv.client().get("cli-bucket", "dir/up.bin").status == 404
    aws(s3srv, tmp_path, "s3api", "delete-object", "--bucket", "cli-bucket", "--key", "typed")
    aws(s3srv, tmp_path, "s3api", "delete-bucket", "--bucket", "cli-bucket")
    assert "cli-bucket" not in aws(s3srv, tmp_path, "s3", "ls").stdout.decode()


# ---- replication ----

def test_metadata(s3):
    """PutObject's representation headers and user metadata are stored and returned; a response-* override
    replaces the stored header rather than adding a second one."""
    s3.create_bucket(Bucket="meta")
    s3.put_object(Bucket="meta", Key="k", Body=b"abc", ContentType="text/plain", ContentDisposition="inline",
                  CacheControl="max-age=60", ContentLanguage="fr", ContentEncoding="identity",
                  Metadata={"Owner": "alice", "mtime": "1700000000"})
    for r in (s3.head_object(Bucket="meta", Key="k"), s3.get_object(Bucket="meta", Key="k")):
        assert r["ContentType"] == "text/plain"
        assert r["ContentDisposition"] == "inline" and r["CacheControl"] == "max-age=60"
        assert r["ContentLanguage"] == "fr" and r["ContentEncoding"] == "identity"
        assert r["Metadata"] == {"owner": "alice", "mtime": "1700000000"}
    g = s3.get_object(Bucket="meta", Key="k", ResponseCacheControl="no-store")
    assert g["CacheControl"] == "no-store"
    raw = g["ResponseMetadata"]["HTTPHeaders"]
    assert raw["cache-control"] == "no-store"  # one header, not "max-age=60, no-store"
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="meta", Key="big", Body=b"x", Metadata={"m": "v" * 2100})
    assert code_of(e) == ("MetadataTooLarge", 400)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="meta", Key="big")
    assert code_of(e)[1] == 404


def test_s3_writes_replicate(sites):
    creds = {"s3": {"credentials": [{"access_key": AK, "secret_key": SECRET}]}}
    a, b = sites(a_extra=creds, b_extra=creds)
    sa, sb = s3_client(a.storaged), s3_client(b.storaged)
    sa.create_bucket(Bucket="repl-bucket")
    data = os.urandom(100000)
    sa.put_object(Bucket="repl-bucket", Key="from/s3", Body=data, ContentType="text/x-repl", Metadata={"k": "v"},
                  ContentDisposition="attachment")
    sa.put_object(Bucket="repl-bucket", Key="gone", Body=b"soon deleted")
    sa.delete_object(Bucket="repl-bucket", Key="gone")
    assert wait_converged(a, b, timeout=60) == []
    assert comio_diff(a, b)[0] == []
    # on B: through S3 and through the native API
    g = sb.get_object(Bucket="repl-bucket", Key="from/s3")
    assert g["Body"].read() == data and g["ContentType"] == "text/x-repl"
    assert g["Metadata"] == {"k": "v"} and g["ContentDisposition"] == "attachment"
    assert b.client().get("repl-bucket", "from/s3").body == data
    assert b.client().get("repl-bucket", "gone").status == 404
    # a deleted bucket is deleted there too
    sa.delete_object(Bucket="repl-bucket", Key="from/s3")
    sa.delete_bucket(Bucket="repl-bucket")
    wait_until(lambda: "repl-bucket" not in [x["Name"] for x in sb.list_buckets()["Buckets"]], 60, what="bucket deletion on B")
