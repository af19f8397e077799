"""test_deploy.py - the systemd units verify, and the daemons speak systemd's readiness protocol."""

import http.client
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from harness.comio import free_port, sanitizer_env, sanitizer_report, storaged_path
from harness.replication import Site, converge_or_fail, finish_sites, new_token, wait_until

ROOT = Path(__file__).resolve().parents[2]
UNITS = ["comio-storaged.service", "comio-repld.service"]


def test_units_verify(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: the units were not verified")
    bindir = storaged_path().parent
    paths = []
    for name in UNITS:
        text = (ROOT / "deploy" / "systemd" / name).read_text()
        assert "Type=notify" in text and "Restart=on-failure" in text and "NoNewPrivileges=yes" in text
        # the installed location, /usr/local/bin, does not exist here: point at the built binaries
        text = text.replace("/usr/local/bin/", str(bindir) + "/")
        (tmp_path / name).write_text(text)
        paths.append(str(tmp_path / name))
    assert "PartOf=comio-storaged.service" in (tmp_path / "comio-repld.service").read_text()
    p = subprocess.run(["systemd-analyze", "verify"] + paths, capture_output=True, text=True, timeout=60)
    # verify reports problems on stderr; units that reference each other by name are fine
    assert p.returncode == 0 and p.stderr.strip() == "", p.stderr


def wait_healthy(port, proc, timeout=30):
    """Polls storaged's /admin/health (bounded): repld needs the store it creates."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, "storaged exited"
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/admin/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, "storaged did not become healthy"
        time.sleep(0.05)


def recv_states(sock, want, timeout=30):
    """Collects notification datagrams until `want` was seen (bounded)."""
    sock.settimeout(timeout)
    seen = []
    while want not in seen:
        data = sock.recv(4096).decode()
        seen.extend(data.split("\n"))
    return seen


@pytest.mark.parametrize("daemon", ["storaged", "repld"])
def test_ready_and_stopping_notifications(tmp_path, daemon):
    port = free_port()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "site: {id: notify}\n"
        "server: {listen: 127.0.0.1, port: %d, storage_path: %s, storage_size: 32MB}\n"
        "replication: {enabled: true, remote_url: 'http://127.0.0.1:9', remote_token: t, socket: %s}\n"
        % (port, tmp_path / "store.img", tmp_path / "repld.sock"))
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    env = dict(sanitizer_env(), NOTIFY_SOCKET=str(sock_path))
    procs = []
    log = open(tmp_path / "daemon.log", "wb")
    try:
        exe = storaged_path().parent / daemon
        if daemon == "repld":
            # repld needs storaged's metadata: start storaged without notification first
            s = subprocess.Popen([str(storaged_path()), "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                 env=sanitizer_env())
            procs.append(s)
            wait_healthy(port, s)
        p = subprocess.Popen([str(exe), "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT, env=env)
        procs.append(p)
        assert "READY=1" in recv_states(sock, "READY=1")
        p.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in recv_states(sock, "STOPPING=1")
        assert p.wait(timeout=30) == 0
    finally:
        for q in reversed(procs):
            if q.poll() is None:
                q.terminate()
                q.wait(timeout=30)
        sock.close()
        log.close()
    assert sanitizer_report((tmp_path / "daemon.log").read_text(errors="replace")) is None


@pytest.mark.parametrize("name", ["site-a.yaml", "site-b.yaml"])
def test_example_configs_parse(tmp_path, name):
    """The shipped example configurations are valid (paths moved into the test's directory)."""
    token = tmp_path / "token"
    token.write_text("0123456789abcdef0123456789abcdef\n")
    text = (ROOT / "deploy" / "config" / name).read_text()
    for old, new in (("/etc/comio/access.token", token), ("/etc/comio/replication.token", token),
                     ("/dev/nvme0n1", tmp_path / "store.img"), ("/var/lib/comio/meta", tmp_path / "meta"),
                     ("/run/comio/repld.sock", tmp_path / "repld.sock")):
        text = text.replace(old, str(new))
    cfg = tmp_path / name
    cfg.write_text(text)
    # --status parses and finalizes the whole configuration, then finds no repld: exit 1, not 2
    p = subprocess.run([str(storaged_path().parent / "repld"), "--config", str(cfg), "--status"], capture_output=True,
                       text=True, timeout=30, env=sanitizer_env())
    assert p.returncode == 1 and "not running" in p.stderr, (p.returncode, p.stderr)


class ExampleSite(Site):
    """A Site whose config is a file of deploy/examples/two-way, moved onto loopback and into the site's directory."""

    example = None

    def use_example(self, name, peer, tokens):
        self.example, self.peer, self.tokens = name, peer, tokens
        self.write_config()

    def write_config(self):
        if self.example is None:
            return  # Site.__init__ writes a config before the example is chosen
        text = (ROOT / "deploy" / "examples" / "two-way" / self.example).read_text()
        swaps = {
            "listen: 0.0.0.0": "listen: 127.0.0.1",
            "port: 8080": "port: %d" % self.port,
            "/dev/nvme0n1": str(self.workdir / "store.img"),
            "storage_size: 1TB": "storage_size: 64MB",
            "/var/lib/comio/meta": str(self.workdir / "meta"),
            "/run/comio/repld.sock": str(self.socket_path),
            "https://%s.example.com" % self.site_id: self.url(),
            "https://%s.example.com" % self.peer.site_id: self.peer.url(),
        }
        swaps.update(self.tokens)
        for old, new in swaps.items():
            assert old in text, "%s no longer holds %r: update this test with it" % (self.example, old)
            text = text.replace(old, new)
        for line in text.splitlines():
            value = line.split("#")[0]
            assert "/etc/comio" not in value and "example.com" not in value, "left in %s: %r" % (self.example, line)
        self.config_path.write_text(text)


def test_two_way_example_replicates_both_ways(tmp_path):
    """deploy/examples/two-way: each site lists the other as its target and accepts the other's token; a write on
    either side reaches the other (a large one through the other's public_url), and the sites end up identical."""
    tokens = {}
    for name in ("a-to-b", "b-to-a"):
        tokens["/etc/comio/%s.token" % name] = tmp_path / ("%s.token" % name)
        tokens["/etc/comio/%s.token" % name].write_text(new_token() + "\n")
    a = ExampleSite(tmp_path / "a", "site-a", repl={}, access_token=new_token())
    b = ExampleSite(tmp_path / "b", "site-b", repl={}, access_token=new_token())
    for site, peer in ((a, b), (b, a)):
        (site.workdir / "access.token").write_text(site.access_token + "\n")
        site.use_example("%s.yaml" % site.site_id, peer,
                         dict({k: str(v) for k, v in tokens.items()}, **{"/etc/comio/access.token":
                                                                         str(site.workdir / "access.token")}))
    try:
        a.start()
        b.start()
        ca, cb = a.client(), b.client()
        large = os.urandom(2_000_000)  # above the default inline_threshold: fetched from the writer's public_url
        assert ca.put("two-way", "from-a", b"written on site A").status == 200
        assert cb.put("two-way", "from-b", large).status == 200
        wait_until(lambda: cb.get("two-way", "from-a").status == 200, 60, what="site B has site A's write")
        wait_until(lambda: ca.get("two-way", "from-b").status == 200, 60, what="site A has site B's write")
        assert cb.get("two-way", "from-a").body == b"written on site A"
        assert ca.get("two-way", "from-b").body == large
        converge_or_fail(a, b)
    finally:
        problems = finish_sites([a, b])
    assert not problems, problems


def wait_for_text(path, text, proc, timeout=30):
    """Waits (bounded) until the file at `path` exists and holds `text`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if text in path.read_text(errors="replace"):
                return
        except FileNotFoundError:
            pass
        assert proc.poll() is None, "daemon exited (status %s)" % proc.returncode
        assert time.monotonic() < deadline, "%r never appeared in %s" % (text, path)
        time.sleep(0.05)


def test_sighup_reopens_log_files(tmp_path):
    """logging.file: both daemons append there; after a rotation (rename + SIGHUP) they write to a new file."""
    port = free_port()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "site: {id: rotate}\n"
        "server: {listen: 127.0.0.1, port: %d, storage_path: %s, storage_size: 32MB}\n"
        "replication: {enabled: true, remote_url: 'http://127.0.0.1:9', remote_token: t, socket: %s}\n"
        "logging: {file: %s}\n" % (port, tmp_path / "store.img", tmp_path / "repld.sock", tmp_path / "comio.log"))
    out = open(tmp_path / "stderr.log", "wb")
    procs = []
    log = tmp_path / "comio.log"
    try:
        s = subprocess.Popen([str(storaged_path()), "--config", str(cfg)], stdout=out, stderr=subprocess.STDOUT,
                             env=sanitizer_env())
        procs.append(s)
        wait_healthy(port, s)
        r = subprocess.Popen([str(storaged_path().parent / "repld"), "--config", str(cfg)], stdout=out,
                             stderr=subprocess.STDOUT, env=sanitizer_env())
        procs.append(r)
        wait_for_text(log, '"component":"storaged"', s)
        wait_for_text(log, '"component":"repld"', r)

        log.rename(tmp_path / "comio.log.1")
        for p in procs:
            p.send_signal(signal.SIGHUP)
        wait_for_text(log, '"msg":"log file reopened","site":"rotate","component":"storaged"', s)
        wait_for_text(log, '"msg":"log file reopened","site":"rotate","component":"repld"', r)
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            assert p.wait(timeout=30) == 0
    finally:
        for q in reversed(procs):
            if q.poll() is None:
                q.kill()
                q.wait(timeout=30)
        out.close()
    old = (tmp_path / "comio.log.1").read_text()
    new = log.read_text()
    assert "storaged listening" in old and "storaged listening" not in new
    assert '"msg":"stopped"' in new and "reopened" not in old
    # nothing went to the inherited stderr, and each line is one JSON object
    assert (tmp_path / "stderr.log").read_text() == ""
    for line in (old + new).splitlines():
        assert line.startswith("{") and line.endswith("}"), line
    assert sanitizer_report(old + new) is None


def test_unwritable_log_file_is_a_startup_error(tmp_path):
    p = subprocess.run([str(storaged_path()), "--storage", str(tmp_path / "s.img"), "--size", "32MB", "--port",
                        str(free_port()), "--listen", "127.0.0.1", "--log-file", str(tmp_path / "no" / "dir.log")],
                       capture_output=True, text=True, timeout=30, env=sanitizer_env())
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "logging.file" in p.stderr and "No such file or directory" in p.stderr
    assert not (tmp_path / "s.img").exists() or (tmp_path / "s.img").stat().st_size == 0


def test_demo_runs_as_the_readme_says(tmp_path):
    """deploy/demo.sh, the README's first command, against the binaries under test."""
    env = dict(sanitizer_env(), COMIO_BIN_DIR=str(storaged_path().parent), TMPDIR=str(tmp_path))
    p = subprocess.run(["bash", str(ROOT / "deploy" / "demo.sh")], capture_output=True, text=True, errors="replace",
                       timeout=180, env=env)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-6000:]
    for line in ("site-b has mybucket/myfile, byte for byte", "site-b has mybucket/big, byte for byte",
                 "site-b answers 404 for mybucket/myfile", "mybucket on site-b is empty", "no differences"):
        assert line in out, (line, out[-6000:])
    assert '"events_failed":0' in out, out[-6000:]
