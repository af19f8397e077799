"""s3clients.py - S3 clients pointed at a test's storaged: credentials, boto3, aws-cli, and the Debian client tools.

Every client runs with its configuration in the test's tmp dir (HOME moved there too), never the user's, and every
call has a timeout. The tools are Debian's, from /usr/bin, so that a machine with others first on PATH behaves as a
clean Debian 12 does (tests/run.sh installs them)."""

import os
import subprocess

import boto3
import pytest
from botocore.client import Config

AK = "AKIDCOMIOTEST"
SECRET = "s3cr3t/KEY+with/slashes"
REGION = "us-east-1"
CALL_TIMEOUT = 300  # seconds, any one client command

# the site config section that turns S3 on with the key above (Site(extra=...), make_pair's a_extra / b_extra)
SITE_CREDS = {"s3": {"region": REGION, "credentials": [{"access_key": AK, "secret_key": SECRET}]}}


def s3_config(extra=""):
    """The s3 section for comio.Server(config=...)."""
    return ("s3:\n  region: %s\n  credentials:\n    - access_key: %s\n      secret_key: %s\n" % (REGION, AK, SECRET)) + extra


def endpoint(srv):
    return "http://%s:%d" % (srv.host, srv.port)


def s3_client(srv):
    """boto3, path style, no retries (a failure shows at once)."""
    return boto3.client("s3", endpoint_url=endpoint(srv), aws_access_key_id=AK, aws_secret_access_key=SECRET,
                        region_name=REGION, config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                                          connect_timeout=10, read_timeout=60))


def tool(name):
    """/usr/bin/<name>, or fail naming the Debian package to install."""
    exe = "/usr/bin/" + name
    if not os.path.exists(exe):
        pytest.fail("%s is not installed (tests/run.sh installs it: apt-get install %s)" % (exe, {
            "aws": "awscli", "fusermount3": "fuse3"}.get(name, name)))
    return exe


def clean_env(home, **extra):
    """The environment for a client: no AWS_*/RCLONE_*/RESTIC_* of the caller, HOME and XDG dirs in `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_", "RESTIC_", "S3CMD"))}
    env.update({"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache")})
    env.update(extra)
    return env


def run(argv, env, check=True, timeout=CALL_TIMEOUT, input_data=None):
    p = subprocess.run(argv, capture_output=True, env=env, timeout=timeout, input=input_data)
    if check:
        assert p.returncode == 0, (argv, p.stdout.decode(errors="replace")[-3000:], p.stderr.decode(errors="replace")[-3000:])
    return p


def aws(srv, home, *args, check=True):
    """aws-cli with the endpoint, credentials in the environment and a config file of its own (never ~/.aws)."""
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "aws-config"
    cfg.write_text("[default]\nregion = %s\ns3 =\n    addressing_style = path\n" % REGION)
    env = clean_env(home, AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SECRET, AWS_DEFAULT_REGION=REGION,
                    AWS_CONFIG_FILE=str(cfg), AWS_SHARED_CREDENTIALS_FILE=str(home / "no-credentials"),
                    AWS_EC2_METADATA_DISABLED="true", AWS_PAGER="", AWS_MAX_ATTEMPTS="1")
    return run([tool("aws"), "--endpoint-url", endpoint(srv)] + list(args), env, check=check)


def write_tree(root, nfiles, size, seed=0):
    """nfiles files of `size` random bytes under root, in nested directories. Returns {relative path: bytes}."""
    import random
    rnd = random.Random(seed)
    out = {}
    for i in range(nfiles):
        rel = "d%02d/e%d/f%05d.bin" % (i % 37, i % 5, i)
        data = rnd.randbytes(size + (i % 7))
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        out[rel] = data
    return out


def read_tree(root):
    """{relative path: bytes} of every file under root."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            out[os.path.relpath(p, root)] = open(p, "rb").read()
    return out
