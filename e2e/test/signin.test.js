// User authentication (pusher:signin), server-to-user events and
// terminate_connections (PROTOCOL.md §4.9, §9.8, §2.6).

import { test } from 'node:test';
import { useStack } from '../lib/stack.js';
import assert from 'node:assert/strict';
import { connected, subscribed, until, sleep, errorCode, messagesOf } from '../lib/clients.js';

const T = { timeout: 20000 };
const QUIET = 600;
let server;
let auth;
let h;
let api;

useStack({ apps: [{ app_id: 'signin-app', key: 'signin-key', secret: 'signin-secret' }] }, (s) => ({ server, auth, h, api } = s));

// signedIn signs the client in and waits until pusher-js has subscribed
// its #server-to-user-<id> channel.
async function signedIn(c, id) {
  await connected(c);
  c.signin();
  await until(() => c.user.user_data && c.user.user_data.id === id, `signin_success as ${id}`);
  await until(
    () => c.user.serverToUserChannel && c.user.serverToUserChannel.subscribed,
    `#server-to-user-${id} subscribed`,
  );
}

function userEvents(c, event) {
  const got = [];
  c.user.bind(event, (data) => got.push(data));
  return got;
}

test('signin, then sendToUser reaches only that user', T, async () => {
  const gus = h.pusher({ user: { id: '7', name: 'Gus' } });
  const ida = h.pusher({ user: { id: '8', name: 'Ida' } });
  await signedIn(gus, '7');
  await signedIn(ida, '8');
  const req = auth.requests.find((r) => r.path === '/broadcasting/user-auth' && r.user === '7');
  assert.equal(req.params.socket_id, gus.connection.socket_id);

  const gotGus = userEvents(gus, 'notice');
  const gotIda = userEvents(ida, 'notice');
  const res = await api.sendToUser('7', 'notice', { text: 'hello Gus' });
  assert.equal(res.status, 200);
  await until(() => gotGus.length === 1, 'the user event');
  assert.deepEqual(gotGus, [{ text: 'hello Gus' }]);
  await sleep(QUIET);
  assert.deepEqual(gotIda, []);
});

test('a socket that is not signed in cannot subscribe to #server-to-user-<id>', T, async () => {
  const gus = h.pusher({ user: { id: '17' } });
  await signedIn(gus, '17');
  const eve = h.pusher({ user: { id: '99' } });
  await connected(eve);
  // pusher-js refuses '#' names itself, so send the raw subscribe.
  eve.send_event('pusher:subscribe', { channel: '#server-to-user-17', auth: '' });
  await until(() => messagesOf(eve, 'pusher:error').length === 1, 'pusher:error');
  assert.equal(messagesOf(eve, 'pusher:error')[0].data.code, 4009);
  await api.sendToUser('17', 'secret', { n: 1 });
  await until(() => messagesOf(gus, 'secret').length === 1, 'delivery to the signed-in user');
  await sleep(QUIET);
  assert.deepEqual(messagesOf(eve, 'secret'), []);
  assert.deepEqual(messagesOf(eve, 'pusher_internal:subscription_succeeded'), []);
});

test('terminateUserConnections closes that user with 4009 and leaves others alone', T, async () => {
  const proxy = await h.proxy();
  const gus = h.pusher({ user: { id: '27', name: 'Gus' }, port: proxy.port });
  const ida = h.pusher({ user: { id: '28', name: 'Ida' } });
  await signedIn(gus, '27');
  await signedIn(ida, '28');
  // Gus is also in a presence channel with Ida, so Ida sees him leave.
  const lobbyGus = await subscribed(gus, 'presence-lobby');
  const lobbyIda = await subscribed(ida, 'presence-lobby');
  await until(() => lobbyGus.members.get('28'), 'Gus sees Ida in the lobby');
  const removed = [];
  lobbyIda.bind('pusher:member_removed', (m) => removed.push(m.id));
  const idaId = ida.connection.socket_id;

  const res = await api.terminateUserConnections('27');
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {});

  await until(() => gus.rec.errors.some((e) => errorCode(e) === 4009), 'close code 4009 on Gus');
  await until(() => gus.connection.state === 'disconnected', "Gus 'disconnected'");
  await until(() => removed.length === 1, 'member_removed for Gus');
  assert.deepEqual(removed, ['27']);
  await sleep(2500);
  assert.equal(gus.connection.state, 'disconnected', 'Gus does not reconnect');
  assert.equal(proxy.connections, 1, 'no second TCP connection from Gus');

  assert.equal(ida.connection.state, 'connected');
  assert.equal(ida.connection.socket_id, idaId, 'Ida kept her socket');
  const gotIda = userEvents(ida, 'still-here');
  await api.sendToUser('28', 'still-here', { ok: true });
  await until(() => gotIda.length === 1, 'Ida still receives user events');
});

test('terminateUserConnections also closes presence sockets of that user (not signed in)', T, async () => {
  const a = h.pusher({ user: { id: '37' } });
  const b = h.pusher({ user: { id: '38' } });
  await subscribed(a, 'presence-hall');
  const hall = await subscribed(b, 'presence-hall');
  const removed = [];
  hall.bind('pusher:member_removed', (m) => removed.push(m.id));

  await api.terminateUserConnections('37');
  await until(() => a.connection.state === 'disconnected', "user 37 'disconnected'");
  assert.ok(a.rec.errors.some((e) => errorCode(e) === 4009));
  await until(() => removed.length === 1, 'member_removed');
  assert.deepEqual(removed, ['37']);
  assert.equal(b.connection.state, 'connected');
});
