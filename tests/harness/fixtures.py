"""fixtures.py - fixtures that start storaged and always tear it down (tests/conftest.py provides them).

make_server(**kw) starts a comio.Server in the test's tmp dir (see comio.Server
for the arguments). At teardown every server is stopped (SIGTERM, 10 s, then
SIGKILL) and the test fails if a server needed SIGKILL, died on its own, or
left a sanitizer report in its log."""

import itertools

import pytest

from . import comio


@pytest.fixture
def make_server(tmp_path):
    servers = []
    counter = itertools.count()

    def make(start=True, **kwargs):
        srv = comio.Server(tmp_path / ("srv%d" % next(counter)), **kwargs)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    problems = []
    for srv in servers:
        for p in srv.finish():
            problems.append("%s: %s" % (srv.workdir.name, p))
    if problems:
        pytest.fail("storaged teardown:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def server(make_server):
    return make_server()


@pytest.fixture
def client(server):
    return server.client()


@pytest.fixture
def repl_server(make_server):
    return make_server(replication=True)
