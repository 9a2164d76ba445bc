'use strict';
// The benchmark's store: the repository's pinned local store (@vercel/cosmosdb-server, the
// same one `make run` starts), started as its CLI starts it (`-p PORT --host HOST --no-ssl`)
// but answering with `connection: keep-alive` instead of `connection: close`. The CLI has no
// flag for this; the real Cosmos DB service keeps connections open, so with this store a
// client that reuses connections (the Node SDK, the bare-write client) is measured as it would
// run against Cosmos, and one that does not pays for its new connections.
const path = require('node:path');
const { createHttpServer } = require(
  path.join(__dirname, '..', 'node_modules', '@vercel', 'cosmosdb-server'),
);

let port = 8081;
let host = '127.0.0.1';
const argv = process.argv.slice(2);
while (argv.length) {
  const arg = argv.shift();
  if (arg === '-p' || arg === '--port') port = parseInt(argv.shift(), 10);
  else if (arg === '--host' || arg === '--hostname') host = argv.shift();
  else if (arg !== '--no-ssl') {
    console.error(`unknown argument ${arg}`);
    process.exit(2);
  }
}

const server = createHttpServer({ keepAlive: true });
server.keepAliveTimeout = 65_000;
server.listen(port, host, () => {
  console.log(`Ready to accept HTTP connections at ${host}:${port} (keep-alive)`);
});
