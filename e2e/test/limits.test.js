// Per-connection limits as pusher-js experiences them: message size and
// message rate (PROTOCOL.md §2.6, §8.3, §8.4). The connection quota is in
// quota.test.js.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.js';
import { Harness, connected, subscribed, until, sleep, errorCode, messagesOf } from '../lib/clients.js';

const T = { timeout: 20000 };
let server;
let h;

before(async () => {
  server = await startServer({
    apps: [
      { app_id: 'size-app', key: 'size-key', secret: 'size-secret', max_message_size: 300, accept_client_events_from: 'all' },
      {
        app_id: 'rate-app',
        key: 'rate-key',
        secret: 'rate-secret',
        accept_client_events_from: 'all',
        rate_limiting: { enabled: true, max_attempts: 3, decay_seconds: 60, terminate_on_limit: false },
      },
      {
        app_id: 'kick-app',
        key: 'kick-key',
        secret: 'kick-secret',
        accept_client_events_from: 'all',
        rate_limiting: { enabled: true, max_attempts: 2, decay_seconds: 60, terminate_on_limit: true },
      },
    ],
  });
  h = new Harness(server, null);
});

after(async () => {
  await h?.cleanup();
  await server?.stop();
});

test('max_message_size: a message over the limit closes with 1009, pusher-js reconnects', T, async () => {
  const sender = h.pusher({ key: 'size-key' });
  const peer = h.pusher({ key: 'size-key' });
  const first = await connected(sender);
  await subscribed(sender, 'sized');
  const ch = await subscribed(peer, 'sized');
  const got = [];
  ch.bind('client-note', (d) => got.push(d));

  sender.send_event('client-note', { pad: 'x'.repeat(100) }, 'sized');
  await until(() => got.length === 1, 'the small client event');
  sender.send_event('client-note', { pad: 'x'.repeat(400) }, 'sized');
  await until(() => sender.rec.errors.some((e) => errorCode(e) === 1009), 'close code 1009');
  const err = sender.rec.errors.find((e) => errorCode(e) === 1009);
  assert.equal(err.data.message, 'Maximum message size exceeded');
  // 1009 is not fatal for pusher-js: it comes back on a new socket.
  await until(() => sender.connection.state === 'connected' && sender.connection.socket_id !== first, 'reconnect', 8000);
  await sleep(300);
  assert.equal(got.length, 1, 'the oversized message was not relayed');
});

test('rate limit: messages over max_attempts get 4301 and are dropped; the socket stays', T, async () => {
  const peer = h.pusher({ key: 'rate-key' });
  const ch = await subscribed(peer, 'limited');
  const got = [];
  ch.bind('client-n', (d) => got.push(d.n));
  const sender = h.pusher({ key: 'rate-key' });
  const id = await connected(sender);
  // Message 1 is the subscribe; 2 and 3 pass; 4 and 5 are over the limit.
  await subscribed(sender, 'limited');
  for (const n of [2, 3, 4, 5]) sender.send_event('client-n', { n }, 'limited');
  await until(() => messagesOf(sender, 'pusher:error').length === 2, 'two 4301 errors');
  for (const m of messagesOf(sender, 'pusher:error')) {
    assert.deepEqual(m.data, { code: 4301, message: 'Rate limit exceeded' });
  }
  await sleep(300);
  assert.deepEqual(got, [2, 3]);
  assert.equal(sender.connection.state, 'connected');
  assert.equal(sender.connection.socket_id, id);
});

test('rate limit with terminate_on_limit: 4301 closes the socket and pusher-js does not retry', T, async () => {
  const proxy = await h.proxy();
  const sender = h.pusher({ key: 'kick-key', port: proxy.port });
  await subscribed(sender, 'kick');
  sender.send_event('client-n', { n: 2 }, 'kick');
  sender.send_event('client-n', { n: 3 }, 'kick');
  await until(() => sender.rec.errors.some((e) => errorCode(e) === 4301), 'error 4301');
  await until(() => sender.connection.state === 'disconnected', "state 'disconnected'");
  await sleep(2500);
  assert.equal(sender.connection.state, 'disconnected');
  assert.equal(proxy.connections, 1, 'no reconnect after 4301');
});
