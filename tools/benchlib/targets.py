"""The upstream and the proxies under test: configs rendered from tools/benchlib/conf, started
with one worker each, and the versions of everything involved."""
import os
import platform
import re
import shutil
import subprocess
import time

from . import procs

CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conf")
PROXIES = ["pillion", "nginx", "haproxy", "nghttpx"]
TOOLS = {  # command -> Debian package
    "nginx": "nginx", "haproxy": "haproxy", "nghttpx": "nghttp2-proxy",
    "h2load": "nghttp2-client", "nghttpd": "nghttp2-server", "wrk": "wrk", "gnuplot": "gnuplot-nox", "openssl": "openssl",
}


def which(cmd):
    return shutil.which(cmd) or next(
        (p for p in (f"/usr/sbin/{cmd}", f"/sbin/{cmd}") if os.access(p, os.X_OK)), None)


def missing_tools():
    return [(c, pkg) for c, pkg in TOOLS.items() if not which(c)]


def render(name, dest, values):
    """Copies conf/<name> to dest with every @@KEY@@ replaced; fails on a leftover placeholder."""
    with open(os.path.join(CONF, name)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace(f"@@{k}@@", str(v))
    left = re.findall(r"@@\w+@@", text)
    if left:
        raise RuntimeError(f"{name}: unfilled placeholders {sorted(set(left))}")
    with open(dest, "w") as f:
        f.write(text)
    return dest


def _openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


def make_cert(d):
    """A bench CA (P-256) and two certificates it signs: the proxies' server certificate
    (localhost, spiffe://bench.local/ns/bench/sa/server) and a client certificate
    (spiffe://bench.local/ns/bench/sa/client) for mTLS. Returns a dict of paths: CERT, KEY, PEM
    (cert + key), CA, CLIENT_CERT, CLIENT_KEY."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem", "-days", "30",
             "-subj", "/O=bench/CN=bench CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    paths = {"CA": f"{d}/ca.pem"}
    for who, san, eku in (("server", "DNS:localhost,URI:spiffe://bench.local/ns/bench/sa/server",
                           "serverAuth"),
                          ("client", "URI:spiffe://bench.local/ns/bench/sa/client", "clientAuth")):
        with open(f"{d}/{who}.ext", "w") as f:
            f.write(f"subjectAltName={san}\nextendedKeyUsage={eku}\n"
                    "basicConstraints=critical,CA:FALSE\n")
        _openssl("req", *ec, "-keyout", f"{d}/{who}.key", "-out", f"{d}/{who}.csr", "-subj",
                 f"/O=bench/CN={who}")
        _openssl("x509", "-req", "-in", f"{d}/{who}.csr", "-CA", f"{d}/ca.pem", "-CAkey",
                 f"{d}/ca.key", "-CAcreateserial", "-days", "30", "-extfile", f"{d}/{who}.ext",
                 "-out", f"{d}/{who}.pem")
    paths.update(CERT=f"{d}/server.pem", KEY=f"{d}/server.key", PEM=f"{d}/combined.pem",
                 CLIENT_CERT=f"{d}/client.pem", CLIENT_KEY=f"{d}/client.key")
    with open(paths["PEM"], "w") as out:
        for p in (paths["CERT"], paths["KEY"]):
            with open(p) as f:
                out.write(f.read())
    return paths


class Target:
    """One thing the clients talk to: the direct upstream (pid None) or a proxy."""

    def __init__(self, name, h1, h2c, tls, grpc, proc=None, mtls=None, mtls_proc=None):
        self.name, self.h1, self.h2c, self.tls, self.grpc = name, h1, h2c, tls, grpc
        self.proc = proc
        # the listener that requires a client certificate (None for the direct baseline); a
        # proxy that can only require client certificates process-wide (nghttpx) serves it
        # from a second process, mtls_proc, whose CPU is what the mTLS tests measure
        self.mtls, self.mtls_proc = mtls, mtls_proc
        self.origin = None  # port of the client-certificate origin in front of mtls, if started

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def pid_for(self, key):
        """The process whose CPU a test measures."""
        if key.startswith("mtls") and self.mtls_proc:
            return self.mtls_proc.pid
        return self.pid


def proxy_cmd(name, cfg, d, pillion, admin_file=None):
    if name == "pillion":
        return [pillion, "--config-path", cfg, "--concurrency", "1", "--log-level", "warning",
                "--admin-address-path", admin_file or f"{d}/pillion-admin"]
    if name == "nginx":
        return [which("nginx"), "-p", d, "-e", f"{d}/nginx-early.log", "-c", cfg]
    if name == "haproxy":
        return [which("haproxy"), "-db", "-f", cfg]
    if name == "nghttpx":
        return [which("nghttpx"), f"--conf={cfg}"]
    raise ValueError(name)


# gRPC length-prefixed message: not compressed, length 10, protobuf field 1 = "pillion!".
GRPC_MESSAGE = b"\x00\x00\x00\x00\x0a\x0a\x08pillion!"

CONF_FILE = {"pillion": "proxy-pillion.yaml", "nginx": "proxy-nginx.conf",
             "haproxy": "proxy-haproxy.cfg", "nghttpx": "proxy-nghttpx.conf"}
# nghttpx's verify-client is process-wide: its mTLS listener runs in a second process
MTLS_CONF_FILE = {"nghttpx": "proxy-nghttpx-mtls.conf"}


def wait_ok(port, proc, timeout=10):
    """Waits until GET / through port answers 200 (the proxy reaches the upstream)."""
    procs.wait_port(port, timeout, proc)
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            status, _ = procs.http_get(port)
            if status == 200:
                return
            last = status
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise RuntimeError(f"{proc.bench_name}: GET / never answered 200 (last: {last})")


def start_all(P, d, pillion, proxies):
    """Starts the upstream nginx and every proxy; returns ({name: Target}, values)."""
    up_h1, up_h2c, up_tls, up_grpc = procs.free_ports(4)
    values = dict(make_cert(d), DIR=d, UP_H1=up_h1, UP_H2C=up_h2c, UP_TLS=up_tls,
                  UP_GRPC=up_grpc)
    cfg = render("upstream-nginx.conf", f"{d}/upstream-nginx.conf", values)
    up = P.start("upstream", [which("nginx"), "-p", d, "-e", f"{d}/upstream-early.log", "-c", cfg],
                 f"{d}/upstream.log")
    wait_ok(up_h1, up)
    # gRPC upstream: nghttpd (HTTP/2, one thread) answers every POST to /bench.Svc/Unary with a
    # 15-byte gRPC message and the trailer grpc-status: 0.
    os.makedirs(f"{d}/grpc/bench.Svc", exist_ok=True)
    with open(f"{d}/grpc/bench.Svc/Unary", "wb") as f:
        f.write(GRPC_MESSAGE)
    with open(f"{d}/grpc-request.bin", "wb") as f:
        f.write(GRPC_MESSAGE)
    g = P.start("grpc-upstream", [which("nghttpd"), "--no-tls", "-d", f"{d}/grpc", "--trailer",
                                  "grpc-status: 0", str(up_grpc)], f"{d}/grpc-upstream.log")
    procs.wait_port(up_grpc, 10, g)
    targets = {"direct": Target("direct", up_h1, up_h2c, up_tls, up_grpc)}
    for name in proxies:
        targets[name] = start_proxy(P, name, d, pillion, values)
    return targets, values


def start_proxy(P, name, d, pillion, values):
    """Starts one proxy from its committed config on fresh ports; returns its Target once GET /
    through it answers 200."""
    h1, h2c, tls, grpc, mtls = procs.free_ports(5)
    v = dict(values, H1=h1, H2C=h2c, TLS=tls, GRPC=grpc, MTLS=mtls)
    cfg = render(CONF_FILE[name], f"{d}/{CONF_FILE[name]}", v)
    p = P.start(name, proxy_cmd(name, cfg, d, pillion), f"{d}/{name}.log")
    wait_ok(h1, p)
    mp = None
    if name in MTLS_CONF_FILE:
        mcfg = render(MTLS_CONF_FILE[name], f"{d}/{MTLS_CONF_FILE[name]}", v)
        mp = P.start(f"{name}-mtls", proxy_cmd(name, mcfg, d, pillion), f"{d}/{name}-mtls.log")
    procs.wait_port(mtls, 10, mp or p)
    return Target(name, h1, h2c, tls, grpc, p, mtls, mp)


def start_origin(P, d, t, values):
    """Starts the client side of the mTLS tests for target t: nghttpx (one worker) taking h2c
    and HTTP/1.1 from the load clients on a plaintext port and sending HTTP/2 over TLS with the
    bench client certificate to t.mtls (wrk and h2load cannot present one). Sets t.origin."""
    port = procs.free_ports(1)[0]
    v = dict(values, ORIGIN=port, MTLS=t.mtls, NAME=t.name)
    cfg = render("origin-nghttpx.conf", f"{d}/origin-{t.name}.conf", v)
    p = P.start(f"origin-{t.name}", [which("nghttpx"), f"--conf={cfg}"],
                f"{d}/origin-{t.name}.log")
    wait_ok(port, p)
    t.origin = port
    return p


def _version(cmd, pattern=r"(\S+)$"):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    line = (r.stdout + r.stderr).strip().splitlines()
    return line[0].strip() if line else None


def machine_and_versions(pillion):
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    mem = None
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    try:
        virt = subprocess.run(["systemd-detect-virt"], capture_output=True, text=True,
                              timeout=5).stdout.strip() or None
    except OSError:
        virt = None
    machine = {"cpu": cpu, "cores": os.cpu_count(), "mem_mb": mem,
               "kernel": platform.release(), "virtualization": virt,
               "os": _os_name()}
    versions = {
        "pillion": _version([pillion, "--version"]),
        "nginx": _version([which("nginx"), "-v"]),
        "haproxy": _version([which("haproxy"), "-v"]),
        "nghttpx": _version([which("nghttpx"), "--version"]),
        "h2load": _version(["h2load", "--version"]),
        "wrk": _version(["wrk", "-v"]),
        "openssl": _version(["openssl", "version"]),
    }
    return machine, versions


def _os_name():
    try:
        with open("/etc/os-release") as f:
            m = re.search(r'PRETTY_NAME="(.*)"', f.read())
            return m.group(1) if m else None
    except OSError:
        return None
