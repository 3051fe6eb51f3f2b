"""Conformance tests run pillion and pillion-cp against xDS implementations written elsewhere
(gRPC's own xDS client, Envoy's upstream .proto definitions). They reuse the integration
fixtures (pillion, upstream, cp, pb, free_port, until, write, ...), re-exported here, so a test
writes `from conftest import ...` as the integration tests do. tools/test runs this folder in
its own pytest run."""
import importlib.util
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
_integration = os.path.join(os.path.dirname(_here), "integration")
sys.path.insert(0, _integration)  # for http_helpers and the other shared modules
_spec = importlib.util.spec_from_file_location("pl_integration_conftest",
                                               os.path.join(_integration, "conftest.py"))
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
globals().update({k: v for k, v in vars(_mod).items() if not k.startswith("_")})

import node_peers  # noqa: E402  (found through the integration folder put on sys.path above)
import pytest  # noqa: E402


@pytest.fixture
def node_script(tmp_path):
    """Factory: node_script(script, args=(), env=None) starts tests/conformance/node/<script>
    with the pinned npm packages (installed into .cache/node on first use; the test skips when
    npm or node is missing); a node_peers.NodeScript talking JSON lines. All stopped at teardown."""
    started = []

    def make(script, args=(), env=None):
        try:
            s = node_peers.NodeScript(script, args, env,
                                      log_path=tmp_path / f"{script}-{len(started)}.log")
        except node_peers.Unavailable as e:
            pytest.skip(str(e))
        started.append(s)
        return s
    yield make
    for s in started:
        s.stop()
