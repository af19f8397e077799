"""fake_replica.py - a scripted replica that speaks the batch protocol and misbehaves on purpose.

FakeReplica listens on a loopback port (http.server, one thread per
connection, HTTP/1.1 keep-alive like the real replica) and answers
POST /admin/replication/batch (docs/protocol.md, proto/batch.h):

    batch  = {"v": 1, "src": site, "ev": [{"r": bin logrec, "d": bin | "u": str}...]}
    reply  = {"v": 1, "res": [{"seq": u, "r": 0 applied|1 skipped|2 retry|3 permanent, "st": u, "e": str}...]}

When it behaves it applies events last-writer-wins by version (seq) with
tombstones and purge versions, like a real replica, and snapshot() returns
what it holds in the shape of replication.snapshot(), so the same oracle
compares it with the primary. How it misbehaves is set with set_mode():

    "ok"          apply and answer
    "slow"        sleep `delay` seconds, then apply and answer
    "drop"        read the head and half the body, then close the connection
    "http500"     answer 500 with a JSON error
    "partial"     answer 200 with one result fewer than events
    "malformed"   answer 200 with bytes that are not msgpack
    "wrongseq"    answer 200 with results whose seq is not the event's
    "unauthorized" answer 401 (as a replica with another token would)

GET /admin/replication/list answers the listing of an empty replica (a full
sync ships it everything it asks about). A mode can be limited to the next `count` requests, after which the fake
behaves again. Independently, retry_keys holds (bucket, key) pairs whose PUT
and DELETE events are answered "retry" with status 507 (out of space) while
the others apply. When `token` is set, a request with another bearer token
gets 401. Every event seen is recorded (events), with the request number
and the answer given; fetch_large=True makes the fake GET the presigned URL
of a fetched PUT and check its size and MD5, as the real replica does.

refuse_encoding=415 (or 400, what a storaged of a release without
compression answers) makes it refuse every batch sent with a
Content-Encoding, as a peer that does not accept zstd; set it to None (at any
time) and it takes zstd batches (decoded by the zstd CLI), as an upgraded
peer; other encodings get 415. `encodings` records each batch request's
Content-Encoding ("" when none).
"""

import hashlib
import http.server
import json
import subprocess
import threading
import time
import urllib.error
import urllib.request

import msgpack

from . import comio

APPLIED, SKIPPED, RETRY, PERMANENT = 0, 1, 2, 3
OP_PUT, OP_DELETE, OP_PURGE = 1, 2, 3
OP_NAMES = {OP_PUT: "put", OP_DELETE: "delete", OP_PURGE: "purge"}
MODES = ("ok", "slow", "drop", "http500", "partial", "malformed", "wrongseq", "unauthorized")
BODY_MAX = 256 * 1024 * 1024


def _s(v):
    """A msgpack str/bin read with raw=True, as text (bytes kept losslessly)."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "surrogateescape")
    return v


def decode_logrec(raw):
    """The log record (docs/protocol.md) as a dict with readable names."""
    m = msgpack.unpackb(raw, raw=True, strict_map_key=False)
    m = {_s(k): v for k, v in m.items()}
    et = m.get("et")
    return {
        "v": m.get("v"),
        "seq": m.get("seq"),
        "op": m.get("op"),
        "bucket": _s(m.get("b")),
        "key": _s(m.get("k")) or "",
        "size": m.get("sz"),
        "etag": et.hex() if isinstance(et, bytes) else None,
        "ctype": _s(m.get("ct")),
        "mtime": m.get("mt"),
        "origin": _s(m.get("o")),
    }


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


class FakeReplica:
    def __init__(self, token=None, port=None, fetch_large=False, refuse_encoding=None):
        self.token = token
        self.refuse_encoding = refuse_encoding
        self.encodings = []
        self.fetch_large = fetch_large
        self.lock = threading.Lock()
        self.mode = "ok"
        self.mode_count = None  # requests left in this mode; None: until changed
        self.delay = 1.0
        self.retry_keys = set()
        self.events = []  # every event seen, in arrival order
        self.requests = []  # (request number, mode, number of events, http status or "dropped")
        self.nreq = 0
        # applied state
        self.objects = {}  # (bucket, key) -> {"seq", "size", "etag", "md5"}
        self.tombstones = {}  # (bucket, key) -> seq
        self.purges = {}  # bucket -> seq
        self.fetch_results = []  # (url, http status, ok)
        self.errors = []  # protocol violations seen (the test fails on them)
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def do_POST(self):
                fake._handle(self)

            def do_GET(self):
                fake._list(self)

        self.port = port or comio.free_port()
        self.server = _Server(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    # --- control --------------------------------------------------------------------------------------------------

    def set_mode(self, mode, count=None, delay=None):
        assert mode in MODES, mode
        with self.lock:
            self.mode = mode
            self.mode_count = count
            if delay is not None:
                self.delay = delay

    def set_retry_keys(self, keys):
        with self.lock:
            self.retry_keys = set(keys)

    def _take_mode(self):
        with self.lock:
            self.nreq += 1
            mode = self.mode
            if self.mode_count is not None:
                self.mode_count -= 1
                if self.mode_count <= 0:
                    self.mode, self.mode_count = "ok", None
            return self.nreq, mode, self.delay

    # --- observations ---------------------------------------------------------------------------------------------

    def events_for(self, bucket, key=None):
        with self.lock:
            return [e for e in self.events if e["bucket"] == bucket and (key is None or e["key"] == key)]

    def acked_seqs(self):
        with self.lock:
            return {e["seq"] for e in self.events if e["result"] in (APPLIED, SKIPPED)}

    def seen_seqs(self):
        with self.lock:
            return [e["seq"] for e in self.events]

    def snapshot(self):
        """{bucket: {key: (size, etag)}} of what it applied, empty buckets left out."""
        with self.lock:
            out = {}
            for (b, k), o in self.objects.items():
                out.setdefault(b, {})[k] = (o["size"], o["etag"])
            return out

    def request_log(self):
        with self.lock:
            return list(self.requests)

    # --- the protocol ---------------------------------------------------------------------------------------------

    def _reply(self, h, status, body, ctype="application/json", close=False):
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        if close:
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()
        h.wfile.write(body)

    def _log_request(self, n, mode, nev, status):
        with self.lock:
            self.requests.append((n, mode, nev, status))

    def _list(self, h):
        """GET /admin/replication/list (docs/protocol.md): the listing of a replica that holds nothing, whatever
        it applied, so that a full sync ships it everything; other paths are 404."""
        if not h.path.startswith("/admin/replication/list"):
            self._reply(h, 404, b'{"error":"not found","code":"NotFound"}')
            return
        auth = h.headers.get("Authorization") or ""
        if self.token is not None and auth != "Bearer " + self.token:
            self._reply(h, 401, b'{"error":"missing or wrong replication token","code":"Unauthorized"}')
            return
        kind = "keys" if "bucket=" in h.path else "buckets"
        body = msgpack.packb({"v": 1, "site": "fake-replica", "store": "f" * 32, "more": False, kind: []},
                             use_bin_type=True)
        self._reply(h, 200, body, ctype="application/msgpack")

    def _handle(self, h):
        n, mode, delay = self._take_mode()
        if h.path != "/admin/replication/batch":
            self._reply(h, 404, b'{"error":"no such endpoint","code":"NotFound"}')
            return
        length = int(h.headers.get("Content-Length") or 0)
        if length > BODY_MAX:
            self._reply(h, 413, b'{"error":"too large","code":"EntityTooLarge"}', close=True)
            return
        if mode == "drop":
            h.rfile.read(length // 2)
            self._log_request(n, mode, None, "dropped")
            h.close_connection = True
            try:
                h.connection.shutdown(2)
            except OSError:
                pass
            return
        body = h.rfile.read(length)
        auth = h.headers.get("Authorization") or ""
        if mode == "unauthorized" or (self.token is not None and auth != "Bearer " + self.token):
            self._log_request(n, mode, None, 401)
            self._reply(h, 401, b'{"error":"missing or wrong replication token","code":"Unauthorized"}')
            return
        enc = h.headers.get("Content-Encoding") or ""
        with self.lock:
            self.encodings.append(enc)
        refuse = self.refuse_encoding
        if enc and (refuse is not None or enc != "zstd"):
            self._log_request(n, mode, None, refuse or 415)
            self._reply(h, refuse or 415, json.dumps({"error": "unsupported Content-Encoding %s" % enc,
                                                      "code": "UnsupportedContentEncoding"}).encode())
            return
        if enc:  # zstd, taken (refuse_encoding None): decoded by the zstd CLI, as an independent decoder
            p = subprocess.run(["zstd", "-q", "-d", "-c"], input=body, capture_output=True, timeout=60)
            if p.returncode != 0:
                with self.lock:
                    self.errors.append("request %d: undecodable zstd body: %s" % (n, p.stderr[:200]))
                self._log_request(n, mode, None, 400)
                self._reply(h, 400, b'{"error":"corrupt zstd frame","code":"MalformedCompressedBatch"}')
                return
            body = p.stdout
        if mode == "http500":
            self._log_request(n, mode, None, 500)
            self._reply(h, 500, b'{"error":"internal error (scripted)","code":"InternalError"}')
            return
        if mode == "slow":
            self._log_request(n, mode, None, "slow")
            time.sleep(delay)
        try:
            batch = msgpack.unpackb(body, raw=True, strict_map_key=False)
            batch = {_s(k): v for k, v in batch.items()}
            evs = batch.get("ev")
            if batch.get("v") != 1 or not isinstance(evs, list):
                raise ValueError("bad envelope %r" % {k: batch[k] for k in batch if k != "ev"})
            src = _s(batch.get("src"))
            parsed = []
            for ev in evs:
                ev = {_s(k): v for k, v in ev.items()}
                rec = decode_logrec(ev["r"])
                rec["src"] = src
                rec["inline"] = "d" in ev
                rec["data"] = ev.get("d")
                rec["url"] = _s(ev.get("u"))
                parsed.append(rec)
        except Exception as e:  # a batch repld should never send
            with self.lock:
                self.errors.append("request %d: undecodable batch: %r" % (n, e))
            self._log_request(n, mode, None, 400)
            self._reply(h, 400, json.dumps({"error": "malformed batch: %s" % e, "code": "MalformedBatch"}).encode())
            return
        results = [self._apply(n, rec) for rec in parsed]
        self._log_request(n, mode, len(parsed), 200)
        if mode == "partial":
            results = results[:-1]
        elif mode == "wrongseq":
            results = [dict(r, seq=r["seq"] + 1000000) for r in results]
        if mode == "malformed":
            out = b"\xc1 this is not msgpack \xc1"
        else:
            out = msgpack.packb({"v": 1, "res": results}, use_bin_type=True)
        self._reply(h, 200, out, ctype="application/msgpack")

    def _apply(self, n, rec):
        """Applies one event last-writer-wins; returns its result map (and records the event)."""
        seq, bk = rec["seq"], (rec["bucket"], rec["key"])
        res = {"seq": seq, "r": APPLIED, "st": 200, "e": ""}
        problem = None
        if rec["op"] == OP_PUT:
            if rec["inline"]:
                data = rec["data"] or b""
                if len(data) != rec["size"] or hashlib.md5(data).hexdigest() != rec["etag"]:
                    problem = "inline data does not match the record's size/etag"
        elif rec["inline"] or rec["url"]:
            problem = "%s event carries data" % OP_NAMES.get(rec["op"])
        with self.lock:
            if problem:
                self.errors.append("seq %s: %s" % (seq, problem))
                res.update(r=PERMANENT, st=400, e=problem)
            elif rec["op"] in (OP_PUT, OP_DELETE) and bk in self.retry_keys:
                res.update(r=RETRY, st=507, e="out of space (scripted)")
        if res["r"] == APPLIED and rec["op"] == OP_PUT and not rec["inline"] and self.fetch_large:
            ok, why = self._fetch(rec)
            if not ok:
                res.update(r=RETRY, st=502, e="fetch failed: " + why)
        with self.lock:
            if res["r"] == APPLIED:
                if rec["op"] == OP_PURGE:
                    if seq <= self.purges.get(rec["bucket"], 0):
                        res["r"] = SKIPPED
                    else:
                        self.purges[rec["bucket"]] = seq
                        for k in [k for k, o in self.objects.items() if k[0] == rec["bucket"] and o["seq"] < seq]:
                            del self.objects[k]
                else:
                    known = max(self.objects.get(bk, {}).get("seq", 0), self.tombstones.get(bk, 0),
                                self.purges.get(rec["bucket"], 0))
                    if seq <= known:
                        res["r"] = SKIPPED
                    elif rec["op"] == OP_PUT:
                        self.objects[bk] = {"seq": seq, "size": rec["size"], "etag": rec["etag"]}
                    else:
                        self.objects.pop(bk, None)
                        self.tombstones[bk] = seq
            ev = {k: v for k, v in rec.items() if k != "data"}
            ev.update(request=n, result=res["r"], status=res["st"])
            self.events.append(ev)
        return res

    def _fetch(self, rec):
        try:
            with urllib.request.urlopen(rec["url"], timeout=30) as r:
                data = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            with self.lock:
                self.fetch_results.append((rec["url"], e.code, False))
            return False, "HTTP %d" % e.code
        except OSError as e:
            with self.lock:
                self.fetch_results.append((rec["url"], None, False))
            return False, repr(e)
        ok = status == 200 and len(data) == rec["size"] and hashlib.md5(data).hexdigest() == rec["etag"]
        with self.lock:
            self.fetch_results.append((rec["url"], status, ok))
        return ok, "" if ok else "got %d bytes md5 %s" % (len(data), hashlib.md5(data).hexdigest())
