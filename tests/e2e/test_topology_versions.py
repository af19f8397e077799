"""test_topology_versions.py - versions every site orders the same way, in every topology.

Three and two real sites on loopback, each with its own storaged and repld,
each shipping to one remote (replication.remote_url):
  - two-way A <-> B: writers on both sides hammer the same hot keys with PUT,
    DELETE and PURGE while A's repld and B's storaged are killed with SIGKILL
    and restarted;
  - a chain A -> B -> C: C's copy carries A's version, origin and ETag;
  - a ring A -> B -> C -> A with writes on all three: it converges and the
    logs drain, no event going round for ever.
After every run the sites hold the same objects at the same versions
(`comio diff`, and each key's version and origin), equal to an oracle computed
from the clients' own records: for each key, the acknowledged mutation with
the largest (X-Comio-Version, X-Comio-Origin) wins; a key it deleted or purged
is absent. Every loop and wait is bounded.
"""

import random
import threading

import pytest

from harness import comio
from harness.comio import md5
from harness.replication import Site, comio_diff, finish_sites, new_token, wait_until

BUCKET = "hot"
KEYS = ["h%02d" % i for i in range(6)]
PUT, DELETE, PURGE = "PUT", "DELETE", "PURGE"
# many attempts: a remote killed for a moment must not turn events into failed ones
REPL = {"retry_attempts": 100, "retry_delay": "100ms", "batch_size": 20}


def version_of(reply):
    return int(reply.header("X-Comio-Version")), reply.header("X-Comio-Origin")


def make_sites(tmp_path, names, ships_to):
    """Sites named `names`; ships_to maps a name to the name it ships to (absent: ships nowhere). Each site
    accepts the token its senders use."""
    ports = {n: comio.free_port() for n in names}
    tokens = {n: new_token() for n in names}
    sites = {}
    for n in names:
        repl = None
        if n in ships_to:
            to = ships_to[n]
            repl = dict(REPL, remote_url="http://127.0.0.1:%d" % ports[to], remote_token=tokens[to])
        sites[n] = Site(tmp_path / n, "site-" + n, port=ports[n], repl=repl, accept_token=tokens[n], size="64MB")
    return sites


@pytest.fixture
def topology(tmp_path):
    made = []

    def make(names, ships_to):
        sites = make_sites(tmp_path, names, ships_to)
        made.extend(sites.values())
        for s in sites.values():
            s.start()
        return sites

    yield make
    problems = finish_sites(made)
    if problems:
        pytest.fail("teardown:\n" + "\n".join(problems), pytrace=False)


class Writer(threading.Thread):
    """Writes `ops` random mutations of the hot keys to one site and records what was acknowledged, with the
    version the reply named, and what may or may not have happened (no reply: the site was being killed)."""

    def __init__(self, site, seed, ops, keys=KEYS, purge_every=40):
        super().__init__(daemon=True)
        self.site, self.rng, self.ops, self.keys, self.purge_every = site, random.Random(seed), ops, keys, purge_every
        self.acked = []    # (op, key or None, (version, origin), md5 of the body or None)
        self.unknown = []  # (op, key or None, md5 of the body or None)
        self.done_ops = 0
        self.error = None

    def one(self, c, i):
        key = self.rng.choice(self.keys)
        if i % self.purge_every == self.purge_every - 1:
            op, data = PURGE, None
        elif self.rng.random() < 0.7:
            # one in ten over inline_threshold (64 KB): shipped as a presigned URL, fetched from the sender
            repeat = self.rng.randint(3000, 4000) if self.rng.random() < 0.1 else self.rng.randint(1, 50)
            op, data = PUT, b"%s %d %d " % (self.site.site_id.encode(), i, self.rng.getrandbits(32)) * repeat
        else:
            op, data = DELETE, None
        try:
            if op == PUT:
                r = c.put(BUCKET, key, data)
                ok = r.status == 200
            elif op == DELETE:
                r = c.delete(BUCKET, key)
                ok = r.status == 204
                if ok and r.header("X-Comio-Version") is None:
                    return  # nothing to delete here: nothing changed, nothing logged
            else:
                r = c.purge(BUCKET)
                ok = r.status == 200
                key = None
        except Exception:  # the site is being killed: it may or may not have committed
            self.unknown.append((op, None if op == PURGE else key, data and md5(data)))
            threading.Event().wait(0.02)  # not a storm of refused connections while it restarts
            return
        if ok:
            self.acked.append((op, key, version_of(r), data and md5(data)))
        elif r.status >= 500:
            self.unknown.append((op, None if op == PURGE else key, data and md5(data)))
        else:
            raise AssertionError("%s %s on %s: %r" % (op, key, self.site.site_id, r))

    def run(self):
        c = self.site.client(register=False, timeout=10)
        try:
            for i in range(self.ops):
                self.one(c, i)
                self.done_ops = i + 1
        except BaseException as e:  # reported by the test
            self.error = e
        finally:
            c.close()


def oracle(writers, keys=KEYS):
    """{key: the winning acknowledged mutation (op, key, version, md5)}: the largest (version, origin) of the
    PUTs and DELETEs of the key and the PURGEs of its bucket. (version, origin) tuples compare as the sites
    compare them: the integer, then the site ids byte by byte (ASCII)."""
    best = {}
    for w in writers:
        for rec in w.acked:
            for k in (keys if rec[0] == PURGE else [rec[1]]):
                if k not in best or rec[2] > best[k][2]:
                    best[k] = rec
    return best


def state(site, keys=KEYS):
    """{key: ((version, origin), md5 of the body)} of the keys the site holds."""
    c = site.client()
    out = {}
    for k in keys:
        r = c.get(BUCKET, k)
        if r.status == 200:
            out[k] = (version_of(r), md5(r.body))
        else:
            assert r.status == 404, (site.site_id, k, r)
    return out


def check_oracle(got, writers, keys=KEYS):
    """Every key is what the acknowledged records say: the winner if it was a PUT (that version, those bytes),
    absent if it was a DELETE or a PURGE, unless a mutation whose reply never came (the site was killed) is
    newer, which may have happened: then only something such a mutation could have left is allowed."""
    want = oracle(writers, keys)
    unknown = [u for w in writers for u in w.unknown]
    bad = []
    for k in keys:
        win = want.get(k)
        have = got.get(k)
        if win is not None and win[0] == PUT and have == (win[2], win[3]):
            continue
        if (win is None or win[0] != PUT) and have is None:
            continue
        # explained only by a mutation without a reply, newer than the acknowledged winner
        if have is not None and (win is None or have[0] > win[2]) and \
                any(u[0] == PUT and u[1] == k and u[2] == have[1] for u in unknown):
            continue
        if have is None and any(u[0] == PURGE or (u[0] == DELETE and u[1] == k) for u in unknown):
            continue
        bad.append("%s: holds %r, the acknowledged writes say %r" % (k, have, win))
    assert not bad, "\n".join(bad)


def drained(sites):
    return all(s.status()["events_pending"] == 0 for s in sites if s.ships)


def converged(sites, keys=KEYS):
    """[the state of the keys] when the sites drained, are identical by `comio diff` (keys, sizes, ETags,
    versions), and hold every key at one version; else None."""
    if not drained(sites):
        return None
    first = sites[0]
    for other in sites[1:]:
        d, _ = comio_diff(first, other)
        if d:
            return None
    states = [state(s, keys) for s in sites]
    return [states[0]] if all(st == states[0] for st in states[1:]) else None  # a list: truthy even when no key is left


def describe(sites):
    return "\n\n".join(s.describe() for s in sites)


def create_bucket_everywhere(sites, bucket=BUCKET):
    for s in sites:
        assert s.client().create_bucket(bucket).status in (200, 201)


def test_two_way_hot_keys_with_kills_converge_to_the_last_writer(topology):
    s = topology(["a", "b"], {"a": "b", "b": "a"})
    a, b = s["a"], s["b"]
    create_bucket_everywhere([a, b])
    writers = [Writer(a, 1, 300), Writer(b, 2, 300), Writer(a, 3, 150), Writer(b, 4, 150)]
    for w in writers:
        w.start()
    # while they write: SIGKILL A's repld and B's storaged, and start them again
    wait_until(lambda: min(w.done_ops for w in writers) >= 40 or any(not w.is_alive() for w in writers), 120,
               what="the writers under way")
    a.kill9_repld()
    a.start_repld()
    wait_until(lambda: min(w.done_ops for w in writers) >= 80 or any(not w.is_alive() for w in writers), 120,
               what="the writers further")
    b.kill9_storaged()
    b.start_storaged()
    for w in writers:
        w.join(300)
        assert not w.is_alive(), "a writer did not finish"
        assert w.error is None, w.error
    assert sum(len(w.acked) for w in writers) > 300

    final, = wait_until(lambda: converged([a, b]), 120, what=lambda: describe([a, b]))
    print("two-way: %d acknowledged, %d without a reply, %d keys present at the end" %
          (sum(len(w.acked) for w in writers), sum(len(w.unknown) for w in writers), len(final)))
    check_oracle(final, writers)
    # something was written concurrently on both sides and survived, deletes and purges took effect
    assert {o for w in writers for (o, _, _, _) in w.acked} == {PUT, DELETE, PURGE}
    assert a.list_failed() == [] and b.list_failed() == []
    # nothing circulates: each mutation is logged at most once on each site
    total = sum(len(w.acked) + len(w.unknown) for w in writers)
    for site in (a, b):
        assert site.status()["log_head_seq"] <= total, site.describe()


def test_a_local_delete_keeps_out_an_older_write_arriving_later(topology):
    """C wrote a key before B deleted it, and C's write reaches B only afterwards: B's tombstone keeps it out (it
    would come back otherwise). Likewise a purge of B's, of another bucket. (Between two sites shipping to each
    other the write would mostly be superseded at its source, which had applied the delete; here C never hears
    of it.)"""
    s = topology(["b", "c"], {"c": "b"})
    b, c = s["b"], s["c"]
    create_bucket_everywhere([b, c])
    create_bucket_everywhere([b, c], "other")
    bc, cc = b.client(), c.client()
    c.stop_repld()  # C's writes wait in its log
    put_k, put_p = cc.put(BUCKET, "k", b"from C"), cc.put("other", "p", b"from C")
    assert put_k.status == 200 and put_p.status == 200
    assert bc.put(BUCKET, "k", b"B's own").status == 200 and bc.put("other", "p", b"B's own").status == 200
    threading.Event().wait(0.01)  # B's clock past C's versions (the test needs that order, LWW does not)
    r = bc.delete(BUCKET, "k")
    assert r.status == 204 and version_of(r) > version_of(put_k), (version_of(r), version_of(put_k))
    r = bc.purge("other")
    assert r.status == 200 and version_of(r) > version_of(put_p)
    c.start_repld()
    wait_until(lambda: drained([c]), 30, what=lambda: describe([b, c]))
    assert bc.get(BUCKET, "k").status == 404 and bc.get("other", "p").status == 404
    assert bc.list_all(BUCKET)[0] == [] and bc.list_all("other")[0] == []
    st = bc.repl_status()
    # C's two events reached B and were skipped there
    assert cc.get(BUCKET, "k").status == 200 and c.status()["events_pending"] == 0, st


def test_chain_carries_the_origin_version_and_etag(topology):
    s = topology(["a", "b", "c"], {"a": "b", "b": "c"})
    a, b, c = s["a"], s["b"], s["c"]
    create_bucket_everywhere([a, b, c])
    create_bucket_everywhere([a, b, c], "gone")
    ac = a.client()
    small, large = b"small object\n", bytes(range(256)) * 1024  # large is over inline_threshold: fetched by URL
    written = {}
    for key, data in (("small", small), ("large", large), ("deleted", b"soon gone")):
        r = ac.put(BUCKET, key, data)
        assert r.status == 200
        written[key] = (version_of(r), r.header("ETag"))
    r = ac.delete(BUCKET, "deleted")
    assert r.status == 204 and version_of(r)[1] == "site-a" and version_of(r) > written.pop("deleted")[0]
    assert ac.put("gone", "x", b"purged").status == 200
    assert ac.purge("gone").status == 200
    # a write on B, the middle of the chain, flows on too
    rb = b.client().put(BUCKET, "from-b", b"written on B\n")
    written["from-b"] = (version_of(rb), rb.header("ETag"))

    wait_until(lambda: drained([a, b]) and c.client().get(BUCKET, "from-b").status == 200 and
               c.client().get(BUCKET, "large").status == 200 and c.client().get(BUCKET, "deleted").status == 404,
               60, what=lambda: describe([a, b, c]))
    cc = c.client()
    for key, (ver, etag) in written.items():
        r = cc.get(BUCKET, key)
        assert r.status == 200, (key, r)
        assert version_of(r) == ver and r.header("ETag") == etag, (key, dict(r.headers), ver, etag)
    assert version_of(cc.get(BUCKET, "small"))[1] == "site-a" and cc.get(BUCKET, "large").body == large
    assert cc.get(BUCKET, "deleted").status == 404 and cc.list_all("gone")[0] == []
    listed = {o["key"]: (o["version"], o["origin"]) for o in cc.raw("GET", "/" + BUCKET).json()["objects"]}
    assert listed == {k: v for k, (v, _) in written.items()}
    assert comio_diff(b, c)[0] == []  # A lacks only B's own write: a chain does not flow back
    assert a.list_failed() == [] and b.list_failed() == []


def test_ring_of_three_converges_and_drains(topology):
    s = topology(["a", "b", "c"], {"a": "b", "b": "c", "c": "a"})
    sites = [s["a"], s["b"], s["c"]]
    create_bucket_everywhere(sites)
    writers = [Writer(site, 10 + i, 120, purge_every=50) for i, site in enumerate(sites)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(300)
        assert not w.is_alive(), "a writer did not finish"
        assert w.error is None, w.error
    final, = wait_until(lambda: converged(sites), 120, what=lambda: describe(sites))
    check_oracle(final, writers)
    assert all(not w.unknown for w in writers)
    # the logs drain and stay drained: an event is logged at most once on each site (the site it went round
    # to last skipped it as a duplicate and did not log it again)
    total = sum(len(w.acked) for w in writers)
    for site in sites:
        st = site.status()
        assert st["events_pending"] == 0 and st["log_head_seq"] <= total, site.describe()
    heads = [site.status()["log_head_seq"] for site in sites]
    assert wait_until(lambda: drained(sites), 10)
    assert [site.status()["log_head_seq"] for site in sites] == heads
    for site in sites:
        assert site.list_failed() == []
