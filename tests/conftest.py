"""conftest.py - the fixtures of every Python test under tests/ (e2e and fault), from the harness package.

    make_server, server, client, repl_server   harness/fixtures.py: storaged, always torn down
    sites                                      harness/replication.py: two-site pairs, always torn down
    figures                                    harness/recorder.py: figures printed and repeated at the end
"""

from harness.fixtures import client, make_server, repl_server, server  # noqa: F401
from harness.recorder import figures  # noqa: F401
from harness.replication import sites  # noqa: F401
