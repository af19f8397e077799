"""test_s3_multidel.py - S3's DeleteObjects (POST /{bucket}?delete) on storaged's port, through boto3.

What a site holds is read back through the native listing (an oracle apart from the S3 code under test).
"""

import base64
import hashlib
import socket

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.client import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from harness.comio import put_keys
from harness.replication import comio_diff, converge_or_fail, snapshot, wait_until

AK = "AKIDMULTIDEL"
SECRET = "multi/del+secret"
S3_SECTION = {"region": "us-east-1", "credentials": [{"access_key": AK, "secret_key": SECRET}]}


def s3_config():
    return "s3:\n  region: us-east-1\n  credentials:\n    - access_key: %s\n      secret_key: %s\n" % (AK, SECRET)


def s3_client(host, port):
    return boto3.client("s3", endpoint_url="http://%s:%d" % (host, port), aws_access_key_id=AK,
                        aws_secret_access_key=SECRET, region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                      connect_timeout=10, read_timeout=120))


@pytest.fixture
def s3srv(make_server):
    return make_server(config=s3_config())


@pytest.fixture
def s3(s3srv):
    return s3_client(s3srv.host, s3srv.port)


def code_of(excinfo):
    return excinfo.value.response["Error"]["Code"], excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


def keys_of(srv, bucket):
    return sorted(snapshot(srv.client()).get(bucket, {}))


def with_body(s3, body, md5=True):
    """Makes the next DeleteObjects send `body` instead of what boto3 serialised (signed as sent), with a
    matching Content-MD5 or (md5=False) none."""
    def swap(request, **_):
        request.data = body
        if "Content-MD5" in request.headers:
            del request.headers["Content-MD5"]
        if md5:
            request.headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
        if "Content-Length" in request.headers:
            del request.headers["Content-Length"]
        request.headers["Content-Length"] = str(len(body))
    s3.meta.events.register_first("before-sign.s3.DeleteObjects", swap, unique_id="swap-body")


def objects(keys):
    return {"Objects": [{"Key": k} for k in keys]}


def test_delete_1000_keys(s3srv, s3):
    s3.create_bucket(Bucket="many")
    keys = ["k/%04d" % i for i in range(1100)]
    put_keys(s3srv, "many", keys, conns=16)
    doomed = keys[:990] + ["missing-%d" % i for i in range(10)]  # 1,000, ten of them not there
    r = s3.delete_objects(Bucket="many", Delete=objects(doomed))
    assert sorted(d["Key"] for d in r["Deleted"]) == sorted(doomed)  # a missing key is Deleted, as S3
    assert "Errors" not in r
    assert keys_of(s3srv, "many") == keys[990:]
    # deleting them again: all Deleted again, nothing else touched
    r = s3.delete_objects(Bucket="many", Delete=objects(doomed[:5]))
    assert len(r["Deleted"]) == 5 and keys_of(s3srv, "many") == keys[990:]


def test_quiet_reports_only_errors(s3srv, s3):
    s3.create_bucket(Bucket="quiet")
    put_keys(s3srv, "quiet", ["a", "b", "c", "odd key \u00e9&<"])
    r = s3.delete_objects(Bucket="quiet", Delete={"Quiet": True, "Objects": [
        {"Key": "a"}, {"Key": "odd key \u00e9&<"}, {"Key": "b", "VersionId": "v-that-does-not-exist"}]})
    assert "Deleted" not in r
    assert [(e["Key"], e["VersionId"], e["Code"]) for e in r["Errors"]] == [("b", "v-that-does-not-exist", "NoSuchVersion")]
    assert keys_of(s3srv, "quiet") == ["b", "c"]
    # VersionId "null" names the only version there is
    r = s3.delete_objects(Bucket="quiet", Delete={"Objects": [{"Key": "b", "VersionId": "null"}]})
    assert [(d["Key"], d["VersionId"]) for d in r["Deleted"]] == [("b", "null")] and keys_of(s3srv, "quiet") == ["c"]


def test_malformed_body_changes_nothing(s3srv, s3):
    s3.create_bucket(Bucket="intact")
    put_keys(s3srv, "intact", ["a", "b", "c"])
    bad = [
        b"<Delete><Object><Key>a</Key></Object>",  # cut short
        b"<Delete><Object><Key>a</Key></Object><Object></Object></Delete>",  # an Object without its Key
        b"<Delete></Delete>",
        b"<Remove><Object><Key>a</Key></Object></Remove>",
        b"<Delete><Quiet>maybe</Quiet><Object><Key>a</Key></Object></Delete>",
        b'<!DOCTYPE d [<!ENTITY x "a">]><Delete><Object><Key>&x;</Key></Object></Delete>',
        b"<Delete><Object><Key>" + b"k" * 1025 + b"</Key></Object></Delete>",
        b"not xml at all",
    ]
    for body in bad:
        with_body(s3, body)
        with pytest.raises(ClientError) as e:
            s3.delete_objects(Bucket="intact", Delete=objects(["a"]))
        assert code_of(e) == ("MalformedXML", 400), body
        s3.meta.events.unregister("before-sign.s3.DeleteObjects", unique_id="swap-body")
    assert keys_of(s3srv, "intact") == ["a", "b", "c"]


def test_more_than_1000_keys_refused(s3srv, s3):
    s3.create_bucket(Bucket="limit")
    keys = ["k%04d" % i for i in range(1001)]
    put_keys(s3srv, "limit", keys[:20])
    with pytest.raises(ClientError) as e:
        s3.delete_objects(Bucket="limit", Delete=objects(keys))
    assert code_of(e) == ("MalformedXML", 400)
    assert keys_of(s3srv, "limit") == keys[:20]


def test_checksum_required_and_missing_bucket(s3srv, s3):
    s3.create_bucket(Bucket="cksum")
    put_keys(s3srv, "cksum", ["a"])
    body = b"<Delete><Object><Key>a</Key></Object></Delete>"
    with_body(s3, body, md5=False)
    with pytest.raises(ClientError) as e:
        s3.delete_objects(Bucket="cksum", Delete=objects(["a"]))
    assert code_of(e) == ("InvalidRequest", 400)
    s3.meta.events.unregister("before-sign.s3.DeleteObjects", unique_id="swap-body")
    assert keys_of(s3srv, "cksum") == ["a"]
    with pytest.raises(ClientError) as e:
        s3.delete_objects(Bucket="no-such-bucket", Delete=objects(["a"]))
    assert code_of(e) == ("NoSuchBucket", 404)


def test_deletions_replicate(sites):
    a, b = sites(a_extra={"s3": S3_SECTION})
    keys = ["r/%04d" % i for i in range(300)]
    put_keys(a.storaged, "rep", keys)
    converge_or_fail(a, b)
    assert len(snapshot(b.client())["rep"]) == 300
    s3 = s3_client(a.host, a.port)
    r = s3.delete_objects(Bucket="rep", Delete=objects(keys[:250]))
    assert len(r["Deleted"]) == 250
    wait_until(lambda: sorted(snapshot(b.client()).get("rep", {})) == keys[250:], 60,
               what=lambda: "the deletions on B\n" + b.describe())
    converge_or_fail(a, b)
    d, _ = comio_diff(a, b)
    assert d == []


def test_client_gone_before_the_reply(s3srv, s3):
    """A client that closes its connection right after sending: every deletion still happens, storaged lives on."""
    s3.create_bucket(Bucket="gone")
    keys = ["g%04d" % i for i in range(1000)]
    put_keys(s3srv, "gone", keys, conns=16)
    body = ("<Delete>" + "".join("<Object><Key>%s</Key></Object>" % k for k in keys) + "</Delete>").encode()
    req = AWSRequest(method="POST", url="http://%s:%d/gone?delete" % (s3srv.host, s3srv.port), data=body,
                     headers={"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()})
    S3SigV4Auth(Credentials(AK, SECRET), "s3", "us-east-1").add_auth(req)
    p = req.prepare()
    head = "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: %d\r\n" % (p.url.split(str(s3srv.port), 1)[1],
                                                                          s3srv.host, s3srv.port, len(body))
    head += "".join("%s: %s\r\n" % (k, v) for k, v in p.headers.items() if k.lower() not in ("host", "content-length"))
    with socket.create_connection((s3srv.host, s3srv.port), timeout=10) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        sock.shutdown(socket.SHUT_RDWR)
    wait_until(lambda: keys_of(s3srv, "gone") == [], 30, what="the deletions of a request whose client went away")
    assert s3srv.client().health().status == 200
    r = s3.delete_objects(Bucket="gone", Delete=objects(["g0001"]))  # the loop still answers
    assert [d["Key"] for d in r["Deleted"]] == ["g0001"]


def test_sync_target_holds_the_deletions_when_answered(sites):
    """With a mode: sync target the reply waits until B holds every deletion of the request."""
    a, b = sites(a_repl={"mode": "sync", "sync_timeout": "10s"}, a_extra={"s3": S3_SECTION})
    keys = ["s/%03d" % i for i in range(200)]
    put_keys(a.storaged, "syncdel", keys)
    s3 = s3_client(a.host, a.port)
    for rnd in range(3):
        doomed = keys[rnd * 50:(rnd + 1) * 50]
        r = s3.delete_objects(Bucket="syncdel", Delete=objects(doomed))
        assert r["ResponseMetadata"]["HTTPHeaders"].get("x-comio-replication") == "COMPLETED", r["ResponseMetadata"]
        assert len(r["Deleted"]) == 50
        on_b = snapshot(b.client()).get("syncdel", {})
        assert not set(doomed) & set(on_b), "deleted keys still on B right after COMPLETED"
    # keys that were not there: nothing logged, the reply still reports the state at the head
    r = s3.delete_objects(Bucket="syncdel", Delete=objects(["never-1", "never-2"]))
    assert r["ResponseMetadata"]["HTTPHeaders"].get("x-comio-replication") == "COMPLETED"
    converge_or_fail(a, b)
