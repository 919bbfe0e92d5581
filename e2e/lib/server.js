// Starts the Go server under test as child processes: one binary per test
// process (or the one in REVERB_BIN), one free loopback port per server;
// in cluster mode (E2E_CLUSTER=1) a redis-server and three scaled nodes.

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
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  execFileSync('go', ['build', '-o', out, './cmd/reverb'], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  builtBin = out;
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

// CLUSTER is true for the cluster run (E2E_CLUSTER=1, set by lib/run.js):
// startServer then starts a redis-server and CLUSTER_NODES scaled nodes
// instead of one process.
export const CLUSTER = process.env.E2E_CLUSTER === '1';
export const CLUSTER_NODES = 3;
// REDIS_CLUSTER is true when the cluster run bridges its nodes over a Redis
// Cluster of REDIS_MASTERS masters (E2E_REDIS=cluster, set by lib/run.js for
// E2E_CLUSTER=redis-cluster) instead of one redis-server.
export const REDIS_CLUSTER = process.env.E2E_REDIS === 'cluster';
export const REDIS_MASTERS = 3;

// startServer starts what a test file talks to: one `reverb start` process,
// or in cluster mode one redis-server plus three nodes scaled over it, with
// the same options. Both answer the same shape:
//   port, url   where clients connect by default (node 0 in a cluster)
//   ports       every node's port; the Harness spreads clients over them
//   apiPort     where SDK/HTTP API calls go (the last node in a cluster)
//   app, apps, logs(), stop(), nodes, cluster
// opts.port (reuse a port: restart tests) always means one process.
export async function startServer(opts = {}) {
  if (CLUSTER && opts.port === undefined) return startCluster(opts);
  return startNode(opts);
}

// startNode spawns `reverb start` and resolves once GET /up answers
// {"health":"OK"}. opts.apps (array of app objects) writes a JSON config
// file; opts.env sets REVERB_APP_ID/KEY/SECRET (defaults: first app or the
// built-in e2e app); opts.port reuses a port (restart tests); opts.redisPort
// turns scaling on against that Redis; opts.serverEnv adds env settings;
// opts.metrics ({token}) turns the metrics listener on, on a free port
// (metricsUrl in the result).
export async function startNode(opts = {}) {
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
  // Only our own REVERB_* and REDIS_* variables: a developer's settings
  // (say REDIS_URL or REVERB_SCALING_CHANNEL) must not change what the
  // suite tests. cwd is an empty dir so no .env file from the repo is
  // picked up either, and the state dir is private: a `reverb restart`
  // elsewhere on this machine must not stop the servers under test.
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('REVERB_') && !k.startsWith('REDIS_')) env[k] = v;
  }
  env.REVERB_APP_ID = envApp.app_id;
  env.REVERB_APP_KEY = envApp.key;
  env.REVERB_APP_SECRET = envApp.secret;
  env.REVERB_STATE_DIR = path.join(tmp, 'state');
  // opts.serverEnv: extra REVERB_* settings of the node (e.g. webhook delay).
  Object.assign(env, opts.serverEnv || {});
  let metricsUrl = null;
  if (opts.metrics) {
    const mport = await freePort();
    env.REVERB_METRICS_ENABLED = 'true';
    env.REVERB_METRICS_HOST = '127.0.0.1';
    env.REVERB_METRICS_PORT = String(mport);
    if (opts.metrics.token) env.REVERB_METRICS_TOKEN = opts.metrics.token;
    metricsUrl = `http://127.0.0.1:${mport}`;
  }
  if (opts.redisNodes) {
    env.REVERB_SCALING_ENABLED = 'true';
    env.REDIS_CLUSTER_NODES = opts.redisNodes.map((p) => `127.0.0.1:${p}`).join(',');
  } else if (opts.redisPort) {
    env.REVERB_SCALING_ENABLED = 'true';
    env.REDIS_HOST = '127.0.0.1';
    env.REDIS_PORT = String(opts.redisPort);
  }

  const child = spawn(bin, args, { cwd: tmp, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const proc = watch(child);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15000;
  let lastErr = null;
  for (;;) {
    if (proc.exited) {
      fs.rmSync(tmp, { recursive: true, force: true });
      throw new Error(`reverb exited early (${JSON.stringify(proc.exited)}): ${args.join(' ')}\n${proc.log()}`);
    }
    try {
      const { status, body } = await getOnce(`${url}/up`);
      if (status === 200 && JSON.parse(body).health === 'OK') break;
      lastErr = new Error(`/up answered ${status} ${body}`);
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      await proc.stop();
      fs.rmSync(tmp, { recursive: true, force: true });
      throw new Error(`reverb did not become healthy: ${lastErr}\n${proc.log()}`);
    }
    await sleep(100);
  }

  // stop resolves with how the process ended: {code, signal, killed}
  // (killed = it ignored SIGTERM for 3 s).
  async function stop() {
    const exit = await proc.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
    return exit;
  }

  return {
    port,
    url,
    ports: [port],
    apiPort: port,
    pid: child.pid,
    apps: apps || [envApp],
    app: envApp,
    logs: proc.log,
    stop,
    cluster: false,
    metricsUrl,
  };
}

// watch keeps the tail of a child's output and gives it a stop(): SIGTERM
// to its PID, SIGKILL after 3 s. If the test process exits without calling
// stop (a crash, --test-force-exit), the child is SIGKILLed by PID so no
// server or redis-server outlives the run.
function watch(child) {
  let log = '';
  const keep = (chunk) => {
    log += chunk.toString();
    if (log.length > 200000) log = log.slice(-100000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const proc = { exited: null, log: () => log };
  const reaper = () => {
    if (!proc.exited) child.kill('SIGKILL');
  };
  process.on('exit', reaper);
  const exitPromise = new Promise((resolve) => {
    const ended = (how) => {
      if (proc.exited) return;
      proc.exited = how;
      process.off('exit', reaper);
      resolve(how);
    };
    child.on('exit', (code, signal) => ended({ code, signal }));
    // A binary that cannot be run never gets a PID and may never 'exit'.
    child.on('error', (err) => {
      if (child.pid === undefined) ended({ code: null, signal: null, error: err.code });
    });
  });
  let killed = false;
  proc.stop = async () => {
    if (!proc.exited) {
      child.kill('SIGTERM');
      let timer;
      const timeout = new Promise((r) => (timer = setTimeout(() => r('timeout'), 3000)));
      const first = await Promise.race([exitPromise, timeout]);
      clearTimeout(timer);
      if (first === 'timeout') {
        killed = true;
        child.kill('SIGKILL');
      }
    }
    await exitPromise;
    return { ...proc.exited, killed };
  };
  return proc;
}

// redisCall sends one command to a Redis on a loopback port and resolves
// with its decoded reply (strings, integers, arrays; an error reply
// rejects). Enough RESP for PING and PUBSUB NUMSUB; no client library.
export function redisCall(port, ...args) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = '';
    const done = (err, v) => {
      sock.destroy();
      if (err) reject(err);
      else resolve(v);
    };
    sock.setTimeout(2000, () => done(new Error('redis: timeout')));
    sock.on('error', (err) => done(err));
    sock.on('connect', () => {
      sock.write(`*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join(''));
    });
    sock.setEncoding('utf8');
    sock.on('data', (chunk) => {
      buf += chunk;
      const r = parseReply(buf, 0);
      if (r === null) return;
      if (r.value instanceof Error) done(r.value);
      else done(null, r.value);
    });
  });
}

// parseReply decodes the RESP reply at buf[i], or returns null if it is not
// complete yet. Lengths are in bytes; the replies used here are ASCII.
function parseReply(buf, i) {
  const eol = buf.indexOf('\r\n', i);
  if (eol < 0) return null;
  const type = buf[i];
  const line = buf.slice(i + 1, eol);
  const next = eol + 2;
  if (type === '+') return { value: line, end: next };
  if (type === '-') return { value: new Error(`redis: ${line}`), end: next };
  if (type === ':') return { value: Number(line), end: next };
  if (type === '$') {
    const n = Number(line);
    if (n < 0) return { value: null, end: next };
    if (buf.length < next + n + 2) return null;
    return { value: buf.slice(next, next + n), end: next + n + 2 };
  }
  if (type === '*') {
    const items = [];
    let at = next;
    for (let k = 0; k < Number(line); k++) {
      const r = parseReply(buf, at);
      if (r === null) return null;
      items.push(r.value);
      at = r.end;
    }
    return { value: items, end: at };
  }
  return { value: new Error(`redis: unexpected reply ${JSON.stringify(buf)}`), end: buf.length };
}

// startRedis runs `redis-server` (REDIS_SERVER_BIN overrides the path) on a
// free loopback port without persistence and resolves once it answers
// PING. A port taken between freePort and the bind is retried.
export async function startRedis(extra = () => []) {
  const bin = process.env.REDIS_SERVER_BIN || 'redis-server';
  let lastErr = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'reverb-e2e-redis-'));
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmp, ...(await extra(tmp))];
    const child = spawn(bin, args, { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
    const proc = watch(child);
    const deadline = Date.now() + 10000;
    let ready = false;
    while (Date.now() < deadline) {
      await sleep(20);
      if (proc.exited?.error) {
        fs.rmSync(tmp, { recursive: true, force: true });
        throw new Error(`cannot run ${bin} (${proc.exited.error}): install redis-server (apt-get install redis-server) or set REDIS_SERVER_BIN`);
      }
      if (proc.exited) break;
      try {
        if ((await redisCall(port, 'PING')) === 'PONG') {
          ready = true;
          break;
        }
      } catch (err) {
        lastErr = err;
      }
    }
    if (ready) {
      const stop = async () => {
        const exit = await proc.stop();
        fs.rmSync(tmp, { recursive: true, force: true });
        return exit;
      };
      return { port, pid: child.pid, logs: proc.log, stop };
    }
    await proc.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
    lastErr = new Error(`redis-server on port ${port} did not answer PING (${JSON.stringify(proc.exited)}): ${lastErr}\n${proc.log()}`);
  }
  throw lastErr;
}

// startRedisCluster starts REDIS_MASTERS redis-servers in cluster mode,
// gives each an equal share of the 16384 slots, joins them (CLUSTER MEET
// with their bus ports) and resolves once every node reports
// cluster_state:ok. Same shape as startRedis: ports, logs(), stop().
export async function startRedisCluster() {
  const servers = [];
  const buses = [];
  const stop = async () => Promise.all(servers.map((r) => r.stop()));
  try {
    for (let i = 0; i < REDIS_MASTERS; i++) {
      const bus = await freePort();
      buses.push(bus);
      servers.push(
        await startRedis((dir) => [
          '--cluster-enabled', 'yes', '--cluster-port', String(bus),
          '--cluster-config-file', path.join(dir, 'nodes.conf'), '--cluster-node-timeout', '2000',
        ]),
      );
    }
    for (let i = 0; i < REDIS_MASTERS; i++) {
      const lo = Math.floor((i * 16384) / REDIS_MASTERS);
      const hi = Math.floor(((i + 1) * 16384) / REDIS_MASTERS) - 1;
      await redisCall(servers[i].port, 'CLUSTER', 'ADDSLOTSRANGE', String(lo), String(hi));
      if (i > 0) await redisCall(servers[0].port, 'CLUSTER', 'MEET', '127.0.0.1', String(servers[i].port), String(buses[i]));
    }
    const deadline = Date.now() + 20000;
    for (const r of servers) {
      for (;;) {
        const info = String(await redisCall(r.port, 'CLUSTER', 'INFO'));
        if (info.includes('cluster_state:ok') && info.includes(`cluster_known_nodes:${REDIS_MASTERS}\r`)) break;
        if (Date.now() > deadline) throw new Error(`Redis Cluster node ${r.port} not ready: ${info}`);
        await sleep(50);
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    port: servers[0].port,
    ports: servers.map((r) => r.port),
    pids: servers.map((r) => r.pid),
    logs: () => servers.map((r, i) => `--- redis cluster node ${i}\n${r.logs()}`).join('\n'),
    stop,
  };
}

// controlSubscribers counts the nodes listening on the control channel:
// PUBSUB NUMSUB "reverb" on one Redis, or PUBSUB SHARDNUMSUB "{reverb}" (a
// shard channel) summed over a Redis Cluster's nodes.
async function controlSubscribers(redis) {
  if (!REDIS_CLUSTER) return (await redisCall(redis.port, 'PUBSUB', 'NUMSUB', 'reverb'))[1];
  let n = 0;
  for (const p of redis.ports) n += (await redisCall(p, 'PUBSUB', 'SHARDNUMSUB', '{reverb}'))[1];
  return n;
}

// startCluster starts one redis-server and CLUSTER_NODES `reverb start`
// processes with the same apps and scaling enabled against it, and resolves
// once every node answers /up and every node's broker has subscribed the
// control channel (PUBSUB NUMSUB "reverb"), i.e. the cluster is formed.
// Its stop() stops every node and then Redis, each by PID.
export async function startCluster(opts = {}) {
  const redis = REDIS_CLUSTER ? await startRedisCluster() : await startRedis();
  // On a Redis Cluster one seed is enough for a node: each gets a different one.
  const redisOpts = (i) => (REDIS_CLUSTER ? { redisNodes: [redis.ports[i % redis.ports.length]] } : { redisPort: redis.port });
  const started = await Promise.allSettled(
    Array.from({ length: CLUSTER_NODES }, (_, i) => startNode({ ...opts, ...redisOpts(i) })),
  );
  const nodes = started.filter((r) => r.status === 'fulfilled').map((r) => r.value);
  const stop = async () => {
    const exits = await Promise.all(nodes.map((n) => n.stop()));
    await redis.stop();
    return exits;
  };
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    await stop();
    throw failed.reason;
  }
  const logs = () =>
    [...nodes.map((n, i) => `--- node ${i} (port ${n.port})\n${n.logs()}`), `--- redis-server\n${redis.logs()}`].join('\n');
  const deadline = Date.now() + 10000;
  for (;;) {
    let subscribers = 0;
    try {
      subscribers = await controlSubscribers(redis);
    } catch {}
    if (subscribers >= CLUSTER_NODES) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`only ${subscribers} of ${CLUSTER_NODES} nodes subscribed the control channel\n${logs()}`);
    }
    await sleep(50);
  }
  const first = nodes[0];
  return {
    port: first.port,
    url: first.url,
    ports: nodes.map((n) => n.port),
    apiPort: nodes[nodes.length - 1].port,
    pid: first.pid,
    apps: first.apps,
    app: first.app,
    logs,
    stop,
    nodes,
    redis,
    cluster: true,
    metricsUrl: first.metricsUrl,
  };
}
