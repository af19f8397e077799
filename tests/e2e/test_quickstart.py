"""test_quickstart.py - docs/quickstart.md, run as written.

The shell blocks of steps 1 to 5 run in one bash, in a fresh HOME, with the
built binaries first on PATH (step 0 builds them; the suite already has).
Only the ports change, to free ones. The run must print what the guide says
it prints, exit 0, and leave no sanitizer report.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

from harness import comio
from harness.comio import free_port, sanitizer_env, sanitizer_report


# Packaging and the quick start run the same daemons in the plain and the ASan
# passes; under ThreadSanitizer they would only repeat those, at 10x the cost.
pytestmark = pytest.mark.skipif(comio.sanitizer() == "thread", reason="packaging: checked by the plain and ASan passes")

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "quickstart.md"


def guide_script():
    text = GUIDE.read_text()
    start, end = text.index("## 1."), text.index("## For real sites")
    blocks = re.findall(r"```sh\n(.*?)```", text[start:end], re.S)
    assert len(blocks) >= 5, "the guide's shell blocks were not found"
    return "\n".join(blocks)


def test_quickstart_as_written(tmp_path):
    pa, pb = free_port(), free_port()
    script = guide_script().replace("8080", str(pa)).replace("8081", str(pb))
    script = "set -e\n" + script + "\nkill %1 %2\nwait\n"
    env = dict(sanitizer_env(), HOME=str(tmp_path), PATH="%s:%s" % (comio.bin_dir(), os.environ["PATH"]))
    p = subprocess.Popen(["bash", "-c", script], cwd=str(tmp_path), env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
    try:
        out, _ = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, 9)
            p.wait()
    assert p.returncode == 0, out[-6000:]
    assert out.count('"status":"ok"') >= 2, out[-6000:]
    assert "replicated" in out, out[-6000:]
    assert "not in sync" not in out, out[-6000:]
    assert sanitizer_report(out) is None, out[-6000:]
