// The real socket.io-client against two syncgate gateway processes that share
// a Redis. Run by internal/transport/socketio's TestSocketIOClient, which starts the
// processes and passes GATEWAY_A, GATEWAY_B, PUBLISH_KEY, TOKEN and
// OTHER_SECRET_TOKEN.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { io } from 'socket.io-client';
import WebSocket from 'ws';

const { GATEWAY_A: A, GATEWAY_B: B, PUBLISH_KEY, TOKEN, OTHER_SECRET_TOKEN } = process.env;
assert.ok(A && B && PUBLISH_KEY && TOKEN, 'run through go test (TestSocketIOClient)');

const sockets = [];
after(() => { for (const s of sockets) s.close(); });

async function publish(base, events) {
  const r = await fetch(`${base}/v1/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${PUBLISH_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ events }),
  });
  const body = await r.text();
  assert.equal(r.status, 200, body);
  return JSON.parse(body).offsets;
}

async function waitFor(what, cond, ms = 20000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const once = (emitter, event) => new Promise((resolve) => emitter.once(event, resolve));

// A service written exactly as apps that follow the common client SDK guide
// write it: io() with websocket and polling, the token in auth, join-project
// on every connect, listeners for database-change and project-event.
class RealtimeService {
  constructor(apiUrl, token) {
    this.apiUrl = apiUrl;
    this.token = token;
    this.projects = new Set();
    this.changes = [];
    this.projectEvents = [];
  }

  connect() {
    this.socket = io(this.apiUrl, {
      transports: ['websocket', 'polling'],
      reconnection: true,
      reconnectionDelay: 100,
      reconnectionDelayMax: 500,
      auth: { token: this.token },
    });
    sockets.push(this.socket);
    this.socket.on('connect', () => {
      for (const id of this.projects) this.socket.emit('join-project', id);
    });
    this.socket.on('database-change', (change) => this.changes.push(change));
    this.socket.on('project-event', (ev) => this.projectEvents.push(ev));
    return new Promise((resolve, reject) => {
      this.socket.once('connect', resolve);
      this.socket.once('connect_error', reject);
    });
  }

  async joinProject(projectId) {
    this.projects.add(projectId);
    const joined = once(this.socket, 'joined-project');
    this.socket.emit('join-project', projectId);
    return joined;
  }

  leaveProject(projectId) {
    this.projects.delete(projectId);
    this.socket.emit('leave-project', projectId);
  }

  disconnect() {
    this.socket.disconnect();
  }
}

test('database-change and project-event across nodes', async () => {
  const svc = new RealtimeService(A, TOKEN);
  await svc.connect();
  const joined = await svc.joinProject('shop');
  assert.deepEqual(joined, { projectId: 'shop', room: 'project:shop' });

  await publish(B, [
    { type: 'insert', project: 'shop', collection: 'orders', documentId: '1', document: { id: 1, total: 10 } },
    { type: 'update', project: 'shop', collection: 'orders', documentId: '1', document: { id: 1, total: 12 }, oldDocument: { id: 1, total: 10 } },
    { type: 'delete', project: 'shop', collection: 'orders', documentId: '1', oldDocument: { id: 1, total: 12 } },
    { type: 'delete', project: 'shop', collection: 'orders', documentId: '2' },
    { type: 'create_table', project: 'shop', collection: 'invoices', document: { columns: ['id'] } },
    { type: 'add_column', project: 'shop', collection: 'invoices', document: { column: 'paid' } },
    { type: 'deploy.finished', project: 'shop', collection: 'deploys', document: { version: 3 } },
    { type: 'insert', project: 'elsewhere', collection: 'orders', document: {} },
  ]);
  await waitFor('6 database changes', () => svc.changes.length >= 6 && svc.projectEvents.length >= 1);
  assert.deepEqual(svc.changes.map((c) => [c.type, c.projectId, c.tableName]), [
    ['insert', 'shop', 'orders'], ['update', 'shop', 'orders'], ['delete', 'shop', 'orders'], ['delete', 'shop', 'orders'],
    ['create_table', 'shop', 'invoices'], ['add_column', 'shop', 'invoices'],
  ]);
  assert.deepEqual(svc.changes[1].data, { id: 1, total: 12 });
  assert.deepEqual(svc.changes[1].oldData, { id: 1, total: 10 });
  // The seed's handler: `case 'delete': if (event.data?.id) remove(event.data.id)`.
  assert.deepEqual(svc.changes[2].data, { id: 1, total: 12 }, 'a delete carries the deleted row in data');
  assert.deepEqual(svc.changes[2].oldData, { id: 1, total: 12 });
  assert.deepEqual(svc.changes[3].data, { id: '2' }, 'a delete with only its id carries { id }');
  assert.equal(svc.changes[3].oldData, null);
  assert.ok(!Number.isNaN(Date.parse(svc.changes[0].timestamp)));
  assert.equal(svc.projectEvents[0].type, 'deploy.finished');
  assert.deepEqual(svc.projectEvents[0].data, { version: 3 });

  svc.leaveProject('shop');
  await once(svc.socket, 'left-project');
  // No fixed wait for "nothing arrives": a change published after it to a
  // joined project arrives, so the left project's had every chance to.
  await svc.joinProject('sentinel');
  await publish(B, [{ type: 'insert', project: 'shop', collection: 'orders', document: {} }]);
  await publish(B, [{ type: 'insert', project: 'sentinel', collection: 'orders', document: {} }]);
  await waitFor('the sentinel change', () => svc.changes.some((c) => c.projectId === 'sentinel'));
  assert.equal(svc.changes.filter((c) => c.projectId === 'shop').length, 6);
  svc.disconnect();
});

test('collection family: subscribe with ack, document events', async () => {
  const socket = io(B, { transports: ['websocket'], auth: { token: TOKEN } });
  sockets.push(socket);
  await once(socket, 'connect');
  const got = [];
  for (const t of ['document:created', 'document:updated', 'document:deleted', 'collection:cleared']) {
    socket.on(t, (ev) => got.push(ev));
  }
  const ack = await socket.emitWithAck('subscribe', { project: 'cms', collection: 'events' });
  assert.deepEqual(ack, { ok: true, project: 'cms', collection: 'events' });
  const denied = await socket.emitWithAck('subscribe', { project: 'cms', collection: 'bad/name' });
  assert.equal(denied.ok, false);
  assert.equal(denied.error.code, 'bad_request');

  await publish(A, [
    { type: 'document:created', project: 'cms', collection: 'events', documentId: 'e1', document: { title: 'Launch' } },
    { type: 'document:updated', project: 'cms', collection: 'events', documentId: 'e1', document: { title: 'Launch!' }, oldDocument: { title: 'Launch' } },
    { type: 'document:created', project: 'cms', collection: 'pages', documentId: 'x', document: {} },
    { type: 'document:deleted', project: 'cms', collection: 'events', documentId: 'e1' },
    { type: 'collection:cleared', project: 'cms', collection: 'events' },
  ]);
  await waitFor('4 document events', () => got.length >= 4);
  assert.deepEqual(got.map((e) => [e.type, e.collection, e.documentId]), [
    ['document:created', 'events', 'e1'], ['document:updated', 'events', 'e1'],
    ['document:deleted', 'events', 'e1'], ['collection:cleared', 'events', undefined],
  ]);
  assert.deepEqual(got[0].document, { title: 'Launch' });
  assert.ok(got.every((e) => typeof e.timestamp === 'string'));

  assert.deepEqual(await socket.emitWithAck('unsubscribe', { project: 'cms', collection: 'events' }),
    { ok: true, project: 'cms', collection: 'events' });
  socket.disconnect();
});

test('a bad token gets connect_error and no reconnection loop', async () => {
  for (const token of ['not-a-jwt', OTHER_SECRET_TOKEN]) {
    const socket = io(A, { transports: ['websocket', 'polling'], auth: { token } });
    sockets.push(socket);
    const err = await once(socket, 'connect_error');
    assert.match(err.message, /invalid token/);
    assert.equal(err.data.code, 'unauthorized');
    assert.equal(socket.active, false, 'a server refusal is final, as with Socket.IO middleware');
    socket.close();
  }
});

test('polling-only clients fail clearly', async () => {
  const socket = io(A, { transports: ['polling'], reconnection: false, auth: { token: TOKEN } });
  sockets.push(socket);
  const err = await once(socket, 'connect_error');
  assert.ok(err instanceof Error);
  socket.close();
});

// A TCP proxy the client connects through, so a test can cut the
// connection and send the reconnection to another node.
function proxy() {
  let target = null;
  const conns = new Set();
  const server = net.createServer((c) => {
    if (!target) { c.destroy(); return; }
    const u = new URL(target);
    const up = net.connect(Number(u.port), u.hostname);
    conns.add(c); conns.add(up);
    c.pipe(up); up.pipe(c);
    const end = () => { c.destroy(); up.destroy(); conns.delete(c); conns.delete(up); };
    c.on('error', end); up.on('error', end); c.on('close', end); up.on('close', end);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${server.address().port}`,
    route(to) { target = to; for (const c of conns) c.destroy(); },
    close() { for (const c of conns) c.destroy(); server.close(); },
  })));
}

test('a client that reconnects to another node recovers what it missed', async () => {
  const p = await proxy();
  p.route(A);
  const svc = new RealtimeService(p.url, TOKEN);
  await svc.connect();
  assert.equal(svc.socket.recovered, false);
  await svc.joinProject('recover');
  await publish(B, [{ type: 'insert', project: 'recover', collection: 't', document: { n: 0 } }]);
  await waitFor('the first change', () => svc.changes.length === 1);

  const reconnected = once(svc.socket, 'connect');
  p.route(null); // cut: the client sees "transport close" and retries
  await once(svc.socket, 'disconnect');
  await publish(A, [1, 2, 3].map((n) => ({ type: 'insert', project: 'recover', collection: 't', document: { n } })));
  p.route(B);
  await reconnected;
  assert.equal(svc.socket.recovered, true, 'socket.recovered after reconnecting within history');
  await publish(A, [{ type: 'insert', project: 'recover', collection: 't', document: { n: 4 } }]);
  // Nothing twice, without a fixed wait: a replayed duplicate would arrive
  // before a change published after all of them.
  await publish(A, [{ type: 'insert', project: 'recover', collection: 't', document: { n: 'end' } }]);
  await waitFor('the change after them', () => svc.changes.some((c) => c.data.n === 'end'));
  assert.deepEqual(svc.changes.map((c) => c.data.n), [0, 1, 2, 3, 4, 'end']);

  // A session the servers cannot restore (an offset from a lost stream)
  // comes back with recovered === false and no subscriptions; the app's
  // connect handler rejoins.
  svc.socket._lastOffset = 'sg1|jrecover/*@gone:1-0';
  const again = once(svc.socket, 'connect');
  p.route(A);
  await again;
  assert.equal(svc.socket.recovered, false);
  await once(svc.socket, 'joined-project');
  await publish(B, [{ type: 'insert', project: 'recover', collection: 't', document: { n: 5 } }]);
  await waitFor('the change after rejoining', () => svc.changes.length >= 7);
  assert.equal(svc.changes.at(-1).data.n, 5);
  svc.disconnect();
  p.close();
});

test('1,000 Socket.IO and 1,000 native clients on one node receive the same 1,000 events', { timeout: 120000 }, async () => {
  const N = 1000;
  const EVENTS = 1000;
  const sio = [];
  const native = [];
  const seen = (list, n) => {
    if (n !== list.next) list.bad = `got ${n}, want ${list.next}`;
    list.next = n + 1;
  };
  const opened = [];
  for (let i = 0; i < N; i++) {
    const socket = io(A, { transports: ['websocket'], forceNew: true, reconnection: false, auth: { token: TOKEN } });
    sockets.push(socket);
    const st = { next: 0, bad: null };
    sio.push(st);
    socket.on('database-change', (c) => seen(st, c.data.n));
    opened.push(new Promise((resolve, reject) => {
      socket.once('joined-project', resolve);
      socket.once('connect_error', reject);
      socket.once('connect', () => socket.emit('join-project', 'load'));
    }));

    const ws = new WebSocket(`${A.replace('http', 'ws')}/v1/ws`, 'syncgate.v1', { headers: { authorization: `Bearer ${TOKEN}` } });
    sockets.push(ws);
    const nt = { next: 0, bad: null };
    native.push(nt);
    opened.push(new Promise((resolve, reject) => {
      ws.on('error', reject);
      ws.on('message', (data) => {
        const f = JSON.parse(data);
        if (f.op === 'ready') ws.send(JSON.stringify({ op: 'subscribe', id: 's', project: 'load', collection: '*' }));
        else if (f.op === 'subscribed') resolve();
        else if (f.op === 'events') for (const e of f.events) seen(nt, e.document.n);
      });
    }));
  }
  await Promise.all(opened);
  for (let i = 0; i < EVENTS; i += 100) {
    await publish(B, Array.from({ length: 100 }, (_, k) => ({ type: 'insert', project: 'load', collection: 't', document: { n: i + k } })));
  }
  const all = [...sio, ...native];
  await waitFor('every client to have every event', () => all.every((s) => s.next === EVENTS || s.bad), 90000);
  assert.deepEqual(all.filter((s) => s.bad).map((s) => s.bad), []);
  assert.equal(all.filter((s) => s.next === EVENTS).length, 2 * N);
});
