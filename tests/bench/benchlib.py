"""benchlib.py - shared pieces of the benchmark helpers (stdlib only).

Conn is a minimal keep-alive HTTP/1.1 client on asyncio streams: one request
at a time per connection, Content-Length bodies only (storaged and nginx send
one on every reply), reconnect after `Connection: close`. It is small on
purpose: the load generators and the lag probes spend their time in the
servers, not in a client library. Every wait here is bounded.
"""

import asyncio
import json
import math
import os
import urllib.parse

IO_TIMEOUT = 120.0


class HTTPError(Exception):
    pass


def split_url(url):
    """'http://127.0.0.1:8080' -> ('127.0.0.1', 8080)."""
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http" or not u.hostname:
        raise ValueError("only http://host:port URLs are supported, got %r" % url)
    return u.hostname, u.port or 80


class Conn:
    def __init__(self, url, timeout=IO_TIMEOUT):
        self.host, self.port = split_url(url)
        self.timeout = timeout
        self.reader = None
        self.writer = None

    async def _open(self):
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, limit=1 << 20), self.timeout)

    def close(self):
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception:
                pass
        self.reader = self.writer = None

    async def request(self, method, path, body=b"", headers=None):
        """Sends one request; returns (status, {lower-case header: value}, body)."""
        return await asyncio.wait_for(self._request(method, path, body, headers), self.timeout)

    async def _request(self, method, path, body, headers):
        if self.writer is None:
            await self._open()
        head = ["%s %s HTTP/1.1" % (method, path), "Host: %s:%d" % (self.host, self.port)]
        if body or method in ("PUT", "POST"):
            head.append("Content-Length: %d" % len(body))
        for k, v in (headers or {}).items():
            head.append("%s: %s" % (k, v))
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        try:
            if len(body) <= 65536:
                self.writer.write(data + body)
            else:
                self.writer.write(data)
                self.writer.write(body)
            await self.writer.drain()
            raw = await self.reader.readuntil(b"\r\n\r\n")
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
            self.close()
            raise HTTPError("%s %s: connection failed: %s" % (method, path, e)) from None
        lines = raw.decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            self.close()
            raise HTTPError("%s %s: bad status line %r" % (method, path, lines[0])) from None
        hdrs = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0") or 0)
        if method == "HEAD" or status in (204, 304):
            n = 0
        try:
            resp = await self.reader.readexactly(n) if n else b""
        except (OSError, asyncio.IncompleteReadError) as e:
            self.close()
            raise HTTPError("%s %s: body cut short: %s" % (method, path, e)) from None
        if hdrs.get("connection", "").lower() == "close":
            self.close()
        return status, hdrs, resp


class Pool:
    """Keep-alive connections to one server, taken and given back."""

    def __init__(self, url):
        self.url = url
        self.free = []

    def take(self):
        return self.free.pop() if self.free else Conn(self.url)

    def give(self, c):
        if c.writer is not None:
            self.free.append(c)

    def close(self):
        for c in self.free:
            c.close()
        self.free = []


def etag_of(hdrs):
    return hdrs.get("etag", "").strip('"')


def pct(values, p):
    """The p-th percentile (0..100) by nearest rank; None for no values."""
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v), max(1, math.ceil(p / 100.0 * len(v)))) - 1]


def write_json(path, obj):
    tmp = "%s.tmp" % path
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
