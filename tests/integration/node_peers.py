"""Node.js peers for tests: the pinned npm packages of tests/conformance/node (gRPC's own xDS
client @grpc/grpc-js-xds, whose deps/ folder holds Envoy's upstream .proto files, plus
@grpc/grpc-js, @grpc/proto-loader and protobufjs), installed with `npm ci` from the committed
package-lock.json into .cache/node (gitignored), and child node processes that talk JSON lines
over stdin/stdout."""
import fcntl
import json
import os
import queue
import shutil
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE_DIR = os.path.join(ROOT, "tests", "conformance", "node")
CACHE_DIR = os.path.join(ROOT, ".cache", "node")
LOCK_FILES = ("package.json", "package-lock.json")


class Unavailable(Exception):
    """Node.js or npm is not installed here (a test skips with this reason)."""


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def locked_version(package):
    """The version of an npm package that the committed package-lock.json pins."""
    with open(os.path.join(PACKAGE_DIR, "package-lock.json")) as f:
        return json.load(f)["packages"]["node_modules/" + package]["version"]


def _installed():
    """Whether the cache holds exactly what the committed lock file pins."""
    done = os.path.join(CACHE_DIR, "node_modules", ".package-lock.json")
    return os.path.exists(done) and all(
        _read(os.path.join(CACHE_DIR, n)) == _read(os.path.join(PACKAGE_DIR, n))
        for n in LOCK_FILES)


def node_modules():
    """Installs the pinned packages into the cache when it does not hold them yet (npm ci, under
    a file lock, so parallel test runs install once); returns the node_modules folder."""
    path = os.path.join(CACHE_DIR, "node_modules")
    if _installed():
        return path
    npm = shutil.which("npm")
    if not npm:
        raise Unavailable("npm is not installed: cannot install the pinned packages of "
                          "tests/conformance/node (@grpc/grpc-js-xds and friends)")
    os.makedirs(CACHE_DIR, exist_ok=True)
    with open(os.path.join(CACHE_DIR, ".install-lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed():
            return path
        for n in LOCK_FILES:
            shutil.copyfile(os.path.join(PACKAGE_DIR, n), os.path.join(CACHE_DIR, n))
        res = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
                             cwd=CACHE_DIR, capture_output=True, text=True, timeout=600)
        if res.returncode != 0 or not _installed():
            raise AssertionError(f"npm ci in {CACHE_DIR} failed ({res.returncode}):\n"
                                 f"{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return path


def upstream_deps():
    """The deps/ folder of the installed @grpc/grpc-js-xds: envoy-api, xds, googleapis,
    protoc-gen-validate (Envoy's upstream .proto trees)."""
    return os.path.join(node_modules(), "@grpc", "grpc-js-xds", "deps")


class NodeScript:
    """One `node tests/conformance/node/<script>` process. Each stdin line is a JSON command and
    each stdout line a JSON message; stderr goes to a log file. stop() ends it (EOF, then SIGTERM,
    then SIGKILL, each bounded)."""

    def __init__(self, script, args=(), env=None, log_path=None):
        node = shutil.which("node")
        if not node:
            raise Unavailable("node is not installed")
        full_env = dict(os.environ, NODE_PATH=node_modules(), **(env or {}))
        self.log_path = log_path
        self.log = open(log_path, "wb") if log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen([node, os.path.join(PACKAGE_DIR, script), *map(str, args)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, env=full_env, cwd=PACKAGE_DIR)
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            try:
                self.lines.put(json.loads(raw))
            except ValueError:
                self.lines.put({"unparsed": raw.decode(errors="replace")})
        self.lines.put(None)

    def send(self, obj):
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()

    def next(self, pred=lambda m: True, timeout=10, what="a message"):
        """Returns the first message from now on for which pred is true (the others are kept in
        .seen); fails after timeout seconds or when the process ends."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what} from {self}; "
                                     f"last seen: {self.seen[-5:]}")
            try:
                m = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if m is None:
                self.lines.put(None)
                raise AssertionError(f"{self} exited ({self.proc.poll()}) while waiting for "
                                     f"{what}:\n{self.stderr()}")
            self.seen.append(m)
            if pred(m):
                return m

    def find(self, pred, timeout=10, what="a message"):
        """Like next(), but a message already seen counts too (for events whose order varies)."""
        for m in self.seen:
            if pred(m):
                return m
        return self.next(pred, timeout, what)

    def call(self, obj, timeout=20):
        """Sends one command and returns the next message (for scripts that answer each line)."""
        self.send(obj)
        return self.next(timeout=timeout, what=f"the answer to {obj.get('op')}")

    def stderr(self):
        if not self.log_path:
            return ""
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        """Stops the process; returns its exit code."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        if self.log is not subprocess.DEVNULL and not self.log.closed:
            self.log.close()
        return self.proc.returncode

    def __repr__(self):
        return f"node {os.path.basename(self.proc.args[1])} (pid {self.proc.pid})"
