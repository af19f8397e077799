"""test_repld_commands.py - repld's commands that answer on the terminal (--list-failed,
--retry-failed, --status) when the config points at the wrong place: they say so and
create nothing. Each runs the real binary to completion, bounded by a timeout."""

import pytest

from harness import comio
from harness.replication import Site, new_token


def missing_meta_site(tmp_path):
    """A shipping site whose server.meta_path names a directory that does not exist (never started)."""
    missing = tmp_path / "nowhere" / "site.meta"
    site = Site(tmp_path / "site", "site-a", repl={"remote_url": "http://127.0.0.1:9", "remote_token": new_token()},
                extra={"server": {"meta_path": str(missing)}})
    return site, missing


@pytest.mark.parametrize("cmd", ["--list-failed", "--retry-failed"])
def test_commands_on_a_missing_meta_path_fail_and_create_nothing(tmp_path, cmd):
    site, missing = missing_meta_site(tmp_path)
    r = site.repld_cmd(cmd)
    assert r.returncode != 0, "repld %s exited 0 on a missing metadata path: %s" % (cmd, r.stdout)
    assert str(missing) in r.stderr, r.stderr
    assert "server.meta_path" in r.stderr, r.stderr
    assert not missing.exists() and not missing.parent.exists(), "repld %s created %s" % (cmd, missing)
    assert comio.sanitizer_report(r.stderr) is None, r.stderr


def test_status_on_a_missing_meta_path_creates_nothing(tmp_path):
    site, missing = missing_meta_site(tmp_path)
    r = site.repld_cmd("--status")
    assert r.returncode != 0  # nothing answers on the socket
    assert not missing.parent.exists()


def test_commands_on_an_empty_directory_create_nothing(tmp_path):
    site, missing = missing_meta_site(tmp_path)
    missing.mkdir(parents=True)
    r = site.repld_cmd("--list-failed")
    assert r.returncode != 0 and str(missing) in r.stderr, r.stderr
    assert list(missing.iterdir()) == [], "repld created %s" % list(missing.iterdir())
