// Real gRPC servers (@grpc/grpc-js) on 127.0.0.1, one per name given on the command line, each
// answering pillion.conformance.Echo/Echo with its name. Prints one JSON line per server:
// {"event": "listening", "name": ..., "port": ...}; exits when stdin closes.
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(path.join(__dirname, 'echo.proto'),
  { keepCase: true })).pillion.conformance;

const servers = [];
for (const name of process.argv.slice(2)) {
  const server = new grpc.Server();
  server.addService(pkg.Echo.service, {
    Echo: (call, done) => done(null, { message: call.request.message, server: name }),
  });
  servers.push(server);
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) throw err;
    process.stdout.write(JSON.stringify({ event: 'listening', name, port }) + '\n');
  });
}

process.stdin.on('data', () => {});
process.stdin.on('end', () => {
  for (const s of servers) s.forceShutdown();
  process.exit(0);
});
