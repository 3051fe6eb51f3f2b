"""gRPC's own xDS client against pillion-cp: @grpc/grpc-js-xds (tests/conformance/node/
xds_client.js) resolves xds:///service through pillion-cp (LDS api_listener -> RDS -> CDS -> EDS)
and calls real gRPC servers (@grpc/grpc-js, node/echo_server.js) on loopback; when the endpoint
file changes, its calls follow."""
import json
import os

import pytest

from conftest import CP, until, write

pytestmark = pytest.mark.skipif(not os.path.exists(CP), reason="pillion-cp not built")

NODE_ID = "grpc-xds-client"


def resources_yaml(lb_policy="ROUND_ROBIN"):
    """What gRPC's resolver needs for xds:///service: a Listener named after the target with an
    api_listener (HTTP connection manager with RDS and the router filter), its route, an EDS
    cluster and its endpoints (gRPC drops localities without a weight)."""
    return f"""resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: service
  api_listener:
    api_listener:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: service
      rds:
        route_config_name: route-service
        config_source: {{ ads: {{}}, resource_api_version: V3 }}
      http_filters:
      - name: envoy.filters.http.router
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: route-service
  virtual_hosts:
  - name: service
    domains: ["service"]
    routes:
    - match: {{ prefix: "/pillion.conformance.Echo/" }}
      route: {{ cluster: cluster-service, timeout: 5s }}
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: cluster-service
  type: EDS
  connect_timeout: 1s
  lb_policy: {lb_policy}
  eds_cluster_config: {{ eds_config: {{ ads: {{}}, resource_api_version: V3 }} }}
"""


def endpoints_yaml(port):
    return f"""resources:
- "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
  cluster_name: cluster-service
  endpoints:
  - locality: {{ region: r1, zone: z1 }}
    load_balancing_weight: 1
    lb_endpoints:
    - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}
"""


def client_bootstrap(tmp_path, xds_port):
    """The gRPC xDS bootstrap file (gRFC A27) pointing at pillion-cp."""
    path = tmp_path / "grpc-xds-bootstrap.json"
    path.write_text(json.dumps({
        "xds_servers": [{"server_uri": f"127.0.0.1:{xds_port}",
                         "channel_creds": [{"type": "insecure"}],
                         "server_features": ["xds_v3"]}],
        "node": {"id": NODE_ID, "cluster": "conformance",
                 "locality": {"region": "r1", "zone": "z1"}},
    }))
    return path


@pytest.fixture
def servers(node_script):
    """Two real gRPC servers, A and B: returns {name: port}."""
    s = node_script("echo_server.js", ["A", "B"])
    ports = {}
    for _ in range(2):
        m = s.next(lambda m: m.get("event") == "listening", 20, "the echo servers")
        ports[m["name"]] = m["port"]
    return ports


def calls_reach(client, name, timeout=20):
    """Calls until one is answered by server `name` (bounded); returns the answer."""
    def ok():
        r = client.call({"op": "call", "deadline_ms": 2000})
        assert "error" not in r, r
        return r if r.get("ok") and r["server"] == name else None
    return until(ok, timeout, f"a call answered by {name}")


def test_grpc_xds_client_follows_endpoint_changes(tmp_path, cp, node_script, servers):
    res = tmp_path / "res"
    res.mkdir()
    (res / "service.yaml").write_text(resources_yaml())
    (res / "endpoints.yaml").write_text(endpoints_yaml(servers["A"]))
    c = cp(res)
    client = node_script("xds_client.js", ["xds:///service"],
                         env={"GRPC_XDS_BOOTSTRAP": str(client_bootstrap(tmp_path, c.xds_port))})

    calls_reach(client, "A")
    for _ in range(5):
        r = client.call({"op": "call"})
        assert r.get("ok") and r["server"] == "A", r

    # pillion-cp saw gRPC subscribe by name to each type and ACK what it sent
    n = c.node(NODE_ID, lambda n: set(n["types"]) == {"lds", "rds", "cds", "eds"} and
               all(t["state"] == "SYNCED" for t in n["types"].values()))
    assert n["types"]["lds"]["subscribed"] == ["service"]
    assert n["types"]["rds"]["subscribed"] == ["route-service"]
    assert n["types"]["cds"]["subscribed"] == ["cluster-service"]
    assert n["types"]["eds"]["subscribed"] == ["cluster-service"]
    assert all(t["nacks"] == 0 for t in n["types"].values()), n

    # the endpoint file now names server B: the client's calls follow
    write(res / "endpoints.yaml", endpoints_yaml(servers["B"]))
    calls_reach(client, "B")
    for _ in range(5):
        r = client.call({"op": "call"})
        assert r.get("ok") and r["server"] == "B", r
    n = c.node(NODE_ID, lambda n: n["types"]["eds"]["acked_version"] == "2")
    assert n["types"]["eds"]["state"] == "SYNCED"

    # a cluster gRPC cannot use is NACKed; pillion-cp records it and the client keeps calling B
    write(res / "service.yaml", resources_yaml(lb_policy="MAGLEV"))
    n = c.node(NODE_ID, lambda n: n["types"]["cds"]["state"] == "NACKED")
    cds = n["types"]["cds"]
    assert "MAGLEV" in cds["last_nack"]["message"], cds
    assert cds["last_nack"]["version"] == "2" and cds["acked_version"] == "1", cds
    for _ in range(3):
        r = client.call({"op": "call"})
        assert r.get("ok") and r["server"] == "B", r
