"""test_forgetfs.py - forgetfs itself: what a power cut keeps is exactly what was synced.

forgetfs (tests/powerloss/forgetfs.c) is the ground the power-loss tests
stand on, so it is checked on its own first: after a cut and a remount,
exactly the synced bytes are there (fsync, fdatasync, O_DSYNC writes, sizes
set by truncate); a torn cut keeps a subset of the unsynced writes at 4 KiB
pages and nothing else; the mount shows unsynced writes to read() and to an
mmap; a file unlinked with unsynced data takes it along; the trace holds the
records the trace replayer reads. Skipped only where FUSE cannot be mounted.
"""

import mmap
import os
import re
import threading

import pytest

from harness.forgetfs import Forgetfs, skip_reason

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

PAGE = 4096


@pytest.fixture
def ffs(tmp_path):
    """ffs(**kw) -> a started Forgetfs on tmp_path/backing at tmp_path/mnt; always stopped."""
    made = []

    def make(**kw):
        fs = Forgetfs(tmp_path / "backing", tmp_path / "mnt", **kw).start()
        made.append(fs)
        return fs

    yield make
    for fs in made:
        fs.close()


def write_file(path, data, sync=False, flags=0):
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | flags, 0o644)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def remount(fs, torn=False):
    report = fs.cut(torn=torn)
    fs.start()
    return report


def test_cut_keeps_exactly_the_synced_bytes(ffs):
    fs = ffs()
    m = fs.mountpoint
    write_file(m / "synced", b"durable", sync=True)
    write_file(m / "unsynced", b"lost")
    fd = os.open(m / "half", os.O_CREAT | os.O_RDWR, 0o644)
    os.write(fd, b"first part|")
    os.fdatasync(fd)
    os.write(fd, b"second part")
    os.close(fd)
    fd = os.open(m / "grown", os.O_CREAT | os.O_RDWR, 0o644)
    os.write(fd, b"x" * 10)
    os.fsync(fd)
    os.pwrite(fd, b"y", 1 << 20)  # growth by a write is unsynced too
    os.close(fd)
    assert (m / "half").read_bytes() == b"first part|second part"
    assert os.stat(m / "grown").st_size == (1 << 20) + 1
    assert (fs.backing / "unsynced").read_bytes() == b""  # the name is durable at once, the bytes are not

    remount(fs)
    assert (m / "synced").read_bytes() == b"durable"
    assert (m / "unsynced").read_bytes() == b""
    assert (m / "half").read_bytes() == b"first part|"
    assert (m / "grown").read_bytes() == b"x" * 10


def test_o_dsync_and_o_sync_writes_survive(ffs):
    fs = ffs()
    m = fs.mountpoint
    write_file(m / "dsync", b"written O_DSYNC", flags=os.O_DSYNC)
    write_file(m / "sync", b"written O_SYNC", flags=os.O_SYNC)
    fd = os.open(m / "meta", os.O_CREAT | os.O_RDWR, 0o644)  # LMDB's two descriptors of one file
    mfd = os.open(m / "meta", os.O_WRONLY | os.O_DSYNC)
    os.pwrite(fd, b"D" * PAGE, PAGE)  # data page, unsynced
    os.pwrite(mfd, b"M" * 16, 0)  # meta page, O_DSYNC
    os.close(mfd)
    os.close(fd)
    remount(fs)
    assert (m / "dsync").read_bytes() == b"written O_DSYNC"
    assert (m / "sync").read_bytes() == b"written O_SYNC"
    # an O_DSYNC write makes its whole file durable here (stricter than a disk; never looser)
    assert (m / "meta").read_bytes() == b"M" * 16 + b"\0" * (PAGE - 16) + b"D" * PAGE


def test_close_syncs_nothing(ffs):
    """A process that dies closes its files, an O_DSYNC one included: that makes nothing durable
    (LMDB keeps its meta page's O_DSYNC descriptor open beside the one it writes data pages with)."""
    fs = ffs()
    m = fs.mountpoint
    write_file(m / "data.mdb", b"\0" * PAGE, sync=True)
    fd = os.open(m / "data.mdb", os.O_RDWR)
    mfd = os.open(m / "data.mdb", os.O_WRONLY | os.O_DSYNC)
    os.pwrite(fd, b"D" * PAGE, 0)  # a data page of a commit the process dies in
    os.close(mfd)
    os.close(fd)
    remount(fs)
    assert (m / "data.mdb").read_bytes() == b"\0" * PAGE


def test_truncate_is_unsynced_until_fsync(ffs):
    fs = ffs()
    m = fs.mountpoint
    write_file(m / "shrunk", b"0123456789", sync=True)
    write_file(m / "kept", b"0123456789", sync=True)
    os.truncate(m / "shrunk", 4)
    fd = os.open(m / "kept", os.O_RDWR)
    os.ftruncate(fd, 3)
    os.fsync(fd)
    os.ftruncate(fd, 8)  # grows again with zeros, unsynced
    assert os.pread(fd, 100, 0) == b"012\0\0\0\0\0"
    os.close(fd)
    assert (m / "shrunk").read_bytes() == b"0123"
    remount(fs)
    assert (m / "shrunk").read_bytes() == b"0123456789"
    assert (m / "kept").read_bytes() == b"012"


def test_torn_cut_keeps_a_subset_of_pages(ffs):
    pages = 64
    fs = ffs(seed=12345)
    m = fs.mountpoint
    old = b"".join(bytes([i]) * PAGE for i in range(pages))
    new = b"".join(bytes([128 + i]) * PAGE for i in range(pages))
    write_file(m / "f", old, sync=True)
    fd = os.open(m / "f", os.O_RDWR)
    os.pwrite(fd, new[:PAGE * 40], 0)  # one write over 40 pages
    os.pwrite(fd, new[PAGE * 40 + 100:], PAGE * 40 + 100)  # one not aligned at its start
    os.close(fd)
    write_file(m / "g", b"g" * (3 * PAGE))  # a new file, nothing synced
    report = remount(fs, torn=True)
    assert report is not None and re.search(r"\d+ pages kept, \d+ dropped", report), fs.output()
    got = (m / "f").read_bytes()
    assert len(got) == len(old)
    kept = dropped = 0
    for i in range(pages):
        page = got[i * PAGE:(i + 1) * PAGE]
        if i == 40:  # split at the write's start: its first 100 bytes are always the old ones
            assert page[:100] == old[i * PAGE:i * PAGE + 100]
            assert page[100:] in (old[i * PAGE + 100:(i + 1) * PAGE], new[i * PAGE + 100:(i + 1) * PAGE]), i
            continue
        if page == new[i * PAGE:(i + 1) * PAGE]:
            kept += 1
        else:
            assert page == old[i * PAGE:(i + 1) * PAGE], "page %d is neither the old nor the new bytes" % i
            dropped += 1
    print("torn cut: %d pages kept, %d dropped; %s" % (kept, dropped, report))
    assert kept > 0 and dropped > 0, "seed 12345 should keep some pages and drop others"
    g = (m / "g").read_bytes()
    assert len(g) in (0, PAGE, 2 * PAGE, 3 * PAGE) and set(g) <= {ord("g"), 0}, len(g)


def test_torn_cut_is_replayed_by_its_seed(tmp_path):
    """The same writes and the same --seed keep the same pages."""
    results = []
    for run in range(2):
        fs = Forgetfs(tmp_path / ("b%d" % run), tmp_path / ("m%d" % run), seed=99).start()
        try:
            write_file(fs.mountpoint / "f", bytes(range(256)) * 64)
            fs.cut(torn=True)
        finally:
            fs.close()
        results.append((fs.backing / "f").read_bytes())
    assert results[0] == results[1]


def test_reads_and_mmap_see_unsynced_writes(ffs):
    fs = ffs()
    m = fs.mountpoint
    write_file(m / "f", b"A" * (2 * PAGE), sync=True)
    fd = os.open(m / "f", os.O_RDWR)
    os.pwrite(fd, b"B" * 10, PAGE - 5)  # across a page boundary
    os.pwrite(fd, b"C" * 3, 3 * PAGE)  # past the end: a hole of zeros, then C
    os.truncate(m / "f", 3 * PAGE + 2)
    want = b"A" * (PAGE - 5) + b"B" * 10 + b"A" * (PAGE - 5) + b"\0" * PAGE + b"CC"
    assert os.pread(fd, 5 * PAGE, 0) == want
    rfd = os.open(m / "f", os.O_RDONLY)  # another process's view: through the page cache and mmap
    with mmap.mmap(rfd, len(want), prot=mmap.PROT_READ) as mm:
        assert mm[:] == want
    os.close(rfd)
    os.close(fd)
    assert (fs.backing / "f").read_bytes() == b"A" * (2 * PAGE)


def test_unlink_drops_unsynced_data_and_rename_keeps_it(ffs):
    fs = ffs()
    m = fs.mountpoint
    write_file(m / "gone", b"unsynced")
    os.unlink(m / "gone")
    write_file(m / "moved", b"unsynced, then synced under its new name")
    os.rename(m / "moved", m / "renamed")
    fd = os.open(m / "renamed", os.O_RDWR)
    os.fsync(fd)
    os.close(fd)
    remount(fs)
    assert not (m / "gone").exists()
    assert (m / "renamed").read_bytes() == b"unsynced, then synced under its new name"


def test_lock_files_are_written_through(ffs):
    fs = ffs()
    m = fs.mountpoint
    for name in ("lock.mdb", "storaged.lock", "repl.wake"):
        write_file(m / name, b"through")
        assert (fs.backing / name).read_bytes() == b"through", name


def test_sighup_syncs_everything(ffs):
    fs = ffs()
    write_file(fs.mountpoint / "f", b"kept by the sync")
    fs.sync()
    assert (fs.backing / "f").read_bytes() == b"kept by the sync"


def test_trace_records(ffs, tmp_path):
    trace = tmp_path / "trace"
    fs = ffs(trace=trace)
    m = fs.mountpoint
    os.mkdir(m / "d")
    fd = os.open(m / "d" / "a b", os.O_CREAT | os.O_RDWR, 0o644)
    os.pwrite(fd, b"\x00\xffhi\n", 7)
    os.ftruncate(fd, 20)
    os.fsync(fd)
    os.close(fd)
    fs.mark("ack put bkt key 0123abcd\n")
    os.rename(m / "d" / "a b", m / "d" / "c")
    os.unlink(m / "d" / "c")
    os.rmdir(m / "d")
    fs.stop()
    assert not (fs.backing / ".forgetfs-mark").exists()
    lines = trace.read_text().splitlines()
    assert lines == [
        "N mkdir d",
        "N create d/a%20b",
        "W d/a%20b 7 5 00ff68690a",
        "T d/a%20b 20",
        "S d/a%20b",
        "M ack put bkt key 0123abcd",
        "N rename d/a%20b d/c",
        "N unlink d/c",
        "N rmdir d",
    ], lines


def sync_in_thread(path, data):
    """write_file(path, data, sync=True) in a thread (it blocks when forgetfs freezes); the thread
    and a list that gets its exception."""
    errors = []

    def run():
        try:
            write_file(path, data, sync=True)
        except OSError as e:
            errors.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, errors


def test_cut_at_sync_stops_before_the_nth_sync(tmp_path):
    """--cut-at-sync 2: the first sync persists, the second never does: the power goes first,
    and the fsync waits, unanswered, until forgetfs is gone."""
    fs = Forgetfs(tmp_path / "backing", tmp_path / "mnt", cut_at_sync=2).start()
    m = fs.mountpoint
    write_file(m / "one", b"first", sync=True)
    t, errors = sync_in_thread(m / "two", b"second")
    report = fs.wait_cut(10)
    assert report is not None and "at sync 2 (two)" in report, fs.output()
    t.join(0.3)
    assert t.is_alive(), "the fsync after the cut was answered"
    fs.cut()
    t.join(10)
    assert not t.is_alive() and errors, "the fsync did not fail once forgetfs was gone"
    assert (fs.backing / "one").read_bytes() == b"first"
    assert (fs.backing / "two").read_bytes() == b""


def test_sync_count_restarts_on_sigusr2(tmp_path):
    fs = Forgetfs(tmp_path / "backing", tmp_path / "mnt", cut_at_sync=2).start()
    m = fs.mountpoint
    write_file(m / "one", b"first", sync=True)
    assert fs.reset_sync_count() == 1
    write_file(m / "two", b"second", sync=True)  # the count's first again: not cut
    t, errors = sync_in_thread(m / "three", b"third")
    assert "at sync 2 (three)" in (fs.wait_cut(10) or ""), fs.output()
    fs.cut()
    t.join(10)
    assert not t.is_alive() and errors
    assert (fs.backing / "two").read_bytes() == b"second"
    assert (fs.backing / "three").read_bytes() == b""
