// A small state-of-the-world ADS control plane built on @grpc/grpc-js and @grpc/proto-loader with
// Envoy's upstream .proto files (deps/ of @grpc/grpc-js-xds); resources are encoded with the
// upstream schema (upstream.js). Driven over stdin/stdout JSON lines by
// tests/conformance/test_upstream_cp.py:
//   in:  {"op": "set", "type_url": ..., "version": "1", "resources": [proto3 JSON, ...]}
//          stores the type's resources and pushes them to every stream subscribed to the type;
//          with "wrap": true each goes inside an envoy.service.discovery.v3.Resource (version
//          "resource_version"), with "wrap": "heartbeat" only the wrapper with the name is sent
//   out: {"event": "listening", "port": N}
//        {"event": "set", "type_url": ...} (or {"event": "error", "error": ...})
//        {"event": "request", "stream": id, "type_url", "version_info", "response_nonce",
//         "resource_names", "error_detail" (null or {code, message}), "node_id"}
//        {"event": "response", "stream": id, "type_url", "version", "nonce", "names": [...]}
//        {"event": "stream_end", "stream": id}
// A request without a nonce, or naming other resources than before, is answered with the
// type's current resources (RDS and EDS filtered to the names asked for); ACKs and NACKs are
// only reported. Exits when stdin closes.
'use strict';
const readline = require('readline');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const upstream = require('./upstream.js');

const def = protoLoader.loadSync('envoy/service/discovery/v3/ads.proto', {
  keepCase: true, longs: String, enums: String, defaults: false, oneofs: true,
  includeDirs: upstream.INCLUDE_DIRS,
});
const ads = grpc.loadPackageDefinition(def).envoy.service.discovery.v3.AggregatedDiscoveryService;

const state = new Map(); // type_url -> {version, resources: [{name, any}]}
const streams = new Set();
let nextStream = 1;
let nextNonce = 1;

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

const NAMED_ONLY = new Set(['type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment']);

function push(stream, typeUrl) {
  const cur = state.get(typeUrl);
  const sub = stream.subs.get(typeUrl);
  if (!cur || !sub) return;
  const filter = NAMED_ONLY.has(typeUrl) && sub.names.length;
  const chosen = cur.resources.filter((r) => !filter || sub.names.includes(r.name));
  const nonce = String(nextNonce++);
  sub.nonce = nonce;
  stream.call.write({ version_info: cur.version, type_url: typeUrl, nonce,
    resources: chosen.map((r) => r.any) });
  emit({ event: 'response', stream: stream.id, type_url: typeUrl, version: cur.version, nonce,
    names: chosen.map((r) => r.name) });
}

function onRequest(stream, rq) {
  const names = [...(rq.resource_names || [])].sort();
  emit({ event: 'request', stream: stream.id, type_url: rq.type_url,
    version_info: rq.version_info || '', response_nonce: rq.response_nonce || '',
    resource_names: names,
    error_detail: rq.error_detail ? { code: rq.error_detail.code || 0,
      message: rq.error_detail.message || '' } : null,
    node_id: rq.node ? rq.node.id : null });
  const sub = stream.subs.get(rq.type_url);
  const changed = !sub || JSON.stringify(sub.names) !== JSON.stringify(names);
  stream.subs.set(rq.type_url, { names, nonce: sub ? sub.nonce : null });
  if (!rq.response_nonce || changed) push(stream, rq.type_url);
}

function streamAggregatedResources(call) {
  const stream = { id: nextStream++, call, subs: new Map() };
  streams.add(stream);
  call.on('data', (rq) => onRequest(stream, rq));
  const end = () => {
    if (!streams.delete(stream)) return;
    emit({ event: 'stream_end', stream: stream.id });
    call.end();
  };
  call.on('end', end);
  call.on('error', end);
  call.on('cancelled', end);
}

function deltaAggregatedResources(call) {
  call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'state of the world only' });
}

function nameOf(json) {
  return json.name || json.cluster_name;
}

const RESOURCE_URL = 'type.googleapis.com/envoy.service.discovery.v3.Resource';

// A resource as sent: its Any, or with "wrap" that Any inside a discovery Resource (name and
// the version given, or a heartbeat without the resource when "wrap" is "heartbeat").
function wrapped(cmd, name, any) {
  if (!cmd.wrap) return any;
  const R = upstream.type('envoy.service.discovery.v3.Resource');
  const msg = { name, version: cmd.resource_version || '' };
  if (cmd.wrap !== 'heartbeat') msg.resource = any;
  return { type_url: RESOURCE_URL, value: R.encode(R.fromObject(msg)).finish() };
}

function set(cmd) {
  const typeName = cmd.type_url.slice(cmd.type_url.lastIndexOf('/') + 1);
  const resources = cmd.resources.map((json) => ({
    name: nameOf(json),
    any: wrapped(cmd, nameOf(json),
      { type_url: cmd.type_url, value: upstream.encode(typeName, json) }),
  }));
  state.set(cmd.type_url, { version: cmd.version, resources });
  emit({ event: 'set', type_url: cmd.type_url });
  for (const s of streams) push(s, cmd.type_url);
}

const server = new grpc.Server();
server.addService(ads.service, {
  StreamAggregatedResources: streamAggregatedResources,
  DeltaAggregatedResources: deltaAggregatedResources,
});
server.bindAsync('127.0.0.1:' + (process.argv[2] || '0'), grpc.ServerCredentials.createInsecure(),
  (err, port) => {
    if (err) {
      emit({ event: 'error', error: String(err.message || err) });
      process.exit(1);
    }
    emit({ event: 'listening', port });
  });

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  try {
    const cmd = JSON.parse(line);
    if (cmd.op !== 'set') throw new Error(`unknown op ${cmd.op}`);
    set(cmd);
  } catch (e) {
    emit({ event: 'error', error: String(e.message || e) });
  }
});
rl.on('close', () => {
  for (const s of streams) s.call.end();
  server.forceShutdown();
  process.exit(0);
});
