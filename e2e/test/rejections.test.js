// Fatal connect-time errors and the advertised activity timeout, with a
// multi-app JSON config file (PROTOCOL.md §2.3, §2.4, §2.5, §2.6, §4.1).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.js';
import { Harness, connected, until, sleep, errorCode } from '../lib/clients.js';

const T = { timeout: 20000 };
let server;
let h;

before(async () => {
  server = await startServer({
    apps: [
      { app_id: 'main-app', key: 'main-key', secret: 'main-secret', activity_timeout: 17 },
      { app_id: 'origin-app', key: 'origin-key', secret: 'origin-secret', allowed_origins: ['example.com'] },
      { app_id: 'fast-app', key: 'fast-key', secret: 'fast-secret', activity_timeout: 1 },
    ],
  });
  h = new Harness(server, null);
});

after(async () => {
  await h?.cleanup();
  await server?.stop();
});

// refusedOnce asserts that the client got `code` during the handshake,
// ended 'disconnected' (pusher-js's state for a refused connection) and made
// exactly one TCP connection over a window longer than its 1 s backoff.
async function refusedOnce(client, proxy, code) {
  await until(() => client.rec.errors.some((e) => errorCode(e) === code), `error ${code}`);
  await until(() => client.connection.state === 'disconnected', "state 'disconnected'");
  await sleep(2500);
  assert.equal(client.connection.state, 'disconnected');
  assert.ok(!client.rec.states.includes('connected'), `never connected (states: ${client.rec.states})`);
  assert.equal(proxy.connections, 1, 'pusher-js must not reconnect after a 40xx refusal');
}

test('unknown app key: error 4001, no reconnect', T, async () => {
  const proxy = await h.proxy();
  const c = h.pusher({ key: 'no-such-key', port: proxy.port });
  await refusedOnce(c, proxy, 4001);
  const err = c.rec.errors.find((e) => errorCode(e) === 4001);
  assert.equal(err.error.data.message, 'Application does not exist');
});

test('origin not in allowed_origins (Node client sends none): 4009, no reconnect', T, async () => {
  const proxy = await h.proxy();
  const c = h.pusher({ key: 'origin-key', port: proxy.port });
  await refusedOnce(c, proxy, 4009);
  const err = c.rec.errors.find((e) => errorCode(e) === 4009);
  assert.equal(err.error.data.message, 'Origin not allowed');
});

test('other apps in the same config still connect', T, async () => {
  const c = h.pusher({ key: 'main-key' });
  await connected(c);
  // activity_timeout from the config file is what the handshake advertises.
  assert.equal(c.connection.activityTimeout, 17000);
});

test('client pusher:ping is answered with pusher:pong (activity_timeout 1 s)', T, async () => {
  const proxy = await h.proxy();
  // pongTimeout 1.5 s: a missing pong would make pusher-js drop and redial.
  const c = h.pusher({ key: 'fast-key', port: proxy.port, options: { pongTimeout: 1500 } });
  const id = await connected(c);
  assert.equal(c.connection.activityTimeout, 1000);
  await until(() => c.rec.messages.filter((m) => m.event === 'pusher:pong').length >= 2, 'two pongs', 6000);
  assert.equal(c.connection.state, 'connected');
  assert.equal(c.connection.socket_id, id);
  assert.equal(proxy.connections, 1);
});
