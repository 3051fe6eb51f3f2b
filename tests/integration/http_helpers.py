"""Helpers for the HTTP proxy tests (test_http*.py): a recording upstream, raw clients, configs."""
import json
import socket
import threading
import time

from conftest import TcpServer


class RecordingUpstream(TcpServer):
    """A threaded HTTP/1.1 server on 127.0.0.1 that records every request it receives.

    Paths: /status/<code> answers that code; /slow/<ms> waits before answering; /big/<bytes>
    streams a body of that many bytes; /chunked answers with a chunked body; /close answers and
    closes; anything else echoes the request as JSON. Every request is appended to .requests
    (method, path, headers (lower-case names, list of pairs), body bytes)."""

    def __init__(self, name="up"):
        self.name = name
        self.requests = []
        self.lock = threading.Lock()
        super().__init__(self._serve)

    @property
    def conns(self):
        """Connections accepted so far."""
        return self.accepted

    def _serve(self, c):
        f = c.makefile("rb")
        try:
            while not self.stopped:
                line = f.readline(65536)
                if not line:
                    return
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers = []
                while True:
                    h = f.readline(65536)
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers.append((k.strip().lower(), v.strip()))
                hd = dict(headers)
                body = b""
                if path.startswith("/sink"):  # a slow reader that discards the body
                    n = self._sink(f, hd)
                    with self.lock:
                        self.requests.append({"method": method, "path": path,
                                              "headers": headers, "body": b"", "sunk": n})
                    out = str(n).encode()
                    c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(out) + out)
                    continue
                if hd.get("upgrade", "").lower() == "websocket":
                    self._websocket(c, f, headers)
                    return
                if hd.get("transfer-encoding", "").lower() == "chunked":
                    parts = []
                    while True:
                        size = int(f.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while f.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            break
                        parts.append(f.read(size))
                        f.readline()
                    body = b"".join(parts)
                elif "content-length" in hd:
                    body = f.read(int(hd["content-length"]))
                with self.lock:
                    self.requests.append({"method": method, "path": path, "headers": headers,
                                          "body": body})
                if not self._respond(c, method, path, hd, headers, body):
                    return
        except (OSError, ValueError):
            return
        finally:
            try:
                c.close()
            except OSError:
                pass

    def _sink(self, f, hd):
        """Reads a content-length or chunked body slowly for 1.5 s, then fast; returns its size."""
        start = time.monotonic()

        def take(n):
            got = 0
            while got < n:
                slow = time.monotonic() < start + 1.5
                if slow:
                    time.sleep(0.05)
                k = len(f.read(min(n - got, 16384 if slow else 1 << 20)))
                if k == 0:
                    raise OSError("eof")
                got += k
            return got

        if hd.get("transfer-encoding", "").lower() == "chunked":
            total = 0
            while True:
                size = int(f.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while f.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return total
                total += take(size)
                f.readline()
        return take(int(hd.get("content-length", "0")))

    def _websocket(self, c, f, headers):
        """Answers an Upgrade: websocket with 101, then echoes raw bytes upper-cased."""
        with self.lock:
            self.requests.append({"method": "GET", "path": "ws", "headers": headers, "body": b""})
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
                  b"connection: upgrade\r\n\r\n")
        while True:
            data = c.recv(65536)
            if not data:
                return
            c.sendall(data.upper())

    def _respond(self, c, method, path, hd, headers, body):
        keep = hd.get("connection", "").lower() != "close"
        if path.startswith("/status/"):
            code = int(path.split("/")[2])
            c.sendall(f"HTTP/1.1 {code} X\r\ncontent-length: 0\r\nx-upstream: {self.name}\r\n\r\n"
                      .encode())
            return keep
        if path.startswith("/slow/"):
            time.sleep(int(path.split("/")[2]) / 1000.0)
        if path.startswith("/big/"):
            n = int(path.split("/")[2].split("?")[0])
            c.sendall(f"HTTP/1.1 200 OK\r\ncontent-length: {n}\r\n\r\n".encode())
            block = b"x" * (1 << 20)
            left = n
            while left > 0:
                k = min(left, len(block))
                c.sendall(block[:k])
                left -= k
            return keep
        if path.startswith("/chunked"):
            c.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer-test: 1\r\n\r\n"
                      b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
            return keep
        out = json.dumps({"upstream": self.name, "method": method, "path": path,
                          "headers": dict(headers), "body_len": len(body)}).encode()
        extra = "connection: close\r\n" if path.startswith("/close") else ""
        c.sendall(f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-upstream: {self.name}"
                  f"\r\ncontent-length: {len(out)}\r\n{extra}\r\n".encode() + out)
        return keep and not extra


def hcm_config(port, clusters, routes=None, hcm_extra="", vhost_extra="", cluster_extra=""):
    """A bootstrap with one HCM listener on port; clusters: {name: [upstream ports]}."""
    if routes is None:
        first = next(iter(clusters))
        routes = f"""
              - match: {{ prefix: "/" }}
                route: {{ cluster: {first} }}"""
    cl = ""
    for name, ports in clusters.items():
        eps = "".join(f"""
        - endpoint:
            address:
              socket_address: {{ address: 127.0.0.1, port_value: {p} }}""" for p in ports)
        cl += f"""
  - name: {name}
    type: STATIC
    connect_timeout: 1s
    lb_policy: ROUND_ROBIN{cluster_extra}
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:{eps}"""
    return f"""
admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: 0 }}
static_resources:
  listeners:
  - name: ingress
    address:
      socket_address: {{ address: 127.0.0.1, port_value: {port} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http{hcm_extra}
          route_config:
            name: local_route
            virtual_hosts:
            - name: vh
              domains: ["*"]{vhost_extra}
              routes:{routes}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:{cl}
"""


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"port {port} never opened")


def raw_exchange(port, data, timeout=5, until_close=True):
    """Sends raw bytes and returns everything read until the peer closes (or timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
            if not until_close and b"\r\n\r\n" in out:
                break
        return out
    finally:
        s.close()


def read_response(f):
    """Reads one HTTP/1.1 response from a binary file object: (status, headers dict, body)."""
    line = f.readline()
    if not line:
        raise EOFError("connection closed")
    status = int(line.split()[1])
    headers = {}
    while True:
        h = f.readline()
        if h in (b"\r\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    body = b""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int(f.readline().split(b";")[0], 16)
            if size == 0:
                while f.readline() not in (b"\r\n", b""):
                    pass
                break
            body += f.read(size)
            f.readline()
    elif "content-length" in headers:
        body = f.read(int(headers["content-length"]))
    return status, headers, body


def stat(p, name):
    """Reads one counter/gauge from the admin /stats text; 0 when absent."""
    _, _, body = p.admin("/stats")
    for line in body.splitlines():
        k, _, v = line.partition(": ")
        if k == name:
            try:
                return int(v)
            except ValueError:
                return v
    return 0
