// Envoy's upstream v3 API as protobufjs types, loaded from the .proto files that
// @grpc/grpc-js-xds ships in deps/, plus a proto3 JSON reader on that schema and a canonical
// "tree" of decoded messages that tests compare with the same tree built from our proto/.
'use strict';
const fs = require('fs');
const path = require('path');
const protobuf = require('protobufjs');

const DEPS = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
const INCLUDE_DIRS = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate']
  .map((d) => path.join(DEPS, d))
  // protobufjs ships google/protobuf/descriptor.proto, which the validate options import
  .concat([path.dirname(require.resolve('protobufjs/package.json'))]);

// The files whose messages conformance tests encode, decode and serve.
const FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/access_loggers/file/v3/file.proto',
  'envoy/extensions/access_loggers/stream/v3/stream.proto',
  'envoy/extensions/filters/listener/original_dst/v3/original_dst.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  'envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto',
];

function load() {
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const dir of INCLUDE_DIRS) {
      const full = path.join(dir, target);
      if (fs.existsSync(full)) return full;
    }
    return target;
  };
  root.loadSync(FILES, { keepCase: true });
  root.resolveAll();
  return root;
}

const root = load();

function type(name) {
  return root.lookupType(name.startsWith('.') ? name : '.' + name);
}

function typeFromUrl(url) {
  return type(url.slice(url.lastIndexOf('/') + 1));
}

const WRAPPERS = new Set(['DoubleValue', 'FloatValue', 'Int64Value', 'UInt64Value', 'Int32Value',
  'UInt32Value', 'BoolValue', 'StringValue', 'BytesValue'].map((n) => '.google.protobuf.' + n));

function fail(where, what) {
  throw new Error(`${where || '(top)'}: ${what}`);
}

// "1.5s" -> {seconds, nanos}
function durationFromJson(s, where) {
  const m = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(typeof s === 'string' ? s : '');
  if (!m) fail(where, `bad duration ${JSON.stringify(s)}`);
  const sign = m[1] ? -1 : 1;
  const nanos = Number((m[3] || '').padEnd(9, '0'));
  return { seconds: String(sign * Number(m[2])), nanos: sign * nanos };
}

// protobufjs' bundled well-known types name their fields in lowerCamel even with keepCase:
// the name a type really uses for a snake_case field, and back.
const camel = (n) => n.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
const snake = (n) => n.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
function fieldOf(t, name) {
  return t.fields[name] || t.fields[camel(name)];
}
function named(t, obj) {
  return Object.fromEntries(Object.entries(obj).map(([k, v]) => [fieldOf(t, k).name, v]));
}

function valueFromJson(v) {
  const V = type('google.protobuf.Value');
  if (v === null) return named(V, { null_value: 'NULL_VALUE' });
  if (typeof v === 'number') return named(V, { number_value: v });
  if (typeof v === 'string') return named(V, { string_value: v });
  if (typeof v === 'boolean') return named(V, { bool_value: v });
  if (Array.isArray(v)) return named(V, { list_value: { values: v.map(valueFromJson) } });
  return named(V, { struct_value: structFromJson(v) });
}

function structFromJson(o) {
  const fields = {};
  for (const [k, v] of Object.entries(o)) fields[k] = valueFromJson(v);
  return { fields };
}

function scalarFromJson(field, v, where) {
  if (field.resolvedType instanceof protobuf.Enum) {
    if (typeof v === 'string' && !(v in field.resolvedType.values))
      fail(where, `no value ${v} in enum ${field.resolvedType.fullName}`);
    return v;
  }
  return v; // numbers, int64 strings, bools, strings, base64 bytes: fromObject takes them as is
}

// Proto3 JSON (field names as in the .proto or lowerCamel) -> the object form protobufjs'
// fromObject takes. Strict: an unknown field is an error, as in Envoy.
function fromJson(t, json, where = '') {
  const name = t.fullName;
  if (name === '.google.protobuf.Duration') return durationFromJson(json, where);
  if (WRAPPERS.has(name)) return { value: json };
  if (name === '.google.protobuf.Struct') return structFromJson(json);
  if (name === '.google.protobuf.Value') return valueFromJson(json);
  if (name === '.google.protobuf.ListValue') return { values: json.map(valueFromJson) };
  if (name === '.google.protobuf.Any') {
    const url = json['@type'];
    if (!url) fail(where, 'Any without @type');
    const inner = typeFromUrl(url);
    let body = json;
    if (inner.fullName.startsWith('.google.protobuf.') && 'value' in json) body = json.value;
    else body = Object.fromEntries(Object.entries(json).filter(([k]) => k !== '@type'));
    return { type_url: url, value: encodeType(inner, body, where) };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    fail(where, `${name} must be an object`);
  const out = {};
  for (const [key, v] of Object.entries(json)) {
    const field = t.fields[key] || t.fieldsArray.find((f) => f.options?.json_name === key ||
      camel(f.name) === key);
    const fw = where ? `${where}.${key}` : key;
    if (!field) fail(fw, `unknown field '${key}' in ${name}`);
    const one = (x, w) => (field.resolvedType instanceof protobuf.Type
      ? fromJson(field.resolvedType, x, w) : scalarFromJson(field, x, w));
    if (field.map) {
      const entries = Object.entries(v).map(([k, x]) => [k, one(x, `${fw}[${k}]`)]);
      out[field.name] = Object.fromEntries(entries);
    } else if (field.repeated) {
      out[field.name] = v.map((x, i) => one(x, `${fw}[${i}]`));
    } else {
      out[field.name] = one(v, fw);
    }
  }
  return out;
}

function encodeType(t, json, where) {
  const msg = t.fromObject(fromJson(t, json, where));
  const err = t.verify(msg);
  if (err) fail(where, `${t.fullName}: ${err}`);
  return Buffer.from(t.encode(msg).finish());
}

// Proto3 JSON of message `name` -> its wire bytes, per the upstream schema.
function encode(name, json) {
  return encodeType(type(name), json, '');
}

function isDefault(field, v) {
  if (field.resolvedType instanceof protobuf.Type) return false;
  if (v === null || v === undefined) return true;
  if (typeof v === 'object' && v.length !== undefined) return v.length === 0; // bytes
  if (typeof v === 'object') return v.isZero ? v.isZero() : false; // Long
  return v === 0 || v === '' || v === false;
}

const LONGS = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);

function scalarTree(field, v) {
  if (field.resolvedType instanceof protobuf.Enum) {
    const n = field.resolvedType.valuesById[v];
    return n === undefined ? v : n;
  }
  if (LONGS.has(field.type)) return String(v);
  if (field.type === 'bytes') return Buffer.from(v).toString('base64');
  return v;
}

// A decoded message -> a plain tree: field name -> value for every field present on the wire
// (scalars outside a oneof only when not the default), enums by name, 64-bit integers and
// bytes (base64) as strings, an Any expanded to its "@type" and its message's fields.
// tests/integration/proto_compat.py (tree) builds the same from our proto/.
function tree(t, msg) {
  if (t.fullName === '.google.protobuf.Any') {
    let inner = null;
    try {
      inner = typeFromUrl(msg.type_url);
    } catch (e) {
      inner = null;
    }
    if (!inner) {
      return { '@type': msg.type_url, '@value': Buffer.from(msg.value).toString('base64') };
    }
    return { '@type': msg.type_url, ...tree(inner, inner.decode(msg.value)) };
  }
  const out = {};
  for (const field of t.fieldsArray) {
    if (!Object.prototype.hasOwnProperty.call(msg, field.name)) continue;
    const v = msg[field.name];
    const one = (x) => (field.resolvedType instanceof protobuf.Type ? tree(field.resolvedType, x)
      : scalarTree(field, x));
    const name = t.fullName.startsWith('.google.protobuf.') ? snake(field.name) : field.name;
    if (field.map) {
      const keys = Object.keys(v);
      if (keys.length) out[name] = Object.fromEntries(keys.map((k) => [k, one(v[k])]));
    } else if (field.repeated) {
      if (v.length) out[name] = v.map(one);
    } else if (field.partOf || !isDefault(field, v)) {
      out[name] = one(v);
    }
  }
  return out;
}

function decodeTree(name, bytes) {
  const t = type(name);
  return tree(t, t.decode(bytes));
}

module.exports = { DEPS, INCLUDE_DIRS, FILES, root, type, typeFromUrl, encode, decodeTree, tree };
