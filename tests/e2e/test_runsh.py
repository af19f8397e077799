"""tests/run.sh itself: every step it runs reaches the summary and the exit status.

A step that ran but was missing from STEPS (the formatting check once was) could
fail without failing the run. These tests read run.sh as CI runs it.
"""
import os
import re
import subprocess

RUN_SH = os.path.join(os.path.dirname(__file__), "..", "run.sh")


def _text():
    with open(RUN_SH) as f:
        return f.read()


def test_every_step_run_is_in_steps():
    text = _text()
    run = set(re.findall(r"^\s*(?:if ! )?step (\w+) ", text, re.M))
    declared = set()
    for m in re.finditer(r"STEPS(?:\+)?=\(([^)]*)\)", text):
        declared.update(m.group(1).split())
    assert run, "no step found in run.sh"
    assert run <= declared, f"steps run but never summarised: {sorted(run - declared)}"


def _functions():
    """step() and summary() exactly as run.sh defines them."""
    text = _text()
    out = []
    for name in ("summary", "step"):
        m = re.search(r"^%s\(\) \{\n.*?^\}\n" % name, text, re.M | re.S)
        assert m, f"{name}() not found in run.sh"
        out.append(m.group(0))
    return "\n".join(out)


def _run(script):
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)


def test_a_failing_step_fails_the_summary():
    script = "declare -A RESULT=(); SANITIZE=0; STEPS=(a b); RESULT[a]='not run'; RESULT[b]='not run'\n"
    script += _functions() + "\nstep a true; step b false || true; summary"
    r = _run(script)
    assert r.returncode != 0, r.stdout
    assert "== FAILED" in r.stdout


def test_a_step_missing_from_steps_fails_the_run():
    script = "declare -A RESULT=(); SANITIZE=0; STEPS=(a); RESULT[a]='not run'\n"
    script += _functions() + "\nstep a true; step stray true || true; summary"
    r = _run(script)
    assert r.returncode != 0, r.stdout + r.stderr
    assert "stray" in r.stdout + r.stderr
