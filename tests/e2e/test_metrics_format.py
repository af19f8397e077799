"""test_metrics_format.py - storaged's /metrics against a strict reading of the
Prometheus text exposition format 0.0.4, in every state a site can be in.

The parser is written here (no external package) and is stricter than
Prometheus itself: besides the grammar it checks the conventions ComIO follows
(every family has HELP and TYPE, counters end in _total, base units in the
name). It is exercised on broken input first, so a parser that accepts
anything cannot pass.

States: a standalone site; a primary with repld running after batches went
out; the same primary with repld stopped; the replica after applying batches.
"""

import math
import re
from pathlib import Path

import pytest

from harness.replication import converge_or_fail, wait_until

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
FLOAT = re.compile(r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|Inf)|NaN")
TIMESTAMP = re.compile(r"-?\d+")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")

# Words that mean a unit in a metric name: the base unit must be its suffix
# (before _total), and no other unit of the same dimension may appear.
UNIT_WORDS = {"bytes": "_bytes", "seconds": "_seconds", "duration": "_seconds", "latency": "_seconds", "lag": "_seconds",
              "age": "_seconds", "delay": "_seconds", "uptime": "_seconds"}
NON_BASE_UNITS = {"ms", "millis", "milliseconds", "us", "microseconds", "ns", "nanoseconds", "minutes", "hours", "days", "kb",
                  "kib", "mb", "mib", "gb", "gib", "kilobytes", "megabytes", "gigabytes", "bits", "percent"}


class FormatError(AssertionError):
    pass


def _fail(lineno, line, why):
    raise FormatError("line %d: %s\n    %r" % (lineno, why, line))


def _parse_float(text):
    return float(text.replace("Inf", "inf"))


def _parse_labels(s, pos, lineno, line):
    """Parses '{name="value",...}' starting at s[pos] == '{'. Returns (labels dict, position after '}')."""
    labels = {}
    pos += 1
    while True:
        if pos < len(s) and s[pos] == "}":
            return labels, pos + 1
        m = LABEL_NAME.match(s, pos)
        if not m:
            _fail(lineno, line, "bad label name at column %d" % pos)
        name = m.group(0)
        if name.startswith("__"):
            _fail(lineno, line, "label name %r is reserved (leading __)" % name)
        if name in labels:
            _fail(lineno, line, "label %r given twice" % name)
        pos = m.end()
        if s[pos:pos + 2] != '="':
            _fail(lineno, line, "expected '=\"' after label %r" % name)
        pos += 2
        value = []
        while True:
            if pos >= len(s):
                _fail(lineno, line, "unterminated label value")
            c = s[pos]
            if c == '"':
                pos += 1
                break
            if c == "\\":
                esc = s[pos + 1:pos + 2]
                if esc not in ("\\", '"', "n"):
                    _fail(lineno, line, "bad escape \\%s in a label value (only \\\\ \\\" \\n)" % esc)
                value.append("\n" if esc == "n" else esc)
                pos += 2
                continue
            value.append(c)
            pos += 1
        labels[name] = "".join(value)
        if pos < len(s) and s[pos] == ",":
            pos += 1
            continue
        if pos < len(s) and s[pos] == "}":
            return labels, pos + 1
        _fail(lineno, line, "expected ',' or '}' after a label value")


def _help_escapes_ok(doc):
    i = 0
    while i < len(doc):
        if doc[i] == "\\":
            if doc[i + 1:i + 2] not in ("\\", "n"):
                return False
            i += 2
        else:
            i += 1
    return True


def _family_of(sample, families):
    """The family a sample name belongs to: histograms and summaries own their suffixed series."""
    for suffix, kinds in (("_bucket", ("histogram",)), ("_sum", ("histogram", "summary")), ("_count", ("histogram", "summary"))):
        if sample.endswith(suffix):
            base = sample[:-len(suffix)]
            if families.get(base, {}).get("type") in kinds:
                return base
    return sample


def parse_exposition(text):
    """Parses text strictly. Returns {family: {"help", "type", "samples": [(name, labels, value, ts)]}} in
    order of appearance. Raises FormatError naming the line of the first violation."""
    if not text.endswith("\n"):
        raise FormatError("the last line does not end with a line feed")
    if "\r" in text:
        raise FormatError("carriage return in the exposition")
    families = {}
    done = set()  # families whose samples are over: they may not come back
    current = None
    series = set()
    for lineno, line in enumerate(text[:-1].split("\n"), 1):
        if line == "":
            continue  # empty lines are ignored by the format
        if line != line.strip(" \t"):
            _fail(lineno, line, "leading or trailing whitespace")
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) < 2 or parts[0] != "#" or parts[1] not in ("HELP", "TYPE"):
                continue  # a plain comment
            if len(parts) < 3 or not METRIC_NAME.fullmatch(parts[2]):
                _fail(lineno, line, "%s without a valid metric name" % parts[1])
            name = parts[2]
            fam = families.setdefault(name, {"help": None, "type": None, "samples": []})
            if name in done or fam["samples"]:
                _fail(lineno, line, "%s for %s after its samples" % (parts[1], name))
            if parts[1] == "HELP":
                if fam["help"] is not None:
                    _fail(lineno, line, "second HELP for %s" % name)
                doc = parts[3] if len(parts) > 3 else ""
                if not _help_escapes_ok(doc):
                    _fail(lineno, line, "bad escape in HELP text (only \\\\ and \\n)")
                fam["help"] = doc
            else:
                if fam["type"] is not None:
                    _fail(lineno, line, "second TYPE for %s" % name)
                if len(parts) != 4 or parts[3] not in TYPES:
                    _fail(lineno, line, "TYPE must be one of %s" % ", ".join(TYPES))
                fam["type"] = parts[3]
            if current is not None and current != name:
                done.add(current)
            current = name
            continue
        m = METRIC_NAME.match(line)
        if not m:
            _fail(lineno, line, "a sample must start with a metric name")
        sample = m.group(0)
        pos = m.end()
        labels = {}
        if pos < len(line) and line[pos] == "{":
            labels, pos = _parse_labels(line, pos, lineno, line)
        rest = line[pos:]
        if not rest.startswith(" ") and not rest.startswith("\t"):
            _fail(lineno, line, "expected whitespace before the value")
        fields = rest.split()
        if len(fields) not in (1, 2):
            _fail(lineno, line, "expected a value and an optional timestamp")
        if not FLOAT.fullmatch(fields[0]):
            _fail(lineno, line, "value %r is not a float" % fields[0])
        ts = None
        if len(fields) == 2:
            if not TIMESTAMP.fullmatch(fields[1]):
                _fail(lineno, line, "timestamp %r is not an integer" % fields[1])
            ts = int(fields[1])
        fam_name = _family_of(sample, families)
        if fam_name in done:
            _fail(lineno, line, "samples of %s are not contiguous" % fam_name)
        if current is not None and current != fam_name:
            done.add(current)
        current = fam_name
        fam = families.setdefault(fam_name, {"help": None, "type": None, "samples": []})
        key = (sample, frozenset(labels.items()))
        if key in series:
            _fail(lineno, line, "duplicate series")
        series.add(key)
        fam["samples"].append((sample, labels, _parse_float(fields[0]), ts))
    return families


def check_conventions(families):
    """The semantic rules: HELP and TYPE everywhere, counter and unit names, histogram shape.
    Returns the list of violations (empty when all is well)."""
    out = []
    for name, fam in families.items():
        kind = fam["type"]
        if fam["help"] is None or not fam["help"].strip():
            out.append("%s: no HELP text" % name)
        if kind is None:
            out.append("%s: no TYPE" % name)
            continue
        base = name[:-len("_total")] if name.endswith("_total") else name
        if kind == "counter" and not name.endswith("_total"):
            out.append("%s: a counter's name must end in _total" % name)
        if kind != "counter" and name.endswith("_total"):
            out.append("%s: only counters end in _total (this is a %s)" % (name, kind))
        if kind in ("histogram", "summary") and re.search(r"_(bucket|sum|count)$", name):
            out.append("%s: a %s's name may not end in _bucket, _sum or _count" % (name, kind))
        words = base.split("_")
        for w in words:
            if w in NON_BASE_UNITS:
                out.append("%s: %r is not a base unit (use seconds or bytes)" % (name, w))
        for w, suffix in UNIT_WORDS.items():
            if w in words and not base.endswith(suffix):
                out.append("%s: %r implies a unit: the name should end in %s%s" %
                           (name, w, suffix, "_total" if kind == "counter" else ""))
        for sample, labels, value, _ in fam["samples"]:
            if kind == "counter" and (math.isnan(value) or value < 0):
                out.append("%s%s: a counter cannot be %r" % (sample, labels, value))
            if kind in ("counter", "gauge", "untyped") and sample != name:
                out.append("%s: sample %s does not carry the family's name" % (name, sample))
        if kind == "histogram":
            out += _check_histogram(name, fam["samples"])
    return out


def _check_histogram(name, samples):
    out = []
    groups = {}
    for sample, labels, value, _ in samples:
        rest = {k: v for k, v in labels.items() if k != "le"}
        g = groups.setdefault(frozenset(rest.items()), {"buckets": [], "sum": None, "count": None})
        if sample == name + "_bucket":
            if "le" not in labels:
                out.append("%s_bucket without an le label" % name)
                continue
            if not FLOAT.fullmatch(labels["le"]):
                out.append("%s_bucket: le=%r is not a float" % (name, labels["le"]))
                continue
            g["buckets"].append((_parse_float(labels["le"]), value))
        elif sample == name + "_sum":
            g["sum"] = value
        elif sample == name + "_count":
            g["count"] = value
        else:
            out.append("%s: unexpected sample %s in a histogram" % (name, sample))
    for key, g in groups.items():
        where = "%s%s" % (name, dict(key) if key else "")
        bounds = [b for b, _ in g["buckets"]]
        counts = [c for _, c in g["buckets"]]
        if not bounds or bounds[-1] != math.inf:
            out.append("%s: the last bucket must be le=\"+Inf\"" % where)
        if any(b2 <= b1 for b1, b2 in zip(bounds, bounds[1:])):
            out.append("%s: le bounds are not strictly increasing: %r" % (where, bounds))
        if any(c2 < c1 for c1, c2 in zip(counts, counts[1:])):
            out.append("%s: bucket counts are not cumulative: %r" % (where, counts))
        if g["sum"] is None or g["count"] is None:
            out.append("%s: _sum and _count are both required" % where)
        elif counts and g["count"] != counts[-1]:
            out.append("%s: _count %r differs from the +Inf bucket %r" % (where, g["count"], counts[-1]))
    return out


def check_metrics(client, what):
    """Scrapes twice; fails on any format or convention violation, or a counter that went down.
    Returns the families of the second scrape."""
    scrapes = []
    for _ in range(2):
        r = client.raw("GET", "/metrics")
        assert r.status == 200, "%s: /metrics answered %r" % (what, r)
        ctype = r.headers.get("Content-Type") or ""
        assert ctype.startswith("text/plain") and "version=0.0.4" in ctype, "%s: Content-Type %r" % (what, ctype)
        text = r.body.decode("utf-8")
        try:
            fams = parse_exposition(text)
        except FormatError as e:
            raise AssertionError("%s: /metrics breaks the text format: %s\n--- exposition:\n%s" % (what, e, text))
        problems = check_conventions(fams)
        assert not problems, "%s: /metrics breaks the conventions:\n  %s\n--- exposition:\n%s" % (what, "\n  ".join(problems), text)
        scrapes.append(fams)
    before, after = scrapes
    for name, fam in before.items():
        if fam["type"] not in ("counter", "histogram"):
            continue
        later = {(s, frozenset(l.items())): v for s, l, v, _ in after.get(name, {}).get("samples", [])}
        for s, l, v, _ in fam["samples"]:
            if s.endswith("_bucket") or s.endswith("_count") or fam["type"] == "counter":
                v2 = later.get((s, frozenset(l.items())))
                assert v2 is not None and v2 >= v, "%s: %s%s went from %r to %r between two scrapes" % (what, s, l, v, v2)
    print("%s: %d families, %d samples" % (what, len(after), sum(len(f["samples"]) for f in after.values())))
    return after


def _exposition_problems(text):
    try:
        return check_conventions(parse_exposition(text))
    except FormatError as e:
        return [str(e)]


GOOD = """# HELP x_requests_total Requests.
# TYPE x_requests_total counter
x_requests_total{method="GET",path="a\\\\b\\"c\\nd"} 3
x_requests_total{method="PUT"} 1 1700000000000
# a plain comment
# HELP x_latency_seconds Latency.
# TYPE x_latency_seconds histogram
x_latency_seconds_bucket{le="0.1"} 1
x_latency_seconds_bucket{le="1"} 2
x_latency_seconds_bucket{le="+Inf"} 3
x_latency_seconds_sum 4.5
x_latency_seconds_count 3
# HELP x_free_bytes Free.
# TYPE x_free_bytes gauge
x_free_bytes -1.5e3
"""


@pytest.mark.parametrize("bad, why", [
    (GOOD.rstrip("\n"), "line feed"),
    (GOOD.replace('{method="PUT"} 1 1700000000000', '{method="PUT"} 1\nx_requests_total{method="PUT"} 2'), "duplicate"),
    (GOOD + "x_requests_total 5\n", "not contiguous"),
    (GOOD.replace("# TYPE x_free_bytes gauge\n", "") + "# TYPE x_free_bytes gauge\n", "after its samples"),
    (GOOD.replace("# HELP x_free_bytes Free.\n", "# HELP x_free_bytes Free.\n# HELP x_free_bytes Again.\n"), "second HELP"),
    (GOOD.replace("gauge", "gauges"), "TYPE must be"),
    (GOOD.replace("x_free_bytes -1.5e3", "x_free_bytes 1,5"), "not a float"),
    (GOOD.replace("x_free_bytes -1.5e3", "x_free_bytes 1 2 3"), "optional timestamp"),
    (GOOD.replace("x_free_bytes -1.5e3", "x_free_bytes 1 1.5"), "not an integer"),
    (GOOD.replace("x_free_bytes -1.5e3", "9x 1"), "metric name"),
    (GOOD.replace('method="PUT"', 'method="P\\tUT"'), "bad escape"),
    (GOOD.replace('method="PUT"', "method='PUT'"), "after label"),
    (GOOD.replace('method="PUT"', '__name="PUT"'), "reserved"),
    (GOOD.replace('method="PUT"', 'method="PUT",method="GET"'), "twice"),
    (GOOD.replace('x_free_bytes -1.5e3', 'x_free_bytes{a="b"c="d"} 1'), "expected ','"),
    (GOOD.replace("x_free_bytes -1.5e3", "x_free_bytes -1.5e3 "), "whitespace"),
    (GOOD.replace("x_requests_total", "x_requests"), "_total"),
    (GOOD.replace("x_free_bytes", "x_free_total"), "only counters"),
    (GOOD.replace("x_free_bytes", "x_bytes_free"), "should end in _bytes"),
    (GOOD.replace("x_free_bytes", "x_lag_ms"), "base unit"),
    (GOOD.replace("# HELP x_free_bytes Free.\n", ""), "no HELP"),
    (GOOD.replace('{le="1"} 2', '{le="1"} 0'), "cumulative"),
    (GOOD.replace('{le="1"} 2', '{le="0.05"} 2'), "strictly increasing"),
    (GOOD.replace('x_latency_seconds_bucket{le="+Inf"} 3\n', ""), "+Inf"),
    (GOOD.replace("x_latency_seconds_count 3", "x_latency_seconds_count 4"), "_count"),
    (GOOD.replace("x_latency_seconds_sum 4.5\n", ""), "_sum and _count"),
    (GOOD.replace('d"} 3\n', 'd"} -3\n'), "counter cannot"),
    (GOOD.replace("# HELP x_free_bytes Free.", "# HELP x_free_bytes Free \\t."), "bad escape in HELP"),
])
def test_parser_refuses_violations(bad, why):
    """The parser is not a rubber stamp: each broken exposition is refused for its own reason."""
    assert _exposition_problems(GOOD) == [], _exposition_problems(GOOD)
    problems = _exposition_problems(bad)
    assert problems, "accepted an exposition that should fail (%s):\n%s" % (why, bad)
    assert any(why in p for p in problems), "refused for another reason than %r: %s" % (why, problems)


def _traffic(c):
    """Replies of several statuses, so comio_http_requests_total has several series."""
    assert c.put("mfmt", "k1", b"hello").status == 200
    assert c.get("mfmt", "k1").status == 200
    assert c.get("mfmt", "nope").status == 404
    assert c.raw("GET", "/mfmt?max-keys=0").status == 400
    assert c.raw("PATCH", "/mfmt/k1").status == 405
    assert c.delete("mfmt", "k1").status == 204


def test_metrics_standalone(make_server):
    srv = make_server()
    c = srv.client()
    _traffic(c)
    fams = check_metrics(c, "standalone")
    assert fams["comio_http_requests_total"]["type"] == "counter"
    assert len(fams["comio_http_requests_total"]["samples"]) >= 5
    assert not any(n.startswith("comio_replication_") for n in fams), "replication families on a standalone site"


def test_metrics_primary_and_replica(sites):
    # B is a sync target, so that the synchronous mode's families are exported (and checked) too
    a, b = sites(a_repl={"mode": "sync", "sync_timeout": "1s"})
    ca = a.client()
    _traffic(ca)
    for i in range(20):
        assert ca.put("mfmt", "obj%02d" % i, b"z" * (i * 100)).status == 200
    converge_or_fail(a, b)
    wait_until(lambda: a.status()["events_pending"] == 0, 20, what="A caught up")

    fams = check_metrics(ca, "primary, repld running")
    seen = set(fams)
    hist = fams.get("comio_replication_batch_duration_seconds")
    assert hist is not None and hist["type"] == "histogram", sorted(fams)
    assert any(s == "comio_replication_batch_duration_seconds_count" and v >= 1 for s, _, v, _ in hist["samples"]), hist

    a.stop_repld()
    r = ca.put("mfmt", "while-down", b"x")  # answered after sync_timeout, as PENDING
    assert r.status == 200 and r.header("X-Comio-Replication") == "PENDING", r
    fams = check_metrics(ca, "primary, repld stopped")
    assert "comio_replication_pending_events" in fams and "comio_replication_batch_duration_seconds" not in fams, sorted(fams)

    fams = check_metrics(b.client(), "replica")
    seen |= set(fams)
    applied = [v for s, l, v, _ in fams["comio_replica_events_total"]["samples"] if l.get("result") == "applied"]
    assert applied and applied[0] >= 20, fams["comio_replica_events_total"]

    # every family a site exports is documented in docs/operations.md, and nothing documented is missing
    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    documented = set(re.findall(r"^\| `(comio_[a-z0-9_]+)", doc, re.M))
    assert seen - documented == set(), "exported but not in docs/operations.md: %s" % sorted(seen - documented)
    assert documented - seen == set(), "in docs/operations.md but never exported: %s" % sorted(documented - seen)
