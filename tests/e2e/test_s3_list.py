"""test_s3_list.py - S3's ListObjects (V1) and ListObjectsV2 on storaged's port, through boto3 and aws-cli.

The keys are written through the native API (faster), the listings read through S3; every expectation is
computed in Python from the keys written (sorted as bytes, rolled up at the delimiter), never taken from a reply.
"""

import hashlib
import json
import os
import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.client import Config
from botocore.exceptions import ClientError

from harness import comio
from harness.comio import put_keys

AK = "AKIDLISTTEST"
SECRET = "list/secret+key"


def s3_config():
    return "s3:\n  region: us-east-1\n  credentials:\n    - access_key: %s\n      secret_key: %s\n" % (AK, SECRET)


def s3_client(srv):
    return boto3.client("s3", endpoint_url="http://%s:%d" % (srv.host, srv.port), aws_access_key_id=AK,
                        aws_secret_access_key=SECRET, region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                      connect_timeout=10, read_timeout=60))


@pytest.fixture
def s3srv(request, make_server):
    # the tests of the tree only read it: they share one server per module (see tree_srv)
    if "tree" in request.fixturenames:
        return request.getfixturevalue("tree_srv")
    return make_server(config=s3_config())


@pytest.fixture
def s3(s3srv):
    return s3_client(s3srv)


def code_of(excinfo):
    return excinfo.value.response["Error"]["Code"], excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


def rollup(keys, prefix="", delimiter=""):
    """What S3 lists for these keys: (sorted keys, sorted common prefixes), byte order."""
    contents, prefixes = [], set()
    for k in sorted(keys, key=lambda s: s.encode()):
        if not k.startswith(prefix):
            continue
        rest = k[len(prefix):]
        if delimiter and delimiter in rest:
            prefixes.add(prefix + rest[:rest.index(delimiter) + len(delimiter)])
        else:
            contents.append(k)
    return contents, sorted(prefixes, key=lambda s: s.encode())


def paginate(s3, op, max_pages=1000, **kw):
    """Every page of a paginator, bounded."""
    pages = []
    for page in s3.get_paginator(op).paginate(**kw):
        pages.append(page)
        assert len(pages) <= max_pages
    return pages


def flatten(pages):
    keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
    prefixes = [c["Prefix"] for p in pages for c in p.get("CommonPrefixes", [])]
    return keys, prefixes


# a tree of keys: 3 top-level directories, nested sub-directories, files at every level
TREE = (["top-%d" % i for i in range(5)]
        + ["d%d/f%03d" % (d, i) for d in range(3) for i in range(300)]
        + ["d%d/s%d/f%03d" % (d, s, i) for d in range(3) for s in range(4) for i in range(150)]
        + ["d1/s1/deep/x%d" % i for i in range(20)])


@pytest.fixture(scope="module")
def tree_srv(tmp_path_factory):
    """One server with the tree written, for the tests that only list it: writing its 2,700 keys for each of
    them was most of this file's time (seconds each, several times that under ASan). Torn down and checked
    as make_server's servers are."""
    srv = comio.Server(tmp_path_factory.mktemp("tree") / "srv", config=s3_config())
    srv.start()
    try:
        s3_client(srv).create_bucket(Bucket="tree")
        put_keys(srv, "tree", TREE, conns=16)
        yield srv
    finally:
        problems = srv.finish()
    if problems:
        pytest.fail("storaged teardown (tree):\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def tree(tree_srv):
    return TREE


def test_v2_paginator_over_thousands_of_keys(s3, tree):
    assert len(tree) > 2500
    t0 = datetime.now(timezone.utc)
    for size in (1000, 333, 7):
        pages = paginate(s3, "list_objects_v2", Bucket="tree", PaginationConfig={"PageSize": size})
        keys, prefixes = flatten(pages)
        assert keys == rollup(tree)[0] and prefixes == []
        for p in pages[:-1]:
            assert p["IsTruncated"] is True and p["KeyCount"] == size == p["MaxKeys"] and p["NextContinuationToken"]
        assert pages[-1]["IsTruncated"] is False and "NextContinuationToken" not in pages[-1]
        assert sum(p["KeyCount"] for p in pages) == len(tree)
    o = pages[0]["Contents"][0]
    assert o["Size"] == 1 and o["ETag"] == '"%s"' % hashlib.md5(b"x").hexdigest() and o["StorageClass"] == "STANDARD"
    assert abs(o["LastModified"] - t0) < timedelta(minutes=5)
    assert "Owner" not in o


def test_v2_delimiter_and_nested_prefixes(s3, tree):
    for prefix in ("", "d1/", "d1/s1/", "d1/s1/deep/", "d", "d1/s", "nothing/"):
        for size in (1000, 3, 1):
            pages = paginate(s3, "list_objects_v2", Bucket="tree", Prefix=prefix, Delimiter="/",
                             PaginationConfig={"PageSize": size})
            keys, prefixes = flatten(pages)
            assert (keys, prefixes) == rollup(tree, prefix, "/"), (prefix, size)
            # keys and common prefixes together count against max-keys
            for p in pages[:-1]:
                assert p["KeyCount"] == len(p.get("Contents", [])) + len(p.get("CommonPrefixes", [])) == size
            assert pages[0]["Prefix"] == prefix and pages[0]["Delimiter"] == "/"
    # at the top: 3 directories and the files beside them
    r = s3.list_objects_v2(Bucket="tree", Delimiter="/")
    assert [c["Prefix"] for c in r["CommonPrefixes"]] == ["d0/", "d1/", "d2/"]
    assert [o["Key"] for o in r["Contents"]] == ["top-%d" % i for i in range(5)]
    assert r["KeyCount"] == 8 and r["IsTruncated"] is False


def test_v2_delimiter_of_several_characters(s3, tree):
    for delim in ("/s", "f0", "deep/x1", "-"):
        keys, prefixes = flatten(paginate(s3, "list_objects_v2", Bucket="tree", Delimiter=delim,
                                          PaginationConfig={"PageSize": 10}))
        assert (keys, prefixes) == rollup(tree, "", delim), delim


def test_v1_paginator_marker_and_next_marker(s3, tree):
    pages = paginate(s3, "list_objects", Bucket="tree", PaginationConfig={"PageSize": 500})
    assert flatten(pages) == (rollup(tree)[0], [])
    # without a delimiter S3 sends no NextMarker: the client goes on from the last key
    assert all("NextMarker" not in p for p in pages)
    assert pages[0]["Contents"][0]["Owner"]["ID"]  # V1 always names the owner
    for p in pages[:-1]:
        assert p["IsTruncated"] is True and len(p["Contents"]) == 500
    # with one, NextMarker is the last entry, a key or a common prefix
    pages = paginate(s3, "list_objects", Bucket="tree", Delimiter="/", Prefix="d2/",
                     PaginationConfig={"PageSize": 100})
    assert flatten(pages) == rollup(tree, "d2/", "/")
    for p in pages[:-1]:
        entries = sorted([o["Key"] for o in p.get("Contents", [])] + [c["Prefix"] for c in p.get("CommonPrefixes", [])],
                         key=lambda s: s.encode())
        assert p["NextMarker"] == entries[-1] and len(entries) == 100
    # a marker that is a common prefix goes on after every key under it
    r = s3.list_objects(Bucket="tree", Delimiter="/", Marker="d1/")
    assert [c["Prefix"] for c in r["CommonPrefixes"]] == ["d2/"] and r["Marker"] == "d1/"
    r = s3.list_objects(Bucket="tree", Marker="d2/s3/f149")
    assert [o["Key"] for o in r["Contents"]] == ["top-%d" % i for i in range(5)]


def test_max_keys(s3, tree):
    r = s3.list_objects_v2(Bucket="tree", MaxKeys=0)
    assert r["KeyCount"] == 0 and "Contents" not in r and r["MaxKeys"] == 0 and r["IsTruncated"] is False
    r = s3.list_objects(Bucket="tree", MaxKeys=0)
    assert "Contents" not in r and r["IsTruncated"] is False
    r = s3.list_objects_v2(Bucket="tree", MaxKeys=1)
    assert r["KeyCount"] == 1 and r["IsTruncated"] is True and r["Contents"][0]["Key"] == rollup(tree)[0][0]
    r = s3.list_objects_v2(Bucket="tree", MaxKeys=1000)
    assert r["KeyCount"] == 1000 and r["IsTruncated"] is True
    r = s3.list_objects_v2(Bucket="tree", MaxKeys=5000)  # S3 caps max-keys at 1000
    assert r["KeyCount"] == 1000 and r["MaxKeys"] == 1000
    r = s3.list_objects_v2(Bucket="tree")  # the default
    assert r["KeyCount"] == 1000 and r["MaxKeys"] == 1000
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket="tree", MaxKeys=-1)
    assert code_of(e) == ("InvalidArgument", 400)


def test_start_after_and_continuation_across_writes(s3srv, s3):
    s3.create_bucket(Bucket="moving")
    put_keys(s3srv, "moving", ["k%03d" % i for i in range(0, 100, 2)])  # k000, k002, ... k098
    r = s3.list_objects_v2(Bucket="moving", MaxKeys=10)
    assert [o["Key"] for o in r["Contents"]] == ["k%03d" % i for i in range(0, 20, 2)]
    token = r["NextContinuationToken"]
    # written between the pages: before the position (not seen), after it (seen), and the odd ones
    put_keys(s3srv, "moving", ["k001", "k017", "k019", "k021", "k099", "a-first"])
    c = s3srv.client()
    assert c.delete("moving", "k020").status == 204
    keys, page, pages = [], r, 0
    while page["IsTruncated"]:
        page = s3.list_objects_v2(Bucket="moving", MaxKeys=10, ContinuationToken=token)
        assert page["ContinuationToken"] == token
        keys += [o["Key"] for o in page.get("Contents", [])]
        token = page.get("NextContinuationToken")
        pages += 1
        assert pages < 20
    assert keys == ["k019", "k021"] + ["k%03d" % i for i in range(22, 100, 2)] + ["k099"]
    r = s3.list_objects_v2(Bucket="moving", StartAfter="k090")
    assert r["StartAfter"] == "k090" and [o["Key"] for o in r["Contents"]] == ["k092", "k094", "k096", "k098", "k099"]
    r = s3.list_objects_v2(Bucket="moving", StartAfter="zzz")
    assert r["KeyCount"] == 0 and r["IsTruncated"] is False
    # a token that is not one of ours
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket="moving", ContinuationToken="not base64!")
    assert code_of(e) == ("InvalidArgument", 400)


ODD_KEYS = ["with space", "a+plus", "percent%20sign", "caf\u00e9/\u00fcber", "\u4e2d\u6587/\u6587\u4ef6", "tab\there",
            "ctrl\x01char", "ctrl\x1fend/x", "amp&lt;<>\"'", "slash//double", "emoji\U0001F600", "nl\nkey", "cr\rkey",
            "~tilde", "q?mark#hash"]


def test_encoding_type_url(s3srv, s3):
    s3.create_bucket(Bucket="odd")
    put_keys(s3srv, "odd", ODD_KEYS)
    # boto3 asks for encoding-type=url on its own and decodes what comes back
    keys, _ = flatten(paginate(s3, "list_objects_v2", Bucket="odd", PaginationConfig={"PageSize": 4}))
    assert keys == rollup(ODD_KEYS)[0]
    keys, _ = flatten(paginate(s3, "list_objects", Bucket="odd", PaginationConfig={"PageSize": 4}))
    assert keys == rollup(ODD_KEYS)[0]
    for delim, prefix in ((" ", ""), ("/", ""), ("\x1f", "ctrl"), ("\u6587", "\u4e2d")):
        keys, prefixes = flatten(paginate(s3, "list_objects_v2", Bucket="odd", Delimiter=delim, Prefix=prefix,
                                          PaginationConfig={"PageSize": 2}))
        assert (keys, prefixes) == rollup(ODD_KEYS, prefix, delim), (delim, prefix)
    r = s3.list_objects_v2(Bucket="odd", Prefix="caf\u00e9", Delimiter="/", StartAfter="a+plus")
    assert r["Prefix"] == "caf\u00e9" and r["Delimiter"] == "/" and r["StartAfter"] == "a+plus"
    assert [c["Prefix"] for c in r["CommonPrefixes"]] == ["caf\u00e9/"]
    r = s3.list_objects(Bucket="odd", Delimiter=" ", Marker="a+plus")
    assert r["Marker"] == "a+plus" and r["Delimiter"] == " "
    # on the wire the values are percent-encoded: check one raw reply
    seen = {}
    s3.meta.events.register("after-call.s3.ListObjectsV2", lambda http_response, **kw: seen.update(body=http_response.content))
    s3.list_objects_v2(Bucket="odd", Prefix="with ")
    assert b"<Key>with%20space</Key>" in seen["body"] and b"<EncodingType>url</EncodingType>" in seen["body"]
    assert b"<Prefix>with%20</Prefix>" in seen["body"]


def test_encoding_type_other_is_refused(s3, tree):
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket="tree", EncodingType="base64")
    assert code_of(e) == ("InvalidArgument", 400)


def test_fetch_owner_and_missing_bucket(s3, tree):
    r = s3.list_objects_v2(Bucket="tree", MaxKeys=2, FetchOwner=True)
    assert all(o["Owner"]["ID"] for o in r["Contents"])
    r = s3.list_objects_v2(Bucket="tree", MaxKeys=2, FetchOwner=False)
    assert all("Owner" not in o for o in r["Contents"])
    for op in (s3.list_objects, s3.list_objects_v2):
        with pytest.raises(ClientError) as e:
            op(Bucket="no-such-bucket")
        assert code_of(e) == ("NoSuchBucket", 404)
    s3.create_bucket(Bucket="empty")
    r = s3.list_objects_v2(Bucket="empty", Delimiter="/")
    assert r["KeyCount"] == 0 and r["IsTruncated"] is False and "Contents" not in r and "CommonPrefixes" not in r


def aws(srv, *args, timeout=120):
    """Runs aws-cli against srv with the test's credentials, no user configuration. Returns stdout."""
    exe = shutil.which("aws")
    if exe is None:
        pytest.skip("aws-cli is not installed (apt-get install awscli)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SECRET, AWS_DEFAULT_REGION="us-east-1",
               AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_EC2_METADATA_DISABLED="true",
               AWS_PAGER="")
    p = subprocess.run([exe, "--endpoint-url", "http://%s:%d" % (srv.host, srv.port)] + list(args), env=env,
                       capture_output=True, timeout=timeout)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p.stdout.decode()


def test_aws_cli_ls_and_list_objects(s3srv, s3, tree):
    out = aws(s3srv, "s3", "ls", "--recursive", "--page-size", "400", "s3://tree")
    listed = [line.split(None, 3)[3] for line in out.splitlines() if line.strip()]
    assert listed == rollup(tree)[0]
    out = aws(s3srv, "s3", "ls", "s3://tree/d1/")
    assert [line.split()[-1] for line in out.splitlines() if "PRE" in line] == ["s0/", "s1/", "s2/", "s3/"]
    # s3api list-objects is V1; the CLI pages through it with markers
    doc = json.loads(aws(s3srv, "s3api", "list-objects", "--bucket", "tree", "--prefix", "d0/s2/", "--page-size", "40"))
    assert [o["Key"] for o in doc["Contents"]] == rollup(tree, "d0/s2/")[0]
    doc = json.loads(aws(s3srv, "s3api", "list-objects", "--bucket", "tree", "--delimiter", "/"))
    assert [c["Prefix"] for c in doc["CommonPrefixes"]] == ["d0/", "d1/", "d2/"]


def test_listing_reads_one_snapshot_while_writes_go_on(s3srv, s3):
    """Pages of a listing made while another client writes stay sorted and complete for the keys that did not move."""
    s3.create_bucket(Bucket="busy")
    stable = ["s%04d" % i for i in range(0, 1200, 3)]
    put_keys(s3srv, "busy", stable)
    c = s3srv.client()
    seen, token, pages, written = [], None, 0, 0
    while True:
        kw = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket="busy", MaxKeys=50, **kw)
        seen += [o["Key"] for o in page.get("Contents", [])]
        for _ in range(5):  # keys that land between the pages, anywhere
            assert c.put("busy", "s%04d" % (written * 7 % 1200 * 3 + 1), b"y").status == 200
            written += 1
        pages += 1
        assert pages < 200
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert seen == sorted(set(seen)), "pages overlap or go backwards"
    assert set(stable) <= set(seen)
