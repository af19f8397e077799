"""harness - what the end-to-end and fault tests share: real binaries on loopback ports, clients, oracles.

    comio         run storaged, a keep-alive HTTP client, the checks every reply gets
    replication   two-site pairs (storaged + repld), workloads, the convergence oracle
    fake_replica  a scripted replica that misbehaves on purpose
    recorder      the fault tests' recording workload and the checker that judges a site by it
    netns         a WAN link between two network namespaces (needs root)
    forgetfs      a FUSE file system that forgets unsynced writes: power cuts (needs root)
    fixtures      make_server, server, client, repl_server

Tests import from it by package, e.g. `from harness.comio import Client, md5`;
tests/conftest.py makes every fixture (those of fixtures.py, `sites` and
`figures`) available to every test under tests/, and pytest.ini at the top of
the tree puts tests/ on the import path.
"""
