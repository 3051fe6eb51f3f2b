"""Conformance 4: the control plane dies (SIGKILL) and comes back on the same port under load.

h2load (h2c, 4 connections x 4 streams, rate-limited, bounded by -D and a kill timeout) runs
through the proxy for the whole test. Meanwhile pillion-cp is killed with SIGKILL (no goodbye
on the ADS stream); the proxy must notice (control_plane.connected_state 0) and keep serving
its last good configuration. While the control plane is down, the resource files change: the
route configuration now sends traffic to the second cluster (`other`, upstream u1) and tags its
responses. A new pillion-cp then starts on the same port; the proxy reconnects on its own
(backoff), connected_state is 1 again, pillion-cp shows every type ACKed (SYNCED), and traffic
follows the changed files (upstream u1, x-route-tag). (The new cp starts its versions at "1"
again, the version the proxy holds: the changed content must still be applied.) h2load must report 0 failed, 0 errored,
0 timeout and only 2xx, and it must still be running when the change was seen applied, so the
kill, the outage, the reconnect and the apply all happened under load."""
import http.client
import json
import os
import threading
import time

import pytest

from conftest import CP, until, write
from http_helpers import stat
from xds_helpers import add_other_cluster, assert_h2load_clean, h2load, routes_yaml, start_xds

pytestmark = pytest.mark.skipif(not os.path.exists(CP), reason="pillion-cp not built")

LOAD_S = 20  # h2load's -D: longer than kill + outage + reconnect (backoff) + resync
RPS = 250  # per connection


def upstream_and_tag(port):
    """One request on a new connection: (upstream name, x-route-tag or None)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", "/after")
        r = c.getresponse()
        body = r.read()
        assert r.status == 200, (r.status, body)
        return json.loads(body)["upstream"], r.getheader("x-route-tag")
    finally:
        c.close()


def test_cp_killed_and_restarted_under_load(tmp_path, cp, pillion, upstream):
    c, px, ups, lport, res = start_xds(tmp_path, cp, pillion, upstream, 2)
    add_other_cluster(c, res, ups)
    port = c.xds_port
    result = {}
    load = threading.Thread(target=lambda: result.update(h2load(lport, LOAD_S, rps=RPS)),
                            daemon=True)
    load.start()
    time.sleep(1)
    c.proc.kill()  # SIGKILL
    c.proc.wait(5)
    until(lambda: stat(px, "control_plane.connected_state") == 0, 10, "the proxy sees the cp gone")
    assert upstream_and_tag(lport) == ("u0", None)  # the last good configuration serves
    write(res / "routes.yaml", routes_yaml(cluster="other", tag="changed-while-down"))
    time.sleep(0.5)
    assert upstream_and_tag(lport) == ("u0", None)
    c2 = cp(res, xds_port=port)
    until(lambda: stat(px, "control_plane.connected_state") == 1, 20, "the proxy reconnected")
    until(lambda: upstream_and_tag(lport) == ("u1", "changed-while-down"), 10,
          "the change made while the cp was down is applied")
    assert load.is_alive(), "h2load ended before the restart was through: raise LOAD_S"
    n = c2.node("sidecar-1", lambda n: all(t["state"] == "SYNCED" for t in n["types"].values()))
    assert n["types"]["rds"]["acked_version"] == "1"  # the new cp's first versions
    load.join(LOAD_S + 40)
    assert not load.is_alive() and result, "h2load did not finish"
    assert_h2load_clean(result)
    print(f"h2load: {result['done']} requests through the kill and restart")
