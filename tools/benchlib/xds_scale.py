"""xDS scale (Pillion only): real pillion-cp and real pillion processes.

apply: one proxy on a pillion-cp whose files grow in steps (empty -> N EDS clusters with E
endpoints each -> N routes), then single-resource changes (one EDS assignment, one cluster, one
route). Each step is timed from the atomic rename of the file to the proxy serving the change
(a request answering 200 through a route or cluster the step added, or /server_info showing the
new version), with the proxy's own CPU time and its apply time (/server_info xds.types.*.
last_apply_ms), and the RSS growth per cluster and per route.

fanout: P proxies (--concurrency 1) on one pillion-cp; one endpoint change is written and the
time until every proxy answers from the new endpoint is measured.
"""
import http.client
import json
import os
import selectors
import socket
import statistics
import time

from . import procs
from .xds import bootstrap, cp_binary, status as _status, until as _until

LISTENER = "scale"
ROUTE = "scale_route"
T = "type.googleapis.com/envoy.config."


_RENAMED = [None]  # monotonic time of the first rename since _since_rename() reset it


def _write(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
    os.rename(tmp, path)
    if _RENAMED[0] is None:
        _RENAMED[0] = time.monotonic()


def _since_rename(write):
    """Runs write() (which builds and writes resource files); returns the monotonic time of its
    first rename: the clock starts when pillion-cp can see the change, not while Python is still
    serializing 10 MB of JSON (that took 1.5 s of a 1.6 s "EDS change" at N=10,000)."""
    _RENAMED[0] = None
    t = time.monotonic()
    write()
    return _RENAMED[0] if _RENAMED[0] is not None else t


def _eds_cluster(name):
    return {"@type": T + "cluster.v3.Cluster", "name": name, "type": "EDS",
            "connect_timeout": "1s",
            "eds_cluster_config": {"eds_config": {"ads": {}, "resource_api_version": "V3"}}}


def _cla(name, addrs):
    return {"@type": T + "endpoint.v3.ClusterLoadAssignment", "cluster_name": name,
            "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": a, "port_value": p}}}}
                for a, p in addrs]}]}


def _bulk_addrs(i, n_eps):
    """n_eps addresses of cluster i in 10.0.0.0/8 (never contacted: only config size counts)."""
    return [(f"10.{(i >> 8) & 255}.{i & 255}.{k + 1}", 8080) for k in range(n_eps)]


class ScaleSet:
    """The resource files pillion-cp serves: listeners.json, clusters.json, endpoints.json,
    routes.json in one directory."""

    def __init__(self, res_dir, lport, up_port, dead_port, n_eps):
        self.dir, self.lport, self.up, self.dead, self.n_eps = res_dir, lport, up_port, \
            dead_port, n_eps
        self.n_clusters = 0
        self.n_routes = 0
        self.probes = ["probe0"]     # clusters answering from the upstream, one route each
        self.eds_live = False        # cluster probe_eds: dead port until an EDS change
        self.bulk_variant = {}       # cluster index -> connect_timeout seconds (CDS changes)
        self.route_variant = 0       # bumps a route's prefix (RDS changes)
        os.makedirs(res_dir, exist_ok=True)

    def write_listener(self, node=None, port=None):
        """The listener (for every node, or with node: for that node id only, on port)."""
        hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network."
                        "http_connection_manager.v3.HttpConnectionManager",
               "stat_prefix": LISTENER,
               "rds": {"route_config_name": ROUTE,
                       "config_source": {"ads": {}, "resource_api_version": "V3"}},
               "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                   "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
        doc = {"resources": [{
            "@type": T + "listener.v3.Listener", "name": LISTENER,
            "address": {"socket_address": {"address": "127.0.0.1",
                                           "port_value": port or self.lport}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                            "typed_config": hcm}]}]}]}
        if node:
            doc["node_selector"] = {"id": node}
        _write(f"{self.dir}/listeners{'-' + node if node else ''}.json", doc)

    def write_clusters(self):
        cl = [_eds_cluster(p) for p in self.probes] + [_eds_cluster("probe_eds")]
        for i in range(self.n_clusters):
            c = _eds_cluster(f"c{i}")
            if i in self.bulk_variant:
                c["connect_timeout"] = f"{self.bulk_variant[i]}s"
            cl.append(c)
        _write(f"{self.dir}/clusters.json", {"resources": cl})

    def write_endpoints(self):
        la = [_cla(p, [("127.0.0.1", self.up)]) for p in self.probes]
        la.append(_cla("probe_eds", [("127.0.0.1", self.up if self.eds_live else self.dead)]))
        la += [_cla(f"c{i}", _bulk_addrs(i, self.n_eps)) for i in range(self.n_clusters)]
        _write(f"{self.dir}/endpoints.json", {"resources": la})

    def write_routes(self):
        routes = [{"match": {"prefix": f"/r{self.route_variant if i == 0 else ''}{i}/"},
                   "route": {"cluster": "probe0" if i == 0 else f"c{i % self.n_clusters}"}}
                  for i in range(self.n_routes if self.n_clusters else 0)]
        routes += [{"match": {"prefix": f"/{p}/"}, "route": {"cluster": p}} for p in self.probes]
        routes.append({"match": {"prefix": "/probe_eds/"}, "route": {"cluster": "probe_eds"}})
        _write(f"{self.dir}/routes.json", {"resources": [{
            "@type": T + "route.v3.RouteConfiguration", "name": ROUTE,
            "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]}]})

    def write_all(self, listener=True):
        self.write_clusters()
        self.write_endpoints()
        self.write_routes()
        if listener:
            self.write_listener()


def _admin(admin_file, path, timeout=10):
    with open(admin_file) as f:
        host, _, port = f.read().strip().rpartition(":")
    c = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout)
    try:
        c.request("GET", path)
        return c.getresponse().read()
    finally:
        c.close()


def _xds_info(admin_file):
    try:
        return json.loads(_admin(admin_file, "/server_info"))["xds"]
    except (OSError, ValueError, KeyError):
        return {}


def _rss_kb(pid, settle=0.3):
    time.sleep(settle)
    return procs.mem_kb(pid)[1]


def start_cp(P, d, res_dir, tag="cp"):
    xds_port, status_port = procs.free_ports(2)
    cp = P.start(f"pillion-cp-{tag}", [
        cp_binary_or_raise(d), "--resources", res_dir, "--xds-address", f"127.0.0.1:{xds_port}",
        "--status-address", f"127.0.0.1:{status_port}", "--log-level", "warning"],
        f"{d}/{tag}.log")
    procs.wait_port(xds_port, 30, cp)
    return cp, xds_port, status_port


_CP = {}


def cp_binary_or_raise(d):
    p = _CP.get("bin")
    if not p:
        raise RuntimeError("pillion-cp not found")
    return p


def start_proxy(P, d, xds_port, tag, api_type="GRPC", log_level="warning"):
    boot = f"{d}/{tag}-bootstrap.yaml"
    with open(boot, "w") as f:
        f.write(bootstrap(xds_port).replace("api_type: GRPC", f"api_type: {api_type}")
                .replace("id: bench-sidecar", f"id: {tag}"))
    admin_file = f"{d}/{tag}-admin"
    px = P.start(tag, [_CP["pillion"], "--config-path", boot, "--concurrency", "1",
                       "--log-level", log_level, "--admin-address-path", admin_file],
                 f"{d}/{tag}.log")
    px.admin_file = admin_file
    return px


def _step(px, pred, what, timeout, write, step=0.002):
    """Runs write(), then waits for pred(); returns wall ms, the proxy's CPU ms and its minor page
    faults meanwhile."""
    cpu0, flt0 = procs.cpu_seconds(px.pid), procs.minor_faults(px.pid)
    t0 = _since_rename(write)
    t1 = _until(pred, timeout, what, px, step)
    cpu1, flt1 = procs.cpu_seconds(px.pid), procs.minor_faults(px.pid)
    return {"wall_ms": round((t1 - t0) * 1000, 1), "proxy_cpu_ms": round((cpu1 - cpu0) * 1000),
            "proxy_minor_faults": flt1 - flt0}


def _apply_ms(px, t):
    return _xds_info(px.admin_file).get("types", {}).get(t, {}).get("last_apply_ms")


def run_apply(P, d, pillion, up_port, n, n_eps=10, reps=3, api_type="GRPC", log=print,
              timeout=120, initial_only=False):
    """One proxy; returns {clusters, routes, endpoints_per_cluster, steps: {...}, memory} and,
    unless initial_only, the single changes."""
    _CP.update(bin=cp_binary(pillion), pillion=pillion)
    tag = f"scale{n}-{api_type.lower()}"
    res_dir = f"{d}/{tag}-res"
    lport, dead = procs.free_ports(2)
    s = ScaleSet(res_dir, lport, up_port, dead, n_eps)
    s.write_all()
    cp, xds_port, status_port = start_cp(P, d, res_dir, f"{tag}-cp")
    px = start_proxy(P, d, xds_port, f"{tag}-px", api_type)
    out = {"clusters": n, "routes": n, "endpoints_per_cluster": n_eps, "api_type": api_type}
    try:
        _until(lambda: _status(lport, "/probe0/") == 200, 30, "initial config", px)
        rss0 = _rss_kb(px.pid)
        steps = {}

        def add_probe():
            s.probes.append(f"probe{len(s.probes)}")
            return f"/{s.probes[-1]}/"

        # N clusters with their endpoints (and one probe cluster + route to see them arrive)
        s.n_clusters = n
        path = add_probe()

        def write_sets():
            s.write_all(listener=False)
        steps["clusters"] = _step(px, lambda: _status(lport, path) == 200,
                                  f"{n} clusters", timeout, write_sets)
        steps["clusters"]["apply_ms"] = {t: _apply_ms(px, t) for t in ("cds", "eds")}
        rss1 = _rss_kb(px.pid)
        # N routes
        s.n_routes = n
        path = add_probe()

        steps["routes"] = _step(px, lambda: _status(lport, path) == 200, f"{n} routes",
                                timeout, write_sets)
        steps["routes"]["apply_ms"] = {"rds": _apply_ms(px, "rds")}
        rss2 = _rss_kb(px.pid)
        out["memory"] = {
            "rss_empty_kb": rss0, "rss_clusters_kb": rss1, "rss_routes_kb": rss2,
            "bytes_per_cluster": round((rss1 - rss0) * 1024 / max(n, 1)),
            "bytes_per_route": round((rss2 - rss1) * 1024 / max(n, 1))}
        log(f"  xds scale {tag}: {steps['clusters']} {steps['routes']} {out['memory']}")
        out["steps"] = steps
        if initial_only:
            return out
        # single changes, each repeated
        ch = {"eds": [], "cds": [], "rds": []}
        for k in range(reps):
            s.eds_live = not s.eds_live
            want = 200 if s.eds_live else 503
            r = _step(px, lambda: _status(lport, "/probe_eds/") == want, "one EDS change",
                      timeout, s.write_endpoints)
            r["apply_ms"] = _apply_ms(px, "eds")
            ch["eds"].append(r)
            s.bulk_variant[0] = 2 + k % 2
            cds_v = _cp_version(status_port, "cds")
            r = _step(px, lambda: _proxy_version(px, "cds") not in (None, cds_v) and
                      _proxy_version(px, "cds") == _cp_version(status_port, "cds"),
                      "one CDS change", timeout, s.write_clusters, step=0.01)
            r["apply_ms"] = _apply_ms(px, "cds")
            ch["cds"].append(r)
            s.route_variant += 1
            path = f"/r{s.route_variant}0/"
            r = _step(px, lambda: _status(lport, path) == 200,
                      "one route change", timeout, s.write_routes)
            r["apply_ms"] = _apply_ms(px, "rds")
            ch["rds"].append(r)
        out["changes"] = {t: _summ(v) for t, v in ch.items()}
        out["steps"] = steps
        out["rss_final_kb"] = _rss_kb(px.pid, 0)
        log(f"  xds scale {tag} changes: {out['changes']}")
    finally:
        P.stop(px)
        P.stop(cp)
    return out


def _summ(runs):
    out = {"runs": runs}
    for k in ("wall_ms", "proxy_cpu_ms", "proxy_minor_faults"):
        v = [r[k] for r in runs if r.get(k) is not None]
        if v:
            out[k] = statistics.median(v)
    v = [r["apply_ms"] for r in runs if isinstance(r.get("apply_ms"), (int, float))]
    if v:
        out["apply_ms"] = statistics.median(v)
    return out


def _cp_version(status_port, t):
    try:
        c = http.client.HTTPConnection("127.0.0.1", status_port, timeout=5)
        c.request("GET", "/status")
        st = json.loads(c.getresponse().read())
        c.close()
        return st["resources"][t]["version"]
    except (OSError, ValueError, KeyError):
        return None


def _proxy_version(px, t):
    return _xds_info(px.admin_file).get("types", {}).get(t, {}).get("version_info")


# ---- fan-out: one change, many proxies ----------------------------------------------------------

def _poll_all(ports, path, want, deadline):
    """GETs path on every port (a new connection per try, all at once through one selector) until
    each answered `want`; returns {port: monotonic time of its first such answer}."""
    sel = selectors.DefaultSelector()
    done, inflight, next_try = {}, {}, {}
    req = f"GET {path} HTTP/1.1\r\nHost: fanout\r\nConnection: close\r\n\r\n".encode()
    try:
        while len(done) < len(ports) and time.monotonic() < deadline:
            now = time.monotonic()
            for p in ports:
                if p in done or p in inflight or next_try.get(p, 0) > now:
                    continue
                sk = socket.socket()
                sk.setblocking(False)
                sk.connect_ex(("127.0.0.1", p))
                inflight[p] = [sk, b"", False]
                sel.register(sk, selectors.EVENT_WRITE, p)
            for key, _ in sel.select(0.002):
                p = key.data
                sk, buf, sent = inflight[p]
                finished = False
                try:
                    if not sent:
                        sk.send(req)
                        inflight[p][2] = True
                        sel.modify(sk, selectors.EVENT_READ, p)
                        continue
                    chunk = sk.recv(4096)
                    buf += chunk
                    finished = not chunk or b"\r\n" in buf
                except OSError:
                    finished = True
                if finished:
                    sel.unregister(sk)
                    sk.close()
                    del inflight[p]
                    if buf.startswith(f"HTTP/1.1 {want}".encode()):
                        done[p] = time.monotonic()
                    else:  # refused or the old answer: ask again in 10 ms
                        next_try[p] = time.monotonic() + 0.01
    finally:
        for sk, _, _ in inflight.values():
            sel.unregister(sk)
            sk.close()
        sel.close()
    return done


def _stop_many(P, ps):
    """SIGTERM to all first (they stop in parallel), then reaps each."""
    for p in ps:
        try:
            os.killpg(p.pid, 15)
        except (ProcessLookupError, PermissionError):
            pass
    for p in ps:
        P.stop(p, timeout=5)


def run_fanout(P, d, pillion, up_port, n_proxies, n_clusters, changes=3, api_type="GRPC",
               log=print, timeout=60):
    """n_proxies pillion processes on one pillion-cp, each with n_clusters EDS clusters (10
    endpoints) and n_clusters routes; then `changes` times the endpoint of one cluster moves
    (dead port <-> the upstream) and the time from the file write until every proxy answers
    through it is taken. Returns {proxies, clusters, runs: [...], median_all_ms, ...}."""
    _CP.update(bin=cp_binary(pillion), pillion=pillion)
    tag = f"fanout{n_proxies}-{api_type.lower()}"
    res_dir = f"{d}/{tag}-res"
    dead, = procs.free_ports(1)
    s = ScaleSet(res_dir, 0, up_port, dead, 10)
    s.n_clusters = n_clusters
    s.n_routes = n_clusters
    s.write_all(listener=False)
    ports = procs.free_ports(n_proxies)
    for i, p in enumerate(ports):
        s.write_listener(node=f"{tag}-{i}", port=p)
    cp, xds_port, status_port = start_cp(P, d, res_dir, f"{tag}-cp")
    pxs = []
    out = {"proxies": n_proxies, "clusters": n_clusters, "routes": n_clusters,
           "endpoints_per_cluster": 10, "api_type": api_type}
    try:
        t0 = time.monotonic()
        for i in range(n_proxies):
            pxs.append(start_proxy(P, d, xds_port, f"{tag}-{i}", api_type, log_level="error"))
        up = _poll_all(ports, "/probe0/", 200, time.monotonic() + timeout * 3)
        if len(up) < n_proxies:
            dead_px = [p.bench_name for p in pxs if p.poll() is not None]
            raise RuntimeError(f"only {len(up)} of {n_proxies} proxies served "
                               f"(exited: {dead_px[:5]})")
        out["start_all_ms"] = round((max(up.values()) - t0) * 1000)
        runs = []
        for k in range(changes):
            s.eds_live = not s.eds_live
            want = 200 if s.eds_live else 503
            time.sleep(0.3)
            t1 = _since_rename(s.write_endpoints)
            got = _poll_all(ports, "/probe_eds/", want, time.monotonic() + timeout)
            if len(got) < n_proxies:
                raise RuntimeError(f"change {k}: {len(got)} of {n_proxies} proxies followed")
            lat = sorted((t - t1) * 1000 for t in got.values())
            runs.append({"all_ms": round(lat[-1], 1), "p50_ms": round(lat[len(lat) // 2], 1),
                         "first_ms": round(lat[0], 1)})
            log(f"  xds fan-out {tag} change {k + 1}: {runs[-1]}")
        out["runs"] = runs
        out["median_all_ms"] = statistics.median(r["all_ms"] for r in runs)
        out["median_p50_ms"] = statistics.median(r["p50_ms"] for r in runs)
        out["cp_cpu_s"] = round(procs.cpu_seconds(cp.pid), 2)
    finally:
        _stop_many(P, pxs)
        P.stop(cp)
    return out


# ---- the tools/bench part -----------------------------------------------------------------------

def _initial_sample(r):
    """The initial apply of one proxy: N clusters (CDS + EDS), N routes, and their memory."""
    ca = r["steps"]["clusters"]["apply_ms"]
    c = (ca["cds"] or 0) + (ca["eds"] or 0)
    rt = r["steps"]["routes"]["apply_ms"]["rds"] or 0
    return {"clusters_apply_ms": c, "routes_apply_ms": rt, "apply_ms": c + rt,
            "bytes_per_cluster": r["memory"]["bytes_per_cluster"],
            "bytes_per_route": r["memory"]["bytes_per_route"]}


def run(P, d, pillion, up_port, sizes, fanout, fanout_clusters, reps, log=print):
    """The xDS scale part of tools/bench: apply for each size, then the fan-out. The initial
    apply is one sample per proxy: it is measured on `reps` proxies, each from empty, and
    reported as their median (the single changes are medians of `reps` on the first one)."""
    out = {"apply": [], "fanout": None}
    for n in sizes:
        try:
            r = run_apply(P, d, pillion, up_port, n, reps=reps, log=log)
            samples = [_initial_sample(r)]
            for _ in range(reps - 1):
                samples.append(_initial_sample(run_apply(P, d, pillion, up_port, n, reps=reps,
                                                         log=log, initial_only=True)))
            r["initial"] = {k: statistics.median(x[k] for x in samples) for k in samples[0]}
            r["initial"]["runs"] = samples
            out["apply"].append(r)
        except Exception as e:  # recorded, the run goes on
            out["apply"].append({"clusters": n, "error": str(e)[:400]})
    if fanout:
        try:
            out["fanout"] = run_fanout(P, d, pillion, up_port, fanout, fanout_clusters,
                                       changes=max(reps, 1), log=log)
        except Exception as e:
            out["fanout"] = {"proxies": fanout, "error": str(e)[:400]}
    return out


def _ms(v):
    return "–" if v is None else f"{v:,.1f}" if v < 10 else f"{v:,.0f}"


def markdown_lines(x):
    """The report's xDS scale section."""
    if not x:
        return []
    lines = ["### xDS scale (Pillion fed by pillion-cp: N EDS clusters with 10 endpoints each and "
             "N routes; one proxy, `--concurrency 1`)", "",
             "Wall = file replaced until the proxy serves the change (includes pillion-cp's "
             "reload: it re-reads every file, and its 50 ms debounce); proxy CPU = the proxy's "
             "utime+stime meanwhile; apply = the proxy's own time to check, compile and publish "
             "(`/server_info` last_apply_ms).", "",
             "| N | N clusters: wall / proxy CPU / apply (ms) | N routes: wall / proxy CPU / "
             "apply (ms) | bytes per cluster | bytes per route | one EDS change: wall / apply "
             "(ms) | one CDS change | one route change |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in x.get("apply", []):
        if "error" in r:
            lines.append(f"| {r['clusters']:,} | error: {r['error'][:120]} | | | | | | |")
            continue
        st, ch = r["steps"], r["changes"]
        m = r.get("initial") or _initial_sample(r)
        lines.append(
            f"| {r['clusters']:,} | {_ms(st['clusters']['wall_ms'])} / "
            f"{_ms(st['clusters']['proxy_cpu_ms'])} / {_ms(m['clusters_apply_ms'])}"
            f" | {_ms(st['routes']['wall_ms'])} / {_ms(st['routes']['proxy_cpu_ms'])} / "
            f"{_ms(m['routes_apply_ms'])} | {m['bytes_per_cluster']:,.0f} | "
            f"{m['bytes_per_route']:,.0f} | " + " | ".join(
                f"{_ms(ch[t].get('wall_ms'))} / {_ms(ch[t].get('apply_ms'))}"
                for t in ("eds", "cds", "rds")) + " |")
    runs = [r for r in x.get("apply", []) if len(r.get("initial", {}).get("runs", [])) > 1]
    if runs:
        lines += ["", "Applies and bytes are medians over proxies, each fed from empty; wall and "
                  "CPU are the first proxy's. Initial apply of N clusters and N routes per proxy "
                  "(clusters + routes, ms):"]
        for r in runs:
            v = sorted(s["apply_ms"] for s in r["initial"]["runs"])
            lines.append(f"- N = {r['clusters']:,}: median **{_ms(r['initial']['apply_ms'])}**"
                         f" over {len(v)} proxies ({', '.join(_ms(a) for a in v)})")
    f = x.get("fanout")
    if f:
        lines.append("")
        if "error" in f:
            lines.append(f"Fan-out to {f['proxies']} proxies: error: {f['error'][:200]}")
        else:
            lines.append(
                f"Fan-out: {f['proxies']} proxies (`--concurrency 1` each, {f['clusters']} "
                f"clusters and routes each) on one pillion-cp; one endpoint change written, until "
                f"every proxy answers through it: **{_ms(f['median_all_ms'])} ms** (median of "
                f"{len(f['runs'])}; half of them by {_ms(f['median_p50_ms'])} ms). All {f['proxies']}"
                f" started and served in {f['start_all_ms']:,} ms.")
    return lines + [""]


def plot(x, outdir, gnuplot):
    """xds-memory-clusters.png: RSS growth versus the number of clusters; returns its path."""
    rows = [r for r in (x or {}).get("apply", []) if "memory" in r]
    if not rows:
        return None
    with open(os.path.join(outdir, "xds-memory.dat"), "w") as f:
        for r in rows:
            m = r["memory"]
            f.write(f"{r['clusters']} {(m['rss_clusters_kb'] - m['rss_empty_kb']) / 1024:.2f} "
                    f"{(m['rss_routes_kb'] - m['rss_empty_kb']) / 1024:.2f}\n")
    gnuplot("""set terminal pngcairo size 900,480 font "sans,10"
set output 'xds-memory-clusters.png'
set title 'Pillion over xDS: memory versus number of clusters (10 endpoints each)'
set logscale x
set grid
set xlabel 'clusters'
set ylabel 'RSS growth (MB)'
set key outside right top
plot 'xds-memory.dat' using 1:2 with linespoints lw 2 title 'N clusters', \\
     'xds-memory.dat' using 1:3 with linespoints lw 2 title 'N clusters + N routes'
""", outdir)
    return os.path.join(outdir, "xds-memory-clusters.png")
