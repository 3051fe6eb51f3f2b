"""tcp_proxy end to end: real pillion processes, real TCP servers on 127.0.0.1."""
import hashlib
import socket
import threading
import time

import pytest

from conftest import stats

MB = 1024 * 1024


def echo(c):
    while True:
        d = c.recv(256 * 1024)
        if not d:
            break
        c.sendall(d)
    c.shutdown(socket.SHUT_WR)


def reply_after_eof(c):
    """Reads until the client's FIN, then answers with what it got, upper-cased."""
    got = b""
    while True:
        d = c.recv(65536)
        if not d:
            break
        got += d
    c.sendall(b"GOT:" + got.upper())
    c.shutdown(socket.SHUT_WR)


def slow_sink(c):
    """Reads slowly, hashing; after the client's FIN replies with the byte count and digest."""
    h = hashlib.sha256()
    n = 0
    while True:
        d = c.recv(256 * 1024)
        if not d:
            break
        h.update(d)
        n += len(d)
        time.sleep(0.001)
    c.sendall(f"{n} {h.hexdigest()}".encode())
    c.shutdown(socket.SHUT_WR)


def named(name):
    def handler(c):
        c.sendall(name.encode())
        c.shutdown(socket.SHUT_WR)
        c.recv(16)
    return handler


def cluster(name, port, extra=""):
    return f"""
  - name: {name}
    connect_timeout: 1s
{extra}    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}
"""


def config(listen_port, tcp_proxy, clusters):
    return f"""
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
static_resources:
  listeners:
  - name: tcp
    address: {{socket_address: {{address: 127.0.0.1, port_value: {listen_port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
{tcp_proxy}
  clusters:
{clusters}
"""


def recv_all(s, timeout=10):
    s.settimeout(timeout)
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            return out
        out += d


def connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sanitized(pid):
    with open(f"/proc/{pid}/maps") as f:
        return any("libasan" in line or "libtsan" in line for line in f)


def wait_for(pred, timeout=5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def test_echo_and_stats(pillion, free_port_fixture, tcp_server):
    up = tcp_server(echo)
    port = free_port_fixture
    p = pillion(config(port, "          stat_prefix: echo\n          cluster: up\n",
                       cluster("up", up.port)))
    s = connect(port)
    for i in range(20):
        msg = f"message {i} ".encode() * (i + 1)
        s.sendall(msg)
        got = b""
        s.settimeout(5)
        while len(got) < len(msg):
            got += s.recv(65536)
        assert got == msg
    s.shutdown(socket.SHUT_WR)
    assert recv_all(s) == b""
    s.close()
    assert wait_for(lambda: stats(p).get("cluster.up.upstream_cx_active") == 0)
    st = stats(p)
    sent = sum(len(f"message {i} ".encode() * (i + 1)) for i in range(20))
    assert st["tcp.echo.downstream_cx_total"] == 1
    assert st["tcp.echo.downstream_cx_rx_bytes_total"] == sent
    assert st["tcp.echo.downstream_cx_tx_bytes_total"] == sent
    assert st["cluster.up.upstream_cx_total"] == 1
    assert st["cluster.up.upstream_cx_rx_bytes_total"] == sent
    assert st["cluster.up.upstream_cx_tx_bytes_total"] == sent
    assert st["cluster.up.upstream_cx_connect_fail"] == 0


@pytest.fixture
def free_port_fixture():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_half_close_client_still_gets_reply(pillion, free_port_fixture, tcp_server):
    up = tcp_server(reply_after_eof)
    port = free_port_fixture
    pillion(config(port, "          stat_prefix: hc\n          cluster: up\n",
                   cluster("up", up.port)))
    s = connect(port)
    s.sendall(b"hello ")
    time.sleep(0.05)
    s.sendall(b"world")
    s.shutdown(socket.SHUT_WR)
    assert recv_all(s) == b"GOT:HELLO WORLD"
    s.close()


def watch_rss(pid, stop, peak):
    while not stop.is_set():
        peak[0] = max(peak[0], rss_kb(pid))
        time.sleep(0.05)


def test_200mb_upload_to_slow_reader_keeps_memory_bounded(pillion, free_port_fixture, tcp_server):
    up = tcp_server(slow_sink)
    port = free_port_fixture
    p = pillion(config(port, "          stat_prefix: big\n          cluster: up\n",
                       cluster("up", up.port)))
    pid = p.proc.pid
    limit_kb = (512 if sanitized(pid) else 64) * 1024
    stop, peak = threading.Event(), [0]
    w = threading.Thread(target=watch_rss, args=(pid, stop, peak), daemon=True)
    w.start()
    total = 200 * MB
    chunk = bytes(range(256)) * 1024  # 256 KiB
    h = hashlib.sha256()
    s = connect(port)
    s.settimeout(120)
    sent = 0
    t0 = time.monotonic()
    while sent < total:
        s.sendall(chunk)
        h.update(chunk)
        sent += len(chunk)
    s.shutdown(socket.SHUT_WR)
    reply = recv_all(s, timeout=120).decode()
    stop.set()
    w.join()
    s.close()
    assert reply == f"{total} {h.hexdigest()}"
    print(f"peak RSS {peak[0]} kB")
    assert peak[0] < limit_kb, f"proxy RSS peaked at {peak[0]} kB"
    assert time.monotonic() - t0 < 120
    st = stats(p)
    assert st["tcp.big.downstream_cx_rx_bytes_total"] == total


def test_200mb_download_by_slow_client_keeps_memory_bounded(pillion, free_port_fixture,
                                                            tcp_server):
    total = 200 * MB

    def source(c):
        chunk = b"z" * (256 * 1024)
        for _ in range(total // len(chunk)):
            c.sendall(chunk)
        c.shutdown(socket.SHUT_WR)
        c.recv(16)

    up = tcp_server(source)
    port = free_port_fixture
    p = pillion(config(port, "          stat_prefix: down\n          cluster: up\n",
                       cluster("up", up.port)))
    pid = p.proc.pid
    limit_kb = (512 if sanitized(pid) else 64) * 1024
    stop, peak = threading.Event(), [0]
    w = threading.Thread(target=watch_rss, args=(pid, stop, peak), daemon=True)
    w.start()
    s = connect(port)
    s.settimeout(60)
    got = 0
    while True:
        d = s.recv(256 * 1024)
        if not d:
            break
        got += len(d)
        time.sleep(0.0005)
    stop.set()
    w.join()
    s.close()
    assert got == total
    print(f"peak RSS {peak[0]} kB")
    assert peak[0] < limit_kb, f"proxy RSS peaked at {peak[0]} kB"
    assert stats(p)["tcp.down.downstream_cx_tx_bytes_total"] == total


def test_upstream_refused_closes_downstream_and_counts(pillion, free_port_fixture):
    with socket.socket() as tmp:
        tmp.bind(("127.0.0.1", 0))
        dead = tmp.getsockname()[1]  # nothing listens there once closed
    port = free_port_fixture
    p = pillion(config(port, "          stat_prefix: dead\n          cluster: dead\n"
                       "          max_connect_attempts: 3\n",
                       cluster("dead", dead)))
    t0 = time.monotonic()
    s = connect(port)
    s.sendall(b"anyone?")
    try:
        assert recv_all(s, timeout=5) == b""
    except ConnectionResetError:
        pass
    s.close()
    assert time.monotonic() - t0 < 2, "downstream must be closed promptly"
    assert wait_for(lambda: stats(p).get("cluster.dead.upstream_cx_connect_fail") == 3)
    st = stats(p)
    assert st["cluster.dead.upstream_cx_total"] == 3
    assert st["cluster.dead.upstream_cx_active"] == 0
    assert st["tcp.dead.downstream_cx_total"] == 1


def test_idle_timeout_closes(pillion, free_port_fixture, tcp_server):
    up = tcp_server(echo)
    port = free_port_fixture
    p = pillion(config(port, "          stat_prefix: idle\n          cluster: up\n"
                       "          idle_timeout: 0.5s\n",
                       cluster("up", up.port)))
    s = connect(port)
    s.sendall(b"ping")
    s.settimeout(5)
    assert s.recv(16) == b"ping"
    t0 = time.monotonic()
    assert recv_all(s, timeout=5) == b""
    elapsed = time.monotonic() - t0
    s.close()
    assert 0.4 < elapsed < 2.5, elapsed
    assert wait_for(lambda: stats(p).get("tcp.idle.idle_timeout") == 1)


def test_idle_timeout_zero_disables(pillion, free_port_fixture, tcp_server):
    up = tcp_server(echo)
    port = free_port_fixture
    pillion(config(port, "          stat_prefix: noidle\n          cluster: up\n"
                   "          idle_timeout: 0s\n",
                   cluster("up", up.port)))
    s = connect(port)
    s.settimeout(1.0)
    with pytest.raises(socket.timeout):
        s.recv(16)
    s.sendall(b"still here")
    s.settimeout(5)
    assert s.recv(16) == b"still here"
    s.close()


def test_weighted_clusters_spread(pillion, free_port_fixture, tcp_server):
    a = tcp_server(named("A"))
    b = tcp_server(named("B"))
    port = free_port_fixture
    p = pillion(config(port,
                       "          stat_prefix: w\n"
                       "          weighted_clusters:\n"
                       "            clusters:\n"
                       "            - {name: a, weight: 1}\n"
                       "            - {name: b, weight: 3}\n",
                       cluster("a", a.port) + cluster("b", b.port)))
    seen = {"A": 0, "B": 0}
    n = 200
    for _ in range(n):
        s = connect(port)
        got = recv_all(s, timeout=5).decode()
        s.close()
        seen[got] += 1
    assert seen["A"] + seen["B"] == n
    assert 20 <= seen["A"] <= 85, seen  # expected 50
    st = stats(p)
    assert st["cluster.a.upstream_cx_total"] == seen["A"]
    assert st["cluster.b.upstream_cx_total"] == seen["B"]


def test_many_concurrent_connections(pillion, free_port_fixture, tcp_server):
    up = tcp_server(echo)
    port = free_port_fixture
    p = pillion(config(port, "          stat_prefix: many\n          cluster: up\n",
                       cluster("up", up.port)))
    socks = [connect(port) for _ in range(50)]
    for i, s in enumerate(socks):
        s.sendall(f"conn {i}".encode())
    for i, s in enumerate(socks):
        s.settimeout(5)
        want = f"conn {i}".encode()
        got = b""
        while len(got) < len(want):
            got += s.recv(64)
        assert got == want
    for s in socks:
        s.close()
    assert wait_for(lambda: stats(p).get("cluster.up.upstream_cx_active") == 0)
    assert stats(p)["tcp.many.downstream_cx_total"] == 50


def two_endpoints(name, port_a, port_b):
    return f"""
  - name: {name}
    connect_timeout: 1s
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port_a}}}}}}}
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port_b}}}}}}}
"""


def test_round_robin_over_endpoints(pillion, free_port_fixture, tcp_server):
    a = tcp_server(named("A"))
    b = tcp_server(named("B"))
    port = free_port_fixture
    pillion(config(port, "          stat_prefix: rr\n          cluster: ab\n",
                   two_endpoints("ab", a.port, b.port)))
    seen = {"A": 0, "B": 0}
    for _ in range(40):
        s = connect(port)
        seen[recv_all(s, timeout=5).decode()] += 1
        s.close()
    assert seen["A"] >= 10 and seen["B"] >= 10, seen


def test_connect_retry_reaches_another_host(pillion, free_port_fixture, tcp_server):
    with socket.socket() as tmp:
        tmp.bind(("127.0.0.1", 0))
        dead = tmp.getsockname()[1]
    alive = tcp_server(named("ALIVE"))
    port = free_port_fixture
    p = pillion(config(port, "          stat_prefix: retry\n          cluster: mixed\n"
                       "          max_connect_attempts: 2\n",
                       two_endpoints("mixed", dead, alive.port)))
    for _ in range(20):
        s = connect(port)
        assert recv_all(s, timeout=5) == b"ALIVE"
        s.close()
    st = stats(p)
    assert st["cluster.mixed.upstream_cx_connect_fail"] >= 1
    assert st["cluster.mixed.upstream_cx_total"] == 20 + st["cluster.mixed.upstream_cx_connect_fail"]
