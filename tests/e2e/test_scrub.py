"""test_scrub.py - the background scrub (storaged/scrub.h, docs/operations.md "Scrub"): a pass reads every object,
verifies its block checksums, fills in those of objects written without them (after their MD5), records the damage
it finds (status, metrics, log, the "damaged" table), keeps to storage.scrub_rate, and resumes after a SIGKILL.
`comio scrub --now` starts a pass and watches it; its exit status says whether damage was found.

Damage is written into the image file behind storaged's back (harness/damage.py)."""

import os
import pty
import select
import subprocess
import time

from harness import comio
from harness.comio import run_storaged
from harness.damage import damage, find_extent
from harness.replication import comio_path

BLOCK = 64 * 1024
MiB = 1 << 20
FAST = "storage:\n  scrub_rate: 10GB/s\n"


def scrub_cli(srv, *args, timeout=120):
    argv = [str(comio_path()), "scrub", "--url", srv.url()] + list(args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=comio.sanitizer_env())


def status(c):
    r = c.raw("GET", "/admin/scrub")
    assert r.status == 200, r
    return r.json()


def wait_for(what, cond, timeout=60, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out waiting for " + what)


def wait_first_pass(c):
    """A new store's first pass runs at once over nothing: wait until it is over."""
    return wait_for("the first pass", lambda: (lambda s: s if s["last"] is not None and not s["running"] else None)(status(c)))


def test_scrub_reports_every_damaged_object(make_server):
    srv = make_server(config=FAST)
    c = srv.client()
    wait_first_pass(c)
    objects = {}
    for n in [0, 1, BLOCK, BLOCK + 1, 3 * MiB + 7]:
        data = os.urandom(n)
        assert c.put("bkt", "obj-%d" % n, data).status == 200
        objects["obj-%d" % n] = data
    # the 64 KiB + 1 object in its 1-byte last block, the large one in block 20
    damage(srv.storage, find_extent(srv.storage, objects["obj-%d" % (BLOCK + 1)]) + BLOCK)
    damage(srv.storage, find_extent(srv.storage, objects["obj-%d" % (3 * MiB + 7)]) + 20 * BLOCK + 5)

    r = scrub_cli(srv, "--now")
    assert r.returncode == 1, r  # damage found
    assert "obj-65537  block 1" in r.stdout and "obj-3145735  block 20" in r.stdout, r.stdout
    s = status(c)
    assert s["running"] is False and s["last"]["pass"] == 2, s
    last = s["last"]
    # a damaged object is read up to the 1 MiB chunk that holds its first bad block
    read = 0 + 1 + BLOCK + (BLOCK + 1) + 2 * MiB
    assert (last["objects"], last["bytes"], last["damaged"], last["filled"]) == (5, read, 2, 0), s
    got = sorted((d["bucket"], d["key"], d["block"]) for d in s["damaged"])
    assert got == [("bkt", "obj-3145735", 20), ("bkt", "obj-65537", 1)], s
    assert s["damaged_objects"] == 2
    m = c.metrics()
    assert m.value("comio_scrub_damaged_objects") == 2
    assert m.value("comio_checksum_mismatches_total", path="scrub") == 2
    assert m.value("comio_scrub_passes_total") == 2
    assert m.value("comio_scrub_running") == 0
    assert m.value("comio_scrub_objects_total") == 5
    assert m.value("comio_scrub_bytes_total") == last["bytes"]
    assert m.value("comio_scrub_last_pass_end_seconds") > time.time() - 60
    assert srv.log_path.read_text().count("object data damaged: found by the scrub") == 2
    # without --now: the status, exit 1 while damage is on record
    r = scrub_cli(srv)
    assert r.returncode == 1 and "damaged objects on record: 2" in r.stdout, r
    r = subprocess.run([str(comio_path()), "status", "--url", srv.url()], capture_output=True, text=True, timeout=30,
                       env=comio.sanitizer_env())
    assert "last pass 2 ended" in r.stdout and "2 damaged on record" in r.stdout, r
    # rewritten or deleted, a damaged object leaves the record
    assert c.put("bkt", "obj-65537", b"new bytes").status == 200
    assert [d["key"] for d in status(c)["damaged"]] == ["obj-3145735"]
    assert c.delete("bkt", "obj-3145735").status in (200, 204)
    assert status(c)["damaged"] == [] and c.metrics().value("comio_scrub_damaged_objects") == 0
    r = scrub_cli(srv, "--now", "--json")
    assert r.returncode == 0, r
    assert '"damaged":0' in r.stdout


def test_old_objects_get_their_checksums(make_server):
    """Written with storage.checksums off: no checksum records. A pass checks their bytes against the MD5 ETag and
    fills the records in; one whose bytes fail the MD5 is damaged (block unknown) and gets none."""
    srv = make_server(config="storage:\n  checksums: false\n")
    c = srv.client()
    objects = {}
    for n in [0, 1, BLOCK, BLOCK + 1, 2 * MiB + 3]:
        objects["old-%d" % n] = os.urandom(n)
    bad = os.urandom(3 * BLOCK)
    for k, v in list(objects.items()) + [("bad", bad)]:
        assert c.put("bkt", k, v).status == 200
    srv.stop()
    srv.config_path.write_text(FAST)
    srv.start()
    c = srv.client()
    s = status(c)
    # a store never scrubbed that holds objects: its first scheduled pass waits an interval
    assert s["running"] is False and s["last"] is None and s["next"] is not None, s
    assert c.metrics().value("comio_checksum_objects_unverified") == 6
    damage(srv.storage, find_extent(srv.storage, bad) + BLOCK + 9)

    r = scrub_cli(srv, "--now")
    assert r.returncode == 1, r
    s = status(c)
    assert (s["last"]["objects"], s["last"]["filled"], s["last"]["damaged"]) == (6, 5, 1), s
    assert [(d["key"], d["block"]) for d in s["damaged"]] == [("bad", None)], s
    assert "bkt/bad  block unknown (MD5)" in r.stdout, r.stdout
    m = c.metrics()
    assert m.value("comio_checksum_objects_unverified") == 1  # the damaged one has no record
    assert m.value("comio_scrub_filled_total") == 5
    # the records filled in are checked by GET: a later damage is caught
    big = objects["old-%d" % (2 * MiB + 3)]
    assert c.get("bkt", "old-%d" % (2 * MiB + 3)).body == big
    damage(srv.storage, find_extent(srv.storage, big) + 7)
    assert c.get("bkt", "old-%d" % (2 * MiB + 3)).status == 503
    assert c.get("bkt", "old-1").body == objects["old-1"]


def test_pass_resumes_after_sigkill(make_server):
    srv = make_server(size="128MB", config="storage:\n  scrub_rate: 2MB/s\n")
    c = srv.client()
    wait_first_pass(c)
    n = 8
    for i in range(n):
        assert c.put("bkt", "k%02d" % i, os.urandom(MiB)).status == 200
    r = c.raw("POST", "/admin/scrub")
    assert r.status == 202, r
    s = wait_for("progress", lambda: (lambda s: s if s["running"] and s["current"]["objects"] >= 2 else None)(status(c)))
    assert s["current"]["position"]["key"] >= "k01", s
    r = c.raw("POST", "/admin/scrub")  # one runs: refused, nothing changes
    assert r.status == 409 and b"ScrubRunning" in r.body, r
    r = scrub_cli(srv, "--now")
    assert r.returncode == 4 and "runs already" in r.stderr, r
    time.sleep(1.3)  # the progress is written at most once a second
    before = status(c)["current"]
    srv.kill9()
    srv.start()
    c = srv.client()
    s = status(c)
    assert s["running"] is True and s["current"]["pass"] == before["pass"], s
    assert 0 < s["current"]["objects"] <= before["objects"], (s, before)
    assert s["current"]["position"]["bucket"] == "bkt" and s["current"]["position"]["key"] >= "k01", s
    # the status reads the persisted state at once; the scrub thread logs its resume when it starts
    wait_for("the resume's log line", lambda: "scrub pass resumed" in srv.log_path.read_text(), timeout=30)
    s = wait_for("the end of the pass", lambda: (lambda s: s if not s["running"] else None)(status(c)), timeout=60)
    assert s["last"]["pass"] == before["pass"], s
    # objects counted once: the ones done before the last record, then the rest after the restart
    assert (s["last"]["objects"], s["last"]["bytes"], s["last"]["damaged"]) == (n, n * MiB, 0), s


def test_rate_is_honoured(make_server):
    srv = make_server(size="128MB", config="storage:\n  scrub_rate: 4MB/s\n")
    c = srv.client()
    wait_first_pass(c)
    total = 0
    for i in range(6):
        assert c.put("bkt", "k%d" % i, os.urandom(2 * MiB)).status == 200
        total += 2 * MiB
    t0 = time.monotonic()
    r = scrub_cli(srv, "--now")
    took = time.monotonic() - t0
    assert r.returncode == 0, r
    s = status(c)
    assert s["last"]["bytes"] == total
    # a lower bound only: 12.6 MB at 4 MB/s is at least ~3.1 s
    assert took >= 0.9 * total / 4e6 and s["last"]["seconds"] >= 0.9 * total / 4e6, (took, s)


def test_writes_and_deletes_during_a_pass(make_server):
    srv = make_server(size="128MB", config="storage:\n  scrub_rate: 2MB/s\n")
    c = srv.client()
    wait_first_pass(c)
    for i in range(10):
        assert c.put("bkt", "k%02d" % i, os.urandom(512 * 1024)).status == 200
    assert c.raw("POST", "/admin/scrub").status == 202
    wait_for("the pass", lambda: status(c)["running"])
    current = {}
    for i in range(10):
        key = "k%02d" % i
        if i % 3 == 0:
            assert c.delete("bkt", key).status in (200, 204)
        else:
            data = os.urandom(300 * 1024 + i)
            assert c.put("bkt", key, data).status == 200
            current[key] = data
        data = os.urandom(100 * 1024 + i)
        assert c.put("bkt", "new%02d" % i, data).status == 200
        current["new%02d" % i] = data
        time.sleep(0.1)
    s = wait_for("the end of the pass", lambda: (lambda s: s if not s["running"] else None)(status(c)), timeout=60)
    assert s["last"]["damaged"] == 0 and s["damaged"] == [], s
    for k, v in current.items():
        assert c.get("bkt", k).body == v, k
    r = scrub_cli(srv, "--now")
    assert r.returncode == 0, r
    s = status(c)
    assert (s["last"]["objects"], s["last"]["damaged"], s["last"]["filled"]) == (len(current), 0, 0), s


def test_admin_scrub_needs_the_token(make_server):
    srv = make_server(token="s3cret-token", config="server:\n  access_token: s3cret-token\n" + FAST)
    c = srv.client(token="")
    assert c.raw("GET", "/admin/scrub").status == 401
    assert c.raw("POST", "/admin/scrub").status == 401
    r = scrub_cli(srv)
    assert r.returncode == 3 and "401" in r.stderr, r
    r = scrub_cli(srv, "--token", "s3cret-token")
    assert r.returncode == 0, r
    r = scrub_cli(srv, "--bogus")
    assert r.returncode == 2 and "unknown option" in r.stderr, r


def test_bad_config_values_are_refused(make_server):
    for text, want in [("storage:\n  scrub_rate: fast\n", "config.yaml:2: storage.scrub_rate: "),
                       ("storage:\n  scrub_interval: -3d\n", "config.yaml:2: storage.scrub_interval: ")]:
        srv = make_server(start=False, config=text)
        p = run_storaged(srv.argv()[1:], srv.workdir)
        assert p.returncode == 2 and want in p.stderr, (text, p.stderr)
        assert not srv.storage.exists()  # nothing created


def test_checksums_off_has_no_scrub(make_server):
    srv = make_server(config="storage:\n  checksums: false\n")
    c = srv.client()
    s = status(c)
    assert s["enabled"] is False and s["running"] is False and s["last"] is None, s
    r = c.raw("POST", "/admin/scrub")
    assert r.status == 409 and b"ScrubDisabled" in r.body, r
    r = scrub_cli(srv, "--now")
    assert r.returncode == 3 and "ScrubDisabled" in r.stderr, r


def test_progress_bar_on_a_terminal(make_server):
    srv = make_server(size="128MB", config="storage:\n  scrub_rate: 2MB/s\n")
    c = srv.client()
    wait_first_pass(c)
    for i in range(4):
        assert c.put("bkt", "k%d" % i, os.urandom(MiB)).status == 200
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(str(comio_path()), [str(comio_path()), "scrub", "--now", "--url", srv.url()], comio.sanitizer_env())
    out = b""
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
        _, st = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    text = out.decode(errors="replace")
    assert os.waitstatus_to_exitcode(st) == 0, text
    assert "] scrub pass 2: bkt/k" in text and "\r\033[K" in text, text
    assert "scrub finished: pass 2: 4 objects (4.2MB), damaged 0" in text, text


def test_object_rewritten_while_filled_in_is_skipped(make_server):
    """An object without checksums rewritten while the pass reads it: its old bytes match the old MD5, but the record
    is not written (the object is no longer that version): skipped, and the new object keeps its own checksums."""
    srv = make_server(size="128MB", config="storage:\n  checksums: false\n")
    c = srv.client()
    assert c.put("bkt", "big", os.urandom(4 * MiB)).status == 200
    srv.stop()
    srv.config_path.write_text("storage:\n  scrub_rate: 1MB/s\n")
    srv.start()
    c = srv.client()
    assert c.raw("POST", "/admin/scrub").status == 202
    wait_for("the pass", lambda: status(c)["running"])
    time.sleep(1.0)  # about 1 MB of the 4.2 read
    s = status(c)
    assert s["running"] and s["current"]["objects"] == 0, s  # still reading it
    new = os.urandom(4 * MiB)
    assert c.put("bkt", "big", new).status == 200
    s = wait_for("the end of the pass", lambda: (lambda s: s if not s["running"] else None)(status(c)), timeout=30)
    assert (s["last"]["objects"], s["last"]["filled"], s["last"]["skipped"], s["last"]["damaged"]) == (1, 0, 1, 0), s
    assert c.metrics().value("comio_checksum_objects_unverified") == 0  # the new bytes have their own
    damage(srv.storage, find_extent(srv.storage, new) + 3)
    assert c.get("bkt", "big").status == 503  # and they are the ones checked
