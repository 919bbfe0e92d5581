// The per-app connection quota as pusher-js experiences it (PROTOCOL.md
// §2.3, §2.6, §8.1). A file of its own because it counts the sockets of one
// process: lib/run.js leaves it out of the cluster run, where nodes learn
// each other's counts about once a second.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.js';
import { Harness, connected, until, sleep, errorCode } from '../lib/clients.js';

const T = { timeout: 20000 };
let server;
let h;

before(async () => {
  server = await startServer({
    apps: [{ app_id: 'quota-app', key: 'quota-key', secret: 'quota-secret', max_connections: 1 }],
  });
  h = new Harness(server, null);
});

after(async () => {
  await h?.cleanup();
  await server?.stop();
});

test('max_connections: the next client gets 4004 and stays off; a freed slot is reusable', T, async () => {
  const first = h.pusher({ key: 'quota-key' });
  await connected(first);
  const proxy = await h.proxy();
  const second = h.pusher({ key: 'quota-key', port: proxy.port });
  await until(() => second.rec.errors.some((e) => errorCode(e) === 4004), 'error 4004');
  const err = second.rec.errors.find((e) => errorCode(e) === 4004);
  assert.equal(err.error.data.message, 'Application is over connection quota');
  await until(() => second.connection.state === 'disconnected', "state 'disconnected'");
  await sleep(2500);
  assert.equal(proxy.connections, 1, 'no reconnect after 4004');
  assert.equal(first.connection.state, 'connected');

  first.disconnect();
  await until(() => first.connection.state === 'disconnected', 'first client gone');
  const third = h.pusher({ key: 'quota-key' });
  await connected(third, 8000);
  assert.deepEqual(third.rec.errors, [], 'the freed slot is usable');
});
