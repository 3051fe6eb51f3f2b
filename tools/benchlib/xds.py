"""xDS measurements (Pillion only: the other proxies under test do not speak xDS): Pillion fed by
the reference control plane pillion-cp over ADS. Initial propagation (exec to the first 200),
update propagation (resource file replaced to the new route answering), and errors while routes
and clusters are swapped under load."""
import http.client
import os
import statistics
import threading
import time

from . import clients, procs


def _write(path, text):
    """Atomic replace (write elsewhere, rename over), as pillion-cp's README asks."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def listener(port):
    return f"""resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: bench
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: bench
        rds:
          route_config_name: bench_route
          config_source: {{ ads: {{}}, resource_api_version: V3 }}
        http_filters:
        - name: envoy.filters.http.router
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"""


def routes(prefixes, cluster="up_a"):
    """Exactly `/` to cluster plus one route per extra prefix (each to up_a); other paths 404."""
    extra = "".join(f"""
    - match: {{ prefix: "{p}" }}
      route: {{ cluster: up_a }}""" for p in prefixes)
    return f"""resources:
- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: bench_route
  virtual_hosts:
  - name: all
    domains: ["*"]
    routes:{extra}
    - match: {{ path: "/" }}
      route: {{ cluster: {cluster} }}
"""


def clusters(up, variant=0):
    """Clusters up_a and up_b at the same upstream; variant changes up_b's connect_timeout so a
    rewrite is a real CDS update."""
    out = "resources:\n"
    for n in ("up_a", "up_b"):
        out += f"""- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: {n}
  type: EDS
  connect_timeout: {1 + variant if n == "up_b" else 1}s
  eds_cluster_config: {{ eds_config: {{ ads: {{}}, resource_api_version: V3 }} }}
- "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
  cluster_name: {n}
  endpoints:
  - lb_endpoints:
    - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {up} }} }} }}
"""
    return out


def bootstrap(xds_port):
    return f"""node: {{ id: bench-sidecar, cluster: bench }}
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services:
    - envoy_grpc: {{ cluster_name: xds_cluster }}
  lds_config: {{ ads: {{}}, resource_api_version: V3 }}
  cds_config: {{ ads: {{}}, resource_api_version: V3 }}
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


def status(port, path, timeout=2):
    """The status of one GET through port, or None when it fails."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        c.close()
        return r.status
    except (OSError, http.client.HTTPException):
        return None


def until(pred, timeout, what, proc=None, step=0.002):
    """Polls pred every step seconds; returns the time it held, or raises after timeout (or when
    proc exited)."""
    t0 = time.monotonic()
    while not pred():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.bench_name} exited: {procs.tail(proc.bench_log, 600)}")
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"{what}: not within {timeout}s")
        time.sleep(step)
    return time.monotonic()


def _until_200(port, path, timeout, proc=None, step=0.002):
    return until(lambda: status(port, path) == 200, timeout, f"{path} answering 200", proc, step)


def cp_binary(pillion):
    p = os.path.join(os.path.dirname(os.path.dirname(pillion)), "control-plane-stub", "pillion-cp")
    return p if os.access(p, os.X_OK) else None


def supported(pillion):
    """None when Pillion has an xDS client and pillion-cp is built, else the reason."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if not os.path.isdir(os.path.join(root, "src", "xds")):
        return "Pillion has no xDS client in this tree (src/xds/)."
    if not cp_binary(pillion):
        return "pillion-cp is not built next to the pillion binary (control-plane-stub/)."
    return None


def run(P, d, pillion, up_port, updates, swap_s, log=print):
    """Returns {initial_ms, update_ms: {median, min, max, runs}, swap: {...}}."""
    res_dir = f"{d}/xds-resources"
    os.makedirs(res_dir, exist_ok=True)
    port, xds_port, status_port = procs.free_ports(3)
    _write(f"{res_dir}/clusters.yaml", clusters(up_port))
    _write(f"{res_dir}/listeners.yaml", listener(port))
    _write(f"{res_dir}/routes.yaml", routes([]))
    cp = P.start("pillion-cp", [cp_binary(pillion), "--resources", res_dir, "--xds-address",
                                f"127.0.0.1:{xds_port}", "--status-address",
                                f"127.0.0.1:{status_port}", "--log-level", "warning"],
                 f"{d}/pillion-cp.log")
    procs.wait_port(xds_port, 10, cp)
    with open(f"{d}/xds-bootstrap.yaml", "w") as f:
        f.write(bootstrap(xds_port))
    out = {}
    t0 = time.monotonic()
    px = P.start("pillion-xds", [pillion, "--config-path", f"{d}/xds-bootstrap.yaml",
                                 "--concurrency", "1", "--log-level", "warning",
                                 "--admin-address-path", f"{d}/pillion-xds-admin"],
                 f"{d}/pillion-xds.log")
    try:
        out["initial_ms"] = round((_until_200(port, "/", 20, px) - t0) * 1000, 1)
        log(f"  xds initial: {out['initial_ms']} ms")
        runs, prefixes = [], []
        for k in range(updates):
            prefixes.append(f"/v{k}/")
            if status(port, prefixes[-1]) == 200:
                raise RuntimeError(f"{prefixes[-1]} answered before its route was sent")
            t1 = time.monotonic()
            _write(f"{res_dir}/routes.yaml", routes(prefixes))
            runs.append(round((_until_200(port, prefixes[-1], 10, px) - t1) * 1000, 1))
            time.sleep(0.1)
        out["update_ms"] = {"median": statistics.median(runs), "min": min(runs),
                            "max": max(runs), "runs": runs}
        log(f"  xds update (RDS, file replaced to new route answering): {out['update_ms']}")
        before = update_stats(f"{d}/pillion-xds-admin")
        out["swap"] = swap_under_load(port, res_dir, swap_s, prefixes, px)
        after = update_stats(f"{d}/pillion-xds-admin")
        out["swap"]["updates_applied"] = {k: v - before.get(k, 0) for k, v in after.items()
                                          if isinstance(v, int)}
        log(f"  xds swap under load: {out['swap']}")
    finally:
        P.stop(px)
        P.stop(cp)
    return out


def swap_under_load(port, res_dir, seconds, prefixes, px):
    """wrk -c32 on `/` while the route of `/` flips between clusters up_a and up_b (RDS) every
    100 ms, and every fourth swap also changes cluster up_b (CDS; same upstream)."""
    stop = threading.Event()
    swaps = [0]

    def swapper():
        k = 0
        while not stop.wait(0.1):
            k += 1
            _write(f"{res_dir}/routes.yaml", routes(prefixes, "up_b" if k % 2 else "up_a"))
            if k % 4 == 0:
                _write(f"{res_dir}/clusters.yaml", clusters(_up_port(res_dir), k // 4 % 2))
            swaps[0] += 1

    th = threading.Thread(target=swapper, daemon=True)
    th.start()
    try:
        r = clients.measured(px.pid, lambda: clients.wrk(f"http://127.0.0.1:{port}/", 32,
                                                         seconds))
    finally:
        stop.set()
        th.join(2)
    return {"requests": r["requests"], "errors": r["errors"], "rps": r["rps"],
            "file_swaps": swaps[0], "seconds": seconds}


def _up_port(res_dir):
    with open(f"{res_dir}/clusters.yaml") as f:
        for line in f:
            if "port_value:" in line:
                return int(line.split("port_value:")[1].split("}")[0])
    raise RuntimeError("no upstream port in clusters.yaml")


def update_stats(admin_file):
    """Pillion's xDS update counters (RDS, CDS, LDS: attempt/success/rejected) from /stats."""
    try:
        with open(admin_file) as f:
            host, _, port = f.read().strip().rpartition(":")
        c = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=5)
        c.request("GET", "/stats")
        text = c.getresponse().read().decode()
        c.close()
    except (OSError, ValueError):
        return {}
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(": ")
        if (k.startswith(("http.bench.rds.", "cluster_manager.cds.", "listener_manager.lds."))
                and k.rsplit(".", 1)[-1] in ("update_success", "update_rejected")):
            out[k] = int(v) if v.strip().isdigit() else v
    return out
