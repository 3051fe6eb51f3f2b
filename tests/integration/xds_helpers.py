"""Shared by the xDS tests (tests/integration/test_xds.py, tests/conformance/): pillion-cp
resource files (listener -> RDS -> EDS clusters), the ADS bootstrap, and small clients."""
import http.client
import json
import re
import subprocess

from conftest import free_port, until, write


def listener_yaml(port, name="ingress_http", route="local_route"):
    return f"""resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: {name}
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: {name}
        rds:
          route_config_name: {route}
          config_source: {{ ads: {{}}, resource_api_version: V3 }}
        http_filters:
        - name: envoy.filters.http.router
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"""


def routes_yaml(cluster="demo_upstream", name="local_route", tag=None):
    """One RouteConfiguration sending everything to cluster; with tag, every response it routes
    carries x-route-tag: <tag> (which route version served it)."""
    hdr = (f"\n  response_headers_to_add: [{{ header: {{ key: x-route-tag, value: '{tag}' }} }}]"
           if tag is not None else "")
    return f"""resources:
- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: {name}{hdr}
  virtual_hosts:
  - name: demo
    domains: ["*"]
    routes:
    - match: {{ prefix: "/" }}
      route: {{ cluster: {cluster}, timeout: 5s }}
"""


def cluster_yaml(name, port, extra=""):
    return f"""- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: {name}
  type: EDS
  connect_timeout: 1s
  eds_cluster_config: {{ eds_config: {{ ads: {{}}, resource_api_version: V3 }} }}
{extra}- "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
  cluster_name: {name}
  endpoints:
  - lb_endpoints:
    - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}
"""


def clusters_yaml(clusters, extra=""):
    return "resources:\n" + "".join(cluster_yaml(n, p, extra) for n, p in clusters)


def bootstrap(xds_port, node_id="sidecar-1", fetch_timeout=None, api_type="GRPC"):
    ift = f", initial_fetch_timeout: {fetch_timeout}" if fetch_timeout else ""
    return f"""node:
  id: {node_id}
  cluster: demo
  metadata: {{ app: web }}
  locality: {{ region: r1, zone: z1 }}
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
dynamic_resources:
  ads_config:
    api_type: {api_type}
    transport_api_version: V3
    grpc_services:
    - envoy_grpc: {{ cluster_name: xds_cluster }}
  lds_config: {{ ads: {{}}, resource_api_version: V3{ift} }}
  cds_config: {{ ads: {{}}, resource_api_version: V3{ift} }}
static_resources:
  clusters:
  - name: xds_cluster
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{ http2_protocol_options: {{}} }}
    load_assignment:
      cluster_name: xds_cluster
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {xds_port} }} }} }}
"""


def get(port, path="/", timeout=5):
    """One HTTP/1.1 GET through the proxy; returns (status, echoed JSON or None)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        try:
            return r.status, json.loads(body)
        except ValueError:
            return r.status, None
    finally:
        c.close()


def served_by(port, name, timeout=10):
    """Waits until requests through port reach upstream `name`."""
    def ok():
        status, body = get(port)
        return status == 200 and body and body["upstream"] == name
    return until(ok, timeout, f"traffic on :{port} to {name}")


def add_other_cluster(cp, res, ups):
    """Serves cluster `other` (upstream u1) next to demo_upstream (u0) and waits until the
    proxy subscribed to both assignments."""
    write(res / "clusters.yaml",
          clusters_yaml([("demo_upstream", ups[0].port), ("other", ups[1].port)]))
    cp.node("sidecar-1",
            lambda n: sorted(n["types"]["eds"]["subscribed"]) == ["demo_upstream", "other"])


def start_xds(tmp_path, cp, pillion, upstream, n_upstreams=1, api_type="GRPC", cp_args=()):
    """pillion-cp (started with cp_args) serving one listener -> RDS -> EDS cluster, a pillion on
    it, n upstreams (u0..); returns (cp, pillion, upstreams, listener port, resources dir) once u0
    is served."""
    ups = [upstream(f"u{i}") for i in range(n_upstreams)]
    lport = free_port()
    res = tmp_path / "res"
    res.mkdir()
    (res / "listeners.yaml").write_text(listener_yaml(lport))
    (res / "routes.yaml").write_text(routes_yaml())
    (res / "clusters.yaml").write_text(clusters_yaml([("demo_upstream", ups[0].port)]))
    c = cp(res, args=cp_args)
    px = pillion(bootstrap(c.xds_port, api_type=api_type))
    until(lambda: px.admin("/ready")[0] == 200, 15, "/ready 200")
    served_by(lport, "u0")
    return c, px, ups, lport, res


def h2load(port, seconds, clients=4, streams=4, rps=None, path="/load"):
    """h2load over h2c (prior knowledge) for `seconds` (-D: requests still in flight at the end
    are neither done nor failed), at most rps requests/s per connection when given, bounded by a
    kill timeout; returns its counters (total, started, done, succeeded, failed, errored,
    timeout, 2xx, 3xx, 4xx, 5xx) and the output (out)."""
    rate = [f"--rps={rps}"] if rps else []
    r = subprocess.run(["h2load", "-t1", f"-c{clients}", f"-m{streams}", f"-D{seconds}", *rate,
                        f"http://127.0.0.1:{port}{path}"],
                       capture_output=True, text=True, timeout=seconds + 30)
    out = r.stdout + r.stderr
    req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                    r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    assert r.returncode == 0 and req and codes, out
    keys = ("total", "started", "done", "succeeded", "failed", "errored", "timeout")
    res = dict(zip(keys, map(int, req.groups())))
    res.update(zip(("2xx", "3xx", "4xx", "5xx"), map(int, codes.groups())))
    res["out"] = out
    return res


def assert_h2load_clean(res):
    """No request failed, errored or timed out, some were done, and every status was 2xx (h2load
    also counts the status of requests still in flight when -D ends: 2xx may exceed done)."""
    assert res["failed"] == 0 and res["errored"] == 0 and res["timeout"] == 0, res["out"]
    assert res["3xx"] == res["4xx"] == res["5xx"] == 0, res["out"]
    assert res["done"] > 0 and res["2xx"] >= res["done"], res["out"]
