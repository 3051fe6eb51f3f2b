// Encodes and decodes messages with Envoy's upstream schema (protobufjs on the .proto files of
// @grpc/grpc-js-xds deps/), one JSON command per stdin line, one JSON answer per stdout line:
//   {"op": "encode", "type": "envoy.config.cluster.v3.Cluster", "json": {...proto3 JSON...}}
//     -> {"b64": wire bytes, "tree": tree of those bytes decoded again}
//   {"op": "decode", "type": "...", "b64": "..."} -> {"tree": ...}
// Errors answer {"error": "..."}. Used by tests/conformance/test_upstream_codec.py.
'use strict';
const readline = require('readline');
const upstream = require('./upstream.js');

function handle(cmd) {
  if (cmd.op === 'encode') {
    const bytes = upstream.encode(cmd.type, cmd.json);
    return { b64: bytes.toString('base64'), tree: upstream.decodeTree(cmd.type, bytes) };
  }
  if (cmd.op === 'decode') {
    return { tree: upstream.decodeTree(cmd.type, Buffer.from(cmd.b64, 'base64')) };
  }
  throw new Error(`unknown op ${cmd.op}`);
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let answer;
  try {
    answer = handle(JSON.parse(line));
  } catch (e) {
    answer = { error: String(e.message || e) };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
});
