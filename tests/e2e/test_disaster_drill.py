"""test_disaster_drill.py - docs/operations.md, "Losing a site, promoting the other, failing back", run as written.

Two real sites on loopback: A takes the writes and ships them to B; B is a standby (the two-way config with
`replication.enabled: false`). The runbook's command blocks are parsed from the document and run step by step:
`comio` and `repld` lines as written (host names and the config path swapped for the test's), `sed` on the
site's own config file, and `systemctl` mapped onto the harness's process control. The test does between the
steps what the runbook leaves to the world: the disaster (SIGKILL of A's daemons, their files kept or wiped),
the clients moving from A to B and back.

  - A dies with an unshipped backlog (its link to B cut, then SIGKILL), B is promoted and takes writes, some to
    the keys of A's backlog; A returns with its files; fail back.
  - A's disk is lost: A comes back empty and B rebuilds it while clients keep writing to B, with SIGKILL of B's
    repld, A's storaged and B's storaged during the rebuild (the issue's kill loop during a rebuild:
    test_full_sync.py kills only repld, with no writers).

The checker owes nothing to the daemons' counters: from the clients' own records (every reply's X-Comio-Version
and X-Comio-Origin), each acknowledged write is the winner of its key on both sites (the largest (version,
origin); a deleted key absent on both), or a conflict loser kept (`GET /admin/conflicts` on either site), or
followed by a later write of its key; none is lost, nothing deleted comes back, and `comio diff` exits 0.
Every wait is bounded.
"""

import http.client
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from harness import comio
from harness.comio import md5
from harness.replication import Site, TcpProxy, comio_diff, finish_sites, new_token, snapshot, wait_until
from test_conflicts import conflicts

RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
SECTION = "## Losing a site, promoting the other, failing back"
BUCKET = "drill"
STEP_TIMEOUT = 60


# --- the runbook, parsed ------------------------------------------------------------------------------------------


def runbook_steps():
    """{step: [[(where, command, expected exit or None), ...] per sh block]}, step being "1", "2", "3a", ...;
    `where` is "A", "B" or None (anywhere), from the block's `# on A` / `# on B` comment lines."""
    text = RUNBOOK.read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    steps = {}
    for m in re.finditer(r"^### (\w+)\. .*?(?=^### |\Z)", text[start:end], re.S | re.M):
        blocks = []
        for body in re.findall(r"```sh\n(.*?)```", m.group(0), re.S):
            where, cmds = None, []
            for line in body.splitlines():
                line = line.strip()
                if not line:
                    continue
                if line.startswith("#"):
                    w = re.match(r"# on ([AB])\b", line)
                    where = w.group(1) if w else None
                    continue
                parts = re.split(r"\s+#\s", line, maxsplit=1)
                cmd, comment = parts[0].strip(), parts[1] if len(parts) > 1 else ""
                e = re.match(r"\s*exit (\d+)", comment)
                cmds.append((where, cmd, int(e.group(1)) if e else None))
            blocks.append(cmds)
        steps[m.group(1)] = blocks
    return steps


def test_the_runbook_parses_into_the_steps_the_drill_runs():
    steps = runbook_steps()
    assert sorted(steps) == ["1", "2", "3a", "3b", "4", "5", "6"], steps.keys()
    assert all(steps[s] for s in steps if s != "3"), steps
    kinds = {c.split()[0] for blocks in steps.values() for b in blocks for _, c, _ in b}
    assert kinds <= {"comio", "repld", "sudo"}, kinds
    # the promotion is one setting and a restart, on B; fail back is a resync of A from B
    assert [c for w, c, _ in steps["2"][0] if w == "B"][0].startswith("sudo sed -i 's/^  enabled: false/")
    assert any("--resync --target site-a" in c for _, c, _ in steps["5"][0])


class Runbook:
    """Runs the runbook's steps against sites a and b (harness Sites)."""

    def __init__(self, a, b):
        self.sites = {"A": a, "B": b}
        self.steps = runbook_steps()
        self.ran = []
        self.env = dict(comio.sanitizer_env(), PATH="%s:%s" % (comio.bin_dir(), os.environ["PATH"]))

    def run(self, step, block=None):
        blocks = self.steps[step] if block is None else [self.steps[step][block]]
        for cmds in blocks:
            for where, cmd, expect in cmds:
                self.one(where, cmd, expect, step)

    def ran_every_command_of(self, steps):
        """Fails unless every command of `steps` ran (the test follows the runbook whole, not a part of it)."""
        want = [(s, w, c) for s in steps for b in self.steps[s] for w, c, _ in b]
        assert sorted(self.ran, key=repr) == sorted(want, key=repr), (self.ran, want)

    def one(self, where, cmd, expect, step=None):
        if step is not None:
            self.ran.append((step, where, cmd))
        site = self.sites.get(where)
        if cmd.startswith("sudo "):
            cmd = cmd[len("sudo "):]
        if cmd.startswith("systemctl "):
            assert site is not None, "systemctl without `# on A|B`: %s" % cmd
            return self.systemctl(site, cmd.split()[1:])
        for name, s in self.sites.items():
            cmd = cmd.replace("http://site-%s:8080" % name.lower(), s.url())
        if site is not None:
            cmd = cmd.replace("/etc/comio/config.yaml", str(site.config_path))
        assert "/etc/comio" not in cmd and "site-a:8080" not in cmd and "site-b:8080" not in cmd, cmd
        holder = {}

        def attempt():
            p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, errors="replace", timeout=60,
                               env=self.env)
            assert comio.sanitizer_report(p.stderr) is None, p.stderr[-4000:]
            holder["p"] = p
            return p.returncode == (0 if expect is None else expect)
        if expect is None:
            assert attempt(), "%s: exit %d\n%s\n%s" % (cmd, holder["p"].returncode, holder["p"].stdout[-2000:],
                                                       holder["p"].stderr[-2000:])
        else:
            wait_until(attempt, STEP_TIMEOUT, interval=0.2,
                       what=lambda: "`%s` to exit %d (last: %d, %s %s)\n%s" % (
                           cmd, expect, holder["p"].returncode, holder["p"].stdout[-1500:],
                           holder["p"].stderr[-1500:], "\n".join(s.describe() for s in self.sites.values())))

    @staticmethod
    def enabled(site):
        return re.search(r"^  enabled: true$", site.config_path.read_text(), re.M) is not None

    def systemctl(self, site, args):
        verb, units = args[0], args[1:]
        if verb == "enable" and units[0] == "--now":
            verb, units = "start", units[1:]
        assert set(units) <= {"comio-storaged", "comio-repld"}, args
        if verb == "start":
            if "comio-storaged" in units:
                site.start_storaged()
            if "comio-repld" in units:
                self.start_repld(site)
        elif verb == "restart":
            assert units == ["comio-storaged"], args
            had_repld = site.repld.alive()  # PartOf: restarting storaged restarts repld
            if had_repld:
                assert site.stop_repld() == 0
            assert site.stop_storaged() == 0
            site.start_storaged()
            if had_repld:
                self.start_repld(site)
        elif verb == "stop":
            assert units == ["comio-repld"], args
            assert site.stop_repld() == 0
        else:
            raise AssertionError("systemctl %s: not mapped" % " ".join(args))

    def start_repld(self, site):
        if self.enabled(site):
            site.start_repld()
        else:  # what systemd sees: a clean exit that ships nothing
            r = site.repld_cmd()
            assert r.returncode == 0 and "nothing to ship" in r.stdout + r.stderr, r


# --- the clients' records ----------------------------------------------------------------------------------------


class Record:
    """Every mutation sent, from the client's side: (site, op, key, (version, origin) or None, md5, t0, t1,
    acked). An op without a reply may or may not have happened (acked False). Thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ops = []
        self.checkpoints = []  # times at which both sites were seen to agree

    def send(self, site, c, op, key, data=None):
        t0 = time.monotonic()
        try:
            r = c.put(BUCKET, key, data) if op == "PUT" else c.delete(BUCKET, key)
        except (OSError, http.client.HTTPException):  # the site is being killed: it may or may not have committed
            with self.lock:
                self.ops.append((site.site_id, op, key, None, data and md5(data), t0, time.monotonic(), False))
            return None
        t1 = time.monotonic()
        if r.status >= 500:
            with self.lock:
                self.ops.append((site.site_id, op, key, None, data and md5(data), t0, t1, False))
            return r
        assert r.status == (200 if op == "PUT" else 204), (op, key, r)
        v = r.header("X-Comio-Version")
        if v is None:  # a DELETE of a key the site does not hold: nothing changed
            return r
        with self.lock:
            self.ops.append((site.site_id, op, key, (int(v), r.header("X-Comio-Origin")), data and md5(data), t0,
                             t1, True))
        return r

    def checkpoint(self):
        self.checkpoints.append(time.monotonic())


def site_state(site):
    """{key: ((version, origin), md5)} of every object the site lists in BUCKET, read with GET."""
    c = site.client()
    keys = list(snapshot(site).get(BUCKET, {}))
    out = {}
    for k in keys:
        r = c.get(BUCKET, k)
        assert r.status == 200, (k, r)
        out[k] = ((int(r.header("X-Comio-Version")), r.header("X-Comio-Origin")), md5(r.body))
    return out


def classify(rec, a, b):
    """Classes every acknowledged write: {"winner": n, "kept loser": n, "followed": n}; fails with the lost ones,
    and with any key whose state on either site no write explains."""
    sa, sb = site_state(a), site_state(b)
    assert sa == sb, "the sites differ:\n%r\n%r" % (sorted(set(sa.items()) ^ set(sb.items()))[:20], len(sa))
    kept = set(conflicts(a, BUCKET)) | set(conflicts(b, BUCKET))
    per_key = {}
    for op in rec.ops:
        per_key.setdefault(op[2], []).append(op)
    bad, classes = [], {"winner": 0, "kept loser": 0, "followed": 0}
    for key in sorted(set(per_key) | set(sa)):
        ops = per_key.get(key, [])
        acked = [o for o in ops if o[7]]
        unknown = [o for o in ops if not o[7]]
        win = max(acked, key=lambda o: o[3]) if acked else None
        have = sa.get(key)
        if win is not None and win[1] == "PUT" and have == (win[3], win[4]):
            pass
        elif (win is None or win[1] == "DELETE") and have is None:
            pass
        elif have is not None and (win is None or have[0] > win[3]) and \
                any(u[1] == "PUT" and u[4] == have[1] for u in unknown):
            win = None  # a write without a reply took effect: it is the winner, not one recorded
        elif have is None and any(u[1] == "DELETE" for u in unknown):
            win = None
        else:
            bad.append("%s: both sites hold %r, the acknowledged writes say %r" % (key, have, win))
            continue
        for o in acked:
            if o is win:
                classes["winner"] += 1
                continue
            site, op, _, vo, digest, t0, t1, _ = o
            if (BUCKET, key, vo[0], vo[1]) in kept:
                classes["kept loser"] += 1
                continue
            known = next((t for t in rec.checkpoints if t > t1), None)  # both sites had it from then on

            def follows(w):
                later = w[3] is None or w[3] > vo
                return w is not o and later and w[5] > t1 and (w[0] == site or (known is not None and w[5] > known))
            if any(follows(w) for w in ops):
                classes["followed"] += 1
                continue
            bad.append("%s: acknowledged %s %r on %s is lost: neither the winner %r, nor a kept loser, nor followed "
                       "by a later write" % (key, op, vo, site, win and win[3]))
    assert not bad, "\n".join(bad[:40]) + "\nkept losers: %r" % sorted(kept)[:40]
    return classes, kept


# --- the sites --------------------------------------------------------------------------------------------------


@pytest.fixture
def drill_sites(tmp_path):
    """(a, b, proxy): A ships to B through a proxy that can cut the link and accepts B's token; B is the standby,
    its target site-a written down but replication disabled (docs/operations.md, "Prepare before you need it")."""
    t_ab, t_ba = new_token(), new_token()
    pa = comio.free_port()
    b = Site(tmp_path / "b", "site-b", accept_token=t_ab, size="64MB",
             # inline threshold of one byte: A fetches every object B ships from B, and the rebuild's rate is
             # limited (as an operator rebuilding beside production would), so a rebuild of A lasts long enough
             # for the kills of the second drill to land inside it
             repl={"targets": [{"name": "site-a", "url": "http://127.0.0.1:%d" % pa, "token": t_ba,
                                "inline_threshold": "1"}],
                   "retry_attempts": 100, "batch_size": 50, "sync_rate_limit": "60KB/s"},
             extra={"replication": {"enabled": False}})
    proxy = TcpProxy(b.port)
    a = Site(tmp_path / "a", "site-a", port=pa, accept_token=t_ba, size="64MB",
             repl={"targets": [{"name": "site-b", "url": proxy.url, "token": t_ab}], "retry_attempts": 100})
    b.start_storaged()
    a.start()
    try:
        yield a, b, proxy
    finally:
        proxy.close()
        problems = finish_sites([a, b])
        if problems:
            pytest.fail("teardown:\n" + "\n".join(problems), pytrace=False)


def agree(a, b, rec):
    """Waits for `comio diff` to exit 0 and A's log to drain to B, then notes the time."""
    wait_until(lambda: not comio_diff(a, b)[0] and a.status()["events_pending"] == 0, 60,
               what=lambda: a.describe() + "\n" + b.describe())
    rec.checkpoint()


def body(tag, i, big=False):
    return (b"%s %d " % (tag.encode(), i)) * (12000 if big else 1 + i % 40)


def wipe(site):
    for p in site.workdir.iterdir():
        if p.name.startswith("store.img"):
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def test_drill_a_dies_with_a_backlog_and_returns_with_its_files(drill_sites):
    a, b, proxy = drill_sites
    rb = Runbook(a, b)
    rec = Record()
    ac, bc = a.client(), b.client()
    assert ac.create_bucket(BUCKET).status in (200, 201)
    for i in range(60):
        rec.send(a, ac, "PUT", "k%03d" % i, body("a1", i, big=(i % 20 == 3)))
    for i in range(12):
        rec.send(a, ac, "PUT", "h%02d" % i, body("a1h", i))
    agree(a, b, rec)

    # A's link to B goes; A acknowledges a backlog that never reaches B, then dies (SIGKILL, files kept)
    proxy.partition()
    for i in range(12):
        rec.send(a, ac, "PUT", "h%02d" % i, body("a-backlog", i, big=(i == 7)))
    for i in range(10):
        rec.send(a, ac, "PUT", "k%03d" % i, body("a-backlog-k", i))
    for i in range(10, 15):
        rec.send(a, ac, "DELETE", "k%03d" % i)
    for i in range(20):
        rec.send(a, ac, "PUT", "a-only-%02d" % i, body("a-only", i))
    backlog = a.status()["events_pending"]
    assert backlog >= 40, a.describe()
    a.kill9_repld()
    a.kill9_storaged()

    rb.run("1")
    rb.run("2")
    # the clients move to B: some of A's backlog keys again, deletes of keys A wrote, new keys
    for i in range(6):
        rec.send(b, bc, "PUT", "h%02d" % i, body("b-promoted", i, big=(i == 2)))
    for i in range(6, 9):
        rec.send(b, bc, "DELETE", "h%02d" % i)
    for i in range(10, 13):
        rec.send(b, bc, "PUT", "k%03d" % i, body("b-over-a-delete", i))
    for i in range(50, 55):
        rec.send(b, bc, "DELETE", "k%03d" % i)
    for i in range(20):
        rec.send(b, bc, "PUT", "b-only-%02d" % i, body("b-only", i))
    assert b.status()["events_pending"] >= 30, b.describe()

    # A comes back with its files, its network too
    proxy.heal(reset=True)
    rb.run("3a")
    rb.run("4")
    rb.run("5", 0)
    rec.checkpoint()  # the resync is done and comio diff exits 0: both sites hold everything written so far
    ac = a.client()  # the clients move back to A
    for i in range(5):
        rec.send(a, ac, "PUT", "after-%02d" % i, body("a-back", i))
    rec.send(a, ac, "DELETE", "k055")
    rb.run("5", 1)
    rb.run("6")
    assert not b.repld.alive() and not Runbook.enabled(b)

    rb.ran_every_command_of(["1", "2", "3a", "4", "5", "6"])
    classes, kept = classify(rec, a, b)
    print("drill: %d writes acknowledged (%d in A's backlog); %r" % (sum(o[7] for o in rec.ops), backlog, classes))
    # the races happened and were decided as the rules say: B's later writes won, A's backlog writes are kept
    assert classes["kept loser"] >= 12, (classes, kept)
    assert all((BUCKET, "h%02d" % i) in {k[:2] for k in kept} for i in range(9)), kept
    assert a.list_failed() == [] and b.list_failed() == []
    assert comio_diff(a, b)[0] == []


@pytest.mark.long
def test_drill_a_loses_its_disk_and_is_rebuilt_while_b_takes_writes_through_kills(drill_sites):
    a, b, proxy = drill_sites
    rb = Runbook(a, b)
    rec = Record()
    ac = a.client()
    assert ac.create_bucket(BUCKET).status in (200, 201)
    n = 1500
    for i in range(n):
        rec.send(a, ac, "PUT", "k%04d" % i, body("a1", i, big=(i % 300 == 7)))
    for i in range(0, 100, 10):
        rec.send(a, ac, "DELETE", "k%04d" % i)
    agree(a, b, rec)  # nothing unshipped: what A had not shipped would be lost with its disk (the runbook says so)
    a.kill9_repld()
    a.kill9_storaged()
    wipe(a)

    rb.run("1")
    rb.run("2")
    stop = threading.Event()
    errors = []

    def write_to_b():
        c = b.client(register=False, timeout=10)
        try:
            i = 0
            while not stop.is_set() and i < 3000:
                if i % 4 == 3:
                    rec.send(b, c, "DELETE", "k%04d" % (100 + (i * 7) % (n - 100)))
                else:
                    rec.send(b, c, "PUT", "live-%05d" % i, body("b-live", i))
                    if rec.ops and not rec.ops[-1][7]:
                        c.close()
                        stop.wait(0.05)
                i += 1
        except BaseException as e:  # reported below
            errors.append(e)
        finally:
            c.close()
    writer = threading.Thread(target=write_to_b, daemon=True)
    writer.start()
    try:
        # step 3b: A starts (empty); its check is run once the kill loop is over
        block = rb.steps["3b"][0]
        start_a = [x for x in block if x[1].startswith("sudo systemctl")]
        checks = [x for x in block if not x[1].startswith("sudo systemctl")]
        for where, cmd, expect in start_a:
            rb.one(where, cmd, expect, "3b")

        def rebuild():
            return b.status()["targets"][0]["sync"]
        # the kill loop: each kill lands while the rebuild runs, once it has shipped more since the last one
        base = 0
        for victim in ("b-repld", "a-storaged", "b-storaged", "b-repld"):
            def under_way():
                s = rebuild()
                assert s["phase"] in ("idle", "running"), \
                    "the rebuild finished before the %s kill: make it longer (%r)" % (victim, s)
                return s["phase"] == "running" and s["objects_shipped"] >= base + 40
            wait_until(under_way, 60, interval=0.02, what=lambda: "the rebuild under way\n" + b.describe())
            base = rebuild()["objects_shipped"]
            if victim == "b-repld":
                b.kill9_repld()
                b.start_repld()
            elif victim == "a-storaged":
                a.kill9_storaged()
                a.start_storaged()
            else:
                b.kill9_storaged()
                b.start_storaged()
        for where, cmd, expect in checks:
            rb.one(where, cmd, expect, "3b")
    finally:
        stop.set()
        writer.join(60)
    assert not writer.is_alive() and not errors, errors
    assert sum(1 for o in rec.ops if o[0] == "site-b" and o[7]) > 100  # B took writes throughout the rebuild
    assert b.status()["targets"][0]["sync"]["objects_failed"] == 0, b.describe()

    rb.run("4")
    rb.run("5", 0)
    rec.checkpoint()
    ac = a.client()
    for i in range(5):
        rec.send(a, ac, "PUT", "after-%02d" % i, body("a-back", i))
    rb.run("5", 1)
    rb.run("6")

    rb.ran_every_command_of(["1", "2", "3b", "4", "5", "6"])
    classes, kept = classify(rec, a, b)
    print("disk lost: %d writes acknowledged; %r" % (sum(o[7] for o in rec.ops), classes))
    assert classes["winner"] >= n - 200 and classes["kept loser"] == 0, classes
    assert a.list_failed() == [] and b.list_failed() == []
