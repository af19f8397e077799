"""test_config.py - configuration file, flags, access token, size limit, paths."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from harness.comio import (expect_error, expect_ok_json, expect_too_large, free_port, md5, run_storaged, sanitizer_env,
                   sanitizer_report, storaged_path)
from harness.replication import Site, converge_or_fail, finish_sites, new_token, render_config, repld_path


def run_bad(tmp_path, args, config=None):
    """Runs storaged expecting a start-up error: exit 2 and exactly one line on stderr. Returns that line."""
    if config is not None:
        (tmp_path / "config.yaml").write_text(config)
    try:
        p = run_storaged(args, cwd=tmp_path, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("storaged kept running with bad arguments %r" % (args,))
    assert not sanitizer_report(p.stderr + p.stdout), p.stderr
    assert p.returncode == 2, "exit %d, stderr %r" % (p.returncode, p.stderr)
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, "expected one line on stderr, got %r" % p.stderr
    return lines[0]


def good_flags(tmp_path):
    return ["--storage", str(tmp_path / "store.img"), "--size", "64MB", "--listen", "127.0.0.1", "--port",
            str(free_port())]


# --- configuration file errors ---------------------------------------------------


def test_unknown_key_exact_message(tmp_path):
    config = "server:\n  port: 8080\n  storage_pth: /tmp/x\n"
    line = run_bad(tmp_path, ["--config", "config.yaml"] + good_flags(tmp_path), config)
    assert line == "config.yaml:3: unknown key 'server.storage_pth'"


def test_unknown_section(tmp_path):
    config = "# comment\nsever:\n  port: 8080\n"
    line = run_bad(tmp_path, ["--config", "config.yaml"] + good_flags(tmp_path), config)
    assert re.fullmatch(r"config\.yaml:(2: unknown key 'sever'|3: unknown key 'sever\.port')", line), line


def test_unknown_nested_key_in_replication(tmp_path):
    config = "server:\n  port: 8080\nreplication:\n  enabled: false\n  batchsize: 10\n"
    line = run_bad(tmp_path, ["--config", "config.yaml"] + good_flags(tmp_path), config)
    assert line == "config.yaml:5: unknown key 'replication.batchsize'"


@pytest.mark.parametrize(
    "config,lineno,key",
    [
        ("server:\n  storage_size: 12XB\n", 2, "server.storage_size"),
        ("server:\n  storage_size: -5MB\n", 2, "server.storage_size"),
        ("server:\n  port: http\n", 2, "server.port"),
        ("server:\n  listen: 127.0.0.1\n  port: 70000\n", 3, "server.port"),
        ("server:\n  port: 0\n", 2, "server.port"),
        ("server:\n  max_object_size: lots\n", 2, "server.max_object_size"),
        ("server:\n  port:\n    nested: 1\n", None, "server.port"),
        ("replication:\n  enabled: maybe\n", 2, "replication.enabled"),
        ("replication:\n  batch_interval: 5parsecs\n", 2, "replication.batch_interval"),
    ],
    ids=["size-unit", "size-negative", "port-word", "port-70000", "port-0", "max-object-size", "port-mapping",
         "enabled-maybe", "interval-unit"],
)
def test_bad_values_name_file_line_and_key(tmp_path, config, lineno, key):
    line = run_bad(tmp_path, ["--config", "config.yaml"] + good_flags(tmp_path), config)
    if lineno is not None:
        assert line.startswith("config.yaml:%d: " % lineno), line
    else:
        assert re.match(r"config\.yaml:\d+: ", line), line
    assert key in line, line


def test_yaml_syntax_error(tmp_path):
    line = run_bad(tmp_path, ["--config", "config.yaml"] + good_flags(tmp_path), "server:\n  port: [8080\n")
    assert line.startswith("config.yaml:"), line


def test_missing_config_file(tmp_path):
    line = run_bad(tmp_path, ["--config", "nonexistent.yaml"] + good_flags(tmp_path))
    assert "nonexistent.yaml" in line, line


def test_missing_storage_path(tmp_path):
    line = run_bad(tmp_path, ["--size", "64MB", "--listen", "127.0.0.1", "--port", str(free_port())])
    assert "storage" in line, line


def test_replication_enabled_needs_remote(tmp_path):
    line = run_bad(tmp_path, good_flags(tmp_path) + ["--replication-enabled"])
    assert "remote" in line, line


# --- flag errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,flag",
    [
        (["--port", "abc"], "--port"),
        (["--port", "0"], "--port"),
        (["--port", "65536"], "--port"),
        (["--port=12x"], "--port"),
        (["--size", "12XB"], "--size"),
        (["--bogus-flag"], "--bogus-flag"),
        (["--log-level", "loud"], "--log-level"),
    ],
)
def test_bad_flags(tmp_path, args, flag):
    line = run_bad(tmp_path, good_flags(tmp_path) + args)
    assert flag in line, line


def test_flag_without_value(tmp_path):
    line = run_bad(tmp_path, good_flags(tmp_path) + ["--port"])
    assert "--port" in line, line


def test_positional_argument_refused(tmp_path):
    run_bad(tmp_path, good_flags(tmp_path) + ["stray"])


def test_help(tmp_path):
    p = run_storaged(["--help"], cwd=tmp_path, timeout=10)
    assert p.returncode == 0, p
    for flag in ("--storage", "--size", "--port", "--listen", "--config", "--meta", "--replication-enabled"):
        assert flag in p.stdout, "%s missing from --help:\n%s" % (flag, p.stdout)
    assert not (tmp_path / "store.img").exists()


# --- configurations that work ----------------------------------------------------------


def test_config_file_alone_starts_server(make_server, tmp_path):
    port = free_port()
    store = tmp_path / "cfg-store.img"
    config = ("# a full config\n"
              "site: {id: test-site}\n"
              "server:\n"
              "  listen: 127.0.0.1\n"
              "  port: %d\n"
              "  storage_path: %s\n"
              "  storage_size: 32 MiB\n"
              "  max_object_size: 2MB\n" % (port, store))
    srv = make_server(config=config, flags=False, port=port)
    c = srv.client()
    assert c.put("cfg", "k", b"config only").status == 200
    assert c.get("cfg", "k").body == b"config only"
    assert store.exists() and store.stat().st_size == 32 * 1024 * 1024
    assert 0 < c.metrics().value("comio_store_capacity_bytes") <= 32 * 1024 * 1024
    expect_too_large(c.put("cfg", "big", b"x" * 2_000_001))


def test_second_server_on_a_taken_port_refuses_to_start(make_server, tmp_path):
    """Each loop thread listens with SO_REUSEPORT, which would let a second
    storaged of the same user join the port and take half the connections
    (and the objects PUT through them): it must fail instead, and the first
    must keep every connection."""
    first = make_server()
    c = first.client()
    assert c.put("port", "k", b"first").status == 200
    other = tmp_path / "other"
    other.mkdir()
    p = run_storaged(["--storage", str(other / "store.img"), "--size", "64MB", "--listen", "127.0.0.1", "--port",
                      str(first.port)], cwd=other, timeout=20)
    assert not sanitizer_report(p.stderr + p.stdout), p.stderr
    assert p.returncode == 1, "exit %d, stderr %r" % (p.returncode, p.stderr)
    assert "cannot listen on 127.0.0.1:%d: another process listens there" % first.port in p.stderr, p.stderr
    assert not any(other.iterdir()), "a start that failed left %s" % sorted(os.listdir(other))
    # every new connection still reaches the first server
    for i in range(20):
        fresh = first.client()
        assert fresh.get("port", "k").body == b"first"
        fresh.close()
    # and the port is the first's again after it stops: a restart binds it
    first.restart()
    assert first.client().get("port", "k").body == b"first"


def test_second_server_on_the_same_store_refuses_to_start(make_server, tmp_path):
    """A second storaged on a store in use (or on its metadata, with a copy of
    the store) would allocate the same extents from its own free map, and its
    start-up would reclaim the first one's extents in flight: it must fail
    before it touches anything, and the first must go on as if nothing
    happened."""
    first = make_server()
    c = first.client()
    for i in range(20):
        assert c.put("lock", "k%d" % i, b"first %d" % i).status == 200
    size_before = first.storage.stat().st_size
    for size in ("64MB", "128MB"):  # a larger size must not grow the file either
        p = run_storaged(["--storage", str(first.storage), "--size", size, "--listen", "127.0.0.1", "--port",
                          str(free_port())], cwd=tmp_path, timeout=20)
        assert not sanitizer_report(p.stderr + p.stdout), p.stderr
        assert p.returncode == 1, "exit %d, stderr %r" % (p.returncode, p.stderr)
        assert "%s: in use by another storaged" % first.storage in p.stderr, p.stderr
    assert first.storage.stat().st_size == size_before
    # a copy of the store carries the same store id: the metadata is locked too
    copy = tmp_path / "copy.img"
    shutil.copyfile(first.storage, copy)
    meta = first.storage.parent / "store.img.meta"
    assert meta.is_dir()
    p = run_storaged(["--storage", str(copy), "--meta", str(meta), "--size", "64MB", "--listen", "127.0.0.1", "--port",
                      str(free_port())], cwd=tmp_path, timeout=20)
    assert not sanitizer_report(p.stderr + p.stdout), p.stderr
    assert p.returncode == 1, "exit %d, stderr %r" % (p.returncode, p.stderr)
    assert "%s: in use by another storaged" % meta in p.stderr, p.stderr
    for i in range(20):
        assert c.put("lock", "n%d" % i, b"more %d" % i).status == 200
    for i in range(20):
        assert c.get("lock", "k%d" % i).body == b"first %d" % i
        assert c.get("lock", "n%d" % i).body == b"more %d" % i
    # the lock goes with the process, however it ends
    first.kill9()
    first.start()
    assert first.client().get("lock", "k7").body == b"first 7"


def test_flags_override_config(make_server, tmp_path):
    config_port = free_port()
    config = "server:\n  listen: 127.0.0.1\n  port: %d\n  storage_path: %s\n  storage_size: 8MB\n" % (
        config_port, tmp_path / "from-config.img")
    srv = make_server(config=config)  # flags name another port, store and size
    assert srv.port != config_port
    c = srv.client()
    assert c.put("over", "k", b"v").status == 200
    assert srv.storage.exists() and srv.storage.stat().st_size == 64_000_000
    assert not (tmp_path / "from-config.img").exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", config_port), timeout=2).close()


def test_storage_image_sparse_and_default_meta_path(server):
    c = server.client()
    assert c.put("paths", "k", b"v").status == 200
    st = server.storage.stat()
    assert st.st_size == 64_000_000
    assert st.st_blocks * 512 < 32_000_000, "the store image was not created sparse"
    meta = server.storage.parent / "store.img.meta"
    assert meta.is_dir(), "metadata not in <storage>.meta"
    assert any(meta.iterdir())


def test_meta_flag_overrides_meta_path(make_server, tmp_path):
    meta = tmp_path / "elsewhere-meta"
    srv = make_server(extra_args=["--meta", str(meta)])
    c = srv.client()
    assert c.put("meta", "k", b"persist").status == 200
    assert meta.exists(), "--meta path not used"
    if meta.is_dir():
        assert any(meta.iterdir())
    assert not (srv.storage.parent / "store.img.meta").exists()
    srv.restart()
    assert srv.client().get("meta", "k").body == b"persist"


# --- server.max_object_size ------------------------------------------------------------------


def test_max_object_size(make_server):
    srv = make_server(config="server:\n  max_object_size: 1000\n")
    c = srv.client()
    used0 = c.metrics().value("comio_store_used_bytes")
    assert c.put("lim", "exact", b"e" * 1000).status == 200
    expect_too_large(c.put("lim", "over", b"o" * 1001))
    expect_too_large(c.put("lim", "way-over", os.urandom(2_000_000)))
    expect_too_large(c.put("lim", "exact", b"o" * 1001))  # overwrite refused, old one kept
    expect_error(c.get("lim", "over"), 404, "NoSuchKey")
    expect_error(c.get("lim", "way-over"), 404, "NoSuchKey")
    assert c.get("lim", "exact").body == b"e" * 1000
    m = c.metrics()
    assert m.value("comio_objects") == 1
    assert m.value("comio_store_used_bytes") < used0 + 1_000_000


# --- server.access_token ------------------------------------------------------------------------


TOKEN = "s3cret-token-xyz"


def test_access_token(make_server):
    srv = make_server(config='server:\n  access_token: "%s"\n' % TOKEN)
    anon = srv.client()
    good = srv.client(token=TOKEN)
    bad = srv.client(token=TOKEN + "x")
    basic = {"Authorization": "Basic " + TOKEN}

    for c in (anon, bad):
        expect_error(c.put("sec", "k", b"v"), 401, "Unauthorized")
    expect_error(anon.put("sec", "k", b"v", basic), 401, "Unauthorized")
    expect_error(anon.put("sec", "k", b"v", {"Authorization": "Bearer"}), 401, "Unauthorized")
    expect_error(anon.create_bucket("sec"), 401, "Unauthorized")
    r = good.put("sec", "k", b"secret data")
    assert r.status == 200, r
    assert expect_ok_json(good.create_bucket("sec2"))["created"] is True

    # reads of objects stay open
    r = anon.get("sec", "k")
    assert r.status == 200 and r.body == b"secret data"
    assert r.headers["ETag"] == '"%s"' % md5(b"secret data")
    assert anon.head("sec", "k").status == 200
    assert anon.get("sec", "k", {"Range": "bytes=0-5"}).body == b"secret"

    # mutations and admin need the token
    expect_error(anon.delete("sec", "k"), 401, "Unauthorized")
    expect_error(bad.delete("sec", "k"), 401, "Unauthorized")
    expect_error(anon.delete_bucket("sec2"), 401, "Unauthorized")
    expect_error(anon.purge("sec", confirm=True), 401, "Unauthorized")
    expect_error(anon.purge("sec", confirm=False), 401, "Unauthorized")
    expect_error(anon.raw("GET", "/admin/replication/status"), 401, "Unauthorized")
    expect_error(bad.raw("GET", "/admin/replication/status"), 401, "Unauthorized")
    assert anon.get("sec", "k").body == b"secret data"
    assert anon.health().status == 200

    assert good.raw("GET", "/admin/replication/status").status == 200
    assert expect_ok_json(good.purge("sec", confirm=False))["count"] == 1
    assert good.delete("sec", "k").status == 204
    assert good.delete_bucket("sec2").status == 204
    expect_error(anon.get("sec", "k"), 404, "NoSuchKey")


def _start_and_read_log(argv, log_path, timeout=30):
    """Starts storaged, waits (bounded) for its "storaged listening" line, stops it; returns the log."""
    with open(log_path, "wb") as log:
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=sanitizer_env())
    try:
        deadline = time.monotonic() + timeout
        while "storaged listening" not in log_path.read_text(errors="replace"):
            assert p.poll() is None, "storaged exited %s:\n%s" % (p.returncode, log_path.read_text(errors="replace"))
            assert time.monotonic() < deadline, "storaged did not start"
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return log_path.read_text(errors="replace")


def test_warns_when_listening_beyond_loopback_without_a_token(tmp_path):
    """0.0.0.0 without server.access_token: a warning at start-up; with a token, or on loopback, none.
    The 0.0.0.0 runs are inside a network namespace the test creates (it has only its own loopback)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to listen on 0.0.0.0 inside a private network namespace")
    ns = "comio-cfg-%d" % os.getpid()
    r = subprocess.run(["ip", "netns", "add", ns], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        pytest.skip("cannot create a network namespace: %s" % r.stderr.strip())
    warning = "listening beyond loopback without server.access_token"
    try:
        (tmp_path / "token").write_text("0123456789abcdef0123456789abcdef\n")
        cases = [(["ip", "netns", "exec", ns], "0.0.0.0", [], True),
                 (["ip", "netns", "exec", ns], "0.0.0.0", ["--config", str(tmp_path / "tok.yaml")], False),
                 ([], "127.0.0.1", [], False)]
        (tmp_path / "tok.yaml").write_text("server:\n  access_token_file: %s\n" % (tmp_path / "token"))
        for i, (prefix, listen, extra, warned) in enumerate(cases):
            argv = prefix + [str(storaged_path()), "--storage", str(tmp_path / ("s%d.img" % i)), "--size", "32MB",
                             "--listen", listen, "--port", str(free_port())] + extra
            log = _start_and_read_log(argv, tmp_path / ("s%d.log" % i))
            assert (warning in log) == warned, (listen, extra, log)
            assert sanitizer_report(log) is None, log
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


# --- replication.targets -------------------------------------------------------------------------------------------

TARGETS_OK = ("replication:\n"
              "  enabled: true\n"
              "  batch_size: 50\n"
              "  targets:\n"
              "    - name: site-b\n"
              "      url: http://127.0.0.1:9\n"
              "      token: tok-b\n"
              "    - {name: site-c, url: 'http://127.0.0.1:10', token: tok-c, retry_attempts: 0, workers: 1}\n"
              "  accept_token: tok-from-b\n")


def run_daemon_bad(tmp_path, daemon, args, config=None):
    """Like run_bad, for storaged or repld: exit 2 and exactly one line on stderr. Returns that line."""
    if daemon == "storaged":
        return run_bad(tmp_path, args, config)
    if config is not None:
        (tmp_path / "config.yaml").write_text(config)
    p = subprocess.run([str(repld_path())] + list(args), cwd=str(tmp_path), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, errors="replace", timeout=30, env=sanitizer_env())
    assert not sanitizer_report(p.stderr + p.stdout), p.stderr
    assert p.returncode == 2, "exit %d, stderr %r" % (p.returncode, p.stderr)
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, "expected one line on stderr, got %r" % p.stderr
    return lines[0]


BAD_TARGETS = [
    ("url", "replication:\n  targets:\n    - name: b\n      url: http://b\n    - name: c\n      url: x\n",
     "config.yaml:6: replication.targets[1].url: expected an http:// or https:// URL, got 'x'"),
    ("same-name", "replication:\n  targets:\n    - {name: b, url: 'http://b'}\n    - {name: c, url: 'http://c'}\n"
     "    - url: http://d\n      name: b\n",
     "config.yaml:6: replication.targets[2].name: 'b' is already the name of targets[0]"),
    ("unknown-key", "replication:\n  targets:\n    - name: b\n      url: http://b\n      tokn: t\n",
     "config.yaml:5: unknown key 'replication.targets[0].tokn'"),
    ("scalar", "replication:\n  enabled: true\n  targets: http://b\n",
     "config.yaml:3: replication.targets: expected a list of targets, got 'http://b'"),
    ("empty", "replication:\n  enabled: true\n  targets: []\n",
     "config.yaml:3: replication.targets: expected at least one target, got an empty list"),
    ("no-url", "replication:\n  targets:\n    - {name: b, url: 'http://b'}\n    - name: c\n      token: t\n",
     "config.yaml:4: replication.targets[1].url: missing (every target needs a name and a url)"),
    ("no-name", "replication:\n  targets:\n    - url: http://b\n",
     "config.yaml:3: replication.targets[0].name: missing (every target needs a name and a url)"),
    ("range", "replication:\n  targets:\n    - {name: b, url: 'http://b', workers: 65}\n",
     "config.yaml:3: replication.targets[0].workers: expected an integer from 1 to 64, got '65'"),
    ("with-remote-url", "replication:\n  enabled: true\n  remote_url: http://b\n  targets: [{name: c, url: 'http://c'}]\n",
     "config.yaml:4: replication.targets: cannot be used together with replication.remote_url: use one: list the remote "
     "site as a target"),
    ("enabled-without", "replication:\n  enabled: true\n  accept_token: a\n",
     "replication.targets or replication.remote_url is required when replication.enabled is true (list the sites to "
     "ship to in the config file, or give one with --replication-remote)"),
]


@pytest.mark.parametrize("daemon", ["storaged", "repld"])
@pytest.mark.parametrize("config,want", [b[1:] for b in BAD_TARGETS], ids=[b[0] for b in BAD_TARGETS])
def test_bad_targets_name_file_line_and_key(tmp_path, daemon, config, want):
    line = run_daemon_bad(tmp_path, daemon, ["--config", "config.yaml"] + good_flags(tmp_path), config)
    assert line == want
    assert not (tmp_path / "store.img").exists()


@pytest.mark.parametrize("daemon", ["storaged", "repld"])
def test_targets_and_remote_flags_refused(tmp_path, daemon):
    """A flag that gives the seed's single remote does not sneak in beside a file's list."""
    line = run_daemon_bad(tmp_path, daemon, ["--config", "config.yaml", "--replication-remote", "http://127.0.0.1:11"] +
                          good_flags(tmp_path), TARGETS_OK)
    assert line == "replication.targets and replication.remote_url (--replication-remote) cannot both be set: use one"
    line = run_daemon_bad(tmp_path, daemon, ["--config", "config.yaml", "--replication-token", "tok-x"] +
                          good_flags(tmp_path), TARGETS_OK)
    assert line == ("replication.remote_token (--replication-token) cannot be used with replication.targets: give each "
                    "target its token or token_file")


@pytest.mark.parametrize("daemon", ["storaged", "repld"])
def test_target_token_is_never_printed(tmp_path, daemon):
    secret = "top-secret-%d" % os.getpid()
    (tmp_path / "t.token").write_text("%s with a space\n" % secret)
    cases = [
        ("replication:\n  targets:\n    - {name: b, url: 'http://b', token: '%s x'}\n" % secret,
         "config.yaml:3: replication.targets[0].token: must be printable ASCII without spaces"),
        ("replication:\n  targets:\n    - {name: b, url: 'http://b', token_file: t.token}\n",
         "config.yaml:3: replication.targets[0].token_file: the token in 't.token' must be printable ASCII without spaces"),
        ("replication:\n  targets:\n    - {name: b, url: 'http://b', token: %s, token_file: t.token}\n" % secret,
         "config.yaml:3: replication.targets[0].token_file: cannot be used together with replication.targets[0].token"),
    ]
    for config, want in cases:
        line = run_daemon_bad(tmp_path, daemon, ["--config", "config.yaml"] + good_flags(tmp_path), config)
        assert line == want
        assert secret not in line


def test_targets_list_loads_in_every_program(make_server, tmp_path):
    """storaged serves with a list of targets; repld --status parses and finalizes it (exit 1: no repld runs)."""
    sock = tmp_path / "repld.sock"
    config = TARGETS_OK + "  socket: %s\n" % sock
    srv = make_server(config=config)
    c = srv.client()
    assert c.put("targets", "k", b"v").status == 200
    assert c.get("targets", "k").body == b"v"
    p = subprocess.run([str(repld_path()), "--config", str(srv.config_path), "--status"], capture_output=True, text=True,
                       timeout=30, env=sanitizer_env())
    assert p.returncode == 1 and "repld is not running (no answer on %s)" % sock in p.stderr, (p.returncode, p.stderr)


class ListSite(Site):
    """A Site whose replication block lists `targets` (dicts) instead of remote_url."""

    def __init__(self, *args, targets=(), **kw):
        self.targets = [dict(t) for t in targets]
        super().__init__(*args, **kw)

    def write_config(self):
        block = ["  targets:"]
        for t in self.targets:
            for i, (k, v) in enumerate(t.items()):
                block.append("%s%s: %s" % ("    - " if i == 0 else "      ", k, json.dumps(v)))
        text = render_config(self.config_sections())
        assert text.count("\nreplication:\n") == 1
        self.config_path.write_text(text.replace("\nreplication:\n", "\nreplication:\n" + "\n".join(block) + "\n"))


def test_targets_list_ships_to_its_target(tmp_path):
    """A site configured with a list ships to the target it names, with the token read from its token_file.
    (This release ships to the first target of a list; the list's parsing is what this test is about.)"""
    token = new_token()
    (tmp_path / "b.token").write_text(token + "\n")
    b = Site(tmp_path / "b", "site-b", accept_token=token)
    a = ListSite(tmp_path / "a", "site-a", repl={},
                 targets=[{"name": "site-b", "url": b.url(), "token_file": str(tmp_path / "b.token"), "workers": 1}])
    assert "remote_url" not in a.config_path.read_text()
    try:
        b.start()
        a.start()
        c = a.client()
        small, large = b"small object", os.urandom(300_000)  # the large one is fetched with a signed URL
        assert c.put("tgt", "small", small).status == 200
        assert c.put("tgt", "large", large).status == 200
        converge_or_fail(a, b)
        assert b.client().get("tgt", "small").body == small
        assert b.client().get("tgt", "large").body == large
        assert '"remote":"%s"' % b.url() in a.repld.log(), a.repld.log_tail(20)
    finally:
        problems = finish_sites([a, b])
    assert not problems, problems
