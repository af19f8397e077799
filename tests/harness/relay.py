"""relay.py - a WAN in a loopback TCP relay: one-way delay, a bandwidth cap, and dropped connections.

Every byte from a client to 127.0.0.1:target_port (and back) goes through the
relay, which models one bottleneck link per direction:

  delay      each byte arrives `one_way` seconds after it left the bottleneck
             (a one-way propagation delay; a round trip is twice it);
  rate       the bottleneck sends at most `rate` bytes/s in each direction,
             shared by every connection through the relay (a token bucket
             whose burst is one read, at most CHUNK bytes); 0 is no cap;
  drops      with `drop_every` set, each connection is reset (RST both ways)
             after a random number of bytes drawn uniformly from
             [drop_every / 2, drop_every * 3 / 2] with a seeded generator, so a
             run is repeatable.

The bottleneck holds at most `queue_s` seconds of bytes before the relay stops
reading (the sender then feels TCP back-pressure, as behind a real router);
bytes past the bottleneck are "on the wire" and unbounded, so a whole
bandwidth-delay product can be in flight.

bytes_to_target / bytes_from_target count what was delivered each way (TCP
payload), first_byte_at / last_byte_at when the first and last of it was
delivered (time.monotonic): a rate measured by the link itself, owing nothing
to the daemons' counters.

A second relay on the same link the other way round (Relay.reverse,
--reverse-target) models one WAN between two sites: A's batches to B and the
large objects B fetches from A then share one A -> B bottleneck.

As a program (for benchmarks):
  python3 relay.py --target PORT [--delay-ms 25] [--rate 200Mbit] [--drop-every BYTES] [--seed N]
                   [--reverse-target PORT2]
prints "PORT\n" (and "PORT2\n") once it listens, and on SIGTERM/SIGINT one
JSON line of its counters, then exits. Standard library only.
"""

import argparse
import heapq
import json
import random
import re
import select
import signal
import socket
import struct
import sys
import threading
import time

CHUNK = 256 * 1024
SOCKBUF = 4 * 1024 * 1024
QUEUE_S = 0.05

_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "ki": 1024, "mi": 1024 ** 2, "gi": 1024 ** 3}


def parse_rate(text):
    """'200Mbit', '100mbit/s', '20MB/s', '1.5MiB/s', '12345' (bytes/s) -> bytes per second; '0' or '' -> 0."""
    if text in (None, "", "0"):
        return 0.0
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kKmMgG]i?)?(bit|b|B)?(/s|ps)?\s*", str(text))
    if not m:
        raise ValueError("not a rate: %r" % text)
    n = float(m.group(1)) * _UNITS[(m.group(2) or "").lower()]
    return n / 8 if m.group(3) in ("bit", "b") else n


class _Direction:
    """One way of the link: a bottleneck shared by every connection, then the delay."""

    def __init__(self, rate, queue_s):
        self.rate = rate
        self.queue_s = queue_s
        self.lock = threading.Lock()
        self.free_at = 0.0  # when the bottleneck has sent all it was given

    def admit(self, n, closed):
        """Waits while the bottleneck holds more than queue_s of bytes, then takes n bytes:
        returns when the last of them leaves the bottleneck."""
        if self.rate <= 0:
            return time.monotonic()
        while not closed.is_set():
            with self.lock:
                now = time.monotonic()
                ahead = self.free_at - now
                if ahead <= self.queue_s:
                    self.free_at = max(self.free_at, now) + n / self.rate
                    return self.free_at
            time.sleep(min(ahead - self.queue_s, 0.05))
        return time.monotonic()


class Relay:
    """A loopback TCP relay to 127.0.0.1:target_port; see the module's docstring."""

    def __init__(self, target_port, one_way=0.0, rate=0, drop_every=0, seed=0, queue_s=QUEUE_S, port=0, reverse_of=None):
        self.target_port = target_port
        self.one_way = float(one_way)
        self.rate = parse_rate(rate) if isinstance(rate, str) else float(rate or 0)
        self.drop_every = int(drop_every or 0)
        self.rng = random.Random(seed)
        if reverse_of is not None:
            # the same link, the other way round: what this relay's clients send shares the bottleneck of what
            # reverse_of's targets send back (a site's batches out and the fetches it serves share one uplink)
            self.up, self.down = reverse_of.down, reverse_of.up
        else:
            self.up = _Direction(self.rate, queue_s)    # client -> target
            self.down = _Direction(self.rate, queue_s)  # target -> client
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self.conns = []
        self.connections = 0
        self.drops = 0
        self.bytes_to_target = 0
        self.bytes_from_target = 0
        self.first_byte_at = None
        self.last_byte_at = None
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port))
        self.lsock.listen(128)
        self.lsock.settimeout(0.1)
        self.port = self.lsock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def set_rate(self, rate):
        r = parse_rate(rate) if isinstance(rate, str) else float(rate or 0)
        with self.up.lock, self.down.lock:
            self.rate = self.up.rate = self.down.rate = r

    def reverse(self, target_port):
        """A second relay, to target_port, on the same link the other way round: bytes its targets send
        share this relay's client -> target bottleneck, and the other way."""
        return Relay(target_port, self.one_way, self.rate, self.drop_every, self.rng.randrange(1 << 30),
                     queue_s=self.up.queue_s, reverse_of=self)

    def reset_counters(self):
        with self.lock:
            self.bytes_to_target = self.bytes_from_target = 0
            self.first_byte_at = self.last_byte_at = None

    def stats(self):
        with self.lock:
            span = (self.last_byte_at - self.first_byte_at) if self.first_byte_at is not None else 0.0
            return {"port": self.port, "connections": self.connections, "drops": self.drops,
                    "bytes_to_target": self.bytes_to_target, "bytes_from_target": self.bytes_from_target,
                    "seconds": round(span, 4), "first_byte_at": self.first_byte_at, "last_byte_at": self.last_byte_at}

    @staticmethod
    def _tune(s):
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            try:
                s.setsockopt(socket.SOL_SOCKET, opt, SOCKBUF)
            except OSError:
                pass
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

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
                t.settimeout(None)
            except OSError:
                c.close()
                continue
            self._tune(c)
            self._tune(t)
            conn = {"socks": (c, t), "bytes": 0, "limit": 0, "dead": threading.Event()}
            with self.lock:
                if self.drop_every:
                    conn["limit"] = self.rng.randint(max(1, self.drop_every // 2), self.drop_every * 3 // 2)
                self.conns.append(conn)
                self.connections += 1
            threading.Thread(target=self._pipe, args=(conn, c, t, self.up), daemon=True).start()
            threading.Thread(target=self._pipe, args=(conn, t, c, self.down), daemon=True).start()

    def _kill(self, conn, reset):
        if conn["dead"].is_set():
            return
        conn["dead"].set()
        for s in conn["socks"]:
            try:
                if reset:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        with self.lock:
            if conn in self.conns:
                self.conns.remove(conn)

    def _pipe(self, conn, src, dst, way):
        """Reads src, passes each chunk through the bottleneck, and a writer delivers it to dst
        when it is due. EOF is passed on (half close) after what is in flight."""
        held = []  # heap of (due, n, data)
        cv = threading.Condition()
        state = {"eof": False}

        def deliver():
            while True:
                with cv:
                    while not held and not state["eof"]:
                        cv.wait(0.1)
                    if not held:
                        break
                    due, _, data = held[0]
                    wait = due - time.monotonic()
                    if wait > 0:
                        cv.wait(wait)
                        continue
                    heapq.heappop(held)
                try:
                    dst.sendall(data)
                except OSError:
                    return self._kill(conn, reset=True)
                self._count(conn, way, len(data))
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        writer = threading.Thread(target=deliver, daemon=True)
        writer.start()
        seq = 0
        try:
            while not self.closed.is_set() and not conn["dead"].is_set():
                r, _, _ = select.select([src], [], [], 0.1)
                if not r:
                    continue
                want = CHUNK
                if way.rate > 0:  # a read is the bucket's burst: at most ~5 ms of the link
                    want = max(1460, min(CHUNK, int(way.rate * 0.005)))
                data = src.recv(want)
                if not data:
                    break
                left = way.admit(len(data), self.closed)
                seq += 1
                with cv:
                    heapq.heappush(held, (left + self.one_way, seq, data))
                    cv.notify()
        except (OSError, ValueError):
            pass
        finally:
            with cv:
                state["eof"] = True
                cv.notify()
            writer.join(timeout=30)
            if self.closed.is_set():
                self._kill(conn, reset=False)

    def _count(self, conn, way, n):
        drop = False
        with self.lock:
            now = time.monotonic()
            if way is self.up:
                self.bytes_to_target += n
            else:
                self.bytes_from_target += n
            if self.first_byte_at is None:
                self.first_byte_at = now
            self.last_byte_at = now
            conn["bytes"] += n
            if conn["limit"] and conn["bytes"] >= conn["limit"]:
                drop = True
                self.drops += 1
        if drop:
            self._kill(conn, reset=True)

    def close(self):
        self.closed.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
        for conn in conns:
            self._kill(conn, reset=False)
        self.thread.join(timeout=5)


def main(argv=None):
    ap = argparse.ArgumentParser(description="A loopback WAN: delay, bandwidth cap, dropped connections.")
    ap.add_argument("--target", type=int, required=True, help="port on 127.0.0.1 to relay to")
    ap.add_argument("--port", type=int, default=0, help="port to listen on (0: any free one)")
    ap.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay")
    ap.add_argument("--rate", default="0", help="cap per direction, e.g. 200Mbit or 20MB/s (0: none)")
    ap.add_argument("--drop-every", type=int, default=0, help="reset a connection after about this many bytes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reverse-target", type=int, default=0,
                    help="also relay to this port over the same link the other way round (its port is printed second)")
    a = ap.parse_args(argv)
    relay = Relay(a.target, a.delay_ms / 1e3, parse_rate(a.rate), a.drop_every, a.seed, port=a.port)
    back = relay.reverse(a.reverse_target) if a.reverse_target else None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(relay.port, flush=True)
    if back is not None:
        print(back.port, flush=True)
    while not stop.wait(0.2):
        pass
    st = relay.stats()
    if back is not None:
        st = {"relay": st, "reverse": back.stats()}
        back.close()
    relay.close()
    print(json.dumps(st), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
