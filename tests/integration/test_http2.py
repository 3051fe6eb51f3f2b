"""HTTP/2 through the HTTP connection manager: downstream h2c (prior knowledge), HTTP/2 upstream
clusters (nghttpd), load with h2load, and gRPC (python3-grpcio) unary and streaming."""
import json
import os
import subprocess
import threading
import time
from concurrent import futures

import pytest

from conftest import free_port
from http_helpers import RecordingUpstream, hcm_config, stat, wait_port

H2_CLUSTER = """
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {}"""


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


@pytest.fixture
def procs():
    started = []
    yield started
    for p in started:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def start(pillion, cfg, port):
    p = pillion(cfg)
    wait_port(port)
    return p


def test_h2c_prior_knowledge_to_h1_upstream(pillion, rec):
    up = rec()
    port = free_port()
    p = start(pillion, hcm_config(port, {"c1": [up.port]}), port)
    r = subprocess.run(["curl", "-s", "-i", "--http2-prior-knowledge",
                        f"http://127.0.0.1:{port}/h2?q=1", "--data-binary", "z" * 50000],
                       capture_output=True, timeout=20)
    out = r.stdout.decode()
    assert out.startswith("HTTP/2 200"), out
    body = json.loads(out.split("\r\n\r\n", 1)[1])
    assert body["path"] == "/h2?q=1" and body["body_len"] == 50000
    assert body["headers"]["host"] == f"127.0.0.1:{port}"
    assert stat(p, "http.ingress_http.downstream_cx_http2_total") == 1
    assert stat(p, "http.ingress_http.downstream_rq_http2_total") == 1


def test_h2load_no_failures(pillion, rec):
    up = rec()
    port = free_port()
    start(pillion, hcm_config(port, {"c1": [up.port]}), port)
    r = subprocess.run(["h2load", "-n", "1000", "-c", "10", "-m", "10",
                        f"http://127.0.0.1:{port}/load"], capture_output=True, timeout=120)
    out = r.stdout.decode()
    assert "1000 succeeded, 0 failed, 0 errored" in out, out
    assert len(up.requests) == 1000


def test_h2_upstream_nghttpd(pillion, procs, tmp_path):
    docroot = tmp_path / "docs"
    docroot.mkdir()
    (docroot / "file.txt").write_text("served by nghttpd\n" * 1000)
    up_port = free_port()
    procs.append(subprocess.Popen(["nghttpd", "--no-tls", "-d", str(docroot), str(up_port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    wait_port(up_port)
    port = free_port()
    p = start(pillion, hcm_config(port, {"h2c": [up_port]}, cluster_extra=H2_CLUSTER), port)
    for proto in (["--http1.1"], ["--http2-prior-knowledge"]):
        r = subprocess.run(["curl", "-s", *proto, f"http://127.0.0.1:{port}/file.txt"],
                           capture_output=True, timeout=20)
        assert r.stdout == b"served by nghttpd\n" * 1000
    r = subprocess.run(["h2load", "-n", "500", "-c", "5", "-m", "20",
                        f"http://127.0.0.1:{port}/file.txt"], capture_output=True, timeout=120)
    assert "500 succeeded, 0 failed" in r.stdout.decode(), r.stdout.decode()
    # few connections, many streams
    assert 1 <= stat(p, "cluster.h2c.upstream_cx_total") <= 8


grpc = pytest.importorskip("grpc")


def _ident(b):
    return b


class _Svc:
    def unary(self, req, ctx):
        return b"echo:" + req

    def server_stream(self, req, ctx):
        for i in range(int(req.decode())):
            yield f"item{i}".encode()

    def client_stream(self, it, ctx):
        return str(sum(len(x) for x in it)).encode()

    def bidi(self, it, ctx):
        for x in it:
            yield x.upper()

    def fail(self, req, ctx):
        ctx.abort(grpc.StatusCode.NOT_FOUND, "nope")


def _grpc_server():
    s = _Svc()
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(s.unary, _ident, _ident),
        "ServerStream": grpc.unary_stream_rpc_method_handler(s.server_stream, _ident, _ident),
        "ClientStream": grpc.stream_unary_rpc_method_handler(s.client_stream, _ident, _ident),
        "Bidi": grpc.stream_stream_rpc_method_handler(s.bidi, _ident, _ident),
        "Fail": grpc.unary_unary_rpc_method_handler(s.fail, _ident, _ident),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo",
                                                                          handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def test_grpc_through_proxy(pillion):
    server, gport = _grpc_server()
    try:
        port = free_port()
        start(pillion, hcm_config(port, {"grpc": [gport]}, cluster_extra=H2_CLUSTER), port)
        ch = grpc.insecure_channel(f"127.0.0.1:{port}")
        unary = ch.unary_unary("/test.Echo/Unary", _ident, _ident)
        assert unary(b"hi", timeout=10) == b"echo:hi"
        assert unary(b"x" * 300000, timeout=10) == b"echo:" + b"x" * 300000
        ss = ch.unary_stream("/test.Echo/ServerStream", _ident, _ident)
        assert list(ss(b"50", timeout=10)) == [f"item{i}".encode() for i in range(50)]
        cs = ch.stream_unary("/test.Echo/ClientStream", _ident, _ident)
        assert cs(iter([b"a" * 10] * 100), timeout=10) == b"1000"
        bidi = ch.stream_stream("/test.Echo/Bidi", _ident, _ident)
        assert list(bidi(iter([b"a", b"b", b"c"]), timeout=10)) == [b"A", b"B", b"C"]
        fail = ch.unary_unary("/test.Echo/Fail", _ident, _ident)
        with pytest.raises(grpc.RpcError) as e:
            fail(b"", timeout=10)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND and e.value.details() == "nope"
        ch.close()
    finally:
        server.stop(0)


def test_grpc_local_reply_unavailable(pillion):
    port = free_port()
    dead = free_port()
    start(pillion, hcm_config(port, {"grpc": [dead]}, cluster_extra=H2_CLUSTER), port)
    ch = grpc.insecure_channel(f"127.0.0.1:{port}")
    unary = ch.unary_unary("/test.Echo/Unary", _ident, _ident)
    with pytest.raises(grpc.RpcError) as e:
        unary(b"hi", timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "upstream connect error" in e.value.details()
    ch.close()


def test_h2_drain_finishes_inflight_stream(pillion, rec):
    import signal
    up = rec()
    port = free_port()
    p = pillion(hcm_config(port, {"c1": [up.port]}), args=["--drain-time-s", "5"])
    wait_port(port)
    result = {}

    def slow():
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                            "--http2-prior-knowledge", f"http://127.0.0.1:{port}/slow/1000"],
                           capture_output=True, timeout=20)
        result["code"] = r.stdout.decode()

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    p.proc.send_signal(signal.SIGTERM)
    t.join(15)
    assert result.get("code") == "200", result
    assert p.proc.wait(10) == 0
