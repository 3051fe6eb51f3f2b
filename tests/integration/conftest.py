"""Fixtures for integration tests: real pillion processes and real upstream servers on loopback."""
import glob
import http.client
import http.server
import importlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("PILLION_BUILD") or os.path.join(ROOT, "build")
PILLION = os.path.join(BUILD, "src", "pillion")


# Lines that AddressSanitizer, LeakSanitizer, UBSan and TSan print when they find something.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_EPHEMERAL_LOW = _ephemeral_low()
_handed_out = set()
_rnd = random.Random(os.getpid() ^ time.monotonic_ns())


def free_port():
    """Returns a loopback TCP port that was free a moment ago: below the kernel's ephemeral range
    (so no process's outgoing connection takes it before the server it is meant for binds it)
    and not handed out before by this process (two picks in a row cannot collide)."""
    lo, hi = (10000, _EPHEMERAL_LOW - 1) if _EPHEMERAL_LOW > 11000 else (1024, 65535)
    while True:
        port = _rnd.randint(lo, hi)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port


class Pillion:
    """One pillion process started from a bootstrap text; stopped (and reaped) by the fixture."""

    def __init__(self, tmp_path, config, args=(), fmt="yaml", name="pillion"):
        self.tmp = tmp_path
        self.config_path = tmp_path / f"{name}-bootstrap.{fmt}"
        self.config_path.write_text(config)
        self.addr_path = tmp_path / f"{name}-admin-address"
        self.log_path = tmp_path / f"{name}.log"
        self.args = list(args)
        self.proc = None
        self.admin_addr = None

    def start(self, wait=True):
        if self.addr_path.exists():
            self.addr_path.unlink()
        self.log = open(self.log_path, "wb")
        cmd = [PILLION, "--config-path", str(self.config_path), "--admin-address-path",
               str(self.addr_path), "--concurrency", "2"] + self.args
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_admin()
        return self

    def wait_admin(self, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"pillion exited with {self.proc.returncode}:\n{self.output()}")
            if self.addr_path.exists():
                text = self.addr_path.read_text().strip()
                if text:
                    host, _, port = text.rpartition(":")
                    self.admin_addr = (host.strip("[]"), int(port))
                    return
            time.sleep(0.02)
        raise AssertionError(f"pillion did not write its admin address:\n{self.output()}")

    def output(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def admin(self, path, method="GET", body=None):
        """Makes one admin request; returns (status, headers dict, body text)."""
        c = http.client.HTTPConnection(*self.admin_addr, timeout=10)
        try:
            c.request(method, path, body=body)
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
        finally:
            c.close()

    def admin_json(self, path):
        status, _, body = self.admin(path)
        assert status == 200, body
        return json.loads(body)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"pillion did not exit on {sig!r}:\n{self.output()}")


@pytest.fixture
def pillion(tmp_path):
    """Factory: pillion(config_text, args=[...]) starts a proxy; all are stopped at teardown."""
    started = []

    def make(config, args=(), fmt="yaml", wait=True, name=None):
        p = Pillion(tmp_path, config, args, fmt, name or f"pillion{len(started)}")
        started.append(p)
        return p.start(wait)

    yield make
    problems = []
    for p in started:
        if p.proc and p.proc.poll() is None:
            p.proc.send_signal(signal.SIGINT)  # a clean exit, so sanitizers report leaks
            try:
                p.proc.wait(15)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait()
                problems.append(f"{p.log_path.name}: did not exit on SIGINT")
        if getattr(p, "log", None):
            p.log.close()
        out = p.output()
        for marker in SANITIZER_MARKERS:
            if marker in out:
                problems.append(f"{p.log_path.name}: {marker}\n{out[-4000:]}")
                break
    assert not problems, "\n".join(problems)


def run_pillion(*args, timeout=30):
    """Runs pillion to completion (e.g. --mode validate); returns CompletedProcess with text output."""
    return subprocess.run([PILLION, *args], capture_output=True, text=True, timeout=timeout)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # the head and the body are two writes: no 40 ms stall

    def _reply(self):
        length = int(self.headers.get("content-length") or 0)
        body_in = self.rfile.read(length) if length else b""
        body = json.dumps({"upstream": self.server.name, "method": self.command, "path": self.path,
                           "headers": {k.lower(): v for k, v in self.headers.items()},
                           "body_len": len(body_in)}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header("x-upstream", self.server.name)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _reply

    def log_message(self, *a):
        pass


class _EchoServer(http.server.ThreadingHTTPServer):
    # socketserver's listen backlog is 5: a proxy opening many upstream connections at once
    # (HTTP/1.1 pools under h2 load) would see SYNs dropped and 1 s connect timeouts
    request_queue_size = 128
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client gone mid-answer
            super().handle_error(request, client_address)


class Upstream:
    """A real HTTP/1.1 server on 127.0.0.1 that echoes what it received as JSON."""

    def __init__(self, name):
        self.srv = _EchoServer(("127.0.0.1", 0), _Handler)
        self.srv.name = name
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def upstream():
    """Factory: upstream(name) starts an echo server; all are closed at teardown."""
    made = []

    def make(name="upstream"):
        u = Upstream(name)
        made.append(u)
        return u

    yield make
    for u in made:
        u.close()


# ---------------------------------------------------------------------------------------------
# pillion-cp, the reference control plane

CP = os.path.join(BUILD, "control-plane-stub", "pillion-cp")


def write(path, text):
    """Replaces a file atomically (write elsewhere, rename over), as pillion-cp's README asks."""
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def until(pred, timeout=10, what="condition"):
    """Polls pred (bounded in time) until it returns something truthy; returns that."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except (OSError, AssertionError, http.client.HTTPException) as e:
            last = e
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


class ControlPlane:
    """One pillion-cp process; xds_port may be given so that it can be restarted on the same one."""

    def __init__(self, tmp_path, resources, args=(), xds_port=None):
        self.xds_port, self.status_port = xds_port or free_port(), free_port()
        self.addr = f"127.0.0.1:{self.xds_port}"
        self.log_path = tmp_path / f"cp-{self.xds_port}-{self.status_port}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [CP, "--resources", str(resources), "--xds-address", self.addr,
             "--status-address", f"127.0.0.1:{self.status_port}", "--log-level", "debug",
             *args], stdout=self.log, stderr=subprocess.STDOUT)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"pillion-cp exited {self.proc.returncode}:\n{self.output()}")
            return self.status()
        until(up, 15, "pillion-cp status")

    def output(self):
        return self.log_path.read_text(errors="replace")

    def status(self):
        c = http.client.HTTPConnection("127.0.0.1", self.status_port, timeout=5)
        try:
            c.request("GET", "/status")
            r = c.getresponse()
            body = r.read().decode()
            assert r.status == 200, body
            return json.loads(body)
        finally:
            c.close()

    def node(self, node_id, wait_for=None, timeout=10):
        """The status entry of node_id, optionally waiting until wait_for(entry) is true."""
        def get():
            for n in self.status()["nodes"]:
                if n["id"] == node_id and (wait_for is None or wait_for(n)):
                    return n
            return None
        return until(get, timeout, f"node {node_id} on pillion-cp")

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"pillion-cp did not exit on {sig!r}:\n{self.output()}")
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def cp(tmp_path):
    """Factory: cp(resources, args=(), xds_port=None) starts pillion-cp; all stopped at teardown."""
    started = []

    def make(resources, args=(), xds_port=None):
        c = ControlPlane(tmp_path, resources, args, xds_port)
        started.append(c)
        return c
    yield make
    problems = []
    for c in started:
        if c.proc.poll() is None:
            rc = c.stop(signal.SIGINT)
            if rc != 0:
                problems.append(f"pillion-cp exited {rc}:\n{c.output()[-3000:]}")
        elif not c.log.closed:
            c.log.close()
        out = c.output()
        for m in SANITIZER_MARKERS:
            if m in out:
                problems.append(f"{m}\n{out[-4000:]}")
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    """Our proto/ compiled with protoc --python_out; returns a namespace of the modules used."""
    out = tmp_path_factory.mktemp("pb")
    proto_dir = os.path.join(ROOT, "proto")
    files = sorted(os.path.relpath(p, proto_dir)
                   for p in glob.glob(os.path.join(proto_dir, "**", "*.proto"), recursive=True))
    res = subprocess.run(["protoc", "-I", proto_dir, "-I", "/usr/include",
                          f"--python_out={out}"] + files, capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"protoc --python_out failed: {res.stderr[-2000:]}")
    sys.path.insert(0, str(out))

    class NS:
        pass
    ns = NS()
    for name, mod in (("disc", "envoy.service.discovery.v3.discovery_pb2"),
                      ("cluster", "envoy.config.cluster.v3.cluster_pb2"),
                      ("endpoint", "envoy.config.endpoint.v3.endpoint_pb2"),
                      ("listener", "envoy.config.listener.v3.listener_pb2"),
                      ("route", "envoy.config.route.v3.route_pb2"),
                      ("base", "envoy.config.core.v3.base_pb2"),
                      ("status", "google.rpc.status_pb2")):
        setattr(ns, name, importlib.import_module(mod))
    importlib.import_module(
        "envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2")
    importlib.import_module("envoy.extensions.filters.http.router.v3.router_pb2")
    return ns


# ---------------------------------------------------------------------------------------------
# raw TCP servers and the admin counters

class TcpServer:
    """A threaded TCP server on 127.0.0.1; handler(conn) runs per connection."""

    def __init__(self, handler):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.accepted = 0
        self.stopped = False
        self.sockets = []  # every accepted connection
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.sockets.append(c)
            threading.Thread(target=self._handle, args=(c,), daemon=True).start()

    def _handle(self, c):
        try:
            self.handler(c)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stopped = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def tcp_server():
    made = []

    def make(handler):
        s = TcpServer(handler)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def stats(p):
    """Every integer stat of pillion p's /stats, as {name: value}."""
    _, _, body = p.admin("/stats")
    out = {}
    for line in body.splitlines():
        k, _, v = line.partition(": ")
        if v.strip().lstrip("-").isdigit():
            out[k] = int(v)
    return out
