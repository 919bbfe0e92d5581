// `npm test`: builds the server once (unless REVERB_BIN is set) and runs
// every test file under node --test with that binary, against one server
// process and/or against a three-node cluster scaled over a redis-server
// (see lib/server.js startCluster). Extra arguments are passed to node
// --test (e.g. `npm test -- --test-name-pattern=cache`).
// --test-force-exit: after a server-initiated close, pusher-js's bundled
// faye-websocket keeps a 30 s close timer alive; it must not stall the run.
//
// E2E_CLUSTER chooses the runs:
//   unset  the single-node run, then (if CLUSTER_BY_DEFAULT) the cluster run
//          on one redis-server and the cluster run on a Redis Cluster
//   0      the single-node run only
//   1      the cluster run only
//   both   both runs
//   redis-cluster  the cluster run only, its nodes bridged by a Redis Cluster
//          of three masters (sharded pub/sub) instead of one redis-server

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { binary } from './server.js';

// CLUSTER_BY_DEFAULT: plain `npm test` runs the cluster suite after the
// single-node one (it passes since presence, channel queries and cache
// channels are cluster-wide).
const CLUSTER_BY_DEFAULT = true;

// CLUSTER_SKIP: test files the cluster run leaves out, with the reason
// printed. Keep it minimal: only files whose subject is one process, not
// what clients see of the server. Everything else runs on the cluster,
// failures included.
const CLUSTER_SKIP = {
  // The test stops one `reverb start` with SIGTERM and starts a new process
  // on the same port behind a proxy: it is about one process's lifecycle
  // (close 4200, reconnect to the new process), not about cluster delivery.
  'restart.test.js': 'stops one server process and restarts it on the same port (a single-process lifecycle)',
  // max_connections in a cluster is a cluster-wide total that each node
  // learns from the others' once-a-second reports (README.md, "Scaling over
  // Redis"), so an immediate 4004 for a second client on another node, and
  // an immediately reusable slot, hold for one process only.
  'quota.test.js': 'max_connections is exact only within one process; across nodes the count trails by about 1 s by design',
};

const testDir = path.resolve(import.meta.dirname, '..', 'test');
const allFiles = fs
  .readdirSync(testDir)
  .filter((f) => f.endsWith('.test.js'))
  .sort();

const mode = process.env.E2E_CLUSTER;
const runs = [];
if (mode !== '1' && mode !== 'redis-cluster') runs.push('single');
if (mode === '1' || mode === 'both' || (mode === undefined && CLUSTER_BY_DEFAULT)) runs.push('cluster');
if (mode === 'redis-cluster' || (mode === undefined && CLUSTER_BY_DEFAULT)) runs.push('redis-cluster');

function redisAvailable() {
  const bin = process.env.REDIS_SERVER_BIN || 'redis-server';
  const res = spawnSync(bin, ['--version'], { stdio: 'ignore' });
  return !res.error && res.status === 0;
}

const bin = binary();
const results = [];
for (const run of runs) {
  const cluster = run === 'cluster' || run === 'redis-cluster';
  const files = allFiles.filter((f) => !(cluster && CLUSTER_SKIP[f]));
  console.log(
    run === 'redis-cluster'
      ? '\n=== Redis Cluster run: a 3-master Redis Cluster + 3 nodes per test file (E2E_CLUSTER=redis-cluster) ==='
      : cluster
        ? '\n=== cluster run: 1 redis-server + 3 nodes per test file (E2E_CLUSTER=1) ==='
        : '\n=== single-node run: 1 server process per test file ===',
  );
  if (cluster) {
    for (const [f, why] of Object.entries(CLUSTER_SKIP)) console.log(`skipped in the cluster run: ${f}: ${why}`);
    if (!redisAvailable()) {
      console.log('redis-server is not installed (apt-get install redis-server, or set REDIS_SERVER_BIN)');
      results.push({ run, status: 1, seconds: 0 });
      continue;
    }
  }
  const start = Date.now();
  const res = spawnSync(
    process.execPath,
    ['--test', '--test-concurrency=2', '--test-force-exit', ...process.argv.slice(2), ...files.map((f) => path.join(testDir, f))],
    {
      stdio: 'inherit',
      env: { ...process.env, REVERB_BIN: bin, E2E_CLUSTER: cluster ? '1' : '0', E2E_REDIS: run === 'redis-cluster' ? 'cluster' : 'single' },
    },
  );
  results.push({ run, status: res.status ?? 1, seconds: (Date.now() - start) / 1000 });
}

console.log('');
for (const r of results) {
  const label = { single: 'single-node run', cluster: 'cluster run    ', 'redis-cluster': 'Redis Cluster run' }[r.run];
  console.log(`${label}: ${r.status === 0 ? 'passed' : 'FAILED'} in ${r.seconds.toFixed(1)} s`);
}
process.exitCode = results.every((r) => r.status === 0) ? 0 : 1;
