"""test_bench_scrub.py - tests/bench/scrubbench.py, the scrub benchmark phase's helper, with the real storaged: on a
small store (20 objects of 1 MiB, 200 of 4 KiB) it records an unpaced pass over every object and byte, a plain read
of at least the stored bytes, and a paced pass near the default scrub_rate; without a storaged to start it fails with
a non-zero exit and says so instead of a figure."""

import json
import os
import subprocess
import sys

from harness import comio

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRUBBENCH = os.path.join(ROOT, "tests", "bench", "scrubbench.py")
MIB = 1 << 20


def run_bench(tmp_path, bin_dir):
    tok = tmp_path / "token"
    tok.write_text("bench-token\n")
    out = tmp_path / "scrub.json"
    p = subprocess.run([sys.executable, SCRUBBENCH, "--bin", str(bin_dir), "--work", str(tmp_path / "work"),
                        "--token-file", str(tok), "--out", str(out), "--big-count", "20", "--small-count", "200",
                        "--paced-seconds", "2", "--timeout", "60"], capture_output=True, text=True, timeout=180)
    return p, json.loads(out.read_text())


def test_passes_measured(tmp_path):
    p, res = run_bench(tmp_path, comio.bin_dir())
    assert p.returncode == 0, p.stdout + p.stderr
    stored = 20 * MIB + 200 * 4096
    u = res["unpaced"]
    assert u["objects"] == 220 and u["bytes"] == stored and u["damaged"] == 0
    assert u["mb_per_s"] > 0 and u["objects_per_s"] > 0 and u["pass_seconds"] <= u["seconds"]
    assert res["read"]["bytes"] >= stored and res["read"]["mb_per_s"] > 0
    q = res["paced"]
    assert q["configured_rate"] == 4000000
    assert 0.5 <= q["ratio"] <= 1.2, q  # paced: never much faster than the rate, and not stalled
    assert "FAILED" not in p.stdout


def test_no_storaged_fails(tmp_path):
    empty = tmp_path / "nobin"
    empty.mkdir()
    p, res = run_bench(tmp_path, empty)
    assert p.returncode == 1
    assert "FAILED" in p.stdout and "error" in res and "unpaced" not in res
