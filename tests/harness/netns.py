"""netns.py - a WAN link for tests: two network namespaces joined by a veth pair.

    namespace A (storaged A, repld A)               namespace B (storaged B)
    veth "cw<pid>a<n>"  10.213.x.y+1/30  <======>  10.213.x.y+2/30  veth "cw<pid>b<n>"

WanLink creates the namespaces, the veth pair and the addresses, and changes
the link: netem() (tc netem delay and loss on both ends), set_up(side, False)
(`ip link set dev ... down`). WanSite is a replication.Site whose daemons run
inside a namespace (`ip netns exec NS` before the command) and whose storaged
listens on the namespace's veth address only, so that batches A -> B and the
fetches of large objects B -> A cross the veth pair, where netem and a link
cut act on them.

How the test reaches the daemons. The test process stays in its own namespace,
where the veth addresses do not exist. Rather than a second link to the test's
namespace (addresses on the host) or an HTTP client subprocess per namespace,
every connection the test opens is made inside the site's namespace: the
calling thread enters it with setns(2) (through ctypes: Python 3.11 has no
os.setns), creates and connects its socket, and returns. A socket stays in the
namespace it was created in and can then be used from any thread. Inside a
namespace the site's own address is local, so the test's requests never cross
the WAN link: only replication does. The same holds for storaged's readiness
probe. repld's control socket is a file-system Unix socket, which does not
depend on the network namespace.

Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN), iproute2 (`ip`, `tc`) and a
kernel with network namespaces and veth; netem() also needs sch_netem.
unavailable() and Unavailable say why a test must skip. Names carry the pid of
the test process, so concurrent runs do not collide; destroy() deletes both
namespaces (which deletes the veth pair), and sweep_stale() removes those left
by a test process that no longer exists. Only addresses inside these
namespaces are used. Every command and wait here is bounded in time.
"""

import contextlib
import ctypes
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from . import comio, replication

CMD_TIMEOUT = 20.0
NS_PREFIX = "comio-wan-"
NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
# A /30 out of this /16 is used; one that overlaps an address or a route of the host is passed over.
SUBNET_POOL = ipaddress.ip_network("10.213.0.0/16")

_libc = ctypes.CDLL(None, use_errno=True)
_counter = 0


class Unavailable(Exception):
    """This machine cannot run the test (no root, no netns, no veth, no netem): skip, with this reason."""


def run(argv, check=True, timeout=CMD_TIMEOUT):
    """Runs a command to completion; returns CompletedProcess (text). With check, fails naming the command."""
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                       timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("%s exited %d: %s" % (" ".join(argv), r.returncode, (r.stderr or r.stdout).strip()))
    return r


def unavailable():
    """Why network namespaces cannot be made here (a sentence), or None when they may be."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux (this is %s)" % sys.platform
    if os.geteuid() != 0:
        return "needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to create network namespaces; running as uid %d" % (
            os.geteuid())
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return "iproute2's '%s' command is not installed (Debian: apt-get install iproute2)" % tool
    return None


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale():
    """Deletes the namespaces of this module whose test process no longer exists. Returns their names."""
    r = run(["ip", "netns", "list"], check=False)
    gone = []
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(re.escape(NS_PREFIX) + r"(\d+)-", name)
        if m and not _pid_alive(int(m.group(1))):
            run(["ip", "netns", "del", name], check=False)
            gone.append(name)
    return gone


def _host_networks():
    """Every IPv4 network of the host's addresses and routes (the default route left out)."""
    nets = []
    for argv in (["ip", "-j", "-4", "addr", "show"], ["ip", "-j", "-4", "route", "show", "table", "all"]):
        r = run(argv, check=False)
        try:
            items = json.loads(r.stdout or "[]")
        except ValueError:
            continue
        for item in items:
            for a in item.get("addr_info", []):
                nets.append(ipaddress.ip_network("%s/%s" % (a["local"], a["prefixlen"]), strict=False))
            dst = item.get("dst")
            if dst and dst != "default":
                try:
                    nets.append(ipaddress.ip_network(dst if "/" in dst else dst + "/32", strict=False))
                except ValueError:
                    pass
    return nets


def pick_subnet():
    """A /30 of SUBNET_POOL that overlaps no address or route of the host; the start depends on the pid."""
    taken = _host_networks()
    subnets = list(SUBNET_POOL.subnets(new_prefix=30))
    start = (os.getpid() * 7) % len(subnets)
    for i in range(256):
        net = subnets[(start + i) % len(subnets)]
        if not any(net.overlaps(t) for t in taken):
            return net
    raise AssertionError("no free /30 in %s: the host uses %s" % (SUBNET_POOL, taken))


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: %s" % os.strerror(e))


class Netns:
    """A named network namespace (`ip netns add NAME`)."""

    def __init__(self, name):
        self.name = name
        self.path = NETNS_DIR / name

    def prefix(self):
        """The argv prefix that runs a command inside this namespace."""
        return ["ip", "netns", "exec", self.name]

    def ip(self, *args, check=True):
        return run(["ip", "-n", self.name] + list(args), check=check)

    def tc(self, *args, check=True):
        return run(["tc", "-n", self.name] + list(args), check=check)

    @contextlib.contextmanager
    def entered(self):
        """The calling thread is inside this namespace until the block ends (sockets made there stay there)."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            fd = os.open(str(self.path), os.O_RDONLY)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            try:
                yield self
            finally:
                _setns(home)
        finally:
            os.close(home)

    def __repr__(self):
        return "Netns(%s)" % self.name


class WanLink:
    """Namespaces a and b joined by one veth pair: dev_a (addr_a) in a, dev_b (addr_b) in b, each a /30.

    Use WanLink.create(); destroy() always (it is safe to call twice)."""

    def __init__(self):
        global _counter
        _counter += 1
        pid, n = os.getpid(), _counter
        self.a = Netns("%s%d-%d-a" % (NS_PREFIX, pid, n))
        self.b = Netns("%s%d-%d-b" % (NS_PREFIX, pid, n))
        self.dev_a = "cw%da%d" % (pid, n)
        self.dev_b = "cw%db%d" % (pid, n)
        assert len(self.dev_a) <= 15 and len(self.dev_b) <= 15, (self.dev_a, self.dev_b)  # IFNAMSIZ - 1
        self.net = None
        self.addr_a = self.addr_b = None
        self.netem_spec = None
        self.created = []

    @classmethod
    def create(cls):
        """Both namespaces, the veth pair, addresses and loopback up. Raises Unavailable when this machine
        cannot make them (the reason says why); any other failure is an AssertionError."""
        reason = unavailable()
        if reason:
            raise Unavailable(reason)
        sweep_stale()
        link = cls()
        try:
            link._create()
        except BaseException:
            link.destroy()
            raise
        return link

    def _create(self):
        self.net = pick_subnet()
        hosts = list(self.net.hosts())
        self.addr_a, self.addr_b = str(hosts[0]), str(hosts[1])
        for ns in (self.a, self.b):
            r = run(["ip", "netns", "add", ns.name], check=False)
            if r.returncode != 0:
                raise Unavailable("cannot create a network namespace: 'ip netns add' said: %s" % r.stderr.strip())
            self.created.append(ns)
        r = run(["ip", "link", "add", self.dev_a, "netns", self.a.name, "type", "veth", "peer", "name", self.dev_b,
                 "netns", self.b.name], check=False)
        if r.returncode != 0:
            if re.search(r"unknown device type|not supported", r.stderr, re.I):
                raise Unavailable("the kernel has no veth devices: 'ip link add type veth' said: %s" %
                                  r.stderr.strip())
            raise AssertionError("ip link add %s type veth failed: %s" % (self.dev_a, r.stderr.strip()))
        for ns, dev, addr in ((self.a, self.dev_a, self.addr_a), (self.b, self.dev_b, self.addr_b)):
            ns.ip("addr", "add", "%s/%d" % (addr, self.net.prefixlen), "dev", dev)
            ns.ip("link", "set", "dev", dev, "up")
            ns.ip("link", "set", "dev", "lo", "up")

    def destroy(self):
        """Deletes both namespaces (and so the veth pair). Returns the problems met (a list of lines)."""
        problems = []
        while self.created:
            ns = self.created.pop()
            r = run(["ip", "netns", "del", ns.name], check=False)
            if r.returncode != 0:
                problems.append("ip netns del %s: %s" % (ns.name, r.stderr.strip()))
        return problems

    def side(self, which):
        """(namespace, device) of side "a" or "b"."""
        return (self.a, self.dev_a) if which == "a" else (self.b, self.dev_b)

    # --- impairments ---------------------------------------------------------------------------------------------

    def netem(self, *spec):
        """tc netem with `spec` (e.g. "delay", "50ms", "loss", "1%") as root qdisc on both ends of the link.
        Raises Unavailable when the kernel has no netem; any other tc failure is an AssertionError."""
        for ns, dev in (self.side("a"), self.side("b")):
            r = ns.tc("qdisc", "replace", "dev", dev, "root", "netem", *spec, check=False)
            if r.returncode != 0:
                err = r.stderr.strip()
                # "Specified qdisc kind is unknown." (kernels with extended acks) or, on older kernels,
                # "RTNETLINK answers: No such file or directory" when the sch_netem module is missing.
                if re.search(r"qdisc kind is unknown|No such file or directory", err):
                    raise Unavailable("the kernel has no netem qdisc (sch_netem): tc said: %s" % err)
                raise AssertionError("tc qdisc replace dev %s root netem %s failed: %s" % (dev, " ".join(spec), err))
            shown = ns.tc("qdisc", "show", "dev", dev).stdout
            assert "netem" in shown, "netem not in place on %s: %s" % (dev, shown)
        self.netem_spec = spec
        return self

    def qdiscs(self):
        return {dev: ns.tc("qdisc", "show", "dev", dev).stdout.strip() for ns, dev in (self.side("a"), self.side("b"))}

    def set_up(self, which, up):
        """`ip link set dev <side's veth> up|down` inside that side's namespace."""
        ns, dev = self.side(which)
        ns.ip("link", "set", "dev", dev, "up" if up else "down")

    def probe(self, timeout=1.0):
        """A TCP connect from namespace a to a listener on addr_b in namespace b.
        Returns (True, seconds the handshake took) or (False, the error)."""
        with self.b.entered():
            lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            lsock.bind((self.addr_b, 0))
            lsock.listen(4)
            port = lsock.getsockname()[1]
            with self.a.entered():
                c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                c.settimeout(timeout)
                t0 = time.monotonic()
                try:
                    c.connect((self.addr_b, port))
                except OSError as e:  # refused, unreachable, or TimeoutError
                    return False, e
                return True, time.monotonic() - t0
            finally:
                c.close()
        finally:
            lsock.close()

    def __repr__(self):
        return "WanLink(%s %s <-> %s %s, netem %s)" % (self.a.name, self.addr_a, self.b.name, self.addr_b,
                                                         " ".join(self.netem_spec) if self.netem_spec else "none")


# --- sites inside namespaces ----------------------------------------------------------------------------------------


class _NsConnection(comio._CountingConnection):
    """comio's counting HTTP connection whose socket is created and connected inside a namespace."""

    def __init__(self, *args, netns, **kwargs):
        super().__init__(*args, **kwargs)
        self.netns = netns

    def connect(self):
        with self.netns.entered():
            super().connect()


class NsClient(comio.Client):
    """comio.Client that connects from inside namespace `netns`."""

    def __init__(self, host, port, netns, token=None, timeout=comio.IO_TIMEOUT):
        super().__init__(host, port, token=token, timeout=timeout)
        self.netns = netns
        self.conn = _NsConnection(host, port, timeout=timeout, netns=netns)


class NsStoraged(replication._Storaged):
    """storaged started with `ip netns exec NS`; its readiness probe and clients connect inside NS."""

    def __init__(self, netns, host, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.netns = netns
        self.host = host

    def argv(self):
        return self.netns.prefix() + super().argv()

    def _wait_ready(self):
        with self.netns.entered():
            return super()._wait_ready()

    def client(self, token=None, timeout=comio.IO_TIMEOUT):
        c = NsClient(self.host, self.port, self.netns, token=token if token is not None else self.token,
                     timeout=timeout)
        self.clients.append(c)
        return c


class NsRepld(replication.Repld):
    """repld started with `ip netns exec NS` (its control socket is a file, reachable from anywhere)."""

    def argv(self):
        return self.site.netns.prefix() + super().argv()


class WanSite(replication.Site):
    """replication.Site whose daemons run in `netns` and whose storaged listens on `host` (an address of netns).
    public_url is derived from it, so a replica fetches large objects from this address. No TLS."""

    def __init__(self, workdir, site_id, netns, host, **kwargs):
        assert kwargs.get("tls") is None, "WanSite does not do TLS"
        super().__init__(workdir, site_id, **kwargs)
        self.netns = netns
        self.host = host
        self.write_config()
        self.storaged = NsStoraged(netns, host, self.workdir, config=None, flags=False, port=self.port,
                                   extra_args=["--config", str(self.config_path)])
        self.repld = NsRepld(self)

    def client(self, token=None, timeout=comio.IO_TIMEOUT, register=True):
        c = NsClient(self.host, self.port, self.netns, token=token if token is not None else self.access_token,
                     timeout=timeout)
        if register:
            self.storaged.clients.append(c)
        return c

    def cli_prefix(self):
        return ["ip", "netns", "exec", self.netns.name]

    def describe(self):
        return "namespace %s, %s:%d\n%s" % (self.netns.name, self.host, self.port, super().describe())


def make_wan_pair(link, workdir, a_repl=None, a_kw=None, b_kw=None):
    """A primary A in link.a shipping to a replica B in link.b across the veth pair (not started).

    Both sites have their own server.access_token (so listening on a non-loopback address is not open),
    the replication token is shared. a_repl: replication keys over replication.REPL_DEFAULTS."""
    workdir = Path(workdir)
    token = replication.new_token()
    b = WanSite(workdir / "b", "site-b", link.b, link.addr_b, accept_token=token,
                access_token=replication.new_token(), **(b_kw or {}))
    repl = {"remote_url": b.url(), "remote_token": token}
    repl.update(a_repl or {})
    a = WanSite(workdir / "a", "site-a", link.a, link.addr_a, repl=repl, access_token=replication.new_token(),
                **(a_kw or {}))
    return a, b
