"""comio.py - end-to-end helpers: run a real storaged, talk HTTP to it.

Server starts bin/storaged (or $COMIO_BIN_DIR/storaged) on a free loopback
port with its store in the test's tmp dir, waits until /admin/health answers,
and on stop() fails if the log shows a sanitizer report. Client is a small
keep-alive HTTP/1.1 client on http.client (stdlib only). Every wait and loop
here is bounded in count and time.
"""

import concurrent.futures
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.parse
from collections import namedtuple
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

START_TIMEOUT = float(os.environ.get("COMIO_START_TIMEOUT", "10"))
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.02
IO_TIMEOUT = 60.0
# How long wait_for and settled_used wait by default for state the server settles
# on its own: a moment in the plain build, but under a sanitizer on a busy
# machine the daemons run several times slower. A condition that holds ends the
# wait at once, so a generous bound costs only a failing test its time.
SETTLE_TIMEOUT = 30.0

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer")


def bin_dir():
    return Path(os.environ.get("COMIO_BIN_DIR") or REPO / "bin")


def storaged_path():
    return bin_dir() / "storaged"


# Ports handed to daemons come from below the kernel's ephemeral range
# (/proc/sys/net/ipv4/ip_local_port_range, 32768 and up by default). A port
# taken from the ephemeral range and released can be given, before the daemon
# binds it, to any socket bound to port 0 or to the source of any outgoing
# connection, and the daemon then fails with "address already in use". Each
# pytest-xdist worker owns its own block, so two workers never hand out the
# same port; within a block, ports are handed out in turn from a start that
# differs from run to run.
_PORT_LOW, _PORT_HIGH, _PORT_BLOCKS = 10000, 32000, 8


def _port_block():
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    n = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else _PORT_BLOCKS - 1
    size = (_PORT_HIGH - _PORT_LOW) // _PORT_BLOCKS
    low = _PORT_LOW + (n % _PORT_BLOCKS) * size
    return low, size


_port_next = None


def _port_is_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the daemons bind
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port():
    """A loopback port that is free now and that no other socket of this machine
    is handed by the kernel meanwhile (see _PORT_LOW above)."""
    global _port_next
    low, size = _port_block()
    if _port_next is None:
        _port_next = (os.getpid() * 7919 + int(time.time())) % size
    for _ in range(size):
        port = low + _port_next % size
        _port_next += 1
        if _port_is_free(port):
            return port
    raise RuntimeError("no free loopback port in %d-%d" % (low, low + size - 1))


def md5(data):
    return hashlib.md5(data).hexdigest()


def sanitizer():
    """The sanitizer the binaries under test were built with, as tests/run.sh
    says in COMIO_SANITIZER: "address" (ASan and UBSan), "thread", or None."""
    return os.environ.get("COMIO_SANITIZER") or None


def memory_figures_mean_something():
    """Whether a process's RSS says anything about ComIO's own memory: not
    under ThreadSanitizer, whose shadow memory is several times what the
    program touches. (ASan's overhead is smaller and per allocation; the
    bounds of the memory tests allow for it.)"""
    return sanitizer() != "thread"


def vm_rss(pid):
    """The resident set of process pid, in bytes (/proc/PID/status VmRSS)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for pid %d" % pid)


def sanitizer_env():
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:allocator_may_return_null=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


def sanitizer_report(text):
    """Returns the first sanitizer marker found in text, or None."""
    for marker in SANITIZER_MARKERS:
        if marker in text:
            return marker
    return None


class Reply(namedtuple("Reply", "status headers body")):
    """(status, headers, body bytes). headers is case-insensitive (http.client's HTTPMessage)."""

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def header(self, name):
        return self.headers.get(name)

    def __repr__(self):
        body = self.body if len(self.body) <= 300 else self.body[:300] + b"..."
        return "Reply(%d, %r, %r)" % (self.status, dict(self.headers.items()), body)


class CountingMixin:
    """Counts how many TCP connections an http.client connection opened (and
    turns Nagle off on each): mixed into HTTP and HTTPS connections alike."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.connects = 0

    def connect(self):
        super().connect()
        self.connects += 1
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _CountingConnection(CountingMixin, http.client.HTTPConnection):
    """An HTTPConnection that counts how many TCP connections it opened."""


def key_bytes(key):
    """The bytes of a key given as bytes or as str. A str is what storaged's JSON
    gives back: bytes that are not UTF-8 arrive as the lone surrogates
    U+DC80-U+DCFF (docs/api.md), Python's "surrogateescape", so this is lossless."""
    return key if isinstance(key, bytes) else key.encode("utf-8", "surrogateescape")


def quote_key(key):
    return urllib.parse.quote_from_bytes(key_bytes(key), safe="/")


class Client:
    """A keep-alive HTTP/1.1 client for one storaged.

    token, when set, is sent as "Authorization: Bearer <token>" on every request
    unless the request's own headers name Authorization. `connects` tells how
    many TCP connections were opened so far (1 while keep-alive holds)."""

    def __init__(self, host, port, token=None, timeout=IO_TIMEOUT):
        self.host = host
        self.port = port
        self.token = token
        self.conn = _CountingConnection(host, port, timeout=timeout)

    @property
    def connects(self):
        return self.conn.connects

    def close(self):
        self.conn.close()

    def raw(self, method, path, body=None, headers=None):
        """Sends one request with the path exactly as given; returns a Reply.

        A body is sent with Content-Length; PUT/POST/PATCH without a body send
        Content-Length: 0. If the server answers early and stops reading (413,
        507), the send error is swallowed and the answer is read anyway."""
        hdrs = dict(headers or {})
        names = {k.lower() for k in hdrs}
        if self.token is not None and "authorization" not in names:
            hdrs["Authorization"] = "Bearer " + self.token
        if body is None and method in ("PUT", "POST", "PATCH"):
            body = b""
        if body is not None and "content-length" not in names:
            hdrs["Content-Length"] = str(len(body))
        conn = self.conn
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for k, v in hdrs.items():
                conn.putheader(k, v)
            conn.endheaders()
            send_error = None
            if body:
                view = memoryview(body)
                chunk = 1 << 18
                try:
                    for off in range(0, len(view), chunk):
                        conn.send(view[off : off + chunk])
                except (BrokenPipeError, ConnectionResetError) as e:
                    send_error = e
            try:
                resp = conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError):
                if send_error is not None:
                    raise send_error
                raise
            data = resp.read()
            reply = Reply(resp.status, resp.msg, data)
            if send_error is not None or resp.will_close:
                conn.close()
            return reply
        except BaseException:
            conn.close()
            raise

    # --- object and bucket API -------------------------------------------------

    def put(self, bucket, key, data=b"", headers=None):
        return self.raw("PUT", "/%s/%s" % (bucket, quote_key(key)), data, headers)

    def get(self, bucket, key, headers=None):
        return self.raw("GET", "/%s/%s" % (bucket, quote_key(key)), None, headers)

    def head(self, bucket, key, headers=None):
        return self.raw("HEAD", "/%s/%s" % (bucket, quote_key(key)), None, headers)

    def delete(self, bucket, key, headers=None):
        return self.raw("DELETE", "/%s/%s" % (bucket, quote_key(key)), None, headers)

    def create_bucket(self, bucket, headers=None):
        return self.raw("PUT", "/" + bucket, None, headers)

    def delete_bucket(self, bucket, headers=None):
        return self.raw("DELETE", "/" + bucket, None, headers)

    def list(self, bucket, prefix=None, start_after=None, max_keys=None, encoding_type=None, headers=None):
        """GET /bucket with the listing parameters; prefix and start_after are keys (bytes or str)."""
        params = []
        if prefix is not None:
            params.append(("prefix", key_bytes(prefix)))
        if start_after is not None:
            params.append(("start-after", key_bytes(start_after)))
        if max_keys is not None:
            params.append(("max-keys", str(max_keys).encode()))
        if encoding_type is not None:
            params.append(("encoding-type", key_bytes(encoding_type)))
        q = "&".join("%s=%s" % (k, urllib.parse.quote_from_bytes(v, safe="")) for k, v in params)
        return self.raw("GET", "/" + bucket + ("?" + q if q else ""), None, headers)

    def list_all(self, bucket, prefix=None, max_keys=None, max_pages=100, encoding_type=None):
        """Follows next_start_after; returns (keys in order, pages). Bounded by max_pages.

        Keys are str as JSON gives them (see key_bytes() for their bytes); with
        encoding_type="url" they are the bytes, percent-decoded."""
        keys, pages, start = [], [], None
        for _ in range(max_pages):
            r = self.list(bucket, prefix=prefix, start_after=start, max_keys=max_keys, encoding_type=encoding_type)
            assert r.status == 200, r
            page = r.json()
            pages.append(page)
            if encoding_type == "url":
                assert page.get("encoding_type") == "url", page
                decode = urllib.parse.unquote_to_bytes
            else:
                assert "encoding_type" not in page, page
                decode = str
            keys.extend(decode(o["key"]) for o in page["objects"])
            if not page["is_truncated"]:
                return keys, pages
            assert page["next_start_after"], page
            start = decode(page["next_start_after"])
        raise AssertionError("listing did not end within %d pages" % max_pages)

    def purge(self, bucket, confirm=True, headers=None):
        path = "/admin/%s/objects" % bucket + ("?confirm=true" if confirm else "")
        return self.raw("DELETE", path, None, headers)

    # --- admin ------------------------------------------------------------------

    def health(self):
        return self.raw("GET", "/admin/health")

    def repl_status(self):
        r = self.raw("GET", "/admin/replication/status")
        assert r.status == 200, r
        return r.json()

    def metrics(self):
        r = self.raw("GET", "/metrics")
        assert r.status == 200, r
        return Metrics(r.body.decode("utf-8"), r.headers.get("Content-Type"))


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)(\s+\S+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


class Metrics:
    """Parsed Prometheus text exposition: samples by (name, labels)."""

    def __init__(self, text, content_type=None):
        self.text = text
        self.content_type = content_type
        self.samples = {}
        self.types = {}
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                parts = line.split()
                if len(parts) >= 4 and parts[1] == "TYPE":
                    self.types[parts[2]] = parts[3]
                continue
            m = _SAMPLE.match(line)
            assert m, "unparsable metrics line: %r" % line
            labels = {}
            if m.group(3):
                pos, s = 0, m.group(3)
                while pos < len(s):
                    lm = _LABEL.match(s, pos)
                    assert lm, "unparsable labels in %r" % line
                    labels[lm.group(1)] = lm.group(2)
                    pos = lm.end()
            self.samples[(m.group(1), frozenset(labels.items()))] = float(m.group(4))

    def names(self):
        return {name for name, _ in self.samples}

    def get(self, name, default=None, **labels):
        return self.samples.get((name, frozenset(labels.items())), default)

    def value(self, name, **labels):
        v = self.get(name, **labels)
        assert v is not None, "metric %s%r not found in:\n%s" % (name, labels, self.text)
        return v

    def sum(self, name, **labels):
        """Sum of every sample of `name` whose labels include `labels`."""
        total = 0.0
        want = set(labels.items())
        for (n, ls), v in self.samples.items():
            if n == name and want <= set(ls):
                total += v
        return total


def terminate(proc, name, timeout, problems):
    """SIGTERM, wait up to `timeout` s, then SIGKILL. Returns the exit status.
    Appends to `problems` when the process had already exited, needed SIGKILL,
    or did not exit with status 0."""
    rc = proc.poll()
    if rc is not None:
        problems.append("%s had already exited (status %s) before it was stopped" % (name, rc))
        return rc
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait(timeout=10)
        problems.append("%s did not exit within %.0f s of SIGTERM" % (name, timeout))
        return rc
    if time.monotonic() - t0 > 2:
        print("%s took %.1f s to stop after SIGTERM" % (name, time.monotonic() - t0))
    if rc != 0:
        problems.append("%s exited with status %s after SIGTERM" % (name, rc))
    return rc


class DaemonLog:
    """The log file of a daemon a test started (`log_path`), and the problems
    (`problems`, a list) that fail its teardown."""

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=60):
        return "\n".join(self.log().splitlines()[-n:])

    def finish_problems(self, tail_title, tail_lines):
        """Stops the daemon and returns its problems, a sanitizer report in its log
        among them; when there is any, the log's last lines too."""
        self.stop()
        problems = list(self.problems)
        marker = sanitizer_report(self.log())
        if marker:
            problems.append("sanitizer report (%r) in %s" % (marker, self.log_path))
        if problems:
            problems.append("%s:\n%s" % (tail_title, self.log_tail(tail_lines)))
        return problems


class Server(DaemonLog):
    """One storaged process with its store, config and log in `workdir`.

    Flags: --storage DIR/store.img --size SIZE --listen 127.0.0.1 --port PORT,
    plus --config DIR/config.yaml when config text is given, plus
    --replication-enabled --replication-remote http://127.0.0.1:9 when
    replication=True, plus extra_args. With flags=False only --config and
    extra_args are passed (the config must name storage and port)."""

    stop_timeout = STOP_TIMEOUT

    def __init__(self, workdir, size="64MB", config=None, replication=False, token=None, extra_args=(), flags=True,
                 port=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage = self.workdir / "store.img"
        self.log_path = self.workdir / "storaged.log"
        self.config_path = None
        if config is not None:
            self.config_path = self.workdir / "config.yaml"
            self.config_path.write_text(config)
        self.size = size
        self.replication = replication
        self.token = token
        self.extra_args = list(extra_args)
        self.flags = flags
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.proc = None
        self.clients = []
        self.problems = []

    # --- lifecycle -------------------------------------------------------------

    def argv(self):
        argv = [str(storaged_path())]
        if self.flags:
            argv += ["--storage", str(self.storage), "--size", self.size, "--listen", self.host, "--port", str(self.port)]
        if self.config_path is not None:
            argv += ["--config", str(self.config_path)]
        if self.replication:
            argv += ["--replication-enabled", "--replication-remote", "http://127.0.0.1:9"]
        return argv + self.extra_args

    def start(self):
        assert self.proc is None, "already running"
        exe = storaged_path()
        assert exe.exists(), "%s does not exist: build first (cmake --build build)" % exe
        with open(self.log_path, "ab") as log:
            log.write(("\n=== start: %s\n" % " ".join(self.argv())).encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         cwd=str(self.workdir), env=sanitizer_env())
        self._wait_ready()
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                raise AssertionError("storaged exited with status %s during startup; log:\n%s" % (rc, self.log_tail()))
            try:
                conn = self._health_connection()
                try:
                    conn.request("GET", "/admin/health")
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status == 200:
                        return
                    last = "status %d" % resp.status
                finally:
                    conn.close()
            except OSError as e:
                last = repr(e)
            time.sleep(POLL_INTERVAL)
        self.kill9()
        raise AssertionError("storaged did not answer /admin/health with 200 within %.0f s (last: %s); log:\n%s" %
                             (START_TIMEOUT, last, self.log_tail()))

    def _health_connection(self):
        """The connection _wait_ready probes /admin/health over."""
        return http.client.HTTPConnection(self.host, self.port, timeout=1.0)

    def _close_clients(self):
        for c in self.clients:
            c.close()

    def stop(self):
        """SIGTERM, wait up to stop_timeout (10 s), then SIGKILL. Returns the exit status (None if not running).
        Records a problem when the process needed SIGKILL or did not exit with status 0."""
        self._close_clients()
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        return terminate(proc, "storaged", self.stop_timeout, self.problems)

    def kill9(self):
        """SIGKILL, no chance to clean up."""
        self._close_clients()
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is not None:
            self.problems.append("storaged had already exited (status %s) before SIGKILL" % proc.returncode)
            return
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)

    def restart(self, graceful=True):
        """Stops (SIGTERM, or SIGKILL when graceful=False) and starts again on the same port and store."""
        if graceful:
            self.stop()
        else:
            self.kill9()
        return self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # --- access ----------------------------------------------------------------

    def client(self, token=None, timeout=IO_TIMEOUT):
        c = Client(self.host, self.port, token=token if token is not None else self.token, timeout=timeout)
        self.clients.append(c)
        return c

    def url(self, path="/"):
        return "http://%s:%d%s" % (self.host, self.port, path)

    def finish(self):
        """Tears down and returns a list of problems (empty when all is well)."""
        return self.finish_problems("log tail", 200)


def run_storaged(args, cwd, timeout=20):
    """Runs storaged with args to completion (for --help and config errors). Returns CompletedProcess (text)."""
    exe = storaged_path()
    assert exe.exists(), "%s does not exist: build first" % exe
    return subprocess.run([str(exe)] + list(args), cwd=str(cwd), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, errors="replace", timeout=timeout, env=sanitizer_env())


# --- raw sockets for requests http.client refuses to send ------------------------


def raw_exchange(port, data, read_timeout=10.0, shut_write=False, max_bytes=1 << 20):
    """Sends `data` bytes on a fresh connection and reads until the server closes,
    a full response head + Content-Length body has arrived, or read_timeout.
    Returns (bytes received, closed_by_server). Send errors are ignored (the
    server may answer early and close)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    try:
        try:
            s.sendall(data)
            if shut_write:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        buf = b""
        closed = False
        deadline = time.monotonic() + read_timeout
        while time.monotonic() < deadline and len(buf) < max_bytes:
            if _complete_response(buf):
                break
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            buf += chunk
        return buf, closed
    finally:
        s.close()


def _complete_response(buf):
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", buf[:head_end])
    if not m:
        return False
    return len(buf) - head_end - 4 >= int(m.group(1))


def status_of(raw):
    """Status code of the first response in raw bytes, or None."""
    m = re.match(rb"HTTP/1\.[01] (\d{3})", raw)
    return int(m.group(1)) if m else None


# --- assertions shared by the tests -------------------------------------------


def wait_for(fn, timeout=SETTLE_TIMEOUT, interval=0.02):
    """Polls fn() until it returns a truthy value or timeout passes; returns the last value.
    For state the server settles on its own shortly after a reply (released extents
    return to the free map once no reader can see them); the caller asserts on it."""
    deadline = time.monotonic() + timeout
    value = fn()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = fn()
    return value


def put_keys(srv, bucket, keys, body=b"x", conns=1):
    """PUTs `body` under every key through the native API over `conns` keep-alive connections at once, each 200.
    Concurrent PUTs share a commit: thousands of keys written one at a time wait out a sync each."""
    keys = list(keys)

    def write(part):
        c = srv.client()
        for k in part:
            r = c.put(bucket, k, body)
            assert r.status == 200, (k, r)

    with concurrent.futures.ThreadPoolExecutor(conns) as pool:
        for f in [pool.submit(write, keys[i::conns]) for i in range(conns)]:
            f.result()


def settled_used(client, pred, timeout=SETTLE_TIMEOUT):
    """Waits (bounded) until pred(comio_store_used_bytes) holds; returns the last value seen."""
    seen = []

    def check():
        seen.append(client.metrics().value("comio_store_used_bytes"))
        return pred(seen[-1])

    wait_for(check, timeout)
    return seen[-1]


def expect_error(r, status, code):
    """The reply is a JSON error {"error": text, "code": code} with that status and a Content-Length."""
    assert r.status == status, "expected %d %s, got %r" % (status, code, r)
    if r.headers.get("Content-Length") is not None:
        assert int(r.headers["Content-Length"]) == len(r.body), r
    else:
        raise AssertionError("error reply without Content-Length: %r" % (r,))
    ctype = r.headers.get("Content-Type") or ""
    assert ctype.startswith("application/json"), r
    body = r.json()
    assert body.get("code") == code, "expected code %s, got %r" % (code, body)
    assert isinstance(body.get("error"), str) and body["error"], body
    return body


def expect_too_large(r):
    """413 for a body over server.max_object_size. h2o 2.2.5 refuses a body whose
    announced length is over its limit before storaged's handler runs, with its
    own plain-text reply; storaged answers the JSON error for the rest."""
    assert r.status == 413, "expected 413, got %r" % (r,)
    assert r.headers.get("Content-Length") is not None and int(r.headers["Content-Length"]) == len(r.body), r
    if (r.headers.get("Content-Type") or "").startswith("application/json"):
        assert r.json().get("code") == "EntityTooLarge", r
    else:
        assert b"too large" in r.body, r


def expect_ok_json(r, status=200):
    assert r.status == status, r
    assert r.headers.get("Content-Length") is not None and int(r.headers["Content-Length"]) == len(r.body), r
    assert (r.headers.get("Content-Type") or "").startswith("application/json"), r
    return r.json()
