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
