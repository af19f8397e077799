"""test_install.py - `cmake --install` into a temporary prefix, then two sites run from the installed files.

The build tree comes from COMIO_BUILD_DIR (tests/run.sh sets it). The sites
use the installed example configurations, with only machine-specific values
(paths, ports, URLs) rewritten, the way an operator adapts them.
"""

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness import comio
from harness.comio import Client, free_port, sanitizer_env, sanitizer_report


# Packaging and the quick start run the same daemons in the plain and the ASan
# passes; under ThreadSanitizer they would only repeat those, at 10x the cost.
pytestmark = pytest.mark.skipif(comio.sanitizer() == "thread", reason="packaging: checked by the plain and ASan passes")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    build = os.environ.get("COMIO_BUILD_DIR")
    if not build:
        pytest.skip("COMIO_BUILD_DIR is not set (tests/run.sh sets it to the CMake build tree): install not tried")
    p = tmp_path_factory.mktemp("prefix") / "usr"
    r = subprocess.run(["cmake", "--install", build, "--prefix", str(p)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return p


def test_install_layout(prefix):
    for rel in ("bin/storaged", "bin/repld", "bin/comio"):
        assert os.access(prefix / rel, os.X_OK), rel
    docs = prefix / "share/doc/comio"
    for name in ("README.md", "configuration.md", "replication.md", "examples/site-a.yaml", "examples/site-b.yaml",
                 "examples/two-way/site-a.yaml", "examples/two-way/site-b.yaml", "examples/two-way/README.md"):
        assert (docs / name).is_file(), name
    for unit in ("comio-storaged.service", "comio-repld.service"):
        text = (prefix / "lib/systemd/system" / unit).read_text()
        execs = re.findall(r"^ExecStart=(\S+)", text, re.M)
        assert execs and all(e.startswith(str(prefix) + "/bin/") for e in execs), execs
        assert "/usr/local/" not in text
    r = subprocess.run([str(prefix / "bin/comio"), "version"], capture_output=True, text=True, timeout=10,
                       env=sanitizer_env())
    m = re.search(r"project\(comio VERSION (\S+)", (ROOT / "CMakeLists.txt").read_text())
    assert r.returncode == 0 and r.stdout.strip() == "comio " + m.group(1), r.stdout


def site_config(prefix, name, workdir, port, token_file, remote_port=None):
    text = (prefix / "share/doc/comio/examples" / name).read_text()
    swaps = {
        "listen: 0.0.0.0": "listen: 127.0.0.1",
        "port: 8080": "port: %d" % port,
        "/dev/nvme0n1": str(workdir / "store.img"),
        "storage_size: 1TB": "storage_size: 64MB",
        "/var/lib/comio/meta": str(workdir / "meta"),
        "/etc/comio/access.token": str(token_file),
        "/etc/comio/replication.token": str(token_file),
        "/run/comio/repld.sock": str(workdir / "repld.sock"),
        "https://site-a.example.com": "http://127.0.0.1:%d" % port,
        "https://site-b.example.com": "http://127.0.0.1:%d" % (remote_port or port),
    }
    for old, new in swaps.items():
        text = text.replace(old, new)
    path = workdir / "config.yaml"
    path.write_text(text)
    return path


def wait_for(fn, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


def healthy(port):
    try:
        return Client("127.0.0.1", port, timeout=2).raw("GET", "/admin/health").status == 200
    except OSError:
        return False


def test_installed_sites_replicate(prefix, tmp_path):
    token = tmp_path / "token"
    token.write_text(os.urandom(32).hex() + "\n")
    token.chmod(0o600)
    pa, pb = free_port(), free_port()
    dirs = {n: tmp_path / n for n in ("a", "b")}
    for d in dirs.values():
        d.mkdir()
    cfg_b = site_config(prefix, "site-b.yaml", dirs["b"], pb, token)
    cfg_a = site_config(prefix, "site-a.yaml", dirs["a"], pa, token, remote_port=pb)
    procs, logs = [], []
    try:
        for cfg, d in ((cfg_b, dirs["b"]), (cfg_a, dirs["a"])):
            logs.append(d / "comio.log")
            with open(logs[-1], "ab") as log:
                procs.append(subprocess.Popen([str(prefix / "bin/comio"), "server", "--config", str(cfg)],
                                              stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                              env=sanitizer_env()))
        for port in (pb, pa):
            wait_for(lambda: healthy(port), comio.START_TIMEOUT, "site on port %d" % port)
        secret = token.read_text().strip()
        a = Client("127.0.0.1", pa, token=secret)
        b = Client("127.0.0.1", pb, token=secret)
        small, large = os.urandom(4096), os.urandom(3_000_000)  # the large one goes by presigned URL
        assert a.put("installed", "small", small).status == 200
        assert a.put("installed", "large", large).status == 200
        for key, data in (("small", small), ("large", large)):
            got = wait_for(lambda: (lambda r: r if r.status == 200 else None)(b.get("installed", key)), 30,
                           "%s on site B" % key)
            assert got.body == data
        r = subprocess.run([str(prefix / "bin/repld"), "--config", str(cfg_a), "--status"], capture_output=True,
                           text=True, timeout=30, env=sanitizer_env())
        assert r.returncode == 0 and '"events_failed":0' in r.stdout.replace(" ", ""), r.stdout + r.stderr
        a.close()
        b.close()
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            assert p.wait(timeout=40) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    for path in logs:
        text = path.read_text(errors="replace")
        assert sanitizer_report(text) is None, text[-4000:]


def test_deb_package(tmp_path):
    """cpack -G DEB: a package with the binaries under /usr/bin, units naming them, and library dependencies."""
    build = os.environ.get("COMIO_BUILD_DIR")
    if not build:
        pytest.skip("COMIO_BUILD_DIR is not set (tests/run.sh sets it): package not built")
    if shutil.which("dpkg-deb") is None or shutil.which("cpack") is None:
        pytest.skip("cpack or dpkg-deb missing: package not built")
    r = subprocess.run(["cpack", "-G", "DEB", "-B", str(tmp_path)], cwd=build, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    (deb,) = tmp_path.glob("comio_*.deb")
    info = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Depends"], capture_output=True, text=True,
                          timeout=30).stdout
    assert "Package: comio" in info and "liblmdb" in info and "libh2o-evloop" in info and "libexpat1" in info, info
    files = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, timeout=30).stdout
    for rel in ("./usr/bin/storaged", "./usr/bin/repld", "./usr/bin/comio",
                "./usr/lib/systemd/system/comio-storaged.service", "./usr/share/doc/comio/examples/site-a.yaml"):
        assert rel in files, rel
    unit = subprocess.run("dpkg-deb --fsys-tarfile '%s' | tar -xO ./usr/lib/systemd/system/comio-repld.service" % deb,
                          shell=True, capture_output=True, text=True, timeout=30).stdout
    assert "ExecStart=/usr/bin/repld " in unit, unit
