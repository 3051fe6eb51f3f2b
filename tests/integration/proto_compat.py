"""Helpers for test_proto_compat.py: find (or fetch) the upstream Envoy API protos, compile ours and
theirs into descriptor sets, and compare them field by field."""
import json
import os
import re
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO_DIR = os.path.join(ROOT, "proto")
SYSTEM_INCLUDE = "/usr/include"
# The upstream release our subset was written against (and the one fetched into the cache).
UPSTREAM_PACKAGE = "@grpc/grpc-js-xds"
UPSTREAM_VERSION = os.environ.get("PILLION_UPSTREAM_VERSION", "1.14.1")
CACHE_DIR = os.path.join(ROOT, ".cache", "grpc-js-xds")
WKT = {"google/protobuf/" + n + ".proto"
       for n in ("any", "duration", "timestamp", "struct", "wrappers", "empty")}


class Unavailable(Exception):
    """The upstream protos cannot be found or fetched here (the test skips with this reason)."""


def _deps_in(path):
    """Returns the deps/ folder of a grpc-js-xds install found at or under path, or None."""
    for cand in (path, os.path.join(path, "deps"),
                 os.path.join(path, "node_modules", "@grpc", "grpc-js-xds", "deps")):
        if os.path.isdir(os.path.join(cand, "envoy-api", "envoy")):
            return cand
    return None


def _installed_version(prefix):
    pkg = os.path.join(prefix, "node_modules", "@grpc", "grpc-js-xds", "package.json")
    try:
        with open(pkg) as f:
            return json.load(f).get("version")
    except (OSError, ValueError):
        return None


def upstream_deps():
    """Returns the upstream deps/ folder (envoy-api, xds, googleapis, protoc-gen-validate):
    $PILLION_UPSTREAM_PROTOS if set, else the cache, fetched with npm if missing."""
    env = os.environ.get("PILLION_UPSTREAM_PROTOS")
    if env:
        deps = _deps_in(env)
        if not deps:
            raise AssertionError(f"PILLION_UPSTREAM_PROTOS={env} holds no grpc-js-xds deps/ tree")
        return deps
    if _installed_version(CACHE_DIR) == UPSTREAM_VERSION and _deps_in(CACHE_DIR):
        return _deps_in(CACHE_DIR)
    npm = shutil.which("npm")
    if not npm:
        raise Unavailable("npm is not installed and PILLION_UPSTREAM_PROTOS is not set: "
                          f"cannot fetch {UPSTREAM_PACKAGE}@{UPSTREAM_VERSION}")
    os.makedirs(CACHE_DIR, exist_ok=True)
    res = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--ignore-scripts",
                          "--prefix", CACHE_DIR, f"{UPSTREAM_PACKAGE}@{UPSTREAM_VERSION}"],
                         capture_output=True, text=True, timeout=600)
    deps = _deps_in(CACHE_DIR)
    if res.returncode != 0 or not deps:
        raise AssertionError(f"npm install {UPSTREAM_PACKAGE}@{UPSTREAM_VERSION} failed:\n"
                             f"{res.stdout}\n{res.stderr}")
    return deps


def validate_shim(deps, outdir):
    """The protoc-gen-validate copy bundled with grpc-js-xds is older than its envoy-api: envoy's
    options use `ignore_empty`, which that validate.proto lacks, so protoc rejects them. Writes a
    copy that declares `ignore_empty` in every *Rules message (options only; no wire effect on the
    messages we compare) and returns the include dir holding it."""
    with open(os.path.join(deps, "protoc-gen-validate", "validate", "validate.proto")) as f:
        src = f.read()
    if "ignore_empty" not in src:
        src = re.sub(r"(message \w+Rules \{)", r"\1\n  optional bool ignore_empty = 9999;", src)
    os.makedirs(os.path.join(outdir, "validate"), exist_ok=True)
    with open(os.path.join(outdir, "validate", "validate.proto"), "w") as f:
        f.write(src)
    return outdir


def our_proto_files():
    """Every .proto under proto/, relative to it."""
    out = []
    for dirpath, _, names in os.walk(PROTO_DIR):
        for n in names:
            if n.endswith(".proto"):
                out.append(os.path.relpath(os.path.join(dirpath, n), PROTO_DIR))
    return sorted(out)


def meson_proto_files():
    """The proto_files list of proto/meson.build."""
    with open(os.path.join(PROTO_DIR, "meson.build")) as f:
        text = f.read()
    m = re.search(r"proto_files\s*=\s*files\((.*?)\)", text, re.S)
    return sorted(re.findall(r"'([^']+\.proto)'", m.group(1))) if m else []


def compile_set(includes, files, out):
    """Runs protoc over files (relative to the include dirs) into a descriptor set; returns it."""
    from google.protobuf import descriptor_pb2
    cmd = ["protoc"] + [f"-I{i}" for i in includes] + [
        "--include_imports", f"--descriptor_set_out={out}"] + list(files)
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise AssertionError(f"protoc failed: {' '.join(cmd)}\n{res.stderr}")
    fds = descriptor_pb2.FileDescriptorSet()
    with open(out, "rb") as f:
        fds.ParseFromString(f.read())
    return fds


def compile_ours(tmpdir):
    files = [f for f in our_proto_files() if f not in WKT]
    return compile_set([PROTO_DIR, SYSTEM_INCLUDE], files, os.path.join(tmpdir, "ours.pb"))


def compile_upstream(tmpdir, deps):
    """Compiles upstream's versions of the files we have (same paths)."""
    shim = validate_shim(deps, os.path.join(tmpdir, "shim"))
    roots = [shim] + [os.path.join(deps, d) for d in sorted(os.listdir(deps))
                      if os.path.isdir(os.path.join(deps, d))] + [SYSTEM_INCLUDE]
    files = [f for f in our_proto_files() if f not in WKT]
    missing = [f for f in files if not any(os.path.exists(os.path.join(r, f)) for r in roots)]
    if missing:
        raise AssertionError(f"files of proto/ that upstream does not have: {missing}")
    return compile_set(roots, files, os.path.join(tmpdir, "upstream.pb"))


class Index:
    """Messages, enums and services of a descriptor set by full name (no leading dot)."""

    def __init__(self, fds):
        self.messages, self.enums, self.services, self.file_of = {}, {}, {}, {}
        for f in fds.file:
            for m in f.message_type:
                self._add_message(f.name, f.package, m)
            for e in f.enum_type:
                self._add(self.enums, f.name, f.package + "." + e.name, e)
            for s in f.service:
                self._add(self.services, f.name, f.package + "." + s.name, s)

    def _add(self, table, fname, name, d):
        table[name] = d
        self.file_of[name] = fname

    def _add_message(self, fname, scope, m):
        name = scope + "." + m.name
        self._add(self.messages, fname, name, m)
        for n in m.nested_type:
            self._add_message(fname, name, n)
        for e in m.enum_type:
            self._add(self.enums, fname, name + "." + e.name, e)


def _oneof(m, fld):
    """The oneof a field belongs to: its name, '(optional)' for a proto3 optional, or None."""
    if fld.proto3_optional:
        return "(optional)"
    if fld.HasField("oneof_index"):
        return m.oneof_decl[fld.oneof_index].name
    return None


def _field_sig(m, fld):
    from google.protobuf import descriptor_pb2
    fdp = descriptor_pb2.FieldDescriptorProto
    return {"number": fld.number, "name": fld.name, "type": fdp.Type.Name(fld.type),
            "type_name": fld.type_name, "label": fdp.Label.Name(fld.label),
            "oneof": _oneof(m, fld), "json_name": fld.json_name}


def mismatches(ours, upstream):
    """Everything in ours that is not exactly as upstream, as readable lines."""
    out = []
    for name, m in sorted(ours.messages.items()):
        um = upstream.messages.get(name)
        if um is None:
            out.append(f"message {name}: not in upstream")
            continue
        if m.options.map_entry != um.options.map_entry:
            out.append(f"message {name}: map_entry {m.options.map_entry} != {um.options.map_entry}")
        by_name = {f.name: f for f in um.field}
        by_number = {f.number: f for f in um.field}
        for fld in m.field:
            uf = by_name.get(fld.name) or by_number.get(fld.number)
            if uf is None:
                out.append(f"field {name}.{fld.name} = {fld.number}: not in upstream")
                continue
            a, b = _field_sig(m, fld), _field_sig(um, uf)
            diff = [f"{k} {a[k]!r} != upstream {b[k]!r}" for k in a if a[k] != b[k]]
            if diff:
                out.append(f"field {name}.{fld.name}: " + ", ".join(diff))
        ours_res = {(r.start, r.end) for r in m.reserved_range}
        up_res = {(r.start, r.end) for r in um.reserved_range}
        if not ours_res <= up_res:
            out.append(f"message {name}: reserved ranges {sorted(ours_res - up_res)} not upstream")
        if set(m.reserved_name) - set(um.reserved_name):
            out.append(f"message {name}: reserved names "
                       f"{sorted(set(m.reserved_name) - set(um.reserved_name))} not upstream")
    for name, e in sorted(ours.enums.items()):
        ue = upstream.enums.get(name)
        if ue is None:
            out.append(f"enum {name}: not in upstream")
            continue
        uv = {v.name: v.number for v in ue.value}
        for v in e.value:
            if v.name not in uv:
                out.append(f"enum value {name}.{v.name} = {v.number}: not in upstream")
            elif uv[v.name] != v.number:
                out.append(f"enum value {name}.{v.name}: {v.number} != upstream {uv[v.name]}")
        missing = sorted(set(uv) - {v.name for v in e.value})
        if missing:
            out.append(f"enum {name}: values {missing} missing")
    for name, s in sorted(ours.services.items()):
        us = upstream.services.get(name)
        if us is None:
            out.append(f"service {name}: not in upstream")
            continue
        um = {x.name: x for x in us.method}
        for x in s.method:
            u = um.get(x.name)
            sig = lambda y: (y.input_type, y.output_type, y.client_streaming, y.server_streaming)
            if u is None or sig(u) != sig(x):
                out.append(f"rpc {name}.{x.name}: {sig(x)} != upstream {sig(u) if u else None}")
    return out


def omitted_table():
    """The rows of proto/OMITTED.md: {(message, field): number}."""
    rows = {}
    with open(os.path.join(PROTO_DIR, "OMITTED.md")) as f:
        for line in f:
            m = re.match(r"\|\s*`([\w.]+)`\s*\|\s*`(\w+)`\s*\|\s*(\d+)\s*\|", line)
            if m:
                rows[(m.group(1), m.group(2))] = int(m.group(3))
    return rows


def undeclared_omissions(ours, upstream, omitted):
    """Upstream fields missing from messages we include and not listed in OMITTED.md, plus
    OMITTED.md rows that are wrong (field present in ours, or not upstream, or wrong number)."""
    out = []
    for name, m in sorted(ours.messages.items()):
        um = upstream.messages.get(name)
        if um is None:
            continue
        have = {f.name for f in m.field}
        for uf in um.field:
            if uf.name not in have and (name, uf.name) not in omitted:
                out.append(f"{name}.{uf.name} = {uf.number} ({uf.type_name or 'scalar'}): "
                           "missing and not in proto/OMITTED.md")
    for (msg, field), number in sorted(omitted.items()):
        um = upstream.messages.get(msg)
        uf = {f.name: f for f in um.field}.get(field) if um else None
        if uf is None:
            out.append(f"OMITTED.md: {msg}.{field} is not an upstream field")
        elif uf.number != number:
            out.append(f"OMITTED.md: {msg}.{field} is number {uf.number} upstream, not {number}")
        if msg in ours.messages and field in {f.name for f in ours.messages[msg].field}:
            out.append(f"OMITTED.md: {msg}.{field} is listed but present in proto/")
    return out
