"""test_crash_states.py - every crash state of a short traced workload: storaged starts and keeps what it acknowledged.

Issue 12's second mechanism (ALICE's model; docs/reliability.md, "Crash states
from a trace"). A storaged runs with its store image and LMDB directory on
forgetfs --trace, from an empty directory (so formatting is traced too), and
serves a short workload; the test writes a marker after each acknowledgement.
tests/powerloss/replay.py then rebuilds, for every persistence point, the states
a power cut could leave (the synced writes plus none, all, one file's, and
seeded random subsets of the unsynced ones, torn at 4 KiB), and storaged is
started on each state, in a plain directory, and checked:

- it starts (a refusal is a failure: LMDB in its default sync mode never
  makes an unrecoverable state);
- the site is exactly what the acknowledged operations made, or that plus the
  one operation in flight: every acknowledged PUT byte for byte (ETag and
  body), every DELETE and PURGE absent (else lost / resurrected); no body
  differs from its ETag or holds another object's bytes (torn);
- the store accounts for every extent: used bytes are the superblock and the
  present objects' extents, nothing more (leaked);
- it takes a new PUT and serves it back.

Two workloads: a local one (bucket, small PUTs cut from reserved chunks, a
PUT above the 1 MiB carve limit, an overwrite, a DELETE, a kill -9 and a
restart, a PURGE) and a replica's (batches POSTed as a primary's repld
would, with a marker after each 200: each batch must be applied whole or
not at all).

Bounded: every point, with COMIO_POWERLOSS_ROUNDS random subsets per point
(default 2; 1 when COMIO_START_TIMEOUT is raised, as under sanitizers).
A failing state is kept and printed with the trace, point and subset that
rebuild it (python3 tests/powerloss/replay.py TRACE BASE OUT --point I --subset S).
Skips only when this machine cannot mount forgetfs (not root, no /dev/fuse,
no forgetfs binary).
"""

import hashlib
import os
import shutil

import msgpack
import pytest

from harness import comio
from harness.comio import md5
from powerloss import replay

try:
    from harness import forgetfs
except ImportError:  # the FUSE side is not in this tree
    forgetfs = None

SIZE = "32MB"
ALLOC = 4096
TOKEN = "crash-state-accept-token-0123456789"
SEED = int(os.environ.get("COMIO_FAULT_SEED", "12"))


def rounds():
    if "COMIO_POWERLOSS_ROUNDS" in os.environ:
        return int(os.environ["COMIO_POWERLOSS_ROUNDS"])
    return 1 if float(os.environ.get("COMIO_START_TIMEOUT", "10")) > 10 else 2


def body(seed, size):
    """Deterministic bytes unique to (seed, size)."""
    out, block = bytearray(), hashlib.sha256(b"%d/%d" % (seed, size)).digest()
    while len(out) < size:
        out += block
        block = hashlib.sha256(block).digest()
    return bytes(out[:size])


def need_forgetfs():
    if forgetfs is None:
        pytest.skip("tests/harness/forgetfs.py is not in this tree")
    why = forgetfs.skip_reason()
    if why:
        pytest.skip(why)


# --- the model: what the acknowledged operations made ---------------------------------------


class Model:
    """The site as a sequence of operations made it: {(bucket, key): body}.
    ops are ("PUT", bucket, key, body), ("DELETE", bucket, key), ("PURGE", bucket),
    ("BUCKET", bucket) or ("BATCH", [ops]) (a replica's batch, applied whole)."""

    def __init__(self, ops):
        self.ops = ops

    def after(self, n):
        objects = {}
        for op in self.ops[:n]:
            for one in (op[1] if op[0] == "BATCH" else [op]):
                if one[0] == "PUT":
                    objects[(one[1], one[2])] = one[3]
                elif one[0] == "DELETE":
                    objects.pop((one[1], one[2]), None)
                elif one[0] == "PURGE":
                    for k in [k for k in objects if k[0] == one[1]]:
                        del objects[k]
        return objects

    def each(self):
        for op in self.ops:
            yield from (op[1] if op[0] == "BATCH" else [op])

    def keys(self):
        return sorted({(one[1], one[2]) for one in self.each() if one[0] in ("PUT", "DELETE")})

    def owners(self):
        """{body: (bucket, key)} of every PUT (bodies are unique)."""
        return {one[3]: (one[1], one[2]) for one in self.each() if one[0] == "PUT"}


def observe(client, keys, problems):
    """{(bucket, key): body} of the keys present; torn bodies are reported in problems and left out."""
    seen = {}
    for bucket, key in keys:
        r = client.get(bucket, key)
        if r.status == 404:
            continue
        if r.status != 200:
            problems.append(("torn", "GET %s/%s: %r" % (bucket, key, r)))
            continue
        etag = (r.header("ETag") or "").strip('"')
        if md5(r.body) != etag:
            problems.append(("torn", "%s/%s: body MD5 %s but ETag %s" % (bucket, key, md5(r.body), etag)))
            continue
        seen[(bucket, key)] = r.body
    return seen


def compare(seen, model, n, problems):
    """The site must be exactly the model after n or n + 1 operations (the one in flight)."""
    allowed = [model.after(n), model.after(n + 1)]
    if seen in allowed:
        return
    acked, next_ = allowed
    found = []
    owners = model.owners()
    for k in sorted(set(acked) | set(next_) | set(seen)):
        got, want, maybe = seen.get(k), acked.get(k), next_.get(k)
        if got in (want, maybe):
            continue
        if got is None:
            found.append(("lost", "%s/%s: acknowledged, absent" % k))
        elif want is None and maybe is None:
            found.append(("resurrected", "%s/%s: deleted or purged, present (%d bytes)" % (k[0], k[1], len(got))))
        elif owners.get(got, k) != k:
            found.append(("torn", "%s/%s holds the bytes of %s/%s" % (k[0], k[1], *owners[got])))
        else:
            found.append(("lost", "%s/%s: an older or unknown version (%d bytes)" % (k[0], k[1], len(got))))
    problems.extend(found)
    if not found:  # each key allowed, but not all from one moment: half an operation (a torn batch)
        problems.append(("torn", "a mix of the states before and after operation %d: %r" % (n, sorted(seen))))


def check_space(client, seen, problems):
    m = client.metrics()
    capacity, used = m.value("comio_store_capacity_bytes"), m.value("comio_store_used_bytes")
    free = m.value("comio_store_free_bytes")
    need = ALLOC + sum(-(-len(b) // ALLOC) * ALLOC for b in seen.values())
    if used != need or free + used != capacity:
        problems.append(("leaked", "used %d free %d capacity %d, but the objects need %d" % (used, free, capacity, need)))


def check_buckets(client, model, n, problems):
    for op in model.ops[:n]:
        if op[0] == "BUCKET" and client.list(op[1]).status != 200:
            problems.append(("lost", "bucket %s: acknowledged, absent" % op[1]))


def check_writable(client, problems):
    data = body(99, 70000)
    client.create_bucket("after-cut")
    r = client.put("after-cut", "probe", data)
    if r.status != 200 or client.get("after-cut", "probe").body != data:
        problems.append(("refused", "a PUT after the restart: %r" % (r,)))


# --- recording ----------------------------------------------------------------------------


class Traced:
    """A forgetfs --trace mount over an empty backing directory, a copy of which is the base."""

    def __init__(self, tmp_path):
        self.backing, self.mnt = tmp_path / "backing", tmp_path / "mnt"
        self.base, self.trace = tmp_path / "base", tmp_path / "trace"
        self.backing.mkdir()
        shutil.copytree(self.backing, self.base)
        self.fs = forgetfs.Forgetfs(self.backing, self.mnt, trace=self.trace, seed=SEED).start()

    def server(self, logs, **kw):
        srv = comio.Server(self.mnt / "site", size=SIZE, **kw)
        srv.log_path = logs / "recorded-storaged.log"  # the log stays off the traced files
        return srv.start()

    def ack(self, text):
        self.fs.mark("ack " + text)

    def finish(self, srv):
        try:
            problems = srv.finish() if srv is not None else []
        finally:
            self.fs.stop()
        assert not problems, problems


def record_local(tmp_path):
    """storaged serving a short workload; returns (Traced, Model)."""
    t = Traced(tmp_path)
    srv, ops = None, []
    try:
        srv = t.server(tmp_path)
        c = srv.client()

        def do(op, reply, mark):
            assert reply.status in (200, 204), (op[:3], reply)
            ops.append(op)
            t.ack(mark)

        for bucket in ("photos", "tmp"):
            do(("BUCKET", bucket), c.create_bucket(bucket), "BUCKET %s - -" % bucket)
        for key, data in (("small", body(1, 3000)), ("medium", body(2, 100000)), ("large", body(3, (1 << 20) + 5000)),
                          ("small", body(4, 5000)), ("t1", body(5, 9000))):
            bucket = "tmp" if key == "t1" else "photos"
            do(("PUT", bucket, key, data), c.put(bucket, key, data), "PUT %s %s %s" % (bucket, key, md5(data)))
        do(("DELETE", "photos", "medium"), c.delete("photos", "medium"), "DELETE photos medium -")
        srv.kill9()  # a process crash (no power cut): the restart reclaims the reservations, in the trace too
        srv.start()
        c = srv.client()
        do(("PURGE", "tmp"), c.purge("tmp"), "PURGE tmp - -")
        data = body(6, 4000)  # the size of the extent the overwrite of "small" freed: reuses it
        do(("PUT", "photos", "last", data), c.put("photos", "last", data), "PUT photos last %s" % md5(data))
    finally:
        t.finish(srv)  # a clean stop is traced too: it gives reservations back
    return t, Model(ops)


def log_record(seq, op, bucket, key=None, data=None):
    r = {"v": 1, "seq": seq, "op": {"PUT": 1, "DELETE": 2, "PURGE": 3}[op], "b": bucket, "mt": 1764000000000, "o": "site-a"}
    if key is not None:
        r["k"] = key
    if data is not None:
        r["sz"], r["et"] = len(data), hashlib.md5(data).digest()
    event = {"r": msgpack.packb(r, use_bin_type=True)}
    if data is not None:
        event["d"] = data
    return event


def record_replica(tmp_path):
    """A replica applying batches sent as a primary's repld would; returns (Traced, Model)."""
    batches = [
        [("PUT", "rep", "a", body(11, 2000)), ("PUT", "rep", "b", body(12, 150000)), ("PUT", "que", "c", body(13, 7000))],
        [("PUT", "rep", "a", body(14, 4000)), ("DELETE", "rep", "b"), ("PUT", "rep", "d", body(15, (1 << 20) + 100))],
        [("PURGE", "que"), ("PUT", "rep", "e", body(16, 30000)), ("DELETE", "rep", "d")],
    ]
    t = Traced(tmp_path)
    srv, ops, seq = None, [], 0
    try:
        srv = t.server(tmp_path, extra_args=["--accept-token", TOKEN])
        c = srv.client()
        for n, ops_of_batch in enumerate(batches):
            events = []
            for op in ops_of_batch:
                seq += 1
                events.append(log_record(seq, op[0], op[1], *op[2:]))
            payload = msgpack.packb({"v": 1, "src": "site-a", "ev": events}, use_bin_type=True)
            r = c.raw("POST", "/admin/replication/batch", payload,
                      {"Content-Type": "application/msgpack", "Authorization": "Bearer " + TOKEN})
            assert r.status == 200, r
            res = msgpack.unpackb(r.body, raw=False)["res"]
            assert [x["r"] for x in res] == [0] * len(events), res  # all applied
            ops.append(("BATCH", ops_of_batch))
            t.ack("BATCH %d - -" % n)
    finally:
        t.finish(srv)
    return t, Model(ops)


# --- replay and check ---------------------------------------------------------------------


def check_states(tmp_path, t, model, figures, extra_args=()):
    r = replay.Replayer(replay.Trace.load(t.trace), t.base, tmp_path / "scratch")
    keys = model.keys()
    k = rounds()
    counts = dict(states=0, lost=0, resurrected=0, torn=0, leaked=0, refused=0)
    failures = []
    for i in range(r.points()):
        n = sum(1 for text in r.markers(i) if text.startswith("ack "))
        for spec in r.subsets(i, k, seed=SEED):
            out = tmp_path / ("state-%d-%s" % (i, spec.replace(":", "-").replace("%", "_")))
            r.build(i, spec, out)
            counts["states"] += 1
            problems = check_one(out / "site", keys, model, n, extra_args)
            for kind, _ in problems:
                counts[kind] += 1
            if problems:
                failures.append("trace %s, point %d, subset %s, state kept in %s:\n  %s" %
                                (t.trace, i, spec, out, "\n  ".join("%s: %s" % p for p in problems)))
            else:
                shutil.rmtree(out)
    figures(points=r.points(), states=counts["states"], lost=counts["lost"], resurrected=counts["resurrected"],
            torn=counts["torn"], leaked=counts["leaked"], refused=counts["refused"], subsets_per_point=k)
    assert not failures, "%d of %d crash states fail (replay: python3 tests/powerloss/replay.py TRACE %s OUT " \
        "--point I --subset S):\n%s" % (len(failures), counts["states"], t.base, "\n".join(failures[:10]))


def check_one(workdir, keys, model, n, extra_args):
    """Starts storaged on one crash state and checks it; returns [(kind, text)]."""
    problems = []
    srv = comio.Server(workdir, size=SIZE, extra_args=extra_args)
    srv.log_path = workdir.parent / "storaged.log"  # outside the state, so that a kept state is as replayed
    try:
        srv.start()
    except AssertionError as e:
        return [("refused", str(e)[-1500:])]
    try:
        c = srv.client()
        seen = observe(c, keys, problems)
        compare(seen, model, n, problems)
        check_buckets(c, model, n, problems)
        check_space(c, seen, problems)
        check_writable(c, problems)
    finally:
        for p in srv.finish():
            problems.append(("refused", p[-1500:]))
    return problems


def test_crash_states_of_local_writes(tmp_path, figures):
    need_forgetfs()
    t, model = record_local(tmp_path)
    check_states(tmp_path, t, model, figures)


def test_crash_states_of_replica_batches(tmp_path, figures):
    need_forgetfs()
    t, model = record_replica(tmp_path)
    check_states(tmp_path, t, model, figures, extra_args=["--accept-token", TOKEN])


def test_a_format_cut_short_is_finished_at_start(make_server):
    """The state a power cut leaves between a new store's metadata commit and its
    superblock (the crash states above found the window, in the other order, which
    start-up must refuse): the metadata has the store id and no object, the store
    has no superblock. storaged writes the superblock instead of refusing."""
    srv = make_server()
    srv.stop()
    with open(srv.storage, "r+b") as f:
        f.write(bytes(ALLOC))
    srv.start()
    c = srv.client()
    assert c.create_bucket("fmt").status == 200 and c.put("fmt", "k", b"x" * 5000).status == 200
    srv.restart()
    assert srv.client().get("fmt", "k").body == b"x" * 5000


@pytest.mark.parametrize("torn", ["page0_only", "page1_only", "size_only", "page0_and_unsynced_data"])
def test_an_environment_torn_in_its_creation_is_created_again(make_server, torn):
    """LMDB writes a new environment's two meta pages with no sync: a power cut
    before the first commit's sync (the crash states found it, at point 0 with
    torn subsets) can keep one page and not the other. mdb_env_open refuses such
    a file for good (MDB_INVALID), and storaged never started again. It held no
    commit (the first commit's meta page is written after its data is synced),
    so storaged now creates it again; a file with a commit that LMDB refuses is
    still refused, untouched."""
    first = make_server()
    first.stop()
    meta_page = bytearray((first.storage.parent / "store.img.meta" / "data.mdb").read_bytes()[:ALLOC])
    meta_page[16 + 128:16 + 136] = bytes(8)  # transaction 0: what LMDB writes when it creates the file
    init, zero = bytes(meta_page), bytes(ALLOC)
    data = {"page0_only": init + zero, "page1_only": zero + init, "size_only": zero + zero,
            "page0_and_unsynced_data": init + zero + body(8, ALLOC)}[torn]
    srv = make_server(start=False)
    meta = srv.storage.parent / "store.img.meta"
    meta.mkdir(parents=True)
    (meta / "data.mdb").write_bytes(data)
    srv.start()
    assert "whose creation a crash cut short" in srv.log()
    c = srv.client()
    assert c.create_bucket("env").status == 200 and c.put("env", "k", b"y" * 3000).status == 200
    srv.restart()
    assert srv.client().get("env", "k").body == b"y" * 3000


@pytest.mark.parametrize("shape", ["junk", "a_commit_and_a_zero_page"])
def test_an_environment_lmdb_refuses_is_left_alone(make_server, shape):
    first = make_server()
    first.stop()
    committed = (first.storage.parent / "store.img.meta" / "data.mdb").read_bytes()
    srv = make_server(start=False)
    meta = srv.storage.parent / "store.img.meta"
    meta.mkdir(parents=True)
    data = body(7, 3 * ALLOC) if shape == "junk" else committed[:ALLOC] + bytes(ALLOC) + committed[2 * ALLOC:]
    (meta / "data.mdb").write_bytes(data)
    with pytest.raises(AssertionError, match="not an LMDB file"):
        srv.start()
    assert (meta / "data.mdb").read_bytes() == data


def test_the_checker_tells_lost_resurrected_and_torn_apart():
    a1, a2, b1, c1, d1 = (body(i, 10) for i in range(5))
    model = Model([("PUT", "bkt", "a", a1), ("PUT", "bkt", "b", b1), ("DELETE", "bkt", "b"), ("PUT", "bkt", "a", a2),
                   ("BATCH", [("PUT", "bkt", "c", c1), ("PUT", "bkt", "d", d1)])])

    def kinds(seen, n):
        problems = []
        compare(seen, model, n, problems)
        return sorted(kind for kind, _ in problems)

    assert kinds({("bkt", "a"): a1, ("bkt", "b"): b1}, 2) == []  # the DELETE in flight
    assert kinds({("bkt", "a"): a1}, 2) == []
    assert kinds({}, 2) == ["lost"]
    assert kinds({("bkt", "a"): a1, ("bkt", "b"): b1}, 3) == ["resurrected"]
    assert kinds({("bkt", "a"): a1}, 4) == ["lost"]  # an older version
    assert kinds({("bkt", "a"): b1}, 4) == ["torn"]  # another object's bytes
    assert kinds({("bkt", "a"): a2, ("bkt", "c"): c1, ("bkt", "d"): d1}, 4) == []  # the batch whole
    assert kinds({("bkt", "a"): a2, ("bkt", "c"): c1}, 4) == ["torn"]  # half a batch
