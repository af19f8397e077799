"""test_conflicts.py - concurrent writes of one key on two sites are detected, resolved the same way everywhere,
and their losers kept (docs/replication-apply.md, Conflicts).

Real sites on loopback, each with its own storaged and repld:
  - two-way A <-> B with replication held back while both sides write the same keys (PUT/PUT, PUT/DELETE,
    DELETE/PUT): once it runs, both sites list the same losers, the ones last-writer-wins predicts;
  - two-way with concurrent writers on both sides hammering hot keys: after convergence both sites list the
    same losers, and every listed loser is a write a client had acknowledged (its version, origin and bytes),
    never the version a site holds;
  - a ring of three where only one site writes, so that every reordering comes from the workers and the
    ring's two paths: no conflict is ever reported.
Every loop and wait is bounded.
"""

import json
import subprocess

from harness import comio
from harness.comio import md5
from harness.replication import comio_diff, comio_path, wait_until
from test_topology_versions import (BUCKET, DELETE, PUT, Writer, check_oracle, converged, create_bucket_everywhere,
                                    describe, drained, topology, version_of)  # noqa: F401 (topology is a fixture)


def conflicts(site, bucket=None):
    """Every kept loser the site lists, page after page: {(bucket, key, version, origin): record}."""
    c = site.client()
    out, marker = {}, None
    for _ in range(100):
        q = "?max-keys=7" + ("&bucket=" + bucket if bucket else "") + ("&marker=" + marker if marker else "")
        r = c.raw("GET", "/admin/conflicts" + q)
        assert r.status == 200, r
        page = r.json()
        for rec in page["conflicts"]:
            key = (rec["bucket"], rec["key"], rec["loser"]["version"], rec["loser"]["origin"])
            assert key not in out, key
            out[key] = rec
        if not page["truncated"]:
            return out
        marker = page["next"]
    raise AssertionError("more than 100 pages of conflicts")


def comio_conflicts(site, *args):
    """`comio conflicts --url SITE ARGS...`: (exit status, stdout, stderr)."""
    p = subprocess.run([str(comio_path()), "conflicts", "--url", site.url()] + list(args), capture_output=True, text=True,
                       timeout=60, env=comio.sanitizer_env())
    assert comio.sanitizer_report(p.stderr) is None, p.stderr[-4000:]
    return p.returncode, p.stdout, p.stderr


def conflict_count(site):
    return site.client().metrics().value("comio_replication_conflicts_total")


def held_back_pair(topology):
    """Sites A <-> B with the bucket on both, then both replds stopped: what each writes now races the other's
    writes until a repld starts again. (a, b)."""
    s = topology(["a", "b"], {"a": "b", "b": "a"})
    a, b = s["a"], s["b"]
    create_bucket_everywhere([a, b])
    wait_until(lambda: drained([a, b]), 30, what=lambda: describe([a, b]))
    a.stop_repld()
    b.stop_repld()
    return a, b


def test_two_way_races_are_kept_the_same_on_both_sites(topology):
    s = topology(["a", "b"], {"a": "b", "b": "a"})
    a, b = s["a"], s["b"]
    create_bucket_everywhere([a, b])
    wait_until(lambda: drained([a, b]), 30, what=lambda: describe([a, b]))
    ac, bc = a.client(), b.client()
    for k in ("pp", "pd", "dp"):
        assert ac.put(BUCKET, k, b"first, everywhere").status == 200
    wait_until(lambda: drained([a, b]) and bc.get(BUCKET, "dp").status == 200, 30, what=lambda: describe([a, b]))
    assert conflict_count(a) == 0 and conflict_count(b) == 0

    a.stop_repld()
    b.stop_repld()
    acked = {}  # (key, site) -> (op, (version, origin), md5 or None)
    for site, c, pp, pd, dp in ((a, ac, b"pp from A", b"pd from A", None), (b, bc, b"pp from B", None, b"dp from B")):
        r = c.put(BUCKET, "pp", pp)
        assert r.status == 200
        acked[("pp", site.site_id)] = (PUT, version_of(r), md5(pp))
        for k, data in (("pd", pd), ("dp", dp)):
            r = c.put(BUCKET, k, data) if data else c.delete(BUCKET, k)
            assert r.status in (200, 204), r
            acked[(k, site.site_id)] = (PUT if data else DELETE, version_of(r), data and md5(data))
    a.start_repld()
    b.start_repld()
    wait_until(lambda: converged([a, b], ["pp", "pd", "dp"]), 60, what=lambda: describe([a, b]))

    # the winner of each race is the larger (version, origin), on both sites; the other is kept
    want = {}
    for k in ("pp", "pd", "dp"):
        mine, theirs = acked[(k, "site-a")], acked[(k, "site-b")]
        win, lose = (mine, theirs) if mine[1] > theirs[1] else (theirs, mine)
        r = ac.get(BUCKET, k)
        if win[0] == PUT:
            assert r.status == 200 and version_of(r) == win[1] and md5(r.body) == win[2], (k, r)
        else:
            assert r.status == 404, (k, r)
        want[(BUCKET, k, lose[1][0], lose[1][1])] = lose
    got_a, got_b = conflicts(a), conflicts(b)
    assert set(got_a) == set(want), (got_a, want)
    assert set(got_b) == set(want), (got_b, want)
    for key, (op, _, digest) in want.items():
        for got in (got_a, got_b):
            rec = got[key]["loser"]
            assert rec["op"] == op, rec
            if op == PUT:
                assert rec["etag"] == digest and rec["size"] > 0, rec
    assert conflict_count(a) == 3 and conflict_count(b) == 3
    for site in (a, b):
        assert site.client().metrics().value("comio_replication_conflict_losers") == 3
        assert site.status()["conflicts"] == 3 and site.status()["conflicts_kept"] == 3
    assert set(conflicts(a, BUCKET)) == set(want) and conflicts(a, "nobucket") == {}
    assert comio_diff(a, b)[0] == []

    # the command line says the same: one line per loser, or the records as JSON
    rc, out, err = comio_conflicts(a, "--bucket", BUCKET)
    assert rc == 0, err
    lines = sorted(out.splitlines())
    assert len(lines) == 3, out
    for (bucket, k, version, origin), (op, _, _) in want.items():
        assert any(l.startswith("%s\t%s\t%d\t%s\t%s" % (bucket, k, version, origin, op)) for l in lines), (k, out)
    rc, out, err = comio_conflicts(b, "--json")
    assert rc == 0, err
    assert {(r["bucket"], r["key"], r["loser"]["version"], r["loser"]["origin"]) for r in json.loads(out)["conflicts"]} == \
        set(want)
    assert comio_conflicts(a, "--bucket", "Bad_Name")[0] == 2
    assert comio_conflicts(a, "--nonsense")[0] == 2

    # a kept loser is readable by its version, on both sites; so is the current version; a DELETE has no bytes
    for (bk, k, version, origin), (op, _, digest) in want.items():
        for c in (ac, bc):
            r = c.raw("GET", "/%s/%s?version=%d&origin=%s" % (bk, k, version, origin))
            if op == PUT:
                assert r.status == 200 and md5(r.body) == digest and version_of(r) == (version, origin), (k, r)
            else:
                assert r.status == 404 and r.json()["code"] == "NoSuchVersion", (k, r)
    cur = ac.get(BUCKET, "pp")
    v, o = version_of(cur)
    assert ac.raw("GET", "/%s/pp?version=%d&origin=%s" % (BUCKET, v, o)).body == cur.body
    assert ac.raw("GET", "/%s/pp?version=%d&origin=%s" % (BUCKET, v + 1, o)).status == 404
    for q in ("version=%d" % v, "origin=%s" % o, "version=0&origin=%s" % o, "version=x&origin=%s" % o):
        assert ac.raw("GET", "/%s/pp?%s" % (BUCKET, q)).status == 400, q

    # the operator removes one loser, on one site: its bytes are freed there; the other site keeps its copy
    (bk, key, version, origin) = next(k for k in want if k[1] == "pd")
    path = "/admin/conflicts/%s/%s?version=%d&origin=%s" % (bk, key, version, origin)
    assert ac.raw("DELETE", path).status == 204
    assert ac.raw("DELETE", path).status == 404  # gone
    assert (bk, key, version, origin) not in conflicts(a) and (bk, key, version, origin) in conflicts(b)
    for bad in ("/admin/conflicts/%s/%s?version=x&origin=%s" % (bk, key, origin),
                "/admin/conflicts/%s/%s?version=%d" % (bk, key, version),
                "/admin/conflicts/%s/%s?version=%d&origin=a%%0ab" % (bk, key, version),
                "/admin/conflicts/Bad_Bucket/%s?version=%d&origin=%s" % (key, version, origin)):
        assert ac.raw("DELETE", bad).status == 400, bad
    assert ac.raw("DELETE", "/admin/conflicts/%s?version=%d&origin=%s" % (bk, version, origin)).status == 404  # no key
    assert ac.raw("DELETE", path.replace("version=", "version=1")).status == 404
    assert ac.raw("GET", path).status == 405
    # a bucket named "conflicts" is still purged at /admin/conflicts/objects
    assert ac.create_bucket("conflicts").status in (200, 201)
    assert ac.raw("DELETE", "/admin/conflicts/objects?confirm=true").status == 200
    del want[(bk, key, version, origin)]
    assert bc.raw("DELETE", path).status == 204

    # a write made after the race (here on B, which holds both sides) overwrites the loser: no longer listed
    assert bc.put(BUCKET, "pp", b"after the race").status == 200
    wait_until(lambda: drained([a, b]) and ac.get(BUCKET, "pp").body == b"after the race", 30,
               what=lambda: describe([a, b]))
    left = {k for k in want if k[1] != "pp"}
    assert set(conflicts(a)) == left and set(conflicts(b)) == left


def test_listing_refuses_bad_parameters(topology):
    s = topology(["a"], {})
    c = s["a"].client()
    for q in ("?bucket=No_Such", "?max-keys=0", "?max-keys=1001", "?max-keys=x", "?marker=zz", "?marker=abc"):
        r = c.raw("GET", "/admin/conflicts" + q)
        assert r.status == 400, (q, r)
    assert c.raw("GET", "/admin/conflicts").json() == {"conflicts": [], "truncated": False}
    assert c.raw("POST", "/admin/conflicts").status == 405


def test_two_way_hot_keys_list_the_same_losers_and_only_acknowledged_writes(topology):
    s = topology(["a", "b"], {"a": "b", "b": "a"})
    a, b = s["a"], s["b"]
    create_bucket_everywhere([a, b])
    writers = [Writer(a, 21, 200, purge_every=1000), Writer(b, 22, 200, purge_every=1000)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(300)
        assert not w.is_alive(), "a writer did not finish"
        assert w.error is None, w.error
    final, = wait_until(lambda: converged([a, b]), 120, what=lambda: describe([a, b]))
    check_oracle(final, writers)
    got_a, got_b = conflicts(a), conflicts(b)
    assert set(got_a) == set(got_b), (sorted(set(got_a) ^ set(got_b)))
    acked = {(k, ver): (op, digest) for w in writers for (op, k, ver, digest) in w.acked}
    for (bucket, key, version, origin), rec in got_a.items():
        assert bucket == BUCKET
        op, digest = acked[(key, (version, origin))]  # a write a client was told had happened
        assert rec["loser"]["op"] == op
        if op == PUT:
            assert rec["loser"]["etag"] == digest
        held = final.get(key)
        assert held is None or held[0] != (version, origin), (key, version, origin)  # never the winner
    print("hot keys: %d acknowledged, %d losers kept, %d conflicts counted on A, %d on B" %
          (len(acked), len(got_a), conflict_count(a), conflict_count(b)))
    assert conflict_count(a) > 0 and conflict_count(b) > 0  # two writers on six keys do race


def test_ring_with_one_writer_reports_no_conflict(topology):
    s = topology(["a", "b", "c"], {"a": "b", "b": "c", "c": "a"})
    sites = [s["a"], s["b"], s["c"]]
    create_bucket_everywhere(sites)
    w = Writer(sites[0], 31, 200, purge_every=70)
    w.start()
    w.join(300)
    assert not w.is_alive() and w.error is None, w.error
    final, = wait_until(lambda: converged(sites), 120, what=lambda: describe(sites))
    check_oracle(final, [w])
    for site in sites:
        assert conflict_count(site) == 0, site.describe()
        assert conflicts(site) == {}


def test_expired_losers_are_collected(make_server):
    """replication.conflict_ttl: a loser kept longer is collected (a pass runs at start-up, then at most once a
    minute), and its bytes freed; 0 keeps them."""
    from test_replica_apply import APPLIED, SKIPPED, TOKEN, apply, codes, put_event
    for ttl, kept in (("1ms", 0), ("0", 1)):
        replica = make_server(config="replication:\n  accept_token: %s\n  conflict_ttl: %s\n" % (TOKEN, ttl))
        rc = replica.client()
        # two sites wrote k without seeing each other's write: b's is the later one
        assert codes(apply(rc, put_event(1, "bkt", "k", b"from a", hlc=1000, origin="a"))) == [APPLIED]
        assert codes(apply(rc, put_event(2, "bkt", "k", b"from b", hlc=1001, origin="b"))) == [APPLIED]
        assert len(rc.raw("GET", "/admin/conflicts").json()["conflicts"]) == 1
        replica.restart()
        rc = replica.client()
        assert wait_until(lambda: len(rc.raw("GET", "/admin/conflicts").json()["conflicts"]) == kept, 30)
        assert ("expired conflict losers collected" in replica.log()) == (kept == 0)
        assert rc.get("bkt", "k").body == b"from b"
        assert codes(apply(rc, put_event(1, "bkt", "k", b"from a", hlc=1000, origin="a"))) == [SKIPPED]  # still seen


def test_a_write_that_lost_on_its_own_site_still_ships(topology):
    """B wrote k and k2 (one small, shipped inline; one large, fetched by URL), then A's later writes of both
    reached B and won there before B's repld shipped B's: B's writes are now losers B keeps, not its objects. B
    must ship them all the same (from the losers' records), else A would never see the races: A lists the same
    losers as B."""
    a, b = held_back_pair(topology)
    ac, bc = a.client(), b.client()
    small, large = b"small from B", bytes(range(256)) * 400  # over inline_threshold (64 KB): fetched
    lost = []
    for k, data in (("k", small), ("k2", large)):
        r = bc.put(BUCKET, k, data)
        assert r.status == 200
        lost.append((BUCKET, k) + version_of(r))
    for k in ("k", "k2"):
        assert ac.put(BUCKET, k, b"later, from A").status == 200
    a.start_repld()
    wait_until(lambda: drained([a]) and len(conflicts(b)) == 2, 30, what=lambda: describe([a, b]))
    assert set(conflicts(b)) == set(lost)
    b.start_repld()
    wait_until(lambda: converged([a, b], ["k", "k2"]), 60, what=lambda: describe([a, b]))
    assert set(conflicts(a)) == set(lost), describe([a, b])
    assert conflict_count(a) == 2 and conflict_count(b) == 2
    r = ac.raw("GET", "/%s/k2?version=%d&origin=%s" % (BUCKET, lost[1][2], lost[1][3]))
    assert r.status == 200 and r.body == large
