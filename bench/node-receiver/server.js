'use strict';
// Benchmark baseline only (never deployed): the ACR webhook receiver most users would write
// instead of acr-webhook. A plain Node `http` server and the official `@azure/cosmos` SDK,
// doing the same validation and the same write as the component on `POST /acr`:
//   key check (Bearer, x-functions-key or ?code, constant time) -> body <= 1 MiB -> JSON ->
//   ACR event with a known action -> the same flat document -> items.create (201 / 409 -> 200).
// The benchmark (crates/bench) drives it with the same load as `acr-webhook up`.
//
// Configuration, from the environment: COSMOS_ENDPOINT, COSMOS_KEY, WEBHOOK_KEYS (comma
// separated), COSMOS_DATABASE (acr), COSMOS_CONTAINER (events), PORT (0 = any free port;
// the chosen port is printed as `listening on 127.0.0.1:<port>`).

const http = require('node:http');
const crypto = require('node:crypto');
const { CosmosClient } = require('@azure/cosmos');

const MAX_BODY = 1 << 20;
const ACTIONS = new Set(['push', 'delete', 'quarantine', 'chart_push', 'chart_delete', 'ping']);

const keys = (process.env.WEBHOOK_KEYS || '')
  .split(',')
  .map((k) => k.trim())
  .filter(Boolean)
  .map((k) => crypto.createHash('sha256').update(k).digest());
if (!process.env.COSMOS_ENDPOINT || !process.env.COSMOS_KEY || keys.length === 0) {
  console.error('COSMOS_ENDPOINT, COSMOS_KEY and WEBHOOK_KEYS are required');
  process.exit(2);
}

const client = new CosmosClient({
  endpoint: process.env.COSMOS_ENDPOINT,
  key: process.env.COSMOS_KEY,
  // One local endpoint: no region discovery.
  connectionPolicy: { enableEndpointDiscovery: false },
});
const container = client
  .database(process.env.COSMOS_DATABASE || 'acr')
  .container(process.env.COSMOS_CONTAINER || 'events');

function presentedKey(req, url) {
  const auth = req.headers.authorization;
  if (auth && auth.startsWith('Bearer ')) return auth.slice(7).trim();
  if (req.headers['x-functions-key']) return req.headers['x-functions-key'];
  return url.searchParams.get('code');
}

function authorized(req, url) {
  const key = presentedKey(req, url);
  if (!key) return false;
  const digest = crypto.createHash('sha256').update(key).digest();
  let ok = false;
  for (const k of keys) ok = crypto.timingSafeEqual(k, digest) || ok;
  return ok;
}

function send(res, status, body) {
  if (body === undefined) {
    res.writeHead(status);
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

const fail = (res, status, error, message) => send(res, status, { error, message });

function nonEmpty(v) {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function toDocument(event) {
  const target = event.target || {};
  const request = event.request || {};
  // Ids Cosmos refuses are percent-encoded, as the component does.
  const id = event.id.replace(/[%/\\?#\u0000-\u001f]/g, (c) => encodeURIComponent(c));
  const doc = {
    id,
    eventId: id === event.id ? undefined : event.id,
    action: event.action,
    timestamp: nonEmpty(event.timestamp),
    receivedAt: new Date().toISOString(),
    loginServer: nonEmpty(request.host),
    image: nonEmpty(target.repository),
    tag: nonEmpty(target.tag),
    digest: nonEmpty(target.digest),
    mediaType: nonEmpty(target.mediaType),
    size: Number.isInteger(target.size) ? target.size : target.length,
    name: nonEmpty(target.name),
    version: nonEmpty(target.version),
    requestId: nonEmpty(request.id),
    requestMethod: nonEmpty(request.method),
    userAgent: nonEmpty(request.useragent),
    source: 'acr',
  };
  for (const k of Object.keys(doc)) if (doc[k] === undefined) delete doc[k];
  return doc;
}

async function receive(req, res, url) {
  if (!authorized(req, url)) return fail(res, 401, 'unauthorized', 'missing or wrong key');
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY) return fail(res, 413, 'payload_too_large', 'body over 1 MiB');
    chunks.push(chunk);
  }
  let event;
  try {
    event = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return fail(res, 400, 'invalid_json', 'the body is not JSON');
  }
  if (event === null || typeof event !== 'object' || Array.isArray(event)) {
    return fail(res, 400, 'invalid_event', 'not an ACR event');
  }
  if (!ACTIONS.has(event.action)) return fail(res, 400, 'unsupported_action', 'unknown action');
  if (event.action === 'ping') {
    try {
      await container.read();
      return send(res, 204);
    } catch (e) {
      return fail(res, 503, 'store_check_failed', String(e.code || e.message));
    }
  }
  if (typeof event.id !== 'string' || event.id === '') {
    // As the component: an event without an id gets one derived from its content.
    event.id = 'sha256-' + crypto.createHash('sha256').update(Buffer.concat(chunks)).digest('hex');
  }
  const doc = toDocument(event);
  try {
    await container.items.create(doc);
    return send(res, 201, { id: doc.id, status: 'stored' });
  } catch (e) {
    if (e.code === 409) return send(res, 200, { id: doc.id, status: 'already_stored' });
    if (e.code === 429 || e.code >= 500 || e.code === undefined) {
      return fail(res, 503, 'store_unavailable', String(e.code || e.message));
    }
    return fail(res, 502, 'store_refused', String(e.code));
  }
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/healthz') return send(res, 200, { status: 'ok' });
  if (url.pathname !== '/acr') return fail(res, 404, 'not_found', 'no such route');
  if (req.method !== 'POST') {
    res.setHeader('allow', 'POST');
    return fail(res, 405, 'method_not_allowed', 'POST only');
  }
  receive(req, res, url).catch((e) => fail(res, 500, 'internal', String(e && e.message)));
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`listening on 127.0.0.1:${server.address().port}`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
