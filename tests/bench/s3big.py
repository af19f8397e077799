#!/usr/bin/env python3
"""s3big.py - a 1 GiB native PUT against the same bytes as an S3 multipart upload (boto3), side by side.

One storaged with an S3 credential (started by run.sh). Writes a file of --size random bytes once under
--work, then for each round:
  native     PUT /BUCKET/native with the file as the body (the file is sent with sendfile on a plain HTTP/1.1
             connection), timed from the connect to the 200; HEAD then checks the size and that the ETag is the
             file's MD5.
  multipart  boto3's upload_file with TransferConfig(multipart_threshold=PART, multipart_chunksize=PART,
             max_concurrency=10) to BUCKET/multipart, timed from the call to the end of
             CompleteMultipartUpload; HeadObject then checks the size and that the ETag ends in -N (N parts).
             boto3's event hooks time the parts (first part sent to last part answered) and the Complete alone.
             With --uploads N, N such uploads of the file at once (to BUCKET/multipart-1..N, each with its own
             client and threads, as rclone --transfers or aws s3 sync of several files): the step's MiB/s and
             bytes are those of all N, its timings the latest upload's, and each Complete's time is listed.
Before each step the page cache is flushed (os.sync) so that one step's dirty pages are not written back during
the next. With --image (storaged's image file), the image's pages are then dropped from the page cache
(posix_fadvise DONTNEED), so that both uploads write into image ranges with no cached page: what made a native PUT
fast or slow here was not whether its extent had been written before (sparse or not) but whether the image's pages
it wrote were already in the page cache (a PUT over the cached pages of an extent freed just before skips the cost
of fresh page-cache memory, about 2-3 CPU-seconds per GiB on this VM; docs/benchmarks.md, s3big). Each step then also
records the image's bytes cached at its start (mincore) and the bytes the filesystem allocated to the image during it
(st_blocks: its first write into sparse space). For each step it records storaged's CPU (utime + stime from /proc/PID/stat), the bytes storaged caused
to be written (/proc/PID/io write_bytes, where readable) and this process's CPU. The native PUT runs first in
each round: it also creates the bucket. Writes a JSON summary to --out; exits non-zero on any wrong answer.
"""

import argparse
import ctypes
import ctypes.util
import hashlib
import mmap
import http.client
import os
import resource
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import split_url, write_json  # noqa: E402

MIB = 1 << 20
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    """storaged's user + system CPU seconds so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_write_bytes(pid):
    """Bytes storaged caused to be written to storage so far; None if /proc/PID/io is not readable."""
    try:
        with open("/proc/%d/io" % pid) as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def self_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def image_drop_cache(path):
    """Drops the image's clean pages from the page cache (os.sync first makes them all clean)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def image_cached(path):
    """Bytes of the file in the page cache (mincore over a read-only mapping); None where mincore is not reachable."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    page = mmap.PAGESIZE
    size = os.path.getsize(path)
    if size == 0:
        return 0
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr is None or addr == ctypes.c_void_p(-1).value:
            return None
        try:
            vec = ctypes.create_string_buffer((size + page - 1) // page)
            if libc.mincore(addr, size, vec) != 0:
                return None
            return sum(b & 1 for b in vec.raw) * page
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)


class Meter:
    """CPU and write counters around one step; with `image`, the image's pages dropped from the page cache first and
    what the step found cached and had allocated in the image."""

    def __init__(self, pid, image=None):
        self.pid = pid
        self.image = image

    def __enter__(self):
        os.sync()
        self.cached0 = self.alloc0 = None
        if self.image is not None:
            image_drop_cache(self.image)
            self.cached0 = image_cached(self.image)
            self.alloc0 = os.stat(self.image).st_blocks * 512
        self.cpu0, self.wb0, self.me0 = proc_cpu(self.pid), proc_write_bytes(self.pid), self_cpu()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self.storaged_cpu = proc_cpu(self.pid) - self.cpu0
        wb = proc_write_bytes(self.pid)
        self.storaged_written = None if wb is None or self.wb0 is None else wb - self.wb0
        self.client_cpu = self_cpu() - self.me0
        self.allocated = None if self.alloc0 is None else os.stat(self.image).st_blocks * 512 - self.alloc0
        return False

    def summary(self, size):
        return {"seconds": self.seconds, "mib_s": size / MIB / self.seconds, "storaged_cpu_s": self.storaged_cpu,
                "storaged_cpu_pct": 100.0 * self.storaged_cpu / self.seconds,
                "storaged_written_mib": None if self.storaged_written is None else self.storaged_written / MIB,
                "client_cpu_s": self.client_cpu,
                "image_cached_at_start_mib": None if self.cached0 is None else self.cached0 / MIB,
                "image_allocated_mib": None if self.allocated is None else self.allocated / MIB}


def how_completed(joined, size):
    """What the Complete did with the parts, from the bytes it joined (comio_s3_multipart_joined_bytes_total)."""
    if joined == size:
        return "joined the parts"
    if joined > 0:
        return "joined all parts but the last, copied next to them"
    return "copied the parts"


def mib(x):
    return "?" if x is None else "%.0f" % x


def make_file(path, size):
    md5 = hashlib.md5()
    with open(path, "wb") as f:
        left = size
        while left:
            b = os.urandom(min(left, 8 * MIB))
            md5.update(b)
            f.write(b)
            left -= len(b)
        f.flush()
        os.fsync(f.fileno())
    return md5.hexdigest()


def native_put(url, path, size, key, timeout):
    """PUT the file with sendfile; returns (status, etag, seconds to the last byte sent, seconds to the 200)."""
    host, port = split_url(url)
    t0 = time.perf_counter()
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(("PUT %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: %d\r\nContent-Type: application/octet-stream"
                   "\r\n\r\n" % (key, host, port, size)).encode())
        with open(path, "rb") as f:
            sent = s.sendfile(f)
        if sent != size:
            raise RuntimeError("sendfile sent %d of %d bytes" % (sent, size))
        t_sent = time.perf_counter() - t0
        r = http.client.HTTPResponse(s)
        r.begin()
        body = r.read()
        t_done = time.perf_counter() - t0
        if r.status != 200:
            raise RuntimeError("native PUT %s: status %d: %s" % (key, r.status, body[:200]))
        return r.getheader("ETag", "").strip('"'), t_sent, t_done
    finally:
        s.close()


def complete_split(url, timeout):
    """storaged's comio_s3_multipart_complete_bytes_total and comio_s3_multipart_joined_bytes_total: (bytes hashed as
    the parts were stored, bytes the Completes hashed themselves, bytes whose parts were joined, not copied); 0 for
    what /metrics does not have."""
    host, port = split_url(url)
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode(errors="replace")
    finally:
        c.close()
    got = {}
    for line in text.splitlines():
        if line.startswith("comio_s3_multipart_complete_bytes_total{"):
            labels, value = line.rsplit(" ", 1)
            got["chased" if 'hash="chased"' in labels else "hashed"] = int(float(value))
        elif line.startswith("comio_s3_multipart_joined_bytes_total "):
            got["joined"] = int(float(line.rsplit(" ", 1)[1]))
    return got.get("chased", 0), got.get("hashed", 0), got.get("joined", 0)


def head(url, key, timeout):
    host, port = split_url(url)
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("HEAD", key)
        r = c.getresponse()
        r.read()
        return r.status, int(r.getheader("Content-Length", "-1")), r.getheader("ETag", "").strip('"')
    finally:
        c.close()


def multipart(client, path, bucket, key, part, concurrency):
    """upload_file with boto3's TransferConfig; returns the timings of the parts and of the Complete."""
    from boto3.s3.transfer import TransferConfig

    marks = {"parts": 0, "first_part": None, "last_part": None, "complete_start": None, "complete_end": None}
    lock = threading.Lock()

    def before_part(**kw):
        with lock:
            if marks["first_part"] is None:
                marks["first_part"] = time.perf_counter()

    def after_part(http_response=None, **kw):
        with lock:
            marks["parts"] += 1
            marks["last_part"] = time.perf_counter()

    def before_complete(**kw):
        marks["complete_start"] = time.perf_counter()

    def after_complete(**kw):
        marks["complete_end"] = time.perf_counter()

    ev = client.meta.events
    hooks = [("before-call.s3.UploadPart", before_part), ("after-call.s3.UploadPart", after_part),
             ("before-call.s3.CompleteMultipartUpload", before_complete),
             ("after-call.s3.CompleteMultipartUpload", after_complete)]
    for name, fn in hooks:
        ev.register(name, fn)
    try:
        cfg = TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=concurrency)
        t0 = time.perf_counter()
        client.upload_file(path, bucket, key, Config=cfg)
        t_done = time.perf_counter()
    finally:
        for name, fn in hooks:
            ev.unregister(name, fn)
    if None in marks.values():
        raise RuntimeError("multipart: the event hooks saw no part or no Complete: %r" % marks)
    return {"parts": marks["parts"], "first_part_s": marks["first_part"] - t0, "parts_s": marks["last_part"] - t0,
            "complete_s": marks["complete_end"] - marks["complete_start"],
            "after_complete_s": t_done - marks["complete_end"]}


def multipart_at_once(clients, path, bucket, keys, part, concurrency):
    """multipart() of the file to each key at once, one thread and client each; their timings merged: the parts done
    when the last upload's were, the Complete time the longest one, each one's in complete_s_each."""
    res, errs = [None] * len(keys), []

    def one(i):
        try:
            res[i] = multipart(clients[i], path, bucket, keys[i], part, concurrency)
        except Exception as e:  # noqa: BLE001 - reported by the caller
            errs.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(keys))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errs:
        raise errs[0]
    if len(res) == 1:
        return res[0]
    return {"parts": sum(r["parts"] for r in res), "first_part_s": min(r["first_part_s"] for r in res),
            "parts_s": max(r["parts_s"] for r in res), "complete_s": max(r["complete_s"] for r in res),
            "after_complete_s": max(r["after_complete_s"] for r in res), "complete_s_each": [r["complete_s"] for r in res]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True, help="storaged, http://127.0.0.1:PORT")
    ap.add_argument("--pid", type=int, required=True, help="storaged's process id (CPU and write counters)")
    ap.add_argument("--access-key", required=True)
    ap.add_argument("--secret-file", required=True)
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--bucket", default="big")
    ap.add_argument("--work", required=True, help="directory on disk for the file of random bytes")
    ap.add_argument("--size", type=int, default=1 << 30)
    ap.add_argument("--part", type=int, default=8 * MIB)
    ap.add_argument("--concurrency", type=int, default=10, help="boto3's max_concurrency (10 is its default)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--uploads", type=int, default=1, help="multipart uploads of the file at once")
    ap.add_argument("--timeout", type=float, default=600, help="socket timeout of each request, seconds")
    ap.add_argument("--image", help="storaged's image file: its pages are dropped from the page cache before each "
                    "upload, so that both uploads meet the same (uncached) kind of space")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.size < 1 or args.part < 5 * MIB or args.rounds < 1 or not 1 <= args.uploads <= 16:
        ap.error("--size must be positive, --part at least 5 MiB (S3's smallest part), --rounds at least 1, "
                 "--uploads 1 to 16")
    try:
        import boto3
        from botocore.config import Config
    except ImportError as e:
        print("s3big: FAILED: boto3 is needed (Debian: python3-boto3): %s" % e, flush=True)
        return 1
    with open(args.secret_file) as f:
        secret = f.read().strip()
    nparts = -(-args.size // args.part)
    os.makedirs(args.work, exist_ok=True)
    path = os.path.join(args.work, "s3big.bin")
    t = time.perf_counter()
    md5 = make_file(path, args.size)
    print("   s3big: %d MiB of random bytes written in %.1f s; %d parts of %d MiB, boto3 %s, max_concurrency %d" %
          (args.size // MIB, time.perf_counter() - t, nparts, args.part // MIB, boto3.__version__, args.concurrency),
          flush=True)
    clients = [boto3.client("s3", endpoint_url=args.url, region_name=args.region, aws_access_key_id=args.access_key,
                            aws_secret_access_key=secret,
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                          read_timeout=args.timeout, connect_timeout=10,
                                          max_pool_connections=args.concurrency)) for _ in range(args.uploads)]
    client = clients[0]
    out = {"size": args.size, "part": args.part, "parts": nparts, "concurrency": args.concurrency, "uploads": args.uploads,
           "boto3": boto3.__version__, "image_cache": "dropped before each upload" if args.image else "as left",
           "rounds": []}
    nkey = "/%s/native" % args.bucket
    mkeys = ["multipart"] if args.uploads == 1 else ["multipart-%d" % i for i in range(1, args.uploads + 1)]
    msize = args.size * args.uploads
    try:
        for r in range(1, args.rounds + 1):
            with Meter(args.pid, args.image) as m:
                etag, t_sent, t_done = native_put(args.url, path, args.size, nkey, args.timeout)
            st, length, hetag = head(args.url, nkey, args.timeout)
            if etag != md5 or st != 200 or length != args.size or hetag != md5:
                raise RuntimeError("native PUT: PUT ETag %s, HEAD %d size %d ETag %s; want size %d ETag %s" %
                                   (etag, st, length, hetag, args.size, md5))
            native = m.summary(args.size)
            native.update({"body_sent_s": t_sent, "after_body_s": t_done - t_sent})
            split0 = complete_split(args.url, args.timeout)
            with Meter(args.pid, args.image) as m:
                mp = multipart_at_once(clients, path, args.bucket, mkeys, args.part, args.concurrency)
            split1 = complete_split(args.url, args.timeout)
            mp["complete_chased_bytes"] = split1[0] - split0[0]  # hashed as the parts were stored
            mp["complete_hashed_bytes"] = split1[1] - split0[1]  # hashed by the Complete itself
            mp["complete_joined_bytes"] = split1[2] - split0[2]  # the parts' extents joined: no copy
            want = "-%d" % nparts
            for mkey in mkeys:
                h = client.head_object(Bucket=args.bucket, Key=mkey)
                if h["ContentLength"] != args.size or not h["ETag"].strip('"').endswith(want) or \
                        mp["parts"] != nparts * args.uploads:
                    raise RuntimeError("multipart: HeadObject %s size %d ETag %s after %d parts; want size %d, ETag *%s"
                                       % (mkey, h["ContentLength"], h["ETag"], mp["parts"], args.size, want))
            multi = m.summary(msize)
            multi.update(mp)
            multi["etag"] = h["ETag"].strip('"')
            ratio = multi["mib_s"] / native["mib_s"]
            out["rounds"].append({"native": native, "multipart": multi, "ratio": ratio})
            print("   s3big round %d: native PUT %.1f MiB/s (%.1f s: body sent %.1f s, then %.1f s to the 200; "
                  "storaged CPU %.0f%%), multipart%s %.1f MiB/s (%.1f s: parts done at %.1f s, Complete %.1f s; "
                  "storaged CPU %.0f%%, boto3 CPU %.1f s; the Complete hashed %.0f MiB itself, %s); ratio %.2fx" %
                  (r, native["mib_s"], native["seconds"], t_sent, t_done - t_sent, native["storaged_cpu_pct"],
                   "" if args.uploads == 1 else " (%d uploads at once)" % args.uploads, multi["mib_s"],
                   multi["seconds"], mp["parts_s"], mp["complete_s"], multi["storaged_cpu_pct"], multi["client_cpu_s"],
                   mp["complete_hashed_bytes"] / MIB, how_completed(mp["complete_joined_bytes"], msize), ratio),
                  flush=True)
            if args.image:
                print("   s3big round %d: the image's page cache dropped before each upload: cached at the start %s / %s "
                      "MiB, newly allocated in the image %s / %s MiB (native / multipart)" %
                      (r, mib(native["image_cached_at_start_mib"]), mib(multi["image_cached_at_start_mib"]),
                       mib(native["image_allocated_mib"]), mib(multi["image_allocated_mib"])), flush=True)
    except Exception as e:  # noqa: BLE001 - any failure is the run's failure, said in one line
        print("s3big: FAILED: %s: %s" % (type(e).__name__, e), flush=True)
        write_json(args.out, out)
        return 1
    finally:
        os.unlink(path)
    write_json(args.out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
