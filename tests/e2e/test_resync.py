"""test_resync.py - `comio resync`: a full sync of one target on request (repld/sync.h,
cli/resync.c): --dry-run, --delete-extra, --rate-limit, a second request, --cancel,
--json and the progress bar on a terminal.

The oracle is `comio diff` and the clients' own records; the sync's counters are
checked where the test is about them (what a dry run says against what a real resync
then ships). Every wait is bounded."""

import json
import os
import pty
import select
import shutil
import signal
import subprocess
import time

import pytest

from harness import comio
from harness.replication import (comio_diff, comio_path, converge_or_fail, finish_sites, make_pair, snapshot,
                                 wait_until)

TARGET = "127.0.0.1"  # make_pair's one target, named after remote_url's host


@pytest.fixture
def pair(tmp_path):
    made = []

    def make(**kw):
        a, b = make_pair(tmp_path / ("pair%d" % len(made)), start=False, **kw)
        made.extend([a, b])
        return a, b

    yield make
    problems = finish_sites(made)
    if problems:
        pytest.fail("teardown:\n" + "\n".join(problems), pytrace=False)


def resync(site, *args, timeout=120):
    """`comio resync --config A ARGS` to completion (no terminal: --wait makes it watch)."""
    argv = [str(comio_path()), "resync", "--config", str(site.config_path)] + list(args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          env=comio.sanitizer_env())


def resync_json(site, *args):
    r = resync(site, "--json", "--wait", *args)
    assert r.returncode in (0, 1), r
    return json.loads(r.stdout)


def store_files(site, dest):
    dest.mkdir(parents=True, exist_ok=True)
    for p in site.workdir.iterdir():
        if p.name.startswith("store.img"):
            shutil.copytree(p, dest / p.name) if p.is_dir() else shutil.copy2(p, dest / p.name)


def put_back(site, src):
    for p in site.workdir.iterdir():
        if p.name.startswith("store.img"):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    for p in src.iterdir():
        shutil.copytree(p, site.workdir / p.name) if p.is_dir() else shutil.copy2(p, site.workdir / p.name)


def b_behind(a, b, tmp_path):
    """A and B in sync, then B restored from a backup taken before A's later changes,
    and written to directly: B lacks 4 new objects, 3 deletes, 5 overwrites and a new
    bucket's 2 objects, and holds 2 keys and a bucket only it has."""
    b.start()
    a.start()
    ac = a.client()
    for i in range(120):
        assert ac.put("near", "k%04d" % i, b"v%d" % i * 20).status == 200
    for i in range(30):
        assert ac.put("other", "o%03d" % i, b"o" * 100).status == 200
    converge_or_fail(a, b, timeout=60)
    b.stop_storaged()
    store_files(b, tmp_path / "backup")
    b.start_storaged()
    for i in range(5):
        assert ac.put("near", "k%04d" % i, b"changed %d" % i * 50).status == 200
    for i in range(10, 13):
        assert ac.delete("near", "k%04d" % i).status == 204
    for i in range(4):
        assert ac.put("near", "new%d" % i, b"new" * 30).status == 200
    for i in range(2):
        assert ac.put("fresh", "f%d" % i, b"f" * 70).status == 200
    converge_or_fail(a, b, timeout=60)
    b.stop_storaged()
    put_back(b, tmp_path / "backup")
    b.start_storaged()
    bc = b.client()
    for k in ("only-b-1", "only-b-2"):
        assert bc.put("near", k, b"written on B alone").status == 200
    assert bc.put("bonly", "x", b"a bucket of B's").status == 200


def test_dry_run_counts_what_the_resync_then_ships_and_delete_extra_makes_an_exact_copy(pair, tmp_path):
    a, b = pair()
    b_behind(a, b, tmp_path)
    before = snapshot(b)

    dry = resync_json(a, "--target", TARGET, "--dry-run")
    s, rep = dry["sync"], dry["report"]
    assert s["phase"] == "done" and s["dry_run"] is True and s["reason"] == "requested", dry
    # 5 overwrites, 3 deletes, 4 new in near; the 2 objects of fresh (a bucket a PUT made has no record to ship)
    assert s["objects_shipped"] == 5 + 3 + 4 + 2, s
    assert s["objects_extra"] == 3 and s["buckets_extra"] == 1 and s["objects_deleted"] == 0, s
    assert snapshot(b) == before  # a dry run ships nothing
    by_bucket = {x["name"]: x for x in rep["buckets"]}
    assert by_bucket["near"]["put"] == 9 and by_bucket["near"]["delete"] == 3 and by_bucket["near"]["extra"] == 2, rep
    assert by_bucket["fresh"]["put"] == 2 and by_bucket["bonly"]["target_only"] is True, rep
    assert rep["keys_total"] == len(rep["keys"]) == 9 + 3 + 2 + 2 + 1, rep
    listed = {(k["bucket"], k["key"], k["action"]) for k in rep["keys"]}
    assert ("near", "k0011", "delete") in listed and ("near", "only-b-1", "extra") in listed, listed
    assert ("near", "new0", "put") in listed and ("bonly", "x", "extra") in listed, listed
    p = subprocess.run([str(comio_path()), "status", "--url", a.url()], capture_output=True, text=True, timeout=30,
                       env=comio.sanitizer_env())
    line = [x for x in p.stdout.splitlines() if x.strip().startswith("full sync:")]
    assert len(line) == 1 and "(requested, dry run)" in line[0] and "14 would ship" in line[0], p.stdout

    # the real resync ships what the dry run said
    real = resync_json(a, "--target", TARGET)
    r = real["sync"]
    assert r["dry_run"] is False and r["objects_failed"] == 0, r
    assert r["objects_shipped"] == s["objects_shipped"] and r["objects_extra"] == s["objects_extra"], (r, s)
    assert {x["name"]: x["put"] for x in real["report"]["buckets"]} == {x["name"]: x["put"] for x in rep["buckets"]}
    bsnap = snapshot(b)
    assert "only-b-1" in bsnap["near"] and "x" in bsnap["bonly"]  # reported, not deleted
    assert "k0011" not in bsnap["near"] and "new3" in bsnap["near"]
    lines = comio_diff(a, b)[0]
    assert len(lines) == 3 and all("missing on A" in x for x in lines), lines  # the extras, nothing else

    # B writes a newer version of a key A holds: --delete-extra must not touch it
    bc = b.client()
    assert bc.put("near", "k0050", b"B's newer version").status == 200
    dx = resync_json(a, "--target", TARGET, "--delete-extra")["sync"]
    assert dx["objects_deleted"] == 3 and dx["buckets_extra"] == 1 and dx["objects_failed"] == 0, dx
    bsnap = snapshot(b)
    assert "only-b-1" not in bsnap["near"] and "only-b-2" not in bsnap["near"], bsnap["near"].keys()
    assert not bsnap.get("bonly"), bsnap.get("bonly")
    assert bc.get("near", "k0050").body == b"B's newer version"
    # A writes the key again; the sites are then the same (diff exit 0)
    assert a.client().put("near", "k0050", b"A again").status == 200
    converge_or_fail(a, b, timeout=60)
    assert comio_diff(a, b)[0] == []


def test_rate_limit_holds(pair, tmp_path):
    # replication.sync_rate_limit paces the automatic sync of a new target: 40 objects of 100 KB, half of them
    # inline and half fetched by B, at 1 MB/s
    a, b = pair(a_repl={"inline_threshold": "100KB", "sync_rate_limit": "1MB/s"})
    repl = a.repl
    a.repl = None
    a.write_config()
    b.start()
    a.start()
    ac = a.client()
    for i in range(40):
        assert ac.put("paced", "p%02d" % i, os.urandom(99_000 + (i % 2) * 2000)).status == 200
    a.stop()
    a.repl = repl
    a.write_config()
    a.start()
    wait_until(lambda: a.repld_status()["targets"][0]["sync"]["phase"] == "done", 60, interval=0.1,
               what="the paced sync")
    s = a.repld_status()["targets"][0]["sync"]
    assert s["rate_limit"] == 1_000_000 and s["objects_shipped"] >= 40, s
    arrived = sum(v[0] for v in snapshot(b)["paced"].values())  # (size, etag)
    rate = arrived / s["duration_seconds"]
    assert 0.85 * 1e6 <= rate <= 1.15 * 1e6, (rate, s)
    converge_or_fail(a, b, timeout=30)


def test_usage_a_second_request_cancel_json_and_the_progress_bar(pair, tmp_path):
    a, b = pair(a_repl={"inline_threshold": "1"})
    b.start()
    a.start()
    ac = a.client()
    assert ac.put("slow", "first", b"1").status == 200
    converge_or_fail(a, b, timeout=60)
    b.stop_storaged()
    store_files(b, tmp_path / "backup")  # B before the 30 objects below: a restore makes it lack them
    b.start_storaged()
    for i in range(30):
        assert ac.put("slow", "s%02d" % i, b"z" * 100_000).status == 200
    converge_or_fail(a, b, timeout=60)

    for args, text in [((), "--target"), (("--target", TARGET, "--rate-limit", "fast"), "--rate-limit"),
                       (("--target", TARGET, "--bucket", "Bad_Name"), "--bucket"),
                       (("--target", TARGET, "--cancel", "--dry-run"), "--cancel"), (("--bogus",), "unknown option")]:
        r = resync(a, *args)
        assert r.returncode == 2 and text in r.stderr, (args, r)
    r = resync(a, "--target", "nosuch", "--no-wait")
    assert r.returncode == 1 and "no target named nosuch" in r.stderr, r
    r = resync(a, "--target", TARGET, "--cancel")
    assert r.returncode == 5 and "no full sync" in r.stderr, r

    b.stop_storaged()
    put_back(b, tmp_path / "backup")
    b.start_storaged()
    # on a terminal: a progress bar while 3 MB go at 1 MB/s, then the totals
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(str(comio_path()), [str(comio_path()), "resync", "--config", str(a.config_path), "--target", TARGET,
                                      "--rate-limit", "1MB/s"], comio.sanitizer_env())
    out = b""
    second = None
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            rl, _, _ = select.select([fd], [], [], 0.2)
            if rl:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            if second is None and b"scanned" in out:
                # a second request while it runs: a clear answer, exit 4, nothing changes
                second = resync(a, "--target", TARGET, "--no-wait", "--json")
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    text = out.decode(errors="replace")
    assert "Ctrl-C stops watching, not the sync" in text, text
    assert "[" in text and "scanned" in text and "ETA" in text, text
    assert "full sync of target %s finished" % TARGET in text and "shipped 30" in text, text
    assert os.WEXITSTATUS(status) == 0, text
    assert second is not None and second.returncode == 4, second
    ans = json.loads(second.stderr)
    assert ans["answer"] == "busy" and "is running" in ans["message"] and "started" in ans["message"], ans
    converge_or_fail(a, b, timeout=60)

    # Ctrl-C stops the watching, not the sync; --cancel stops it
    b.stop_storaged()
    put_back(b, tmp_path / "backup")
    b.start_storaged()
    pid, fd = pty.fork()
    if pid == 0:
        # Ctrl-C must reach comio with its default action, even when this test runs where SIGINT is ignored (a
        # job started in the background by a shell without job control): exec keeps an ignored signal ignored
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.execve(str(comio_path()), [str(comio_path()), "resync", "--config", str(a.config_path), "--target", TARGET,
                                      "--rate-limit", "100KB/s"], comio.sanitizer_env())
    out = b""
    deadline = time.monotonic() + 30
    try:
        while b"scanned" not in out and time.monotonic() < deadline:
            rl, _, _ = select.select([fd], [], [], 0.2)
            if rl:
                out += os.read(fd, 65536)
        assert b"scanned" in out, out
        os.write(fd, b"\x03")  # Ctrl-C on the terminal
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 2, (status, out)
    assert a.repld_status()["targets"][0]["sync"]["phase"] == "running"
    r = resync(a, "--target", TARGET, "--cancel")
    assert r.returncode == 0 and "cancelling" in r.stdout, r
    wait_until(lambda: a.repld_status()["targets"][0]["sync"]["phase"] == "cancelled", 30, interval=0.05,
               what="the resync cancelled")
    # --no-wait starts it and exits
    r = resync(a, "--target", TARGET, "--no-wait", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["answer"] == "ok", r
    converge_or_fail(a, b, timeout=60)
