// The live dashboard in a real browser: pusher-js clients open sockets and
// subscribe to channels, Chromium opens the metrics listener's page (with
// the bearer token) and the numbers it shows must be the ones the test
// created; on a cluster, node 0's page also lists the other nodes with
// their sockets. A screenshot is saved in e2e/artifacts/ for a person.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { chromium } from 'playwright-core';
import { startServer } from '../lib/server.js';
import { Harness, subscribed, connected, until } from '../lib/clients.js';
import { sdk } from '../lib/auth.js';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const TOKEN = 'dash-token';
const ARTIFACTS = path.resolve(import.meta.dirname, '..', 'artifacts');
let server;
let h;
let profile;
let context;

function get(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 2000, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

before(async () => {
  server = await startServer({
    apps: [{ app_id: 'dash-app', key: 'dash-key', secret: 'dash-secret' }],
    metrics: { token: TOKEN },
  });
  h = new Harness(server, null);
  // The metrics listener starts just after the WebSocket port answers.
  await until(async () => (await get(`${server.metricsUrl}/metrics`).catch(() => ({}))).status === 401, 'metrics listener up');
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'reverb-e2e-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 1400 },
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await context?.close();
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
  await h?.cleanup();
  await server?.stop();
});

test('dashboard shows the connections, channels and deliveries the test made', { timeout: 60000 }, async () => {
  const ports = server.ports;
  // Six clients: on a cluster three on node 0, two on node 1, one on node
  // 2, so every node has a count of its own to show.
  const where = ports.length > 1 ? [0, 0, 0, 1, 1, 2] : [0, 0, 0, 0, 0, 0];
  const clients = where.map((n) => h.pusher({ port: ports[n] }));
  await Promise.all(clients.map((c) => connected(c)));
  // dash-a: everyone; dash-b: the first three; dash-c: the first one.
  await Promise.all(clients.map((c) => subscribed(c, 'dash-a')));
  await Promise.all(clients.slice(0, 3).map((c) => subscribed(c, 'dash-b')));
  await subscribed(clients[0], 'dash-c');

  const mine = where.filter((n) => n === 0).length;
  const onNode0 = clients.filter((_, i) => where[i] === 0);
  const channels = new Set();
  let subs = 0;
  onNode0.forEach((c) => {
    const i = clients.indexOf(c);
    channels.add('dash-a');
    subs++;
    if (i < 3) {
      channels.add('dash-b');
      subs++;
    }
    if (i === 0) {
      channels.add('dash-c');
      subs++;
    }
  });

  // Events published through the HTTP API reach every dash-a socket.
  const api = sdk(server.app, ports[0]);
  for (let k = 0; k < 5; k++) await api.trigger('dash-a', 'tick', { k });
  await until(() => clients.every((c) => c.rec.messages.filter((m) => m.event === 'tick').length === 5), 'ticks delivered');

  const page = context.pages()[0] || (await context.newPage());
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${server.metricsUrl}/?token=${TOKEN}`);
  const tile = (metric) => `[data-app="dash-app"] [data-metric="${metric}"]`;
  await page.waitForFunction(
    ([sel, want]) => document.querySelector(sel)?.textContent === want,
    [tile('connections'), String(mine)],
    { timeout: 10000 },
  );
  await page.waitForFunction(() => Number(document.body.dataset.updates || 0) >= 3, null, { timeout: 10000 });
  const read = (metric) => page.textContent(tile(metric));
  assert.equal(await read('connections'), String(mine));
  assert.equal(await read('channels'), String(channels.size));
  assert.equal(await read('subscriptions'), String(subs));
  // 5 ticks to each dash-a socket of node 0 within the last minute.
  const count = await page.textContent('[data-app="dash-app"] .latency-count');
  assert.equal(count, `${5 * mine} deliveries`);
  assert.notEqual(await read('p99'), '–', 'a delivery-latency p99 is shown');

  if (server.cluster) {
    // Node 0 lists itself and the two others with their sockets, as their
    // heartbeats (once a second) report them.
    await page.waitForFunction(() => document.querySelectorAll('#nodes tbody tr[data-app="dash-app"]').length === 3, null, { timeout: 10000 });
    const rows = await page.$$eval('#nodes tbody tr[data-app="dash-app"]', (trs) =>
      trs.map((tr) => Number(tr.querySelector('[data-col="connections"]').textContent)),
    );
    assert.equal(rows[0], mine, 'this node first');
    assert.deepEqual(rows.slice(1).sort(), [1, 2], 'the other nodes');
    // Every node runs the metrics listener, so each row has its node's own
    // figures: channels and the last minute's deliveries (5 ticks to each
    // of its dash-a sockets), from its heartbeat.
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll('#nodes tbody tr[data-app="dash-app"]')].every(
          (tr) => tr.querySelector('[data-col="deliveries"]').textContent !== '–' && tr.querySelector('[data-col="deliveries"]').textContent !== '0',
        ),
      null,
      { timeout: 10000 },
    );
    const figures = await page.$$eval('#nodes tbody tr[data-app="dash-app"]', (trs) =>
      trs.map((tr) => [tr.querySelector('[data-col="connections"]').textContent, tr.querySelector('[data-col="channels"]').textContent, tr.querySelector('[data-col="deliveries"]').textContent].map(Number)),
    );
    // [connections, channels, deliveries]: node 0 has clients 0-2 (dash-a, -b, -c), node 1 clients 3-4
    // (dash-a), node 2 client 5 (dash-a).
    assert.deepEqual(figures[0], [3, 3, 15]);
    assert.deepEqual(figures.slice(1).sort((x, y) => x[0] - y[0]), [[1, 1, 5], [2, 1, 10]]);
    assert.equal(await page.textContent('[data-metric="cluster_connected"]'), 'up');
  } else {
    assert.equal(await page.isHidden('#nodes-panel'), true);
  }

  // The charts are drawn: blue ink (the connections line, the latency
  // bars) on the canvases.
  const blue = (sel) =>
    page.$eval(sel, (c) => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i + 2] > 200 && d[i] < 120) n++;
      return n;
    });
  assert.ok((await blue('[data-app="dash-app"] .chart-conns')) > 0, 'connections line drawn');
  const bars = await blue('[data-app="dash-app"] .chart-latency');
  assert.ok(bars > 200, `latency histogram bars drawn (${bars} blue pixels)`);

  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const shot = path.join(ARTIFACTS, server.cluster ? 'dashboard-cluster.png' : 'dashboard.png');
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(fs.statSync(shot).size > 10000, 'screenshot saved');
  assert.deepEqual(errors, []);

  // Without the token the page's data is refused.
  const denied = await get(`${server.metricsUrl}/api/stats`);
  assert.equal(denied.status, 401);
});
