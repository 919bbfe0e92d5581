// Client-side helpers shared by the tests: pusher-js and Echo clients aimed
// at the server under test, recorders of what they observe, a TCP proxy
// that counts connection attempts, and polling waits.

import net from 'node:net';
import { beforeEach } from 'node:test';
import Pusher from 'pusher-js';
import Echo from 'laravel-echo';

export const SOCKET_ID = /^\d+\.\d+$/;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// until polls fn every 20 ms until it returns a truthy value, which it
// resolves to; it rejects after timeout ms with a message naming `what`.
export async function until(fn, what, timeout = 5000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(20);
  }
}

// countingProxy forwards loopback TCP to targetPort and counts accepted
// connections: a client that reconnects shows up as a second connection
// even while pusher-js stays in the 'connecting' state. With patienceMs > 0
// it keeps redialling a refused upstream for that long, like a load
// balancer in front of a restarting server, so a client's immediate retry
// lands on the new process instead of in pusher-js's 15 s retry timeout.
export function countingProxy(targetPort, { patienceMs = 0 } = {}) {
  const sockets = new Set();
  const proxy = { connections: 0, port: 0 };
  const server = net.createServer((down) => {
    proxy.connections++;
    sockets.add(down);
    down.pause();
    const deadline = Date.now() + patienceMs;
    let up = null;
    const drop = () => {
      down.destroy();
      if (up) up.destroy();
      sockets.delete(down);
      if (up) sockets.delete(up);
    };
    down.on('error', drop).on('close', drop);
    const dial = () => {
      if (down.destroyed) return;
      const attempt = net.connect(targetPort, '127.0.0.1');
      let open = false;
      sockets.add(attempt);
      attempt.once('connect', () => {
        open = true;
        up = attempt;
        up.on('close', drop);
        down.pipe(up);
        up.pipe(down);
        down.resume();
      });
      attempt.on('error', (err) => {
        if (!open && err.code === 'ECONNREFUSED' && Date.now() < deadline) {
          sockets.delete(attempt);
          attempt.destroy();
          setTimeout(dial, 50);
        } else {
          drop();
        }
      });
    };
    dial();
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      proxy.port = server.address().port;
      proxy.close = () =>
        new Promise((r) => {
          for (const s of sockets) s.destroy();
          server.close(() => r());
        });
      resolve(proxy);
    });
  });
}

// record attaches recorders to a pusher-js client: every connection state
// it enters, every 'error' event and every decoded inbound message.
function record(pusher) {
  const rec = { states: [pusher.connection.state], errors: [], messages: [] };
  pusher.connection.bind('state_change', (s) => rec.states.push(s.current));
  pusher.connection.bind('error', (e) => rec.errors.push(e));
  pusher.connection.bind('message', (m) => rec.messages.push(m));
  return rec;
}

// errorCode digs the Pusher error code out of a pusher-js 'error' event,
// whatever wrapper (PusherError / WebSocketError) it came in.
export function errorCode(e) {
  if (!e) return undefined;
  if (e.data && typeof e.data.code === 'number') return e.data.code;
  if (e.error) return errorCode(e.error);
  return undefined;
}

// slot is where the next client of the running test goes: in a cluster
// (server.ports has several nodes) a test's clients connect round-robin,
// the first to node 0, the second to node 1, the third to node 2, and so
// on, while the SDK calls go to server.apiPort (the last node). It restarts
// at 0 for every test, so where a test's clients land does not depend on
// which other tests ran before it (--test-name-pattern).
let slot = 0;
beforeEach(() => {
  slot = 0;
});

// Harness creates clients for one server (+ auth server) and disconnects
// them all in cleanup().
export class Harness {
  constructor(server, auth) {
    this.server = server;
    this.auth = auth;
    this.clients = [];
    this.proxies = [];
  }

  // nextPort is the port of the node the next client should use (always
  // server.port on a single node). A client given an explicit port (say a
  // proxy's) takes no turn; the proxy took it.
  nextPort() {
    const ports = this.server.ports ?? [this.server.port];
    return ports[slot++ % ports.length];
  }

  headers(user = {}) {
    const h = { 'X-User-Id': String(user.id ?? '1'), 'X-User-Name': user.name ?? `User ${user.id ?? '1'}` };
    if (user.mode) h['X-Auth-Mode'] = user.mode;
    return h;
  }

  // pusher returns a pusher-js client configured like a Laravel front end
  // (ws only, no TLS, auth endpoints on the auth server). opts: user
  // {id,name,mode}, key (default the server's first app), port (e.g. a
  // proxy; default nextPort()), options (extra pusher-js options).
  pusher(opts = {}) {
    const headers = this.headers(opts.user);
    const authBase = this.auth ? this.auth.url : 'http://127.0.0.1:1';
    const p = new Pusher(opts.key ?? this.server.app.key, {
      cluster: '',
      wsHost: '127.0.0.1',
      wsPort: opts.port ?? this.nextPort(),
      forceTLS: false,
      enabledTransports: ['ws'],
      disableStats: true,
      channelAuthorization: { endpoint: `${authBase}/broadcasting/auth`, transport: 'ajax', headers },
      userAuthentication: { endpoint: `${authBase}/broadcasting/user-auth`, transport: 'ajax', headers },
      ...opts.options,
    });
    p.rec = record(p);
    this.clients.push(p);
    return p;
  }

  // echo returns a laravel-echo instance using the reverb broadcaster; the
  // pusher-js class is handed in (as a Laravel app does via window.Pusher)
  // so Echo builds the client from its own options.
  echo(opts = {}) {
    const echo = new Echo({
      broadcaster: 'reverb',
      key: opts.key ?? this.server.app.key,
      wsHost: '127.0.0.1',
      wsPort: opts.port ?? this.nextPort(),
      forceTLS: false,
      enabledTransports: ['ws'],
      authEndpoint: `${this.auth.url}/broadcasting/auth`,
      auth: { headers: this.headers(opts.user) },
      Pusher,
    });
    const p = echo.connector.pusher;
    p.rec = record(p);
    this.clients.push(p);
    return echo;
  }

  // proxy returns a countingProxy to the node the next client would use;
  // the client then connects with { port: proxy.port }.
  async proxy(opts) {
    const proxy = await countingProxy(this.nextPort(), opts);
    this.proxies.push(proxy);
    return proxy;
  }

  async cleanup() {
    for (const c of this.clients) c.disconnect();
    this.clients = [];
    for (const p of this.proxies) await p.close();
    this.proxies = [];
  }
}

// connected resolves with the socket id once the client is connected.
export async function connected(pusher, timeout = 5000) {
  await until(() => pusher.connection.state === 'connected', `state 'connected' (states: ${pusher.rec.states})`, timeout);
  return pusher.connection.socket_id;
}

// subscribed subscribes and resolves with the channel once the server
// acknowledged it (pusher:subscription_succeeded).
export function subscribed(pusher, name, timeout = 5000) {
  const channel = pusher.subscribe(name);
  return until(() => channel.subscribed && channel, `subscription_succeeded on ${name}`, timeout);
}

// collect binds every event of a channel (pusher-js bind_global) into an
// array of {event, data, meta}.
export function collect(channel) {
  const got = [];
  channel.bind_global((event, data, meta) => got.push({ event, data, meta }));
  return got;
}

// messagesOf filters the raw inbound messages a client recorded.
export function messagesOf(pusher, event, channel) {
  return pusher.rec.messages.filter((m) => m.event === event && (channel === undefined || m.channel === channel));
}
