// laravel-echo with the 'reverb' broadcaster: public, private and presence
// channels, whispers (PROTOCOL.md §4.4, §4.5, §4.8). The app comes from a
// config file with accept_client_events_from = members.

import { test } from 'node:test';
import { useStack } from '../lib/stack.js';
import assert from 'node:assert/strict';
import { connected, until, sleep } from '../lib/clients.js';

const T = { timeout: 20000 };
// QUIET is how long we wait to be confident an event is NOT coming: far
// above a loopback round trip, short enough for the suite budget.
const QUIET = 600;
let server;
let auth;
let h;
let api;

useStack({ apps: [{ app_id: 'echo-app', key: 'echo-key', secret: 'echo-secret', accept_client_events_from: 'members' }] }, (s) => ({ server, auth, h, api } = s));

const ANN = { id: '1', name: 'Ann' };
const BOB = { id: '2', name: 'Bob' };
const CID = { id: '3', name: 'Cid' };

// subscribedEcho waits for Echo's .subscribed() callback on a channel.
function whenSubscribed(channel) {
  return new Promise((resolve) => channel.subscribed(() => resolve(channel)));
}

const byId = (a, b) => a.id.localeCompare(b.id);

test('Echo.channel().listen() receives a broadcast event', T, async () => {
  const echo = h.echo();
  const got = [];
  const gotNs = [];
  const ch = echo.channel('orders').listen('.OrderShipped', (e) => got.push(e));
  // Without the leading dot Echo prefixes the App\Events namespace, as for
  // a Laravel event class.
  ch.listen('OrderPaid', (e) => gotNs.push(e));
  await whenSubscribed(ch);

  await api.trigger('orders', 'OrderShipped', { id: 1 });
  await api.trigger('orders', 'App\\Events\\OrderPaid', { id: 2 });
  await until(() => got.length === 1 && gotNs.length === 1, 'both events');
  assert.deepEqual(got, [{ id: 1 }]);
  assert.deepEqual(gotNs, [{ id: 2 }]);
});

test('Echo.private() authorizes through the auth endpoint and receives events', T, async () => {
  const echo = h.echo({ user: ANN });
  const got = [];
  const ch = echo.private('orders.1').listen('.Shipped', (e) => got.push(e));
  await whenSubscribed(ch);
  assert.ok(auth.requests.some((r) => r.params.channel_name === 'private-orders.1' && r.user === '1'));
  await api.trigger('private-orders.1', 'Shipped', { id: 7 });
  await until(() => got.length === 1, 'the private event');
  assert.deepEqual(got, [{ id: 7 }]);
});

test('Echo.encryptedPrivate() decrypts what the SDK encrypted', T, async () => {
  const echo = h.echo({ user: ANN });
  const got = [];
  const ch = echo.encryptedPrivate('dm.1').listen('.Sealed', (e) => got.push(e));
  await whenSubscribed(ch);
  await api.trigger('private-encrypted-dm.1', 'Sealed', { text: 'for Ann only' });
  await until(() => got.length === 1, 'the decrypted event');
  assert.deepEqual(got, [{ text: 'for Ann only' }]);
});

// joinRecorder joins a presence channel and records here/joining/leaving.
function joinRecorder(echo, name) {
  const r = { here: null, joining: [], leaving: [] };
  r.channel = echo
    .join(name)
    .here((members) => (r.here = members.slice().sort(byId)))
    .joining((m) => r.joining.push(m))
    .leaving((m) => r.leaving.push(m));
  return r;
}

test('Echo.join(): here, joining and leaving with two clients', T, async () => {
  const a = joinRecorder(h.echo({ user: ANN }), 'room.2');
  await until(() => a.here, "Ann's here()");
  assert.deepEqual(a.here, [ANN]);

  const bobEcho = h.echo({ user: BOB });
  const b = joinRecorder(bobEcho, 'room.2');
  await until(() => b.here, "Bob's here()");
  assert.deepEqual(b.here, [ANN, BOB]);
  await until(() => a.joining.length === 1, 'Ann sees Bob joining');
  assert.deepEqual(a.joining, [BOB]);
  assert.deepEqual(b.joining, [], 'no joining for oneself');

  bobEcho.leave('room.2');
  await until(() => a.leaving.length === 1, 'Ann sees Bob leaving');
  assert.deepEqual(a.leaving, [BOB]);
});

test('Echo.join(): the same user on two sockets joins and leaves once (three clients)', T, async () => {
  const a = joinRecorder(h.echo({ user: ANN }), 'room.3');
  await until(() => a.here, "Ann's here()");

  const bob1Echo = h.echo({ user: BOB });
  const b1 = joinRecorder(bob1Echo, 'room.3');
  await until(() => b1.here && a.joining.length === 1, 'Bob joined');

  const bob2Echo = h.echo({ user: BOB });
  const b2 = joinRecorder(bob2Echo, 'room.3');
  await until(() => b2.here, "Bob's second socket here()");
  assert.deepEqual(b2.here, [ANN, BOB], 'one entry per user, not per socket');
  await sleep(QUIET);
  assert.deepEqual(a.joining, [BOB], 'no second joining for the same user');
  assert.deepEqual(b1.joining, []);

  // Bob's second socket goes away entirely: Bob is still present.
  bob2Echo.disconnect();
  await sleep(QUIET);
  assert.deepEqual(a.leaving, [], 'no leaving while Bob has another socket');
  assert.deepEqual(b1.leaving, []);

  // A third user still sees exactly Ann and Bob.
  const c = joinRecorder(h.echo({ user: CID }), 'room.3');
  await until(() => c.here, "Cid's here()");
  assert.deepEqual(c.here, [ANN, BOB, CID]);

  bob1Echo.disconnect();
  await until(() => a.leaving.length === 1 && c.leaving.length === 1, 'Bob leaving for Ann and Cid');
  assert.deepEqual(a.leaving, [BOB]);
  assert.deepEqual(c.leaving, [BOB]);
  await sleep(QUIET);
  assert.equal(a.leaving.length, 1, 'exactly one leaving');
});

test('whisper on a private channel reaches the others, not the sender', T, async () => {
  const annEcho = h.echo({ user: ANN });
  const bobEcho = h.echo({ user: BOB });
  const gotAnn = [];
  const gotBob = [];
  const chAnn = annEcho.private('chat.9').listenForWhisper('typing', (e) => gotAnn.push(e));
  const chBob = bobEcho.private('chat.9').listenForWhisper('typing', (e) => gotBob.push(e));
  await Promise.all([whenSubscribed(chAnn), whenSubscribed(chBob)]);

  chAnn.whisper('typing', { name: 'Ann', typing: true });
  await until(() => gotBob.length === 1, 'Bob receives the whisper');
  assert.deepEqual(gotBob, [{ name: 'Ann', typing: true }]);
  await sleep(QUIET);
  assert.deepEqual(gotAnn, [], 'the sender does not get its own whisper');
});

test('whisper on a presence channel carries the sender user_id (members mode)', T, async () => {
  const annEcho = h.echo({ user: ANN });
  const bobEcho = h.echo({ user: BOB });
  const gotBob = [];
  const chAnn = annEcho.join('huddle.1');
  const chBob = bobEcho.join('huddle.1').listenForWhisper('typing', (data, meta) => gotBob.push({ data, meta }));
  await Promise.all([whenSubscribed(chAnn), whenSubscribed(chBob)]);

  chAnn.whisper('typing', { typing: true });
  await until(() => gotBob.length === 1, 'Bob receives the presence whisper');
  assert.deepEqual(gotBob[0].data, { typing: true });
  assert.equal(gotBob[0].meta && gotBob[0].meta.user_id, '1');
});

test('whisper to a channel the sender is not subscribed to is refused (members mode)', T, async () => {
  const annEcho = h.echo({ user: ANN });
  const bobEcho = h.echo({ user: BOB });
  const gotBob = [];
  const chBob = bobEcho.private('chat.10').listenForWhisper('typing', (e) => gotBob.push(e));
  await whenSubscribed(chBob);
  const ann = annEcho.connector.pusher;
  await connected(ann);
  // pusher-js only triggers on channels it has; send the raw client event.
  ann.send_event('client-typing', { forged: true }, 'private-chat.10');
  await until(() => ann.rec.messages.some((m) => m.event === 'pusher:error'), 'pusher:error');
  const err = ann.rec.messages.find((m) => m.event === 'pusher:error');
  assert.deepEqual(err.data, { code: 4009, message: 'The client is not a member of the specified channel.' });
  await sleep(QUIET);
  assert.deepEqual(gotBob, []);
});
