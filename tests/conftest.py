"""conftest.py - the fixtures of every Python test under tests/ (e2e and fault), from the harness package.

    make_server, server, client, repl_server   harness/fixtures.py: storaged, always torn down
    sites                                      harness/replication.py: two-site pairs, always torn down
    figures                                    harness/recorder.py: figures printed and repeated at the end

Tests marked `long` (those that take many seconds by design, e.g. a two-minute
outage) are collected first: pytest-xdist hands tests out in collection order,
so a long test that came last would keep one worker busy while the others sit
idle. Only the order changes; every test still runs with its own fixtures.
"""

from harness.fixtures import client, make_server, repl_server, server  # noqa: F401
from harness.recorder import figures  # noqa: F401
from harness.replication import sites  # noqa: F401


def pytest_configure(config):
    config.addinivalue_line("markers", "long: takes many seconds by design; collected first so that it starts first")


def pytest_collection_modifyitems(config, items):
    # sort is stable: the long ones keep their order among themselves, the rest theirs
    items.sort(key=lambda item: item.get_closest_marker("long") is None)
