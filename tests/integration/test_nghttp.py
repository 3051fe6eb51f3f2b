"""The nghttp client (nghttp2-client) through the proxy: HTTP/2 prior knowledge, concurrent
streams on one connection, a request body, and the response the upstream produced."""
import json
import subprocess

import pytest

from conftest import free_port
from http_helpers import RecordingUpstream, hcm_config, stat, wait_port


@pytest.fixture
def up():
    u = RecordingUpstream("nghttp-up")
    yield u
    u.close()


def test_nghttp_get_and_post(pillion, up, tmp_path):
    port = free_port()
    p = pillion(hcm_config(port, {"c1": [up.port]}))
    wait_port(port)
    r = subprocess.run(["nghttp", "-v", f"http://127.0.0.1:{port}/one"], capture_output=True,
                       timeout=20)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert ":status: 200" in out
    body = json.loads(out[out.index("{"):out.rindex("}") + 1])
    assert body["path"] == "/one"
    payload = tmp_path / "payload"
    payload.write_bytes(b"x" * 1048576)
    r = subprocess.run(["nghttp", "-n", "-d", str(payload), f"http://127.0.0.1:{port}/upload"],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    posted = [q for q in up.requests if q["path"] == "/upload"]
    assert len(posted) == 1 and len(posted[0]["body"]) == 1048576


def test_nghttp_concurrent_streams_share_one_connection(pillion, up):
    port = free_port()
    p = pillion(hcm_config(port, {"c1": [up.port]}))
    wait_port(port)
    urls = [f"http://127.0.0.1:{port}/s{i}" for i in range(20)]
    r = subprocess.run(["nghttp", "-n", "-s", *urls], capture_output=True, timeout=30)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert out.count("200") >= 20, out
    assert stat(p, "http.ingress_http.downstream_cx_http2_total") == 1
    assert stat(p, "http.ingress_http.downstream_rq_2xx") == 20
