"""test_s3_auth.py - AWS Signature Version 4 on storaged's S3 API: header and presigned signatures, signed and
unsigned payloads, aws-chunked uploads, and every refusal, each checked to change nothing.

Requests that an SDK would not send wrong are signed here by hand (sign() below, hashlib and hmac) and sent with
http.client; the rest go through boto3."""

import base64
import datetime
import hashlib
import hmac
import http.client
import os
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import zlib

import boto3
import pytest
from botocore.client import Config
from botocore.exceptions import ClientError

AK = "AKIDCOMIOAUTH"
SECRET = "auth/s3cr3t+KEY"
REGION = "us-east-1"
EMPTY_SHA = hashlib.sha256(b"").hexdigest()


def config(extra=""):
    return "s3:\n  credentials:\n    - access_key: %s\n      secret_key: %s\n%s" % (AK, SECRET, extra)


@pytest.fixture
def srv(make_server):
    return make_server(config=config("  domains: [s3.example.test]\n"))


def boto(srv, secret=SECRET, access_key=AK, region=REGION):
    return boto3.client("s3", endpoint_url="http://%s:%d" % (srv.host, srv.port), aws_access_key_id=access_key,
                        aws_secret_access_key=secret, region_name=region,
                        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4", retries={"max_attempts": 1}))


@pytest.fixture
def s3(srv):
    c = boto(srv)
    c.create_bucket(Bucket="auth-bucket")
    return c


def amz_now(offset_s=0):
    return (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset_s)).strftime("%Y%m%dT%H%M%SZ")


def q(s):
    return urllib.parse.quote(s, safe="-_.~")


def signing_key(secret, date, region):
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def string_to_sign(method, path, query, headers, signed, payload, amz_date, region):
    canon_query = "&".join(sorted("%s=%s" % (q(k), q(v)) for k, v in query))
    canon_headers = "".join("%s:%s\n" % (h, " ".join(headers[h].split())) for h in signed)
    canon = "\n".join([method, path, canon_query, canon_headers, ";".join(signed), payload])
    scope = "%s/%s/s3/aws4_request" % (amz_date[:8], region)
    return scope, "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canon.encode()).hexdigest()])


def sign(srv, method, path, body=b"", payload=None, headers=None, query=(), secret=SECRET, access_key=AK, region=REGION,
         amz_date=None, host=None):
    """Headers (lower-case names) of a request signed in the Authorization header; the signature in ["_sig"]."""
    amz_date = amz_date or amz_now()
    h = {k.lower(): v for k, v in (headers or {}).items()}
    h["host"] = host or "%s:%d" % (srv.host, srv.port)
    h["x-amz-date"] = amz_date
    h["x-amz-content-sha256"] = payload or hashlib.sha256(body).hexdigest()
    signed = sorted(h)
    scope, sts = string_to_sign(method, path, query, h, signed, h["x-amz-content-sha256"], amz_date, region)
    key = signing_key(secret, amz_date[:8], region)
    sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    h["authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        access_key, scope, ";".join(signed), sig)
    h["_sig"], h["_key"], h["_scope"] = sig, key, scope
    return h


def presign(srv, method, path, expires=300, amz_date=None, secret=SECRET, region=REGION):
    amz_date = amz_date or amz_now()
    scope = "%s/%s/s3/aws4_request" % (amz_date[:8], region)
    query = [("X-Amz-Algorithm", "AWS4-HMAC-SHA256"), ("X-Amz-Credential", "%s/%s" % (AK, scope)), ("X-Amz-Date", amz_date),
             ("X-Amz-Expires", str(expires)), ("X-Amz-SignedHeaders", "host")]
    h = {"host": "%s:%d" % (srv.host, srv.port)}
    _, sts = string_to_sign(method, path, query, h, ["host"], "UNSIGNED-PAYLOAD", amz_date, region)
    sig = hmac.new(signing_key(secret, amz_date[:8], region), sts.encode(), hashlib.sha256).hexdigest()
    qs = "&".join("%s=%s" % (q(k), q(v)) for k, v in query + [("X-Amz-Signature", sig)])
    return "http://%s:%d%s?%s" % (srv.host, srv.port, path, qs)


def send(srv, method, path, headers, body=b"", query=()):
    target = path + ("?" + "&".join("%s=%s" % (q(k), q(v)) for k, v in query) if query else "")
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=30)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for k, v in headers.items():
            if not k.startswith("_"):
                conn.putheader(k, v)
        if "content-length" not in headers:
            conn.putheader("content-length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def error_code(body):
    text = body.decode()
    return text.split("<Code>")[1].split("</Code>")[0] if "<Code>" in text else None


def stored(srv, key, bucket="auth-bucket"):
    """The object's bytes through the native API, None when absent."""
    r = srv.client().get(bucket, key)
    return r.body if r.status == 200 else None


# ---- good signatures ----

def test_header_auth_put_get(srv, s3):
    h = sign(srv, "PUT", "/auth-bucket/hand%20made", b"by hand", headers={"content-type": "text/x-hand"})
    status, headers, body = send(srv, "PUT", "/auth-bucket/hand%20made", h, b"by hand")
    assert status == 200, body
    assert headers["etag"] == '"%s"' % hashlib.md5(b"by hand").hexdigest()
    assert stored(srv, "hand made") == b"by hand"
    h = sign(srv, "GET", "/auth-bucket/hand%20made")
    status, headers, body = send(srv, "GET", "/auth-bucket/hand%20made", h)
    assert (status, body, headers["content-type"]) == (200, b"by hand", "text/x-hand")
    # a signed query, parameters in any order
    h = sign(srv, "GET", "/auth-bucket", query=[("location", "")])
    status, _, body = send(srv, "GET", "/auth-bucket", h, query=[("location", "")])
    assert status == 200 and b"LocationConstraint" in body


def test_signature_v2_refused(srv, s3):
    """An older SDK's Signature Version 2 is told S3 and refused, never taken for the native API."""
    v2 = boto3.client("s3", endpoint_url="http://%s:%d" % (srv.host, srv.port), aws_access_key_id=AK,
                      aws_secret_access_key=SECRET, region_name=REGION,
                      config=Config(s3={"addressing_style": "path"}, signature_version="s3"))
    url = v2.generate_presigned_url("put_object", Params={"Bucket": "auth-bucket", "Key": "v2"}, ExpiresIn=300)
    assert "AWSAccessKeyId=" in url
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(url, data=b"v2", method="PUT"), timeout=30)
    assert e.value.code == 400 and error_code(e.value.read()) == "InvalidRequest"
    with pytest.raises(ClientError) as e:
        v2.put_object(Bucket="auth-bucket", Key="v2", Body=b"v2")
    assert e.value.response["Error"]["Code"] == "InvalidRequest"
    assert stored(srv, "v2") is None


def test_unsigned_payload(srv, s3):
    h = sign(srv, "PUT", "/auth-bucket/unsigned", payload="UNSIGNED-PAYLOAD")
    status, _, body = send(srv, "PUT", "/auth-bucket/unsigned", h, b"whatever bytes")
    assert status == 200, body
    assert stored(srv, "unsigned") == b"whatever bytes"


def test_presigned_get_put(srv, s3):
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": "auth-bucket", "Key": "pre/signed"}, ExpiresIn=300)
    req = urllib.request.Request(put_url, data=b"presigned body", method="PUT")
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": "auth-bucket", "Key": "pre/signed"}, ExpiresIn=300)
    with urllib.request.urlopen(get_url, timeout=30) as r:
        assert r.read() == b"presigned body"
    # signed by hand, the same
    with urllib.request.urlopen(presign(srv, "GET", "/auth-bucket/pre/signed"), timeout=30) as r:
        assert r.read() == b"presigned body"
    # a presigned GET is not a PUT
    req = urllib.request.Request(get_url, data=b"other", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == 403 and error_code(e.value.read()) == "SignatureDoesNotMatch"
    assert stored(srv, "pre/signed") == b"presigned body"


def chunked_body(data, chunk, sign_key=None, seed=None, scope=None, amz_date=None, trailer=None, bad_chunk=None):
    """An aws-chunked body of data in pieces of `chunk` bytes; signed when sign_key is given (chained on seed).
    trailer: (name, value) sent after the last chunk (signed with x-amz-trailer-signature when signing)."""
    out, prev = [], seed
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] + [b""]
    for i, p in enumerate(pieces):
        if sign_key is None:
            out.append(b"%x\r\n" % len(p))
        else:
            sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, EMPTY_SHA, hashlib.sha256(p).hexdigest()])
            prev = hmac.new(sign_key, sts.encode(), hashlib.sha256).hexdigest()
            sig = ("0" * 64) if i == bad_chunk else prev
            out.append(b"%x;chunk-signature=%s\r\n" % (len(p), sig.encode()))
        if p:
            out.append(p + b"\r\n")
    if trailer is not None:
        line = "%s:%s" % trailer
        out.append(line.encode() + b"\r\n")
        if sign_key is not None:
            sts = "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, prev,
                             hashlib.sha256((line + "\n").encode()).hexdigest()])
            out.append(b"x-amz-trailer-signature:%s\r\n" % hmac.new(sign_key, sts.encode(), hashlib.sha256).hexdigest().encode())
    out.append(b"\r\n")
    return b"".join(out)


def crc32_b64(data):
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def put_chunked(srv, key, data, mode, chunk=65536, bad_chunk=None, decoded_len=None, trailer=True):
    amz_date = amz_now()
    path = "/auth-bucket/" + key
    extra = {"content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data) if decoded_len is None else decoded_len)}
    if mode != "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" and trailer:
        extra["x-amz-trailer"] = "x-amz-checksum-crc32"
    signing = mode.startswith("STREAMING-AWS4-HMAC-SHA256")
    tr = ("x-amz-checksum-crc32", crc32_b64(data)) if "TRAILER" in mode and trailer else None
    # the Content-Length is signed: the body's size must be known first, and does not depend on signature values
    size = len(chunked_body(data, chunk, b"k" if signing else None, "0" * 64, "s", amz_date, tr))
    extra["content-length"] = str(size)
    h = sign(srv, "PUT", path, payload=mode, headers=extra, amz_date=amz_date)
    body = chunked_body(data, chunk, h["_key"] if signing else None, h["_sig"], h["_scope"], amz_date, tr, bad_chunk)
    assert len(body) == size
    return send(srv, "PUT", path, h, body)


@pytest.mark.parametrize("mode", ["STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
                                  "STREAMING-UNSIGNED-PAYLOAD-TRAILER"])
def test_chunked_upload(srv, s3, mode):
    data = os.urandom(150000)
    status, headers, body = put_chunked(srv, "chunked", data, mode)
    assert status == 200, body
    assert headers["etag"] == '"%s"' % hashlib.md5(data).hexdigest()
    # no framing in what is stored
    assert stored(srv, "chunked") == data
    assert s3.get_object(Bucket="auth-bucket", Key="chunked")["Body"].read() == data
    # an empty object in the same framing
    status, _, body = put_chunked(srv, "chunked-empty", b"", mode)
    assert status == 200, body
    assert stored(srv, "chunked-empty") == b""


@pytest.mark.parametrize("mode", ["STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"])
def test_chunked_bad_signature_changes_nothing(srv, s3, mode):
    old = b"the old bytes"
    s3.put_object(Bucket="auth-bucket", Key="victim", Body=old)
    for bad in (0, 1, 3):  # the first, a middle and the final (empty) chunk
        status, _, body = put_chunked(srv, "victim", os.urandom(140000), mode, bad_chunk=bad)
        assert status == 403 and error_code(body) == "SignatureDoesNotMatch", body
        assert stored(srv, "victim") == old
    # a size that is not the data's
    status, _, body = put_chunked(srv, "victim", b"x" * 1000, mode, decoded_len=999)
    assert status == 400 and error_code(body) == "IncompleteBody", body
    assert stored(srv, "victim") == old


def test_chunked_truncated(srv, s3):
    amz_date = amz_now()
    data = b"y" * 5000
    h = sign(srv, "PUT", "/auth-bucket/cut", payload="STREAMING-AWS4-HMAC-SHA256-PAYLOAD", amz_date=amz_date,
             headers={"content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data))})
    body = chunked_body(data, 4096, h["_key"], h["_sig"], h["_scope"], amz_date)
    status, _, rbody = send(srv, "PUT", "/auth-bucket/cut", h, body[:len(body) - 80])
    assert status == 400 and error_code(rbody) == "IncompleteBody", rbody
    assert stored(srv, "cut") is None


def test_chunked_without_decoded_length(srv, s3):
    amz_date = amz_now()
    data = b"z" * 100
    for extra in ({}, {"x-amz-decoded-content-length": "1e2"}):
        h = sign(srv, "PUT", "/auth-bucket/nolen", payload="STREAMING-AWS4-HMAC-SHA256-PAYLOAD", amz_date=amz_date,
                 headers=dict({"content-encoding": "aws-chunked"}, **extra))
        body = chunked_body(data, 64, h["_key"], h["_sig"], h["_scope"], amz_date)
        status, _, rbody = send(srv, "PUT", "/auth-bucket/nolen", h, body)
        assert status == 411 and error_code(rbody) == "MissingContentLength", rbody
    assert stored(srv, "nolen") is None


def test_payload_hash_mismatch(srv, s3):
    h = sign(srv, "PUT", "/auth-bucket/hash", b"signed bytes")
    status, _, body = send(srv, "PUT", "/auth-bucket/hash", h, b"other bytes!")
    assert status == 400 and error_code(body) == "XAmzContentSHA256Mismatch", body
    assert stored(srv, "hash") is None


# ---- refusals ----

def test_wrong_secret(srv, s3):
    bad = boto(srv, secret="not-the-secret")
    with pytest.raises(ClientError) as e:
        bad.put_object(Bucket="auth-bucket", Key="k", Body=b"x")
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert stored(srv, "k") is None


def test_unknown_key(srv, s3):
    bad = boto(srv, access_key="AKIDNOBODY")
    with pytest.raises(ClientError) as e:
        bad.put_object(Bucket="auth-bucket", Key="k", Body=b"x")
    assert e.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert stored(srv, "k") is None


def test_changed_header_after_signing(srv, s3):
    s3.put_object(Bucket="auth-bucket", Key="k", Body=b"old")
    h = sign(srv, "PUT", "/auth-bucket/k", b"new", headers={"content-type": "text/plain"})
    h["content-type"] = "text/html"
    status, _, body = send(srv, "PUT", "/auth-bucket/k", h, b"new")
    assert status == 403 and error_code(body) == "SignatureDoesNotMatch", body
    # an x-amz-* header added after signing
    h = sign(srv, "PUT", "/auth-bucket/k", b"new")
    h["x-amz-meta-added"] = "1"
    status, _, body = send(srv, "PUT", "/auth-bucket/k", h, b"new")
    assert status == 403 and error_code(body) == "AccessDenied", body
    # another path than the one signed
    h = sign(srv, "PUT", "/auth-bucket/k", b"new")
    status, _, body = send(srv, "PUT", "/auth-bucket/k2", h, b"new")
    assert status == 403 and error_code(body) == "SignatureDoesNotMatch", body
    assert stored(srv, "k") == b"old" and stored(srv, "k2") is None


def test_expired_presign(srv, s3):
    s3.put_object(Bucket="auth-bucket", Key="k", Body=b"old")
    url = presign(srv, "GET", "/auth-bucket/k", expires=60, amz_date=amz_now(-600))
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url, timeout=30)
    body = e.value.read()
    assert e.value.code == 403 and error_code(body) == "AccessDenied" and b"Request has expired" in body
    url = presign(srv, "PUT", "/auth-bucket/k", expires=60, amz_date=amz_now(-600))
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(url, data=b"new", method="PUT"), timeout=30)
    assert e.value.code == 403
    assert stored(srv, "k") == b"old"
    # X-Amz-Expires over a week
    url = presign(srv, "GET", "/auth-bucket/k", expires=604801)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url, timeout=30)
    assert e.value.code == 400 and error_code(e.value.read()) == "AuthorizationQueryParametersError"


def test_wrong_region(srv, s3):
    bad = boto(srv, region="eu-west-1")
    with pytest.raises(ClientError) as e:
        bad.put_object(Bucket="auth-bucket", Key="k", Body=b"x")
    err = e.value.response["Error"]
    assert err["Code"] == "AuthorizationHeaderMalformed"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "us-east-1" in err["Message"] and "eu-west-1" in err["Message"]
    assert stored(srv, "k") is None


def test_skewed_clock(srv, s3):
    for offset in (-1200, 1200):
        h = sign(srv, "PUT", "/auth-bucket/skew", b"x", amz_date=amz_now(offset))
        status, _, body = send(srv, "PUT", "/auth-bucket/skew", h, b"x")
        assert status == 403 and error_code(body) == "RequestTimeTooSkewed", body
    assert stored(srv, "skew") is None
    # within 15 minutes is fine
    h = sign(srv, "PUT", "/auth-bucket/skew", b"x", amz_date=amz_now(-600))
    assert send(srv, "PUT", "/auth-bucket/skew", h, b"x")[0] == 200


def test_missing_content_sha256(srv, s3):
    h = sign(srv, "PUT", "/auth-bucket/k", b"x")
    del h["x-amz-content-sha256"]
    status, _, body = send(srv, "PUT", "/auth-bucket/k", h, b"x")
    assert status == 400 and error_code(body) == "MissingSecurityHeader", body
    assert stored(srv, "k") is None


def test_presigned_over_http2(srv, s3):
    """HTTP/2 has no Host header: the :authority is what was signed as host."""
    s3.put_object(Bucket="auth-bucket", Key="h2", Body=b"over h2")
    url = presign(srv, "GET", "/auth-bucket/h2")
    p = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-o", "-", "-w", "\n%{http_version} %{http_code}", url],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    body, _, status = p.stdout.rpartition(b"\n")
    assert status == b"2 200" and body == b"over h2"
    url = presign(srv, "GET", "/auth-bucket/h2", secret="wrong")
    p = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-o", "-", "-w", "\n%{http_code}", url],
                       capture_output=True, timeout=60)
    body, _, status = p.stdout.rpartition(b"\n")
    assert status == b"403" and error_code(body) == "SignatureDoesNotMatch"


def test_virtual_hosted_style(srv, s3):
    host = "auth-bucket.s3.example.test:%d" % srv.port
    h = sign(srv, "PUT", "/v/key", b"virtual", host=host)
    status, _, body = send(srv, "PUT", "/v/key", h, b"virtual")
    assert status == 200, body
    assert stored(srv, "v/key") == b"virtual"
    h = sign(srv, "GET", "/v/key", host=host)
    assert send(srv, "GET", "/v/key", h)[2] == b"virtual"
    # the domain itself is path style
    h = sign(srv, "GET", "/auth-bucket/v/key", host="s3.example.test:%d" % srv.port)
    assert send(srv, "GET", "/auth-bucket/v/key", h)[2] == b"virtual"


def test_s3_off_without_credentials(make_server):
    srv = make_server()
    c = boto(srv)
    with pytest.raises(ClientError) as e:
        c.create_bucket(Bucket="nothing")
    assert e.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    # the native API as before
    n = srv.client()
    assert n.put("native", "k", b"v").status == 200
    assert n.get("native", "k").body == b"v"
    assert n.get("nothing", "k").status == 404


def test_native_api_unchanged_beside_s3(make_server):
    srv = make_server(config=config() + "server:\n  access_token: native-token\n")
    n = srv.client()
    r = n.put("mixed", "k", b"v")
    assert r.status == 401 and r.json()["code"] == "Unauthorized"
    assert srv.client(token="native-token").put("mixed", "k", b"v").status == 200
    c = boto(srv)
    c.create_bucket(Bucket="mixed2")
    c.put_object(Bucket="mixed2", Key="k", Body=b"s3")
    assert n.get("mixed2", "k").body == b"s3"
    r = n.get("mixed2", "nope")
    assert r.status == 404 and r.json()["code"] == "NoSuchKey"
