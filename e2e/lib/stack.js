// One server (or in cluster mode one cluster), its auth endpoint, a client
// harness and an SDK client per test file: started before the file's
// tests, torn down after them. The SDK talks to server.apiPort: in a
// cluster that is the last node, while each test's clients start at node 0.

import { before, after } from 'node:test';
import { startServer } from './server.js';
import { startAuthServer, sdk } from './auth.js';
import { Harness } from './clients.js';

// useStack registers the before/after hooks and hands the running parts to
// bind, so test files keep plain variables: server, auth, h (Harness), api.
export function useStack(serverOpts, bind) {
  let s = {};
  before(async () => {
    s.server = await startServer(serverOpts);
    s.auth = await startAuthServer(s.server.app, s.server.port);
    s.h = new Harness(s.server, s.auth);
    s.api = sdk(s.server.app, s.server.apiPort);
    bind(s);
  });
  after(async () => {
    await s.h?.cleanup();
    await s.auth?.close();
    await s.server?.stop();
  });
}
