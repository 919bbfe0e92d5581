// One real browser: Chromium loads pusher-js's web build and Echo's iife
// build, connects to the server with Echo, joins a public and a presence
// channel; the Node SDK triggers and the test reads the page's state.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startServer } from '../lib/server.js';
import { startAuthServer, sdk } from '../lib/auth.js';
import { Harness, subscribed, until, SOCKET_ID } from '../lib/clients.js';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
let server;
let auth;
let h;
let api;
let profile;
let context;

before(async () => {
  server = await startServer({ apps: [{ app_id: 'web-app', key: 'web-key', secret: 'web-secret' }] });
  auth = await startAuthServer(server.app, server.port);
  h = new Harness(server, auth);
  api = sdk(server.app, server.apiPort);
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'reverb-e2e-chromium-'));
  // A persistent context is how Playwright takes a fresh --user-data-dir.
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

after(async () => {
  await context?.close();
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
  await h?.cleanup();
  await auth?.close();
  await server?.stop();
});

test('Chromium + Echo: public event and presence members', { timeout: 40000 }, async () => {
  // A Node member is already in the lobby when the browser arrives.
  const node = h.pusher({ user: { id: '41', name: 'Node Nell' } });
  const lobby = await subscribed(node, 'presence-lobby');

  const page = context.pages()[0] || (await context.newPage());
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  const q = new URLSearchParams({ key: server.app.key, wsPort: String(h.nextPort()), user: '42', name: 'Browser Bea' });
  await page.goto(`${auth.url}/page/index.html?${q}`);

  await page.waitForFunction(() => window.e2e.state === 'connected', null, { timeout: 10000 });
  const socketId = await page.evaluate(() => window.e2e.socketId);
  assert.match(socketId, SOCKET_ID);
  await page.waitForFunction(() => window.e2e.subscribed.length === 2 && window.e2e.members, null, { timeout: 10000 });

  const members = await page.evaluate(() => window.e2e.members);
  members.sort((a, b) => a.id.localeCompare(b.id));
  assert.deepEqual(members, [
    { id: '41', name: 'Node Nell' },
    { id: '42', name: 'Browser Bea' },
  ]);
  // The Node member sees the browser join.
  await until(() => lobby.members.get('42'), 'member_added for the browser user');
  assert.deepEqual(lobby.members.get('42').info, { id: '42', name: 'Browser Bea' });

  const payload = { title: 'Hello from Node', tags: ['e2e', 'chromium'], n: 3 };
  await api.trigger('public-news', 'NewsPublished', payload);
  await page.waitForFunction(() => window.e2e.received.length === 1, null, { timeout: 5000 });
  assert.deepEqual(await page.evaluate(() => window.e2e.received[0]), payload);

  // A later joiner shows up through Echo's joining() in the page.
  const late = h.pusher({ user: { id: '43', name: 'Late Lou' } });
  await subscribed(late, 'presence-lobby');
  await page.waitForFunction(() => window.e2e.joining.length === 1, null, { timeout: 5000 });
  assert.deepEqual(await page.evaluate(() => window.e2e.joining), [{ id: '43', name: 'Late Lou' }]);
  assert.deepEqual(pageErrors, []);
});
