"""Pillion's xDS client against the real reference control plane (pillion-cp) and real upstreams:
SotW ADS for LDS/RDS/CDS/EDS, warming and /ready, ACK/NACK with error_detail, listener removal,
control-plane outage and resync, /config_dump dynamic sections, per-type stats."""
import http.client
import json
import os
import time

import pytest

from conftest import CP, ROOT, free_port, run_pillion, until, write
from h2c_client import H2cClient
from http_helpers import stat
from xds_helpers import (add_other_cluster, bootstrap, clusters_yaml, get, listener_yaml,
                         routes_yaml, served_by, start_xds)


pytestmark = pytest.mark.skipif(not os.path.exists(CP), reason="pillion-cp not built")


@pytest.fixture
def setup(tmp_path, cp, pillion, upstream):
    """pillion-cp serving one listener -> RDS -> EDS cluster, a pillion on it, one upstream."""
    def make(n_upstreams=1, api_type="GRPC"):
        return start_xds(tmp_path, cp, pillion, upstream, n_upstreams, api_type)
    return make


def test_traffic_flows_per_the_files_and_node_is_sent(setup):
    c, px, ups, lport, res = setup()
    status, body = get(lport, "/hello")
    assert status == 200 and body["path"] == "/hello"
    n = c.node("sidecar-1", lambda n: all(t["state"] == "SYNCED" for t in n["types"].values()))
    assert n["cluster"] == "demo"
    assert set(n["types"]) == {"cds", "eds", "lds", "rds"}
    assert n["types"]["eds"]["subscribed"] == ["demo_upstream"]
    assert n["types"]["rds"]["subscribed"] == ["local_route"]
    assert px.admin("/ready")[2].strip() == "LIVE"
    assert stat(px, "cluster_manager.cds.update_success") == 1
    assert stat(px, "listener_manager.lds.update_success") == 1
    assert stat(px, "http.ingress_http.rds.local_route.update_success") == 1
    assert stat(px, "cluster.demo_upstream.update_success") == 1
    assert stat(px, "control_plane.connected_state") == 1
    assert stat(px, "server.dynamic_inert_fields") == 0
    assert stat(px, "cluster_manager.active_clusters") == 2  # xds_cluster + demo_upstream
    assert stat(px, "cluster_manager.warming_clusters") == 0
    assert stat(px, "listener_manager.total_listeners_active") == 1
    info = px.admin_json("/server_info")
    assert info["state"] == "LIVE"
    assert info["xds"]["connected"] is True
    assert info["xds"]["types"]["cds"]["version_info"] == "1"


def test_endpoint_change_moves_traffic(setup):
    c, px, ups, lport, res = setup(2)
    write(res / "clusters.yaml", clusters_yaml([("demo_upstream", ups[1].port)]))
    served_by(lport, "u1")
    c.node("sidecar-1", lambda n: n["types"]["eds"]["acked_version"] == "2")
    assert stat(px, "cluster.demo_upstream.update_success") == 2


def test_route_change_to_a_new_cluster_moves_traffic(setup):
    c, px, ups, lport, res = setup(2)
    add_other_cluster(c, res, ups)
    write(res / "routes.yaml", routes_yaml(cluster="other"))
    served_by(lport, "u1")
    # the listener kept its sockets: a route change is not a listener change
    assert "removed: draining" not in px.output()
    # a cluster missing from a CDS response is removed, and its EDS subscription goes
    write(res / "clusters.yaml", clusters_yaml([("other", ups[1].port)]))
    c.node("sidecar-1", lambda n: n["types"]["eds"]["subscribed"] == ["other"])
    _, _, text = px.admin("/clusters")
    assert "demo_upstream::" not in text and "other::added_via_api::true" in text
    assert get(lport)[1]["upstream"] == "u1"


def test_route_change_reaches_existing_connections(setup):
    """As in Envoy, each new request uses the route configuration current when it starts, also on
    an HTTP/1.1 keep-alive and an h2c connection opened before the change: after the proxy
    ACKed each route version, the next request on the same connections goes to the cluster that
    version names."""
    c, px, ups, lport, res = setup(2)
    add_other_cluster(c, res, ups)
    h1 = http.client.HTTPConnection("127.0.0.1", lport, timeout=5)
    h2 = H2cClient(lport)

    def h1_get():
        h1.request("GET", "/same-connection")
        r = h1.getresponse()
        body = r.read()
        assert r.status == 200, (r.status, body)
        return json.loads(body)["upstream"]
    try:
        assert h1_get() == "u0" and h2.get_json()["upstream"] == "u0"
        cx = stat(px, "http.ingress_http.downstream_cx_total")
        for i, (cluster, name) in enumerate([("other", "u1"), ("demo_upstream", "u0"),
                                             ("other", "u1")]):
            write(res / "routes.yaml", routes_yaml(cluster=cluster))
            want = str(i + 2)
            c.node("sidecar-1", lambda n: n["types"]["rds"]["acked_version"] == want)
            assert h1_get() == name, f"HTTP/1.1 keep-alive after route version {want}"
            assert h2.get_json()["upstream"] == name, f"h2c after route version {want}"
        # the same two connections all along; the listener was not touched
        assert stat(px, "http.ingress_http.downstream_cx_total") == cx
        assert "removed: draining" not in px.output()
    finally:
        h1.close()
        h2.close()


def test_rds_update_next_to_an_inline_route_listener(setup):
    """An LDS listener with route_config written inline next to one using RDS: RDS updates (and
    their stats) leave the inline one alone. (Both are one protobuf oneof: reading `rds` of the
    inline one read the route configuration as an Rds and crashed.)"""
    c, px, ups, lport, res = setup(2)
    iport = free_port()
    inline = listener_yaml(iport, name="inline").split("resources:\n")[1].replace(
        "        rds:\n          route_config_name: local_route\n"
        "          config_source: { ads: {}, resource_api_version: V3 }\n",
        "        route_config:\n          virtual_hosts:\n"
        "          - { name: v, domains: ['*'], routes: [{ match: { prefix: / }, "
        "route: { cluster: demo_upstream } }] }\n")
    write(res / "listeners.yaml", listener_yaml(lport) + inline)
    served_by(iport, "u0")
    add_other_cluster(c, res, ups)
    write(res / "routes.yaml", routes_yaml(cluster="other"))
    served_by(lport, "u1")
    assert get(iport)[1]["upstream"] == "u0"
    assert stat(px, "http.ingress_http.rds.local_route.update_success") == 2
    assert px.proc.poll() is None


def test_bad_resource_is_nacked_and_old_config_keeps_serving(setup):
    c, px, ups, lport, res = setup(2)
    write(res / "clusters.yaml", clusters_yaml(
        [("demo_upstream", ups[0].port)],
        extra="  circuit_breakers: { thresholds: [{ max_connections: 5 }] }\n"))
    n = c.node("sidecar-1", lambda n: n["types"]["cds"]["state"] == "NACKED")
    nack = n["types"]["cds"]["last_nack"]["message"]
    assert "Cluster 'demo_upstream'" in nack and "circuit_breakers" in nack, nack
    assert n["types"]["cds"]["acked_version"] == "1"
    for _ in range(5):
        assert get(lport)[1]["upstream"] == "u0"
    assert stat(px, "cluster_manager.cds.update_rejected") == 1
    assert stat(px, "cluster_manager.cds.version") == 1
    info = px.admin_json("/server_info")
    assert "circuit_breakers" in info["xds"]["types"]["cds"]["last_nack"]
    # a fixed file is accepted again
    write(res / "clusters.yaml", clusters_yaml([("demo_upstream", ups[1].port)]))
    served_by(lport, "u1")
    c.node("sidecar-1", lambda n: n["types"]["cds"]["state"] == "SYNCED")


def test_unsupported_route_field_is_nacked_with_field_path(setup):
    c, px, ups, lport, res = setup()
    write(res / "routes.yaml", routes_yaml().replace("timeout: 5s", "timeout: 5s, priority: HIGH"))
    n = c.node("sidecar-1", lambda n: n["types"]["rds"]["state"] == "NACKED")
    msg = n["types"]["rds"]["last_nack"]["message"]
    assert ("RouteConfiguration 'local_route'.virtual_hosts[0].routes[0].route.priority: field "
            "'priority' of envoy.config.route.v3.RouteAction is not supported by pillion") in msg, msg
    assert get(lport)[0] == 200
    assert stat(px, "http.ingress_http.rds.local_route.update_rejected") == 1


def test_removed_listener_stops_accepting(setup):
    c, px, ups, lport, res = setup()
    lport2 = free_port()
    write(res / "listeners.yaml",
          listener_yaml(lport) + listener_yaml(lport2, name="second").split("resources:\n")[1])
    served_by(lport2, "u0")
    write(res / "listeners.yaml", listener_yaml(lport2, name="second"))

    def refused():
        try:
            get(lport, timeout=1)
            return False
        except ConnectionRefusedError:
            return True
    until(refused, 10, "listener ingress_http removed")
    assert get(lport2)[0] == 200
    dump = px.admin_json("/config_dump")
    lds = [x for x in dump["configs"] if x["@type"].endswith("ListenersConfigDump")][0]
    assert [d["name"] for d in lds["dynamic_listeners"]] == ["second"]


def test_control_plane_outage_keeps_traffic_and_restart_resyncs(setup, cp, upstream):
    c, px, ups, lport, res = setup(2)
    port = c.xds_port
    c.stop()
    until(lambda: stat(px, "control_plane.connected_state") == 0, 10, "disconnected")
    for _ in range(10):
        assert get(lport)[1]["upstream"] == "u0"
    assert px.admin("/ready")[0] == 200
    write(res / "clusters.yaml", clusters_yaml([("demo_upstream", ups[1].port)]))
    c2 = cp(res, xds_port=port)
    served_by(lport, "u1", timeout=20)
    until(lambda: stat(px, "control_plane.connected_state") == 1, 10, "reconnected")
    n = c2.node("sidecar-1", lambda n: all(t["state"] == "SYNCED" for t in n["types"].values()))
    assert n["types"]["lds"]["acked_version"] == "1"


def test_ready_is_503_until_the_initial_config_arrives(tmp_path, cp, pillion, upstream):
    u = upstream("u0")
    lport = free_port()
    res = tmp_path / "res"
    res.mkdir()
    (res / "listeners.yaml").write_text(listener_yaml(lport))
    (res / "routes.yaml").write_text(routes_yaml())
    (res / "clusters.yaml").write_text(clusters_yaml([("demo_upstream", u.port)]))
    xds_port = free_port()
    px = pillion(bootstrap(xds_port))
    for _ in range(5):
        status, _, body = px.admin("/ready")
        assert status == 503 and body.strip() in ("PRE_INITIALIZING", "INITIALIZING"), body
        time.sleep(0.1)
    assert px.admin_json("/server_info")["state"] in ("PRE_INITIALIZING", "INITIALIZING")
    cp(res, xds_port=xds_port)
    until(lambda: px.admin("/ready")[0] == 200, 20, "/ready 200")
    served_by(lport, "u0")


def static_rds_listener(port, route, fetch_timeout=None):
    ift = f", initial_fetch_timeout: {fetch_timeout}" if fetch_timeout else ""
    return f"""  listeners:
  - name: static_rds
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: static_rds
          rds:
            route_config_name: {route}
            config_source: {{ ads: {{}}{ift} }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"""


def test_static_listener_with_rds_waits_for_its_routes(tmp_path, cp, pillion, upstream):
    """A bootstrap listener naming RDS routes holds /ready until they arrive over ADS."""
    u = upstream("u0")
    lport, sport = free_port(), free_port()
    res = tmp_path / "res"
    res.mkdir()
    (res / "listeners.yaml").write_text(listener_yaml(lport))
    (res / "routes.yaml").write_text(routes_yaml())
    (res / "clusters.yaml").write_text(clusters_yaml([("demo_upstream", u.port)]))
    c = cp(res)
    px = pillion(bootstrap(c.xds_port) + static_rds_listener(sport, "later_route"))
    c.node("sidecar-1", lambda n: n["types"].get("rds", {}).get("state") == "SYNCED")
    served_by(lport, "u0")
    assert px.admin("/ready")[0] == 503
    assert get(sport)[0] == 404  # served with an empty route table meanwhile
    write(res / "routes.yaml", routes_yaml() + routes_yaml(name="later_route").split("resources:\n")[1])
    until(lambda: px.admin("/ready")[0] == 200, 10, "/ready 200")
    served_by(sport, "u0")


def test_rds_initial_fetch_timeout_gives_up_waiting_for_routes(tmp_path, cp, pillion, upstream):
    u = upstream("u0")
    res = tmp_path / "res"
    res.mkdir()
    (res / "clusters.yaml").write_text(clusters_yaml([("demo_upstream", u.port)]))
    c = cp(res)
    sport = free_port()
    px = pillion(bootstrap(c.xds_port) + static_rds_listener(sport, "never", fetch_timeout="3s"))
    c.node("sidecar-1", lambda n: n["types"].get("cds", {}).get("state") == "SYNCED")
    assert px.admin("/ready")[0] == 503
    until(lambda: px.admin("/ready")[0] == 200, 15, "/ready 200 after the RDS timeout")
    assert get(sport)[0] == 404


def test_initial_fetch_timeout_lets_the_proxy_go_live_without_a_control_plane(pillion):
    px = pillion(bootstrap(free_port(), fetch_timeout="2s"))
    assert px.admin("/ready")[0] == 503
    until(lambda: px.admin("/ready")[0] == 200, 10, "/ready 200 after initial_fetch_timeout")
    assert stat(px, "cluster_manager.cds.init_fetch_timeout") == 1
    assert stat(px, "listener_manager.lds.init_fetch_timeout") == 1
    # the refused stream is counted when gRPC gives up on it, which a slow (sanitized, loaded)
    # run may see after the fetch timeout
    until(lambda: stat(px, "cluster_manager.cds.update_failure") >= 1, 10, "cds.update_failure")
    assert stat(px, "control_plane.connected_state") == 0


def test_cluster_changes_around_route_updates_apply(setup):
    """A route update reuses the cluster side of the snapshot before it whole; what changes that
    side afterwards (an endpoint change, a cluster warming for its assignment, a removed cluster)
    shows in traffic, stats and /config_dump all the same."""
    c, px, ups, lport, res = setup(2)
    add_other_cluster(c, res, ups)

    def rds(cluster, version):
        write(res / "routes.yaml", routes_yaml(cluster=cluster, tag=version))
        c.node("sidecar-1", lambda n: n["types"]["rds"]["acked_version"] == version)

    def eds_dump():
        dump = px.admin_json("/config_dump")
        ep = [x for x in dump["configs"] if x["@type"].endswith("EndpointsConfigDump")][0]
        return sorted(e["endpoint_config"]["cluster_name"] for e in ep["dynamic_endpoint_configs"])
    rds("other", "2")
    served_by(lport, "u1")
    # the endpoints of `other` move after the route update: traffic follows
    write(res / "clusters.yaml",
          clusters_yaml([("demo_upstream", ups[0].port), ("other", ups[0].port)]))
    served_by(lport, "u0")
    rds("other", "3")
    assert get(lport)[1]["upstream"] == "u0"
    # a cluster without its assignment warms, through route updates, until it comes
    warming = clusters_yaml([("demo_upstream", ups[0].port), ("other", ups[0].port)]) + (
        '- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster\n'
        "  name: late\n  type: EDS\n  connect_timeout: 1s\n"
        "  eds_cluster_config: { eds_config: { ads: {}, resource_api_version: V3 } }\n")
    write(res / "clusters.yaml", warming)
    until(lambda: stat(px, "cluster_manager.warming_clusters") == 1, 10, "late warming")
    rds("demo_upstream", "4")
    assert stat(px, "cluster_manager.warming_clusters") == 1
    assert get(lport)[1]["upstream"] == "u0"
    write(res / "clusters.yaml", clusters_yaml([("demo_upstream", ups[0].port),
                                                ("other", ups[0].port), ("late", ups[1].port)]))
    until(lambda: stat(px, "cluster_manager.warming_clusters") == 0, 10, "late warmed")
    rds("late", "5")
    served_by(lport, "u1")
    assert stat(px, "cluster_manager.active_clusters") == 4  # with the static xds_cluster
    # the clusters change, their assignments do not: compiled again with the hosts they had
    cds = c.node("sidecar-1", lambda n: n)["types"]["cds"]["acked_version"]
    write(res / "clusters.yaml", clusters_yaml([("demo_upstream", ups[0].port),
                                                ("other", ups[0].port), ("late", ups[1].port)],
                                               extra="  lb_policy: RANDOM\n"))
    c.node("sidecar-1", lambda n: n["types"]["cds"]["acked_version"] not in (None, cds))
    assert {get(lport)[1]["upstream"] for _ in range(4)} == {"u1"}
    _, _, text = px.admin("/clusters")
    assert f"late::127.0.0.1:{ups[1].port}::health_flags::healthy" in text, text
    # a removed cluster's assignment leaves /config_dump; route updates do not bring it back
    write(res / "clusters.yaml", clusters_yaml([("late", ups[1].port)]))
    until(lambda: eds_dump() == ["late"], 10, "assignments of removed clusters dropped")
    rds("late", "6")
    assert eds_dump() == ["late"]
    _, _, text = px.admin("/clusters")
    assert "other::" not in text and "late::added_via_api::true" in text
    assert stat(px, "cluster_manager.active_clusters") == 2
    assert get(lport)[1]["upstream"] == "u1"


def test_config_dump_dynamic_sections(setup):
    c, px, ups, lport, res = setup()
    dump = px.admin_json("/config_dump")
    by = {x["@type"].rsplit(".", 1)[1]: x for x in dump["configs"]}
    cl = by["ClustersConfigDump"]
    assert cl["version_info"] == "1"
    assert [s["cluster"]["name"] for s in cl["static_clusters"]] == ["xds_cluster"]
    assert [d["cluster"]["name"] for d in cl["dynamic_active_clusters"]] == ["demo_upstream"]
    assert cl["dynamic_active_clusters"][0]["version_info"] == "1"
    ls = by["ListenersConfigDump"]
    assert ls["version_info"] == "1"
    assert ls["dynamic_listeners"][0]["active_state"]["listener"]["name"] == "ingress_http"
    rt = by["RoutesConfigDump"]
    assert rt["dynamic_route_configs"][0]["route_config"]["name"] == "local_route"
    ep = by["EndpointsConfigDump"]
    assert ep["dynamic_endpoint_configs"][0]["endpoint_config"]["cluster_name"] == "demo_upstream"
    _, _, text = px.admin("/clusters")
    assert "demo_upstream::added_via_api::true" in text


def test_bootstrap_rejects_xds_without_ads(tmp_path):
    """RDS/EDS over ADS need dynamic_resources.ads_config; other config sources are refused."""
    cfg = tmp_path / "b.yaml"
    cfg.write_text("""static_resources:
  clusters:
  - name: c
    type: EDS
    connect_timeout: 1s
    eds_cluster_config: { eds_config: { ads: {} } }
""")
    r = run_pillion("--mode", "validate", "--config-path", str(cfg))
    assert r.returncode != 0
    assert "ads_config" in r.stderr + r.stdout


def test_example_bootstrap_validates():
    r = run_pillion("--mode", "validate", "--config-path",
                    os.path.join(ROOT, "examples", "bootstrap_xds.yaml"))
    assert r.returncode == 0, r.stderr + r.stdout


def test_delta_serves_every_type_and_follows_changes(setup):
    c, px, ups, lport, res = setup(2, api_type="DELTA_GRPC")
    n = c.node("sidecar-1", lambda n: all(t["state"] == "SYNCED" for t in n["types"].values()))
    assert n["stream"] == "delta"
    assert px.admin_json("/server_info")["xds"]["api_type"] == "DELTA_GRPC"
    # an endpoint change is one resource of one type
    write(res / "clusters.yaml", clusters_yaml([("demo_upstream", ups[1].port)]))
    served_by(lport, "u1")
    assert stat(px, "cluster.demo_upstream.update_success") == 2
    # a new cluster and a route to it; then the old cluster goes (removed_resources)
    write(res / "clusters.yaml",
          clusters_yaml([("demo_upstream", ups[1].port), ("other", ups[0].port)]))
    c.node("sidecar-1",
           lambda n: sorted(n["types"]["eds"]["subscribed"]) == ["demo_upstream", "other"])
    write(res / "routes.yaml", routes_yaml(cluster="other"))
    served_by(lport, "u0")
    write(res / "clusters.yaml", clusters_yaml([("other", ups[0].port)]))
    c.node("sidecar-1", lambda n: n["types"]["eds"]["subscribed"] == ["other"])
    _, _, text = px.admin("/clusters")
    assert "demo_upstream::" not in text and "other::added_via_api::true" in text
    # a bad cluster is NACKed and the rest keeps serving
    write(res / "clusters.yaml", clusters_yaml(
        [("other", ups[0].port)],
        extra="  circuit_breakers: { thresholds: [{ max_connections: 5 }] }\n"))
    n = c.node("sidecar-1", lambda n: n["types"]["cds"]["state"] == "NACKED")
    assert "Cluster 'other'.circuit_breakers" in n["types"]["cds"]["last_nack"]["message"]
    assert get(lport)[1]["upstream"] == "u0"


def test_delta_reconnect_sends_held_versions(setup, cp):
    c, px, ups, lport, res = setup(1, api_type="DELTA_GRPC")
    port = c.xds_port
    c.stop()
    until(lambda: stat(px, "control_plane.connected_state") == 0, 10, "disconnected")
    assert get(lport)[1]["upstream"] == "u0"
    c2 = cp(res, xds_port=port)
    n = c2.node("sidecar-1", lambda n: all(t["state"] in ("SYNCED", "NOT SENT")
                                           for t in n["types"].values()), timeout=20)
    # what the proxy held was not resent: nothing changed
    assert all(t["responses"] <= 1 for t in n["types"].values()), n
    assert stat(px, "control_plane.connected_state") == 1
    assert get(lport)[1]["upstream"] == "u0"


def test_route_changes_under_load_lose_no_request(setup):
    """Clients keep sending (new and kept-alive connections) while 20 route changes are pushed:
    every request succeeds and new connections follow the route of the moment."""
    import threading
    c, px, ups, lport, res = setup(2)
    add_other_cluster(c, res, ups)
    stop = threading.Event()
    results = {"ok": 0, "failed": [], "kept_ok": 0}

    def fresh():
        while not stop.is_set() and results["ok"] < 100000:
            try:
                status, _ = get(lport)
                if status == 200:
                    results["ok"] += 1
                else:
                    results["failed"].append(status)
            except OSError as e:
                results["failed"].append(repr(e))

    def kept():
        conn = http.client.HTTPConnection("127.0.0.1", lport, timeout=5)
        try:
            while not stop.is_set() and results["kept_ok"] < 100000:
                conn.request("GET", "/kept")
                r = conn.getresponse()
                r.read()
                if r.status == 200:
                    results["kept_ok"] += 1
                else:
                    results["failed"].append(r.status)
        except (OSError, http.client.HTTPException) as e:
            results["failed"].append("kept: " + repr(e))
        finally:
            conn.close()

    threads = [threading.Thread(target=fresh) for _ in range(3)] + [threading.Thread(target=kept)]
    for t in threads:
        t.start()
    try:
        for i in range(20):
            target = "other" if i % 2 == 0 else "demo_upstream"
            write(res / "routes.yaml", routes_yaml(cluster=target))
            want = str(i + 2)
            c.node("sidecar-1", lambda n: n["types"]["rds"]["acked_version"] == want)
            name = "u1" if target == "other" else "u0"
            served_by(lport, name)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not results["failed"], results["failed"][:5]
    assert results["ok"] > 20 and results["kept_ok"] > 5, results
    assert stat(px, "http.ingress_http.rds.local_route.update_success") == 21


# ---------------------------------------------------------------------------------------------
# the protocol as a scripted server sees it (python3-grpcio, raw bytes both ways)

SOTW = "StreamAggregatedResources"
T = "type.googleapis.com/"


class ScriptedAds:
    """An ADS server that records every request and sends exactly the bytes a test gives it."""

    def __init__(self, pb, grpc):
        import concurrent.futures
        import queue
        self.pb, self.grpc, self.queue = pb, grpc, queue
        self.requests = queue.Queue()
        self.streams = queue.Queue()  # one outgoing queue per accepted stream
        self.outs = []
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=8))
        handler = grpc.method_handlers_generic_handler(
            "envoy.service.discovery.v3.AggregatedDiscoveryService",
            {SOTW: grpc.stream_stream_rpc_method_handler(self._stream)})
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def _stream(self, request_iterator, context):
        import threading
        out = self.queue.Queue()
        self.outs.append(out)
        self.streams.put(out)

        def read():
            try:
                for raw in request_iterator:
                    self.requests.put(self.pb.disc.DiscoveryRequest.FromString(raw))
            except Exception:  # the stream ended
                pass
        threading.Thread(target=read, daemon=True).start()
        while context.is_active():
            try:
                item = out.get(timeout=0.2)
            except self.queue.Empty:
                continue
            if item is None:
                return
            if isinstance(item, tuple):  # ("abort", code)
                context.abort(item[1], "scripted end")
            yield item

    def stream(self, timeout=10):
        return self.streams.get(timeout=timeout)

    def request(self, type_url=None, timeout=10):
        """The next request (of type_url if given; others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {type_url} request")
            try:
                r = self.requests.get(timeout=left)
            except self.queue.Empty:
                raise AssertionError(f"no {type_url} request")
            if type_url is None or r.type_url == type_url:
                return r

    def response(self, type_url, version, nonce, resources=(), raw_any=()):
        from google.protobuf import any_pb2
        r = self.pb.disc.DiscoveryResponse(type_url=type_url, version_info=version, nonce=nonce)
        for m in resources:
            a = any_pb2.Any()
            a.Pack(m)
            r.resources.append(a)
        for url, value in raw_any:
            r.resources.append(any_pb2.Any(type_url=url, value=value))
        return r.SerializeToString()

    def stop(self):
        for out in self.outs:  # ends every handler, so no worker thread outlives the test
            out.put(None)
        self.server.stop(0).wait(5)


def test_protocol_against_a_scripted_server(pb, pillion):
    grpc = pytest.importorskip("grpc")
    s = ScriptedAds(pb, grpc)
    try:
        px = pillion(bootstrap(s.port))
        out = s.stream()
        cds = s.request(T + "envoy.config.cluster.v3.Cluster")
        assert cds.version_info == "" and cds.response_nonce == ""
        assert cds.node.id == "sidecar-1" and cds.node.cluster == "demo"
        assert cds.node.metadata.fields["app"].string_value == "web"
        assert cds.node.locality.zone == "z1" and cds.node.user_agent_name == "pillion"
        lds = s.request(T + "envoy.config.listener.v3.Listener")
        assert lds.node.id == "sidecar-1"  # the first request of each type carries the node
        assert px.admin("/ready")[0] == 503
        # garbage is not a response: ignored, no crash
        out.put(b"\xff\xff\xff\xff")
        cl = pb.cluster.Cluster(name="a", type=pb.cluster.Cluster.STATIC)
        out.put(s.response(T + "envoy.config.cluster.v3.Cluster", "v1", "n1", [cl]))
        ack = s.request(T + "envoy.config.cluster.v3.Cluster")
        assert (ack.version_info, ack.response_nonce) == ("v1", "n1")
        assert not ack.HasField("error_detail") and not ack.HasField("node")
        # a listener in a CDS response: NACK keeps v1, answers n2, says where
        out.put(s.response(T + "envoy.config.cluster.v3.Cluster", "v2", "n2",
                           raw_any=[(T + "envoy.config.listener.v3.Listener", b"")]))
        nack = s.request(T + "envoy.config.cluster.v3.Cluster")
        assert (nack.version_info, nack.response_nonce) == ("v1", "n2")
        assert "resources[0]" in nack.error_detail.message, nack.error_detail.message
        # a field number our proto subset does not know is not ignored
        raw = cl.SerializeToString() + b"\xa8\x1f\x01"
        out.put(s.response(T + "envoy.config.cluster.v3.Cluster", "v3", "n3",
                           raw_any=[(T + "envoy.config.cluster.v3.Cluster", raw)]))
        nack = s.request(T + "envoy.config.cluster.v3.Cluster")
        assert nack.version_info == "v1" and "field number 501" in nack.error_detail.message
        # an empty LDS: the initial configuration is in
        out.put(s.response(T + "envoy.config.listener.v3.Listener", "l1", "n4"))
        ack = s.request(T + "envoy.config.listener.v3.Listener")
        assert (ack.version_info, ack.response_nonce) == ("l1", "n4")
        until(lambda: px.admin("/ready")[0] == 200, 10, "/ready 200")
        # a type nobody asked for is ignored
        out.put(s.response(T + "envoy.config.core.v3.Foo", "x", "n5"))
        # the stream fails: the proxy reconnects and resubscribes with what it holds
        out.put(("abort", grpc.StatusCode.UNAVAILABLE))
        s.stream(timeout=15)
        again = s.request(T + "envoy.config.cluster.v3.Cluster", timeout=15)
        assert (again.version_info, again.response_nonce) == ("v1", "")
        assert again.node.id == "sidecar-1"
        again = s.request(T + "envoy.config.listener.v3.Listener")
        assert again.version_info == "l1"
        assert px.admin("/ready")[0] == 200
        assert stat(px, "cluster_manager.cds.update_rejected") == 2
        assert stat(px, "cluster_manager.cds.update_success") == 1
    finally:
        s.stop()


def test_large_response_leaves_no_read_buffer_behind(setup):
    """After large responses (assignments of 60,000 endpoints, about 1.6 MB each) and a small
    one, the heap is back near its size before: the gRPC channel keeps no read buffer sized after
    the large reads (its TCP reads are bounded, see src/xds/transport.c). Without that it keeps
    about 1.5 MB."""
    c, px, ups, lport, res = setup()

    def allocated():
        return int(px.admin_json("/memory")["allocated"])

    before = allocated()
    # three large responses: the first ones let HTTP/2 flow control open its window, so that the
    # last one arrives in large reads
    for v in range(3):
        big = clusters_yaml([("demo_upstream", ups[0].port)]) + "".join(
            f"    - endpoint: {{ address: {{ socket_address: {{ address: 127.{i >> 16 & 255}."
            f"{i >> 8 & 255}.{i & 255}, port_value: {1 + (i + v) % 60000} }} }} }}\n"
            for i in range(1, 60001))
        write(res / "clusters.yaml", big)
        want = str(2 + v)
        c.node("sidecar-1", lambda n, w=want: n["types"]["eds"]["acked_version"] == w, timeout=60)
    write(res / "clusters.yaml", clusters_yaml([("demo_upstream", ups[0].port)]))
    c.node("sidecar-1", lambda n: n["types"]["eds"]["acked_version"] == "5", timeout=30)
    served_by(lport, "u0")
    # the old snapshot goes after a grace period: wait for the heap to settle, bounded
    grown = []
    try:
        until(lambda: grown.append(allocated() - before) or grown[-1] < 768 * 1024, 10, "heap")
    except AssertionError:
        pytest.fail(f"the heap kept {grown[-1]} bytes more than before the large responses")
