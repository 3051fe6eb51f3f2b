"""pillion --config-path X: starts, answers Envoy's admin endpoints, round-trips /config_dump,
binds its listeners, and stops cleanly on SIGTERM/SIGINT."""
import json
import signal
import socket
import time

from conftest import free_port, run_pillion

BOOT = """\
node: {{id: sidecar-1, cluster: demo, metadata: {{team: mesh}}}}
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
static_resources:
  listeners:
  - name: ingress
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: ingress_tcp
          cluster: web
  - name: ingress_http
    address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          route_config:
            name: local
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: web, timeout: 3s}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: web
    type: STATIC
    connect_timeout: 0.5s
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: web
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 9}}}}}}
          load_balancing_weight: 3
"""


def boot(port=None):
    return BOOT.format(port=port if port is not None else free_port())


def strip_times(obj):
    """Removes last_updated fields (they differ between two runs) from a config dump."""
    if isinstance(obj, dict):
        return {k: strip_times(v) for k, v in obj.items() if k not in ("last_updated", "lastUpdated")}
    if isinstance(obj, list):
        return [strip_times(v) for v in obj]
    return obj


def test_ready_and_server_info(pillion):
    p = pillion(boot())
    status, headers, body = p.admin("/ready")
    assert status == 200 and body.strip() == "LIVE"
    info = p.admin_json("/server_info")
    assert info["state"] == "LIVE"
    assert info["node"]["id"] == "sidecar-1"
    assert info["node"]["cluster"] == "demo"
    assert "version" in info and "uptime_current_epoch" in info
    assert info["command_line_options"]["concurrency"] == 2


def test_healthcheck_fail_turns_ready_off(pillion):
    p = pillion(boot())
    assert p.admin("/healthcheck/fail")[0] == 405  # mutating endpoints need POST, as in Envoy
    assert p.admin("/healthcheck/fail", method="POST")[0] == 200
    status, _, body = p.admin("/ready")
    assert status == 503 and body.strip() == "DRAINING"
    assert p.admin("/healthcheck/ok", method="POST")[0] == 200
    assert p.admin("/ready")[0] == 200


def test_help_and_unknown_path(pillion):
    p = pillion(boot())
    status, _, body = p.admin("/help")
    assert status == 200
    for ep in ("/ready", "/server_info", "/stats", "/stats/prometheus", "/config_dump",
               "/clusters", "/listeners", "/logging", "/healthcheck/fail", "/healthcheck/ok",
               "/drain_listeners", "/quitquitquit", "/help"):
        assert ep in body, ep
    status, _, body = p.admin("/no/such/thing")
    assert status == 404
    assert "/config_dump" in body


def test_config_dump_is_envoy_format(pillion):
    p = pillion(boot())
    dump = p.admin_json("/config_dump")
    types = [c["@type"] for c in dump["configs"]]
    assert types[0] == "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump"
    assert "type.googleapis.com/envoy.admin.v3.ClustersConfigDump" in types
    assert "type.googleapis.com/envoy.admin.v3.ListenersConfigDump" in types
    assert "type.googleapis.com/envoy.admin.v3.RoutesConfigDump" in types
    b = dump["configs"][0]["bootstrap"]
    assert b["node"]["id"] == "sidecar-1"
    assert "last_updated" in dump["configs"][0]
    clusters = dump["configs"][types.index("type.googleapis.com/envoy.admin.v3.ClustersConfigDump")]
    c = clusters["static_clusters"][0]
    assert c["cluster"]["@type"] == "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    assert c["cluster"]["name"] == "web"
    assert c["cluster"]["connect_timeout"] == "0.500s"
    assert "last_updated" in c
    listeners = dump["configs"][types.index("type.googleapis.com/envoy.admin.v3.ListenersConfigDump")]
    names = [l["listener"]["name"] for l in listeners["static_listeners"]]
    assert names == ["ingress", "ingress_http"]
    routes = dump["configs"][types.index("type.googleapis.com/envoy.admin.v3.RoutesConfigDump")]
    assert routes["static_route_configs"][0]["route_config"]["name"] == "local"


def test_config_dump_round_trips(pillion):
    p1 = pillion(boot(port=0))
    d1 = p1.admin_json("/config_dump")
    b1 = d1["configs"][0]["bootstrap"]
    p2 = pillion(json.dumps(b1), fmt="json")
    d2 = p2.admin_json("/config_dump")
    assert strip_times(d2) == strip_times(d1)


def test_listeners_bind_and_accept(pillion):
    port = free_port()
    p = pillion(boot(port))
    status, _, body = p.admin("/listeners?format=json")
    assert status == 200
    listeners = json.loads(body)["listener_statuses"]
    by_name = {l["name"]: l for l in listeners}
    assert by_name["ingress"]["local_address"]["socket_address"]["port_value"] == port
    http_port = by_name["ingress_http"]["local_address"]["socket_address"]["port_value"]
    assert http_port != 0
    status, _, text = p.admin("/listeners")
    assert f"ingress::127.0.0.1:{port}" in text
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    # workers count accepts on their own threads: wait (bounded) for all 20 to be counted
    want = "listener.127.0.0.1_%d.downstream_cx_total: 20" % port
    deadline = time.monotonic() + 10
    while True:
        stats = p.admin("/stats")[2]
        if want in stats or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert want in stats, stats


def test_clusters_endpoint(pillion):
    p = pillion(boot())
    text = p.admin("/clusters")[2]
    assert "web::127.0.0.1:9::weight::3" in text
    js = p.admin_json("/clusters?format=json")
    c = js["cluster_statuses"][0]
    assert c["name"] == "web"
    assert c["host_statuses"][0]["address"]["socket_address"]["port_value"] == 9


def test_stats_formats(pillion):
    p = pillion(boot())
    status, headers, body = p.admin("/stats/prometheus")
    assert status == 200
    assert "pillion_" in body and "# TYPE" in body
    js = p.admin_json("/stats?format=json")
    assert isinstance(js["stats"], list)


def test_logging_level(pillion):
    p = pillion(boot())
    assert p.admin("/logging?level=debug", method="POST")[0] == 200
    assert "debug" in p.admin("/logging", method="POST")[2]
    # an unknown level gets the usage text and 404, as Envoy answers
    status, _, body = p.admin("/logging?level=nonsense", method="POST")
    assert status == 404 and "usage" in body.lower()


def test_port_in_use_is_a_clear_startup_error(pillion, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = pillion(boot(port), wait=False)
        rc = p.proc.wait(15)
        assert rc == 1
        out = p.output()
        assert "listener 'ingress'" in out and f"127.0.0.1:{port}" in out, out


def test_sigterm_drains_and_exits_zero(pillion):
    p = pillion(boot(), args=["--drain-time-s", "2"])
    t = time.monotonic()
    assert p.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t < 5


def test_sigint_exits_fast(pillion):
    p = pillion(boot(), args=["--drain-time-s", "60"])
    t = time.monotonic()
    assert p.stop(signal.SIGINT) == 0
    assert time.monotonic() - t < 3


def test_quitquitquit(pillion):
    p = pillion(boot())
    assert p.admin("/quitquitquit", method="POST")[0] == 200
    assert p.proc.wait(10) == 0


def test_drain_listeners_stops_accepting(pillion):
    port = free_port()
    p = pillion(boot(port))
    assert p.admin("/drain_listeners", method="POST")[0] == 200
    deadline = time.monotonic() + 5
    refused = False
    while time.monotonic() < deadline and not refused:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                time.sleep(0.05)
        except ConnectionRefusedError:
            refused = True
    assert refused
    # the process keeps running and serving admin after draining its listeners
    assert p.admin("/server_info")[0] == 200


def test_init_only_exits_after_loading(tmp_path):
    p = tmp_path / "b.yaml"
    p.write_text(boot())
    r = run_pillion("--mode", "init_only", "--config-path", str(p))
    assert r.returncode == 0, r.stderr
