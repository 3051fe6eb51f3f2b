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


def make_cert(d):
    """Self-signed P-256 certificate for localhost; returns (cert, key, combined pem)."""
    cert, key, pem = f"{d}/cert.pem", f"{d}/key.pem", f"{d}/combined.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days",
                    "30", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True, timeout=30)
    with open(pem, "w") as out:
        for p in (cert, key):
            with open(p) as f:
                out.write(f.read())
    return cert, key, pem


class Target:
    """One thing the clients talk to: the direct upstream (pid None) or a proxy."""

    def __init__(self, name, h1, h2c, tls, grpc, proc=None):
        self.name, self.h1, self.h2c, self.tls, self.grpc = name, h1, h2c, tls, grpc
        self.proc = proc

    @property
    def pid(self):
        return self.proc.pid if self.proc else None


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
    cert, key, pem = make_cert(d)
    up_h1, up_h2c, up_tls, up_grpc = procs.free_ports(4)
    values = {"DIR": d, "CERT": cert, "KEY": key, "PEM": pem, "UP_H1": up_h1, "UP_H2C": up_h2c,
              "UP_TLS": up_tls, "UP_GRPC": up_grpc}
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
    h1, h2c, tls, grpc = procs.free_ports(4)
    v = dict(values, H1=h1, H2C=h2c, TLS=tls, GRPC=grpc)
    cfg = render(CONF_FILE[name], f"{d}/{CONF_FILE[name]}", v)
    p = P.start(name, proxy_cmd(name, cfg, d, pillion), f"{d}/{name}.log")
    wait_ok(h1, p)
    return Target(name, h1, h2c, tls, grpc, p)


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
