// Public, private, private-encrypted and cache channels with pusher-js in
// Node and events triggered through the official `pusher` Node SDK
// (PROTOCOL.md §4.2, §4.4, §4.6, §4.7, §6.1, §9.3).

import { test } from 'node:test';
import { useStack } from '../lib/stack.js';
import assert from 'node:assert/strict';
import { connected, subscribed, until, sleep, messagesOf } from '../lib/clients.js';

const T = { timeout: 20000 };
let server;
let auth;
let h;
let api;

useStack({}, (s) => ({ server, auth, h, api } = s));

// received records every payload of one event on one channel.
function received(channel, event) {
  const got = [];
  channel.bind(event, (data) => got.push(data));
  return got;
}

const PAYLOAD = {
  id: 42,
  total: 19.5,
  items: [{ sku: 'A-1', qty: 2 }, { sku: 'B/2', qty: 1 }],
  note: 'ünïcødé ✓ "quoted" </script> \\ back',
  empty: {},
  none: null,
};

test('public channel: SDK trigger delivers the exact data', T, async () => {
  const c = h.pusher();
  const orders = await subscribed(c, 'orders');
  const other = await subscribed(c, 'orders-archive');
  const gotOrders = received(orders, 'OrderShipped');
  const gotOther = received(other, 'OrderShipped');

  const res = await api.trigger(['orders', 'orders-archive'], 'OrderShipped', PAYLOAD);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {});

  await until(() => gotOrders.length === 1 && gotOther.length === 1, 'the event on both channels');
  assert.deepEqual(gotOrders[0], PAYLOAD);
  assert.deepEqual(gotOther[0], PAYLOAD);
  const raw = messagesOf(c, 'OrderShipped', 'orders');
  assert.equal(raw.length, 1);

  // A non-JSON data string is forwarded verbatim.
  const plain = received(orders, 'Plain');
  await api.trigger('orders', 'Plain', 'just text, not JSON');
  await until(() => plain.length === 1, 'the plain-text event');
  assert.equal(plain[0], 'just text, not JSON');
});

test('trigger with socket_id excludes exactly that socket', T, async () => {
  const a = h.pusher();
  const b = h.pusher();
  const idA = await connected(a);
  const chA = await subscribed(a, 'excluded');
  const chB = await subscribed(b, 'excluded');
  const gotA = received(chA, 'Ping');
  const gotB = received(chB, 'Ping');

  await api.trigger('excluded', 'Ping', { n: 1 }, { socket_id: idA });
  await until(() => gotB.length === 1, 'delivery to the other socket');
  // A follow-up event without exclusion proves A was listening all along;
  // per-connection ordering means the first one would have come before it.
  await api.trigger('excluded', 'Ping', { n: 2 });
  await until(() => gotA.length >= 1 && gotB.length === 2, 'the second event on both');
  assert.deepEqual(gotA, [{ n: 2 }]);
  assert.deepEqual(gotB, [{ n: 1 }, { n: 2 }]);
});

test('private channel subscribes through the auth endpoint', T, async () => {
  const c = h.pusher({ user: { id: '5' } });
  const id = await connected(c);
  const ch = await subscribed(c, 'private-orders.5');
  const req = auth.requests.find((r) => r.params.channel_name === 'private-orders.5');
  assert.ok(req, 'the client asked the auth endpoint');
  assert.equal(req.params.socket_id, id);

  const got = received(ch, 'Shipped');
  await api.trigger('private-orders.5', 'Shipped', { order: 5 });
  await until(() => got.length === 1, 'the private event');
  assert.deepEqual(got[0], { order: 5 });
});

test('private channel with a bad signature: pusher:error 4009, no subscription', T, async () => {
  const c = h.pusher({ user: { id: '6', mode: 'bad-secret' } });
  await connected(c);
  const ch = c.subscribe('private-vault');
  const got = received(ch, 'Secret');
  await until(() => messagesOf(c, 'pusher:error').length === 1, 'pusher:error');
  const [err] = messagesOf(c, 'pusher:error');
  assert.deepEqual(err.data, { code: 4009, message: 'Connection is unauthorized' });
  assert.equal(err.channel, undefined, 'the error carries no channel (§4.2)');

  await api.trigger('private-vault', 'Secret', { leaked: true });
  await sleep(500);
  assert.equal(ch.subscribed, false);
  assert.deepEqual(messagesOf(c, 'pusher_internal:subscription_succeeded', 'private-vault'), []);
  assert.deepEqual(got, []);
  assert.equal(c.connection.state, 'connected', 'the socket stays open');
  assert.equal(messagesOf(c, 'pusher:error').length, 1);
});

test('private-encrypted channel: SDK encrypts, pusher-js decrypts', T, async () => {
  const c = h.pusher({ user: { id: '7' } });
  const ch = await subscribed(c, 'private-encrypted-dm.7');
  const req = auth.requests.find((r) => r.params.channel_name === 'private-encrypted-dm.7');
  assert.ok(req, 'the client asked the auth endpoint for the shared secret');
  const got = received(ch, 'Message');

  const secret = { text: 'meet at noon', to: 7 };
  await api.trigger('private-encrypted-dm.7', 'Message', secret);
  await until(() => got.length === 1, 'the decrypted event');
  assert.deepEqual(got[0], secret);
  // What crossed the server was ciphertext only.
  const [raw] = messagesOf(c, 'Message', 'private-encrypted-dm.7');
  assert.ok(raw.data.nonce && raw.data.ciphertext, 'the wire payload is {nonce, ciphertext}');
  assert.ok(!JSON.stringify(raw.data).includes('noon'));
});

// cacheReplay returns the messages a client got on `name` from its
// subscription_succeeded onwards.
function fromSubscription(c, name) {
  const msgs = c.rec.messages.filter((m) => m.channel === name);
  const i = msgs.findIndex((m) => m.event === 'pusher_internal:subscription_succeeded');
  return i < 0 ? [] : msgs.slice(i);
}

test('cache channel: an event triggered before subscribing is replayed right after subscribing', T, async () => {
  await api.trigger('cache-prices', 'PriceChanged', { price: 1 });
  await api.trigger('cache-prices', 'PriceChanged', { price: 2 });

  const c = h.pusher();
  await connected(c);
  const ch = c.subscribe('cache-prices');
  const got = received(ch, 'PriceChanged');
  await until(() => got.length === 1, 'the cached event');
  assert.deepEqual(got[0], { price: 2 }, 'the last event is cached');
  const seq = fromSubscription(c, 'cache-prices').map((m) => m.event);
  assert.deepEqual(seq, ['pusher_internal:subscription_succeeded', 'PriceChanged']);

  // A later subscriber gets the newest cached event.
  await api.trigger('cache-prices', 'PriceChanged', { price: 3 });
  await until(() => got.length === 2, 'the live event');
  const d = h.pusher();
  await connected(d);
  const gotD = received(d.subscribe('cache-prices'), 'PriceChanged');
  await until(() => gotD.length === 1, 'the cached event for the second subscriber');
  assert.deepEqual(gotD[0], { price: 3 });
  await sleep(300);
  assert.equal(gotD.length, 1, 'exactly one cached message');
  assert.deepEqual(messagesOf(d, 'pusher:cache_miss'), []);
});

test('cache channel with nothing cached: pusher:cache_miss', T, async () => {
  const c = h.pusher();
  await connected(c);
  const ch = c.subscribe('cache-empty');
  let misses = 0;
  ch.bind('pusher:cache_miss', () => misses++);
  await until(() => misses === 1, 'pusher:cache_miss on the channel');
  const seq = fromSubscription(c, 'cache-empty').map((m) => m.event);
  assert.deepEqual(seq, ['pusher_internal:subscription_succeeded', 'pusher:cache_miss']);
  const [miss] = messagesOf(c, 'pusher:cache_miss', 'cache-empty');
  assert.equal(miss.data, undefined, 'cache_miss has no data (§4.6)');
});
