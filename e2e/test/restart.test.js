// Restart: SIGTERM closes every socket with 4200, pusher-js reconnects at
// once and resubscribes on the restarted server (PROTOCOL.md §2.6, §10.6).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.js';
import { startAuthServer, sdk } from '../lib/auth.js';
import { Harness, connected, subscribed, until, errorCode } from '../lib/clients.js';

const APP = { app_id: 'restart-app', key: 'restart-key', secret: 'restart-secret' };
const servers = [];
let auth;
let h;

after(async () => {
  await h?.cleanup();
  await auth?.close();
  for (const s of servers) await s.stop();
});

test('SIGTERM: close 4200, then pusher-js reconnects and resubscribes to the new process', { timeout: 20000 }, async () => {
  const first = await startServer({ apps: [APP] });
  servers.push(first);
  auth = await startAuthServer(first.app, first.port);
  h = new Harness(first, auth);

  // Clients reach the server through a proxy that holds a connection
  // attempt until the new process listens (see countingProxy).
  const proxy = await h.proxy({ patienceMs: 5000 });
  const c = h.pusher({ user: { id: '1' }, port: proxy.port });
  const oldId = await connected(c);
  const news = await subscribed(c, 'news');
  const priv = await subscribed(c, 'private-news');
  const got = [];
  news.bind('Headline', (d) => got.push(d));
  priv.bind('Headline', (d) => got.push(d));

  const exit = await first.stop();
  assert.deepEqual(exit, { code: 0, signal: null, killed: false }, 'SIGTERM exits 0 within 3 s');
  await until(() => c.rec.errors.some((e) => errorCode(e) === 4200), 'close code 4200');

  const second = await startServer({ apps: [APP], port: first.port });
  servers.push(second);
  await until(
    () => c.connection.state === 'connected' && c.connection.socket_id !== oldId,
    'reconnect to the new process',
    8000,
  );
  const api = sdk(APP, second.port);
  // pusher-js resubscribes by itself (private via the auth endpoint again).
  await until(async () => {
    const res = await api.get({ path: '/channels' });
    const { channels } = await res.json();
    return channels.news && channels['private-news'];
  }, 'both channels resubscribed on the new server', 10000);
  await api.trigger(['news', 'private-news'], 'Headline', { back: true });
  await until(() => got.length === 2, 'events after the restart');
  assert.deepEqual(got, [{ back: true }, { back: true }]);
});

// A restart without a gap (README, "Restarts"): two processes serve one
// port with REVERB_REUSE_PORT; the old one is stopped while the new one
// runs. Its clients' immediate reconnects reach the new process directly,
// without waiting out pusher-js's retry delay, and resubscribe there. (That
// the old process releases its socket before its 4200s is held by
// loop's TestShutdown and TestShutdownHandsReconnectsToPeer, which dial in
// the instant after the 4200; pusher-js, slower, rarely hits that window.)
test('REVERB_REUSE_PORT: the clients of a stopped process reconnect at once to the one that stays', { timeout: 20000 }, async () => {
  const serverEnv = { REVERB_REUSE_PORT: 'true', REVERB_EVENT_LOOPS: '1' };
  const old = await startServer({ apps: [APP], serverEnv });
  servers.push(old);
  const stays = await startServer({ apps: [APP], port: old.port, serverEnv });
  servers.push(stays);
  const h2 = new Harness(old, null);
  // The kernel spreads connections over the two by hash: 16 clients leave
  // the old process without any in one run out of 65,536.
  const clients = Array.from({ length: 16 }, () => h2.pusher({ port: old.port }));
  const ids = await Promise.all(clients.map((c) => connected(c)));
  const got = clients.map(() => []);
  await Promise.all(
    clients.map(async (c, i) => (await subscribed(c, 'news')).bind('Headline', (d) => got[i].push(d))),
  );

  try {
    const exit = await old.stop();
    assert.deepEqual(exit, { code: 0, signal: null, killed: false }, 'SIGTERM exits 0 within 3 s');
    const moved = clients.filter((c) => c.rec.errors.some((e) => errorCode(e) === 4200));
    assert.ok(moved.length > 0, 'some clients were on the stopped process');
    await until(
      () => moved.every((c) => c.connection.state === 'connected' && c.connection.socket_id !== ids[clients.indexOf(c)]),
      'every client of the stopped process connected to the other one',
      3000,
    );
    const api = sdk(APP, stays.port);
    await until(async () => {
      const res = await api.get({ path: '/channels/news', params: { info: 'subscription_count' } });
      return (await res.json()).subscription_count === clients.length;
    }, 'all 16 subscribed on the process that stays');
    await api.trigger('news', 'Headline', { after: 'restart' });
    await until(() => got.every((g) => g.length === 1), 'the event on every client');
  } finally {
    await h2.cleanup();
  }
});
