// gRPC's own xDS client: @grpc/grpc-js-xds resolves the target (xds:///service) through the
// control plane named in $GRPC_XDS_BOOTSTRAP and calls pillion.conformance.Echo/Echo.
// One JSON command per stdin line, one answer per stdout line:
//   {"op": "call", "deadline_ms": 2000} -> {"ok": true, "server": ...}
//                                        | {"ok": false, "code": ..., "details": ...}
// Exits when stdin closes.
'use strict';
const path = require('path');
const readline = require('readline');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const grpcXds = require('@grpc/grpc-js-xds');

grpcXds.register();
const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(path.join(__dirname, 'echo.proto'),
  { keepCase: true })).pillion.conformance;
const client = new pkg.Echo(process.argv[2], grpc.credentials.createInsecure());

function call(cmd) {
  return new Promise((resolve) => {
    const deadline = new Date(Date.now() + (cmd.deadline_ms || 2000));
    client.Echo({ message: cmd.message || 'hi' }, { deadline }, (err, reply) => {
      if (err) resolve({ ok: false, code: err.code, details: err.details });
      else resolve({ ok: true, server: reply.server, message: reply.message });
    });
  });
}

// commands run one at a time, in order
let chain = Promise.resolve();
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  chain = chain.then(async () => {
    let answer;
    try {
      const cmd = JSON.parse(line);
      if (cmd.op !== 'call') throw new Error(`unknown op ${cmd.op}`);
      answer = await call(cmd);
    } catch (e) {
      answer = { error: String(e.message || e) };
    }
    process.stdout.write(JSON.stringify(answer) + '\n');
  });
});
rl.on('close', () => chain.then(() => {
  client.close();
  process.exit(0);
}));
