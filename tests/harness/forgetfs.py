"""forgetfs.py - run forgetfs, the FUSE file system that forgets unsynced writes, and cut its power.

    fs = Forgetfs(backing_dir, mountpoint, trace=None, seed=None, cut_at_sync=None).start()
    fs.mark(text)        an M record in the trace (a write to MOUNTPOINT/.forgetfs-mark)
    fs.cut(torn=False)   a power cut: SIGTERM, as SIGKILL nothing unsynced survives (SIGUSR1 when
                         torn: a random subset of the unsynced writes survives, split at 4 KiB
                         pages), wait, lazy unmount
    fs.stop()            clean: SIGHUP (everything synced), then SIGTERM, unmount
    forgetfs_binary()    $COMIO_FORGETFS, else $COMIO_BUILD_DIR/tests/forgetfs, else build/tests/forgetfs
    skip_reason()        None, or why the power-loss tests cannot run on this machine

BACKING_DIR always holds exactly the durable state; tests/powerloss/forgetfs.c
says what counts as synced. After a cut, start a new Forgetfs on the same
backing directory: the old mount's page cache is gone with it. Every wait
here is bounded.
"""

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from .comio import REPO

READY_TIMEOUT = 10.0
EXIT_TIMEOUT = 10.0
MARK_NAME = ".forgetfs-mark"


def forgetfs_binary():
    if os.environ.get("COMIO_FORGETFS"):
        return Path(os.environ["COMIO_FORGETFS"])
    return Path(os.environ.get("COMIO_BUILD_DIR") or REPO / "build") / "tests" / "forgetfs"


def skip_reason():
    """None when forgetfs can mount here, else why not."""
    if os.geteuid() != 0:
        return "power-loss tests mount FUSE file systems: they need root"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse on this machine"
    if not shutil.which("fusermount3") and not shutil.which("umount"):
        return "neither fusermount3 nor umount to unmount FUSE file systems"
    exe = forgetfs_binary()
    if not exe.exists():
        return "%s is not built (libfuse3-dev missing at configure time, or COMIO_POWERLOSS=OFF)" % exe
    return None


def lazy_unmount(mountpoint):
    """Detaches mountpoint (fusermount3 -uz, else umount -l); quiet when nothing is mounted there."""
    for argv in (["fusermount3", "-uz", str(mountpoint)], ["umount", "-l", str(mountpoint)]):
        if shutil.which(argv[0]) is None:
            continue
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if r.returncode == 0 or not os.path.ismount(mountpoint):
            return
    if os.path.ismount(mountpoint):
        raise AssertionError("cannot unmount %s" % mountpoint)


class Forgetfs:
    """One forgetfs process serving backing_dir at mountpoint. Its stderr goes to
    <backing_dir>.forgetfs.log (outside the mount, kept across restarts)."""

    def __init__(self, backing_dir, mountpoint, trace=None, seed=None, cut_at_sync=None):
        self.backing = Path(backing_dir)
        self.mountpoint = Path(mountpoint)
        self.trace = None if trace is None else Path(trace)
        self.seed = seed
        self.cut_at_sync = cut_at_sync  # N: forgetfs cuts the power itself when the N-th sync arrives
        self.log_path = self.backing.with_name(self.backing.name + ".forgetfs.log")
        self.proc = None
        self.frozen = False  # cut at the N-th sync, not answering any more
        self._lines = []
        self._cond = threading.Condition()
        self._reader = None

    # --- lifecycle ----------------------------------------------------------------------------------------------

    def argv(self):
        argv = [str(forgetfs_binary())]
        if self.trace is not None:
            argv += ["--trace", str(self.trace)]
        if self.seed is not None:
            argv += ["--seed", str(self.seed)]
        if self.cut_at_sync is not None:
            argv += ["--cut-at-sync", str(self.cut_at_sync)]
        return argv + [str(self.backing), str(self.mountpoint)]

    def start(self):
        assert self.proc is None, "forgetfs already running"
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        if os.path.ismount(self.mountpoint):  # a previous run's mount, detached from its process
            lazy_unmount(self.mountpoint)
        self._lines = []
        self.frozen = False
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self._reader = threading.Thread(target=self._read_stderr, args=(self.proc,), daemon=True)
        self._reader.start()
        ready = "forgetfs: ready %s %s" % (self.backing, self.mountpoint)
        if not self._wait_line(lambda line: line == ready, READY_TIMEOUT):
            self._kill()
            raise AssertionError("forgetfs did not say it was ready within %.0f s; its output:\n%s" %
                                 (READY_TIMEOUT, "\n".join(self._lines)))
        return self

    def _read_stderr(self, proc):
        with open(self.log_path, "a") as log:
            log.write("=== start: %s\n" % " ".join(self.argv()))
            for raw in proc.stderr:
                line = raw.decode(errors="replace").rstrip("\n")
                log.write(line + "\n")
                log.flush()
                with self._cond:
                    self._lines.append(line)
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _wait_line(self, pred, timeout, start=0):
        """Waits until a line from index `start` on satisfies pred; returns it, or None after timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._lines[start:]:
                    if pred(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc is not None and self.proc.poll() is not None and
                                 not self._reader.is_alive()):
                    return None
                self._cond.wait(min(left, 0.1))

    def _signal_and_wait(self, sig):
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            rc = proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait(timeout=EXIT_TIMEOUT)
            raise AssertionError("forgetfs did not exit within %.0f s of signal %d" % (EXIT_TIMEOUT, sig))
        finally:
            if self._reader is not None:
                self._reader.join(EXIT_TIMEOUT)
            lazy_unmount(self.mountpoint)
        return rc

    def _kill(self):
        self._signal_and_wait(signal.SIGKILL)

    def cut(self, torn=False):
        """A power cut: what was not synced is lost (torn: a random subset of it at 4 KiB pages
        survives). Returns forgetfs's report line: how many unsynced bytes it forgot, or (torn)
        how many pages it kept and dropped. SIGTERM is the plain cut: as SIGKILL, nothing is
        persisted, but forgetfs says how much it forgot."""
        n = len(self._lines)
        sig, report = (signal.SIGUSR1, "forgetfs: torn cut:") if torn else (signal.SIGTERM, "forgetfs: power cut:")
        rc = self._signal_and_wait(sig)
        line = self._wait_line(lambda line: line.startswith(report), 0, start=n)
        assert rc == 0 and line is not None, "forgetfs exited %s on a cut; its output:\n%s" % (rc, self.output())
        return line

    def sync(self):
        """Makes everything durable (SIGHUP) and waits for forgetfs to say so."""
        n = len(self._lines)
        self.proc.send_signal(signal.SIGHUP)
        line = self._wait_line(lambda line: line.startswith("forgetfs: synced"), EXIT_TIMEOUT, start=n)
        assert line is not None, "forgetfs did not sync within %.0f s:\n%s" % (EXIT_TIMEOUT, "\n".join(self._lines))

    def stop(self):
        """A clean stop: everything synced, then the process ends and the mount goes."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.sync()
        self._signal_and_wait(signal.SIGTERM)

    def close(self):
        """Teardown, whatever state it is in: stop() when running, else reap it and detach its mount."""
        if self.alive():
            if self.frozen:
                self.cut()
            else:
                self.stop()
            return
        self._signal_and_wait(signal.SIGKILL)
        if os.path.ismount(self.mountpoint):
            lazy_unmount(self.mountpoint)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def reset_sync_count(self):
        """--cut-at-sync counts from now (SIGUSR2). Returns how many syncs came before."""
        n = len(self._lines)
        self.proc.send_signal(signal.SIGUSR2)
        line = self._wait_line(lambda line: line.startswith("forgetfs: sync count reset"), EXIT_TIMEOUT, start=n)
        assert line is not None, "forgetfs did not reset its count:\n%s" % self.output()
        return int(line.split()[-2])

    def wait_cut(self, timeout):
        """With cut_at_sync: waits (bounded) for the cut at the N-th sync. Returns forgetfs's report
        line, or None when no cut came within `timeout` (fewer syncs came). After the cut no request
        is answered: the processes on the mount stand still. Kill them (without waiting: one blocked
        in the unanswered request goes only once forgetfs has gone), then cut() ends forgetfs."""
        line = self._wait_line(lambda line: line.startswith("forgetfs: power cut: at sync"), timeout)
        if line is not None:
            self.frozen = True
        return line

    def output(self):
        with self._cond:
            return "\n".join(self._lines)

    # --- the trace --------------------------------------------------------------------------------------------------

    def mark(self, text):
        """Appends `M text` to the trace."""
        fd = os.open(self.mountpoint / MARK_NAME, os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
