"""test_upgrade.py - the metadata format: a store from before formats were recorded upgrades; a newer one is refused.

tests/fixtures/unversioned-store.tar.gz is a site written by the release before
the metadata format was recorded (no "format_version" in the "state" table):
a bucket with a few objects, one deleted (a tombstone), and every mutation
still pending in the replication log (its remote was never reachable).
build_fixture below made it with that release's binaries; to make it again:

    python3 tests/e2e/test_upgrade.py --rebuild OLD_BIN_DIR

Real storaged and repld on loopback, real LMDB (mdb_load from lmdb-utils
writes a newer format for the refusal test).
"""

import gzip
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import comio  # noqa: E402
from harness.replication import Site, finish_sites, new_token, parse_log_lines, wait_until  # noqa: E402

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "unversioned-store.tar.gz"
FIXTURE_FILES = ("store.img", "store.img.meta/data.mdb")
STORE_SIZE = "4MB"
BUCKET = "fixture"
DELETED = "gone.txt"
PRIMARY_BUCKET = "from-primary"
PRIMARY_OBJECTS = {"kept.txt": b"applied from a primary\n", "gone-there": b"deleted on the primary\n"}
UPGRADED = "upgraded the metadata format"
NEWER = ("metadata format 6 is newer than this %s understands (5): run a newer ComIO, "
         "or restore the metadata of this release")


def objects():
    """What the fixture's bucket holds (DELETED was written, then deleted)."""
    return {
        "a/one.txt": b"one\n",
        "a/two.bin": bytes(range(256)) * 8,
        "big.bin": b"".join(b"%08d ComIO fixture line\n" % i for i in range(9000)),  # over the inline threshold
        "empty": b"",
    }


def build_fixture(out):
    """Writes the fixture with the binaries in COMIO_BIN_DIR (the older release's): site A takes the writes of
    objects() (its log keeps them, its remote is never reachable) and applies a primary P's PUT and DELETE into
    PRIMARY_BUCKET, which leaves A a replica's object and tombstone."""
    with tempfile.TemporaryDirectory() as d:
        token = new_token()
        a = Site(Path(d) / "site", "site-a", size=STORE_SIZE, accept_token=token,
                 repl={"remote_url": "http://127.0.0.1:9", "remote_token": new_token()})
        p = Site(Path(d) / "p", "site-p", repl={"remote_url": a.url(), "remote_token": token})
        try:
            a.start(repld=False)
            c = a.client()
            for bucket in (BUCKET, PRIMARY_BUCKET):
                assert c.create_bucket(bucket).status in (200, 201)
            for key, data in objects().items():
                assert c.put(BUCKET, key, data).status == 200
            assert c.put(BUCKET, DELETED, b"deleted later").status == 200
            assert c.delete(BUCKET, DELETED).status == 204
            p.start()
            cp = p.client()
            assert cp.create_bucket(PRIMARY_BUCKET).status in (200, 201)
            for key, data in PRIMARY_OBJECTS.items():
                assert cp.put(PRIMARY_BUCKET, key, data).status == 200
            assert cp.delete(PRIMARY_BUCKET, "gone-there").status == 204
            wait_until(lambda: p.status()["events_pending"] == 0, 60, what="the primary's events applied")
            p.stop()
            a.stop()
        finally:
            assert not finish_sites([p, a])
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name in FIXTURE_FILES:
                info = tar.gettarinfo(str(a.workdir / name), arcname=name)
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with open(a.workdir / name, "rb") as f:
                    tar.addfile(info, f)
        Path(out).write_bytes(gzip.compress(buf.getvalue(), mtime=0))


def unpack(workdir):
    workdir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(workdir)


def file_bytes(workdir):
    """Every file under workdir but LMDB's lock file (its reader table is LMDB's own), with its bytes."""
    return {str(p.relative_to(workdir)): p.read_bytes() for p in sorted(workdir.rglob("*"))
            if p.is_file() and p.name != "lock.mdb" and p.suffix not in (".log", ".yaml")}


def upgrade_lines(site):
    return [e for e in parse_log_lines(site.storaged.log()) if e.get("msg") == UPGRADED]


def test_unversioned_store_upgrades_serves_and_ships(tmp_path):
    """storaged upgrades the old store once (a log line per step), serves every object byte for byte and the
    listing, keeps the legacy versions (seqs) with their origin (this site for its own writes, "" for what it applied
    from a primary), orders every new write after them, and repld ships the log records the old release left pending
    to a replica, which holds them at A's legacy version."""
    unpack(tmp_path / "a")
    token = new_token()
    b = Site(tmp_path / "b", "site-b", accept_token=token)
    a = Site(tmp_path / "a", "site-a", size=STORE_SIZE, repl={"remote_url": b.url(), "remote_token": token})
    try:
        b.start()
        a.start_storaged()
        lines = upgrade_lines(a)
        assert [(e.get("from"), e.get("to")) for e in lines] == [("0", "1"), ("1", "2"), ("2", "3"), ("3", "4"), ("4", "5")], \
            a.storaged.log_tail()

        c = a.client()
        want = objects()
        legacy = {}
        for key, data in want.items():
            r = c.get(BUCKET, key)
            assert r.status == 200 and r.body == data, (key, r.status, len(r.body))
            # a legacy version is the seq of the old release's write, from this site
            assert r.header("X-Comio-Origin") == "site-a", (key, dict(r.headers))
            legacy[key] = int(r.header("X-Comio-Version"))
            # records from before object metadata: none
            assert not [h for h in r.headers if h.lower().startswith("x-amz-meta-") or h.lower() == "cache-control"], r
            assert 0 < legacy[key] < 100, (key, legacy[key])
        assert len(set(legacy.values())) == len(legacy)
        assert c.get(BUCKET, DELETED).status == 404
        assert c.list_all(BUCKET)[0] == sorted(want)
        # written before block checksums: served unverified, and counted
        m = c.metrics()
        assert m.value("comio_checksum_objects_unverified") == m.value("comio_objects") > 0

        # once upgraded, a restart does not upgrade again
        a.storaged.restart()
        assert len(upgrade_lines(a)) == 5, a.storaged.log_tail()

        # what A applied from its primary is still there, at the primary's seq with origin "" (the primary's id
        # was not recorded), and the tombstone too
        r = c.get(PRIMARY_BUCKET, "kept.txt")
        assert r.body == PRIMARY_OBJECTS["kept.txt"]
        assert r.header("X-Comio-Origin") == "" and 0 < int(r.header("X-Comio-Version")) < 100, dict(r.headers)
        assert c.get(PRIMARY_BUCKET, "gone-there").status == 404
        assert c.list_all(PRIMARY_BUCKET)[0] == ["kept.txt"]
        # a write over it orders after it (its legacy version names no site, so the log record names no parent)
        r = c.put(PRIMARY_BUCKET, "kept.txt", b"overwritten after the upgrade\n")
        assert r.status == 200, r
        assert c.get(PRIMARY_BUCKET, "kept.txt").body == b"overwritten after the upgrade\n"

        # the old release's pending log records ship, and a new write after them, whose version orders after
        # every legacy one
        r = c.put(BUCKET, "after-upgrade", b"new\n")
        assert r.status == 200
        assert r.header("X-Comio-Origin") == "site-a"
        new_version = int(r.header("X-Comio-Version"))
        assert new_version > max(legacy.values()) and r.json()["version"] == new_version, r
        rb = b.client()
        assert rb.create_bucket(BUCKET).status in (200, 201)
        a.start_repld()
        shipped = dict(want, **{"after-upgrade": b"new\n"})
        wait_until(lambda: a.status()["events_pending"] == 0, 60, what=lambda: a.describe())
        assert rb.list_all(BUCKET)[0] == sorted(shipped)
        for key, data in shipped.items():
            r = rb.get(BUCKET, key)
            assert r.status == 200 and r.body == data, (key, r.status)
            assert r.header("X-Comio-Origin") == "site-a", (key, dict(r.headers))
            assert int(r.header("X-Comio-Version")) == legacy.get(key, new_version), (key, dict(r.headers))
        assert rb.get(BUCKET, DELETED).status == 404
    finally:
        problems = finish_sites([a, b])
    assert not problems, problems


def set_format(meta_dir, version):
    """Records `version` as the metadata format, as a later release would."""
    value = "".join("\\%02x" % x for x in version.to_bytes(8, "big"))
    r = subprocess.run(["mdb_load", "-T", "-s", "state", str(meta_dir)], input="format_version\n%s\n" % value,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_newer_format_is_refused_and_nothing_changes(tmp_path):
    """A metadata format newer than the binary's: storaged and repld refuse to start with one line that says what
    to do, exit non-zero, and leave every byte of the store and the metadata as it was."""
    workdir = tmp_path / "a"
    unpack(workdir)
    set_format(workdir / "store.img.meta", 6)
    site = Site(workdir, "site-a", size=STORE_SIZE, repl={"remote_url": "http://127.0.0.1:9", "remote_token": "t" * 32})
    before = file_bytes(workdir)

    r = comio.run_storaged(["--config", str(site.config_path)], cwd=workdir)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert NEWER % "storaged" in out, out
    assert comio.sanitizer_report(out) is None, out
    assert len([line for line in out.splitlines() if "newer than" in line]) == 1, out
    assert file_bytes(workdir) == before

    for args in ((), ("--list-failed",)):
        r = site.repld_cmd(*args)
        assert r.returncode != 0, (args, r.stdout, r.stderr)
        assert NEWER % "repld" in r.stdout + r.stderr, (args, r.stdout, r.stderr)
        assert comio.sanitizer_report(r.stdout + r.stderr) is None, r.stderr
        assert file_bytes(workdir) == before


def test_repld_does_not_upgrade(tmp_path):
    """repld never upgrades the format (storaged does, and starts first): on the old store it refuses, says so, and
    writes nothing."""
    workdir = tmp_path / "a"
    unpack(workdir)
    site = Site(workdir, "site-a", size=STORE_SIZE, repl={"remote_url": "http://127.0.0.1:9", "remote_token": "t" * 32})
    before = file_bytes(workdir)
    r = site.repld_cmd()
    assert r.returncode != 0
    assert "metadata format 0 is older than this repld understands (5): start storaged first" in r.stdout + r.stderr, r
    assert comio.sanitizer_report(r.stdout + r.stderr) is None, r.stderr
    assert file_bytes(workdir) == before


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--rebuild":
        sys.exit("usage: python3 tests/e2e/test_upgrade.py --rebuild OLD_BIN_DIR")
    os.environ["COMIO_BIN_DIR"] = sys.argv[2]
    build_fixture(FIXTURE)
    print("%s: %d bytes" % (FIXTURE, FIXTURE.stat().st_size))
