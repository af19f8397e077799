"""conftest.py - the fault tests run on the end-to-end harness.

Puts tests/e2e on sys.path (its comio.py and replication.py are imported as
they are) and re-exports its fixtures: make_server, server, client and
repl_server from tests/e2e/conftest.py, and sites from replication.py."""

import importlib.util
import sys
from pathlib import Path

E2E = Path(__file__).resolve().parents[1] / "e2e"
if str(E2E) not in sys.path:
    sys.path.insert(0, str(E2E))

# tests/e2e/conftest.py under a name of its own: pytest imports every conftest.py as "conftest"
_spec = importlib.util.spec_from_file_location("comio_e2e_conftest", E2E / "conftest.py")
_e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_e2e)

make_server = _e2e.make_server
server = _e2e.server
client = _e2e.client
repl_server = _e2e.repl_server

from replication import sites  # noqa: E402  (needs tests/e2e on sys.path)

__all__ = ["make_server", "server", "client", "repl_server", "sites"]
