"""tools/bench output: the Markdown report, gnuplot PNGs and docs/BENCHMARKS.md."""
import os
import shutil
import subprocess

from . import xds_scale

LOAD_TESTS = [("h1", "HTTP/1.1"), ("h2c", "h2c"), ("tls_h1", "TLS HTTP/1.1"),
              ("tls_h2", "TLS HTTP/2"), ("grpc", "gRPC unary (h2c)"), ("mtls_h2", "mTLS HTTP/2")]
HANDSHAKE_TESTS = [("tls_hs", "TLS"), ("mtls_hs", "mTLS (client certificate verified)")]


def _med(s, k):
    v = s.get(k)
    return v["median"] if isinstance(v, dict) else None


def _cell(s, k, fmt="{:,.0f}", scale=1.0):
    if not s or s.get("n", 0) == 0:
        return "error" if s and s.get("failures") else "–"
    v = s.get(k)
    if not isinstance(v, dict):
        return "–"
    text = fmt.format(v["median"] * scale)
    if s["n"] > 1 and v.get("spread_pct") is not None:
        text += f" (±{v['spread_pct'] / 2:.0f}%)"
    return text


def _names(out):
    return out["meta"]["params"]["proxies"]


def markdown(out):
    m = out["meta"]
    names = _names(out)
    tests = out["tests"]
    lines = [f"Run {m['date']}{' (quick smoke mode: one short repetition)' if m['quick'] else ''}"
             f"; {m['params']['reps']} repetition(s) of {m['params']['duration_s']} s each, "
             "median shown, (±x%) = half the max−min spread over the median.", ""]
    lines += machine_lines(m) + [""]
    lines += summary_lines(out)
    load = [(k, label) for k, label in LOAD_TESTS if k in tests]
    if load:
        lines += ["### Throughput (requests/s, one client thread: wrk -c32 for HTTP/1.1, "
                  "h2load -c4 -m8 for HTTP/2)", "",
                  "| | " + " | ".join(label for _, label in load) + " |",
                  "|---|" + "---:|" * len(load)]
        for n in ["direct"] + names:
            lines.append(f"| {n} | " + " | ".join(
                _cell(tests[k]["targets"].get(n), "rps") for k, _ in load) + " |")
        lines += ["", "### Proxy CPU time per request (µs, utime+stime of all the proxy's "
                  "processes / completed requests)", "",
                  "| | " + " | ".join(label for _, label in load) + " |",
                  "|---|" + "---:|" * len(load)]
        for n in names:
            lines.append(f"| {n} | " + " | ".join(
                _cell(tests[k]["targets"].get(n), "cpu_us_per_req", "{:.1f}") for k, _ in load)
                + " |")
        lines.append("")
    hs = [(k, label) for k, label in HANDSHAKE_TESTS if k in tests]
    if hs:
        lines += ["### TLS handshakes (openssl s_time -new: full TLS 1.3 handshakes one after "
                  "another, P-256 certificates)", "",
                  "| | " + " | ".join(f"{lb}: handshakes/s | {lb}: CPU µs per handshake"
                                      for _, lb in hs) + " |",
                  "|---|" + "---:|---:|" * len(hs)]
        for n in names:
            lines.append(f"| {n} | " + " | ".join(
                _cell(tests[k]["targets"].get(n), "rps") + " | " +
                _cell(tests[k]["targets"].get(n), "cpu_us_per_req", "{:.0f}") for k, _ in hs)
                + " |")
        lines.append("")
    lat = [k for k in tests if tests[k]["kind"] == "latency"]
    if lat:
        lines += ["### Latency at fixed request rates (ms; h2load --rps, 10 connections, "
                  "per-request log; added = over the direct run)", "",
                  "| rate | | p50 | p99 | p99.9 | added p50 | added p99 | added p99.9 | "
                  "achieved req/s |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for k in lat:
            proto, rate = k[len("latency_"):].split("@")
            label = "HTTP/1.1" if proto == "h1" else "h2c"
            for n in ["direct"] + names:
                s = tests[k]["targets"].get(n, {})
                add = s.get("added_us", {})
                cells = [_cell(s, p, "{:.2f}", 1e-3) for p in ("p50_us", "p99_us", "p999_us")]
                cells += [f"{add[p] / 1000:+.2f}" if p in add else "" for p in
                          ("p50_us", "p99_us", "p999_us")]
                cells.append(_cell(s, "achieved_rps"))
                lines.append(f"| {label} {rate}/s | {n} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["### Memory (kB; PSS summed over the proxy's processes, RSS in brackets)", "",
              "| | idle | per 1,000 idle connections | under load (peak, HTTP/1.1) |",
              "|---|---:|---:|---:|"]
    for n in names:
        idle = out["idle"].get(n)
        ic = out["idle_conns"].get(n, {})
        h1 = tests.get("h1", {}).get("targets", {}).get(n, {})
        lines.append(
            f"| {n} | " + (f"{idle['pss_kb']:,} ({idle['rss_kb']:,})" if idle else "–") + " | " +
            (f"{ic['pss_per_1000_kb']:,.0f} ({ic['rss_per_1000_kb']:,.0f})" if "conns" in ic
             else ic.get("error", "–")[:80]) + " | " +
            (f"{_med(h1, 'load_pss_kb'):,.0f} ({_med(h1, 'load_rss_kb'):,.0f})"
             if _med(h1, "load_pss_kb") else "–") + " |")
    lines.append("")
    if out.get("scale"):
        lines += ["### Config scale (N clusters and N routes in the startup config; apply = "
                  "start until the last route answers 200)", "",
                  "| | clusters | apply (ms) | PSS (kB) | RSS (kB) |", "|---|---:|---:|---:|---:|"]
        for n in names:
            for row in out["scale"].get(n, []):
                if "error" in row:
                    lines.append(f"| {n} | {row['clusters']:,} | error: {row['error'][:80]} | | |")
                else:
                    lines.append(f"| {n} | {row['clusters']:,} | {row['apply_ms']:,.0f} | "
                                 f"{row['pss_kb']:,} | {row['rss_kb']:,} |")
        lines.append("")
    x = out.get("xds")
    if x:
        lines += ["### xDS (Pillion only, fed by pillion-cp over ADS; the other proxies here do "
                  "not speak xDS)", ""]
        if "error" in x:
            lines += [f"error: {x['error']}", ""]
        else:
            u, sw = x["update_ms"], x["swap"]
            applied = sw.get("updates_applied", {})
            rds = sum(v for k, v in applied.items() if k.startswith("http.") and
                      k.endswith("update_success"))
            cds = sum(v for k, v in applied.items() if k.startswith("cluster_manager") and
                      k.endswith("update_success"))
            rej = sum(v for k, v in applied.items() if k.endswith("update_rejected"))
            lines += [
                "| measurement | result |", "|---|---:|",
                f"| initial: exec until the listener from LDS/RDS/CDS/EDS answers 200 | "
                f"{x['initial_ms']:,.0f} ms |",
                f"| update: routes file replaced until the new route answers (median of "
                f"{len(u['runs'])}, includes pillion-cp's 50 ms reload debounce) | "
                f"{u['median']:,.0f} ms (min {u['min']:,.0f}, max {u['max']:,.0f}) |",
                f"| swap under load: wrk -c32 for {sw['seconds']} s while the route of `/` flips "
                f"cluster every 100 ms ({sw['file_swaps']} file writes; applied: {rds} RDS, "
                f"{cds} CDS updates, {rej} rejected) | {sw['errors']} errors in "
                f"{sw['requests']:,} requests |", ""]
    lines += xds_scale.markdown_lines(out.get("xds_scale"))
    errs = []
    for k, t in tests.items():
        for n, s in t["targets"].items():
            for e in s.get("failures", []):
                errs.append(f"- {k} / {n}: {e[:300]}")
            v = s.get("errors")
            if isinstance(v, dict) and v["max"]:
                errs.append(f"- {k} / {n}: up to {v['max']} failed requests in a run")
    if errs:
        lines += ["### Errors", ""] + errs + [""]
    if out.get("not_measured"):
        lines += ["### Not measured yet", ""]
        lines += [f"- {k}: {v}" for k, v in out["not_measured"].items()] + [""]
    return "\n".join(lines) + "\n"


def summary_lines(out):
    """Pillion against the best of the others, computed from this run's medians."""
    names = [n for n in _names(out) if n != "pillion"]
    if "pillion" not in _names(out) or not names:
        return []
    tests, items = out["tests"], []
    for k, label in LOAD_TESTS + [(k, lb + " handshake") for k, lb in HANDSHAKE_TESTS]:
        if k not in tests:
            continue
        t = tests[k]["targets"]
        mine = _med(t.get("pillion", {}), "cpu_us_per_req")
        others = [(_med(t.get(n, {}), "cpu_us_per_req"), n) for n in names]
        others = [o for o in others if o[0]]
        if mine and others:
            best = min(others)
            items.append(f"{label} {mine:.1f} µs vs {best[0]:.1f} µs ({best[1]}, "
                         f"{mine / best[0]:.2f}×)")
    lines = []
    if items:
        lines.append("Summary: proxy CPU per request, Pillion vs the lowest of the others: " +
                     "; ".join(items) + ".")
    ic = out.get("idle_conns", {})
    if "pss_per_1000_kb" in ic.get("pillion", {}):
        o = [ic[n]["pss_per_1000_kb"] for n in names if "pss_per_1000_kb" in ic.get(n, {})]
        if o:
            lines.append(f"Memory per 1,000 idle connections: Pillion "
                         f"{ic['pillion']['pss_per_1000_kb']:,.0f} kB, the others "
                         f"{min(o):,.0f}–{max(o):,.0f} kB.")
    sc = out.get("scale", {})
    big = [r for r in sc.get("pillion", []) if "apply_ms" in r]
    if big:
        n = big[-1]["clusters"]
        o = [(r["apply_ms"], r["pss_kb"], nm) for nm in names for r in sc.get(nm, [])
             if r.get("clusters") == n and "apply_ms" in r]
        if o:
            lines.append(f"With {n:,} clusters and routes: Pillion applies the config in "
                         f"{big[-1]['apply_ms'] / 1000:.2f} s with {big[-1]['pss_kb'] / 1024:.0f} "
                         f"MB; the others {min(x[0] for x in o) / 1000:.2f}–"
                         f"{max(x[0] for x in o) / 1000:.2f} s and "
                         f"{min(x[1] for x in o) / 1024:.0f}–{max(x[1] for x in o) / 1024:.0f} MB.")
    return [" ".join(lines), ""] if lines else []


def machine_lines(m):
    mc, v = m["machine"], m["versions"]
    lb, la = m.get("loadavg_before"), m.get("loadavg_after")
    lines = [f"Machine: {mc['cpu']}, {mc['cores']} cores, {mc['mem_mb']:,} MB, "
             f"{mc.get('os') or ''} kernel {mc['kernel']}"
             f"{', virtualization: ' + mc['virtualization'] if mc.get('virtualization') else ''}."
             f" Load average before the run {lb[0]}, after {la[0] if la else '?'}.", "",
             "Versions: " + "; ".join(f"{k}: {val}" for k, val in v.items() if val) +
             f" (Pillion build type: {m.get('pillion_buildtype') or 'unknown'}).", ""]
    cores = mc["cores"] or 1
    if lb and (lb[0] > 0.5 * cores or (la and la[0] > cores)):
        lines += [f"**The machine was loaded during this run** (load average {lb[0]} before, "
                  f"{la[0] if la else '?'} after, on {cores} cores): other work competed for the "
                  "CPU, so absolute numbers are low and noisy; compare proxies only within this "
                  "run.", ""]
    if m.get("note"):
        lines += [f"Note: {m['note']}", ""]
    return lines


def _gnuplot(script, cwd):
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True, cwd=cwd,
                       timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"gnuplot: {r.stderr[-500:]}")


HIST = """set terminal pngcairo size 900,480 font "sans,10"
set output '{png}'
set title '{title}'
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set ylabel '{ylabel}'
{yscale}
set key outside right top
set xtics nomirror
plot for [i=2:{cols}] '{dat}' using i:xtic(1) title columnheader(i)
"""


def _hist(outdir, name, title, ylabel, header, rows, yscale="set yrange [0:*]"):
    if not any(x is not None for r in rows for x in r[1:]):
        return None
    dat = f"{name}.dat"
    with open(os.path.join(outdir, dat), "w") as f:
        f.write(" ".join(f'"{h}"' for h in header) + "\n")
        for r in rows:
            f.write(" ".join(f'"{x}"' if isinstance(x, str) else
                             ("NaN" if x is None else f"{x:.3f}") for x in r) + "\n")
    _gnuplot(HIST.format(png=f"{name}.png", title=title, ylabel=ylabel, dat=dat,
                         cols=len(header), yscale=yscale), outdir)
    return os.path.join(outdir, f"{name}.png")


def plots(out, outdir):
    """latency-<proto>-<rate>.png, cpu.png, rps.png, memory-clusters.png; returns paths."""
    made = []
    names = _names(out)
    tests = out["tests"]
    for k, t in tests.items():
        if t["kind"] != "latency":
            continue
        proto, rate = k[len("latency_"):].split("@")
        rows = [[n] + [_med(t["targets"].get(n, {}), p) and _med(t["targets"][n], p) / 1000
                       for p in ("p50_us", "p99_us", "p999_us")] for n in ["direct"] + names]
        made.append(_hist(outdir, f"latency-{proto}-{rate}",
                          f"Latency at {rate} req/s, {'HTTP/1.1' if proto == 'h1' else 'h2c'}",
                          "ms (log scale)", ["target", "p50", "p99", "p99.9"], rows,
                          "set logscale y\nset yrange [0.05:*]"))
    load = [(k, label) for k, label in LOAD_TESTS if k in tests]
    if load:
        rows = [[n] + [_med(tests[k]["targets"].get(n, {}), "cpu_us_per_req") for k, _ in load]
                for n in names]
        made.append(_hist(outdir, "cpu", "Proxy CPU time per request", "µs per request",
                          ["proxy"] + [lb for _, lb in load], rows))
        rows = [[n] + [_med(tests[k]["targets"].get(n, {}), "rps") for k, _ in load]
                for n in ["direct"] + names]
        made.append(_hist(outdir, "rps", "Requests per second (one worker each)", "req/s",
                          ["target"] + [lb for _, lb in load], rows))
    sc = out.get("scale") or {}
    series = [(n, [r for r in sc.get(n, []) if "pss_kb" in r]) for n in names]
    series = [(n, rs) for n, rs in series if rs]
    if series:
        plots_cmd = []
        for n, rs in series:
            with open(os.path.join(outdir, f"scale-{n}.dat"), "w") as f:
                for r in rs:
                    f.write(f"{r['clusters']} {r['pss_kb'] / 1024:.2f} {r['apply_ms']:.1f}\n")
            plots_cmd.append(f"'scale-{n}.dat' using 1:2 with linespoints lw 2 title '{n}'")
        _gnuplot(f"""set terminal pngcairo size 900,480 font "sans,10"
set output 'memory-clusters.png'
set title 'Memory versus number of clusters (and routes)'
set logscale x
set grid
set xlabel 'clusters (one route each)'
set ylabel 'PSS (MB)'
set key outside right top
plot {", ".join(plots_cmd)}
""", outdir)
        made.append(os.path.join(outdir, "memory-clusters.png"))
    made.append(xds_scale.plot(out.get("xds_scale"), outdir, _gnuplot))
    return [p for p in made if p]


DOC_HEAD = """# Benchmarks

Pillion next to the proxies people would otherwise put beside their app — nginx, HAProxy and
nghttpx — measured in one run on one machine by `tools/bench`. The tables and plots below are
written by `tools/bench --docs` from its latest full run; rerun it to check them.

## How to run

```sh
tools/setup --bench --no-build      # Debian packages: nginx haproxy nghttp2-proxy wrk gnuplot-nox ...
meson setup build-bench --buildtype=release -Dtests=false && ninja -C build-bench
tools/bench                         # full run (~15 min) into build-bench/bench-out/:
                                    #   results.json, report.md, *.png
tools/bench --quick                 # smoke mode (< 60 s), what CI runs
tools/bench --docs --note "..."     # full run, then refresh this page and docs/bench/*.png
tools/bench --report-only build-bench/bench-out/results.json [--docs]   # re-render only
```

`tools/bench --help` lists the knobs (repetitions, duration, rates, idle connections, cluster
counts, parts to skip). It installs nothing: a missing tool is named with its Debian package.

## Method

- **Same conditions for every proxy.** One upstream for all: one nginx worker answering a fixed
  64-byte body from memory over HTTP/1.1 (and h2c/TLS for the direct runs); for gRPC, nghttpd
  (one thread) answering `POST /bench.Svc/Unary` with a 15-byte gRPC message and the trailer
  `grpc-status: 0`. Every proxy runs one worker thread (`--concurrency 1`, `worker_processes 1`,
  `nbthread 1`, `workers=1`), keeps connections to the upstream alive, writes no access log, and
  is otherwise left at its defaults (Pillion adds Envoy's default headers such as
  `x-request-id`, `x-forwarded-proto` and `x-envoy-upstream-service-time`, nghttpx adds `via`;
  nghttpx opens at most 8 HTTP/1.1 connections to a backend by default, nginx one HTTP/2
  connection per in-flight gRPC call; HAProxy and Pillion open as many HTTP/1.1 connections as
  needed and multiplex HTTP/2).
  Their configs are committed in `tools/benchlib/conf/`, the config-scale ones are generated by
  `tools/benchlib/scale.py`.
- **Same clients, same mix, alternating order.** HTTP/1.1: `wrk -t1 -c32`; HTTP/2 (h2c, TLS,
  gRPC): `h2load -t1 -c4 -m8`; latency: `h2load -t1 -c10 -m1 --rps=<rate/10>` with
  `--log-file` (per-request times; the first 0.5 s are dropped as warm-up). Each repetition
  rotates the order of the targets (and reverses it every other time); tables show the median
  over the repetitions and the spread.
- **Baseline.** The same clients straight to the upstream (`direct`): the latency a proxy adds is
  its percentile minus the direct one at the same rate.
- **CPU per request** is utime+stime from `/proc/<pid>/stat` of all the proxy's processes (nginx
  and nghttpx run a master and a worker), read before and after a run, divided by the requests
  the client completed.
- **Instructions per request** (`tools/profile`, not part of `tools/bench`): one proxy from the
  same committed config, one worker in one process (nginx with `master_process off`, nghttpx
  `--single-process`), under `valgrind --tool=callgrind`; after a warm-up, `h2load -c1 -m<M>`
  sends N and then 2N requests of one mix (`h1`, `h2c-h1`, `h2c-h2`: h2c GET to the gRPC
  route's HTTP/2 upstream, `grpc`: unary gRPC), with `callgrind_control -d` after each; the 2N
  dump minus the N dump, over N, is the proxy's user-space instructions (Ir) per request without
  start-up, connection set-up or idle-loop costs. It prints the top functions of that
  difference. Deterministic, so it is what the hot-path work is measured with:
  `tools/profile --build build-bench --mix h2c-h2,grpc -m 10`, `tools/profile --proxy nghttpx`.
- **Memory** is PSS summed over the proxy's processes (`/proc/<pid>/smaps_rollup`; PSS does not
  count a master's and a worker's shared pages twice), RSS in brackets. Idle: after start and
  one request. Per 1,000 idle connections: on a freshly started proxy, the growth after opening
  1,000 keep-alive connections and sending one request on each, one at a time (so the upstream
  pool stays small), measured 1 s later with all of them still open. Under load: the peak
  sampled every 200 ms during the HTTP/1.1 throughput runs.
- **Syscalls per request and idle HTTP/2 connections** (not part of `tools/bench`; one-off
  checks with the same configs): `strace -c -f -p <the proxy's pids>` attached around a bounded
  `h2load -n 20000` run (HTTP/1.1 `-c32 -m1`, h2c `-c4 -m8`), calls over requests. On
  2026-11-23: Pillion 4.08 (HTTP/1.1: one readv and one sendmsg on each side), 2.36 (h2c to the
  HTTP/1.1 upstream), 0.40 (gRPC to the HTTP/2 upstream); nginx 5.07 and 5.19 (a getsockopt per
  request); nghttpx 7.09, 2.57 and 1.13 (reads that return EAGAIN, epoll_ctl). Idle h2c
  connections as the HTTP/1.1 ones above, with one h2c GET on each: RSS per 1,000 connections
  Pillion 13.0 MB, nginx 6.3 MB, HAProxy 6.2 MB, nghttpx 25.0 MB.
- **gRPC unary** is gRPC framing without a gRPC library at either end (a real gRPC server would
  be the bottleneck): h2load POSTs a 15-byte length-prefixed message with
  `content-type: application/grpc` and `te: trailers`; nghttpd answers with a message and the
  `grpc-status` trailer. The proxies see exactly the frames a unary call produces.
- **mTLS**: every proxy has a listener that requires a client certificate signed by the bench CA
  (Pillion also checks the client's SPIFFE ID, as a mesh sidecar does; nghttpx can only require
  client certificates process-wide, so its mTLS listener is a second nghttpx process, and that
  process is the one measured). wrk and h2load cannot present a client certificate, so the mTLS
  load goes `h2load -c4 -m8` → a separate nghttpx (one worker, not measured) holding the client
  certificate → HTTP/2 over mTLS → the proxy under test; the handshake rows use
  `openssl s_time -new` (a full handshake per connection, one at a time, with and without the
  client certificate), and CPU per handshake is the proxy's CPU over the handshakes completed.
  s_time resets each connection (SO_LINGER 0) as soon as it has written its last flight, so the
  reset often lands before the proxy has read that flight; a proxy that notices (HAProxy,
  Pillion) then skips verifying the client certificate and building session tickets. These
  rows are the cost of handshakes as such a client makes them, and depend on how often the
  reset wins that race. A completed handshake costs the same in Pillion and HAProxy (callgrind:
  2.8 M instructions for TLS, 11.2 M for mTLS, where OpenSSL 3.0 parses the client certificate,
  verifies it, and parses it again for each of the two session tickets).
- **Config scale**: each proxy started with N clusters and N routes (path prefix `/cI/` to
  cluster `cI`, all at the same upstream; HAProxy uses its idiomatic `map_beg` map); apply time
  is from exec until the last route answers 200; memory once it does.
- **xDS** (Pillion only): Pillion started from an ADS bootstrap against the reference control
  plane `pillion-cp`, which serves LDS/RDS/CDS/EDS from files; propagation is timed from the
  file being replaced to the first 200 on the new route, polling every 2 ms. Swap under load
  runs `wrk -c32` while a thread replaces the routes file every 100 ms (the route of `/` flips
  between two clusters at the same upstream) and changes one cluster (CDS) every fourth time.
- **xDS scale** (Pillion only, `tools/benchlib/xds_scale.py`): one Pillion on a real pillion-cp
  whose files grow in steps: empty, then N EDS clusters with 10 endpoints each (addresses in
  10.0.0.0/8, never contacted), then N routes (one RouteConfiguration), then single changes (one
  assignment, one cluster, one route). Each step is timed from the file's atomic replacement until
  a request through a route or cluster the step added answers (or `/server_info` shows the new
  CDS version), with the proxy's CPU time meanwhile and its own apply time (`/server_info`
  `last_apply_ms`: check, compile and publish); bytes per cluster and per route are the RSS growth
  of those steps divided by N. The initial apply (empty to N clusters, then N routes) is one
  sample per proxy, so it is taken on `--reps` proxies, each from empty, and reported as the
  median (each sample listed); the single changes are medians of `--reps` on the first. Fan-out: P proxies (`--concurrency 1`, a listener each through a
  per-node file) on one pillion-cp; the endpoint of one cluster moves between a closed port and
  the upstream, and the time until every proxy answers accordingly (503 / 200) is taken, all
  proxies polled at once every 10 ms. For comparison, the same harness before compiled objects
  were shared between snapshots (2026-11-23, 10,000 clusters): 7.7 s of proxy CPU to apply the
  clusters and 8.5 s for the routes, 1.9 s of proxy CPU for one EDS change, 31 kB per cluster
  and 9.3 kB per route. Wall times there are mostly pillion-cp's: it re-reads and re-checks
  every file on each change (about 3 s for the 10,000-cluster set, 12 MB of JSON).
- Everything is on loopback, every load is bounded in time, and every process the bench starts
  is stopped when it ends (also on Ctrl-C).

Client, upstream and proxy share the machine's cores, so on a small machine the numbers are
bounded by the client and the upstream as much as by the proxy; CPU per request and added
latency are the fairer comparison there.

## Latest results

"""


def write_docs(out, outdir, plot_paths, root):
    """docs/BENCHMARKS.md from this run, plots copied to docs/bench/."""
    docdir = os.path.join(root, "docs", "bench")
    os.makedirs(docdir, exist_ok=True)
    for p in plot_paths:
        shutil.copy(p, os.path.join(docdir, os.path.basename(p)))
    md = markdown(out).replace("### ", "#### ")
    pics = "\n".join(f"![{os.path.basename(p)[:-4]}](bench/{os.path.basename(p)})"
                     for p in plot_paths)
    with open(os.path.join(root, "docs", "BENCHMARKS.md"), "w") as f:
        f.write(DOC_HEAD + md + "\n### Plots\n\n" + pics + "\n")
