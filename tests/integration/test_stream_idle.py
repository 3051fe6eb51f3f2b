"""HCM stream_idle_timeout (real processes): the timer restarts on every activity of the stream
(the proxy only notes the time and the timer moves itself when it fires early), and fires once a
stream has been quiet for the timeout: 408 before the response started, a reset after."""
import socket
import time

from conftest import free_port
from http_helpers import hcm_config, read_response, stat, wait_port

IDLE = 0.4  # seconds: stream_idle_timeout below
HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n")


def read_request(c):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = c.recv(4096)
        if not chunk:
            return
        buf += chunk


def start(pillion, tcp_server, handler):
    up = tcp_server(handler)
    port = free_port()
    p = pillion(hcm_config(port, {"slow": [up.port]},
                           hcm_extra=f"\n          stream_idle_timeout: {IDLE}s"))
    wait_port(port)
    return p, port


def get(port, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(b"GET / HTTP/1.1\r\nhost: idle\r\n\r\n")
    return s


def test_quiet_upstream_gets_408(pillion, tcp_server):
    def handler(c):
        read_request(c)
        time.sleep(3 * IDLE)  # answers nothing

    p, port = start(pillion, tcp_server, handler)
    t0 = time.monotonic()
    s = get(port)
    with s, s.makefile("rb") as f:
        status, _, _ = read_response(f)
    took = time.monotonic() - t0
    assert status == 408
    assert IDLE - 0.05 <= took < IDLE + 1.0, took
    assert stat(p, "http.ingress_http.downstream_rq_idle_timeout") == 1


def test_activity_keeps_the_stream_alive(pillion, tcp_server):
    """Chunks every IDLE/2 for 3 x IDLE: no gap reaches the timeout, so nothing fires."""
    def handler(c):
        read_request(c)
        c.sendall(HEAD)
        for i in range(6):
            time.sleep(IDLE / 2)
            c.sendall(b"2\r\n%02d\r\n" % i)
        c.sendall(b"0\r\n\r\n")
        time.sleep(0.5)

    p, port = start(pillion, tcp_server, handler)
    s = get(port, timeout=10)
    with s, s.makefile("rb") as f:
        status, _, body = read_response(f)
    assert status == 200
    assert body == b"000102030405"
    assert stat(p, "http.ingress_http.downstream_rq_idle_timeout") == 0


def test_fires_once_the_stream_goes_quiet(pillion, tcp_server):
    """Two chunks, then silence: the stream is reset about IDLE after the last chunk."""
    def handler(c):
        read_request(c)
        c.sendall(HEAD + b"1\r\na\r\n")
        time.sleep(IDLE / 2)
        c.sendall(b"1\r\nb\r\n")
        time.sleep(4 * IDLE)

    p, port = start(pillion, tcp_server, handler)
    s = get(port, timeout=10)
    got, t_last, t_end = b"", None, None
    with s:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                t_end = time.monotonic()
                break
            got += chunk
            if b"1\r\nb\r\n" in got and t_last is None:
                t_last = time.monotonic()
    assert t_last is not None and t_end is not None, got
    assert b"0\r\n\r\n" not in got  # reset, not completed
    assert IDLE - 0.05 <= t_end - t_last < IDLE + 1.0, t_end - t_last
    assert stat(p, "http.ingress_http.downstream_rq_idle_timeout") == 1
