"""HTTP/1.1 proxying through the HTTP connection manager and the router (real processes)."""
import http.client
import json
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import free_port, run_pillion
from http_helpers import (RecordingUpstream, hcm_config, raw_exchange, read_response, stat,
                          wait_port)


@pytest.fixture
def rec():
    made = []

    def make(name="up"):
        u = RecordingUpstream(name)
        made.append(u)
        return u

    yield make
    for u in made:
        u.close()


def start(pillion, cfg, port):
    p = pillion(cfg)
    wait_port(port)
    return p


def curl(*args, timeout=20):
    r = subprocess.run(["curl", "-s", "-S", "--max-time", "15", *args], capture_output=True,
                       timeout=timeout)
    return r


def test_get_post_and_request_headers(pillion, rec):
    up = rec()
    port = free_port()
    p = start(pillion, hcm_config(port, {"c1": [up.port]}), port)
    r = curl("-i", f"http://127.0.0.1:{port}/hello?x=1", "-H", "X-Custom: abc")
    out = r.stdout.decode()
    assert out.startswith("HTTP/1.1 200"), out
    assert "server: pillion" in out.lower()
    assert "x-envoy-upstream-service-time:" in out
    body = json.loads(out.split("\r\n\r\n", 1)[1])
    assert body["path"] == "/hello?x=1"
    h = body["headers"]
    assert h["host"] == f"127.0.0.1:{port}"
    assert h["x-custom"] == "abc"
    assert h["x-forwarded-proto"] == "http"
    assert len(h["x-request-id"]) == 36
    assert h["x-envoy-expected-rq-timeout-ms"] == "15000"
    r = curl(f"http://127.0.0.1:{port}/post", "--data-binary", "x" * 100000)
    assert json.loads(r.stdout)["body_len"] == 100000
    assert stat(p, "http.ingress_http.downstream_rq_2xx") == 2
    assert stat(p, "http.ingress_http.downstream_rq_total") == 2
    assert stat(p, "cluster.c1.upstream_rq_2xx") == 2
    assert stat(p, "cluster.c1.upstream_rq_total") == 2
    assert stat(p, "cluster.c1.upstream_cx_total") >= 1


def test_keepalive_reuse_both_sides(pillion, rec):
    up = rec()
    port = free_port()
    start(pillion, hcm_config(port, {"c1": [up.port]}), port)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for i in range(20):
        c.request("GET", f"/k{i}")
        r = c.getresponse()
        assert r.status == 200
        assert json.loads(r.read())["path"] == f"/k{i}"
    c.close()
    assert len(up.requests) == 20
    assert up.conns <= 2  # one per worker at most


@pytest.mark.parametrize("mode", ["auto", "off"])
def test_io_uring_modes_serve_alike(pillion, rec, mode):
    """Writes batched through io_uring (auto, the default where the kernel allows it) or
    direct (off): keep-alive requests, a 1 MB upload and a 4 MB response arrive intact."""
    up = rec()
    port = free_port()
    pillion(hcm_config(port, {"c1": [up.port]}), args=["--io-uring", mode])
    wait_port(port)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for i in range(10):
        c.request("GET", f"/k{i}")
        r = c.getresponse()
        assert r.status == 200 and json.loads(r.read())["path"] == f"/k{i}"
    body = bytes(range(256)) * 4096
    c.request("POST", "/up", body=body)
    r = c.getresponse()
    assert r.status == 200 and r.read()
    assert up.requests[-1]["body"] == body
    c.request("GET", f"/big/{4 << 20}")
    r = c.getresponse()
    assert r.status == 200 and len(r.read()) == 4 << 20
    c.close()


def test_io_uring_flag_refuses_unknown_values():
    r = run_pillion("--io-uring", "on")
    assert r.returncode == 1 and "--io-uring: expected auto or off, got 'on'" in r.stderr


def test_pipelining(pillion, rec):
    up = rec()
    port = free_port()
    start(pillion, hcm_config(port, {"c1": [up.port]}), port)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
              b"POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
              b"GET /three HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    f = s.makefile("rb")
    paths = []
    for _ in range(3):
        status, headers, body = read_response(f)
        assert status == 200
        paths.append(json.loads(body)["path"])
    assert paths == ["/one", "/two", "/three"]
    assert f.read() == b""  # closed after Connection: close
    s.close()
    assert [r["body"] for r in up.requests] == [b"", b"abc", b""]


def test_chunked_upload_and_chunked_response(pillion, rec):
    up = rec()
    port = free_port()
    start(pillion, hcm_config(port, {"c1": [up.port]}), port)
    r = subprocess.run(["curl", "-s", "-H", "Transfer-Encoding: chunked", "--data-binary", "@-",
                        f"http://127.0.0.1:{port}/up"], input=b"y" * 70000, capture_output=True,
                       timeout=20)
    assert json.loads(r.stdout)["body_len"] == 70000
    got = up.requests[-1]
    assert got["body"] == b"y" * 70000
    r = curl("-i", "--raw", f"http://127.0.0.1:{port}/chunked")
    out = r.stdout.decode()
    assert "transfer-encoding: chunked" in out.lower()
    assert out.endswith("\r\nhello world\r\n0\r\n\r\n"), out


def test_error_statuses(pillion, rec):
    up = rec()
    port = free_port()
    dead = free_port()
    routes = """
              - match: { prefix: "/dead" }
                route: { cluster: dead }
              - match: { prefix: "/empty" }
                route: { cluster: empty }
              - match: { prefix: "/missing" }
                route: { cluster_header: x-cluster }
              - match: { prefix: "/slow" }
                route: { cluster: c1, timeout: 0.3s }"""
    cfg = hcm_config(port, {"c1": [up.port], "dead": [dead], "empty": []}, routes=routes)
    p = start(pillion, cfg, port)
    r = curl("-i", f"http://127.0.0.1:{port}/nothing")
    assert r.stdout.startswith(b"HTTP/1.1 404"), r.stdout
    r = curl("-i", f"http://127.0.0.1:{port}/dead")
    assert r.stdout.startswith(b"HTTP/1.1 503"), r.stdout
    assert r.stdout.endswith(b"upstream connect error or disconnect/reset before headers. "
                             b"reset reason: connection failure")
    assert b"content-type: text/plain" in r.stdout
    r = curl("-i", f"http://127.0.0.1:{port}/empty")
    assert r.stdout.startswith(b"HTTP/1.1 503") and r.stdout.endswith(b"no healthy upstream")
    r = curl("-i", "-H", "x-cluster: nosuch", f"http://127.0.0.1:{port}/missing")
    assert r.stdout.startswith(b"HTTP/1.1 503"), r.stdout
    t0 = time.monotonic()
    r = curl("-i", f"http://127.0.0.1:{port}/slow/2000")
    assert r.stdout.startswith(b"HTTP/1.1 504"), r.stdout
    assert r.stdout.endswith(b"upstream request timeout")
    assert time.monotonic() - t0 < 1.5
    assert stat(p, "cluster.c1.upstream_rq_timeout") == 1
    assert stat(p, "cluster.c1.upstream_rq_504") == 1
    assert stat(p, "cluster.dead.upstream_cx_connect_fail") >= 1
    assert stat(p, "http.ingress_http.downstream_rq_4xx") == 1
    assert stat(p, "http.ingress_http.no_route") == 1
    assert stat(p, "http.ingress_http.downstream_rq_5xx") == 4


def test_grpc_local_replies(pillion, rec):
    up = rec()
    port = free_port()
    dead = free_port()
    routes = """
              - match: { prefix: "/dead" }
                route: { cluster: dead }"""
    start(pillion, hcm_config(port, {"c1": [up.port], "dead": [dead]}, routes=routes), port)
    for path, code in (("/nothing", "12"), ("/dead", "14")):
        r = curl("-i", "-X", "POST", "-H", "content-type: application/grpc", "--data-binary", "",
                 f"http://127.0.0.1:{port}{path}")
        out = r.stdout.decode().lower()
        assert out.startswith("http/1.1 200"), out
        assert f"grpc-status: {code}" in out
        assert "content-type: application/grpc" in out


def test_redirect_and_direct_response(pillion, rec):
    up = rec()
    port = free_port()
    routes = """
              - match: { prefix: "/old" }
                redirect: { path_redirect: "/new", response_code: FOUND }
              - match: { prefix: "/direct" }
                direct_response: { status: 418, body: { inline_string: "teapot" } }
                response_headers_to_add:
                - header: { key: x-direct, value: "yes" }"""
    start(pillion, hcm_config(port, {"c1": [up.port]}, routes=routes), port)
    r = curl("-i", f"http://127.0.0.1:{port}/old")
    out = r.stdout.decode()
    assert out.startswith("HTTP/1.1 302"), out
    assert f"location: http://127.0.0.1:{port}/new" in out
    r = curl("-i", f"http://127.0.0.1:{port}/direct")
    out = r.stdout.decode()
    assert out.startswith("HTTP/1.1 418"), out
    assert "x-direct: yes" in out and out.endswith("teapot")
    assert not up.requests


def test_header_manipulation(pillion, rec):
    up = rec()
    port = free_port()
    routes = """
              - match: { prefix: "/" }
                route: { cluster: c1, prefix_rewrite: "/rewritten/" }
                request_headers_to_add:
                - header: { key: x-route, value: "r" }
                request_headers_to_remove: [x-drop]
                response_headers_to_add:
                - header: { key: x-resp, value: "%UPSTREAM_HOST%" }"""
    vh = """
              request_headers_to_add:
              - header: { key: x-vhost, value: "v" }"""
    start(pillion, hcm_config(port, {"c1": [up.port]}, routes=routes, vhost_extra=vh), port)
    r = curl("-i", "-H", "x-drop: 1", f"http://127.0.0.1:{port}/a/b")
    out = r.stdout.decode()
    assert f"x-resp: 127.0.0.1:{up.port}" in out, out
    body = json.loads(out.split("\r\n\r\n", 1)[1])
    assert body["path"] == "/rewritten/a/b"
    h = body["headers"]
    assert h["x-route"] == "r" and h["x-vhost"] == "v"
    assert "x-drop" not in h
    assert h["x-envoy-original-path"] == "/a/b"


def test_edge_headers(pillion, rec):
    up = rec()
    port = free_port()
    cfg = hcm_config(port, {"c1": [up.port]}, hcm_extra="\n          use_remote_address: true")
    start(pillion, cfg, port)
    r = curl("-H", "x-forwarded-for: 10.1.2.3", "-H", "x-request-id: mine",
             "-H", "x-envoy-upstream-rq-timeout-ms: 3000", f"http://127.0.0.1:{port}/")
    h = json.loads(r.stdout)["headers"]
    assert h["x-envoy-expected-rq-timeout-ms"] == "3000"  # internal: the header is honoured
    assert "x-envoy-upstream-rq-timeout-ms" not in h
    assert h["x-forwarded-for"] == "10.1.2.3, 127.0.0.1"
    assert h["x-request-id"] == "mine"  # loopback is internal: kept
    assert h["x-envoy-internal"] == "true"
    r = curl("-H", "connection: keep-alive, x-foo", "-H", "te: trailers",
             "-H", "proxy-connection: x", f"http://127.0.0.1:{port}/")
    h = json.loads(r.stdout)["headers"]
    assert "proxy-connection" not in h and h.get("te") == "trailers"


SMUGGLING = [
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
]


@pytest.mark.parametrize("req", SMUGGLING)
def test_smuggling_rejected(pillion, rec, req):
    up = rec()
    port = free_port()
    start(pillion, hcm_config(port, {"c1": [up.port]}), port)
    out = raw_exchange(port, req)
    assert out.startswith(b"HTTP/1.1 400") or out.startswith(b"HTTP/1.1 501"), out
    assert b"connection: close" in out
    time.sleep(0.1)
    assert up.requests == []


def test_huge_header_431(pillion, rec):
    up = rec()
    port = free_port()
    start(pillion, hcm_config(port, {"c1": [up.port]}), port)
    out = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 431"), out[:100]
    assert up.requests == []


def test_weighted_split(pillion, rec):
    a, b = rec("a"), rec("b")
    port = free_port()
    routes = """
              - match: { prefix: "/" }
                route:
                  weighted_clusters:
                    clusters:
                    - { name: ca, weight: 25 }
                    - { name: cb, weight: 75 }"""
    start(pillion, hcm_config(port, {"ca": [a.port], "cb": [b.port]}, routes=routes), port)
    r = subprocess.run(["h2load", "--h1", "-n", "10000", "-c", "10",
                        f"http://127.0.0.1:{port}/w"], capture_output=True, timeout=120)
    out = r.stdout.decode()
    assert "10000 succeeded" in out, out
    total = len(a.requests) + len(b.requests)
    assert total == 10000
    assert abs(len(a.requests) / total - 0.25) < 0.02, (len(a.requests), len(b.requests))


def test_upstream_connection_close_and_reuse(pillion, rec):
    up = rec()
    port = free_port()
    start(pillion, hcm_config(port, {"c1": [up.port]}), port)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for path in ("/close", "/a", "/close", "/b"):
        c.request("GET", path)
        r = c.getresponse()
        assert r.status == 200, path
        r.read()
    c.close()
    assert len(up.requests) == 4


def test_head_and_http10(pillion, rec):
    up = rec()
    port = free_port()
    start(pillion, hcm_config(port, {"c1": [up.port]}), port)
    out = raw_exchange(port, b"HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200")
    assert out.endswith(b"\r\n\r\n"), out  # no body
    out = raw_exchange(port, b"GET /x HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200"), out
    assert b'"path": "/x"' in out


def test_drain_finishes_inflight_request(pillion, rec):
    up = rec()
    port = free_port()
    p = pillion(hcm_config(port, {"c1": [up.port]}), args=["--drain-time-s", "5"])
    wait_port(port)
    result = {}

    def slow():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/slow/1000")
        r = c.getresponse()
        result["status"] = r.status
        result["conn"] = r.getheader("connection")
        result["body"] = r.read()

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    p.proc.send_signal(signal.SIGTERM)
    t.join(10)
    assert result.get("status") == 200, result
    assert p.proc.wait(10) == 0


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_big_streamed_body_bounded_memory(pillion, rec):
    """1 GiB response to a reader that starts slow: the proxy stops reading the upstream while
    the downstream is full (watermarks), so its memory stays bounded."""
    up = rec()
    port = free_port()
    routes = """
              - match: { prefix: "/" }
                route: { cluster: c1, timeout: 0s }"""
    p = start(pillion, hcm_config(port, {"c1": [up.port]}, routes=routes), port)
    size = 1 << 30
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(f"GET /big/{size} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    got = len(head.split(b"\r\n\r\n", 1)[1])
    peak = 0
    start_t = time.monotonic()
    next_sample = start_t
    while got < size and time.monotonic() < start_t + 150:
        if time.monotonic() < start_t + 1.5:
            time.sleep(0.05)  # a slow reader first: the proxy must stop reading upstream
            n = len(s.recv(16384))
        else:
            n = len(s.recv(1 << 20))
        if n == 0:
            break
        got += n
        if time.monotonic() >= next_sample:
            peak = max(peak, rss_kb(p.proc.pid))
            next_sample = time.monotonic() + 0.2
    s.close()
    assert got == size
    assert peak < 64 * 1024, f"RSS peak {peak} kB"


def test_big_upload_slow_upstream_bounded_memory(pillion, rec):
    """256 MiB upload to an upstream that reads slowly at first: the proxy stops reading the
    downstream while the upstream connection is full."""
    up = rec()
    port = free_port()
    routes = """
              - match: { prefix: "/" }
                route: { cluster: c1, timeout: 0s }"""
    p = start(pillion, hcm_config(port, {"c1": [up.port]}, routes=routes), port)
    size = 256 << 20
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.sendall(f"POST /sink HTTP/1.1\r\nHost: a\r\nContent-Length: {size}\r\n\r\n".encode())
    block = b"u" * (1 << 20)
    peak = 0
    for i in range(size // len(block)):
        s.sendall(block)
        if i % 8 == 0:
            peak = max(peak, rss_kb(p.proc.pid))
    f = s.makefile("rb")
    status, _, body = read_response(f)
    s.close()
    assert status == 200 and int(body) == size
    assert peak < 64 * 1024, f"RSS peak {peak} kB"


def test_websocket_upgrade(pillion, rec):
    up = rec()
    port = free_port()
    cfg = hcm_config(port, {"c1": [up.port]},
                     hcm_extra="\n          upgrade_configs: [{ upgrade_type: websocket }]")
    start(pillion, cfg, port)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
              b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    assert b"upgrade: websocket" in head.lower()
    rest = head.split(b"\r\n\r\n", 1)[1]
    s.sendall(b"hello tunnel")
    while len(rest) < 12:
        rest += s.recv(4096)
    assert rest == b"HELLO TUNNEL"
    s.close()
    hdrs = dict(up.requests[0]["headers"])
    assert hdrs["upgrade"] == "websocket" and hdrs["connection"].lower() == "upgrade"


def test_websocket_refused_without_upgrade_config(pillion, rec):
    up = rec()
    port = free_port()
    start(pillion, hcm_config(port, {"c1": [up.port]}), port)
    out = raw_exchange(port, b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                             b"Upgrade: websocket\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 403"), out
    assert up.requests == []


def test_expect_100_continue(pillion, rec):
    up = rec()
    port = free_port()
    start(pillion, hcm_config(port, {"c1": [up.port]}), port)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
    f = s.makefile("rb")
    assert f.readline().startswith(b"HTTP/1.1 100")
    assert f.readline() == b"\r\n"
    s.sendall(b"body")
    status, _, body = read_response(f)
    s.close()
    assert status == 200
    got = json.loads(body)
    assert got["body_len"] == 4 and "expect" not in got["headers"]


def test_access_log(pillion, rec, tmp_path):
    up = rec()
    port = free_port()
    log = tmp_path / "access.log"
    extra = f"""
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {log}"""
    p = start(pillion, hcm_config(port, {"c1": [up.port]}, hcm_extra=extra), port)
    curl("-A", "agent/1", f"http://127.0.0.1:{port}/logged?a=b")
    curl(f"http://127.0.0.1:{port}/status/503")
    p.stop(signal.SIGINT)
    lines = sorted(log.read_text().splitlines(), key=lambda x: "/status" in x)  # two workers
    assert len(lines) == 2, lines
    assert '"GET /logged?a=b HTTP/1.1" 200 - 0 ' in lines[0], lines
    assert '"agent/1"' in lines[0] and f'"127.0.0.1:{up.port}"' in lines[0]
    assert '"GET /status/503 HTTP/1.1" 503 ' in lines[1], lines


def test_pipelined_then_half_close(pillion, rec):
    """A client that writes two requests and shuts its side (printf ... | nc) gets both
    answers, then the proxy closes."""
    up = rec()
    port = free_port()
    routes = """
              - match: { prefix: "/direct" }
                direct_response: { status: 200, body: { inline_string: "d" } }
              - match: { prefix: "/" }
                route: { cluster: c1 }"""
    start(pillion, hcm_config(port, {"c1": [up.port]}, routes=routes), port)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /direct HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"
              b"GET /direct HTTP/1.1\r\nHost: a\r\n\r\n")
    s.shutdown(socket.SHUT_WR)
    f = s.makefile("rb")
    got = [read_response(f) for _ in range(3)]
    assert [g[0] for g in got] == [200, 200, 200]
    assert json.loads(got[1][2])["path"] == "/b"
    assert f.read() == b""
    s.close()
