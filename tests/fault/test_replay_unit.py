"""test_replay_unit.py - the crash-state replayer (tests/powerloss/replay.py) on traces written by hand.

No FUSE and no daemon: each test writes a small trace in forgetfs's format,
a base directory, and checks the files of the states the replayer builds:
persistence points, none/all/only/seeded subsets, 4 KiB splitting of torn
writes, truncations, namespace operations, write-through files, markers and
percent-encoded paths. These always run.
"""

import os
import subprocess
import sys

import pytest

from powerloss import replay

REPLAY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "powerloss", "replay.py")


def w(path, off, data):
    return "W %s %d %d %s" % (path, off, len(data), data.hex())


def make(tmp_path, lines, base_files=None):
    base = tmp_path / "base"
    base.mkdir()
    for name, data in (base_files or {}).items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_bytes(data)
    trace = replay.Trace.parse([line + "\n" for line in lines])
    return replay.Replayer(trace, base, tmp_path / "scratch")


def state(r, tmp_path, i, spec):
    out = tmp_path / ("state-%d-%s" % (i, spec.replace(":", "_").replace("%", "_")))
    r.build(i, spec, out)
    return out


def test_points_are_the_stretches_between_sync_records(tmp_path):
    r = make(tmp_path, [
        "N create a",
        w("a", 0, b"one"),
        "S a",
        w("a", 3, b"two"),
        "M ack PUT b k 123",
        "S a",
        w("a", 0, b"XXX"),
    ], {"keep": b"base"})
    assert r.points() == 3  # before the first S, after it, after the second
    s0 = state(r, tmp_path, 0, "none")
    assert (s0 / "a").read_bytes() == b"" and (s0 / "keep").read_bytes() == b"base"
    assert (state(r, tmp_path, 0, "all") / "a").read_bytes() == b"one"
    assert r.markers(0) == []
    assert (state(r, tmp_path, 1, "none") / "a").read_bytes() == b"one"
    assert r.pending(1) == {b"a": [("W", b"a", 3, b"two")]}
    assert (state(r, tmp_path, 1, "all") / "a").read_bytes() == b"onetwo"
    assert r.markers(1) == ["ack PUT b k 123"]  # written before the stretch ends: a cut there must keep it
    assert (state(r, tmp_path, 2, "none") / "a").read_bytes() == b"onetwo"
    assert (state(r, tmp_path, 2, "all") / "a").read_bytes() == b"XXXtwo"
    assert r.subsets(2, 3, seed=1)[:2] == ["none", "all"] and len(r.subsets(2, 3, seed=1)) == 5  # no write spans pages


def test_points_may_be_built_in_any_order(tmp_path):
    r = make(tmp_path, ["N create a", w("a", 0, b"1"), "S a", w("a", 0, b"2"), "S a", w("a", 0, b"3"), "S a"])
    assert [(state(r, tmp_path, i, "none") / "a").read_bytes() for i in (3, 1, 2)] == [b"3", b"1", b"2"]
    assert r.subsets(3, 5) == ["none"]  # nothing pending: one state


def test_a_sync_persists_only_its_own_file(tmp_path):
    r = make(tmp_path, ["N create a", "N create b", w("a", 0, b"aa"), w("b", 0, b"bb"), "S b"])
    s = state(r, tmp_path, 1, "none")
    assert (s / "a").read_bytes() == b"" and (s / "b").read_bytes() == b"bb"
    assert list(r.pending(1)) == [b"a"]


def test_only_subsets_reorder_writes_between_files(tmp_path):
    r = make(tmp_path, ["N create a", "N create b", w("a", 0, b"aa"), w("b", 0, b"bb")])
    assert r.points() == 1
    specs = r.subsets(0, 2, seed=7)
    assert specs[:4] == ["none", "all", "only:a", "only:b"] and len(specs) == 6
    assert specs == r.subsets(0, 2, seed=7)  # reproducible
    s = state(r, tmp_path, 0, "only:b")
    assert (s / "a").read_bytes() == b"" and (s / "b").read_bytes() == b"bb"


def test_seeded_subsets_tear_writes_at_4k_boundaries_and_are_reproducible(tmp_path):
    data = bytes([1]) * 4000 + bytes([2]) * 4096 + bytes([3]) * 4096 + bytes([4]) * 100
    r = make(tmp_path, ["N create f", w("f", 96, data)])
    assert [len(d) for _, d in replay.pieces(("W", b"f", 96, data))] == [4000, 4096, 4096, 100]
    assert [o for o, _ in replay.pieces(("W", b"f", 96, data))] == [96, 4096, 8192, 12288]
    seen = set()
    for seed in range(40):
        out = state(r, tmp_path, 0, "seed:%d" % seed)
        got = (out / "f").read_bytes()
        again = tmp_path / ("again-%d" % seed)
        r.build(0, "seed:%d" % seed, again)
        assert (again / "f").read_bytes() == got
        got = got.ljust(96 + len(data), b"\0")
        kept = tuple(got[o] != 0 for o in (96, 4096, 8192, 12288))
        for o, d in replay.pieces(("W", b"f", 96, data)):  # each page whole or absent
            assert got[o:o + len(d)] in (d, bytes(len(d))), (seed, o)
        seen.add(kept)
    assert len(seen) > 8  # the subsets vary (16 possible)
    assert r.subsets(0, 1)[:4] == ["none", "all", "even", "odd"]
    even = (state(r, tmp_path, 0, "even") / "f").read_bytes()
    assert even[96:4096] == data[:4000] and even[4096:8192] == bytes(4096) and even[8192:12288] == data[8096:12192]
    odd = (state(r, tmp_path, 0, "odd") / "f").read_bytes()
    assert odd[:8192] == bytes(4096) + data[4000:8096] and odd[8192:12288] == bytes(4096)
    assert odd[12288:] == data[12192:]


def test_unsynced_truncate_is_replayed_after_the_kept_writes(tmp_path):
    r = make(tmp_path, ["N create f", w("f", 0, b"x" * 8192), "T f 4096"])
    assert (state(r, tmp_path, 0, "all") / "f").read_bytes() == b"x" * 4096
    assert (state(r, tmp_path, 0, "none") / "f").read_bytes() == b"\0" * 4096  # the size is durable at once


def test_namespace_ops_are_durable_at_once_and_move_pending_writes(tmp_path):
    r = make(tmp_path, [
        "N mkdir d",
        "N create d/tmp",
        w("d/tmp", 0, b"new"),
        "N rename d/tmp d/final",
        "N create gone",
        w("gone", 0, b"lost"),
        "N unlink gone",
        "N unlink old",
        "N mkdir e",
        "N rmdir e",
        "S d/final",
    ], {"old": b"x"})
    s = state(r, tmp_path, 0, "all")
    assert sorted(os.listdir(s)) == ["d"] and (s / "d" / "final").read_bytes() == b"new"
    assert r.pending(0) == {b"d/final": [("W", b"d/final", 0, b"new")]}
    assert sorted(os.listdir(state(r, tmp_path, 1, "none"))) == ["d"]
    assert (tmp_path / "state-1-none" / "d" / "final").read_bytes() == b"new"


def test_write_through_files_are_durable_at_once(tmp_path):
    r = make(tmp_path, ["N create lock.mdb", w("lock.mdb", 0, b"L"), "N create x.sock", w("x.sock", 0, b"S"),
                        "N create data.mdb", w("data.mdb", 0, b"D")])
    s = state(r, tmp_path, 0, "none")
    assert (s / "lock.mdb").read_bytes() == b"L" and (s / "x.sock").read_bytes() == b"S"
    assert (s / "data.mdb").read_bytes() == b""
    assert list(r.pending(0)) == [b"data.mdb"]


def test_percent_encoded_paths_and_markers_with_spaces(tmp_path):
    r = make(tmp_path, ["N create a%20b%25", w("a%20b%25", 0, b"\xff\x00"), "M ack PUT bk k%20x 0a1b  two spaces",
                        "S a%20b%25", "N create %C3%A9%0A", "S %C3%A9%0A"])
    s = state(r, tmp_path, 1, "none")
    assert (s / "a b%").read_bytes() == b"\xff\x00"
    assert r.markers(0) == ["ack PUT bk k%20x 0a1b  two spaces"]
    state(r, tmp_path, 2, "none")
    assert os.path.exists(os.path.join(os.fsencode(tmp_path / "state-2-none"), "é\n".encode()))


@pytest.mark.parametrize("line", [
    "W a 0 3 6162",  # length and data disagree
    "W a 0 2 zz",  # not hex
    "W /etc/passwd 0 1 61",  # absolute
    "W a/../../x 0 1 61",  # escapes the state
    "S",  # no path
    "Q a",  # unknown record
    "T a -1",
])
def test_malformed_records_are_refused_with_the_line(line):
    with pytest.raises(ValueError, match=r"<trace>:2: "):
        replay.Trace.parse(["M ok\n", line + "\n"])


def test_unknown_subset_and_point_out_of_range(tmp_path):
    r = make(tmp_path, ["N create a", "S a"])
    with pytest.raises(ValueError, match="unknown subset"):
        r.build(0, "some", tmp_path / "x")
    with pytest.raises(IndexError, match="2 persistence points"):
        r.pending(2)


def test_command_line_builds_one_state_and_lists_points(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    trace = tmp_path / "trace"
    trace.write_text("\n".join(["N create f", w("f", 0, b"abc"), "M ack PUT b k e", "S f", w("f", 0, b"Z"),
                                "N create g", "S g"]) + "\n")
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, REPLAY, str(trace), str(base), str(out), "--point", "1", "--subset", "all"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert (out / "f").read_bytes() == b"Zbc"
    assert "kept 1 of 1 unsynced bytes" in p.stdout and "acknowledged before the point: ack PUT b k e" in p.stdout
    assert not (tmp_path / "out.scratch").exists()
    p = subprocess.run([sys.executable, REPLAY, str(trace), str(base), "--list"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("point 0 (ends at record 3, 1 markers before): pending f:1; subsets none all seed:")
    assert lines[1].startswith("point 1 (ends at record 6, 1 markers before): pending f:1; subsets none all seed:")
    assert lines[2].startswith("point 2 (ends at record 7, 1 markers before): pending f:1; subsets none all seed:")
    assert len(lines) == 3


def test_a_directory_the_trace_did_not_record_is_made(tmp_path):
    r = make(tmp_path, ["N create site/meta/data.mdb", w("site/meta/data.mdb", 0, b"d"), "S site/meta/data.mdb",
                        "N rename site/meta/data.mdb other/data.mdb"])
    assert (state(r, tmp_path, 1, "none") / "other" / "data.mdb").read_bytes() == b"d"
