// Pusher webhooks (PROTOCOL.md §12, §6.4) as a Laravel app receives them:
// every request is checked with the official `pusher` Node SDK's
// webhook().isValid(), so the signature, key and body shape are judged by
// code nobody here wrote. On the cluster run the clients are spread over
// three nodes that all send to the same receiver: each transition must
// still arrive exactly once.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { useStack } from '../lib/stack.js';
import { sdk } from '../lib/auth.js';
import { connected, subscribed, until, sleep } from '../lib/clients.js';

const T = { timeout: 30000 };
const DELAY_MS = 1000; // REVERB_WEBHOOK_DELAY below
const APP = { app_id: 'hook-app', key: 'hook-key', secret: 'hook-secret', accept_client_events_from: 'members' };

// The receiver: a stand-in for the Laravel route, verifying with the SDK.
const verifier = sdk(APP, 1);
const received = []; // { name, channel, user_id, ..., at }
const rejected = [];
const requests = [];
const receiver = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const rawBody = Buffer.concat(chunks).toString('utf8');
    const wh = verifier.webhook({ headers: req.headers, rawBody });
    if (!wh.isValid()) {
      rejected.push({ headers: req.headers, rawBody });
      res.writeHead(401).end();
      return;
    }
    requests.push({ headers: req.headers, time: wh.getTime() });
    for (const e of wh.getEvents()) received.push({ ...e, at: Date.now() });
    res.writeHead(200).end('{}');
  });
});
await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
after(() => new Promise((r) => receiver.close(r)));
const url = `http://127.0.0.1:${receiver.address().port}/pusher/webhook`;

let h;
useStack(
  {
    apps: [
      {
        ...APP,
        webhooks: [
          { url, headers: { 'X-From': 'reverb' }, filter: { channel_name_starts_with: 'presence-' } },
          { url, event_types: ['cache_miss', 'client_event'], filter: { channel_name_starts_with: 'cache-' } },
        ],
      },
    ],
    serverEnv: { REVERB_WEBHOOK_DELAY: String(DELAY_MS / 1000), REVERB_WEBHOOK_BATCH_WINDOW: '0.1' },
  },
  (s) => ({ h } = s),
);

const of = (channel) => received.filter((e) => e.channel === channel).map((e) => e.name + (e.user_id ? ':' + e.user_id : ''));

test('presence: occupied, added, client_event, removed, vacated — each once, verified by the pusher SDK', T, async () => {
  const room = 'presence-hooks';
  const ann1 = h.pusher({ user: { id: '1', name: 'Ann' } });
  const ann2 = h.pusher({ user: { id: '1', name: 'Ann' } });
  const bob = h.pusher({ user: { id: '2', name: 'Bob' } });
  for (const p of [ann1, ann2, bob]) {
    await connected(p);
    await subscribed(p, room);
  }
  await until(() => of(room).length >= 3, 'occupied and two members');
  bob.channel(room).trigger('client-typing', { typing: true });
  await until(() => of(room).includes('client_event:2'), 'the client event');
  const ce = received.find((e) => e.name === 'client_event');
  assert.equal(ce.event, 'client-typing');
  assert.deepEqual(JSON.parse(ce.data), { typing: true });
  assert.equal(ce.socket_id, bob.connection.socket_id);

  // Ann closes one socket of two: nothing. Bob leaves and is back within
  // the delay: nothing either.
  ann1.disconnect();
  bob.disconnect();
  const bob2 = h.pusher({ user: { id: '2', name: 'Bob' } });
  await connected(bob2);
  await subscribed(bob2, room);
  await sleep(DELAY_MS + 700);
  assert.deepEqual(of(room).sort(), ['channel_occupied', 'client_event:2', 'member_added:1', 'member_added:2'].sort());

  const left = Date.now();
  ann2.disconnect();
  bob2.disconnect();
  await until(() => of(room).length >= 7, 'both removed and the channel vacated', DELAY_MS + 5000);
  await sleep(500);
  assert.deepEqual(
    of(room).sort(),
    ['channel_occupied', 'client_event:2', 'member_added:1', 'member_added:2', 'member_removed:1', 'member_removed:2', 'channel_vacated'].sort(),
  );
  const vacated = received.find((e) => e.channel === room && e.name === 'channel_vacated');
  assert.ok(vacated.at - left >= DELAY_MS - 50, `vacated after ${vacated.at - left} ms, before the ${DELAY_MS} ms delay`);
  assert.ok(requests.some((r) => r.headers['x-from'] === 'reverb'), 'custom header');
  assert.ok(requests.every((r) => r.headers['content-type'] === 'application/json'));
  assert.equal(rejected.length, 0);
});

test('event_types and channel filters: cache_miss only where asked for', T, async () => {
  const p = h.pusher();
  await connected(p);
  await subscribed(p, 'cache-news');
  await subscribed(p, 'public-news'); // no webhook wants public channels
  await until(() => of('cache-news').includes('cache_miss'), 'cache_miss');
  await sleep(500);
  // The second target takes cache_miss and client_event on cache-* only:
  // no occupied for cache-news, nothing at all for public-news.
  assert.deepEqual(of('cache-news'), ['cache_miss']);
  assert.deepEqual(of('public-news'), []);
  assert.equal(rejected.length, 0);
});
