"""test_sync_mode.py - replication.mode: sync (docs/replication.md, "Synchronous mode").

A site with a sync target answers a write only once the target holds it
(X-Comio-Replication: COMPLETED), or once its fallback applied (PENDING). Each
test checks B right after A answered, with its own client, and judges
convergence with `comio diff`. Every wait is bounded; no test asserts a time."""

import socket
import struct
import subprocess
import threading

from harness import comio
from harness.fake_replica import FakeReplica
from harness.replication import Site, comio_path, converge_or_fail, finish_sites, new_token, wait_until

HDR = "X-Comio-Replication"


def _sync_target(site):
    return site.status()["sync_targets"][0]


def _log_has(site, text):
    return text in site.storaged.log_path.read_text(errors="replace")


def _comio_status(site):
    return subprocess.run([str(comio_path()), "status", "--url", site.url()], capture_output=True, text=True,
                          timeout=30, env=comio.sanitizer_env())


def test_every_completed_write_is_on_the_target_when_answered(sites):
    a, b = sites(a_repl={"mode": "sync", "sync_timeout": "10s"})
    assert a.client().create_bucket("sync").header(HDR) == "COMPLETED"
    problems = []

    def writer(n):
        ca, cb = a.client(register=False), b.client(register=False)
        try:
            for i in range(25):
                key = "w%d/k%02d" % (n, i)
                r = ca.put("sync", key, (b"%d-%d;" % (n, i)) * (50 + i))
                if r.status != 200 or r.header(HDR) != "COMPLETED":
                    problems.append("PUT %s: %d %r" % (key, r.status, r.header(HDR)))
                    continue
                g = cb.get("sync", key)  # the moment A answered: B must hold it
                if g.status != 200 or g.header("ETag") != r.header("ETag"):
                    problems.append("%s on B right after COMPLETED: %d %r != %r" % (key, g.status, g.header("ETag"),
                                                                                   r.header("ETag")))
                if i % 5 == 4:
                    d = ca.delete("sync", key)
                    if d.status != 204 or d.header(HDR) != "COMPLETED":
                        problems.append("DELETE %s: %d %r" % (key, d.status, d.header(HDR)))
                    elif cb.get("sync", key).status != 404:
                        problems.append("%s still on B right after its DELETE was COMPLETED" % key)
        finally:
            ca.close()
            cb.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert not problems, problems[:20]
    converge_or_fail(a, b, timeout=30)
    st = _sync_target(a)
    assert st["state"] == "sync" and st["acked_seq"] is not None, st
    m = a.client().metrics()
    assert m.get("comio_replication_sync_writes_total", result="completed") >= 6 * 30
    assert m.get("comio_replication_sync_writes_total", result="pending") == 0


def test_completed_writes_to_one_key_are_on_the_target_or_overtaken(sites):
    """Writers racing on one key: an event superseded on A before it shipped is never sent, so its
    write is COMPLETED only once the write that superseded it is on B. Right after each COMPLETED
    reply B holds that version of the key or a newer one."""
    a, b = sites(a_repl={"mode": "sync", "sync_timeout": "10s"})
    problems = []

    def writer(n):
        ca, cb = a.client(register=False), b.client(register=False)
        try:
            for i in range(40):
                r = ca.put("sync", "hot", b"%d-%d" % (n, i))
                if r.status != 200 or r.header(HDR) != "COMPLETED":
                    problems.append("PUT %d-%d: %d %r" % (n, i, r.status, r.header(HDR)))
                    continue
                g = cb.head("sync", "hot")
                mine, held = int(r.header("X-Comio-Version")), int(g.header("X-Comio-Version") or 0)
                if g.status != 200 or held < mine:
                    problems.append("B holds version %d right after version %d was COMPLETED" % (held, mine))
        finally:
            ca.close()
            cb.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert not problems, problems[:20]
    converge_or_fail(a, b, timeout=30)


def test_async_site_replies_carry_no_replication_header(sites):
    a, b = sites()
    r = a.client().put("sync", "k", b"v")
    assert r.status == 200 and r.header(HDR) is None
    assert "sync_targets" not in a.status()


def test_target_down_pending_degraded_then_completed_again(sites):
    a, b = sites(a_repl={"mode": "sync", "sync_timeout": "500ms"})
    ca = a.client()
    assert ca.put("sync", "before", b"1").header(HDR) == "COMPLETED"
    b.stop_storaged()

    r = ca.put("sync", "during1", b"2")  # waits sync_timeout, then answered anyway
    assert r.status == 200 and r.header(HDR) == "PENDING", r
    st = _sync_target(a)
    assert st["state"] == "degraded" and st["degraded_total"] == 1, st
    assert a.client().metrics().get("comio_replication_sync_degraded", target=st["name"]) == 1
    assert _log_has(a, "sync target degraded")
    p = _comio_status(a)  # an alert: exit 1, and the target's block says so
    assert p.returncode == 1 and "degraded (fallback async after 500 ms)" in p.stdout, p.stdout + p.stderr
    # while degraded, writes are answered PENDING (without waiting the timeout again), and stay durable on A
    for i in range(5):
        r = ca.put("sync", "during%d" % (i + 2), b"3")
        assert r.status == 200 and r.header(HDR) == "PENDING", r
    assert ca.delete("sync", "before").header(HDR) == "PENDING"

    b.start_storaged()
    wait_until(lambda: _sync_target(a)["state"] == "sync", 30, what=lambda: a.describe())
    assert _log_has(a, "sync target caught up")
    cb = b.client()
    for i in range(6):  # what was PENDING reached B while it caught up
        assert cb.get("sync", "during%d" % (i + 1)).status == 200
    r = ca.put("sync", "after", b"4")
    assert r.header(HDR) == "COMPLETED", r
    assert cb.get("sync", "after").header("ETag") == r.header("ETag")
    assert a.client().metrics().get("comio_replication_sync_degraded", target=_sync_target(a)["name"]) == 0
    p = _comio_status(a)
    assert "sync (fallback async after 500 ms)" in p.stdout, p.stdout + p.stderr
    converge_or_fail(a, b, timeout=30)


def test_repld_killed_fallback_async_answers_pending(sites):
    a, b = sites(a_repl={"mode": "sync", "sync_timeout": "500ms"})
    ca = a.client()
    assert ca.put("sync", "k0", b"0").header(HDR) == "COMPLETED"
    a.kill9_repld()
    r = ca.put("sync", "k1", b"1")
    assert r.status == 200 and r.header(HDR) == "PENDING", r
    assert ca.get("sync", "k1").status == 200  # durable on A
    a.start_repld()
    converge_or_fail(a, b, timeout=30)
    wait_until(lambda: _sync_target(a)["state"] == "sync", 30, what=lambda: a.describe())
    r = ca.put("sync", "k2", b"2")
    assert r.header(HDR) == "COMPLETED", r
    assert b.client().get("sync", "k2").status == 200


def test_repld_killed_fallback_wait_answers_once_it_is_back(sites):
    a, b = sites(a_repl={"mode": "sync", "sync_timeout": "300ms", "sync_fallback": "wait"})
    ca = a.client()
    assert ca.put("sync", "k0", b"0").header(HDR) == "COMPLETED"
    a.kill9_repld()
    out = {}

    def put():
        c = a.client(register=False)
        try:
            out["r"] = c.put("sync", "k1", b"waited")
        finally:
            c.close()

    t = threading.Thread(target=put)
    t.start()
    # the write waits past sync_timeout: the target shows degraded, and nothing is answered
    wait_until(lambda: _sync_target(a)["state"] == "degraded", 30, what=lambda: a.describe())
    assert t.is_alive() and "r" not in out
    assert ca.get("sync", "k1").status == 200  # committed on A all the same
    a.start_repld()
    t.join(60)
    assert not t.is_alive()
    r = out["r"]
    assert r.status == 200 and r.header(HDR) == "COMPLETED", r
    assert b.client().get("sync", "k1").header("ETag") == r.header("ETag")
    wait_until(lambda: _sync_target(a)["state"] == "sync", 30, what=lambda: a.describe())
    converge_or_fail(a, b, timeout=30)


def test_a_crash_after_the_local_commit_before_the_ack_keeps_the_write(sites):
    """A's storaged is killed while a write waits for B (repld down, fallback wait): the client gets no
    answer, but the write was committed on A before the wait, so it is on A after the restart and reaches B."""
    a, b = sites(a_repl={"mode": "sync", "sync_timeout": "300ms", "sync_fallback": "wait"})
    ca = a.client()
    assert ca.put("sync", "k0", b"0").header(HDR) == "COMPLETED"
    a.kill9_repld()
    out = {}

    def put():
        c = a.client(register=False)
        try:
            out["r"] = c.put("sync", "k1", b"committed, never answered")
        except OSError as e:
            out["error"] = e
        finally:
            c.close()

    t = threading.Thread(target=put)
    t.start()
    wait_until(lambda: _sync_target(a)["state"] == "degraded", 30, what=lambda: a.describe())
    a.kill9_storaged()
    t.join(30)
    assert not t.is_alive() and "r" not in out, out
    a.start()
    assert a.client().get("sync", "k1").body == b"committed, never answered"
    converge_or_fail(a, b, timeout=30)
    assert b.client().get("sync", "k1").body == b"committed, never answered"


def test_a_write_the_target_refuses_for_good_is_pending(tmp_path):
    """A target that answers "retry" until the attempts are spent: the event is recorded as failed and
    the ack point moves past it, but the target does not hold it, so its write is PENDING, not COMPLETED."""
    token = new_token()
    fake = FakeReplica(token=token)
    fake.set_retry_keys({("syncf", "bad")})
    a = Site(tmp_path / "a", "site-a", repl={"remote_url": fake.url, "remote_token": token, "mode": "sync",
                                              "sync_timeout": "60s", "sync_fallback": "wait",
                                              "retry_attempts": 1, "retry_delay": "100ms"})
    try:
        a.start()
        ca = a.client()
        assert ca.put("syncf", "good", b"1").header(HDR) == "COMPLETED"
        r = ca.put("syncf", "bad", b"2")
        assert r.status == 200 and r.header(HDR) == "PENDING", r
        assert [e["key"] for e in a.list_failed()] == ["bad"]
        assert ca.put("syncf", "good2", b"3").header(HDR) == "COMPLETED"
    finally:
        problems = finish_sites([a])
        fake.close()
    assert not problems, problems


def test_a_client_that_gives_up_waiting_leaves_the_write_replicating(sites):
    """sync_fallback: wait, repld down: a client closes its connection while its PUT waits. The write
    stays committed on A, storaged goes on serving, and the write reaches B once repld is back."""
    a, b = sites(a_repl={"mode": "sync", "sync_timeout": "300ms", "sync_fallback": "wait"})
    a.kill9_repld()
    body = b"given up on"
    s = socket.create_connection((a.host, a.port), timeout=10)
    s.sendall(b"PUT /sync/gaveup HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    wait_until(lambda: a.client().get("sync", "gaveup").status == 200, 30, what="the PUT committed on A")
    wait_until(lambda: _sync_target(a)["state"] == "degraded", 30, what=lambda: a.describe())
    s.close()  # gives up: nothing was answered
    r = a.client().get("sync", "gaveup")
    assert r.status == 200 and r.body == body
    a.start_repld()
    converge_or_fail(a, b, timeout=30)
    assert b.client().get("sync", "gaveup").body == body
    assert a.client().put("sync", "after", b"x").header(HDR) == "COMPLETED"


def test_a_degraded_target_comes_back_while_writes_go_on(sites):
    """The way back from degraded does not need a pause in the writes: writers keep going while B
    returns, and the target is back to sync (and their writes COMPLETED) while they still write."""
    a, b = sites(a_repl={"mode": "sync", "sync_timeout": "300ms"})
    b.stop_storaged()
    assert a.client().put("sync", "first", b"x").header(HDR) == "PENDING"
    stop = threading.Event()
    seen, problems = [], []

    def writer(n):
        c = a.client(register=False)
        try:
            for i in range(20000):  # bounded; stopped long before
                if stop.is_set():
                    return
                r = c.put("sync", "w%d/%05d" % (n, i), b"y" * 100)
                if r.status != 200:
                    problems.append(r)
                    return
                seen.append(r.header(HDR))
        finally:
            c.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(seen) > 50, 30, what="writes while degraded")
        b.start_storaged()
        wait_until(lambda: _sync_target(a)["state"] == "sync", 30, what=lambda: a.describe())
        n = len(seen)
        wait_until(lambda: len(seen) > n + 20, 30, what="writes after the way back")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not problems, problems[:5]
    assert seen[-1] == "COMPLETED", seen[-20:]
    converge_or_fail(a, b, timeout=60)


def test_an_ack_point_beyond_the_log_is_not_trusted(sites):
    """The acknowledgement file as one left from before the metadata was restored from a backup: an ack
    point beyond the log's head. storaged does not trust it (PENDING after the timeout, never a false
    COMPLETED); a restarted repld stamps the file afresh."""
    a, b = sites(a_repl={"mode": "sync", "sync_timeout": "300ms"})
    ca = a.client()
    assert ca.put("sync", "k0", b"0").header(HDR) == "COMPLETED"
    a.kill9_repld()
    path = a.workdir / "store.img.meta" / "repl.acked"
    with open(path, "r+b") as f:  # slot 0's ack point (common/ackfile.h: 256-byte header, acked at +40)
        f.seek(256 + 40)
        f.write(struct.pack("=Q", 1 << 40))
    assert _sync_target(a)["acked_seq"] is None
    r = ca.put("sync", "k1", b"1")
    assert r.status == 200 and r.header(HDR) == "PENDING", r
    a.start_repld()
    converge_or_fail(a, b, timeout=30)
    wait_until(lambda: _sync_target(a)["state"] == "sync", 30, what=lambda: a.describe())
    assert ca.put("sync", "k2", b"2").header(HDR) == "COMPLETED"
