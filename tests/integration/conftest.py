"""Fixtures for integration tests: real pillion processes and real upstream servers on loopback."""
import http.client
import http.server
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("PILLION_BUILD") or os.path.join(ROOT, "build")
PILLION = os.path.join(BUILD, "src", "pillion")


# Lines that AddressSanitizer, LeakSanitizer, UBSan and TSan print when they find something.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")


def free_port():
    """Returns a loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


class Upstream:
    """A real HTTP/1.1 server on 127.0.0.1 that echoes what it received as JSON."""

    def __init__(self, name):
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.srv.daemon_threads = True
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
