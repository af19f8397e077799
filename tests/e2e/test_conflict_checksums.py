"""test_conflict_checksums.py - a conflict's kept loser keeps its block checksums in its conflict record
(docs/storage.md, "Conflict records"), and its bytes are verified wherever they are read: a GET by version,
a Range GET by version (only the blocks it reads), the fetch endpoint a peer pulls a large loser from, repld's
inline read of a small one, and the scrub. Damaged bytes of a loser are never served nor shipped (losers are not
repaired from a peer: docs/operations.md).

Two real sites, A <-> B. B writes four keys, then A's later writes of them reach B first and win there: B's
own writes become losers B keeps (their checksums taken from B's object records as A's writes replace them).
Two of them are then damaged in B's image, behind storaged's back (tests/harness/damage.py). B's repld
ships the good losers, which A keeps (their checksums computed from the bytes A received), and never the
damaged ones. Every loop and wait is bounded.
"""

import json
import os
import time

from harness.damage import damage, find_extent
from harness.replication import wait_until
from test_block_checksums import stream_get
from test_conflicts import conflicts, held_back_pair
from test_topology_versions import BUCKET, describe, drained, topology, version_of  # noqa: F401 (topology is a fixture)

BLOCK = 64 * 1024


def get_version(c, key, version, origin):
    return c.raw("GET", "/%s/%s?version=%d&origin=%s" % (BUCKET, key, version, origin))


def metric(site, name, **labels):
    return site.client().metrics().get(name, 0, **labels)


def test_damaged_loser_is_never_served_nor_shipped(topology):
    a, b = held_back_pair(topology)
    ac, bc = a.client(), b.client()
    # small ones (at most one block: an inline CRC, shipped inline), large ones (many blocks, fetched by URL)
    data = {"small-bad": os.urandom(20_000), "large-bad": os.urandom(300_000),
            "small-good": os.urandom(30_000), "large-good": os.urandom(200_000 + 11)}
    lost = {}
    for k, d in data.items():
        r = bc.put(BUCKET, k, d)
        assert r.status == 200, r
        lost[k] = version_of(r)
    for k in data:
        assert ac.put(BUCKET, k, b"later, from A").status == 200
    a.start_repld()
    wait_until(lambda: drained([a]) and len(conflicts(b)) == 4, 30, what=lambda: describe([a, b]))
    assert set(conflicts(b)) == {(BUCKET, k) + v for k, v in lost.items()}

    # undamaged, a kept loser is served by version, verified against its own checksums (not the winner's)
    before = metric(b, "comio_checksum_blocks_verified_total")
    for k, d in data.items():
        r = get_version(bc, k, *lost[k])
        assert r.status == 200 and r.body == d and version_of(r) == lost[k], (k, r)
    blocks = sum((len(d) + BLOCK - 1) // BLOCK for d in data.values())
    assert metric(b, "comio_checksum_blocks_verified_total") - before == blocks

    # damaged in B's image: a GET by version answers 503 with a JSON error, never a damaged byte
    image = b.workdir / "store.img"
    damage(image, find_extent(image, data["small-bad"]) + 12_345)
    damage(image, find_extent(image, data["large-bad"]) + 7)  # the first block: refused before the headers go
    mismatches = metric(b, "comio_checksum_mismatches_total", path="get")
    for k in ("small-bad", "large-bad"):
        r = get_version(bc, k, *lost[k])
        assert r.status == 503 and r.json()["code"] == "DataDamaged", (k, r)
    assert metric(b, "comio_checksum_mismatches_total", path="get") - mismatches == 2
    # a Range GET of a loser verifies the blocks it reads against theirs: damage outside them is not seen (nor
    # counted), damage inside is refused
    path = "/%s/large-bad?version=%d&origin=%s" % ((BUCKET,) + lost["large-bad"])
    before = metric(b, "comio_checksum_blocks_verified_total")
    r = bc.raw("GET", path, headers={"Range": "bytes=%d-%d" % (2 * BLOCK + 1, 3 * BLOCK + 10)})
    assert r.status == 206 and r.body == data["large-bad"][2 * BLOCK + 1:3 * BLOCK + 11], r
    assert metric(b, "comio_checksum_blocks_verified_total") - before == 2
    assert metric(b, "comio_checksum_mismatches_total", path="get") - mismatches == 2
    r = bc.raw("GET", path, headers={"Range": "bytes=5-%d" % (BLOCK + 3)})
    assert r.status == 503 and r.json()["code"] == "DataDamaged", r
    assert metric(b, "comio_checksum_mismatches_total", path="get") - mismatches == 3
    lines = [json.loads(x) for x in b.storaged.log().splitlines() if "object data damaged" in x]
    assert {(x["key"], int(x["version"]), x["origin"]) for x in lines} == \
        {(k,) + lost[k] for k in ("small-bad", "large-bad")}, lines
    # the winners are untouched, and no repair of a loser is attempted
    for k in data:
        assert bc.get(BUCKET, k).body == b"later, from A"
    assert metric(b, "comio_repair_attempted_total") == 0

    # the scrub reads the kept losers after the objects, and finds the same two, without a repair
    scrub_last = lambda: b.client().raw("GET", "/admin/scrub").json()["last"]  # noqa: E731
    wait_until(lambda: scrub_last() is not None, 30, what="B's first scrub pass")
    before_pass, before = scrub_last()["pass"], metric(b, "comio_checksum_mismatches_total", path="scrub")
    wait_until(lambda: bc.raw("POST", "/admin/scrub").status == 202, 30, what="a scrub pass asked for")
    wait_until(lambda: scrub_last()["pass"] > before_pass, 60, what="the scrub pass asked for")
    assert scrub_last()["damaged"] == 2, scrub_last()
    # (their log lines were written by the GETs above: a damage is logged once in ten minutes, counted each time)
    assert metric(b, "comio_checksum_mismatches_total", path="scrub") - before == 2
    assert metric(b, "comio_repair_attempted_total") == 0

    # B ships its losers: the good ones reach A, which keeps them; the damaged ones never leave B
    b.start_repld()
    wait_until(lambda: {x[1] for x in conflicts(a)} == {"small-good", "large-good"}, 30, what=lambda: describe([a, b]))
    wait_until(lambda: any(json.loads(x).get("key") == "small-bad" for x in b.repld.log().splitlines()
                           if "not shipped inline" in x), 30, what="B's repld refusing the damaged small loser")
    wait_until(lambda: metric(b, "comio_checksum_mismatches_total", path="get") - mismatches >= 4, 30,
               what="B's fetch endpoint refusing the damaged large loser to A")
    line = next(json.loads(x) for x in b.repld.log().splitlines() if "not shipped inline" in x)
    assert line["kept_loser"] == "true" and int(line["version"]) == lost["small-bad"][0], line
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        assert {x[1] for x in conflicts(a)} == {"small-good", "large-good"}, describe([a, b])
        for k in ("small-bad", "large-bad"):
            assert get_version(ac, k, *lost[k]).status == 404, k
        time.sleep(0.2)

    # A kept the good losers with checksums of its own: served verified, and refused once damaged there
    before = metric(a, "comio_checksum_blocks_verified_total")
    for k in ("small-good", "large-good"):
        r = get_version(ac, k, *lost[k])
        assert r.status == 200 and r.body == data[k], (k, r)
    assert metric(a, "comio_checksum_blocks_verified_total") - before == 1 + 4
    image = a.workdir / "store.img"
    damage(image, find_extent(image, data["large-good"]) + 3 * BLOCK + 5)  # the partial last block
    damage(image, find_extent(image, data["small-good"]) + 29_999)
    r = get_version(ac, "small-good", *lost["small-good"])
    assert r.status == 503 and r.json()["code"] == "DataDamaged", r
    # past the first window: the stream is cut short, every byte sent is right
    status, _, body, complete = stream_get(a.port, "/%s/large-good?version=%d&origin=%s" % ((BUCKET,) + lost["large-good"]))
    assert status == 200 and not complete and len(body) < len(data["large-good"]) and data["large-good"].startswith(body)
    for site in (a, b):
        assert metric(site, "comio_repair_attempted_total") == 0
