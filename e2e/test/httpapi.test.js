// Reverb's HTTP API through the official `pusher` Node SDK, checked against
// the clients actually connected (PROTOCOL.md §9.3, §9.5–§9.9, §9.11).

import { test } from 'node:test';
import { sdk } from '../lib/auth.js';
import { useStack } from '../lib/stack.js';
import assert from 'node:assert/strict';
import { subscribed, until } from '../lib/clients.js';

const T = { timeout: 20000 };
let server;
let auth;
let h;
let api;

useStack({ apps: [{ app_id: 'api-app', key: 'api-key', secret: 'api-secret' }] }, (s) => ({ server, auth, h, api } = s));

async function get(path, params) {
  const res = await api.get({ path, params });
  assert.equal(res.status, 200, `GET ${path}`);
  return res.json();
}

async function status(path, params) {
  try {
    const res = await api.get({ path, params });
    return res.status;
  } catch (err) {
    return err.status;
  }
}

test('channel listings and counts follow the connected clients', T, async () => {
  // news: 2 sockets; private-news: 1; presence-room: user 1 twice, user 2 once.
  const n1 = h.pusher();
  const n2 = h.pusher();
  const pn = h.pusher();
  const u1a = h.pusher({ user: { id: '1' } });
  const u2 = h.pusher({ user: { id: '2' } });
  const u1b = h.pusher({ user: { id: '1' } });
  await subscribed(n1, 'news');
  await subscribed(n2, 'news');
  await subscribed(pn, 'private-news');
  await subscribed(u1a, 'presence-room');
  await subscribed(u2, 'presence-room');
  await subscribed(u1b, 'presence-room');

  const all = await get('/channels');
  assert.deepEqual(all, { channels: { news: {}, 'private-news': {}, 'presence-room': {} } });

  assert.deepEqual(await get('/channels', { filter_by_prefix: 'presence-', info: 'user_count' }), {
    channels: { 'presence-room': { user_count: 2 } },
  });
  assert.deepEqual(await get('/channels', { filter_by_prefix: 'p' }), {
    channels: { 'private-news': {}, 'presence-room': {} },
  });

  assert.deepEqual(await get('/channels/news', { info: 'subscription_count' }), { occupied: true, subscription_count: 2 });
  assert.deepEqual(await get('/channels/private-news', { info: 'subscription_count' }), {
    occupied: true,
    subscription_count: 1,
  });
  assert.deepEqual(await get('/channels/presence-room', { info: 'user_count,subscription_count' }), {
    occupied: true,
    user_count: 2,
  });
  assert.deepEqual(await get('/channels/presence-room/users'), { users: [{ id: '1' }, { id: '2' }] });
  assert.deepEqual(await get('/channels/nobody-here', { info: 'subscription_count' }), { occupied: false });
  assert.equal(await status('/channels/nobody-here/users'), 404);
  assert.equal(await status('/channels/news/users'), 400);
  assert.deepEqual(await get('/connections'), { connections: 6 });

  // Trigger with info reports the counts of every listed channel.
  const res = await api.trigger(['news', 'presence-room'], 'Counted', { x: 1 }, { info: 'user_count,subscription_count' });
  assert.deepEqual(await res.json(), {
    channels: { news: { subscription_count: 2 }, 'presence-room': { user_count: 2 } },
  });

  // Leaving updates every view: one news socket and user 2 go away; user 1
  // keeps one of two sockets.
  n2.disconnect();
  u2.disconnect();
  u1b.disconnect();
  await until(async () => (await get('/channels/news', { info: 'subscription_count' })).subscription_count === 1, 'news count 1');
  await until(async () => (await get('/channels/presence-room', { info: 'user_count' })).user_count === 1, 'user count 1');
  assert.deepEqual(await get('/channels/presence-room/users'), { users: [{ id: '1' }] });
  await until(async () => (await get('/connections')).connections === 3, '3 connections');

  // Once everyone is gone the listing is an empty OBJECT (§9.5).
  n1.disconnect();
  pn.disconnect();
  u1a.disconnect();
  await until(async () => Object.keys((await get('/channels')).channels).length === 0, 'no channels');
  assert.deepEqual(await get('/channels'), { channels: {} });
});

test('a bad signature is refused with 401', T, async () => {
  const wrong = sdk({ ...server.app, secret: 'not-the-secret' }, server.port);
  await assert.rejects(wrong.get({ path: '/channels' }), (err) => err.status === 401);
  await assert.rejects(wrong.trigger('news', 'X', {}), (err) => err.status === 401);
});
