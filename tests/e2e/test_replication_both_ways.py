"""test_replication_both_ways.py - a site that ships its own writes and also applies another
site's: A ships to B, B ships to C, so B passes A's events on (a chain).

Versions are hybrid logical clock values with the origin site id as tie-break:
A's and B's writes of one key order the same way on every site, and C's copy
carries the winner's version and origin. Every wait is bounded."""

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


def version_of(reply):
    return int(reply.header("X-Comio-Version")), reply.header("X-Comio-Origin")


def test_concurrent_writes_of_a_chain_end_in_the_last_writer(three):
    a, b, c = three
    ac, bc, cc = a.client(), b.client(), c.client()
    local, applied = os.urandom(200000), os.urandom(200000)  # above inline_threshold: shipped by presigned URL
    rb = bc.put("bkt", "k", local)
    ra = ac.put("bkt", "k", applied)
    assert rb.status == 200 and ra.status == 200
    vb, va = version_of(rb), version_of(ra)
    assert vb[1] == "site-b" and va[1] == "site-a"
    winner, data = max((va, applied), (vb, local))  # last writer wins by (version, site id)

    a.start_repld()
    b.start_repld()
    assert wait_for(lambda: version_of(bc.get("bkt", "k")) == winner, timeout=30), b.describe()
    assert wait_for(lambda: cc.get("bkt", "k").status == 200 and version_of(cc.get("bkt", "k")) == winner, timeout=30), \
        b.describe()
    assert bc.get("bkt", "k").body == data and cc.get("bkt", "k").body == data
    r = cc.get("bkt", "k")
    assert r.header("ETag") == (ra if winner == va else rb).header("ETag")

    # B's fetch endpoint serves the version it holds, with its origin, whoever wrote it; any other is gone
    url = presign(b.repl["remote_token"], b.url(""), "bkt", "k", winner[0], int(time.time()) + 600, origin=winner[1])
    r = bc.raw("GET", url[len(b.url("")):])
    assert r.status == 200 and r.body == data, r
    other = "site-b" if winner[1] == "site-a" else "site-a"
    url = presign(b.repl["remote_token"], b.url(""), "bkt", "k", winner[0], int(time.time()) + 600, origin=other)
    assert bc.raw("GET", url[len(b.url("")):]).status == 410
    # a URL of the previous release (no origin) names the version alone
    url = presign(b.repl["remote_token"], b.url(""), "bkt", "k", winner[0], int(time.time()) + 600)
    assert bc.raw("GET", url[len(b.url("")):]).status == 200

    # the loser's event is superseded, never retried for ever; a later write still flows
    assert bc.put("bkt", "later", b"a later local write").status == 200
    assert wait_for(lambda: cc.get("bkt", "later").status == 200, timeout=30), b.describe()
    assert wait_for(lambda: b.status()["events_pending"] == 0 and a.status()["events_pending"] == 0, timeout=30), \
        b.describe()
    assert b.list_failed() == [] and a.list_failed() == []
    assert version_of(cc.get("bkt", "k")) == winner
