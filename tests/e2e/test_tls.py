"""test_tls.py - storaged serving HTTPS with a certificate from a CA the test makes."""

import http.client
import ssl
import subprocess
import time

import pytest

from harness.comio import free_port, sanitizer_env, sanitizer_report, storaged_path


def make_ca_and_cert(d):
    """A test CA and a server certificate for 127.0.0.1 signed by it, with the openssl CLI."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=comio test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem",
        "-days", "2", "-extfile", "san.ext")


@pytest.fixture
def tls_server(tmp_path):
    make_ca_and_cert(tmp_path)
    port = free_port()
    (tmp_path / "config.yaml").write_text(
        "server:\n  listen: 127.0.0.1\n  port: %d\n  storage_path: %s\n  storage_size: 32MB\n"
        "  tls: {cert: %s, key: %s}\n" % (port, tmp_path / "store.img", tmp_path / "server.pem", tmp_path / "server.key"))
    log = open(tmp_path / "storaged.log", "wb")
    proc = subprocess.Popen([str(storaged_path()), "--config", str(tmp_path / "config.yaml")], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=sanitizer_env())
    ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, (tmp_path / "storaged.log").read_text()
        try:
            c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=2)
            c.request("GET", "/admin/health")
            if c.getresponse().status == 200:
                c.close()
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "storaged did not come up over TLS"
        time.sleep(0.05)
    yield tmp_path, port, ctx
    proc.terminate()
    assert proc.wait(timeout=15) == 0
    log.close()
    assert sanitizer_report((tmp_path / "storaged.log").read_text()) is None


def test_https_put_get_verified(tls_server):
    d, port, ctx = tls_server
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    body = bytes(range(256)) * 64
    c.request("PUT", "/tls-bucket/obj", body=body)
    r = c.getresponse()
    r.read()
    assert r.status == 200
    c.request("GET", "/tls-bucket/obj")
    r = c.getresponse()
    assert r.status == 200 and r.read() == body
    c.close()


def test_https_refused_by_a_client_with_another_ca(tls_server, tmp_path_factory):
    d, port, _ = tls_server
    other = tmp_path_factory.mktemp("other-ca")
    make_ca_and_cert(other)
    ctx = ssl.create_default_context(cafile=str(other / "ca.pem"))
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        c.request("GET", "/admin/health")
    c.close()


def test_bad_certificate_path_is_a_startup_error(tmp_path):
    (tmp_path / "config.yaml").write_text(
        "server:\n  listen: 127.0.0.1\n  port: %d\n  storage_path: %s\n  storage_size: 32MB\n"
        "  tls: {cert: %s, key: %s}\n" % (free_port(), tmp_path / "store.img", tmp_path / "missing.pem", tmp_path / "missing.key"))
    p = subprocess.run([str(storaged_path()), "--config", str(tmp_path / "config.yaml")], capture_output=True, text=True,
                       timeout=30, env=sanitizer_env())
    assert p.returncode != 0
    assert "server.tls.cert" in p.stderr
