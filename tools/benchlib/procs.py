"""Processes for tools/bench: start, watch through /proc, and always stop what we started."""
import atexit
import http.client
import os
import random
import signal
import socket
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


class Procs:
    """Every process tools/bench starts, each in its own session; stop_all() kills them by pid."""

    def __init__(self):
        self.started = []
        self.cleanups = []  # callables run after the processes are stopped on a signal
        atexit.register(self.stop_all)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, _frame):
        self.stop_all()
        for fn in self.cleanups:
            fn()
        sys.stderr.write(f"bench: stopped by signal {signum}\n")
        os._exit(128 + signum)

    def start(self, name, cmd, log_path, env=None):
        log = open(log_path, "ab")
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, env=env)
        log.close()
        p.bench_name = name
        p.bench_log = log_path
        self.started.append(p)
        return p

    def stop(self, p, timeout=5):
        """SIGTERM to the process group we created, then SIGKILL after timeout; reaps it."""
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(p.pid, signal.SIGKILL)  # children that outlived their parent
        except (ProcessLookupError, PermissionError):
            pass
        if p.poll() is None:
            p.wait(5)
        if p in self.started:
            self.started.remove(p)

    def stop_all(self):
        for p in list(self.started):
            self.stop(p, timeout=3)


def tree(pid):
    """pid and all its descendants (read from /proc/*/stat)."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    s = f.read()
            except OSError:
                continue
            parent[int(d)] = int(s[s.rindex(")") + 2:].split()[1])
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += [c for c, pp in parent.items() if pp == p]
    return out


def _stat_fields(pid):
    """The /proc/PID/stat fields after the command name (field 3 on) of pid and each of its
    descendants still there."""
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
        except OSError:
            continue
        yield s[s.rindex(")") + 2:].split()


def minor_faults(pid):
    """Minor page faults of pid and its descendants so far (/proc/PID/stat field 10). On virtual
    machines a first touch of a page can cost more than the work done in it."""
    return sum(int(f[7]) for f in _stat_fields(pid))


def cpu_seconds(pid):
    """utime+stime of pid and its descendants, in seconds (threads included, /proc/PID/stat)."""
    # utime, stime: fields 14 and 15
    return sum(int(f[11]) + int(f[12]) for f in _stat_fields(pid)) / CLK_TCK


def mem_kb(pid):
    """(pss_kb, rss_kb) summed over pid and its descendants. PSS splits shared pages between
    processes, so a master+worker pair is not counted twice; for one process it is ~RSS."""
    pss = rss = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                    elif line.startswith("Rss:"):
                        rss += int(line.split()[1])
        except OSError:
            continue
    return pss, rss


def wait_port(port, timeout=10, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.bench_name} exited with {proc.returncode}: "
                               f"{tail(proc.bench_log)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"port {port} never opened")


def http_get(port, path="/", timeout=5):
    """One HTTP/1.1 GET on loopback; returns (status, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def tail(path, n=1500):
    try:
        with open(path, "rb") as f:
            return f.read()[-n:].decode(errors="replace")
    except OSError:
        return ""


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(n):
    """n distinct loopback ports that were free a moment ago, below the kernel's ephemeral range:
    a port from that range may be handed to some process's outgoing connection (a proxy's
    connection to the control plane, say) between this pick and the bind of the server it is
    meant for, which then never listens (with 100 proxies that happened)."""
    low = _ephemeral_low()
    lo, hi = (10000, low - 1) if low > 11000 else (1024, 65535)
    rnd = random.Random(os.getpid() ^ time.monotonic_ns())
    socks, ports = [], []
    while len(ports) < n:
        port = rnd.randint(lo, hi)
        if port in ports:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.close()
            continue
        socks.append(s)
        ports.append(port)
    for s in socks:
        s.close()
    return ports
