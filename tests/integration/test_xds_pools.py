"""Upstream connection pools across EDS changes: a host that leaves the assignment while requests
are in flight finishes them, then its connections close. None is left behind idle (Envoy closes a
removed host's connections as they drain); under the sanitizer build a leaked pool fails the
proxy's exit."""
import subprocess
import threading
import time

import pytest

from conftest import free_port, until, write
from http_helpers import wait_port
from xds_helpers import (assert_h2load_clean, bootstrap, clusters_yaml, h2load, listener_yaml,
                         routes_yaml)

H2_EXTRA = """  typed_extension_protocol_options:
    envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
      "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
      explicit_http_config: { http2_protocol_options: {} }
"""


def established_to(port):
    """Established TCP connections whose remote end is 127.0.0.1:port (the proxy's side)."""
    n = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            rem, state = fields[2], fields[3]
            if state == "01" and rem == f"0100007F:{port:04X}":
                n += 1
    return n


@pytest.fixture
def nghttpd(tmp_path):
    """Starts nghttpd (h2c) upstreams serving /load; returns a factory of their ports."""
    docroot = tmp_path / "docs"
    docroot.mkdir()
    (docroot / "load").write_text("from nghttpd\n")
    started = []

    def make():
        port = free_port()
        started.append(subprocess.Popen(["nghttpd", "--no-tls", "-d", str(docroot), str(port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(port)
        return port
    yield make
    for p in started:
        p.kill()
        p.wait()


@pytest.mark.parametrize("proto", ["http1", "http2"])
def test_removed_host_connections_close_after_in_flight_requests(tmp_path, cp, pillion, upstream,
                                                                 nghttpd, proto):
    if proto == "http2":
        ports, extra = [nghttpd(), nghttpd()], H2_EXTRA
    else:
        ports, extra = [upstream("a").port, upstream("b").port], ""
    lport = free_port()
    res = tmp_path / "res"
    res.mkdir()
    (res / "listeners.yaml").write_text(listener_yaml(lport))
    (res / "routes.yaml").write_text(routes_yaml())
    (res / "clusters.yaml").write_text(clusters_yaml([("demo_upstream", ports[0])], extra))
    c = cp(res)
    px = pillion(bootstrap(c.xds_port))
    until(lambda: px.admin("/ready")[0] == 200, 15, "/ready 200")

    # the assignment flips between the two hosts while h2load keeps 16 requests in flight
    result = {}
    load = threading.Thread(target=lambda: result.update(h2load(lport, 4)))
    load.start()
    version = 1
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        time.sleep(0.4)
        version += 1
        write(res / "clusters.yaml", clusters_yaml([("demo_upstream", ports[version % 2])], extra))
    load.join(60)
    assert not load.is_alive()
    assert_h2load_clean(result)
    gone, kept = ports[(version + 1) % 2], ports[version % 2]

    def hosts():
        return {line.split("::")[1] for line in px.admin("/clusters")[2].splitlines()
                if line.startswith("demo_upstream::127.0.0.1:")}
    until(lambda: hosts() == {f"127.0.0.1:{kept}"}, 15, f"the last assignment (:{kept}) applied")

    # the host no longer assigned keeps no connection once its requests are done
    until(lambda: established_to(gone) == 0, 10, f"connections to the removed host :{gone} closed")
    assert established_to(kept) > 0
