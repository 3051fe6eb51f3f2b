"""tools/bench --quick (the CI smoke mode of the benchmark harness): it runs, writes well-formed
JSON, a Markdown report and PNG plots, and every proxy produced numbers for every part."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import PILLION, ROOT

BENCH = os.path.join(ROOT, "tools", "bench")
PROXIES = ["pillion", "nginx", "haproxy", "nghttpx"]
TOOLS = ["nginx", "haproxy", "nghttpx", "h2load", "nghttpd", "wrk", "gnuplot", "openssl"]


def _missing():
    return [t for t in TOOLS if not (shutil.which(t) or os.access(f"/usr/sbin/{t}", os.X_OK))]


@pytest.fixture(scope="module")
def bench_tools():
    if _missing():
        # The packages are Debian's; tools/setup installs the missing ones (apt-get).
        r = subprocess.run([os.path.join(ROOT, "tools", "setup"), "--bench", "--no-build"],
                           capture_output=True, text=True, timeout=600)
        still = _missing()
        if still:
            pytest.skip(f"bench tools missing and `tools/setup --bench --no-build` could not "
                        f"install them ({', '.join(still)}): {r.stderr[-300:]}")


def test_bench_quick(bench_tools, tmp_path):
    out = tmp_path / "bench"
    r = subprocess.run([BENCH, "--quick", "--out", str(out), "--pillion", PILLION],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())

    m = res["meta"]
    assert m["quick"] is True
    for k in ("cpu", "cores", "kernel"):
        assert m["machine"][k]
    for p in PROXIES:
        assert m["versions"][p], p
    # Under 60 s on an idle machine; the bound here only catches a runaway.
    assert m["elapsed_s"] < 120, m["elapsed_s"]

    tests = res["tests"]
    for key in ("h1", "h2c", "tls_h1", "grpc"):
        assert tests[key]["kind"] == "load"
        for name in ["direct"] + PROXIES:
            s = tests[key]["targets"][name]
            assert s["n"] == 1, f"{key}/{name}: {s.get('failures')}"
            assert s["rps"]["median"] > 0, (key, name)
            assert s["errors"]["max"] == 0, (key, name, s["runs"])
            if name != "direct":
                assert s["cpu_us_per_req"]["median"] > 0, (key, name)
                assert s["load_pss_kb"]["median"] > 0, (key, name)
    # mTLS load (through the client-certificate origin) and TLS/mTLS handshakes: proxies only
    for key, kind in (("mtls_h2", "load"), ("tls_hs", "handshake"), ("mtls_hs", "handshake")):
        assert tests[key]["kind"] == kind
        assert tests[key]["targets"]["direct"]["n"] == 0
        for name in PROXIES:
            s = tests[key]["targets"][name]
            assert s["n"] == 1, f"{key}/{name}: {s.get('failures')}"
            assert s["rps"]["median"] > 0 and s["cpu_us_per_req"]["median"] > 0, (key, name)
            assert s["errors"]["max"] == 0, (key, name, s["runs"])
    assert "mtls" not in res["not_measured"]
    lat = [k for k in tests if tests[k]["kind"] == "latency"]
    assert lat, "no latency measurement"
    for key in lat:
        for name in ["direct"] + PROXIES:
            s = tests[key]["targets"][name]
            assert s["n"] == 1, f"{key}/{name}: {s.get('failures')}"
            p50, p99, p999 = (s[p]["median"] for p in ("p50_us", "p99_us", "p999_us"))
            assert 0 < p50 <= p99 <= p999, (key, name)
            if name != "direct":
                assert set(s["added_us"]) == {"p50_us", "p99_us", "p999_us"}

    for name in PROXIES:
        assert res["idle"][name]["pss_kb"] > 0
        ic = res["idle_conns"][name]
        assert "error" not in ic, (name, ic)
        assert ic["still_open"] == ic["conns"], (name, ic)
        rows = res["scale"][name]
        assert len(rows) >= 2, name
        for row in rows:
            assert "error" not in row, (name, row)
            assert row["apply_ms"] > 0 and row["pss_kb"] > 0
    # xDS (Pillion fed by pillion-cp): measured when both are built, else the reason is given.
    if "xds" in res:
        x = res["xds"]
        assert "error" not in x, x
        assert x["initial_ms"] > 0 and x["update_ms"]["median"] > 0
        sw = x["swap"]
        assert sw["requests"] > 0 and sw["errors"] == 0, sw
        assert sw["updates_applied"].get("http.bench.rds.bench_route.update_success", 0) > 0, sw
    else:
        assert res["not_measured"]["xds"]
    # xDS scale (Pillion and pillion-cp): apply steps, memory per cluster/route, fan-out.
    if "xds_scale" in res:
        xs = res["xds_scale"]
        for row in xs["apply"]:
            assert "error" not in row, row
            assert row["steps"]["clusters"]["wall_ms"] > 0 and row["memory"]["bytes_per_cluster"] > 0
            assert row["initial"]["apply_ms"] > 0 and len(row["initial"]["runs"]) >= 1, row
            for t in ("eds", "cds", "rds"):
                assert row["changes"][t]["wall_ms"] > 0, (t, row["changes"])
        f = xs["fanout"]
        assert "error" not in f, f
        assert f["median_all_ms"] > 0 and len(f["runs"]) >= 1
        assert (out / "xds-memory-clusters.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "xDS scale" in (out / "report.md").read_text()
    else:
        assert res["not_measured"]["xds_scale"]
    # Parts that cannot be measured yet say why.
    for k, why in res["not_measured"].items():
        assert len(why) > 20, k

    md = (out / "report.md").read_text()
    for title in ("Throughput", "CPU time per request", "Latency at fixed", "Memory",
                  "Config scale"):
        assert title in md
    for png in ("rps.png", "cpu.png", "memory-clusters.png", f"latency-h1-{1000}.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
