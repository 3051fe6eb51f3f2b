"""A minimal HTTP/2 cleartext (prior knowledge) client that keeps one connection open across many
requests, for tests that need "the next request on the same connection" (Debian has no Python h2
package). Requests go out as HEADERS with literal, non-indexed, non-Huffman fields; the response
header block is not decoded (no HPACK decoder): what a test checks comes in the body (the
conftest echo upstream answers JSON naming itself)."""
import json
import socket
import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4


def _int(value, prefix_bits, first=0):
    """HPACK integer with an N-bit prefix (RFC 7541 5.1)."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def _literal(name, value):
    """A literal header field without indexing, new name, no Huffman (RFC 7541 6.2.2)."""
    n, v = name.encode(), value.encode()
    return b"\x00" + _int(len(n), 7) + n + _int(len(v), 7) + v


class H2cClient:
    """One h2c connection; get(path) sends a request and returns (stream id, body bytes)."""

    def __init__(self, port, host="127.0.0.1", timeout=5):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        # small writes back to back (WINDOW_UPDATE, then the next HEADERS): no Nagle delay
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.next_id = 1
        self.authority = f"{host}:{port}"
        self.sock.sendall(PREFACE + self._frame(SETTINGS, 0, 0, b""))

    def close(self):
        self.sock.close()

    @staticmethod
    def _frame(ftype, flags, sid, payload):
        return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
            struct.pack(">I", sid) + payload

    def _read_frame(self):
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("h2c: the server closed the connection")
            self.buf += chunk
        n = int.from_bytes(self.buf[:3], "big")
        ftype, flags = self.buf[3], self.buf[4]
        sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
        payload = self.buf[9:9 + n]
        self.buf = self.buf[9 + n:]
        return ftype, flags, sid, payload

    def get(self, path="/"):
        sid = self.next_id
        self.next_id += 2
        block = b"".join(_literal(k, v) for k, v in (
            (":method", "GET"), (":scheme", "http"), (":authority", self.authority),
            (":path", path)))
        self.sock.sendall(self._frame(HEADERS, END_STREAM | END_HEADERS, sid, block))
        body = b""
        for _ in range(10000):  # bounded: a reply is a handful of frames
            ftype, flags, fsid, payload = self._read_frame()
            if ftype == SETTINGS and not flags & ACK:
                self.sock.sendall(self._frame(SETTINGS, ACK, 0, b""))
            elif ftype == PING and not flags & ACK:
                self.sock.sendall(self._frame(PING, ACK, 0, payload))
            elif ftype == GOAWAY:
                raise ConnectionError("h2c: GOAWAY")
            elif ftype == RST_STREAM and fsid == sid:
                raise ConnectionError(f"h2c: stream {sid} reset")
            elif ftype == DATA and fsid == sid:
                body += payload
                if payload:  # give the window back (connection and stream)
                    inc = struct.pack(">I", len(payload))
                    self.sock.sendall(self._frame(WINDOW_UPDATE, 0, 0, inc) +
                                      self._frame(WINDOW_UPDATE, 0, sid, inc))
            if fsid == sid and ftype in (DATA, HEADERS) and flags & END_STREAM:
                return sid, body
        raise AssertionError("h2c: no end of stream")

    def get_json(self, path="/"):
        return json.loads(self.get(path)[1])
