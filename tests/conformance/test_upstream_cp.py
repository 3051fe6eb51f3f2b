"""Pillion against a control plane that speaks Envoy's upstream definitions: node/ads_server.js
(@grpc/grpc-js + @grpc/proto-loader on the .proto files @grpc/grpc-js-xds ships in deps/)
serves state-of-the-world ADS with resources encoded by the upstream schema. A real pillion ACKs
the valid ones (its next request carries the version and nonce, no error_detail), routes
traffic to real upstreams as they say, and NACKs invalid ones with an error_detail that names
the resource and the field while version_info stays the last accepted and traffic keeps
flowing."""
import pytest

from conftest import free_port, until
from http_helpers import stat
from xds_helpers import bootstrap, get, served_by

T = "type.googleapis.com/envoy."
LDS = T + "config.listener.v3.Listener"
RDS = T + "config.route.v3.RouteConfiguration"
CDS = T + "config.cluster.v3.Cluster"
EDS = T + "config.endpoint.v3.ClusterLoadAssignment"
ADS = {"ads": {}, "resource_api_version": "V3"}


def listener(port):
    return {"name": "ingress", "address": {"socket_address": {"address": "127.0.0.1",
                                                              "port_value": port}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": T + "extensions.filters.network.http_connection_manager.v3."
                                 "HttpConnectionManager",
                    "stat_prefix": "ingress",
                    "rds": {"route_config_name": "routes", "config_source": ADS},
                    "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                        "@type": T + "extensions.filters.http.router.v3.Router"}}]}}]}]}


def routes(cluster, route_extra=None, vhost_extra=None):
    return {"name": "routes", "virtual_hosts": [dict({
        "name": "all", "domains": ["*"],
        "routes": [{"match": {"prefix": "/"},
                    "route": dict({"cluster": cluster, "timeout": "5s"}, **(route_extra or {}))}]},
        **(vhost_extra or {}))]}


def cluster(name, extra=None):
    return dict({"name": name, "type": "EDS", "connect_timeout": "1s",
                 "eds_cluster_config": {"eds_config": ADS}}, **(extra or {}))


def assignment(name, port):
    return {"cluster_name": name, "endpoints": [{
        "locality": {"region": "r1", "zone": "z1"}, "load_balancing_weight": 1,
        "lb_endpoints": [{"endpoint": {"address": {"socket_address": {
            "address": "127.0.0.1", "port_value": port}}}}]}]}


class UpstreamCP:
    """The node control plane: set() pushes a type's resources and returns the response event
    of the stream (the one pillion opened); answer() waits for the request that settles it.
    Events are looked up among all seen so far: the order of types is pillion's choice."""

    def __init__(self, script):
        self.s = script
        self.port = script.next(lambda m: m.get("event") == "listening", 20, "listening")["port"]

    def set(self, type_url, version, resources, wait_response=True, **extra):
        self.s.send(dict({"op": "set", "type_url": type_url, "version": version,
                          "resources": resources}, **extra))
        m = self.s.next(lambda m: m.get("event") in ("set", "error"), 20, f"set {type_url}")
        assert m["event"] == "set", m
        if wait_response:
            return self.response(type_url, version)
        return None

    def response(self, type_url, version, timeout=20):
        return self.s.find(lambda m: m.get("event") == "response" and
                           m["type_url"] == type_url and m["version"] == version,
                           timeout, f"a {type_url} response of version {version}")

    def answer(self, resp, timeout=20):
        """The request that ACKs or NACKs response `resp` (same nonce)."""
        return self.s.find(lambda m: m.get("event") == "request" and
                           m["type_url"] == resp["type_url"] and
                           m["response_nonce"] == resp["nonce"],
                           timeout, f"the ACK/NACK of {resp['type_url']} nonce {resp['nonce']}")


@pytest.fixture
def setup(node_script, pillion, upstream):
    """The node control plane with a listener -> RDS -> EDS cluster "web" -> upstream u0, and a
    pillion on it that has ACKed every type; returns (cp, pillion, upstreams, listener port)."""
    ups = [upstream("u0"), upstream("u1")]
    cp = UpstreamCP(node_script("ads_server.js"))
    lport = free_port()
    cp.set(CDS, "1", [cluster("web")], wait_response=False)
    cp.set(EDS, "1", [assignment("web", ups[0].port)], wait_response=False)
    cp.set(LDS, "1", [listener(lport)], wait_response=False)
    cp.set(RDS, "1", [routes("web")], wait_response=False)
    px = pillion(bootstrap(cp.port))
    first = cp.s.next(lambda m: m.get("event") == "request", 20, "pillion's first request")
    assert first["node_id"] == "sidecar-1" and first["response_nonce"] == "", first
    for t in (CDS, EDS, LDS, RDS):
        resp = cp.response(t, "1")
        ack = cp.answer(resp)
        assert ack["version_info"] == "1" and ack["error_detail"] is None, ack
    until(lambda: px.admin("/ready")[0] == 200, 15, "/ready 200")
    served_by(lport, "u0")
    return cp, px, ups, lport


def requests_for(cp, type_url):
    return [m for m in cp.s.seen if m.get("event") == "request" and m["type_url"] == type_url]


def test_upstream_encoded_resources_are_acked_and_route_traffic(setup):
    cp, px, ups, lport = setup
    # pillion subscribed by name where SotW asks it to, wildcard for LDS and CDS
    assert requests_for(cp, EDS)[0]["resource_names"] == ["web"]
    assert requests_for(cp, RDS)[0]["resource_names"] == ["routes"]
    assert requests_for(cp, CDS)[0]["resource_names"] in ([], ["*"])
    status, body = get(lport, "/x?y=1")
    assert status == 200 and body["upstream"] == "u0" and body["path"] == "/x?y=1"

    # a second cluster with its endpoints, then the route moves to it: all ACKed, traffic moves
    cp.set(EDS, "2", [assignment("web", ups[0].port), assignment("other", ups[1].port)])
    resp = cp.set(CDS, "2", [cluster("web"), cluster("other")])
    assert cp.answer(resp)["error_detail"] is None
    eds = cp.s.find(lambda m: m.get("event") == "response" and m["type_url"] == EDS and
                    m["names"] == ["web", "other"], 20, "EDS for both clusters")
    ack = cp.answer(eds)
    assert ack["version_info"] == "2" and ack["error_detail"] is None, ack
    resp = cp.set(RDS, "2", [routes("other")])
    ack = cp.answer(resp)
    assert ack["version_info"] == "2" and ack["error_detail"] is None, ack
    served_by(lport, "u1")
    assert stat(px, "http.ingress.rds.routes.update_success") == 2
    assert stat(px, "cluster_manager.cds.update_success") == 2


@pytest.mark.parametrize("type_url,bad,expect", [
    # a field Envoy has and pillion does not implement
    (RDS, routes("web", route_extra={"priority": "HIGH"}),
     ["RouteConfiguration 'routes'", "virtual_hosts[0].routes[0].route.priority",
      "not supported by pillion"]),
    # a field only the upstream schema has (VirtualHost.matcher = 21, not in our proto/)
    (RDS, routes("web", vhost_extra={"matcher": {}}),
     ["RouteConfiguration 'routes'.virtual_hosts[0].matcher", "field 'matcher' (field number 21)",
      "envoy.config.route.v3.VirtualHost"]),
    # a bad value
    (CDS, [cluster("web", {"connect_timeout": "0s"})],
     ["Cluster 'web'", "connect_timeout", "greater than 0s"]),
], ids=["unsupported-field", "upstream-only-field", "bad-value"])
def test_invalid_resource_is_nacked_with_details(setup, type_url, bad, expect):
    cp, px, ups, lport = setup
    resp = cp.set(type_url, "2", bad if isinstance(bad, list) else [bad])
    nack = cp.answer(resp)
    assert nack["error_detail"], nack
    msg = nack["error_detail"]["message"]
    for part in expect:
        assert part in msg, f"{part!r} not in the NACK: {msg}"
    assert nack["error_detail"]["code"] != 0, nack  # a google.rpc.Code, not OK
    assert nack["version_info"] == "1", nack  # the last accepted version
    for _ in range(5):
        assert get(lport)[1]["upstream"] == "u0"
    # the next valid version is accepted again
    good = [routes("web")] if type_url == RDS else [cluster("web")]
    ack = cp.answer(cp.set(type_url, "3", good))
    assert ack["version_info"] == "3" and ack["error_detail"] is None, ack
    assert get(lport)[1]["upstream"] == "u0"


def test_resources_wrapped_in_discovery_resource(setup):
    """Control planes may wrap each SotW resource in an envoy.service.discovery.v3.Resource (as
    for Delta); Envoy unwraps them, the wrapper's version being the resource's own, and a wrapper
    without a resource is a TTL heartbeat that keeps the held resource."""
    cp, px, ups, lport = setup
    cp.set(EDS, "2", [assignment("web", ups[0].port), assignment("other", ups[1].port)])
    ack = cp.answer(cp.set(CDS, "2", [cluster("web"), cluster("other")], wrap=True,
                           resource_version="c-7"))
    assert ack["version_info"] == "2" and ack["error_detail"] is None, ack
    ack = cp.answer(cp.set(RDS, "2", [routes("other")], wrap=True, resource_version="r-9"))
    assert ack["version_info"] == "2" and ack["error_detail"] is None, ack
    served_by(lport, "u1")
    dump = px.admin_json("/config_dump?resource=dynamic_active_clusters")
    versions = {c["cluster"]["name"]: c["version_info"] for c in dump["configs"]}
    # "web" came unchanged: it keeps the version it was accepted with, as in Envoy
    assert versions == {"web": "1", "other": "c-7"}, versions

    # a heartbeat keeps the route as it is
    ack = cp.answer(cp.set(RDS, "3", [routes("web")], wrap="heartbeat"))
    assert ack["version_info"] == "3" and ack["error_detail"] is None, ack
    for _ in range(5):
        assert get(lport)[1]["upstream"] == "u1"

    # a heartbeat for a resource not held, or a wrapper around another type, is NACKed
    nack = cp.answer(cp.set(CDS, "4", [cluster("third")], wrap="heartbeat"))
    assert nack["version_info"] == "2", nack
    assert "heartbeat" in nack["error_detail"]["message"] and "third" in \
        nack["error_detail"]["message"], nack
    assert get(lport)[1]["upstream"] == "u1"
