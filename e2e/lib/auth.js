// A stand-in for a Laravel app: /broadcasting/auth and /broadcasting/user-auth
// signed with the official `pusher` Node SDK, plus static files for the
// Chromium page. The user is picked per client with request headers:
//   X-User-Id, X-User-Name  who the client is (default "1" / "User 1")
//   X-Auth-Mode: bad-secret  sign with a wrong secret (the server must refuse)
//   X-Auth-Mode: deny        answer 403 like Laravel for a forbidden channel

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import Pusher from 'pusher';

const E2E_ROOT = path.resolve(import.meta.dirname, '..');
const STATIC_ROOTS = {
  '/node_modules/': path.join(E2E_ROOT, 'node_modules'),
  '/page/': path.join(E2E_ROOT, 'page'),
};
const TYPES = { '.js': 'text/javascript', '.html': 'text/html', '.map': 'application/json' };

// A fixed 32-byte master key: the SDK derives each encrypted channel's
// shared secret from it; the Go server never sees either.
export const MASTER_KEY_B64 = Buffer.from('e2e-master-key-0123456789abcdef!').toString('base64');

// sdk returns the official server SDK aimed at the server under test.
export function sdk(app, port, extra = {}) {
  return new Pusher({
    appId: app.app_id,
    key: app.key,
    secret: app.secret,
    host: '127.0.0.1',
    port: String(port),
    useTLS: false,
    encryptionMasterKeyBase64: MASTER_KEY_B64,
    ...extra,
  });
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => (body += c));
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

// parseParams accepts both pusher-js's form encoding and JSON bodies.
function parseParams(req, body) {
  if ((req.headers['content-type'] || '').includes('application/json')) return JSON.parse(body || '{}');
  return Object.fromEntries(new URLSearchParams(body));
}

function userOf(req) {
  const id = String(req.headers['x-user-id'] || '1');
  const name = String(req.headers['x-user-name'] || `User ${id}`);
  return { id, name };
}

function send(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function serveStatic(req, res, pathname) {
  for (const [prefix, root] of Object.entries(STATIC_ROOTS)) {
    if (!pathname.startsWith(prefix)) continue;
    const file = path.resolve(root, '.' + decodeURIComponent(pathname.slice(prefix.length - 1)));
    if (!file.startsWith(root + path.sep)) break;
    fs.readFile(file, (err, data) => {
      if (err) return send(res, 404, { error: 'not found' });
      res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream' });
      res.end(data);
    });
    return true;
  }
  return false;
}

// startAuthServer serves the auth endpoints for `app` on a free port.
// requests records every auth call (path, user, params, status) so tests
// can check what the clients asked for.
export function startAuthServer(app, reverbPort) {
  const good = sdk(app, reverbPort);
  const bad = sdk({ ...app, secret: `${app.secret}-wrong` }, reverbPort);
  const requests = [];

  const server = http.createServer(async (req, res) => {
    const { pathname } = new URL(req.url, 'http://localhost');
    try {
      if (req.method === 'GET' && pathname === '/') {
        res.writeHead(302, { Location: '/page/index.html' });
        return res.end();
      }
      if (req.method === 'GET' && serveStatic(req, res, pathname)) return;
      if (req.method !== 'POST') return send(res, 404, { error: 'not found' });

      const params = parseParams(req, await readBody(req));
      const user = userOf(req);
      const mode = req.headers['x-auth-mode'] || 'ok';
      const signer = mode === 'bad-secret' ? bad : good;
      const record = { path: pathname, user: user.id, mode, params, status: 200 };
      requests.push(record);
      if (mode === 'deny') {
        record.status = 403;
        return send(res, 403, {});
      }
      if (pathname === '/broadcasting/auth') {
        const channel = params.channel_name;
        const presence = channel.startsWith('presence-')
          ? { user_id: user.id, user_info: { id: user.id, name: user.name } }
          : undefined;
        return send(res, 200, signer.authorizeChannel(params.socket_id, channel, presence));
      }
      if (pathname === '/broadcasting/user-auth') {
        return send(res, 200, signer.authenticateUser(params.socket_id, { id: user.id, user_info: { name: user.name } }));
      }
      send(res, 404, { error: 'not found' });
    } catch (err) {
      send(res, 500, { error: String(err && err.message) });
    }
  });

  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({
        port,
        url: `http://127.0.0.1:${port}`,
        requests,
        close: () =>
          new Promise((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}
