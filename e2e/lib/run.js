// `npm test`: builds the server once (unless REVERB_BIN is set) and runs
// every test file under node --test with that binary. Extra arguments are
// passed to node --test (e.g. `npm test -- --test-name-pattern=cache`).
// --test-force-exit: after a server-initiated close, pusher-js's bundled
// faye-websocket keeps a 30 s close timer alive; it must not stall the run.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { binary } from './server.js';

const testDir = path.resolve(import.meta.dirname, '..', 'test');
const files = fs
  .readdirSync(testDir)
  .filter((f) => f.endsWith('.test.js'))
  .sort()
  .map((f) => path.join(testDir, f));

const bin = binary();
const res = spawnSync(
  process.execPath,
  ['--test', '--test-concurrency=2', '--test-force-exit', ...process.argv.slice(2), ...files],
  { stdio: 'inherit', env: { ...process.env, REVERB_BIN: bin } },
);
process.exitCode = res.status ?? 1;
