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
