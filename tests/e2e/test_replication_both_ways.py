"""test_replication_both_ways.py - a site that ships its own writes and also applies a
primary's (docs/replication-apply.md allows it): A ships to B, B ships its own writes to C.

The versions of A's objects applied on B are A's sequence numbers, which B's own
sequence numbers also take: a version number names B's own write only on an object
written on B. Every wait is bounded."""

import os
import time

import pytest

from harness.comio import wait_for
from harness.replication import Site, finish_sites, new_token, presign


@pytest.fixture
def three(tmp_path):
    """(a, b, c): A ships to B; B accepts A and ships its own writes to C. Storaged only is started."""
    ab, bc = new_token(), new_token()
    c = Site(tmp_path / "c", "site-c", accept_token=bc)
    b = Site(tmp_path / "b", "site-b", accept_token=ab, repl={"remote_url": c.url(), "remote_token": bc})
    a = Site(tmp_path / "a", "site-a", repl={"remote_url": b.url(), "remote_token": ab})
    sites = [a, b, c]
    try:
        for s in (c, b, a):
            s.start(repld=False)
        yield a, b, c
    finally:
        problems = finish_sites(sites)
        if problems:
            pytest.fail("teardown:\n" + "\n".join(problems), pytrace=False)


def test_local_event_of_an_object_a_primary_replaced_is_superseded(three):
    a, b, c = three
    ac, bc = a.client(), b.client()
    local, applied = os.urandom(200000), os.urandom(200000)  # above inline_threshold: shipped by presigned URL
    v = bc.put("bkt", "k", local).json()["version"]
    # A's writes take its own sequence numbers from 1: make A's version of "k" equal to B's
    for i in range(1, v):
        assert ac.put("bkt", "fill%d" % i, b"x").json()["version"] == i
    assert ac.put("bkt", "k", applied).json()["version"] == v

    a.start_repld()
    assert wait_for(lambda: bc.get("bkt", "k").body == applied, timeout=30), b.describe()
    assert bc.get("bkt", "k").header("X-Comio-Version") == str(v)

    # B's fetch endpoint serves B's own versions only: the applied object is not B's event v
    url = presign(b.repl["remote_token"], b.url(""), "bkt", "k", v, int(time.time()) + 600)
    r = bc.raw("GET", url[len(b.url("")):])
    assert r.status == 410, r

    # B's event v for "k" is superseded: it must not be retried forever
    b.start_repld()
    assert bc.put("bkt", "later", b"a later local write").status == 200
    assert wait_for(lambda: c.client().get("bkt", "later").status == 200, timeout=30), b.describe()
    assert wait_for(lambda: b.status()["events_pending"] == 0, timeout=30), b.describe()
    assert c.client().get("bkt", "k").status == 404  # what B wrote is gone from B; A's object is not chained on
    assert b.list_failed() == []
