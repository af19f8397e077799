"""test_cli.py - `comio status` and `comio diff` against real sites.

status: a primary with repld running, stopped, and shipping to a replica that
is down; the replica; --json against GET /admin/replication/status; tokens;
exit codes. diff: equal and unequal sites (missing, extra, different size,
different ETag), one bucket, long keys stored by hash, thousands of keys over
many listing pages with the memory of the comio process bounded, progress on
a terminal, errors and usage. The oracle for diff is what the test wrote
where, never comio's own view. Every wait is bounded.
"""

import json
import os
import pty
import subprocess
import sys
import threading

import pytest

from harness import comio
from harness.comio import md5
from harness.replication import comio_path, converge_or_fail, new_token, wait_until

CLI_TIMEOUT = 120.0


def _env(extra=None):
    env = comio.sanitizer_env()
    env.pop("COMIO_TOKEN", None)
    env.update(extra or {})
    return env


def _check_sanitizer(args, stderr):
    marker = comio.sanitizer_report(stderr)
    assert marker is None, "comio %s: sanitizer report (%s):\n%s" % (" ".join(args), marker, stderr)


def comio_run(*args, expect=None, env=None):
    """Runs `comio args...` to completion; returns CompletedProcess (text). With expect, fails
    unless the exit status is that one."""
    args = [str(a) for a in args]
    r = subprocess.run([str(comio_path())] + args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       errors="replace", timeout=CLI_TIMEOUT, env=env or _env())
    _check_sanitizer(args, r.stderr)
    if expect is not None:
        assert r.returncode == expect, "comio %s exited %d, expected %d\n--- stdout:\n%s\n--- stderr:\n%s" % (
            " ".join(args), r.returncode, expect, r.stdout[-3000:], r.stderr[-3000:])
    return r


# Runs argv[2:] as its child and writes the child's peak RSS (KiB) to the file argv[1]. A process's
# ru_maxrss counts the memory it had before exec, so comio must not be forked from pytest itself
# (its RSS would be pytest's); it is forked from this small interpreter, whose own few MB are the floor.
_MEASURE = """
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execv(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def comio_measured(tmp_path, *args, env=None):
    """Runs `comio args...`; returns (exit status, stdout, stderr, peak RSS of the comio process in KiB)."""
    args = [str(a) for a in args]
    rss_path = tmp_path / "maxrss"
    r = subprocess.run([sys.executable, "-I", "-S", "-c", _MEASURE, str(rss_path), str(comio_path())] + args,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", timeout=CLI_TIMEOUT,
                       env=env or _env())
    _check_sanitizer(args, r.stderr)
    return r.returncode, r.stdout, r.stderr, int(rss_path.read_text())


def status_lines(text):
    """{key: value} of the aligned "key: value" lines of `comio status`; repeated keys gather in lists."""
    out = {}
    for line in text.splitlines():
        assert ":" in line, "not a 'key: value' line: %r" % line
        k, v = line.split(":", 1)
        assert v.startswith(" "), "no space after the colon: %r" % line
        v = v.strip()
        if k in out:
            out[k] = (out[k] if isinstance(out[k], list) else [out[k]]) + [v]
        else:
            out[k] = v
    return out


def diff_lines(text):
    """{(kind, "bucket/key")} from the difference lines of `comio diff` (the last line is the summary)."""
    out = set()
    lines = text.splitlines()
    for line in lines[:-1]:
        kind, rest = line[:18].strip(), line[19:]
        assert kind in ("missing on target", "extra on target", "different"), "unexpected line %r" % line
        out.add((kind, rest.split("  ", 1)[0]))
    return out, lines[-1] if lines else ""


STABLE_STATUS = ("enabled", "mode", "repld", "events_queued", "events_replicated", "events_failed", "events_pending",
                 "bytes_pending", "bytes_replicated", "log_head_seq", "log_pending", "last_replication")


def _stable(st):
    out = {k: st[k] for k in STABLE_STATUS}
    out["remote"] = None if st["remote"] is None else (st["remote"]["url"], st["remote"]["state"])
    return out


# --- comio status ---------------------------------------------------------------------------------------------------


def test_status_with_repld_running_and_stopped(sites, tmp_path):
    token = new_token()
    a, b = sites(a_kw={"access_token": token})
    ca = a.client()
    for i in range(5):
        assert ca.put("stat", "k%d" % i, b"v" * 1000).status == 200
    converge_or_fail(a, b)
    wait_until(lambda: a.status()["events_pending"] == 0, 20, what="A caught up")

    # the status endpoint needs A's access token: refused without, every way of giving it works
    r = comio_run("status", "--url", a.url(), expect=3)
    assert "401" in r.stderr and "--token" in r.stderr, r.stderr
    r = comio_run("status", "--url", a.url(), "--token", token, expect=0)
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    assert comio_run("status", "--url", a.url(), "--token-file", token_file, expect=0).stdout == r.stdout
    assert comio_run("status", "--url", a.url() + "/", env=_env({"COMIO_TOKEN": token}), expect=0).stdout == r.stdout

    lines = status_lines(r.stdout)
    print(r.stdout)
    assert lines["site"] == a.url() and lines["replication"] == "enabled (async)", lines
    assert lines["repld"] == "running" and lines["remote"] == "%s, up" % b.url(), lines
    assert lines["events queued"] == "5" and lines["events replicated"] == "5", lines
    assert lines["events pending"] == "0" and lines["events failed"] == "0" and lines["lag"] == "0 ms", lines
    assert lines["bytes replicated"] == "4.9 KiB (5000 bytes)", lines
    assert "problem" not in lines, lines
    comio_run("status", "--url", a.url(), "--token", token, "--max-lag", "1h", expect=0)

    r = comio_run("status", "--url", a.url(), "--token", token, "--json", expect=0)
    assert _stable(json.loads(r.stdout)) == _stable(a.status())
    assert json.loads(r.stdout)["repld"] == "running"

    # repld stopped: storaged answers from LMDB, and that deserves an alert
    a.stop_repld()
    assert ca.put("stat", "pending", b"x" * 3000).status == 200
    r = comio_run("status", "--url", a.url(), "--token", token, expect=1)
    lines = status_lines(r.stdout)
    print(r.stdout)
    assert lines["repld"] == "down" and lines["remote"].startswith("unknown"), lines
    assert lines["events pending"] == "1" and lines["bytes pending"] == "2.9 KiB (3000 bytes)", lines
    assert "repld is down" in lines["problem"], lines
    r = comio_run("status", "--url", a.url(), "--token", token, "--json", expect=1)
    st = json.loads(r.stdout)
    assert st["repld"] == "down" and _stable(st) == _stable(a.status()), st

    # the replica: replication is off there, nothing to alert on
    lines = status_lines(comio_run("status", "--url", b.url(), expect=0).stdout)
    assert lines["replication"] == "disabled" and lines["repld"] == "off", lines


def test_status_replica_down_and_max_lag(sites):
    a, b = sites(start=False)
    a.start()  # the replica never starts: repld backs off
    assert a.client().put("stat", "k", b"v").status == 200

    def backing_off():
        r = comio_run("status", "--url", a.url(), "--json")
        st = json.loads(r.stdout) if r.returncode in (0, 1) else None
        return r if st and st["remote"] and st["remote"]["state"] == "backing_off" and st["lag_seconds"] > 0 else None

    wait_until(backing_off, 20, what="A's repld backing off with an event pending")
    r = comio_run("status", "--url", a.url(), "--max-lag", "0ms", expect=1)
    lines = status_lines(r.stdout)
    print(r.stdout)
    assert lines["remote"].startswith("%s, backing_off (retry in " % b.url()), lines
    assert lines["remote error"], lines
    problems = lines["problem"] if isinstance(lines["problem"], list) else [lines["problem"]]
    assert any("backing off" in p for p in problems) and any("--max-lag" in p for p in problems), problems


def test_status_errors_and_usage(server):
    comio_run("status", "--url", "http://127.0.0.1:%d" % comio.free_port(), "--timeout", "2s", expect=3)
    r = comio_run("status", "--url", server.url(), expect=0)  # replication off, no token needed
    assert status_lines(r.stdout)["replication"] == "disabled"
    for bad in (["--bogus"], ["--url"], ["--url", "ftp://x"], ["--timeout", "soon"], ["--max-lag", "-1s"],
                ["--token", "two words"], ["--token-file", "/nonexistent/token"]):
        r = comio_run("status", *bad, expect=2)
        assert r.stderr.startswith("comio status:") and r.stdout == "", (bad, r.stderr)
    assert "usage: comio status" in comio_run("status", "--help", expect=0).stdout
    assert "status" in comio_run("help", expect=0).stdout


# --- comio diff -----------------------------------------------------------------------------------------------------


def _diff(a, b, *args, expect=None):
    return comio_run("diff", "--source", a.url(), "--target", b.url(), *args, expect=expect)


def test_diff_equal_and_unequal_sites(sites):
    a, b = sites()
    ca, cb = a.client(), b.client()
    for bucket in ("dfa", "dfb"):
        for i in range(20):
            assert ca.put(bucket, "k%02d" % i, b"%s-%d" % (bucket.encode(), i)).status == 200
    converge_or_fail(a, b)
    r = _diff(a, b, expect=0)
    assert r.stdout == "40 keys in 2 buckets (source 40, target 40): no differences\n", r.stdout

    # differences written straight to the replica, and on A while repld is stopped
    a.stop_repld()
    assert cb.put("dfa", "k03", b"longer than it was").status == 200          # different size
    assert cb.put("dfa", "k04", b"dfa-X").status == 200                       # same size, different ETag
    assert cb.delete("dfa", "k05").status == 204                              # missing on target
    assert cb.put("dfa", "k05a", b"only on B").status == 200                  # extra on target
    assert ca.put("dfb", "k99", b"only on A").status == 200                   # missing on target
    assert cb.put("dfonlyb", "x", b"bucket only on B").status == 200          # extra, in a bucket A lacks
    assert ca.put("dfonlya", "y", b"bucket only on A").status == 200          # missing, in a bucket B lacks
    expected = {("different", "dfa/k03"), ("different", "dfa/k04"), ("missing on target", "dfa/k05"),
                ("extra on target", "dfa/k05a"), ("missing on target", "dfb/k99"), ("extra on target", "dfonlyb/x"),
                ("missing on target", "dfonlya/y")}

    r = _diff(a, b, expect=1)
    print(r.stdout)
    got, summary = diff_lines(r.stdout)
    assert got == expected, got ^ expected
    assert summary == "44 keys in 4 buckets (source 42, target 41): 3 missing on target, 2 extra on target, 2 different", summary
    assert "dfa/k03  source: 5 bytes, etag %s; target: 18 bytes, etag %s" % (md5(b"dfa-3"), md5(b"longer than it was")) in r.stdout

    # source and target swapped: missing and extra swap too
    r = comio_run("diff", "--source", b.url(), "--target", a.url(), expect=1)
    got, _ = diff_lines(r.stdout)
    swap = {"missing on target": "extra on target", "extra on target": "missing on target", "different": "different"}
    assert got == {(swap[k], key) for k, key in expected}, got

    # --json: every difference with both sides, and complete counts
    r = _diff(a, b, "--json", expect=1)
    doc = json.loads(r.stdout)
    kinds = {"missing": "missing on target", "extra": "extra on target", "different": "different"}
    assert {(kinds[d["type"]], "%s/%s" % (d["bucket"], d["key"])) for d in doc["differences"]} == expected, doc
    k04 = [d for d in doc["differences"] if d["key"] == "k04"][0]
    sides = [(d["size"], d["etag"], d["origin"]) for d in (k04["source"], k04["target"])]
    assert sides == [(5, md5(b"dfa-4"), "site-a"), (5, md5(b"dfa-X"), "site-b")], k04
    assert doc["complete"] is True and doc["printed"] == 7
    assert doc["counts"] == {"buckets": 4, "keys": 44, "source_keys": 42, "target_keys": 41, "missing": 3, "extra": 2,
                             "different": 2, "metadata": 0, "versions": 0, "differences": 7}, doc["counts"]
    by_name = {x["name"]: x for x in doc["buckets"]}
    assert by_name["dfonlyb"]["on_source"] is False and by_name["dfonlyb"]["on_target"] is True, by_name
    assert (by_name["dfa"]["missing"], by_name["dfa"]["extra"], by_name["dfa"]["different"]) == (1, 1, 2), by_name

    # --limit prints fewer, counts stay complete; --quiet prints nothing
    r = _diff(a, b, "--limit", "2", "--json", expect=1)
    doc = json.loads(r.stdout)
    assert len(doc["differences"]) == 2 and doc["printed"] == 2 and doc["counts"]["differences"] == 7, doc
    r = _diff(a, b, "--limit", "0", expect=1)
    assert r.stdout.splitlines()[-1] == "(printed 0 of the 7 differences: --limit)", r.stdout
    r = _diff(a, b, "--quiet", expect=1)
    assert r.stdout == "" and r.stderr == "", r

    # one bucket
    r = _diff(a, b, "--bucket", "dfb", expect=1)
    got, summary = diff_lines(r.stdout)
    assert got == {("missing on target", "dfb/k99")}, got
    assert summary.startswith("21 keys in 1 bucket (source 21, target 20)"), summary
    r = _diff(a, b, "--bucket", "dfonlyb", "--json", expect=1)
    assert json.loads(r.stdout)["counts"]["extra"] == 1

    # back in step: the same bytes again, but written on B, so at B's versions, not A's
    assert cb.put("dfa", "k03", b"dfa-3").status == 200
    assert cb.put("dfa", "k04", b"dfa-4").status == 200
    assert cb.put("dfa", "k05", b"dfa-5").status == 200
    assert cb.delete("dfa", "k05a").status == 204
    assert cb.delete("dfonlyb", "x").status == 204  # an empty bucket counts as no bucket
    a.start_repld()
    wait_until(lambda: _diff(a, b, "--bucket", "dfb").returncode == 0 and a.status()["events_pending"] == 0, 30,
               what="A caught up")
    r = _diff(a, b, expect=1)
    got = [(line[:18].strip(), line[19:].split("  ", 1)[0]) for line in r.stdout.splitlines()[:-1]]
    assert got == [("different version", "dfa/k0%d" % i) for i in (3, 4, 5)], r.stdout
    assert r.stdout.splitlines()[-1].endswith("0 different, 3 of another version"), r.stdout
    assert "version %s from site-a; target: " % ca.get("dfa", "k03").header("X-Comio-Version") in r.stdout, r.stdout
    doc = json.loads(_diff(a, b, "--json", expect=1).stdout)
    assert doc["counts"]["versions"] == 3 and doc["counts"]["differences"] == 3, doc["counts"]
    assert {d["type"] for d in doc["differences"]} == {"version"}, doc
    r = _diff(a, b, "--no-versions", expect=0)
    assert r.stdout.endswith("no differences\n"), r.stdout


def test_diff_of_two_empty_sites(sites):
    """No bucket on either side: nothing to sort (qsort of NULL is undefined behaviour, which
    the sanitizer build reports)."""
    a, b = sites(repld=False)
    r = _diff(a, b, expect=0)
    assert r.stdout == "0 keys in 0 buckets (source 0, target 0): no differences\n", r.stdout


def test_diff_long_keys_and_odd_bytes(make_server):
    """Keys longer than storaged's LMDB room are stored by prefix and hash; the listing must
    still come in byte order, page boundaries may fall inside a run of them, and the merge
    must agree. Odd bytes (control, non-ASCII, '%', '+', '&') go through the query string."""
    a, b = make_server(), make_server()
    ca, cb = a.client(), b.client()
    room = 480 - len("lng") - 2 - 16  # common/meta.c: objkey_room()
    p = "p" * room
    keys = [p, p[:-1] + "q", "o", "q", "a%b+c&d=e", "tab\there", "caf\u00e9", "\u00ff\u00fe", "z" * 1024]
    keys += [p + tail for tail in ("", "a", "b", "0" * 500, "1", "\u00e9", "~" * 200)]
    keys += [p[:-1] + "q" + "r" * 300, p[:-1] + "o" + "r" * 300]
    keys = sorted(set(keys), key=lambda k: k.encode())
    for k in keys:
        assert ca.put("lng", k, k.encode()[:50]).status == 200, k
    missing = {p + "b", "tab\there", p + "0" * 500}
    different = {p + "~" * 200, "caf\u00e9"}
    extra = [p + "c", p + "a" + "x" * 400, "\u00ff\u00ff"]
    for k in keys:
        if k in missing:
            continue
        assert cb.put("lng", k, b"changed" if k in different else k.encode()[:50]).status == 200, k
    for k in extra:
        assert cb.put("lng", k, b"extra").status == 200, k

    # the API's guarantee the merge relies on: bytewise key order, across pages
    listed, _ = ca.list_all("lng", max_keys=2, max_pages=100)
    assert listed == keys, "storaged does not list in byte order of the key"

    for page in ("1", "2", "3", "1000"):
        # two sites written one by one, never replicated: the same bytes at other versions (--no-versions)
        r = comio_run("diff", "--source", a.url(), "--target", b.url(), "--json", "--page-size", page, "--no-versions",
                      expect=1)
        doc = json.loads(r.stdout)
        got = {(d["type"], d["key"]) for d in doc["differences"]}
        want = ({("missing", k) for k in missing} | {("different", k) for k in different} | {("extra", k) for k in extra})
        assert got == want, (page, got ^ want)
        assert doc["counts"]["keys"] == len(keys) + len(extra), doc["counts"]
    r = comio_run("diff", "--source", a.url(), "--target", a.url(), "--page-size", "2", expect=0)
    assert r.stdout == "%d keys in 1 bucket (source %d, target %d): no differences\n" % ((len(keys),) * 3), r.stdout
    r = comio_run("diff", "--source", a.url(), "--target", b.url(), expect=1)
    assert "missing on target  lng/tab\\x09here" in r.stdout, r.stdout  # a control byte is shown escaped


def test_diff_keys_that_are_not_utf8(make_server):
    """Keys of any bytes: equal sites agree, a key differing in one byte is one missing and one
    extra, and --json is strict UTF-8 JSON whose keys give the bytes back (surrogateescape)."""
    a, b = make_server(), make_server()
    ca, cb = a.client(), b.client()
    keys = [b"\xff\xfe", b"\xc0\x80", b"\xed\xa0\x80", b"caf\xc3\xa9", b"x\x80y", b"\\udc80", b"\xf4\x90\x80\x80"]
    for k in keys:
        assert ca.put("raw", k, k).status == 200, k
        assert cb.put("raw", k, k).status == 200, k
    r = comio_run("diff", "--source", a.url(), "--target", b.url(), "--page-size", "2", "--no-versions", expect=0)
    assert r.stdout == "%d keys in 1 bucket (source %d, target %d): no differences\n" % ((len(keys),) * 3), r.stdout

    assert cb.delete("raw", b"x\x80y").status == 204
    assert cb.put("raw", b"x\x81y", b"x\x80y").status == 200
    args = ["diff", "--source", a.url(), "--target", b.url(), "--json", "--page-size", "3", "--no-versions"]
    out = subprocess.run([str(comio_path())] + args, stdin=subprocess.DEVNULL, capture_output=True, timeout=CLI_TIMEOUT,
                         env=_env())
    _check_sanitizer(args, out.stderr.decode("utf-8", "replace"))
    assert out.returncode == 1, out
    doc = json.loads(out.stdout.decode("utf-8"))  # strict: the document is UTF-8
    got = {(d["type"], d["key"].encode("utf-8", "surrogateescape")) for d in doc["differences"]}
    assert got == {("missing", b"x\x80y"), ("extra", b"x\x81y")}, got
    assert doc["counts"]["keys"] == len(keys) + 1, doc["counts"]

    r = comio_run("diff", "--source", a.url(), "--target", b.url(), "--no-versions", expect=1)
    assert "missing on target  raw/x\\x80y  " in r.stdout, r.stdout  # bytes that are not UTF-8 shown as \xHH
    assert "extra on target    raw/x\\x81y  " in r.stdout, r.stdout


def _fill(site, bucket, count, keyfmt, workers=8):
    """PUTs `count` small objects on several connections (group commits keep it quick)."""
    errors = []

    def work(k):
        c = site.client(register=False)
        try:
            for i in range(k, count, workers):
                r = c.put(bucket, keyfmt % i, b"v%d" % i)
                if r.status != 200:
                    errors.append(r)
                    return
        except Exception as e:  # reported below
            errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads) and not errors, errors[:3]


@pytest.mark.long
def test_diff_thousands_of_keys_in_bounded_memory(sites, tmp_path):
    """5000 keys over 50 pages per site, a few differences scattered: exact counts, and the peak
    memory of comio diff does not grow with the number of keys (it holds one page per site)."""
    a, b = sites()
    keyfmt = "%05d/" + "k" * 200  # long keys: a listing kept in memory would show
    _fill(a, "big", 5000, keyfmt)
    _fill(a, "small", 500, keyfmt)
    # under AddressSanitizer freed memory waits in a quarantine and counts as in use: no quarantine here
    env = _env()
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
    converge_or_fail(a, b, sample=4)
    a.stop_repld()
    ca, cb = a.client(), b.client()
    missing = [17, 2500, 4999]
    for i in missing:
        assert cb.delete("big", keyfmt % i).status == 204
    extra = ["00000", "02500~", "99999"]
    for k in extra:
        assert cb.put("big", k, b"extra").status == 200
    different = [0, 1234, 3333, 4998]
    for i in different:
        assert ca.put("big", keyfmt % i, b"new %d" % i).status == 200

    rc, out, err, rss_big = comio_measured(tmp_path, "diff", "--source", a.url(), "--target", b.url(), "--bucket", "big",
                                           "--page-size", "100", "--json", env=env)
    assert rc == 1, (rc, err)
    doc = json.loads(out)
    assert doc["counts"] == {"buckets": 1, "keys": 5003, "source_keys": 5000, "target_keys": 5000, "missing": 3, "extra": 3,
                             "different": 4, "metadata": 0, "versions": 0, "differences": 10}, doc["counts"]
    got = {(d["type"], d["key"]) for d in doc["differences"]}
    want = ({("missing", keyfmt % i) for i in missing} | {("extra", k) for k in extra} |
            {("different", keyfmt % i) for i in different})
    assert got == want, got ^ want

    rc, out, err, rss_small = comio_measured(tmp_path, "diff", "--source", a.url(), "--target", b.url(), "--bucket", "small",
                                             "--page-size", "100", "--json", env=env)
    assert rc == 0 and json.loads(out)["counts"]["keys"] == 500, (rc, out[-500:], err)
    print("comio diff peak RSS: %d KiB for 500 keys, %d KiB for 5003 keys (10 vs 50 pages per site)" % (rss_small, rss_big))
    # keeping the 10,000 listed keys of 206 bytes would add 2 MB or more
    assert rss_big - rss_small < 1024, "comio diff grew by %d KiB from 500 to 5000 keys" % (rss_big - rss_small)


def test_diff_progress_on_a_terminal(make_server):
    """On a terminal, stderr shows keys compared so far and the rate; the line is erased at the end."""
    a = make_server()
    c = a.client()
    for i in range(300):
        assert c.put("prog", "k%04d" % i, b"x").status == 200
    master, slave = pty.openpty()
    chunks = []

    def reader():
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        p = subprocess.run([str(comio_path()), "diff", "--source", a.url(), "--target", a.url(), "--page-size", "10"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, timeout=CLI_TIMEOUT,
                           env=_env())
    finally:
        os.close(slave)
    t.join(10)
    os.close(master)
    shown = b"".join(chunks).decode(errors="replace")
    _check_sanitizer(["diff"], shown)
    assert p.returncode == 0, (p.returncode, shown)
    assert "keys compared" in shown and "keys/s" in shown, repr(shown)
    assert shown.endswith("\r\x1b[K"), repr(shown[-80:])
    assert p.stdout.decode() == "300 keys in 1 bucket (source 300, target 300): no differences\n"
    # not a terminal: no progress at all
    r = comio_run("diff", "--source", a.url(), "--target", a.url(), "--page-size", "10", expect=0)
    assert r.stderr == "", r.stderr


def test_diff_errors_and_usage(server, tmp_path):
    dead = "http://127.0.0.1:%d" % comio.free_port()
    r = comio_run("diff", "--source", server.url(), "--target", dead, "--timeout", "2s", expect=3)
    assert r.stderr.startswith("comio diff: target: ") and r.stdout == "", r.stderr
    r = comio_run("diff", "--source", server.url(), "--target", dead, "--timeout", "2s", "--json", expect=3)
    doc = json.loads(r.stdout)  # a complete document even then, saying it is not
    assert doc["complete"] is False and "target" in doc["error"], doc
    # an HTTP error from a site (storaged refuses the bucket name) is an error, not a difference
    r = comio_run("diff", "--source", server.url(), "--target", server.url(), "--bucket", "Not_A_Bucket", expect=3)
    assert "400" in r.stderr, r.stderr
    r = comio_run("diff", "--source", server.url(), "--target", server.url(), "--bucket", "nosuchbucket", expect=3)
    assert "no bucket nosuchbucket on either site" in r.stderr, r.stderr
    # a 404 that is not storaged's NoSuchBucket (a wrong URL) is an error, not an empty bucket
    assert server.client().put("errs", "k", b"v").status == 200
    comio_run("diff", "--source", server.url(), "--target", server.url(), "--bucket", "errs", expect=0)
    r = comio_run("diff", "--source", server.url(), "--target", server.url("/admin"), "--bucket", "errs", expect=3)
    assert "404" in r.stderr and "NotFound" in r.stderr, r.stderr
    for bad in (["--source", server.url()], ["--target", server.url()], ["--bogus"],
                ["--source", server.url(), "--target", "localhost:1"],
                ["--source", server.url(), "--target", server.url(), "--page-size", "0"],
                ["--source", server.url(), "--target", server.url(), "--page-size", "1001"],
                ["--source", server.url(), "--target", server.url(), "--limit", "-1"],
                ["--source", server.url(), "--target", server.url(), "--json", "--quiet"],
                ["--source", server.url(), "--target", server.url(), "--timeout", "0"],
                ["--source", server.url(), "--target", server.url(), "--token-file", str(tmp_path / "none")]):
        r = comio_run("diff", *bad, expect=2)
        assert r.stderr.startswith("comio diff:") and r.stdout == "", (bad, r.stderr)
    assert "usage: comio diff" in comio_run("diff", "--help", expect=0).stdout
