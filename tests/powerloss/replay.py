#!/usr/bin/env python3
"""replay.py - crash states from a forgetfs trace, in ALICE's model (reordered and torn unsynced writes).

A trace (forgetfs --trace; docs/reliability.md, "Crash states from a trace")
is one record a line:

    W <path> <offset> <len> <hex data>    a write, not yet durable
    T <path> <size>                       a size change
    S <path>                              fsync/fdatasync: the path's writes so far are durable
    N <op> <path> [<path2>]               create, unlink, rename, mkdir, rmdir, link: durable at once
    M <text>                              a marker written by the test ("ack PUT bucket key etag")

Paths are relative to the mount and percent-encoded. Persistence point i
(0 <= i <= number of S records) is a power cut after the first i S records took
effect and before the next one: at any instant of that stretch of the trace.
Its states are the base directory (a copy of the backing directory taken before
tracing began) plus every N and T in order, every W made durable by the first i
S records, plus a *subset* of the writes made before the next S record that no
S had made durable yet:

    none          no unsynced write reached the disk
    all           every unsynced write did
    only:<path>   every unsynced write of that file (percent-encoded path), none of the others
    even, odd     each unsynced write split at 4 KiB file-offset boundaries, the pieces on
                  even (odd) pages of their file kept: a torn write, deterministically
    seed:<N>      each unsynced write split at 4 KiB file-offset boundaries, each piece kept
                  or dropped at random (random.Random(N)), independently in every file

The kept writes are applied in trace order after the durable ones (a later
write over the same bytes wins), together with the file's unsynced truncations,
so that "all" is exactly what a program read back before the cut. Files that
forgetfs writes through (lock.mdb, *.lock, *.sock, *.wake) are durable at once.

Library:

    trace = Trace.load(path)                     parse (ValueError names the line)
    r = Replayer(trace, base_dir, scratch_dir)   scratch_dir holds the durable state as it advances
    r.points()                                   number of persistence points
    r.pending(i)                                 {path: [ops]} not durable at point i
    r.markers(i)                                 marker texts written before point i ends (before the next S):
                                                 what a cut anywhere in the stretch must keep
    r.subsets(i, k, seed)                        the subset specs to check at i: none, all, only:..., k seeds
    r.build(i, spec, out_dir)                    writes the state into out_dir (created; must not exist)

Command line (one state, or a listing of the points):

    python3 tests/powerloss/replay.py TRACE BASE_DIR OUT_DIR --point I --subset SPEC
    python3 tests/powerloss/replay.py TRACE BASE_DIR --list

Only the standard library is used; paths on disk are bytes, so any name replays.
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

PAGE = 4096


def decode_path(text):
    """A percent-encoded trace path as bytes relative to the mount; refuses absolute paths and '..'."""
    raw = urllib.parse.unquote_to_bytes(text)
    parts = raw.split(b"/")
    if raw.startswith(b"/") or not raw or b".." in parts or b"" in parts:
        raise ValueError("bad path %r" % text)
    return raw


def encode_path(raw):
    return urllib.parse.quote_from_bytes(raw, safe="")


def write_through(path):
    """forgetfs writes these through at once (their durability does not matter)."""
    name = path.rsplit(b"/", 1)[-1]
    return name == b"lock.mdb" or name.endswith((b".lock", b".sock", b".wake"))


class Trace:
    """The parsed records: ("W", path, off, data), ("T", path, size), ("S", path),
    ("N", op, path, path2 or None), ("M", text). Paths are bytes; text is str."""

    def __init__(self, records, name="<trace>"):
        self.records = records
        self.name = name
        self.sync_at = [i for i, r in enumerate(records) if r[0] == "S"]

    @classmethod
    def load(cls, path):
        with open(path, "rb") as f:
            return cls.parse(f, str(path))

    @classmethod
    def parse(cls, lines, name="<trace>"):
        """Parses an iterable of lines (bytes or str)."""
        records = []
        for n, line in enumerate(lines, 1):
            if isinstance(line, bytes):
                line = line.decode("utf-8", "surrogateescape")
            line = line.rstrip("\r\n")
            if not line:
                continue
            try:
                records.append(cls._record(line))
            except (ValueError, IndexError) as e:
                raise ValueError("%s:%d: %s: %r" % (name, n, e, line[:120])) from None
        return cls(records, name)

    @staticmethod
    def _record(line):
        kind, _, rest = line.partition(" ")
        if kind == "M":
            return ("M", rest)
        f = rest.split(" ")
        if kind == "W":
            if len(f) not in (3, 4):
                raise ValueError("a write needs path, offset, length and data")
            off, length = int(f[1]), int(f[2])
            data = bytes.fromhex(f[3]) if len(f) == 4 else b""
            if off < 0 or length != len(data):
                raise ValueError("length %d but %d bytes of data" % (length, len(data)))
            return ("W", decode_path(f[0]), off, data)
        if kind == "T" and len(f) == 2:
            size = int(f[1])
            if size < 0:
                raise ValueError("negative size")
            return ("T", decode_path(f[0]), size)
        if kind == "S" and len(f) == 1:
            return ("S", decode_path(f[0]))
        if kind == "N" and len(f) in (2, 3):
            return ("N", f[0], decode_path(f[1]), decode_path(f[2]) if len(f) == 3 else None)
        raise ValueError("unknown record or wrong field count")


def _open_for_write(root, path):
    """Opens (creating) a file of the state; a directory the trace did not record is made
    (one created before tracing began, through the mount, by the test itself)."""
    full = os.path.join(root, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    return os.open(full, os.O_WRONLY | os.O_CREAT, 0o600)


def _apply_write(root, path, off, data):
    fd = _open_for_write(root, path)
    try:
        view = memoryview(data)
        while view:
            n = os.pwrite(fd, view, off)
            view, off = view[n:], off + n
    finally:
        os.close(fd)


def _apply_truncate(root, path, size):
    fd = _open_for_write(root, path)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


def _apply(root, op):
    if op[0] == "W":
        _apply_write(root, op[1], op[2], op[3])
    else:
        _apply_truncate(root, op[1], op[2])


def _namespace(root, op, path, path2):
    full = os.path.join(root, path)
    if op in ("create", "mknod"):
        os.close(_open_for_write(root, path))
    elif op == "mkdir":
        os.makedirs(full, exist_ok=True)
    elif op == "unlink":
        if os.path.lexists(full):
            os.unlink(full)
    elif op == "rmdir":
        if os.path.isdir(full):
            os.rmdir(full)
    elif op == "rename":
        os.makedirs(os.path.dirname(os.path.join(root, path2)), exist_ok=True)
        os.replace(full, os.path.join(root, path2))
    elif op == "link":
        os.link(full, os.path.join(root, path2))
    elif op == "symlink":  # N symlink <target> <link>: the target is kept as written
        os.symlink(path, os.path.join(root, path2))
    elif op == "chmod":
        pass  # modes do not matter to a crash state
    else:
        raise ValueError("unknown namespace op %r" % op)


def copy_tree(src, dst):
    """Copies a directory keeping holes (store images are sparse)."""
    subprocess.run(["cp", "-a", "--sparse=always", "--", os.fsencode(src), os.fsencode(dst)], check=True)


def pieces(op):
    """A write split at 4 KiB boundaries of the file offset: [(off, data), ...]."""
    _, _, off, data = op
    out, pos = [], 0
    while pos < len(data):
        end = min(len(data), (off + pos) // PAGE * PAGE + PAGE - off)
        out.append((off + pos, data[pos:end]))
        pos = end
    return out


class Replayer:
    """Builds crash states of one trace. The durable state advances in scratch_dir
    (created when missing) as points are built in increasing order; building an
    earlier point starts again from base_dir."""

    def __init__(self, trace, base_dir, scratch_dir):
        self.trace = trace
        self.base = os.fsencode(base_dir)
        self.scratch = os.fsencode(scratch_dir)
        self.durable = os.path.join(self.scratch, b"durable")
        self.pos = None  # records [0, pos) are applied to self.durable
        self.unsynced = {}  # path -> ops (W, T) not yet durable, in trace order

    def points(self):
        return len(self.trace.sync_at) + 1

    def position(self, i):
        """The record index where point i ends: its next S record, or the end of the trace."""
        if not 0 <= i < self.points():
            raise IndexError("point %d out of range: the trace has %d persistence points" % (i, self.points()))
        return self.trace.sync_at[i] if i < len(self.trace.sync_at) else len(self.trace.records)

    def markers(self, i):
        return [r[1] for r in self.trace.records[:self.position(i)] if r[0] == "M"]

    def _advance(self, end):
        if self.pos is None or self.pos > end:
            if os.path.lexists(self.durable):
                shutil.rmtree(self.durable)
            os.makedirs(self.scratch, exist_ok=True)
            copy_tree(self.base, self.durable)
            self.pos, self.unsynced = 0, {}
        for r in self.trace.records[self.pos:end]:
            kind = r[0]
            if kind == "W" and write_through(r[1]):
                _apply(self.durable, r)
            elif kind == "W":
                self.unsynced.setdefault(r[1], []).append(r)
            elif kind == "T":
                _apply(self.durable, r)  # the size is durable at once; replayed again with the unsynced writes
                if not write_through(r[1]):
                    self.unsynced.setdefault(r[1], []).append(r)
            elif kind == "S":
                for op in self.unsynced.pop(r[1], []):
                    _apply(self.durable, op)
            elif kind == "N":
                _, op, path, path2 = r
                _namespace(self.durable, op, path, path2)
                if op == "unlink":
                    self.unsynced.pop(path, None)
                elif op == "rename" and path in self.unsynced:
                    self.unsynced[path2] = [(o[0], path2) + o[2:] for o in self.unsynced.pop(path)]
        self.pos = end

    def pending(self, i):
        """{path: [ops]}: the writes and truncations made before point i ends and not durable in it."""
        self._advance(self.position(i))
        return {p: list(ops) for p, ops in self.unsynced.items() if any(op[0] == "W" for op in ops)}

    def subsets(self, i, k, seed=0):
        """The specs worth checking at point i: none, all (when something is pending),
        only:<path> for each of two or more files with pending writes, even and odd
        (when a pending write spans pages), and k seeds."""
        pend = self.pending(i)
        if not pend:
            return ["none"]
        specs = ["none", "all"]
        if len(pend) > 1:
            specs += ["only:" + encode_path(p) for p in sorted(pend)]
        if any(len(pieces(op)) > 1 for ops in pend.values() for op in ops if op[0] == "W"):
            specs += ["even", "odd"]
        rng = random.Random("%s/%d/%d" % (seed, i, k))
        specs += ["seed:%d" % rng.randrange(1 << 31) for _ in range(k)]
        return specs

    def choose(self, i, spec):
        """{path: [ops to apply]} for one subset spec at point i."""
        pend = self.pending(i)
        if spec == "none":
            return {}
        if spec == "all":
            return pend
        if spec.startswith("only:"):
            path = decode_path(spec[5:])
            return {path: pend[path]} if path in pend else {}
        if spec in ("even", "odd") or spec.startswith("seed:"):
            rng = random.Random(int(spec[5:])) if spec.startswith("seed:") else None
            parity = 0 if spec == "even" else 1
            chosen = {}
            for path in sorted(pend):
                ops = []
                for op in pend[path]:
                    if op[0] == "T":
                        ops.append(op)
                        continue
                    for off, data in pieces(op):
                        if (rng.random() < 0.5) if rng is not None else (off // PAGE % 2 == parity):
                            ops.append(("W", path, off, data))
                chosen[path] = ops
            return chosen
        raise ValueError("unknown subset %r (none, all, only:<path>, even, odd, seed:<N>)" % spec)

    def build(self, i, spec, out_dir):
        """Writes the crash state of point i under subset spec into out_dir (must not exist).
        Returns a short description: how many unsynced bytes were kept and dropped."""
        chosen = self.choose(i, spec)
        pend = self.pending(i)
        out = os.fsencode(out_dir)
        copy_tree(self.durable, out)
        for path, ops in chosen.items():
            for op in ops:
                _apply(out, op)
        total = sum(len(op[3]) for ops in pend.values() for op in ops if op[0] == "W")
        kept = sum(len(op[3]) for ops in chosen.values() for op in ops if op[0] == "W")
        return "point %d subset %s: kept %d of %d unsynced bytes in %d file(s)" % (i, spec, kept, total, len(pend))


def main(argv=None):
    ap = argparse.ArgumentParser(description="Builds one crash state of a forgetfs trace (ALICE's model).")
    ap.add_argument("trace")
    ap.add_argument("base_dir", nargs="?", help="the backing directory as it was before tracing began")
    ap.add_argument("out_dir", nargs="?", help="where the state is written (must not exist)")
    ap.add_argument("--point", type=int, help="persistence point: a cut after that many S records (0 = before the first)")
    ap.add_argument("--subset", default="none", help="none, all, only:<path>, even, odd or seed:<N> (default none)")
    ap.add_argument("--list", action="store_true", help="list the persistence points, markers and pending writes")
    ap.add_argument("--rounds", type=int, default=3, help="with --list: random subsets listed per point")
    args = ap.parse_args(argv)
    trace = Trace.load(args.trace)
    if args.base_dir is None or (not args.list and (args.out_dir is None or args.point is None)):
        ap.error("TRACE BASE_DIR OUT_DIR --point I are needed (or TRACE BASE_DIR --list)")
    if args.list:
        with tempfile.TemporaryDirectory() as tmp:
            r = Replayer(trace, args.base_dir, tmp)
            for i in range(r.points()):
                pend = r.pending(i)
                desc = ", ".join("%s:%d" % (p.decode("utf-8", "replace"), len(ops)) for p, ops in sorted(pend.items()))
                print("point %d (ends at record %d, %d markers before): pending %s; subsets %s" %
                      (i, r.position(i), len(r.markers(i)), desc or "nothing", " ".join(r.subsets(i, args.rounds))))
        return 0
    if os.path.lexists(args.out_dir):
        ap.error("%s exists: the state is written into a new directory" % args.out_dir)
    scratch = args.out_dir.rstrip("/") + ".scratch"
    r = Replayer(trace, args.base_dir, scratch)
    try:
        print(r.build(args.point, args.subset, args.out_dir))
        for text in r.markers(args.point):
            print("acknowledged before the point: " + text)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
