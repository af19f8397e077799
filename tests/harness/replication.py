"""replication.py - end-to-end helpers for two-site replication.

Site runs one site from a config file in its own directory: storaged (through
comio.Server, so readiness, stop and the sanitizer check are shared) and,
when replication is enabled, repld (Repld below), each started, stopped and
killed on its own. The `sites` fixture builds a primary A shipping to a
replica B and always tears both down.

The oracle of every test is independent of the daemons' own counters:
  - diff()/wait_converged() compare two sites with `comio diff` (keys, sizes,
    ETags, through the public listing API), then the bytes of a sample;
    snapshot()/diff_snapshots() do the same listing comparison in Python,
    for bare clients and to check comio diff itself;
  - Workload records what the client was told (acknowledged PUTs with their
    version and MD5, acknowledged DELETEs and PURGEs, and requests whose
    outcome is unknown) and derives what must be on a site.
Also: Writer (a client thread that survives a site going down), TcpProxy (a
relay between the sites that can partition the network), make_test_ca (a CA
and a certificate for HTTPS sites).
Every wait and loop here is bounded in count and time.
"""

import hashlib
import hmac
import http.client
import json
import random
import secrets
import select
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from . import comio
from .comio import Client, md5

REPLD_STOP_TIMEOUT = 25.0
STORAGED_STOP_TIMEOUT = 25.0  # repld finishes batches in flight for up to 10 s after SIGTERM
CTL_TIMEOUT = 2.0

# Defaults of the replication block: small delays so that tests stay fast.
REPL_DEFAULTS = {
    "batch_size": 100,
    "batch_interval": "100ms",
    "retry_attempts": 3,
    "retry_delay": "200ms",
    "workers": 2,
    "inline_threshold": "64KB",
}


def repld_path():
    return comio.bin_dir() / "repld"


def comio_path():
    return comio.bin_dir() / "comio"


def new_token():
    return secrets.token_hex(32)


def _yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML double-quoted scalar


def render_config(sections):
    """YAML text from {section: {key: value, {subkey: value} or [{subkey: value}, ...]}}; None values are left
    out. A list of dicts is a YAML sequence of mappings (replication.targets)."""
    lines = []
    for sec, keys in sections.items():
        body = [(k, v) for k, v in keys.items() if v is not None]
        if not body:
            continue
        lines.append("%s:" % sec)
        for k, v in body:
            if isinstance(v, dict):
                lines.append("  %s:" % k)
                lines.extend("    %s: %s" % (k2, _yaml_scalar(v2)) for k2, v2 in v.items() if v2 is not None)
            elif isinstance(v, list):
                lines.append("  %s:" % k)
                for item in v:
                    fields = ["%s: %s" % (k2, _yaml_scalar(v2)) for k2, v2 in item.items() if v2 is not None]
                    lines.extend(("    - " if i == 0 else "      ") + f for i, f in enumerate(fields))
            else:
                lines.append("  %s: %s" % (k, _yaml_scalar(v)))
    return "\n".join(lines) + "\n"


def ctl_query(path, cmd, timeout=CTL_TIMEOUT):
    """Sends one command to repld's control socket; returns the answer text, or None when nobody answers."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(path))
        s.sendall(cmd.encode() + b"\n")
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        s.close()


def parse_log_lines(text):
    """The JSON objects among the lines of a log (other lines are skipped)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


# --- repld --------------------------------------------------------------------------------------------------------


class Repld(comio.DaemonLog):
    """One repld process for a site: `repld --config FILE`, logging to DIR/repld.log."""

    def __init__(self, site):
        self.site = site
        self.log_path = site.workdir / "repld.log"
        self.proc = None
        self.problems = []

    def argv(self):
        return [str(repld_path()), "--config", str(self.site.config_path)]

    def start(self, wait=True):
        assert self.proc is None, "repld already running"
        exe = repld_path()
        assert exe.exists(), "%s does not exist: build first (cmake --build build)" % exe
        with open(self.log_path, "ab") as log:
            log.write(("\n=== start: %s\n" % " ".join(self.argv())).encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         cwd=str(self.site.workdir), env=comio.sanitizer_env())
        if wait:
            self._wait_ready()
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + comio.START_TIMEOUT
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                raise AssertionError("repld exited with status %s during startup; log:\n%s" % (rc, self.log_tail()))
            if (ctl_query(self.site.socket_path, "ping", timeout=0.5) or "").startswith("pong"):
                return
            time.sleep(comio.POLL_INTERVAL)
        self.kill9()
        raise AssertionError("repld did not answer on %s within %.0f s; log:\n%s" %
                             (self.site.socket_path, comio.START_TIMEOUT, self.log_tail()))

    def stop(self):
        """SIGTERM, then SIGKILL after REPLD_STOP_TIMEOUT (recorded as a problem). Returns the exit status."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        return comio.terminate(proc, "repld", REPLD_STOP_TIMEOUT, self.problems)

    def kill9(self):
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is not None:
            self.problems.append("repld had already exited (status %s) before SIGKILL" % proc.returncode)
            return
        proc.kill()
        proc.wait(timeout=10)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_json(self):
        return parse_log_lines(self.log())

    def finish(self):
        return self.finish_problems("repld log tail", 100)


# --- storaged -----------------------------------------------------------------------------------------------------


def make_test_ca(d):
    """A test CA and a certificate for 127.0.0.1 signed by it (openssl CLI), in directory d.
    Returns {"cert", "key", "ca"} paths."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)

    def run(*args):
        subprocess.run(["openssl", *args], cwd=str(d), check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=comio replication test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
        "server.pem", "-days", "2", "-extfile", "san.ext")
    return {"cert": str(d / "server.pem"), "key": str(d / "server.key"), "ca": str(d / "ca.pem")}


class _CountingHTTPSConnection(comio.CountingMixin, http.client.HTTPSConnection):
    """An HTTPSConnection that counts how many TCP connections it opened."""


class TlsClient(Client):
    """comio.Client over HTTPS, trusting the CA of `ctx`."""

    def __init__(self, host, port, ctx, token=None, timeout=comio.IO_TIMEOUT):
        super().__init__(host, port, token=token, timeout=timeout)
        self.conn = _CountingHTTPSConnection(host, port, timeout=timeout, context=ctx)


class _Storaged(comio.Server):
    """comio.Server with a longer bound on a graceful stop: storaged gives its
    keep-alive connections up to 10 s to close, and a peer (repld, a replica's
    fetcher) may hold one open. How long the stop took is printed. With
    ssl_context set it is reached over HTTPS."""

    ssl_context = None
    stop_timeout = STORAGED_STOP_TIMEOUT

    def _health_connection(self):
        if self.ssl_context is None:
            return super()._health_connection()
        return http.client.HTTPSConnection(self.host, self.port, timeout=1.0, context=self.ssl_context)


# --- a site -------------------------------------------------------------------------------------------------------


class Site:
    """One ComIO site in `workdir`: config.yaml, store.img (+ .meta), storaged.log, repld.log, repld.sock.

    repl: None for a site that does not ship (replica), else a dict of
    replication keys (remote_url, remote_token, batch_size, ..., or targets:
    a list of {name, url, token, ...}) laid over REPL_DEFAULTS; enabled is set
    to true. accept_token: the token this site
    accepts from a primary (None: unset). extra: more sections/keys merged into
    the config ({"server": {...}, "replication": {...}}). Change attributes and
    call write_config() before a restart to reconfigure."""

    def __init__(self, workdir, site_id, port=None, size="128MB", repl=None, accept_token=None, extra=None,
                 log_level="info", tls=None, access_token=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.site_id = site_id
        self.host = "127.0.0.1"
        self.port = port or comio.free_port()
        self.size = size
        self.repl = None if repl is None else dict(REPL_DEFAULTS, **repl)
        self.accept_token = accept_token
        self.extra = extra or {}
        self.log_level = log_level
        self.tls = tls  # {"cert", "key", "ca"} (make_test_ca): serve HTTPS, trust that CA for the peer
        self.access_token = access_token
        self.config_path = self.workdir / "config.yaml"
        sock = self.workdir / "repld.sock"
        if len(str(sock)) > 100:  # sun_path holds 108 bytes
            sock = Path(tempfile.mkdtemp(prefix="cio")) / "repld.sock"
        self.socket_path = sock
        self.write_config()
        self.storaged = _Storaged(self.workdir, config=None, flags=False, port=self.port,
                                  extra_args=["--config", str(self.config_path)])
        if tls is not None:
            self.storaged.ssl_context = ssl.create_default_context(cafile=tls["ca"])
        self.repld = Repld(self)

    # --- config ---------------------------------------------------------------------------------------------------

    def config_sections(self):
        repl = {"enabled": self.repl is not None}
        if self.repl is not None:
            repl.update(self.repl)
        repl["accept_token"] = self.accept_token
        repl["socket"] = str(self.socket_path)
        sections = {
            "site": {"id": self.site_id},
            "server": {"listen": self.host, "port": self.port, "storage_path": str(self.workdir / "store.img"),
                       "storage_size": self.size},
            "replication": repl,
            "logging": {"level": self.log_level, "format": "json"},
        }
        sections["server"]["access_token"] = self.access_token
        if self.tls is not None:
            sections["server"]["tls"] = {"cert": self.tls["cert"], "key": self.tls["key"]}
            repl.setdefault("ca_file", self.tls["ca"])
        for sec, keys in self.extra.items():
            sections.setdefault(sec, {}).update(keys)
        return sections

    def write_config(self):
        self.config_path.write_text(render_config(self.config_sections()))

    @property
    def ships(self):
        return self.repl is not None

    def url(self, path=""):
        return "%s://%s:%d%s" % ("https" if self.tls else "http", self.host, self.port, path)

    def cli_prefix(self):
        """What a command needs in front of it to reach this site and its peer (nothing on loopback)."""
        return []

    # --- lifecycle ------------------------------------------------------------------------------------------------

    def start(self, repld=True):
        self.start_storaged()
        if repld and self.ships:
            self.start_repld()
        return self

    def start_storaged(self):
        self.storaged.start()
        return self

    def stop_storaged(self):
        return self.storaged.stop()

    def kill9_storaged(self):
        self.storaged.kill9()

    def start_repld(self, wait=True):
        self.repld.start(wait=wait)
        return self

    def stop_repld(self):
        return self.repld.stop()

    def kill9_repld(self):
        self.repld.kill9()

    def stop(self):
        self.stop_repld()
        self.stop_storaged()

    def finish(self):
        """Tears both daemons down; returns the problems found (sanitizer reports, unclean exits)."""
        problems = ["repld: " + p for p in self.repld.finish()]
        problems += ["storaged: " + p for p in self.storaged.finish()]
        return problems

    # --- access ---------------------------------------------------------------------------------------------------

    def client(self, token=None, timeout=comio.IO_TIMEOUT, register=True):
        """A fresh client; it reconnects by itself after a restart. Registered clients are
        closed when storaged stops (a thread that uses its own client passes register=False
        and closes it itself)."""
        token = token if token is not None else self.access_token
        if self.tls is not None:
            c = TlsClient(self.host, self.port, self.storaged.ssl_context, token=token, timeout=timeout)
        else:
            c = Client(self.host, self.port, token=token, timeout=timeout)
        if register:
            self.storaged.clients.append(c)
        return c

    def status(self):
        """GET /admin/replication/status on this site's storaged."""
        c = self.client()
        try:
            return c.repl_status()
        finally:
            c.close()

    def repld_cmd(self, *args, timeout=30):
        """Runs `repld --config FILE args...` to completion; returns CompletedProcess (text)."""
        argv = [str(repld_path()), "--config", str(self.config_path)] + list(args)
        return subprocess.run(argv, cwd=str(self.workdir),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                              timeout=timeout, env=comio.sanitizer_env())

    def repld_status(self):
        """`repld --status` parsed; fails the test when it does not answer JSON."""
        r = self.repld_cmd("--status")
        assert r.returncode == 0, "repld --status exited %d: %s" % (r.returncode, r.stderr)
        return json.loads(r.stdout)

    def list_failed(self):
        """`repld --list-failed`: one dict per JSON line."""
        r = self.repld_cmd("--list-failed")
        assert r.returncode == 0, "repld --list-failed exited %d: %s" % (r.returncode, r.stderr)
        out = []
        for line in r.stdout.splitlines():
            if line.strip():
                out.append(json.loads(line))
        return out

    def retry_failed(self):
        r = self.repld_cmd("--retry-failed")
        assert r.returncode == 0, "repld --retry-failed exited %d: %s" % (r.returncode, r.stderr)
        return r.stdout

    def describe(self):
        """A few lines on the state of the site, for assertion messages."""
        parts = ["site %s (port %d)" % (self.site_id, self.port)]
        try:
            parts.append("status: %s" % json.dumps(self.status()))
        except Exception as e:  # the message is a diagnostic: never mask the real failure
            parts.append("status: unavailable (%r)" % (e,))
        if self.ships:
            parts.append("repld --status: %s" % ctl_query(self.socket_path, "status"))
            parts.append("repld log tail:\n" + self.repld.log_tail(25))
        parts.append("storaged log tail:\n" + self.storaged.log_tail(15))
        return "\n".join(parts)


def make_pair(workdir, a_repl=None, b_accept=True, a_extra=None, b_extra=None, start=True, repld=True, a_kw=None,
              b_kw=None, **kw):
    """A primary A shipping to a replica B (not started when start=False).

    a_repl: replication keys for A over REPL_DEFAULTS (remote_url and the
    token are filled in). b_accept: True for the matching token, None for no
    accept_token, or a string. kw go to both Site()s, a_kw and b_kw to one."""
    workdir = Path(workdir)
    token = new_token()
    b = Site(workdir / "b", "site-b", accept_token=token if b_accept is True else b_accept, extra=b_extra,
             **dict(kw, **(b_kw or {})))
    repl = {"remote_url": b.url(), "remote_token": token}
    repl.update(a_repl or {})
    a = Site(workdir / "a", "site-a", repl=repl, extra=a_extra, **dict(kw, **(a_kw or {})))
    if start:
        b.start()
        a.start(repld=repld)
    return a, b


def _finish_together(named):
    """Calls finish() of every (label, daemon) at once, one thread each (a daemon's exit
    takes a while under the sanitizers; the sites' are independent). Returns the
    problems, prefixed with the label, in the order given."""
    out = [None] * len(named)

    def run(i, daemon):
        try:
            out[i] = daemon.finish()
        except Exception as e:  # noqa: BLE001 - reported as a problem, the others still stop
            out[i] = ["teardown raised %r" % e]

    threads = [threading.Thread(target=run, args=(i, d)) for i, (_, d) in enumerate(named)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ["%s: %s" % (label, p) for (label, _), ps in zip(named, out) for p in ps]


def finish_sites(sites):
    """Tears sites down in an order that leaves no peer connection open: every repld,
    then the replicas' storaged, then the primaries' (each group at once). Returns the
    problems found."""
    problems = _finish_together([("%s: repld" % s.site_id, s.repld) for s in sites])
    for ships in (False, True):
        problems += _finish_together([("%s: storaged" % s.site_id, s.storaged) for s in sites if s.ships == ships])
    return problems


@pytest.fixture
def sites(tmp_path):
    """sites(**kw) -> (a, b): see make_pair. Every site made is torn down; the test
    fails when a daemon needed SIGKILL, died on its own or left a sanitizer report."""
    made = []

    def make(start=True, repld=True, **kw):
        a, b = make_pair(tmp_path / ("pair%d" % len(made)), start=False, **kw)
        made.extend([a, b])
        if start:
            b.start()
            a.start(repld=repld)
        return a, b

    yield make
    problems = finish_sites(made)
    if problems:
        pytest.fail("replication teardown:\n" + "\n".join(problems), pytrace=False)


# --- the convergence oracle ---------------------------------------------------------------------------------------


def _as_client(x):
    if isinstance(x, Client):
        return x, False
    return x.client(), True


def snapshot(x, max_pages=10000):
    """{bucket: {key: (size, etag)}} of every non-empty bucket, through GET / and paged GET /{bucket}.

    Empty buckets are left out: bucket creation is not a replicated event, so an
    empty bucket on one side and none on the other are the same content."""
    c, own = _as_client(x)
    try:
        r = c.raw("GET", "/")
        assert r.status == 200, r
        out = {}
        for bk in r.json()["buckets"]:
            name = bk["name"]
            objs, start = {}, None
            for _ in range(max_pages):
                r = c.list(name, start_after=start, max_keys=1000)
                if r.status == 404:  # removed since GET /
                    break
                assert r.status == 200, r
                page = r.json()
                for o in page["objects"]:
                    objs[o["key"]] = (o["size"], o["etag"].strip('"'))
                if not page["is_truncated"]:
                    break
                start = page["next_start_after"]
                assert start, page
            else:
                raise AssertionError("listing of %s did not end within %d pages" % (name, max_pages))
            if objs:
                out[name] = objs
        return out
    finally:
        if own:
            c.close()


def diff_snapshots(sa, sb, names=("A", "B"), limit=50):
    """Differences between two snapshots, as readable lines (at most `limit`, then a count)."""
    out = []
    for bucket in sorted(set(sa) | set(sb)):
        oa, ob = sa.get(bucket, {}), sb.get(bucket, {})
        for key in sorted(set(oa) | set(ob)):
            va, vb = oa.get(key), ob.get(key)
            if va == vb:
                continue
            if vb is None:
                out.append("%s/%s: on %s %r, missing on %s" % (bucket, key, names[0], va, names[1]))
            elif va is None:
                out.append("%s/%s: missing on %s, on %s %r" % (bucket, key, names[0], names[1], vb))
            else:
                out.append("%s/%s: %s %r != %s %r" % (bucket, key, names[0], va, names[1], vb))
    if len(out) > limit:
        out = out[:limit] + ["... and %d more differences" % (len(out) - limit)]
    return out


def diff_bytes(a, b, snap, sample=16, rng=None):
    """GETs a sample of the objects of `snap` (all when sample is None) on both sides and
    compares the bytes with each other and with the listed size and ETag."""
    items = [(bk, k, v) for bk, objs in snap.items() for k, v in objs.items()]
    if sample is not None and len(items) > sample:
        rng = rng or random.Random(len(items))
        items = rng.sample(items, sample)
    ca, own_a = _as_client(a)
    cb, own_b = _as_client(b)
    out = []
    try:
        for bucket, key, (size, etag) in items:
            ra, rb = ca.get(bucket, key), cb.get(bucket, key)
            if ra.status != 200 or rb.status != 200:
                out.append("%s/%s: GET answered %d on A, %d on B" % (bucket, key, ra.status, rb.status))
                continue
            if ra.body != rb.body:
                out.append("%s/%s: bytes differ (A %d bytes md5 %s, B %d bytes md5 %s)" %
                           (bucket, key, len(ra.body), md5(ra.body), len(rb.body), md5(rb.body)))
            elif len(rb.body) != size or md5(rb.body) != etag:
                out.append("%s/%s: bytes (%d, %s) do not match the listing (%d, %s)" %
                           (bucket, key, len(rb.body), md5(rb.body), size, etag))
    finally:
        if own_a:
            ca.close()
        if own_b:
            cb.close()
    return out


def comio_diff(a, b, limit=50, timeout=120):
    """`comio diff --json` of sites a (source) and b (target): (differences as readable lines, counts).

    The suite's oracle for keys, sizes and ETags. It runs where a can reach both
    sites (a.cli_prefix(), e.g. inside a network namespace). A run that cannot
    list a site (exit 3) is reported as a difference, so a poll goes on."""
    argv = list(a.cli_prefix()) + [str(comio_path()), "diff", "--source", a.url(), "--target", b.url(), "--json",
                                   "--limit", str(limit)]
    if a.tls is not None:
        argv += ["--ca-file", a.tls["ca"]]
    p = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout,
                       env=comio.sanitizer_env())
    sanitizer = comio.sanitizer_report(p.stderr)
    assert sanitizer is None, "comio diff: sanitizer report:\n" + p.stderr[-4000:]
    if p.returncode not in (0, 1):
        return ["comio diff exited %d: %s" % (p.returncode, p.stderr.strip()[-500:])], None
    doc = json.loads(p.stdout)
    lines = []
    for d in doc["differences"]:  # worded as diff_snapshots words them
        name = "%s/%s" % (d["bucket"], d["key"])
        src, tgt = [v and (v["size"], v["etag"]) for v in (d["source"], d["target"])]
        if d["type"] == "missing":
            lines.append("%s: on A %r, missing on B" % (name, src))
        elif d["type"] == "extra":
            lines.append("%s: missing on A, on B %r" % (name, tgt))
        else:
            lines.append("%s: A %r != B %r" % (name, src, tgt))
    n = doc["counts"]["differences"]
    if n > len(lines):
        lines.append("... and %d more differences" % (n - len(lines)))
    assert (p.returncode == 1) == (n > 0) and doc["complete"], p.stdout[-2000:]
    return lines, doc["counts"]


def _is_site(x):
    return isinstance(x, Site)


def diff(a, b, sample=16):
    """Every difference between a and b: keys, sizes, ETags (comio diff for sites, the
    listing snapshots for bare clients), then the bytes of a sample of objects."""
    if _is_site(a) and _is_site(b):
        d, _ = comio_diff(a, b)
        if d:
            return d
        return diff_bytes(a, b, snapshot(a), sample=sample)
    sa, sb = snapshot(a), snapshot(b)
    d = diff_snapshots(sa, sb)
    if d:
        return d
    return diff_bytes(a, b, sa, sample=sample)


def wait_converged(a, b, timeout=60.0, sample=16, interval=0.2, quiet=False):
    """Polls diff(a, b) until there is none or `timeout` passes. Returns the last
    differences (an empty list when converged). Bytes are compared only once the
    listings agree. Prints how long it took."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    while True:
        if _is_site(a) and _is_site(b):
            d, _ = comio_diff(a, b)
            sa = None if d else snapshot(a)
        else:
            sa, sb = snapshot(a), snapshot(b)
            d = diff_snapshots(sa, sb)
        if not d:
            d = diff_bytes(a, b, sa, sample=sample)
            if not d:
                if not quiet:
                    n = sum(len(o) for o in sa.values())
                    print("converged: %d objects in %d buckets after %.2f s" % (n, len(sa), time.monotonic() - t0))
                return []
        if time.monotonic() >= deadline:
            return d
        time.sleep(interval)


def converge_or_fail(a, b, timeout=60.0, sample=16):
    """wait_converged, failing with the differences and both sites' state."""
    d = wait_converged(a, b, timeout=timeout, sample=sample)
    if d:
        msg = ["not converged within %.0f s:" % timeout] + d[:30] + ["--- A:", describe(a), "--- B:", describe(b)]
        raise AssertionError("\n".join(msg))


def describe(x):
    return x.describe() if hasattr(x, "describe") else repr(x)


def target_status(st, name):
    """The entry of target `name` in a replication status's targets[] (storaged's or repld's)."""
    for t in st["targets"]:
        if t["name"] == name:
            return t
    raise AssertionError("no target %r in %r" % (name, st))


def wait_until(fn, timeout, interval=0.05, what="condition"):
    """Polls fn() until truthy; returns its value, or fails naming `what` after `timeout` seconds.
    `what` may be a callable, called only then (to describe the state at the time of failure)."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() >= deadline:
            if callable(what):
                what = what()
            raise AssertionError("timed out after %.1f s waiting for %s (last value %r)" % (timeout, what, v))
        time.sleep(interval)


# --- the client-side record of a workload -------------------------------------------------------------------------


class Op:
    __slots__ = ("kind", "bucket", "key", "t0", "t1", "version", "md5", "size", "acked")

    def __init__(self, kind, bucket, key, t0, t1, version=None, md5=None, size=None, acked=True):
        self.kind, self.bucket, self.key = kind, bucket, key
        self.t0, self.t1 = t0, t1
        self.version, self.md5, self.size, self.acked = version, md5, size, acked

    def __repr__(self):
        return "Op(%s %s/%s v=%s acked=%s)" % (self.kind, self.bucket, self.key, self.version, self.acked)


class Workload:
    """Records every mutation a test sends and what it was told.

    put/delete/purge send the request with the given client and record it:
    acknowledged (200 PUT with its X-Comio-Version and MD5, 204 DELETE, 200
    PURGE), or of unknown outcome (the connection failed: it may or may not
    have been applied). A definite refusal (4xx/5xx reply) changed nothing and
    is not recorded. Thread-safe.

    expected() derives, for every key touched, what a site must hold: the
    operations that may have taken effect last are those that ended after the
    last one started (a linearizable store orders the others before it). When
    they are all acknowledged PUTs the highest version wins; when they are all
    acknowledged deletes or purges the key is absent; otherwise the key is
    ambiguous and left out of the check."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ops = []
        self.counts = {"put": 0, "delete": 0, "purge": 0, "unknown": 0, "refused": 0}

    def _add(self, op):
        with self.lock:
            self.ops.append(op)
            self.counts[op.kind if op.acked else "unknown"] += 1

    def _refused(self):
        with self.lock:
            self.counts["refused"] += 1

    def put(self, client, bucket, key, data, headers=None):
        t0 = time.monotonic()
        try:
            r = client.put(bucket, key, data, headers)
        except ConnectionRefusedError:  # nothing was sent
            self._refused()
            return None
        except (OSError, http.client.HTTPException):
            self._add(Op("put", bucket, key, t0, time.monotonic(), md5=md5(data), size=len(data), acked=False))
            return None
        if r.status == 200:
            self._add(Op("put", bucket, key, t0, time.monotonic(), version=int(r.headers["X-Comio-Version"]),
                         md5=md5(data), size=len(data)))
        else:
            self._refused()
        return r

    def delete(self, client, bucket, key):
        t0 = time.monotonic()
        try:
            r = client.delete(bucket, key)
        except ConnectionRefusedError:  # nothing was sent
            self._refused()
            return None
        except (OSError, http.client.HTTPException):
            self._add(Op("delete", bucket, key, t0, time.monotonic(), acked=False))
            return None
        if r.status == 204:
            self._add(Op("delete", bucket, key, t0, time.monotonic()))
        elif r.status == 404:  # NoSuchBucket: nothing to delete, nothing changed
            self._add(Op("delete", bucket, key, t0, time.monotonic()))
        else:
            self._refused()
        return r

    def purge(self, client, bucket):
        t0 = time.monotonic()
        try:
            r = client.purge(bucket)
        except ConnectionRefusedError:  # nothing was sent
            self._refused()
            return None
        except (OSError, http.client.HTTPException):
            self._add(Op("purge", bucket, None, t0, time.monotonic(), acked=False))
            return None
        if r.status in (200, 404):
            self._add(Op("purge", bucket, None, t0, time.monotonic()))
        else:
            self._refused()
        return r

    def expected(self):
        """({(bucket, key): (size, md5)} that must be present, {(bucket, key)} that must be absent,
        {(bucket, key)} ambiguous)."""
        with self.lock:
            ops = list(self.ops)
        per_key, purges = {}, {}
        for op in ops:
            if op.kind == "purge":
                purges.setdefault(op.bucket, []).append(op)
            else:
                per_key.setdefault((op.bucket, op.key), []).append(op)
        present, absent, ambiguous = {}, set(), set()
        for bk, kops in per_key.items():
            cands = kops + purges.get(bk[0], [])
            latest_start = max(o.t0 for o in cands)
            last = [o for o in cands if o.t1 >= latest_start]
            if any(not o.acked for o in last):
                ambiguous.add(bk)
            elif all(o.kind == "put" for o in last):
                w = max(last, key=lambda o: o.version)
                present[bk] = (w.size, w.md5)
            elif all(o.kind != "put" for o in last):
                absent.add(bk)
            else:
                ambiguous.add(bk)
        return present, absent, ambiguous

    def check(self, x, what="site"):
        """Differences between what the client was acknowledged and what site x lists (Site, Client or a snapshot)."""
        snap = x if isinstance(x, dict) else snapshot(x)
        present, absent, ambiguous = self.expected()
        out = []
        for (bucket, key), (size, digest) in sorted(present.items()):
            got = snap.get(bucket, {}).get(key)
            if got is None:
                out.append("%s/%s: acknowledged PUT (%d bytes, %s) missing on %s" % (bucket, key, size, digest, what))
            elif got != (size, digest):
                out.append("%s/%s: %s holds %r, the last acknowledged PUT was (%d, %s)" %
                           (bucket, key, what, got, size, digest))
        for bucket, key in sorted(absent):
            got = snap.get(bucket, {}).get(key)
            if got is not None:
                out.append("%s/%s: deleted (acknowledged) but present on %s: %r" % (bucket, key, what, got))
        if len(out) > 50:
            out = out[:50] + ["... and %d more" % (len(out) - 50)]
        return out

    def summary(self):
        present, absent, ambiguous = self.expected()
        return "%s; expect %d present, %d absent, %d ambiguous" % (self.counts, len(present), len(absent),
                                                                   len(ambiguous))


class Writer(threading.Thread):
    """A thread that runs fn(client, i) for i = 0.. until stop() or `count` calls, tolerating
    connection errors (the Workload records them). Errors other than those end it and are kept."""

    def __init__(self, site, fn, count=None, pause_on_error=0.05):
        super().__init__(daemon=True)
        self.site = site
        self.fn = fn
        self.count = count
        self.pause_on_error = pause_on_error
        self.done = 0
        self.error = None
        self._stop_evt = threading.Event()

    def run(self):
        c = self.site.client(timeout=30, register=False)
        try:
            i = 0
            while not self._stop_evt.is_set() and (self.count is None or i < self.count):
                try:
                    self.fn(c, i)
                except (OSError, http.client.HTTPException):
                    c.close()
                    self._stop_evt.wait(self.pause_on_error)
                i += 1
                self.done = i
        except BaseException as e:  # reported by join_checked
            self.error = e
        finally:
            c.close()

    def stop(self):
        self._stop_evt.set()

    def join_checked(self, timeout=60):
        self.join(timeout)
        assert not self.is_alive(), "writer thread did not finish within %.0f s" % timeout
        if self.error is not None:
            raise self.error


def payload(tag, size, rng=None):
    """Deterministic-looking but distinct bytes: the tag then pseudo-random filler."""
    head = ("%s|" % tag).encode()
    if size <= len(head):
        return head[:size]
    rng = rng or random
    return head + rng.randbytes(size - len(head))


# --- a network partition between the sites ---------------------------------------------------------------------------


class TcpProxy:
    """A loopback TCP relay to 127.0.0.1:target_port that can partition the network.

    partition(): bytes stop flowing both ways; connections stay open and new
    ones are accepted but carry nothing (the peers see silence, not errors).
    heal(reset=False): bytes flow again, held bytes first; with reset=True every
    connection open across the partition is reset instead (state lost in a
    middlebox), so the peers must reconnect.

    bytes_to_target and bytes_from_target count what it carried each way
    (TCP payload: HTTP heads and bodies), a measure of what crossed the link
    that owes nothing to the daemons' own counters."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.1)
        self.port = self.lsock.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.closed = threading.Event()
        self.lock = threading.Lock()
        self.pairs = []
        self.connections = 0
        self.bytes_to_target = 0
        self.bytes_from_target = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def _accept(self):
        while not self.closed.is_set():
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                t = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                c.close()
                continue
            pair = (c, t)
            with self.lock:
                self.pairs.append(pair)
                self.connections += 1
            for src, dst in ((c, t), (t, c)):
                threading.Thread(target=self._pipe, args=(pair, src, dst), daemon=True).start()

    def _pipe(self, pair, src, dst):
        try:
            while not self.closed.is_set():
                if not self.flowing.wait(0.1):
                    continue
                r, _, _ = select.select([src], [], [], 0.1)
                if not r or not self.flowing.is_set():
                    continue
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                self._count(pair, src, len(data))
        except (OSError, ValueError):  # closed under us by heal(reset=True) or close()
            pass
        finally:
            self._drop(pair, reset=False)

    def _count(self, pair, src, n):
        with self.lock:
            if src is pair[0]:
                self.bytes_to_target += n
            else:
                self.bytes_from_target += n

    def _drop(self, pair, reset):
        with self.lock:
            if pair not in self.pairs:
                return
            self.pairs.remove(pair)
        for s in pair:
            try:
                if reset:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
            except OSError:
                pass

    def partition(self):
        self.flowing.clear()

    def heal(self, reset=False):
        if reset:
            with self.lock:
                pairs = list(self.pairs)
            for p in pairs:
                self._drop(p, reset=True)
        self.flowing.set()

    def close(self):
        self.closed.set()
        self.flowing.set()
        self.lsock.close()
        with self.lock:
            pairs = list(self.pairs)
        for p in pairs:
            self._drop(p, reset=False)


def presign(token, base, bucket, key, version, expires, origin=None):
    """The presigned fetch URL of docs/protocol.md, signed here independently of proto/presign.c: with the
    version's origin, or without one (origin None) as the previous release signed it."""
    msg = b"GET\n" + bucket.encode() + b"\n" + key.encode() + b"\n" + str(version).encode() + b"\n" + str(expires).encode()
    if origin is not None:
        msg += b"\n" + origin.encode()
    sig = hmac.new(token.encode(), msg, hashlib.sha256).hexdigest()
    path = "/admin/replication/fetch/%s/%s" % (urllib.parse.quote(bucket, safe=""), urllib.parse.quote(key, safe="/~"))
    if origin is None:
        return "%s%s?version=%d&expires=%d&sig=%s" % (base, path, version, expires, sig)
    return "%s%s?version=%d&origin=%s&expires=%d&sig=%s" % (base, path, version, origin, expires, sig)
