// Starts the Go server under test as a child process: one binary per test
// process (or the one in REVERB_BIN), one free loopback port per server.

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const REPO_ROOT = path.resolve(import.meta.dirname, '..', '..');

let builtBin = null;

// binary returns the path of the reverb binary, building it once per process
// when REVERB_BIN is not set (npm test sets it, so the build happens once).
export function binary() {
  if (process.env.REVERB_BIN) return process.env.REVERB_BIN;
  if (builtBin) return builtBin;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reverb-e2e-bin-'));
  const out = path.join(dir, 'reverb');
  execFileSync('go', ['build', '-o', out, './cmd/reverb'], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  builtBin = out;
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return out;
}

// freePort asks the kernel for an unused loopback port. The tiny window
// between closing and the server binding is acceptable on a test machine.
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// getOnce does a GET on a fresh connection: a pooled keep-alive socket
// would hold the test process open for seconds after the last test.
function getOnce(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// appConfig mirrors one entry of Laravel's config/reverb.php apps.apps.
export function appConfig(overrides) {
  return {
    app_id: 'e2e-app',
    key: 'e2e-key',
    secret: 'e2e-secret',
    allowed_origins: ['*'],
    ping_interval: 60,
    activity_timeout: 30,
    max_message_size: 10000,
    accept_client_events_from: 'members',
    max_connections: null,
    rate_limiting: { enabled: false, max_attempts: 60, decay_seconds: 60, terminate_on_limit: false },
    ...overrides,
  };
}

// startServer spawns `reverb start` and resolves once GET /up answers
// {"health":"OK"}. opts.apps (array of app objects) writes a JSON config
// file; opts.env sets REVERB_APP_ID/KEY/SECRET (defaults: first app or the
// built-in e2e app); opts.port reuses a port (restart tests).
export async function startServer(opts = {}) {
  const bin = binary();
  const port = opts.port ?? (await freePort());
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'reverb-e2e-run-'));
  const args = ['start', '--host', '127.0.0.1', '--port', String(port)];
  const apps = opts.apps ? opts.apps.map(appConfig) : null;
  if (apps) {
    const file = path.join(tmp, 'reverb.json');
    fs.writeFileSync(file, JSON.stringify({ apps: { apps } }, null, 2));
    args.push('--config', file);
  }
  const envApp = opts.env || (apps ? apps[0] : appConfig({}));
  // Only our three REVERB_* variables: a developer's own REVERB_* settings
  // must not change what the suite tests. cwd is an empty dir so no .env
  // file from the repo is picked up either.
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('REVERB_')) env[k] = v;
  }
  env.REVERB_APP_ID = envApp.app_id;
  env.REVERB_APP_KEY = envApp.key;
  env.REVERB_APP_SECRET = envApp.secret;

  const child = spawn(bin, args, { cwd: tmp, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const keep = (chunk) => {
    log += chunk.toString();
    if (log.length > 200000) log = log.slice(-100000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
  });

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15000;
  let lastErr = null;
  for (;;) {
    if (exited) {
      fs.rmSync(tmp, { recursive: true, force: true });
      throw new Error(`reverb exited early (${JSON.stringify(exited)}): ${args.join(' ')}\n${log}`);
    }
    try {
      const { status, body } = await getOnce(`${url}/up`);
      if (status === 200 && JSON.parse(body).health === 'OK') break;
      lastErr = new Error(`/up answered ${status} ${body}`);
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      fs.rmSync(tmp, { recursive: true, force: true });
      throw new Error(`reverb did not become healthy: ${lastErr}\n${log}`);
    }
    await sleep(100);
  }

  // stop resolves with how the process ended: {code, signal, killed}
  // (killed = it ignored SIGTERM for 3 s).
  let killed = false;
  async function stop() {
    if (!exited) {
      child.kill('SIGTERM');
      let timer;
      const timeout = new Promise((r) => (timer = setTimeout(() => r('timeout'), 3000)));
      const first = await Promise.race([exitPromise, timeout]);
      clearTimeout(timer);
      if (first === 'timeout') {
        killed = true;
        child.kill('SIGKILL');
        await exitPromise;
      }
    }
    fs.rmSync(tmp, { recursive: true, force: true });
    return { ...exited, killed };
  }

  return { port, url, pid: child.pid, apps: apps || [envApp], app: envApp, logs: () => log, stop };
}
