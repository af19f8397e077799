"""test_s3_clients.py - the S3 clients people use, from Debian, against two replicating sites: rclone, s3cmd, restic, s3fs.

Each test runs a client's everyday work on site A, then checks that site B holds the same (comio diff, metadata
included). The large-file parts need multipart upload; while the server answers ?uploads with 501 they are skipped
with that reason (probed once per session)."""

import filecmp
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from harness.replication import comio_diff, wait_converged
from harness.s3clients import AK, REGION, SECRET, SITE_CREDS, clean_env, endpoint, read_tree, run, s3_client, s3_config, \
    tool, write_tree

SITE_SIZE = "512MB"
_multipart = {}  # "works": bool, once probed


def multipart_works(srv):
    """Whether CreateMultipartUpload is implemented (not 501), asked once per session. An upload it makes is aborted."""
    if "works" not in _multipart:
        s3 = s3_client(srv)
        s3.create_bucket(Bucket="mpu-probe")
        try:
            up = s3.create_multipart_upload(Bucket="mpu-probe", Key="probe")
            s3.abort_multipart_upload(Bucket="mpu-probe", Key="probe", UploadId=up["UploadId"])
            _multipart["works"] = True
        except s3.exceptions.ClientError as e:
            if e.response["ResponseMetadata"]["HTTPStatusCode"] != 501:
                raise
            _multipart["works"] = False
        s3.delete_bucket(Bucket="mpu-probe")
    return _multipart["works"]


def skip_without_multipart(srv):
    if not multipart_works(srv):
        pytest.skip("multipart upload is not implemented yet (POST ?uploads answers 501): large-file part skipped")


def pair(sites):
    return sites(a_extra=SITE_CREDS, b_extra=SITE_CREDS, size=SITE_SIZE)


def converged(a, b):
    assert wait_converged(a, b, timeout=120) == []
    assert comio_diff(a, b)[0] == []


def assert_nothing_unimplemented(*sites):
    """No request to these sites was answered with a status outside storaged's usual ones: 501 (an operation the
    client needed that is not implemented) is counted under status="other" in comio_http_requests_total."""
    for site in sites:
        c = site.client()
        try:
            assert c.metrics().sum("comio_http_requests_total", status="other") == 0, site.site_id
        finally:
            c.close()


# ---- what the clients ask besides objects: fixed answers of a server without versions or ACLs ----

def test_versioning_and_acl_answers(make_server):
    """rclone asks GetBucketVersioning before a purge, s3cmd GetObjectAcl before a copy (to keep a public-read)."""
    s3 = s3_client(make_server(config=s3_config()))
    s3.create_bucket(Bucket="fixed")
    s3.put_object(Bucket="fixed", Key="k", Body=b"x")
    v = s3.get_bucket_versioning(Bucket="fixed")
    assert "Status" not in v and "MFADelete" not in v
    for acl in (s3.get_bucket_acl(Bucket="fixed"), s3.get_object_acl(Bucket="fixed", Key="k")):
        assert acl["Owner"]["ID"] == "comio"
        assert [(g["Grantee"]["ID"], g["Grantee"]["Type"], g["Permission"]) for g in acl["Grants"]] == \
            [("comio", "CanonicalUser", "FULL_CONTROL")]
    for call, code in ((lambda: s3.get_object_acl(Bucket="fixed", Key="missing"), "NoSuchKey"),
                       (lambda: s3.get_object_acl(Bucket="nope", Key="k"), "NoSuchBucket"),
                       (lambda: s3.get_bucket_acl(Bucket="nope"), "NoSuchBucket"),
                       (lambda: s3.get_bucket_versioning(Bucket="nope"), "NoSuchBucket")):
        with pytest.raises(s3.exceptions.ClientError) as e:
            call()
        assert (e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (code, 404)
    # setting them is still not implemented: refused, never ignored
    with pytest.raises(s3.exceptions.ClientError) as e:
        s3.put_bucket_versioning(Bucket="fixed", VersioningConfiguration={"Status": "Enabled"})
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501


# ---- rclone ----

def rclone(srv, home, *args, check=True):
    """rclone with remote "comio:" defined by environment variables only (RCLONE_CONFIG points at an empty file)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "rclone.conf").write_text("")
    env = clean_env(home, RCLONE_CONFIG=str(home / "rclone.conf"), RCLONE_CONFIG_COMIO_TYPE="s3",
                    RCLONE_CONFIG_COMIO_PROVIDER="Other", RCLONE_CONFIG_COMIO_ENV_AUTH="false",
                    RCLONE_CONFIG_COMIO_ACCESS_KEY_ID=AK, RCLONE_CONFIG_COMIO_SECRET_ACCESS_KEY=SECRET,
                    RCLONE_CONFIG_COMIO_ENDPOINT=endpoint(srv), RCLONE_CONFIG_COMIO_REGION=REGION,
                    RCLONE_CONFIG_COMIO_FORCE_PATH_STYLE="true")
    return run([tool("rclone"), "--retries", "1", "--low-level-retries", "1", "--contimeout", "10s", "--timeout", "60s"]
               + list(args), env, check=check)


def rclone_transfers(p):
    """The files rclone's own final stats say it transferred (--use-json-log: each stats line carries a "stats" object)."""
    stats = None
    for line in p.stderr.decode(errors="replace").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("stats"), dict):
            stats = doc["stats"]
    assert stats is not None, p.stderr.decode(errors="replace")[-2000:]
    assert stats["errors"] == 0, stats
    return stats["transfers"]


def test_rclone(sites, tmp_path):
    a, b = pair(sites)
    home = tmp_path / "rclone-home"
    rclone(a.storaged, home, "mkdir", "comio:rc-bucket")
    small = tmp_path / "small"
    small_files = write_tree(small, 40, 3000, seed=1)
    rclone(a.storaged, home, "copy", str(small), "comio:rc-bucket/copied")
    listed = json.loads(rclone(a.storaged, home, "lsjson", "-R", "--files-only", "comio:rc-bucket/copied").stdout)
    assert {e["Path"]: e["Size"] for e in listed} == {k: len(v) for k, v in small_files.items()}

    tree = tmp_path / "tree"
    files = write_tree(tree, 2000, 200, seed=2)
    sync = ("sync", str(tree), "comio:rc-bucket/tree", "--use-json-log", "--stats-one-line", "-v", "--stats", "1h", "--transfers", "8",
            "--checkers", "16")
    assert rclone_transfers(rclone(a.storaged, home, *sync)) == len(files)
    assert rclone_transfers(rclone(a.storaged, home, *sync)) == 0  # the second sync finds everything there
    rclone(a.storaged, home, "check", str(tree), "comio:rc-bucket/tree", "--one-way")
    rclone(a.storaged, home, "check", str(tree), "comio:rc-bucket/tree")
    # a changed and a removed file: the next sync moves just those
    (tree / "d00/e0/f00000.bin").write_bytes(b"changed")
    os.unlink(tree / "d01/e1/f00001.bin")
    rclone(a.storaged, home, *sync)
    rclone(a.storaged, home, "check", str(tree), "comio:rc-bucket/tree")

    # server-side copy and move (CopyObject)
    rclone(a.storaged, home, "copyto", "comio:rc-bucket/copied/d00/e0/f00000.bin", "comio:rc-bucket/server-copy")
    rclone(a.storaged, home, "moveto", "comio:rc-bucket/server-copy", "comio:rc-bucket/server-moved")
    got = tmp_path / "got.bin"
    rclone(a.storaged, home, "copyto", "comio:rc-bucket/server-moved", str(got))
    assert got.read_bytes() == small_files["d00/e0/f00000.bin"]

    rclone(a.storaged, home, "delete", "comio:rc-bucket/copied")
    listed = json.loads(rclone(a.storaged, home, "lsjson", "-R", "--files-only", "comio:rc-bucket/copied").stdout)
    assert listed == []
    converged(a, b)
    # B serves the same tree to rclone
    rclone(b.storaged, home, "check", str(tree), "comio:rc-bucket/tree")

    rclone(a.storaged, home, "purge", "comio:rc-bucket")
    assert "rc-bucket" not in rclone(a.storaged, home, "lsd", "comio:").stdout.decode()
    converged(a, b)
    assert_nothing_unimplemented(a, b)


def test_rclone_large_file(sites, tmp_path):
    a, b = pair(sites)
    skip_without_multipart(a.storaged)
    home = tmp_path / "rclone-home"
    big = tmp_path / "big" / "big.bin"
    big.parent.mkdir()
    big.write_bytes(os.urandom(23 * 1024 * 1024 + 17))
    rclone(a.storaged, home, "mkdir", "comio:rc-large")
    rclone(a.storaged, home, "copy", str(big.parent), "comio:rc-large", "--s3-upload-cutoff", "5M", "--s3-chunk-size",
           "5M")
    rclone(a.storaged, home, "check", str(big.parent), "comio:rc-large")
    back = tmp_path / "back"
    rclone(a.storaged, home, "copy", "comio:rc-large", str(back))
    assert filecmp.cmp(big, back / "big.bin", shallow=False)
    converged(a, b)
    assert_nothing_unimplemented(a, b)


# ---- s3cmd ----

def s3cmd(srv, home, *args, check=True):
    """s3cmd with a config file of the test's (-c), never ~/.s3cfg."""
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "s3cfg"
    hostport = "%s:%d" % (srv.host, srv.port)
    cfg.write_text("[default]\naccess_key = %s\nsecret_key = %s\nhost_base = %s\nhost_bucket = %s\n"
                   "bucket_location = %s\nuse_https = False\nsignature_v2 = False\nmultipart_chunk_size_mb = 5\n"
                   "acl_public = False\n"
                   "socket_timeout = 60\n" % (AK, SECRET, hostport, hostport, REGION))
    return run([tool("s3cmd"), "-c", str(cfg), "--no-progress"] + list(args), clean_env(home), check=check)


def s3cmd_transferred(p):
    """Files s3cmd says it uploaded, from its own summary ("Done. Uploaded N bytes in ...") and upload lines."""
    out = p.stdout.decode(errors="replace")
    return len(re.findall(r"^upload: ", out, re.M))


def test_s3cmd(sites, tmp_path):
    a, b = pair(sites)
    home = tmp_path / "s3cmd-home"
    s3cmd(a.storaged, home, "mb", "s3://s3cmd-bucket")
    one = tmp_path / "one.bin"
    data = os.urandom(1024 * 1024 + 5)  # under multipart_chunk_size_mb: one PUT
    one.write_bytes(data)
    s3cmd(a.storaged, home, "put", str(one), "s3://s3cmd-bucket/dir/one.bin")
    out = s3cmd(a.storaged, home, "ls", "s3://s3cmd-bucket/dir/").stdout.decode()
    assert "s3://s3cmd-bucket/dir/one.bin" in out and str(len(data)) in out
    got = tmp_path / "got.bin"
    s3cmd(a.storaged, home, "get", "s3://s3cmd-bucket/dir/one.bin", str(got))
    assert got.read_bytes() == data

    tree = tmp_path / "tree"
    files = write_tree(tree, 150, 1000, seed=3)
    first = s3cmd(a.storaged, home, "sync", str(tree) + "/", "s3://s3cmd-bucket/tree/")
    assert s3cmd_transferred(first) == len(files)
    second = s3cmd(a.storaged, home, "sync", str(tree) + "/", "s3://s3cmd-bucket/tree/")
    assert s3cmd_transferred(second) == 0, second.stdout.decode()
    back = tmp_path / "back"
    s3cmd(a.storaged, home, "sync", "s3://s3cmd-bucket/tree/", str(back) + "/")
    assert read_tree(back) == files

    s3cmd(a.storaged, home, "cp", "s3://s3cmd-bucket/dir/one.bin", "s3://s3cmd-bucket/dir/copy.bin")
    s3cmd(a.storaged, home, "del", "s3://s3cmd-bucket/dir/one.bin")
    out = s3cmd(a.storaged, home, "ls", "s3://s3cmd-bucket/dir/").stdout.decode()
    assert "one.bin" not in out and "copy.bin" in out
    converged(a, b)
    out = s3cmd(b.storaged, home, "ls", "-r", "s3://s3cmd-bucket/").stdout.decode()
    assert len(re.findall(r"s3://s3cmd-bucket/tree/", out)) == len(files)

    s3cmd(a.storaged, home, "del", "--recursive", "--force", "s3://s3cmd-bucket/")
    s3cmd(a.storaged, home, "rb", "s3://s3cmd-bucket")
    assert "s3cmd-bucket" not in s3cmd(a.storaged, home, "ls").stdout.decode()
    converged(a, b)
    assert_nothing_unimplemented(a, b)


def test_s3cmd_large_file(sites, tmp_path):
    a, b = pair(sites)
    skip_without_multipart(a.storaged)
    home = tmp_path / "s3cmd-home"
    s3cmd(a.storaged, home, "mb", "s3://s3cmd-large")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(17 * 1024 * 1024 + 3))  # over multipart_chunk_size_mb = 5
    s3cmd(a.storaged, home, "put", str(big), "s3://s3cmd-large/big.bin")
    got = tmp_path / "got.bin"
    s3cmd(a.storaged, home, "get", "s3://s3cmd-large/big.bin", str(got))
    assert filecmp.cmp(big, got, shallow=False)
    converged(a, b)
    assert_nothing_unimplemented(a, b)


# ---- restic ----

def restic(srv, home, *args, check=True):
    """restic on bucket restic-repo of srv, its cache in home."""
    home.mkdir(parents=True, exist_ok=True)
    env = clean_env(home, RESTIC_REPOSITORY="s3:%s/restic-repo" % endpoint(srv), RESTIC_PASSWORD="correct horse",
                    RESTIC_CACHE_DIR=str(home / "cache"), AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SECRET)
    return run([tool("restic"), "-o", "s3.region=" + REGION] + list(args), env,
               check=check)


def test_restic(sites, tmp_path):
    a, b = pair(sites)
    home = tmp_path / "restic-home"
    tree = tmp_path / "data"
    files = write_tree(tree, 300, 12000, seed=4)  # about 3.5 MiB
    (tree / "empty").write_bytes(b"")
    files["empty"] = b""
    restic(a.storaged, home, "init")
    restic(a.storaged, home, "backup", str(tree))
    restic(a.storaged, home, "check")
    converged(a, b)
    assert_nothing_unimplemented(a)
    a.stop()  # site A is gone: restore from B
    try:
        out = tmp_path / "restored"
        restic(b.storaged, home, "restore", "latest", "--target", str(out))
        restored = out / str(tree).lstrip("/")
        assert read_tree(restored) == files
        cmp = filecmp.dircmp(tree, restored)
        assert not cmp.left_only and not cmp.right_only and not cmp.diff_files
        restic(b.storaged, home, "check", "--read-data")
    finally:
        a.start()
    # restic's locks on B were written and removed there; the repository itself is the same on both
    converged(a, b)
    assert_nothing_unimplemented(b)


# ---- s3fs ----

def test_s3fs(sites, tmp_path):
    if not os.path.exists("/dev/fuse") or not os.access("/dev/fuse", os.R_OK | os.W_OK):
        pytest.skip("/dev/fuse is missing or not usable here: s3fs cannot mount")
    a, b = pair(sites)
    s3 = s3_client(a.storaged)
    s3.create_bucket(Bucket="fs-bucket")
    passwd = tmp_path / "passwd-s3fs"
    passwd.write_text("%s:%s\n" % (AK, SECRET))
    passwd.chmod(0o600)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    log = tmp_path / "s3fs.log"
    opts = ("url=%s,use_path_request_style,passwd_file=%s,endpoint=%s,sigv4,"
            "retries=1,connect_timeout=10,readwrite_timeout=60,stat_cache_expire=1,logfile=%s,dbglevel=warn"
            % (endpoint(a.storaged), passwd, REGION, log))
    env = clean_env(tmp_path / "s3fs-home")
    run([tool("s3fs"), "fs-bucket", str(mnt), "-o", opts], env, timeout=60)
    try:
        deadline = time.monotonic() + 30
        while not os.path.ismount(mnt) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert os.path.ismount(mnt), log.read_text() if log.exists() else "no s3fs log"
        data = os.urandom(2 * 1024 * 1024 + 1)
        (mnt / "one.bin").write_bytes(data)
        (mnt / "dir").mkdir()
        (mnt / "dir" / "two.txt").write_text("two\n")
        assert (mnt / "one.bin").read_bytes() == data
        assert sorted(os.listdir(mnt)) == ["dir", "one.bin"]
        os.rename(mnt / "one.bin", mnt / "dir" / "renamed.bin")  # CopyObject, then DeleteObject
        assert sorted(os.listdir(mnt / "dir")) == ["renamed.bin", "two.txt"]
        assert (mnt / "dir" / "renamed.bin").read_bytes() == data
        assert s3.get_object(Bucket="fs-bucket", Key="dir/renamed.bin")["Body"].read() == data
        os.unlink(mnt / "dir" / "two.txt")
        assert os.listdir(mnt / "dir") == ["renamed.bin"]
    finally:
        subprocess.run([tool("fusermount3"), "-u", str(mnt)], capture_output=True, timeout=60)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="fs-bucket").get("Contents", []))
    assert "dir/renamed.bin" in keys and "one.bin" not in keys and "dir/two.txt" not in keys
    converged(a, b)
    assert_nothing_unimplemented(a, b)
    shutil.rmtree(mnt, ignore_errors=True)
