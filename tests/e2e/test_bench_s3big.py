"""test_bench_s3big.py - tests/bench/s3big.py, the s3big benchmark phase's client, against a real storaged: with a
small file (3 parts of 8 MiB) it stores both objects and records what the phase reports (the native ETag is the
file's MD5, the multipart one ends in -3, storaged's CPU and the timings are there); with --image, each upload starts
with none of the image in the page cache (the native PUT's pages, cached before the multipart step, were dropped) and
the image's allocation grows by each object; and a wrong secret makes it fail with the server's error and a non-zero
exit instead of a figure."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("boto3")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
S3BIG = os.path.join(ROOT, "tests", "bench", "s3big.py")
AK = "AKIDBENCHBIG"
SECRET = "bench/b1g+KEY"
MIB = 1 << 20


@pytest.fixture
def srv(make_server):
    # 256 MB: room for 16 parts' places, so that the parts are placed back to back and the Complete joins them (24 MiB:
    # three parts of 8 MiB; a shorter last part sent with the others may be stored first, before any place is set)
    return make_server(config="s3:\n  credentials:\n    - access_key: %s\n      secret_key: %s\n" % (AK, SECRET),
                       size="256MB")


def run_s3big(srv, tmp_path, secret, extra=()):
    sf = tmp_path / "secret"
    sf.write_text(secret + "\n")
    out = tmp_path / "s3big.json"
    p = subprocess.run([sys.executable, S3BIG, "--url", "http://%s:%d" % (srv.host, srv.port), "--pid", str(srv.proc.pid),
                        "--access-key", AK, "--secret-file", str(sf), "--work", str(tmp_path / "work"), "--size",
                        str(24 * MIB), "--out", str(out)] + list(extra), capture_output=True, text=True, timeout=120)
    return p, out


def test_both_uploads_measured_and_checked(srv, tmp_path):
    p, out = run_s3big(srv, tmp_path, SECRET)
    assert p.returncode == 0, p.stdout + p.stderr
    res = json.loads(out.read_text())
    assert res["parts"] == 3 and len(res["rounds"]) == 1
    r = res["rounds"][0]
    assert r["multipart"]["parts"] == 3 and r["multipart"]["etag"].endswith("-3")
    assert r["multipart"]["complete_s"] > 0 and r["multipart"]["parts_s"] > 0
    # every byte of the object hashed once: as the parts were stored, or by the Complete
    assert r["multipart"]["complete_chased_bytes"] + r["multipart"]["complete_hashed_bytes"] == 24 * MIB
    assert r["multipart"]["complete_joined_bytes"] == 24 * MIB
    assert "joined the parts" in p.stdout
    for api in ("native", "multipart"):
        assert r[api]["mib_s"] > 0 and r[api]["storaged_cpu_s"] > 0
    assert abs(r["ratio"] - r["multipart"]["mib_s"] / r["native"]["mib_s"]) < 1e-9
    assert not os.path.exists(tmp_path / "work" / "s3big.bin")  # the random file is removed at the end
    assert res["image_cache"] == "as left" and r["native"]["image_cached_at_start_mib"] is None


def test_uploads_at_once_measured_together(srv, tmp_path):
    """--uploads 2: two multipart uploads of the file at once, both checked, their bytes counted together; on this
    store each gets a run of its own and both Completes join."""
    p, out = run_s3big(srv, tmp_path, SECRET, ["--uploads", "2"])
    assert p.returncode == 0, p.stdout + p.stderr
    res = json.loads(out.read_text())
    m = res["rounds"][0]["multipart"]
    assert res["uploads"] == 2 and m["parts"] == 6 and len(m["complete_s_each"]) == 2
    assert m["complete_joined_bytes"] == 48 * MIB
    assert "multipart (2 uploads at once)" in p.stdout and "joined the parts" in p.stdout


def test_image_cache_dropped_before_each_upload(srv, tmp_path):
    p, out = run_s3big(srv, tmp_path, SECRET, ["--image", str(srv.storage)])
    assert p.returncode == 0, p.stdout + p.stderr
    res = json.loads(out.read_text())
    r = res["rounds"][0]
    assert res["image_cache"] == "dropped before each upload"
    # the native PUT's 24 MiB were written through the page cache just before the multipart step: dropped, not found
    for api in ("native", "multipart"):
        assert r[api]["image_cached_at_start_mib"] < 1, r[api]
        # a fresh sparse image: each object's extent is allocated by the filesystem as it is first written
        assert r[api]["image_allocated_mib"] >= 24, r[api]
    assert "the image's page cache dropped before each upload" in p.stdout


def test_wrong_secret_fails(srv, tmp_path):
    p, out = run_s3big(srv, tmp_path, "not-the-secret")
    assert p.returncode == 1
    assert "FAILED" in p.stdout and "SignatureDoesNotMatch" in p.stdout
    assert json.loads(out.read_text())["rounds"] == []


def test_how_the_complete_went_is_told_from_the_joined_bytes():
    sys.path.insert(0, os.path.dirname(S3BIG))
    import s3big

    assert s3big.how_completed(24 * MIB, 24 * MIB) == "joined the parts"
    assert s3big.how_completed(16 * MIB, 24 * MIB) == "joined all parts but the last, copied next to them"
    assert s3big.how_completed(0, 24 * MIB) == "copied the parts"
