"""Helpers for test_proto_compat.py: find (or fetch) the upstream Envoy API protos, compile ours and
theirs into descriptor sets, and compare them field by field."""
import os
import re
import subprocess

import node_peers

ROOT = node_peers.ROOT
PROTO_DIR = os.path.join(ROOT, "proto")
SYSTEM_INCLUDE = "/usr/include"
# The upstream release our subset was written against: pinned in tests/conformance/node.
UPSTREAM_PACKAGE = "@grpc/grpc-js-xds"
UPSTREAM_VERSION = node_peers.locked_version(UPSTREAM_PACKAGE)
WKT = {"google/protobuf/" + n + ".proto"
       for n in ("any", "duration", "timestamp", "struct", "wrappers", "empty")}
# npm is missing and $PILLION_UPSTREAM_PROTOS is not set (the test skips with this reason).
Unavailable = node_peers.Unavailable


def _deps_in(path):
    """Returns the deps/ folder of a grpc-js-xds install found at or under path, or None."""
    for cand in (path, os.path.join(path, "deps"),
                 os.path.join(path, "node_modules", "@grpc", "grpc-js-xds", "deps")):
        if os.path.isdir(os.path.join(cand, "envoy-api", "envoy")):
            return cand
    return None


def upstream_deps():
    """Returns the upstream deps/ folder (envoy-api, xds, googleapis, protoc-gen-validate):
    $PILLION_UPSTREAM_PROTOS if set, else the pinned npm install of tests/conformance/node
    (node_peers: npm ci into .cache/node when missing)."""
    env = os.environ.get("PILLION_UPSTREAM_PROTOS")
    if env:
        deps = _deps_in(env)
        if not deps:
            raise AssertionError(f"PILLION_UPSTREAM_PROTOS={env} holds no grpc-js-xds deps/ tree")
        return deps
    deps = node_peers.upstream_deps()
    if not _deps_in(deps):
        raise AssertionError(f"{deps}: no envoy-api tree in the installed {UPSTREAM_PACKAGE}")
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


def has_unknown_fields(msg):
    """Whether msg or any message inside it holds fields its schema does not know."""
    from google.protobuf import descriptor
    try:
        if msg.UnknownFields() and len(msg.UnknownFields()):
            return True
    except NotImplementedError:
        pass
    for fd, value in msg.ListFields():
        if fd.type != descriptor.FieldDescriptor.TYPE_MESSAGE:
            continue
        items = value.values() if fd.message_type.GetOptions().map_entry else (
            value if fd.label == descriptor.FieldDescriptor.LABEL_REPEATED else [value])
        if fd.message_type.GetOptions().map_entry:
            items = [v for v in items if hasattr(v, "ListFields")]
        if any(has_unknown_fields(v) for v in items):
            return True
    return False


def _message_class(d):
    from google.protobuf import message_factory
    get = getattr(message_factory, "GetMessageClass", None)
    return get(d) if get else message_factory.MessageFactory(d.file.pool).GetPrototype(d)


def tree(msg):
    """A message as a plain tree, built exactly as tests/conformance/node/upstream.js builds it
    from upstream's schema, so the two compare field by field: field name -> value for every
    field present (scalars outside a oneof only when not the default), enums by name, 64-bit
    integers and bytes (base64) as strings, an Any expanded to "@type" plus its message's fields
    (its type looked up in msg's descriptor pool)."""
    import base64
    from google.protobuf import descriptor
    fdesc = descriptor.FieldDescriptor
    longs = {fdesc.TYPE_INT64, fdesc.TYPE_UINT64, fdesc.TYPE_SINT64, fdesc.TYPE_FIXED64,
             fdesc.TYPE_SFIXED64}
    d = msg.DESCRIPTOR
    if d.full_name == "google.protobuf.Any":
        try:
            inner = _message_class(d.file.pool.FindMessageTypeByName(msg.TypeName()))()
        except KeyError:
            return {"@type": msg.type_url, "@value": base64.b64encode(msg.value).decode()}
        inner.ParseFromString(msg.value)
        return {"@type": msg.type_url, **tree(inner)}

    def scalar(fd, v):
        if fd.type == fdesc.TYPE_ENUM:
            ev = fd.enum_type.values_by_number.get(v)
            return ev.name if ev else v
        if fd.type in longs:
            return str(v)
        if fd.type == fdesc.TYPE_BYTES:
            return base64.b64encode(v).decode()
        return v

    out = {}
    for fd, v in msg.ListFields():
        if fd.message_type and fd.message_type.GetOptions().map_entry:
            vf = fd.message_type.fields_by_name["value"]
            out[fd.name] = {str(k).lower() if isinstance(k, bool) else str(k):
                            tree(x) if vf.message_type else scalar(vf, x) for k, x in v.items()}
        elif fd.label == fdesc.LABEL_REPEATED:
            out[fd.name] = [tree(x) if fd.message_type else scalar(fd, x) for x in v]
        else:
            out[fd.name] = tree(v) if fd.message_type else scalar(fd, v)
    return out


def tree_diff(a, b, path=""):
    """Where two trees differ, as readable lines (a: ours, b: upstream)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            p = f"{path}.{k}" if path else k
            if k not in b:
                out.append(f"{p}: only ours has it ({a[k]!r:.80})")
            elif k not in a:
                out.append(f"{p}: only upstream has it ({b[k]!r:.80})")
            else:
                out += tree_diff(a[k], b[k], p)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [x for i, (u, v) in enumerate(zip(a, b)) for x in tree_diff(u, v, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: ours {a!r:.80} != upstream {b!r:.80}"]
