"""Per-resource acceptance, as Envoy does it: a response with valid and invalid resources applies
the valid ones and is NACKed with error_detail naming each invalid resource and field; an invalid
resource keeps its previous version; the proxy keeps serving. CDS, EDS, LDS and RDS against a
scripted ADS server (exact responses, SotW), and SotW and Delta through pillion-cp."""
import importlib
import os
import socket

import pytest

from conftest import CP, free_port, until, write
from http_helpers import stat
from test_xds import T, ScriptedAds
from xds_helpers import bootstrap, clusters_yaml, get, routes_yaml, served_by, start_xds

CDS = T + "envoy.config.cluster.v3.Cluster"
EDS = T + "envoy.config.endpoint.v3.ClusterLoadAssignment"
LDS = T + "envoy.config.listener.v3.Listener"
RDS = T + "envoy.config.route.v3.RouteConfiguration"


@pytest.fixture
def ads(pb, pillion):
    """A scripted ADS server and a pillion on it, past the first CDS and LDS requests."""
    grpc = pytest.importorskip("grpc")
    servers = []

    def make():
        s = ScriptedAds(pb, grpc)
        servers.append(s)
        px = pillion(bootstrap(s.port))
        out = s.stream()
        s.request(CDS)
        s.request(LDS)
        return s, px, out
    yield make
    for s in servers:
        s.stop()


def static_cluster(pb, name, port=1, timeout_s=1):
    c = pb.cluster.Cluster(name=name, type=pb.cluster.Cluster.STATIC)
    c.connect_timeout.seconds = timeout_s
    ep = c.load_assignment.endpoints.add().lb_endpoints.add().endpoint
    ep.address.socket_address.address = "127.0.0.1"
    ep.address.socket_address.port_value = port
    c.load_assignment.cluster_name = name
    return c


def eds_cluster(pb, name):
    c = pb.cluster.Cluster(name=name, type=pb.cluster.Cluster.EDS)
    c.eds_cluster_config.eds_config.ads.SetInParent()
    return c


def unsupported(c):
    """c with a field Pillion does not implement (NACKed, named)."""
    c.circuit_breakers.thresholds.add().max_connections.value = 5
    return c


def assignment(pb, name, address, port):
    la = pb.endpoint.ClusterLoadAssignment(cluster_name=name)
    sa = la.endpoints.add().lb_endpoints.add().endpoint.address.socket_address
    sa.address, sa.port_value = address, port
    return la


def ack_of(s, type_url, nonce):
    """The next request of type_url answering nonce."""
    for _ in range(10):
        r = s.request(type_url)
        if r.response_nonce == nonce:
            return r
    raise AssertionError(f"no request answering {nonce}")


def dump_section(px, kind):
    dump = px.admin_json("/config_dump")
    return [x for x in dump["configs"] if x["@type"].endswith(kind)][0]


def test_cds_applies_the_valid_clusters_and_nacks_the_invalid_one(ads, pb):
    s, px, out = ads()
    out.put(s.response(CDS, "v1", "n1", [static_cluster(pb, "a"), static_cluster(pb, "b")]))
    assert not ack_of(s, CDS, "n1").HasField("error_detail")
    # a changes, b turns invalid, c is new: a and c apply, b keeps its v1
    out.put(s.response(CDS, "v2", "n2", [static_cluster(pb, "a", timeout_s=2),
                                         unsupported(static_cluster(pb, "b", timeout_s=3)),
                                         static_cluster(pb, "c")]))
    nack = ack_of(s, CDS, "n2")
    assert nack.version_info == "v1", nack  # the last version accepted whole
    msg = nack.error_detail.message
    assert "Cluster 'b'.circuit_breakers" in msg, msg
    assert "Cluster 'a'" not in msg and "Cluster 'c'" not in msg, msg
    cl = dump_section(px, "ClustersConfigDump")
    got = {d["cluster"]["name"]: d for d in cl["dynamic_active_clusters"]}
    assert set(got) == {"a", "b", "c"}
    assert got["a"]["version_info"] == "v2" and got["a"]["cluster"]["connect_timeout"] == "2s"
    assert got["b"]["version_info"] == "v1" and got["b"]["cluster"]["connect_timeout"] == "1s"
    assert got["c"]["version_info"] == "v2"
    # b's rejected attempt is its error_state, as in Envoy's config_dump
    assert got["b"]["client_status"] == "NACKED"
    assert got["b"]["error_state"]["version_info"] == "v2"
    assert "Cluster 'b'.circuit_breakers" in got["b"]["error_state"]["details"]
    assert got["b"]["error_state"]["last_update_attempt"].endswith("Z")
    assert "error_state" not in got["a"] and "client_status" not in got["a"]
    assert cl["version_info"] == "v2"  # as Envoy: the version of the last update applied
    assert stat(px, "cluster_manager.cds.update_rejected") == 1
    assert stat(px, "cluster_manager.cds.update_success") == 1
    _, _, text = px.admin("/clusters")
    assert "c::added_via_api::true" in text
    # SotW: b missing from the next response goes; the response is whole again: ACK
    out.put(s.response(CDS, "v3", "n3", [static_cluster(pb, "a"), static_cluster(pb, "c")]))
    ack = ack_of(s, CDS, "n3")
    assert ack.version_info == "v3" and not ack.HasField("error_detail")
    cl = dump_section(px, "ClustersConfigDump")["dynamic_active_clusters"]
    assert sorted(d["cluster"]["name"] for d in cl) == ["a", "c"]
    assert not any("error_state" in d for d in cl), cl  # b is gone, and its failure with it


def test_a_response_with_a_resource_of_another_type_applies_nothing(ads, pb):
    s, px, out = ads()
    out.put(s.response(CDS, "v1", "n1", [static_cluster(pb, "a")],
                       raw_any=[(LDS, b"")]))
    nack = ack_of(s, CDS, "n1")
    assert "resources[1]" in nack.error_detail.message
    assert "a::" not in px.admin("/clusters")[2]


def test_eds_applies_the_valid_assignments_and_nacks_the_invalid_one(ads, pb, upstream):
    s, px, out = ads()
    u = upstream("u0")
    out.put(s.response(CDS, "c1", "n1", [eds_cluster(pb, "x"), eds_cluster(pb, "y")]))
    ack_of(s, CDS, "n1")
    req = s.request(EDS)
    assert sorted(req.resource_names) == ["x", "y"]
    out.put(s.response(EDS, "e1", "n2", [assignment(pb, "x", "127.0.0.1", u.port),
                                         assignment(pb, "y", "host.example", 80)]))
    nack = ack_of(s, EDS, "n2")
    assert nack.version_info == "" and "ClusterLoadAssignment 'y'" in nack.error_detail.message
    until(lambda: stat(px, "cluster.x.update_success") == 1, 5, "x applied")
    assert stat(px, "cluster.y.update_rejected") == 1
    assert stat(px, "cluster.y.update_success") == 0
    _, _, text = px.admin("/clusters")
    assert f"x::127.0.0.1:{u.port}::" in text, text
    ep = dump_section(px, "EndpointsConfigDump")["dynamic_endpoint_configs"]
    assert [d["endpoint_config"]["cluster_name"] for d in ep if "endpoint_config" in d] == ["x"]
    # y was never accepted: its entry is the failure alone
    (y,) = [d for d in ep if "endpoint_config" not in d]
    assert y["client_status"] == "NACKED" and y["error_state"]["version_info"] == "e1", y
    assert "ClusterLoadAssignment 'y'" in y["error_state"]["details"], y
    # a valid y clears it
    out.put(s.response(EDS, "e2", "n3", [assignment(pb, "x", "127.0.0.1", u.port),
                                         assignment(pb, "y", "127.0.0.1", u.port)]))
    assert not ack_of(s, EDS, "n3").HasField("error_detail")
    ep = dump_section(px, "EndpointsConfigDump")["dynamic_endpoint_configs"]
    assert sorted(d["endpoint_config"]["cluster_name"] for d in ep) == ["x", "y"]
    assert not any("error_state" in d for d in ep), ep


def tcp_listener(pb, name, port, cluster):
    from google.protobuf import any_pb2
    tp = importlib.import_module("envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2")
    l = pb.listener.Listener(name=name)
    l.address.socket_address.address = "127.0.0.1"
    l.address.socket_address.port_value = port
    f = l.filter_chains.add().filters.add(name="envoy.filters.network.tcp_proxy")
    a = any_pb2.Any()
    a.Pack(tp.TcpProxy(stat_prefix=name, cluster=cluster))
    f.typed_config.CopyFrom(a)
    return l


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_lds_applies_the_valid_listeners_and_nacks_the_invalid_one(ads, pb):
    s, px, out = ads()
    out.put(s.response(CDS, "c1", "n1", [static_cluster(pb, "a")]))
    ack_of(s, CDS, "n1")
    p1, p2 = free_port(), free_port()
    out.put(s.response(LDS, "l1", "n2", [tcp_listener(pb, "good", p1, "a"),
                                         tcp_listener(pb, "bad", p2, "nowhere")]))
    nack = ack_of(s, LDS, "n2")
    msg = nack.error_detail.message
    assert "Listener 'bad'" in msg and "unknown cluster 'nowhere'" in msg, msg
    assert "Listener 'good'" not in msg
    until(lambda: listening(p1), 5, "listener good")
    assert not listening(p2)
    assert stat(px, "listener_manager.lds.update_rejected") == 1
    ls = {d["name"]: d for d in dump_section(px, "ListenersConfigDump")["dynamic_listeners"]}
    assert sorted(ls) == ["bad", "good"]
    assert "active_state" in ls["good"] and "error_state" not in ls["good"]
    # Envoy: a rejected listener's entry carries only its error_state
    assert "active_state" not in ls["bad"] and ls["bad"]["client_status"] == "NACKED"
    assert "unknown cluster 'nowhere'" in ls["bad"]["error_state"]["details"]
    assert ls["bad"]["error_state"]["version_info"] == "l1"


def rds_listener(pb, name, port, route):
    from google.protobuf import any_pb2
    hcm_mod = importlib.import_module(
        "envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2")
    router_mod = importlib.import_module("envoy.extensions.filters.http.router.v3.router_pb2")
    h = hcm_mod.HttpConnectionManager(stat_prefix=name)
    h.rds.route_config_name = route
    h.rds.config_source.ads.SetInParent()
    hf = h.http_filters.add(name="envoy.filters.http.router")
    ra = any_pb2.Any()
    ra.Pack(router_mod.Router())
    hf.typed_config.CopyFrom(ra)
    l = pb.listener.Listener(name=name)
    l.address.socket_address.address = "127.0.0.1"
    l.address.socket_address.port_value = port
    f = l.filter_chains.add().filters.add(name="envoy.filters.network.http_connection_manager")
    a = any_pb2.Any()
    a.Pack(h)
    f.typed_config.CopyFrom(a)
    return l


def route_config(pb, name, cluster, priority=False):
    rc = pb.route.RouteConfiguration(name=name)
    vh = rc.virtual_hosts.add(name="v", domains=["*"])
    r = vh.routes.add()
    r.match.prefix = "/"
    r.route.cluster = cluster
    if priority:  # a field Pillion does not implement
        r.route.priority = 1
    return rc


def test_rds_applies_the_valid_route_configurations_and_nacks_the_invalid_one(ads, pb, upstream):
    s, px, out = ads()
    u = upstream("u0")
    out.put(s.response(CDS, "c1", "n1", [static_cluster(pb, "a", port=u.port)]))
    ack_of(s, CDS, "n1")
    p1, p2 = free_port(), free_port()
    out.put(s.response(LDS, "l1", "n2", [rds_listener(pb, "one", p1, "r1"),
                                         rds_listener(pb, "two", p2, "r2")]))
    ack_of(s, LDS, "n2")
    assert sorted(s.request(RDS).resource_names) == ["r1", "r2"]
    out.put(s.response(RDS, "r-1", "n3", [route_config(pb, "r1", "a"),
                                          route_config(pb, "r2", "a", priority=True)]))
    nack = ack_of(s, RDS, "n3")
    msg = nack.error_detail.message
    assert "RouteConfiguration 'r2'" in msg and "priority" in msg, msg
    assert "RouteConfiguration 'r1'" not in msg
    until(lambda: stat(px, "http.one.rds.r1.update_success") == 1, 5, "r1 applied")
    assert stat(px, "http.two.rds.r2.update_rejected") == 1
    until(lambda: get(p1)[0] == 200, 20, "listener one serves r1 (it warmed)")
    rt = dump_section(px, "RoutesConfigDump")["dynamic_route_configs"]
    assert [d["route_config"]["name"] for d in rt if "route_config" in d] == ["r1"]
    (r2,) = [d for d in rt if "route_config" not in d]
    assert r2["client_status"] == "NACKED" and "priority" in r2["error_state"]["details"], r2


@pytest.mark.skipif(not os.path.exists(CP), reason="pillion-cp not built")
@pytest.mark.parametrize("api_type", ["GRPC", "DELTA_GRPC"])
def test_through_pillion_cp_the_valid_cluster_serves(tmp_path, cp, pillion, upstream, api_type):
    """pillion-cp sends what Pillion does not implement (it serves other clients too): the valid
    cluster of the same file is applied and takes traffic, the invalid one is NACKed."""
    c, px, ups, lport, res = start_xds(tmp_path, cp, pillion, upstream, 2, api_type)
    bad = clusters_yaml([("bad", ups[0].port)],
                        extra="  circuit_breakers: { thresholds: [{ max_connections: 5 }] }\n")
    # one CDS update: a new valid cluster and an invalid one
    write(res / "clusters.yaml",
          clusters_yaml([("demo_upstream", ups[0].port), ("other", ups[1].port)]) +
          bad.split("resources:\n")[1])
    n = c.node("sidecar-1", lambda n: n["types"]["cds"]["state"] == "NACKED")
    assert "Cluster 'bad'.circuit_breakers" in n["types"]["cds"]["last_nack"]["message"]
    assert "Cluster 'other'" not in n["types"]["cds"]["last_nack"]["message"]
    # the valid one was applied: a route to it serves
    write(res / "routes.yaml", routes_yaml(cluster="other"))
    served_by(lport, "u1")
    _, _, text = px.admin("/clusters")
    assert "other::added_via_api::true" in text and "bad::" not in text
    assert stat(px, "cluster_manager.cds.update_rejected") == 1
    for _ in range(5):
        assert get(lport)[1]["upstream"] == "u1"
