"""Load clients for tools/bench: wrk and h2load, run bounded in time, output parsed to numbers."""
import os
import re
import subprocess
import threading
import time

from . import procs


class Sampler(threading.Thread):
    """Samples the memory of a process tree every 200 ms while a load runs; keeps the peak."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak_pss, self.peak_rss = pid, 0, 0
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(0.2):
            pss, rss = procs.mem_kb(self.pid)
            self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)

    def stop(self):
        self.done.set()
        self.join(2)


def _run(cmd, timeout):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout + r.stderr


def wrk(url, conns, duration):
    """HTTP/1.1 keep-alive load, one client thread; returns {rps, requests, errors}."""
    duration = max(1, round(duration))  # wrk takes whole seconds only
    rc, out = _run(["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--timeout", "5s", url],
                   duration + 20)
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    rps = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if rc != 0 or not m or not rps:
        raise RuntimeError(f"wrk failed (rc {rc}): {out[-800:]}")
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    return {"rps": float(rps.group(1)), "requests": int(m.group(1)), "errors": errors}


def h2load(url, conns, streams, duration, h1=False, extra=()):
    """h2load for a fixed duration, one client thread; returns {rps, requests, errors}."""
    cmd = ["h2load", "-t1", f"-c{conns}", f"-m{streams}", f"-D{int(duration * 1000)}ms", *extra]
    if h1:
        cmd.append("--h1")
    rc, out = _run(cmd + [url], duration + 20)
    fin = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
    req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                    r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if rc != 0 or not fin or not req:
        raise RuntimeError(f"h2load failed (rc {rc}): {out[-800:]}")
    done = int(req.group(3))
    if done == 0:
        raise RuntimeError(f"h2load: no request completed: {out[-800:]}")
    errors = int(req.group(5)) + int(req.group(6)) + int(req.group(7))
    if codes:
        errors += sum(int(x) for x in codes.groups()[1:])
    return {"rps": float(fin.group(3)), "requests": done, "errors": errors}


def handshakes(port, duration, ca, cert=None, key=None):
    """Full TLS handshakes, one after another for `duration` seconds (openssl s_time -new: a
    new connection and session each time, TLS 1.3, closed after the handshake); with cert/key
    the client presents that certificate. Returns {rps (handshakes/s), requests, errors}."""
    secs = max(1, round(duration))
    cmd = ["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new", "-time", str(secs),
           "-CAfile", ca, "-verify", "2"]
    if cert:
        cmd += ["-cert", cert, "-key", key]
    rc, out = _run(cmd, secs + 20)
    m = re.search(r"(\d+) connections in (\d+) real seconds", out)
    if rc != 0 or not m or int(m.group(1)) == 0:
        raise RuntimeError(f"openssl s_time failed (rc {rc}): {out[-800:]}")
    n = int(m.group(1))
    return {"rps": round(n / max(1, int(m.group(2))), 1), "requests": n, "errors": 0}


def percentile(sorted_vals, q):
    """Nearest-rank percentile of an already sorted list (q in 0..100)."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(round(q / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def h2load_fixed_rate(url, rate, conns, duration, log_path, h1=False, warmup=0.5):
    """Sends `rate` requests/s in total (h2load --rps is per connection) for `duration` seconds
    and reads h2load's per-request log; latencies of the first `warmup` seconds are dropped.
    Returns {p50_us, p99_us, p999_us, requests, achieved_rps, errors}."""
    if os.path.exists(log_path):
        os.unlink(log_path)
    per_conn = max(1, rate // conns)
    cmd = ["h2load", "-t1", f"-c{conns}", "-m1", f"--rps={per_conn}", f"-D{int(duration * 1000)}ms",
           f"--log-file={log_path}"]
    if h1:
        cmd.append("--h1")
    rc, out = _run(cmd + [url], duration + 20)
    if rc != 0 or not os.path.exists(log_path):
        raise RuntimeError(f"h2load --rps failed (rc {rc}): {out[-800:]}")
    rows = []
    with open(log_path) as f:
        for line in f:
            parts = line.split("\t")
            if len(parts) >= 3:
                rows.append((int(parts[0]), int(parts[1]), int(parts[2])))
    if not rows:
        raise RuntimeError(f"h2load --rps logged no request: {out[-800:]}")
    t0 = min(r[0] for r in rows)
    kept = [r for r in rows if r[0] - t0 >= warmup * 1e6]
    lat = sorted(r[2] for r in kept if 200 <= r[1] < 300)
    errors = sum(1 for r in kept if not 200 <= r[1] < 300)
    span = (max(r[0] for r in kept) - min(r[0] for r in kept)) / 1e6 if len(kept) > 1 else 0
    return {"p50_us": percentile(lat, 50), "p99_us": percentile(lat, 99),
            "p999_us": percentile(lat, 99.9), "requests": len(lat), "errors": errors,
            "achieved_rps": round(len(kept) / span, 1) if span > 0 else None}


def measured(pid, fn):
    """Runs fn() while watching process tree pid: adds cpu_s, cpu_us_per_req and peak memory."""
    sampler = Sampler(pid) if pid else None
    cpu0 = procs.cpu_seconds(pid) if pid else 0
    if sampler:
        sampler.start()
    t0 = time.monotonic()
    try:
        res = fn()
    finally:
        if sampler:
            sampler.stop()
    res["wall_s"] = round(time.monotonic() - t0, 3)
    if pid:
        cpu = procs.cpu_seconds(pid) - cpu0
        res["cpu_s"] = round(cpu, 3)
        res["cpu_us_per_req"] = round(cpu * 1e6 / res["requests"], 2) if res["requests"] else None
        res["load_pss_kb"], res["load_rss_kb"] = sampler.peak_pss, sampler.peak_rss
    return res
