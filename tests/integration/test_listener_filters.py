"""Listener filters end to end: tls_inspector (filter chains picked by SNI, by transport protocol
"tls" vs "raw_buffer" on one port, by the client's ALPN list; a ClientHello arriving in pieces;
listener_filters_timeout) and original_dst (direct connections; an iptables REDIRECT in a network
namespace of the test's own, to an ORIGINAL_DST cluster). Certificates are made with the openssl
CLI for the module; upstreams are TCP servers that say their name, then echo."""
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid

import pytest

from conftest import PILLION, free_port, stats
from http_helpers import wait_port

CERT_SCRIPT = r"""
set -e
cd "$1"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
  -out ca.crt -subj /CN=ca -days 30 -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign
for n in a b; do
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $n.key -out $n.csr \
    -subj /CN=$n.test
  printf 'subjectAltName=DNS:%s.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
    $n > $n.ext
  openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -days 30 -extfile $n.ext -out $n.crt
done
"""


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("lf-certs")
    script = d / "gen.sh"
    script.write_text(CERT_SCRIPT)
    subprocess.run(["sh", str(script), str(d)], check=True, capture_output=True, timeout=60)
    return d


def named_echo(name):
    """A handler for TcpServer: sends '<name>:' and then echoes what it reads."""
    def handler(c):
        c.sendall(f"{name}:".encode())
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
    return handler


@pytest.fixture
def echo(tcp_server):
    """Factory: echo(name) starts a TCP server that answers '<name>:' and then echoes."""
    return lambda name: tcp_server(named_echo(name))


def tls_context(certs, name):
    return f"""
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates:
            - certificate_chain: {{filename: {certs}/{name}.crt}}
              private_key: {{filename: {certs}/{name}.key}}"""


def chain(cluster, match=None, tls=""):
    m = f"\n      filter_chain_match: {match}" if match else ""
    return f"""
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: {cluster}
          cluster: {cluster}{m}{tls}"""


def static_cluster(name, port):
    return f"""
  - name: {name}
    connect_timeout: 1s
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}"""


TLS_INSPECTOR = """
    - name: envoy.filters.listener.tls_inspector
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"""

ORIGINAL_DST = """
    - name: envoy.filters.listener.original_dst
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst"""


def config(port, chains, clusters, listener_filters=TLS_INSPECTOR, extra=""):
    lf = f"\n    listener_filters:{listener_filters}" if listener_filters else ""
    return f"""
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
static_resources:
  listeners:
  - name: lf
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}{lf}{extra}
    filter_chains:{''.join(chains)}
  clusters:{''.join(clusters)}
"""


def wait_for(pred, timeout=5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def recv_exactly(s, n, timeout=5):
    s.settimeout(timeout)
    out = b""
    while len(out) < n:
        d = s.recv(n - len(out))
        if not d:
            break
        out += d
    return out


def tls_client(certs, port, sni, alpn=None):
    """Connects with TLS (verifying the certificate against sni); returns the ssl socket."""
    ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    if alpn:
        ctx.set_alpn_protocols(alpn)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname=sni)


def tls_exchange(certs, port, sni, alpn=None):
    """Returns (greeting, echo, peer certificate CN) over one TLS connection."""
    with tls_client(certs, port, sni, alpn) as s:
        cn = dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
        greeting = recv_exactly(s, 2)
        s.sendall(b"ping")
        return greeting, recv_exactly(s, 4), cn


def test_sni_selects_chain_and_certificate(pillion, echo, certs):
    a, b = echo("A"), echo("B")
    port = free_port()
    p = pillion(config(port, [
        chain("ca", "{server_names: [a.test]}", tls_context(certs, "a")),
        chain("cb", "{server_names: [b.test]}", tls_context(certs, "b")),
    ], [static_cluster("ca", a.port), static_cluster("cb", b.port)]))
    wait_port(port)
    assert tls_exchange(certs, port, "a.test") == (b"A:", b"ping", "a.test")
    assert tls_exchange(certs, port, "b.test") == (b"B:", b"ping", "b.test")
    # the openssl CLI as a second client
    cli = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername",
                            "b.test", "-CAfile", str(certs / "ca.crt"), "-verify_return_error",
                            "-quiet"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL)
    killer = threading.Timer(10, cli.kill)
    killer.start()
    try:
        assert cli.stdout.read(2) == b"B:"
    finally:
        cli.kill()
        cli.wait()
        killer.cancel()
    # no chain for another name: closed without a handshake
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        tls_exchange(certs, port, "c.test")
    st = stats(p)
    assert st["tls_inspector.tls_found"] == 4
    assert st["tls_inspector.sni_found"] == 4
    assert st[f"listener.127.0.0.1_{port}.no_filter_chain_match"] == 1


def test_raw_and_tls_on_one_port(pillion, echo, certs):
    t, r = echo("T"), echo("R")
    port = free_port()
    p = pillion(config(port, [
        chain("ct", "{transport_protocol: tls}", tls_context(certs, "a")),
        chain("cr", "{transport_protocol: raw_buffer}"),
    ], [static_cluster("ct", t.port), static_cluster("cr", r.port)]))
    wait_port(port)
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"plain")  # a client-first protocol: the inspector sees non-TLS bytes
            assert recv_exactly(s, 7) == b"R:plain"
        assert tls_exchange(certs, port, "a.test")[:2] == (b"T:", b"ping")
    # HTTP over the plain chain too (curl speaks first)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert recv_exactly(s, 5) == b"R:GET"
    st = stats(p)
    assert st["tls_inspector.tls_found"] == 3
    assert st["tls_inspector.tls_not_found"] == 4
    assert wait_for(lambda: stats(p)[f"listener.127.0.0.1_{port}.downstream_pre_cx_active"] == 0)


def test_application_protocols(pillion, echo, certs):
    h2, other = echo("H2"), echo("XX")
    port = free_port()
    p = pillion(config(port, [
        chain("ch2", "{transport_protocol: tls, application_protocols: [h2]}",
              tls_context(certs, "a")),
        chain("cother", "{transport_protocol: tls}", tls_context(certs, "a")),
    ], [static_cluster("ch2", h2.port), static_cluster("cother", other.port)]))
    wait_port(port)
    # any offered protocol that a chain names picks it
    assert tls_exchange(certs, port, "a.test", ["http/1.1", "h2"])[0] == b"H2"
    assert tls_exchange(certs, port, "a.test", ["http/1.1"])[0] == b"XX"
    assert tls_exchange(certs, port, "a.test")[0] == b"XX"
    st = stats(p)
    assert st["tls_inspector.alpn_found"] == 2
    assert st["tls_inspector.alpn_not_found"] == 1


def client_hello(sni):
    """The ClientHello bytes a Python client would send, and the objects to finish with."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read(), obj, inc, out


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_client_hello_in_pieces_without_spinning(pillion, echo, certs):
    a, b = echo("A"), echo("B")
    port = free_port()
    p = pillion(config(port, [
        chain("ca", "{server_names: [a.test]}", tls_context(certs, "a")),
        chain("cb", "{server_names: [b.test]}", tls_context(certs, "b")),
    ], [static_cluster("ca", a.port), static_cluster("cb", b.port)]))
    wait_port(port)
    hello, obj, inc, out = client_hello("b.test")
    assert len(hello) > 40
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(hello[:3])  # not even a record header
    time.sleep(0.2)
    s.sendall(hello[3:20])
    before = cpu_seconds(p.proc.pid)
    time.sleep(1.0)  # a partial ClientHello waits without waking the loop
    spent = cpu_seconds(p.proc.pid) - before
    assert spent < 0.3, f"pillion used {spent:.2f}s of CPU while a ClientHello was partial"
    assert stats(p)[f"listener.127.0.0.1_{port}.downstream_pre_cx_active"] == 1
    s.sendall(hello[20:])
    # finish the handshake through the memory BIOs
    s.settimeout(5)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            if out.pending:
                s.sendall(out.read())
            d = s.recv(65536)
            assert d, "closed during the handshake"
            inc.write(d)
    if out.pending:
        s.sendall(out.read())
    got = b""
    while len(got) < 2 and time.monotonic() < deadline:
        try:
            got += obj.read(2 - len(got))
        except ssl.SSLWantReadError:
            if out.pending:
                s.sendall(out.read())
            inc.write(s.recv(65536))
    assert got == b"B:"
    s.close()
    assert stats(p)["tls_inspector.sni_found"] == 1
    # still waiting when pillion stops: closed with the worker, nothing leaks (ASan builds)
    p.idle = socket.create_connection(("127.0.0.1", port), timeout=5)
    p.idle.sendall(hello[:5])
    assert wait_for(lambda: stats(p)[f"listener.127.0.0.1_{port}.downstream_pre_cx_active"] == 1)


def test_peer_closes_during_inspection(pillion, echo, certs):
    a = echo("A")
    port = free_port()
    p = pillion(config(port, [chain("ca", "{transport_protocol: tls}", tls_context(certs, "a"))],
                       [static_cluster("ca", a.port)]))
    wait_port(port)
    hello = client_hello("a.test")[0]
    key = f"listener.127.0.0.1_{port}.downstream_listener_filter_remote_close"
    active = f"listener.127.0.0.1_{port}.downstream_pre_cx_active"
    assert wait_for(lambda: stats(p).get(key) == 1 and stats(p)[active] == 0)  # wait_port's probe
    for cut in (0, 10):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if cut:
            s.sendall(hello[:cut])
        time.sleep(0.1)
        s.shutdown(socket.SHUT_WR)  # FIN after a partial hello: no more bytes will come
        s.settimeout(5)
        try:
            assert s.recv(10) == b""
        except ConnectionResetError:
            pass  # closed with the peeked bytes unread: the kernel resets
        s.close()
    assert wait_for(lambda: stats(p).get(key) == 3), stats(p)
    assert stats(p)[active] == 0
    assert a.accepted == 0


def test_listener_filters_timeout(pillion, echo):
    r = echo("R")
    port, port2 = free_port(), free_port()
    p = pillion(config(port, [chain("cr", "{transport_protocol: raw_buffer}")],
                       [static_cluster("cr", r.port)],
                       extra="\n    listener_filters_timeout: 0.3s"))
    wait_port(port)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    start = time.monotonic()
    assert s.recv(10) == b""  # closed: a server-first client never gets through
    took = time.monotonic() - start
    assert 0.2 < took < 3, took
    s.close()
    assert stats(p)[f"listener.127.0.0.1_{port}.downstream_pre_cx_timeout"] == 1
    assert r.accepted == 0
    # continue_on_listener_filters_timeout: a server-first protocol works after the timeout
    p2 = pillion(config(port2, [chain("cr", "{transport_protocol: raw_buffer}")],
                        [static_cluster("cr", r.port)],
                        extra="\n    listener_filters_timeout: 0.3s"
                              "\n    continue_on_listener_filters_timeout: true"), name="p2")
    wait_port(port2)
    with socket.create_connection(("127.0.0.1", port2), timeout=5) as s:
        assert recv_exactly(s, 2) == b"R:"
        s.sendall(b"hi")
        assert recv_exactly(s, 2) == b"hi"
    assert stats(p2)[f"listener.127.0.0.1_{port2}.downstream_pre_cx_timeout"] == 1


def test_tls_inspector_injected_when_chains_need_it(pillion, echo, certs):
    a, r = echo("A"), echo("R")
    port = free_port()
    p = pillion(config(port, [
        chain("ca", "{server_names: [a.test]}", tls_context(certs, "a")),
        chain("cr"),
    ], [static_cluster("ca", a.port), static_cluster("cr", r.port)], listener_filters=""))
    wait_port(port)
    assert tls_exchange(certs, port, "a.test")[0] == b"A:"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"x")
        assert recv_exactly(s, 3) == b"R:x"
    assert "require TLS Inspector" in p.output()


def validate(tmp_path, text):
    path = tmp_path / "check.yaml"
    path.write_text(text)
    r = subprocess.run([PILLION, "--mode", "validate", "--config-path", str(path)],
                       capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


def test_unsupported_listener_filter_is_rejected(tmp_path):
    def cfg(filters, extra=""):
        return config(free_port(), [chain("c")], [static_cluster("c", 1)],
                      listener_filters=filters, extra=extra)

    rc, text = validate(tmp_path, cfg("""
    - name: envoy.filters.listener.http_inspector
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"""))
    assert rc != 0 and "http_inspector" in text, text
    # by name without typed_config: only the built-in ones (ListenerFilter has no is_optional)
    rc, text = validate(tmp_path, cfg("""
    - name: envoy.filters.listener.proxy_protocol"""))
    assert rc != 0 and "envoy.filters.listener.proxy_protocol" in text, text
    rc, text = validate(tmp_path, cfg(TLS_INSPECTOR + "\n        enable_ja3_fingerprinting: true"))
    assert rc != 0 and "enable_ja3_fingerprinting" in text, text
    rc, text = validate(tmp_path, cfg(TLS_INSPECTOR + "\n        initial_read_buffer_size: 100"))
    assert rc != 0 and "initial_read_buffer_size" in text, text
    rc, text = validate(tmp_path, cfg(TLS_INSPECTOR + """
    - name: envoy.filters.listener.original_dst
      filter_disabled: {any_match: true}"""))
    assert rc != 0 and "filter_disabled" in text, text
    rc, text = validate(tmp_path, cfg(
        TLS_INSPECTOR + "\n        initial_read_buffer_size: 4096" + ORIGINAL_DST +
        "\n    - name: envoy.filters.listener.tls_inspector",
        extra="\n    listener_filters_timeout: 2s\n    continue_on_listener_filters_timeout: true"))
    assert rc == 0, text


ORIGINAL_DST_CLUSTER = """
  - name: passthrough
    type: ORIGINAL_DST
    lb_policy: CLUSTER_PROVIDED
    connect_timeout: 1s"""


def test_original_dst_without_redirect(pillion, echo):
    """No REDIRECT: the original destination is the listener itself, chain selection by
    destination port still works (a static cluster, as connecting back would loop)."""
    r = echo("R")
    port = free_port()
    p = pillion(config(port, [chain("cr", f"{{destination_port: {port}}}")],
                       [static_cluster("cr", r.port)], listener_filters=ORIGINAL_DST))
    wait_port(port)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        assert recv_exactly(s, 2) == b"R:"
        s.sendall(b"ok")
        assert recv_exactly(s, 2) == b"ok"
    assert stats(p)[f"listener.127.0.0.1_{port}.downstream_pre_cx_active"] == 0


NETNS_CLIENT = r"""
import json, socket, sys, time, urllib.request
port, admin_path = int(sys.argv[1]), sys.argv[2]
out = {}
for i in range(2):
    s = socket.socket()
    s.bind(("127.0.0.5", 0))  # only this source is redirected: pillion's own connects are not
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    got = b""
    while len(got) < 2:
        d = s.recv(2 - len(got))
        if not d:
            break
        got += d
    s.sendall(b"ping")
    echo = b""
    while len(echo) < 4:
        d = s.recv(4 - len(echo))
        if not d:
            break
        echo += d
    out[f"conn{i}"] = (got + echo).decode()
    s.close()
host, _, aport = open(admin_path).read().strip().rpartition(":")
body = urllib.request.urlopen(f"http://127.0.0.1:{aport}/stats", timeout=5).read().decode()
out["stats"] = {k: v for k, _, v in (l.partition(": ") for l in body.splitlines())}
print(json.dumps(out))
"""

NETNS_ECHO = r"""
import socket, sys, threading
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1])))
srv.listen(16)
print("ready", flush=True)
def serve(c):
    c.sendall(b"E:")
    while True:
        d = c.recv(4096)
        if not d:
            break
        c.sendall(d)
    c.close()
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, **kw)


@pytest.fixture
def netns():
    if os.geteuid() != 0:
        pytest.skip("needs root for a network namespace and iptables")
    if not shutil.which("ip") or not shutil.which("iptables"):
        pytest.skip("needs the ip and iptables commands (Debian packages iproute2, iptables)")
    name = f"pltest-{uuid.uuid4().hex[:8]}"
    if run(["ip", "netns", "add", name]).returncode != 0:
        pytest.skip("cannot create a network namespace here")
    try:
        run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"])
        run(["ip", "netns", "exec", name, "ip", "addr", "add", "127.0.0.5/8", "dev", "lo"])
        yield name
    finally:
        run(["ip", "netns", "del", name])


def test_original_dst_redirect_in_netns(tmp_path, netns):
    """iptables REDIRECT (as Istio's capture): the client connects to the echo server's port,
    the kernel sends it to pillion, original_dst restores the destination and the ORIGINAL_DST
    cluster connects there."""
    lport, eport = 15001, 18080
    exe = ["ip", "netns", "exec", netns]
    rule = ["iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-s", "127.0.0.5", "--dport",
            str(eport), "-j", "REDIRECT", "--to-ports", str(lport)]
    r = run(exe + rule)
    if r.returncode != 0:
        pytest.skip(f"iptables REDIRECT is not available here: {r.stderr.strip()}")
    cfg = tmp_path / "odst.yaml"
    cfg.write_text(f"""
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
static_resources:
  listeners:
  - name: capture
    address: {{socket_address: {{address: 0.0.0.0, port_value: {lport}}}}}
    listener_filters:{ORIGINAL_DST}
    filter_chains:
    - filter_chain_match: {{destination_port: {eport}}}
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: passthrough
          cluster: passthrough
  clusters:{ORIGINAL_DST_CLUSTER}
""")
    admin_path = tmp_path / "admin-address"
    (tmp_path / "client.py").write_text(NETNS_CLIENT)
    (tmp_path / "echo.py").write_text(NETNS_ECHO)
    echo_p = subprocess.Popen(exe + [sys.executable, str(tmp_path / "echo.py"), str(eport)],
                              stdout=subprocess.PIPE, text=True)
    log = open(tmp_path / "pillion.log", "wb")
    prox = subprocess.Popen(exe + [PILLION, "--config-path", str(cfg), "--admin-address-path",
                                   str(admin_path), "--concurrency", "2"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        assert echo_p.stdout.readline().strip() == "ready"
        assert wait_for(lambda: admin_path.exists() and admin_path.read_text().strip(), 10)
        time.sleep(0.2)
        r = run(exe + [sys.executable, str(tmp_path / "client.py"), str(eport), str(admin_path)])
        out = (tmp_path / "pillion.log").read_text(errors="replace")
        assert r.returncode == 0, r.stderr + out
        import json
        got = json.loads(r.stdout)
        assert got["conn0"] == "E:ping" and got["conn1"] == "E:ping", out
        st = got["stats"]
        assert st.get("cluster.passthrough.upstream_cx_total") == "2", st
        assert st.get(f"listener.0.0.0.0_{lport}.downstream_cx_total") == "2", st
    finally:
        prox.send_signal(2)
        try:
            prox.wait(15)
        except subprocess.TimeoutExpired:
            prox.kill()
            prox.wait()
        echo_p.kill()
        echo_p.wait()
        log.close()
    out = (tmp_path / "pillion.log").read_text(errors="replace")
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        assert marker not in out, out[-4000:]
