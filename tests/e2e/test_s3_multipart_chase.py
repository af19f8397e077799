"""test_s3_multipart_chase.py - a Complete whose MD5 and block checksums come from the parts hashed as they were
stored (storaged/commit_chase.c), and the cases where only some or none of them can: parts stored out of order, a
part stored again, a Complete of some parts only, a storaged killed in mid-upload. Whichever way it was hashed, each
object reads back whole with its MD5 and multipart ETag, verifies against its block checksums (the deep listing, a
scrub) and replicates (comio diff --deep). The metric comio_s3_multipart_complete_bytes_total tells which bytes the
chase hashed and which the Complete did."""

import hashlib
import os
import subprocess
import time

from harness import comio
from harness.replication import comio_path, converge_or_fail
from test_diff_deep import deep_pages
from test_s3_multipart import MIB, multipart_etag
from test_s3_objects import AK, SECRET, s3_client

BUCKET = "chase"
CATCH_UP = 1.5  # seconds given to the chase before a Complete that expects it to have caught up (~20 MiB to hash)


def hashed_by(srv):
    m = srv.client().metrics()
    return (m.value("comio_s3_multipart_complete_bytes_total", hash="chased"),
            m.value("comio_s3_multipart_complete_bytes_total", hash="hashed"))


def put_part(s3, key, uid, number, body):
    r = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=uid, PartNumber=number, Body=body)
    assert r["ETag"] == '"%s"' % hashlib.md5(body).hexdigest()
    return {"PartNumber": number, "ETag": r["ETag"]}


def complete(s3, srv, key, uid, listed, bodies, chased, hashed, wait=CATCH_UP):
    """Completes with the parts `listed` (numbers, in order), bodies[n] being part n's bytes; checks the object and
    that the chase hashed `chased` of its bytes and the Complete `hashed` (None: any split)."""
    time.sleep(wait)
    before = hashed_by(srv)
    parts = [{"PartNumber": n, "ETag": '"%s"' % hashlib.md5(bodies[n]).hexdigest()} for n in listed]
    r = s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=uid, MultipartUpload={"Parts": parts})
    data = b"".join(bodies[n] for n in listed)
    assert r["ETag"] == multipart_etag([bodies[n] for n in listed])
    after = hashed_by(srv)
    got = (after[0] - before[0], after[1] - before[1])
    assert got[0] + got[1] == len(data), (key, got, len(data))
    if hashed is not None:
        assert got == (chased, hashed), (key, got, (chased, hashed))
    body = srv.client().get(BUCKET, key).body
    assert len(body) == len(data) and hashlib.md5(body).hexdigest() == hashlib.md5(data).hexdigest(), key
    return data


def sizes(*ns):
    return {i + 1: os.urandom(n) for i, n in enumerate(ns)}


def test_chased_and_fallback_completes_are_whole_and_replicate(sites):
    creds = {"s3": {"credentials": [{"access_key": AK, "secret_key": SECRET}]}}
    fast_scrub = dict(creds, storage={"scrub_rate": "10GB/s"})
    a, b = sites(a_extra=fast_scrub, b_extra=fast_scrub, size="512MB")
    srv = a.storaged
    s3 = s3_client(srv)
    s3.create_bucket(Bucket=BUCKET)
    objects = {}

    def start(key):
        return s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]

    # in order, sizes that are no multiple of the 64 KiB block: the chase carries the partial block across parts
    bodies = sizes(5 * MIB + 1, 5 * MIB + 65535, 3)
    uid = start("in-order")
    for n in (1, 2, 3):
        put_part(s3, "in-order", uid, n, bodies[n])
    total = sum(len(v) for v in bodies.values())
    objects["in-order"] = complete(s3, srv, "in-order", uid, [1, 2, 3], bodies, total, 0)

    # out of order: part 3 waits until 1 and 2 are there, then the chase goes through all three
    bodies = sizes(5 * MIB + 7, 5 * MIB, 12345)
    uid = start("out-of-order")
    for n in (3, 1, 2):
        put_part(s3, "out-of-order", uid, n, bodies[n])
    total = sum(len(v) for v in bodies.values())
    objects["out-of-order"] = complete(s3, srv, "out-of-order", uid, [1, 2, 3], bodies, total, 0)

    def stored_again(key, bodies, number):
        """Every part stored, the chase given time to pass them, then part `number` stored again with new bytes:
        the chase goes back to before it and hashes it and what follows again."""
        uid = start(key)
        for n in sorted(bodies):
            put_part(s3, key, uid, n, bodies[n])
        time.sleep(CATCH_UP)
        bodies[number] = os.urandom(len(bodies[number]) + 11)
        put_part(s3, key, uid, number, bodies[number])
        total = sum(len(v) for v in bodies.values())
        objects[key] = complete(s3, srv, key, uid, sorted(bodies), bodies, total, 0)

    # a part stored again once the chase had passed it: back to the snapshot before part 2
    stored_again("re-uploaded", sizes(5 * MIB + 3, 5 * MIB + 5, 999), 2)
    # part 1 stored again: back to nothing, all chased again
    stored_again("first-again", sizes(5 * MIB + 1, 100), 1)

    # a Complete of parts 1, 2 and 4: the chase's first two parts serve, part 4 is hashed by the Complete
    bodies = sizes(5 * MIB + 9, 5 * MIB + 10, 5 * MIB + 11, 4321)
    uid = start("subset")
    for n in (1, 2, 3, 4):
        put_part(s3, "subset", uid, n, bodies[n])
    objects["subset"] = complete(s3, srv, "subset", uid, [1, 2, 4], bodies, len(bodies[1]) + len(bodies[2]),
                                 len(bodies[4]))

    # storaged SIGKILLed after two parts: the chase starts again from part 1 with the next part stored
    bodies = sizes(5 * MIB + 13, 5 * MIB + 14, 55555)
    uid = start("restart-mid")
    for n in (1, 2):
        put_part(s3, "restart-mid", uid, n, bodies[n])
    srv.restart(graceful=False)
    s3 = s3_client(srv)
    put_part(s3, "restart-mid", uid, 3, bodies[3])
    total = sum(len(v) for v in bodies.values())
    objects["restart-mid"] = complete(s3, srv, "restart-mid", uid, [1, 2, 3], bodies, total, 0)

    # restarted after the last part, with none stored since: nothing chased, the Complete hashes it all
    bodies = sizes(5 * MIB + 15, 77)
    uid = start("restart-last")
    for n in (1, 2):
        put_part(s3, "restart-last", uid, n, bodies[n])
    srv.restart(graceful=True)
    s3 = s3_client(srv)
    total = sum(len(v) for v in bodies.values())
    objects["restart-last"] = complete(s3, srv, "restart-last", uid, [1, 2], bodies, 0, total, wait=0)

    # every object's block checksums are its bytes' (the deep listing reads and verifies each), and a scrub agrees
    c = srv.client()
    listed = {o["key"]: o for page in deep_pages(c, BUCKET) for o in page["objects"]}
    assert sorted(listed) == sorted(objects)
    for key, data in objects.items():
        assert listed[key].get("verified") == "blocks" and "damaged" not in listed[key], listed[key]
        assert c.get(BUCKET, key).body == data, key
    p = subprocess.run([str(comio_path()), "scrub", "--url", srv.url(), "--now"], capture_output=True, text=True,
                       timeout=120, env=comio.sanitizer_env())
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)

    # and they replicate byte for byte
    converge_or_fail(a, b)
    for key, data in objects.items():
        assert b.storaged.client().get(BUCKET, key).body == data, key
    p = subprocess.run([str(comio_path()), "diff", "--source", a.url(), "--target", b.url(), "--deep"],
                       capture_output=True, text=True, timeout=120, env=comio.sanitizer_env())
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
