"""links.py - the fault tests' two kinds of link between the sites: plain, and zstd under a bandwidth limit.

A fault test parametrised with LINKS runs once as before ("plain") and once
with `compression: zstd` and a `bandwidth_limit` generous enough not to slow
it ("zstd"): the faults must not find a hole in the compressed or paced path
(docs/replication.md, Compression and Across a WAN). For the compressed run,
use_link() makes the recording workload's bodies compressible (hex text in
place of random bytes: about half the size under zstd), since random bytes
would be sent as is and test nothing of compression; check_link() then writes
a few more objects and checks, in repld's own figures, that they crossed
compressed and paced.
"""

import random

from . import recorder
from .replication import payload as random_payload
from .replication import wait_until

BANDWIDTH_LIMIT = "400Mbit"
BANDWIDTH_LIMIT_BYTES_PER_S = 50_000_000
LINKS = {
    "plain": {},
    "zstd": {"compression": "zstd", "bandwidth_limit": BANDWIDTH_LIMIT},
}


def text_payload(tag, size, rng=None):
    """As replication.payload (the tag, then pseudo-random filler), the filler hex digits: distinct bodies that
    zstd halves."""
    head = ("%s|" % tag).encode()
    if size <= len(head):
        return head[:size]
    rng = rng or random
    n = size - len(head)
    return head + rng.randbytes((n + 1) // 2).hex().encode()[:n]


def use_link(monkeypatch, link, repl):
    """The replication keys of `link` over `repl` (returned, repl unchanged); for "zstd", the recording
    workload's bodies become compressible for the rest of the test."""
    if link == "zstd":
        monkeypatch.setattr(recorder, "payload", text_payload)
    else:
        assert recorder.payload is random_payload
    return dict(repl, **LINKS[link])


def check_link(a, b, link, bucket="link-check", objects=20):
    """For "zstd": writes `objects` compressible objects to A, waits until B has them, and checks in repld's
    status that its batches are compressed (wire bytes clearly below payload bytes, no fallback) and paced at
    the limit. Returns the target's status (None for "plain")."""
    if link == "plain":
        return None
    rng = random.Random(4711)
    ca, cb = a.client(), b.client()
    try:
        data = {"k%02d" % i: text_payload("%s/k%02d" % (bucket, i), 8000, rng) for i in range(objects)}
        for k, v in data.items():
            assert ca.put(bucket, k, v).status == 200
        for k, v in data.items():
            wait_until(lambda: cb.get(bucket, k).body == v, 60, interval=0.1, what="%s/%s on B" % (bucket, k))
    finally:
        ca.close()
        cb.close()
    targets = a.repld_status()["targets"]
    assert len(targets) == 1, targets
    t = targets[0]
    assert t["compression"] == "zstd" and t["compression_fallback"] is False, t
    assert t["bandwidth_limit_bytes_per_s"] == BANDWIDTH_LIMIT_BYTES_PER_S, t
    assert 0 < t["wire_bytes"] < t["payload_bytes"] * 0.8, t
    return t
