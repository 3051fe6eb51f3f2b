"""Conformance 3: 1,000 route swaps under load.

h2load (h2c, several connections, many streams each, bounded by -D and a kill timeout) runs
through the proxy while pillion-cp pushes 1,000 versions of the listener's RDS route
configuration, alternating its cluster between two real upstreams (conftest echo servers that
answer with x-upstream and a JSON body naming themselves: u0 behind `demo_upstream`, u1 behind
`other`). Each version also tags the responses it routes (response_headers_to_add
x-route-tag: <n>).

Method: the test rewrites routes.yaml (atomic rename; pillion-cp reloads on inotify, with
--watch-debounce-ms 2 instead of 50 so that 1,000 reloads fit in the time) and waits, for every
version, until pillion-cp's /status shows the proxy ACKed it (rds acked_version). The proxy ACKs
after it published the snapshot, so right after each ACK one request on a kept-alive HTTP/1.1
connection must carry x-route-tag: <n> and come from the cluster version n names, and one request
on a kept-alive h2c connection must come from that cluster too: both connections were opened
before the first swap. Waiting for each ACK means no version coalesces: the test asserts that
every one of the 1,000 was ACKed, that the proxy counted 1,001 RDS updates (the initial one and
1,000 swaps: http.ingress_http.rds.local_route.update_success) and that its rds version gauge
ends at 1001. h2load must report 0 failed, 0 errored, 0 timeout, and only 2xx responses."""
import http.client
import json
import os
import threading
import time

import pytest

from conftest import CP, write
from h2c_client import H2cClient
from http_helpers import stat
from xds_helpers import add_other_cluster, assert_h2load_clean, h2load, routes_yaml, start_xds

pytestmark = pytest.mark.skipif(not os.path.exists(CP), reason="pillion-cp not built")

SWAPS = 1000
SWAP_BUDGET_S = 40  # the swaps must be done by then
BURST_S = 4  # h2load runs back to back in bursts of this many seconds until the swaps end
RPS = 500  # per connection: ~2,000 requests/s in all, leaving CPU to the swaps on 2 cores


class Load(threading.Thread):
    """h2load bursts (h2c, 4 connections x 4 streams, RPS requests/s each, BURST_S seconds each)
    until stop(); bounded by the swap budget. .runs holds each burst's counters."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.runs, self.error = port, [], None
        self.done = threading.Event()

    def run(self):
        try:
            for _ in range(SWAP_BUDGET_S // BURST_S + 2):
                self.runs.append(h2load(self.port, BURST_S, rps=RPS))
                if self.done.is_set():
                    return
        except Exception as e:  # reported by the test
            self.error = e

    def stop(self):
        self.done.set()
        self.join(BURST_S + 35)


def test_1000_route_swaps_under_load(tmp_path, cp, pillion, upstream):
    c, px, ups, lport, res = start_xds(tmp_path, cp, pillion, upstream, 2,
                                       cp_args=("--watch-debounce-ms", "2"))
    add_other_cluster(c, res, ups)
    h1 = http.client.HTTPConnection("127.0.0.1", lport, timeout=5)
    h2 = H2cClient(lport)
    load = Load(lport)
    load.start()
    wrong = []
    start = time.monotonic()
    try:
        for n in range(1, SWAPS + 1):
            cluster, name = ("other", "u1") if n % 2 else ("demo_upstream", "u0")
            write(res / "routes.yaml", routes_yaml(cluster=cluster, tag=n))
            want = str(n + 1)  # pillion-cp's RDS versions: "1" for the initial files
            while c.status()["nodes"][0]["types"]["rds"].get("acked_version") != want:
                assert time.monotonic() - start < SWAP_BUDGET_S, \
                    f"{n - 1} swaps done in {SWAP_BUDGET_S} s; version {want} not ACKed yet"
                time.sleep(0.001)
            h1.request("GET", f"/swap/{n}")
            r = h1.getresponse()
            body = r.read()
            got = (r.status, r.getheader("x-route-tag"), json.loads(body)["upstream"])
            if got != (200, str(n), name):
                wrong.append((n, "h1", got))
            got2 = h2.get_json(f"/swap/{n}")["upstream"]
            if got2 != name:
                wrong.append((n, "h2c", got2))
        swap_time = time.monotonic() - start
    finally:
        h1.close()
        h2.close()
        load.stop()
    assert load.error is None, load.error
    assert not wrong, wrong[:10]
    assert stat(px, "http.ingress_http.rds.local_route.update_success") == SWAPS + 1
    assert stat(px, "http.ingress_http.rds.local_route.version") == SWAPS + 1
    for r in load.runs:
        assert_h2load_clean(r)
    done = sum(r["done"] for r in load.runs)
    print(f"{SWAPS} swaps in {swap_time:.1f} s; h2load: {len(load.runs)} bursts, {done} requests")
