// Connection handshake with pusher-js in Node against a server configured
// only through REVERB_APP_* env vars (PROTOCOL.md §2.3, §2.5, §4.1).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.js';
import { Harness, connected, until, sleep, SOCKET_ID } from '../lib/clients.js';

const T = { timeout: 20000 };
let server;
let h;

before(async () => {
  server = await startServer({ env: { app_id: 'env-app', key: 'env-key', secret: 'env-secret' } });
  h = new Harness(server, null);
});

after(async () => {
  await h?.cleanup();
  await server?.stop();
});

test('pusher-js connects and receives a digits.digits socket id', T, async () => {
  const a = h.pusher();
  const b = h.pusher();
  const idA = await connected(a);
  const idB = await connected(b);
  assert.match(idA, SOCKET_ID);
  assert.match(idB, SOCKET_ID);
  assert.notEqual(idA, idB, 'two sockets must not share an id');
  assert.deepEqual(a.rec.errors, []);
  // The env-only app keeps Reverb's default activity_timeout of 30 s, which
  // pusher-js adopts because it is below its own 120 s.
  assert.equal(a.connection.activityTimeout, 30000);
});

test('the connection stays up and keeps its socket id', T, async () => {
  const proxy = await h.proxy();
  const a = h.pusher({ port: proxy.port });
  const id = await connected(a);
  await sleep(1500);
  assert.equal(a.connection.state, 'connected');
  assert.equal(a.connection.socket_id, id);
  assert.equal(proxy.connections, 1, 'a healthy client never reconnects');
  assert.deepEqual(a.rec.errors, []);
});

test('a client disconnect is clean and a new client gets a new socket id', T, async () => {
  const a = h.pusher();
  const first = await connected(a);
  a.disconnect();
  await until(() => a.connection.state === 'disconnected', 'disconnected');
  const b = h.pusher();
  const second = await connected(b);
  assert.notEqual(first, second);
});
