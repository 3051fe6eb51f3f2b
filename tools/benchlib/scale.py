"""Config scale: start each proxy with N clusters and N routes (one per cluster, all pointing at
the shared upstream) and measure the time until the last route answers 200, and the memory."""
import http.client
import json
import time

from . import procs, targets


def pillion_config(n, port, up):
    routes = "".join(f"""
              - match: {{ prefix: "/c{i}/" }}
                route: {{ cluster: c{i} }}""" for i in range(n))
    clusters = "".join(f"""
  - name: c{i}
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: c{i}
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: 127.0.0.1, port_value: {up} }}""" for i in range(n))
    return f"""admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: 0 }}
static_resources:
  listeners:
  - name: h1
    address:
      socket_address: {{ address: 127.0.0.1, port_value: {port} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          route_config:
            name: local_route
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:{routes}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:{clusters}
"""


def nginx_config(n, port, up, d):
    ups = "".join(f"    upstream c{i} {{ server 127.0.0.1:{up}; keepalive 16; }}\n"
                  for i in range(n))
    locs = "".join(f"        location /c{i}/ {{ proxy_pass http://c{i}; }}\n" for i in range(n))
    return f"""worker_processes 1;
daemon off;
pid {d}/scale-nginx.pid;
error_log {d}/scale-nginx.error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/sc-body;
    proxy_temp_path {d}/sc-proxy;
    fastcgi_temp_path {d}/sc-fastcgi;
    uwsgi_temp_path {d}/sc-uwsgi;
    scgi_temp_path {d}/sc-scgi;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
{ups}    server {{
        listen 127.0.0.1:{port};
{locs}    }}
}}
"""


def haproxy_config(n, port, up, d):
    # HAProxy's idiomatic form for many routes: one map from path prefix to backend.
    with open(f"{d}/scale-haproxy.map", "w") as f:
        for i in range(n):
            f.write(f"/c{i}/ c{i}\n")
    backends = "".join(f"backend c{i}\n    server s 127.0.0.1:{up}\n" for i in range(n))
    return f"""global
    nbthread 1
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend h1
    bind 127.0.0.1:{port}
    use_backend %[path,map_beg({d}/scale-haproxy.map)]
{backends}"""


def nghttpx_config(n, port, up, d):
    backends = "".join(f"backend=127.0.0.1,{up};/c{i}/;proto=http/1.1\n" for i in range(n))
    return f"""frontend=127.0.0.1,{port};no-tls
{backends}backend=127.0.0.1,{up};;proto=http/1.1
workers=1
pid-file={d}/scale-nghttpx.pid
errorlog-file={d}/scale-nghttpx.error.log
"""


EXT = {"pillion": "yaml", "nginx": "conf", "haproxy": "cfg", "nghttpx": "conf"}


def write_config(name, n, port, up, d):
    path = f"{d}/scale-{name}-{n}.{EXT[name]}"
    if name == "pillion":
        text = pillion_config(n, port, up)
    else:
        text = globals()[f"{name}_config"](n, port, up, d)
    with open(path, "w") as f:
        f.write(text)
    return path


def _ready_200(port, path):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        c.close()
        return r.status == 200
    except OSError:
        return False


def measure(P, name, n, up, d, pillion, timeout=120):
    """Starts `name` with n clusters/routes; returns {apply_ms, pss_kb, rss_kb} (+ pillion's
    /memory allocated bytes)."""
    n_eff = max(n, 1)
    (port,) = procs.free_ports(1)
    cfg = write_config(name, n_eff, port, up, d)
    admin_file = f"{d}/pillion-admin-scale-{n_eff}"
    cmd = targets.proxy_cmd(name, cfg, d, pillion, admin_file)
    log = f"{d}/scale-{name}-{n_eff}.log"
    t0 = time.monotonic()
    p = P.start(f"{name}-scale", cmd, log)
    try:
        path = f"/c{n_eff - 1}/"
        deadline = t0 + timeout
        while not _ready_200(port, path):
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited with {p.returncode}: {procs.tail(log, 600)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: {path} never answered 200 within {timeout}s")
            time.sleep(0.01)
        apply_ms = (time.monotonic() - t0) * 1000
        time.sleep(0.3)
        pss, rss = procs.mem_kb(p.pid)
        res = {"clusters": n_eff, "routes": n_eff, "apply_ms": round(apply_ms, 1),
               "pss_kb": pss, "rss_kb": rss}
        if name == "pillion":
            res["allocated_bytes"] = _pillion_allocated(admin_file)
        return res
    finally:
        P.stop(p)


def _pillion_allocated(admin_file):
    """malloc'd bytes from Pillion's admin /memory (Envoy's field name: allocated)."""
    try:
        with open(admin_file) as f:
            host, _, port = f.read().strip().rpartition(":")
        c = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=5)
        c.request("GET", "/memory")
        body = json.loads(c.getresponse().read())
        c.close()
        return int(body["allocated"])
    except (OSError, ValueError, KeyError):
        return None


def run(P, names, sizes, up, d, pillion, log=print):
    out = {}
    for name in names:
        rows = []
        for n in sizes:
            try:
                rows.append(measure(P, name, n, up, d, pillion))
            except Exception as e:  # recorded, the run goes on
                rows.append({"clusters": max(n, 1), "error": str(e)[:400]})
            log(f"  scale {name} {n}: {rows[-1]}")
        out[name] = rows
    return out
