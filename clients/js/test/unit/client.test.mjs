// The reconnect / backoff / resume / refresh state machine, against a fake
// socket and mocked timers: every test plays the gateway frame by frame.
import { describe, it, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createClient, MemoryCache } from '../../dist/index.js';
import { FakeSocket, flush } from '../support/fake-socket.mjs';

const T0 = Date.UTC(2026, 10, 22, 10, 0, 0);

function setup(t, opts = {}) {
  FakeSocket.reset();
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: T0 });
  const statuses = [];
  const client = createClient({
    url: 'http://gw.test',
    token: 'tok',
    WebSocket: FakeSocket,
    onlineTarget: null,
    pingIntervalMs: 0,
    random: () => 0.5,
    ...opts,
  });
  client.onStatus((s) => statuses.push(s));
  const advance = async (ms) => {
    await flush();
    t.mock.timers.tick(ms);
    await flush();
  };
  t.after(() => client.close());
  return { client, statuses, advance, states: () => statuses.map((s) => s.state) };
}

async function ready(sock, extra = {}) {
  sock.open();
  await flush();
  sock.receive({ op: 'ready', connection: `c${FakeSocket.instances.length}`, user: 'u1', expiresAt: new Date(Date.now() + 3600_000).toISOString(), ...extra });
  await flush();
}

function subscribedFor(sock, project, collection, offset, recovered = true) {
  const sub = sock.ops('subscribe').find((m) => m.project === project && m.collection === collection);
  assert.ok(sub, `no subscribe for ${project}/${collection}`);
  sock.receive({ op: 'subscribed', id: sub.id, project, collection, offset, recovered });
  return sub;
}

function ev(offset, type = 'document:updated', id = `d${offset}`, extra = {}) {
  return { type, project: 'p', collection: 'c', documentId: id, document: { n: offset }, offset: String(offset), ...extra };
}

describe('connect and authenticate', () => {
  beforeEach(() => FakeSocket.reset());

  it('dials /v1/ws with the syncgate.v1 subprotocol and sends auth first', async (t) => {
    const { client } = setup(t);
    await flush();
    const sock = FakeSocket.last;
    assert.equal(sock.url, 'ws://gw.test/v1/ws');
    assert.equal(sock.protocols, 'syncgate.v1');
    assert.equal(client.status.state, 'connecting');
    client.subscribe('p', 'c', {});
    await ready(sock);
    assert.deepEqual(sock.sent[0], { op: 'auth', token: 'tok' });
    assert.equal(client.status.state, 'open');
    assert.equal(client.status.user, 'u1');
    const subs = sock.ops('subscribe');
    assert.equal(subs.length, 1);
    assert.equal(subs[0].since, undefined, 'a fresh subscription has no since');
  });

  it('keeps an explicit path and maps https to wss', async (t) => {
    setup(t, { url: 'https://gw.test/custom/ws' });
    await flush();
    assert.equal(FakeSocket.last.url, 'wss://gw.test/custom/ws');
  });

  it('rejects invalid names instead of sending them', (t) => {
    const { client } = setup(t);
    assert.throws(() => client.subscribe('bad project', 'c', {}), /invalid project/);
    assert.throws(() => client.subscribe('p', 'c/d', {}), /invalid collection/);
  });
});

describe('reconnect with backoff and full jitter', () => {
  it('waits random * min(max, base * 2^(n-1)) and bounds it by maxDelayMs', async (t) => {
    let r = 0.999;
    const { client, advance } = setup(t, { random: () => r, reconnect: { baseDelayMs: 100, maxDelayMs: 1000 } });
    await flush();
    await ready(FakeSocket.last);
    const expectedCaps = [100, 200, 400, 800, 1000, 1000, 1000];
    for (const [i, cap] of expectedCaps.entries()) {
      const before = FakeSocket.instances.length;
      if (i === 0) FakeSocket.last.drop(1006);
      else FakeSocket.last.drop(1006); // the dial failed
      await flush();
      assert.equal(client.status.state, 'reconnecting');
      assert.equal(client.status.attempt, i + 1);
      assert.equal(client.status.lastError.code, 'connection_lost');
      const delay = Math.floor(0.999 * cap);
      await advance(delay - 1);
      assert.equal(FakeSocket.instances.length, before, `attempt ${i + 1} dialled before ${delay} ms`);
      await advance(1);
      assert.equal(FakeSocket.instances.length, before + 1, `attempt ${i + 1} did not dial at ${delay} ms`);
    }
    // A successful ready resets the count: the next drop starts small again.
    await ready(FakeSocket.last);
    assert.equal(client.status.attempt, 0);
    r = 0;
    const before = FakeSocket.instances.length;
    FakeSocket.last.drop(1006);
    await advance(0);
    assert.equal(FakeSocket.instances.length, before + 1, 'full jitter with random()=0 retries at once');
  });

  for (const code of [1012, 4008]) {
    it(`reconnects at once with jitter after ${code}, whatever the attempt count`, async (t) => {
      const { client, advance } = setup(t, { random: () => 0.5, reconnect: { baseDelayMs: 10_000, maxDelayMs: 60_000, restartJitterMs: 200 } });
      await flush();
      await ready(FakeSocket.last);
      for (let i = 0; i < 3; i++) {
        await advance(10_000); // a healthy connection, not a flap
        const before = FakeSocket.instances.length;
        FakeSocket.last.drop(code, 'bye');
        await flush();
        assert.equal(client.status.lastError.code, code === 1012 ? 'service_restart' : 'slow_consumer');
        await advance(99);
        assert.equal(FakeSocket.instances.length, before, 'jitter: not before random*window');
        await advance(1);
        assert.equal(FakeSocket.instances.length, before + 1, 'reconnected within the jitter window');
        await ready(FakeSocket.last);
      }
    });
  }

  it('falls back to backoff when connections keep dying right after ready', async (t) => {
    const { client, advance } = setup(t, { random: () => 0.5, reconnect: { baseDelayMs: 1000, maxDelayMs: 60_000, restartJitterMs: 100 } });
    await flush();
    await ready(FakeSocket.last);
    const delays = [];
    for (let i = 0; i < 4; i++) {
      const before = FakeSocket.instances.length;
      FakeSocket.last.drop(4008, 'slow consumer');
      await flush();
      delays.push(client.status.nextRetryAt - Date.now());
      await advance(delays.at(-1));
      assert.equal(FakeSocket.instances.length, before + 1);
      await ready(FakeSocket.last);
    }
    assert.deepEqual(delays, [50, 1000, 2000, 4000]);
  });

  it('backs off after 1013 and 4400 instead of hammering', async (t) => {
    const { advance } = setup(t, { random: () => 0.5, reconnect: { baseDelayMs: 1000, restartJitterMs: 10 } });
    await flush();
    await ready(FakeSocket.last);
    const before = FakeSocket.instances.length;
    FakeSocket.last.drop(1013, 'node full');
    await advance(499);
    assert.equal(FakeSocket.instances.length, before);
    await advance(1);
    assert.equal(FakeSocket.instances.length, before + 1);
  });

  it('gives up on a connection that never becomes ready', async (t) => {
    const { client, advance } = setup(t, { connectTimeoutMs: 5000, random: () => 0 });
    await flush();
    FakeSocket.last.open(); // but no ready
    await advance(5000);
    assert.equal(client.status.lastError.code, 'timeout');
    assert.ok(FakeSocket.instances[0].closedByClient);
    await advance(0);
    assert.equal(FakeSocket.instances.length, 2);
  });

  it('drops a silent connection after an unanswered ping', async (t) => {
    const { client, advance } = setup(t, { pingIntervalMs: 1000, pingTimeoutMs: 500, random: () => 0 });
    await flush();
    await ready(FakeSocket.last);
    await advance(1000);
    assert.equal(FakeSocket.last.ops('ping').length, 1);
    FakeSocket.last.receive({ op: 'pong' });
    await advance(1000);
    assert.equal(FakeSocket.last.ops('ping').length, 2);
    await advance(500);
    assert.equal(client.status.lastError.code, 'timeout');
    await advance(0);
    assert.equal(FakeSocket.instances.length, 2);
  });
});

describe('resume', () => {
  it('tracks offsets across reconnects and never sees an event twice', async (t) => {
    const { client, advance } = setup(t, { random: () => 0 });
    const got = [];
    client.subscribe('p', 'c', { onEvents: (events) => got.push(...events.map((e) => e.offset)) });
    client.subscribe('p', '*', { onEvents: () => {} });
    await flush();
    let s = FakeSocket.last;
    await ready(s);
    subscribedFor(s, 'p', 'c', '5');
    subscribedFor(s, 'p', '*', '50');
    await flush();

    // Drop before any event: the head of subscribed is the resume point.
    s.drop(1006);
    await advance(0);
    s = FakeSocket.last;
    await ready(s);
    assert.equal(s.ops('subscribe').find((m) => m.collection === 'c').since, '5');
    assert.equal(s.ops('subscribe').find((m) => m.collection === '*').since, '50');
    subscribedFor(s, 'p', 'c', '9', true);
    // Replay arrives after subscribed; until then the resume point stays at since.
    await flush();
    s.drop(1006);
    await advance(0);
    s = FakeSocket.last;
    await ready(s);
    assert.equal(s.ops('subscribe').find((m) => m.collection === 'c').since, '5', 'recovered subscribed must not skip the replay');
    subscribedFor(s, 'p', 'c', '9', true);
    s.receive({ op: 'events', project: 'p', collection: 'c', events: [ev(6), ev(7)] });
    s.receive({ op: 'events', project: 'p', collection: 'c', events: [ev(8), ev(9)] });
    await flush();
    s.drop(1012);
    await advance(0);
    s = FakeSocket.last;
    await ready(s);
    assert.equal(s.ops('subscribe').find((m) => m.collection === 'c').since, '9');
    assert.deepEqual(got, ['6', '7', '8', '9']);
  });

  it('ignores events from a socket it already abandoned', async (t) => {
    const { client, advance } = setup(t, { random: () => 0 });
    const got = [];
    client.subscribe('p', 'c', { onEvents: (events) => got.push(...events.map((e) => e.offset)) });
    await flush();
    const old = FakeSocket.last;
    await ready(old);
    subscribedFor(old, 'p', 'c', '1');
    old.drop(1006);
    old.receive({ op: 'events', project: 'p', collection: 'c', events: [ev(2)] });
    await advance(0);
    assert.deepEqual(got, []);
    await ready(FakeSocket.last);
    assert.equal(FakeSocket.last.ops('subscribe')[0].since, '1');
  });
});

describe('reset on recovered:false', () => {
  it('calls onReset when resume fails and continues from the new head', async (t) => {
    const { client, advance } = setup(t, { random: () => 0 });
    const resets = [];
    const got = [];
    client.subscribe('p', 'c', { onReset: (info) => resets.push(info), onEvents: (e) => got.push(...e.map((x) => x.offset)) });
    await flush();
    let s = FakeSocket.last;
    await ready(s);
    subscribedFor(s, 'p', 'c', '3', false); // fresh subscribe: nothing to reset
    s.receive({ op: 'events', project: 'p', collection: 'c', events: [ev(4)] });
    await flush();
    assert.equal(resets.length, 0);
    s.drop(1012);
    await advance(0);
    s = FakeSocket.last;
    await ready(s);
    assert.equal(s.ops('subscribe')[0].since, '4');
    subscribedFor(s, 'p', 'c', '100', false);
    await flush();
    assert.deepEqual(resets, [{ project: 'p', collection: 'c', offset: '100' }]);
    s.receive({ op: 'events', project: 'p', collection: 'c', events: [ev(101)] });
    await flush();
    assert.deepEqual(got, ['4', '101']);
  });

  it('treats an unsolicited subscribed with recovered:false (backplane gap) as a reset', async (t) => {
    const { client, advance } = setup(t, { random: () => 0 });
    const resets = [];
    client.subscribe('p', '*', { onReset: (info) => resets.push(info.offset) });
    await flush();
    let s = FakeSocket.last;
    await ready(s);
    subscribedFor(s, 'p', '*', '10');
    await flush();
    s.receive({ op: 'subscribed', project: 'p', collection: '*', offset: '20', recovered: false });
    await flush();
    assert.deepEqual(resets, ['20']);
    s.drop(1006);
    await advance(0);
    s = FakeSocket.last;
    await ready(s);
    assert.equal(s.ops('subscribe')[0].since, '20');
  });
});

describe('batching', () => {
  it('calls each callback once per frame with all matching events', async (t) => {
    const { client } = setup(t);
    const calls = { events: [], update: [], delete: [] };
    client.subscribe('p', 'c', {
      onEvents: (e, info) => calls.events.push([e.map((x) => x.offset), info.offset]),
      onUpdate: (e) => calls.update.push(e.map((x) => x.offset)),
      onDelete: (e) => calls.delete.push(e.map((x) => x.offset)),
    });
    await flush();
    const s = FakeSocket.last;
    await ready(s);
    subscribedFor(s, 'p', 'c', '0');
    s.receive({
      op: 'events',
      project: 'p',
      collection: 'c',
      events: [ev(1, 'document:created'), ev(2, 'document:updated'), ev(3, 'document:deleted'), ev(4, 'collection:cleared'), ev(5, 'insert'), ev(6, 'delete')],
    });
    await flush();
    assert.deepEqual(calls.events, [[['1', '2', '3', '4', '5', '6'], '6']]);
    assert.deepEqual(calls.update, [['1', '2', '5']]);
    assert.deepEqual(calls.delete, [['3', '6']]);
  });
});

describe('token refresh', () => {
  it('refreshes before expiresAt without reconnecting', async (t) => {
    let n = 0;
    const getToken = async () => `tok${++n}`;
    const { client, advance } = setup(t, { token: undefined, getToken, refreshMarginMs: 60_000 });
    await flush();
    const s = FakeSocket.last;
    await ready(s, { expiresAt: new Date(T0 + 300_000).toISOString() });
    assert.deepEqual(s.sent[0], { op: 'auth', token: 'tok1' });
    await advance(239_999);
    assert.equal(s.ops('auth').length, 1, 'not refreshed early');
    await advance(1);
    const auths = s.ops('auth');
    assert.equal(auths.length, 2, 'refreshed 60 s before expiry');
    assert.equal(auths[1].token, 'tok2');
    assert.ok(auths[1].id !== undefined, 'the refresh carries an id');
    s.receive({ op: 'ready', id: auths[1].id, connection: 'c1', user: 'u1', expiresAt: new Date(Date.now() + 300_000).toISOString() });
    await flush();
    assert.equal(client.status.expiresAt.getTime(), Date.now() + 300_000);
    assert.equal(FakeSocket.instances.length, 1, 'no reconnect');
    await advance(240_000);
    assert.equal(s.ops('auth').length, 3, 'refresh rescheduled from the new expiresAt');
  });

  it('uses at most half the remaining lifetime as margin for short tokens', async (t) => {
    const { advance } = setup(t, { token: undefined, getToken: () => 'x', refreshMarginMs: 60_000 });
    await flush();
    const s = FakeSocket.last;
    await ready(s, { expiresAt: new Date(T0 + 4000).toISOString() });
    await advance(1999);
    assert.equal(s.ops('auth').length, 1);
    await advance(1);
    assert.equal(s.ops('auth').length, 2);
  });

  it('on 4009 fetches a new token and reconnects at once', async (t) => {
    let n = 0;
    const { client, advance } = setup(t, { token: undefined, getToken: () => `tok${++n}`, random: () => 0.5, reconnect: { restartJitterMs: 100, baseDelayMs: 60_000 } });
    client.subscribe('p', 'c', {});
    await flush();
    let s = FakeSocket.last;
    await ready(s);
    subscribedFor(s, 'p', 'c', '7');
    await flush();
    s.drop(4009, 'token expired');
    await flush();
    assert.equal(client.status.lastError.code, 'token_expired');
    await advance(50);
    s = FakeSocket.last;
    assert.equal(FakeSocket.instances.length, 2);
    await ready(s);
    assert.equal(s.sent[0].token, 'tok2', 'a fresh token after 4009');
    assert.equal(s.ops('subscribe')[0].since, '7');
  });

  it('reuses a still-valid token on an ordinary reconnect', async (t) => {
    let n = 0;
    const { advance } = setup(t, { token: undefined, getToken: () => `tok${++n}`, random: () => 0 });
    await flush();
    await ready(FakeSocket.last);
    FakeSocket.last.drop(1012);
    await advance(0);
    await ready(FakeSocket.last);
    assert.equal(FakeSocket.last.sent[0].token, 'tok1');
    assert.equal(n, 1);
  });

  it('closes for good on 4009 or 4001 when the token is fixed', async (t) => {
    for (const code of [4009, 4001]) {
      const { client, advance } = setup(t);
      await flush();
      await ready(FakeSocket.last);
      FakeSocket.last.drop(code);
      await advance(60_000);
      assert.equal(client.status.state, 'closed');
      assert.equal(client.status.lastError.closeCode, code);
      assert.equal(FakeSocket.instances.length, 1);
      t.mock.timers.reset();
    }
  });

  it('retries with backoff when getToken fails', async (t) => {
    let fail = true;
    const { client, advance } = setup(t, { token: undefined, getToken: () => (fail ? Promise.reject(new Error('auth server down')) : 'ok'), random: () => 0.5, reconnect: { baseDelayMs: 1000 } });
    await flush();
    assert.equal(FakeSocket.instances.length, 0);
    assert.equal(client.status.state, 'reconnecting');
    assert.equal(client.status.lastError.code, 'token_unavailable');
    fail = false;
    await advance(500);
    assert.equal(FakeSocket.instances.length, 1);
  });
});

describe('status', () => {
  it('walks connecting, open, reconnecting, open, offline, reconnecting, open, closed', async (t) => {
    const target = new EventTarget();
    const { client, advance, states } = setup(t, { onlineTarget: target, random: () => 0 });
    await flush();
    await ready(FakeSocket.last);
    FakeSocket.last.drop(1006);
    await advance(0);
    await ready(FakeSocket.last);
    target.dispatchEvent(new Event('offline'));
    await advance(120_000);
    assert.equal(FakeSocket.instances.length, 2, 'no dialling while offline');
    assert.ok(FakeSocket.last.closedByClient, 'the socket is closed when the browser goes offline');
    target.dispatchEvent(new Event('online'));
    await flush();
    await ready(FakeSocket.last);
    client.close();
    const dedup = states().filter((s, i, a) => i === 0 || a[i - 1] !== s);
    assert.deepEqual(dedup, ['open', 'reconnecting', 'open', 'offline', 'reconnecting', 'open', 'closed']);
    assert.equal(client.status.state, 'closed');
  });

  it('starts offline when the environment says so and connects on online', async (t) => {
    const target = new EventTarget();
    const { client } = setup(t, { onlineTarget: target, initiallyOnline: false });
    await flush();
    assert.equal(client.status.state, 'offline');
    assert.equal(FakeSocket.instances.length, 0);
    target.dispatchEvent(new Event('online'));
    await flush();
    assert.equal(FakeSocket.instances.length, 1);
    assert.equal(client.status.state, 'connecting');
  });

  it('resumes with since after coming back online', async (t) => {
    const target = new EventTarget();
    const { client } = setup(t, { onlineTarget: target });
    client.subscribe('p', 'c', {});
    await flush();
    await ready(FakeSocket.last);
    subscribedFor(FakeSocket.last, 'p', 'c', '1');
    FakeSocket.last.receive({ op: 'events', project: 'p', collection: 'c', events: [ev(2)] });
    await flush();
    target.dispatchEvent(new Event('offline'));
    target.dispatchEvent(new Event('online'));
    await flush();
    await ready(FakeSocket.last);
    assert.equal(FakeSocket.last.ops('subscribe')[0].since, '2');
  });
});

describe('subscriptions', () => {
  it('shares one gateway subscription and lingers a tick before unsubscribing', async (t) => {
    const { client, advance } = setup(t);
    await flush();
    const s = FakeSocket.last;
    await ready(s);
    const a = [];
    const b = [];
    const offA = client.subscribe('p', 'c', { onEvents: (e) => a.push(e.length) });
    const offB = client.subscribe('p', 'c', { onEvents: (e) => b.push(e.length) });
    assert.equal(s.ops('subscribe').length, 1);
    subscribedFor(s, 'p', 'c', '0');
    s.receive({ op: 'events', project: 'p', collection: 'c', events: [ev(1), ev(2)] });
    await flush();
    assert.deepEqual([a, b], [[2], [2]]);
    offA();
    offA(); // idempotent
    await advance(10);
    assert.equal(s.ops('unsubscribe').length, 0, 'B still listens');
    // React-style cleanup and re-run in one tick: nothing on the wire.
    offB();
    const offC = client.subscribe('p', 'c', {});
    await advance(10);
    assert.equal(s.ops('unsubscribe').length, 0);
    assert.equal(s.ops('subscribe').length, 1);
    offC();
    await advance(0);
    assert.equal(s.ops('unsubscribe').length, 1);
    // Subscribing again while the unsubscribe is in flight waits for unsubscribed.
    client.subscribe('p', 'c', {});
    await flush();
    assert.equal(s.ops('subscribe').length, 1);
    const un = s.ops('unsubscribe')[0];
    s.receive({ op: 'unsubscribed', id: un.id, project: 'p', collection: 'c' });
    await flush();
    assert.equal(s.ops('subscribe').length, 2);
  });

  it('reports a refused subscription and does not resend it on reconnect', async (t) => {
    const { client, advance } = setup(t, { random: () => 0 });
    const errors = [];
    client.subscribe('secret', 'c', { onError: (e) => errors.push(e.code) });
    await flush();
    const s = FakeSocket.last;
    await ready(s);
    const sub = s.ops('subscribe')[0];
    s.receive({ op: 'error', id: sub.id, code: 'forbidden', message: 'no access to project secret' });
    await flush();
    assert.deepEqual(errors, ['forbidden']);
    s.drop(1012);
    await advance(0);
    await ready(FakeSocket.last);
    assert.equal(FakeSocket.last.ops('subscribe').length, 0);
  });

  it('accepts numeric request ids echoed back', async (t) => {
    const { client } = setup(t);
    const errors = [];
    client.subscribe('p', 'c', { onError: (e) => errors.push(e.code) });
    await flush();
    const s = FakeSocket.last;
    await ready(s);
    s.receive({ op: 'error', id: Number(s.ops('subscribe')[0].id), code: 'limit_exceeded', message: 'too many' });
    await flush();
    assert.deepEqual(errors, ['limit_exceeded']);
  });
});

describe('memory cache', () => {
  it('applies batches, resets, and resumes a new client from the stored offset', async (t) => {
    const cache = new MemoryCache();
    const { client, advance } = setup(t, { cache, random: () => 0 });
    client.subscribe('p', 'c', {});
    await flush();
    let s = FakeSocket.last;
    await ready(s);
    subscribedFor(s, 'p', 'c', '0');
    s.receive({ op: 'events', project: 'p', collection: 'c', events: [ev(1, 'document:created', 'a'), ev(2, 'document:created', 'b'), ev(3, 'document:updated', 'a', { document: { v: 2 } })] });
    s.receive({ op: 'events', project: 'p', collection: 'c', events: [ev(4, 'document:deleted', 'b')] });
    await flush();
    const view = client.collection('p', 'c');
    assert.deepEqual(await view.getAll(), [{ id: 'a', document: { v: 2 } }]);
    client.close();
    await flush();

    // A "reloaded page": a new client over the same cache.
    const again = createClient({ url: 'ws://gw.test', token: 'tok', WebSocket: FakeSocket, onlineTarget: null, pingIntervalMs: 0, cache });
    t.after(() => again.close());
    again.subscribe('p', 'c', {});
    await flush();
    s = FakeSocket.last;
    await ready(s);
    assert.equal(s.ops('subscribe')[0].since, '4');
    let changes = 0;
    const off = again.collection('p', 'c').onChange(() => changes++);
    subscribedFor(s, 'p', 'c', '99', false);
    await flush();
    assert.deepEqual(await again.collection('p', 'c').getAll(), []);
    assert.equal(changes, 1);
    off();
    void advance;
  });
});

describe('connection controls: maxAttempts, disconnect, reconnect, offline', () => {
  it('gives up after reconnect.maxAttempts failed tries (state failed), and reconnect() starts over', async (t) => {
    const { client, advance, states } = setup(t, { random: () => 0, reconnect: { maxAttempts: 3 } });
    await flush();
    await ready(FakeSocket.last);
    assert.equal(client.status.offline, false);
    FakeSocket.last.drop(1006); // the drop: attempt 1, then 3 tries that fail
    for (let i = 0; i < 3; i++) {
      await advance(0);
      assert.equal(client.status.offline, true, 'the gateway is unreachable while reconnecting');
      FakeSocket.last.drop(1006);
    }
    await flush();
    assert.equal(client.status.state, 'failed');
    assert.equal(client.status.attempt, 4);
    assert.equal(client.status.offline, true);
    assert.equal(client.status.nextRetryAt, null);
    const dialled = FakeSocket.instances.length;
    assert.equal(dialled, 4, 'the first connection and 3 reconnect tries');
    await advance(600_000);
    assert.equal(FakeSocket.instances.length, dialled, 'nothing is dialled once failed');

    client.reconnect();
    await flush();
    assert.equal(FakeSocket.instances.length, dialled + 1, 'reconnect() dials at once');
    assert.equal(client.status.attempt, 0, 'and counts attempts afresh');
    await ready(FakeSocket.last);
    assert.equal(client.status.state, 'open');
    const dedup = states().filter((s, i, a) => i === 0 || a[i - 1] !== s);
    assert.deepEqual(dedup, ['open', 'reconnecting', 'failed', 'reconnecting', 'open']);
  });

  it('maxAttempts 0 never reconnects', async (t) => {
    const { client } = setup(t, { reconnect: { maxAttempts: 0 } });
    await flush();
    await ready(FakeSocket.last);
    FakeSocket.last.drop(1012);
    await flush();
    assert.equal(client.status.state, 'failed');
    assert.equal(FakeSocket.instances.length, 1);
  });

  it('disconnect() closes the socket and keeps subscriptions; reconnect() resumes them with since', async (t) => {
    const { client, advance } = setup(t, { random: () => 0 });
    const got = [];
    client.subscribe('p', 'c', { onEvents: (events) => got.push(...events.map((e) => e.offset)) });
    await flush();
    await ready(FakeSocket.last);
    subscribedFor(FakeSocket.last, 'p', 'c', '1');
    FakeSocket.last.receive({ op: 'events', project: 'p', collection: 'c', events: [ev(2)] });
    await flush();
    const sock = FakeSocket.last;

    client.disconnect();
    await flush();
    assert.deepEqual(sock.closedByClient, { code: 1000, reason: undefined });
    assert.equal(client.status.state, 'disconnected');
    assert.equal(client.status.offline, false, 'disconnected by the app is not "unreachable"');
    sock.drop(1000); // the close event of the abandoned socket changes nothing
    await advance(600_000);
    assert.equal(FakeSocket.instances.length, 1, 'no reconnect while disconnected');
    assert.equal(client.status.state, 'disconnected');

    client.reconnect();
    await flush();
    assert.equal(FakeSocket.instances.length, 2);
    assert.equal(client.status.state, 'reconnecting');
    await ready(FakeSocket.last);
    assert.equal(FakeSocket.last.ops('subscribe')[0].since, '2', 'resumed from the last event');
    assert.deepEqual(got, ['2']);
  });

  it('stays disconnected across offline/online until reconnect()', async (t) => {
    const target = new EventTarget();
    const { client } = setup(t, { onlineTarget: target });
    await flush();
    await ready(FakeSocket.last);
    client.disconnect();
    target.dispatchEvent(new Event('offline'));
    target.dispatchEvent(new Event('online'));
    await flush();
    assert.equal(client.status.state, 'disconnected');
    assert.equal(FakeSocket.instances.length, 1);
    client.reconnect();
    await flush();
    assert.equal(FakeSocket.instances.length, 2);
  });

  it('offline is true when the browser is offline and when the first connection fails', async (t) => {
    const target = new EventTarget();
    const { client } = setup(t, { onlineTarget: target, random: () => 0 });
    await flush();
    assert.equal(client.status.state, 'connecting');
    assert.equal(client.status.offline, false, 'not known yet');
    FakeSocket.last.drop(1006); // e.g. connection refused
    await flush();
    assert.equal(client.status.state, 'reconnecting');
    assert.equal(client.status.offline, true, 'the gateway is unreachable, though the browser is online');
    target.dispatchEvent(new Event('offline'));
    assert.equal(client.status.state, 'offline');
    assert.equal(client.status.offline, true);
  });
});

describe('subscribe(collection, handlers) with a default project', () => {
  it('calls onUpdate with documents, onDelete with ids, onClear, onError', async (t) => {
    const { client } = setup(t, { project: 'p' });
    const got = { updates: [], deletes: [], clears: 0, errors: [] };
    client.subscribe('c', {
      onUpdate: (documents) => got.updates.push(documents),
      onDelete: (ids) => got.deletes.push(ids),
      onClear: (events) => (got.clears += events.length),
      onError: (err) => got.errors.push(err.code),
    });
    client.subscribe('denied', { onError: (err) => got.errors.push(err.code) });
    await flush();
    const sock = FakeSocket.last;
    await ready(sock);
    const subs = sock.ops('subscribe');
    assert.deepEqual(subs.map((m) => [m.project, m.collection]), [['p', 'c'], ['p', 'denied']]);
    subscribedFor(sock, 'p', 'c', '0');
    sock.receive({ op: 'error', id: subs[1].id, code: 'forbidden', message: 'no' });
    sock.receive({
      op: 'events',
      project: 'p',
      collection: 'c',
      events: [ev(1, 'document:created', 'a'), ev(2, 'update', 'b'), ev(3, 'document:deleted', 'a'), ev(4, 'delete', 'b'), ev(5, 'collection:cleared', undefined)],
    });
    await flush();
    assert.deepEqual(got.updates, [[{ n: 1 }, { n: 2 }]], 'one call per frame, with the documents');
    assert.deepEqual(got.deletes, [['a', 'b']], 'one call per frame, with the ids');
    assert.equal(got.clears, 1);
    assert.deepEqual(got.errors, ['forbidden']);
  });

  it('needs a default project', (t) => {
    const { client } = setup(t);
    assert.throws(() => client.subscribe('c', { onUpdate() {} }), /needs a default project/);
  });
});
