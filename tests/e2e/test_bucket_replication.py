"""test_bucket_replication.py - creating and deleting a bucket replicate, in every topology.

Real sites on loopback (storaged and repld each), started as
test_topology_versions.py starts them:
  - one way A -> B: an empty bucket created on A appears on B, deleted on A it
    goes from B;
  - two-way A <-> B: a bucket created on B appears on A; a bucket that holds
    an object on B (written there, not yet shipped) is not deleted by A's
    delete: B keeps it and logs a warning, the object then reaches A, and the
    bucket goes everywhere once that object is deleted;
  - a chain A -> B -> C: C gets A's create and delete;
  - a ring A -> B -> C -> A with creates and deletes on all three: the same
    buckets everywhere, the logs drain and stay drained.
Every wait is bounded.
"""

from harness.replication import comio_diff, wait_until
from test_topology_versions import describe, drained, topology  # noqa: F401 (topology is a fixture)


def bucket_entries(site):
    """{name: entry} of GET / on the site."""
    r = site.client().raw("GET", "/")
    assert r.status == 200, r
    return {b["name"]: b for b in r.json()["buckets"]}


def buckets(site):
    """{name: objects} of the buckets the site lists."""
    return {name: b.get("objects") for name, b in bucket_entries(site).items()}


def has_bucket(site, name):
    return name in buckets(site)


def same_buckets(sites):
    first = buckets(sites[0])
    return all(buckets(s) == first for s in sites[1:])


def test_one_way_create_and_delete(topology):
    s = topology(["a", "b"], {"a": "b"})
    a, b = s["a"], s["b"]
    ac = a.client()
    r = ac.create_bucket("empty")
    assert r.status == 200
    # the reply names the version the creation made, like an object's PUT
    created = int(r.header("X-Comio-Version"))
    assert created > 0 and r.header("X-Comio-Origin") == a.site_id
    wait_until(lambda: has_bucket(b, "empty"), 30, what=lambda: describe([a, b]))
    assert b.client().list_all("empty")[0] == []
    # creating it again changes nothing, logs nothing, and names no new version
    head = a.status()["log_head_seq"]
    r = ac.create_bucket("empty")
    assert r.status == 200 and r.json()["created"] is False
    assert r.header("X-Comio-Version") is None
    assert a.status()["log_head_seq"] == head
    r = ac.delete_bucket("empty")
    assert r.status == 204
    assert int(r.header("X-Comio-Version")) > created and r.header("X-Comio-Origin") == a.site_id
    wait_until(lambda: drained([a]) and not has_bucket(b, "empty"), 30, what=lambda: describe([a, b]))
    assert comio_diff(a, b)[0] == []
    assert a.list_failed() == []


def test_two_way_create_and_a_delete_that_keeps_data(topology):
    s = topology(["a", "b"], {"a": "b", "b": "a"})
    a, b = s["a"], s["b"]
    ac, bc = a.client(), b.client()
    assert bc.create_bucket("from-b").status == 200
    wait_until(lambda: has_bucket(a, "from-b"), 30, what=lambda: describe([a, b]))

    # B writes into "busy" while its repld is stopped; A, which sees "busy" empty, deletes it
    assert bc.create_bucket("busy").status == 200
    wait_until(lambda: has_bucket(a, "busy") and drained([b]), 30, what=lambda: describe([a, b]))
    b.stop_repld()
    assert bc.put("busy", "k", b"written on B").status == 200
    assert ac.delete_bucket("busy").status == 204
    wait_until(lambda: drained([a]), 30, what=lambda: describe([a, b]))
    # B applied the delete without deleting its object: the bucket stays, and B says so
    assert bc.get("busy", "k").status == 200
    assert buckets(b).get("busy") == 1
    # ... and lists it as deleted, with the version of A's delete
    entry = bucket_entries(b)["busy"]
    assert entry.get("deleted") is True and entry.get("origin") == a.site_id, entry
    assert bucket_entries(b)["from-b"].get("deleted") is None
    assert not has_bucket(a, "busy")
    warned = [ln for ln in b.storaged.log().splitlines() if "bucket is not empty here" in ln]
    assert warned and '"busy"' in warned[-1] and '"objects":"1"' in warned[-1], b.storaged.log_tail(20)

    # B's object reaches A (key-level last writer wins): the bucket is back there, both sites agree
    b.start_repld()
    wait_until(lambda: drained([a, b]) and a.client().get("busy", "k").status == 200, 30, what=lambda: describe([a, b]))
    assert comio_diff(a, b)[0] == []
    assert same_buckets([a, b])
    # the bucket was deleted: once its last object goes it goes too, on both sites
    assert ac.delete("busy", "k").status == 204
    wait_until(lambda: drained([a, b]) and not has_bucket(a, "busy") and not has_bucket(b, "busy"), 30,
               what=lambda: describe([a, b]))
    assert has_bucket(a, "from-b") and has_bucket(b, "from-b")
    assert a.list_failed() == [] and b.list_failed() == []


def test_chain_carries_create_and_delete(topology):
    s = topology(["a", "b", "c"], {"a": "b", "b": "c"})
    a, b, c = s["a"], s["b"], s["c"]
    ac = a.client()
    assert ac.create_bucket("chained").status == 200
    assert ac.create_bucket("short-lived").status == 200
    wait_until(lambda: has_bucket(c, "chained") and has_bucket(c, "short-lived"), 30, what=lambda: describe([a, b, c]))
    assert ac.delete_bucket("short-lived").status == 204
    wait_until(lambda: drained([a, b]) and not has_bucket(c, "short-lived"), 30, what=lambda: describe([a, b, c]))
    assert same_buckets([a, b, c]) and has_bucket(c, "chained")
    assert a.list_failed() == [] and b.list_failed() == []


def test_ring_of_three_creates_and_deletes_drain(topology):
    s = topology(["a", "b", "c"], {"a": "b", "b": "c", "c": "a"})
    sites = [s["a"], s["b"], s["c"]]
    # each site creates its own buckets, and all three create and delete the same one
    for i, site in enumerate(sites):
        c = site.client()
        for name in ("own-%d" % i, "gone-%d" % i, "shared"):
            assert c.create_bucket(name).status == 200
        assert c.delete_bucket("gone-%d" % i).status == 204
    wait_until(lambda: drained(sites) and same_buckets(sites), 60, what=lambda: describe(sites))
    names = set(buckets(sites[0]))
    assert {"own-0", "own-1", "own-2"} <= names and not names & {"gone-0", "gone-1", "gone-2"}
    # three creates of "shared": the last one wins everywhere (a bucket); deleted on one site, it goes everywhere
    assert "shared" in names
    assert sites[2].client().delete_bucket("shared").status == 204
    wait_until(lambda: drained(sites) and not any(has_bucket(x, "shared") for x in sites), 30,
               what=lambda: describe(sites))
    # nothing goes round for ever: each of the 13 operations is logged at most once on each site
    heads = [x.status()["log_head_seq"] for x in sites]
    assert all(h <= 13 for h in heads), heads
    assert wait_until(lambda: drained(sites), 10)
    assert [x.status()["log_head_seq"] for x in sites] == heads
    for x in sites:
        assert x.list_failed() == []
