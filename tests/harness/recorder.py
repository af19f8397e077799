"""recorder.py - the recording workload of the fault tests and the checker that judges a site by it.

MixedOps drives a bounded mix of operations through replication.Workload,
which records what the client was told: small PUTs (inline in a batch) and
large ones (above inline_threshold, fetched by the replica), overwrites of a
few hot keys shared by every writer, DELETEs and bucket PURGEs. An operation
whose connection broke is recorded as of unknown outcome.

check_site() compares a site to that record, key by key. From the client's
timings (a linearizable store orders an operation after every operation that
ended before it started) and the versions of acknowledged PUTs, it derives
the states each key may be in:
  - an operation can be the last to take effect unless an acknowledged
    operation started after it ended, or (an acknowledged PUT) another
    acknowledged PUT got a higher version;
  - the key may be absent because nothing took effect only when none of its
    operations was acknowledged.
Every object the site holds is read whole. A key is
  - torn when its bytes are not those of any PUT sent for it (acknowledged or
    unknown), or do not match the listed size and ETag;
  - resurrected when it is present but may only be absent;
  - lost when it is absent but must be present, or holds an older write than
    the acknowledged ones allow.

figures is a fixture that prints a test's figures and repeats them in a
"fault-test figures" section at the end of the run, so that they show with -q.
"""

import os
import random
import secrets
import time

import pytest

from .comio import md5
from .replication import REPL_DEFAULTS, payload, snapshot, wait_converged

ABSENT = None
GET_ALL_MAX = 5000  # read at most this many objects of a site whole (the workloads here stay far below)


def fault_seed():
    """The seed of a fault test: COMIO_FAULT_SEED when set (to replay a run), else a fresh one."""
    env = os.environ.get("COMIO_FAULT_SEED")
    return int(env) if env else secrets.randbelow(1 << 31)


def inline_threshold(repl=None):
    """replication.inline_threshold of a replication block, in bytes (the test configs use KB or MB)."""
    v = str(dict(REPL_DEFAULTS, **(repl or {}))["inline_threshold"])
    for unit, mult in (("KB", 1000), ("MB", 1000 * 1000), ("B", 1)):
        if v.endswith(unit):
            return int(v[: -len(unit)]) * mult
    return int(v)


# --- the workload ------------------------------------------------------------------------------------------------


class MixedOps:
    """The operations of one fault test, for replication.Writer threads.

    Three buckets: <prefix>-hot (a few keys every writer overwrites),
    <prefix>-wide (more keys, shared too) and <prefix>-purge (keys and, now
    and then, a PURGE of the whole bucket). A PUT is large (above the
    inline threshold) with probability p_large. fn(tid) gives writer tid's
    function; each writer has its own RNG, derived from seed."""

    def __init__(self, w, prefix, seed, threshold, hot_keys=4, wide_keys=40, purge_keys=16, p_delete=0.2, p_purge=0.01,
                 p_large=0.12, small_max=12_000, large_max=160_000, pause=0.0):
        self.w = w
        self.prefix = prefix
        self.seed = seed
        self.threshold = threshold
        self.hot_keys, self.wide_keys, self.purge_keys = hot_keys, wide_keys, purge_keys
        self.p_delete, self.p_purge, self.p_large = p_delete, p_purge, p_large
        self.small_max = min(small_max, threshold - 1)
        self.large_max = max(large_max, threshold + 1)
        self.pause = pause

    @property
    def buckets(self):
        return [self.prefix + s for s in ("-hot", "-wide", "-purge")]

    def pick_key(self, rng):
        r = rng.random()
        if r < 0.4:
            return self.prefix + "-hot", "hot/%d" % rng.randrange(self.hot_keys)
        if r < 0.85:
            return self.prefix + "-wide", "wide/k%03d" % rng.randrange(self.wide_keys)
        return self.prefix + "-purge", "p/k%02d" % rng.randrange(self.purge_keys)

    def one(self, c, rng, tag):
        """Sends one operation, recorded by the Workload; returns its reply (None when the site is unreachable)."""
        r = rng.random()
        if r < self.p_purge:
            return self.w.purge(c, self.prefix + "-purge")
        bucket, key = self.pick_key(rng)
        if r < self.p_purge + self.p_delete:
            return self.w.delete(c, bucket, key)
        if rng.random() < self.p_large:
            size = rng.randrange(self.threshold + 1, self.large_max + 1)
        else:
            size = rng.randrange(0, self.small_max + 1)
        return self.w.put(c, bucket, key, payload(tag, size, rng))

    def fn(self, tid):
        rng = random.Random(self.seed * 1000 + tid)

        def run(c, i):
            r = self.one(c, rng, "%s-%d-%d" % (self.prefix, tid, i))
            if r is None:
                time.sleep(0.02)  # the site is down: do not spin
            elif self.pause:
                time.sleep(self.pause)

        return run


# --- the checker -------------------------------------------------------------------------------------------------


class Verdict:
    """What check_site found: counts by class and readable lines (at most `limit` kept)."""

    CLASSES = ("lost", "resurrected", "torn")

    def __init__(self, what, limit=40):
        self.what = what
        self.limit = limit
        self.counts = {c: 0 for c in self.CLASSES}
        self.keys = 0
        self.present = 0
        self.ambiguous = 0  # keys with more than one allowed state (unknown outcomes, concurrent writes)
        self.lines = []

    def add(self, cls, line):
        self.counts[cls] += 1
        if len(self.lines) < self.limit:
            self.lines.append("%s: %s" % (cls, line))

    @property
    def ok(self):
        return not any(self.counts.values())

    def summary(self):
        return "%s: %d keys (%d present, %d with several allowed states): lost=%d resurrected=%d torn=%d" % (
            self.what, self.keys, self.present, self.ambiguous, self.counts["lost"], self.counts["resurrected"],
            self.counts["torn"])

    def report(self):
        extra = sum(self.counts.values()) - len(self.lines)
        return "\n".join([self.summary()] + self.lines + (["... and %d more" % extra] if extra > 0 else []))


def _state(op):
    return ABSENT if op.kind != "put" else (op.size, op.md5)


def allowed_states(ops):
    """The states a key may be in after `ops` (its PUTs and DELETEs and its bucket's PURGEs):
    a set of ABSENT and (size, md5)."""
    acked = [o for o in ops if o.acked]
    last_acked_start = max((o.t0 for o in acked), default=float("-inf"))
    top_version = max((o.version for o in acked if o.kind == "put"), default=None)
    states = set()
    for o in ops:
        if o.t1 < last_acked_start:
            continue  # an acknowledged operation started after this one ended: it came later
        if o.acked and o.kind == "put" and o.version < top_version:
            continue  # an acknowledged PUT with a higher version came later
        states.add(_state(o))
    if not acked:
        states.add(ABSENT)  # perhaps nothing took effect
    return states


def _describe_states(states):
    return ", ".join(sorted("absent" if s is ABSENT else "%d bytes %s" % s for s in states))


def check_site(w, x, what, snap=None):
    """Judges site x (a Site or Client) against Workload w; returns a Verdict. Every object of the
    recorded buckets is read whole. snap: a snapshot of x already taken."""
    with w.lock:
        ops = list(w.ops)
    per_key, purges, sent = {}, {}, {}
    for op in ops:
        if op.kind == "purge":
            purges.setdefault(op.bucket, []).append(op)
            continue
        per_key.setdefault((op.bucket, op.key), []).append(op)
        if op.kind == "put":
            sent.setdefault((op.bucket, op.key), set()).add((op.size, op.md5))
    buckets = {b for b, _ in per_key} | set(purges)
    snap = snapshot(x) if snap is None else snap
    held = {(b, k): v for b, objs in snap.items() if b in buckets for k, v in objs.items()}
    v = Verdict(what)
    if len(held) > GET_ALL_MAX:
        raise AssertionError("%s holds %d objects of the recorded buckets: more than the checker reads (%d)" %
                             (what, len(held), GET_ALL_MAX))
    c = x if hasattr(x, "raw") else x.client(register=False)
    try:
        for bk in sorted(set(per_key) | set(held)):
            v.keys += 1
            states = allowed_states(per_key.get(bk, []) + purges.get(bk[0], []))
            if len(states) > 1:
                v.ambiguous += 1
            got = held.get(bk)
            name = "%s/%s" % bk
            if got is None:
                if ABSENT not in states:
                    v.add("lost", "%s absent on %s; allowed: %s" % (name, what, _describe_states(states)))
                continue
            v.present += 1
            r = c.get(*bk)
            if r.status != 200:
                v.add("lost", "%s listed on %s but GET answers %d" % (name, what, r.status))
                continue
            body = (len(r.body), md5(r.body))
            if body != got:
                v.add("torn", "%s on %s: bytes (%d, %s) do not match the listing %r" % (name, what, *body, got))
            elif body not in sent.get(bk, ()):
                v.add("torn", "%s on %s holds %d bytes (%s) that no PUT of this key sent" % (name, what, *body))
            elif states == {ABSENT}:
                v.add("resurrected", "%s on %s is back (%d bytes %s) after an acknowledged DELETE or PURGE" %
                      (name, what, body[0], body[1]))
            elif body not in states:
                v.add("lost", "%s on %s holds an older write (%d bytes %s); allowed: %s" %
                      (name, what, body[0], body[1], _describe_states(states)))
    finally:
        if c is not x:
            c.close()
    return v


def assert_site_matches(w, x, what, snap=None):
    """check_site, failing with its report. Returns the Verdict."""
    v = check_site(w, x, what, snap=snap)
    assert v.ok, "%s does not hold what the client was told (%s):\n%s" % (what, w.summary(), v.report())
    return v


def check_both_sites(w, a, b, seed, timeout=120.0):
    """A against the record, B converged on A (every object's bytes), B against the record.
    Returns (verdict of A, verdict of B, seconds B took to converge)."""
    verdict_a = assert_site_matches(w, a, "A")
    t0 = time.monotonic()
    d = wait_converged(a, b, timeout=timeout, sample=None)
    converge_s = time.monotonic() - t0
    assert not d, "B did not converge on A within %.0f s (seed %d):\n%s\n--- A:\n%s\n--- B:\n%s" % (
        timeout, seed, "\n".join(d[:30]), a.describe(), b.describe())
    return verdict_a, assert_site_matches(w, b, "B"), converge_s


def damage(*verdicts):
    """{"lost", "resurrected", "torn"} summed over Verdicts, for figures."""
    return {c: sum(v.counts[c] for v in verdicts) for c in Verdict.CLASSES}


def op_counts(w):
    """{"acked", "unknown", "refused", "puts", "deletes", "purges"} of a Workload."""
    with w.lock:
        c = dict(w.counts)
    return {"acked": c["put"] + c["delete"] + c["purge"], "unknown": c["unknown"], "refused": c["refused"],
            "puts": c["put"], "deletes": c["delete"], "purges": c["purge"]}


# --- figures -----------------------------------------------------------------------------------------------------


class _FigureBoard:
    """A pytest plugin registered on first use: repeats every figure line at the end of the run."""

    def __init__(self):
        self.lines = []

    def pytest_terminal_summary(self, terminalreporter):
        if self.lines:
            terminalreporter.section("fault-test figures")
            for line in self.lines:
                terminalreporter.write_line(line)


@pytest.fixture
def figures(request):
    """figures(**values): prints "<test id>: k=v ..." and repeats it in the end-of-run summary."""
    board = getattr(request.config, "_comio_fault_figures", None)
    if board is None:
        board = _FigureBoard()
        request.config._comio_fault_figures = board
        request.config.pluginmanager.register(board, "comio-fault-figures")

    def record(**values):
        parts = []
        for k, val in values.items():
            parts.append("%s=%s" % (k, ("%.2f" % val) if isinstance(val, float) else val))
        line = "%s: %s" % (request.node.nodeid, " ".join(parts))
        print(line)
        board.lines.append(line)

    return record
