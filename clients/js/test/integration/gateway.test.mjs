// The SDK in Node against real gateway processes built from this repository.
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, waitFor, docEvent } from '../support/gateway.mjs';
import { TrackedWebSocket, nodeClient, record, waitForStates } from '../support/node-client.mjs';

const ids = (events) => events.map((e) => e.documentId);
const range = (from, to) => Array.from({ length: to - from }, (_, i) => `d${from + i}`);
const docs = (project, collection, from, to) => range(from, to).map((id) => docEvent(project, collection, id, { id }));

describe('against one gateway', () => {
  let gw;
  before(async () => {
    gw = await startGateway();
  });
  after(async () => {
    await gw?.stop('SIGKILL');
  });
  beforeEach(() => {
    TrackedWebSocket.instances = [];
  });

  it('subscribes, receives live events in order, one callback per frame', async (t) => {
    const { client } = nodeClient(t, { url: gw.base, token: gw.token() });
    const one = record(client, 'p1', 'tasks');
    const all = record(client, 'p1', '*');
    await waitFor(() => one.subscribed.length === 1 && all.subscribed.length === 1, { message: 'subscribed' });
    assert.equal(client.status.state, 'open');
    assert.equal(client.status.user, 'u1');

    await gw.publish(docs('p1', 'tasks', 0, 3)[0]);
    await gw.publish(docs('p1', 'tasks', 1, 20));
    await gw.publish(docEvent('p1', 'notes', 'n1', { text: 'x' }, 'document:created'));
    await waitFor(() => one.events.length === 20 && all.events.length === 21, { message: '20 + 21 events' });

    assert.deepEqual(ids(one.events), range(0, 20));
    assert.deepEqual(ids(all.events), [...range(0, 20), 'n1']);
    assert.equal(all.events[20].collection, 'notes', 'events of a * subscription carry their collection');
    // Batching: callbacks == frames, and the 19-event publish did not cost 19 callbacks.
    const frames = TrackedWebSocket.eventFrames().filter((f) => f.collection === 'tasks');
    assert.equal(one.batches.length, frames.length);
    assert.ok(one.batches.length < 20, `expected batched frames, got ${one.batches.length} callbacks for 20 events`);
    const offsets = one.events.map((e) => e.offset);
    assert.equal(new Set(offsets).size, offsets.length, 'offsets are unique');
  });

  it('reports a forbidden project through onError and keeps the connection', async (t) => {
    const { client } = nodeClient(t, { url: gw.base, token: gw.token({ projects: ['p1'] }) });
    const bad = record(client, 'secret', 'x');
    const good = record(client, 'p1', 'x');
    await waitFor(() => bad.errors.length === 1 && good.subscribed.length === 1, { message: 'error + subscribed' });
    assert.equal(bad.errors[0].code, 'forbidden');
    assert.equal(client.status.state, 'open');
  });

  it('resumes with since after a dropped connection: nothing lost, nothing twice', async (t) => {
    const { client, statuses } = nodeClient(t, { url: gw.base, token: gw.token(), reconnect: { baseDelayMs: 300 } });
    const rec = record(client, 'p2', 'c');
    await waitFor(() => rec.subscribed.length === 1, { message: 'subscribed' });
    await gw.publish(docs('p2', 'c', 0, 5));
    await waitFor(() => rec.events.length === 5, { message: '5 events' });

    // Cut the TCP connection under the client, then publish while it is
    // away. `reconnecting` may last less than a poll: await the recorded
    // transitions, not the current state.
    const mark = statuses.length;
    TrackedWebSocket.instances.at(-1)._socket.destroy();
    await waitForStates(statuses, ['reconnecting'], { from: mark });
    await gw.publish(docs('p2', 'c', 5, 10));
    // Events 5..9 come from the replay after the resubscribe (or live, when
    // the client was back before the publish): all of them, once.
    await waitFor(() => rec.events.length === 10 && rec.subscribed.length === 2, { message: 'resumed with the replay' });
    await waitForStates(statuses, ['reconnecting', 'open'], { from: mark });
    await gw.publish(docs('p2', 'c', 10, 12));
    await waitFor(() => rec.events.length === 12, { message: '12 events' });
    assert.deepEqual(ids(rec.events), range(0, 12));
    assert.equal(rec.resets.length, 0);
    const resubscribe = TrackedWebSocket.instances.at(-1);
    assert.ok(resubscribe !== TrackedWebSocket.instances[0], 'a new socket was used');
    assert.equal(client.status.attempt, 0);
  });

  it('handles 4008 (slow consumer): reconnects at once and resumes from the last processed offset', async (t) => {
    // The replay of a backlog larger than the gateway's 8 MiB queue would
    // overflow it again, so history is kept short: the resume finds its
    // offset trimmed and the client takes the reset path.
    const small = await startGateway({ env: { SYNCGATE_HISTORY_SIZE: '20' } });
    t.after(() => small.stop('SIGKILL'));
    const { client, statuses } = nodeClient(t, { url: small.base, token: small.token(), reconnect: { baseDelayMs: 30_000, restartJitterMs: 200 } });
    const rec = record(client, 'slow', 'c');
    await waitFor(() => rec.subscribed.length === 1, { message: 'subscribed' });
    const sock = TrackedWebSocket.instances.at(-1);
    sock.pause(); // stop reading: the gateway's queue for us fills up
    const big = 'x'.repeat(100 * 1024);
    const N = 300;
    for (let i = 0; i < N; i += 8) {
      await small.publish(range(i, Math.min(i + 8, N)).map((id) => docEvent('slow', 'c', id, { id, big })));
    }
    sock.resume();
    await waitFor(() => rec.resets.length === 1, { timeoutMs: 15_000, message: 'reset after 4008' });
    assert.equal(sock.closeCode, 4008, 'the gateway closed the paused client as a slow consumer');
    assert.equal(statuses.find((s) => s.state === 'reconnecting')?.lastError?.code, 'slow_consumer');
    const k = rec.events.length;
    assert.ok(k > 0 && k < N, `received a prefix before the close (${k})`);
    assert.deepEqual(ids(rec.events), range(0, k), 'in order, nothing twice');
    const resub = TrackedWebSocket.instances.at(-1).sentFrames.find((f) => f.op === 'subscribe');
    assert.equal(resub.since, rec.events.at(-1).offset, 'resubscribed from the last processed event');
    await small.publish(docs('slow', 'c', N, N + 2));
    await waitFor(() => rec.events.length === k + 2, { message: 'live after the reset' });
    assert.deepEqual(ids(rec.events.slice(k)), range(N, N + 2));
  });
});

describe('gateway restarts', () => {
  beforeEach(() => {
    TrackedWebSocket.instances = [];
  });

  it('SIGTERM closes with 1012 and the client reconnects at once with jitter', async (t) => {
    // The client dials a forwarder; the node that takes over is up before
    // the first one drains, so the client's one immediate reconnect finds
    // it however long a process takes to start on a loaded machine.
    const gw = await startGateway();
    t.after(() => gw.stop('SIGKILL'));
    const next = await startGateway({ secret: gw.secret, publishKey: gw.publishKey });
    t.after(() => next.stop('SIGKILL'));
    const fwd = await forwarder(gw.port);
    t.after(() => fwd.close());
    const { client, statuses } = nodeClient(t, {
      url: `http://127.0.0.1:${fwd.port}`,
      token: gw.token(),
      reconnect: { baseDelayMs: 30_000, maxDelayMs: 30_000, restartJitterMs: 300 },
    });
    const rec = record(client, 'p', 'c');
    await waitFor(() => rec.subscribed.length === 1, { message: 'subscribed' });
    const mark = statuses.length;
    fwd.target = next.port; // new connections go to the node that takes over
    await gw.stop('SIGTERM');
    await waitForStates(statuses, ['reconnecting'], { from: mark });
    const drop = statuses.find((s) => s.state === 'reconnecting');
    assert.equal(drop?.lastError?.closeCode, 1012);
    assert.equal(drop.lastError.code, 'service_restart');
    // With a 30 s backoff base only the restart path can be back within seconds.
    await waitForStates(statuses, ['reconnecting', 'open'], { from: mark, timeoutMs: 8000 });
  });

  it('a restarted in-memory gateway lost history: onReset, then live again', async (t) => {
    const gw = await startGateway();
    const { client, statuses } = nodeClient(t, { url: gw.base, token: gw.token(), reconnect: { baseDelayMs: 100, maxDelayMs: 400 } });
    const rec = record(client, 'p', 'c');
    await waitFor(() => rec.subscribed.length === 1, { message: 'subscribed' });
    await gw.publish(docs('p', 'c', 0, 3));
    await waitFor(() => rec.events.length === 3, { message: '3 events' });

    const mark = statuses.length;
    await gw.stop('SIGKILL');
    await waitForStates(statuses, ['reconnecting'], { from: mark });
    const restarted = await startGateway({ port: gw.port, secret: gw.secret, publishKey: gw.publishKey });
    t.after(() => restarted.stop('SIGKILL'));
    await waitFor(() => rec.resets.length === 1, { timeoutMs: 8000, message: 'onReset' });
    assert.equal(rec.subscribed.at(-1).recovered, false);
    await restarted.publish(docs('p', 'c', 3, 5));
    await waitFor(() => rec.events.length === 5, { message: '5 events' });
    assert.deepEqual(ids(rec.events), range(0, 5));
  });
});

describe('Ctrl-C', () => {
  it('a second SIGINT exits at once instead of waiting out the drain', async (t) => {
    // Two clients and a 60 s grace: the drain closes the second one 48 s in.
    const gw = await startGateway({ env: { SYNCGATE_SHUTDOWN_GRACE: '60s' } });
    t.after(() => gw.stop('SIGKILL'));
    const clients = [nodeClient(t, { url: gw.base, token: gw.token() }), nodeClient(t, { url: gw.base, token: gw.token() })];
    const recs = clients.map(({ client }) => record(client, 'p', 'c'));
    await waitFor(() => recs.every((r) => r.subscribed.length === 1), { message: 'both subscribed' });
    gw.proc.kill('SIGINT');
    await waitFor(() => gw.output.includes('draining'), { message: 'the drain started' });
    gw.proc.kill('SIGINT');
    const { code, signal } = await gw.exited;
    assert.equal(signal, 'SIGINT', `killed by the second SIGINT, not a drained exit (code ${code})`);
  });

  it('a development node drains with a short grace and says how to skip it', async (t) => {
    const gw = await startGateway({ dev: true });
    t.after(() => gw.stop('SIGKILL'));
    await waitFor(() => /#token=([\w.-]+)/.test(gw.output), { message: 'printed token' });
    assert.match(gw.output, /Ctrl-C drains for 1s \(SYNCGATE_SHUTDOWN_GRACE\); a second Ctrl-C exits at once/);
    const token = /#token=([\w.-]+)/.exec(gw.output)[1];
    const { client } = nodeClient(t, { url: gw.base, token, reconnect: { maxAttempts: 0 } });
    const rec = record(client, 'demo', 'c');
    await waitFor(() => rec.subscribed.length === 1, { message: 'subscribed' });
    gw.proc.kill('SIGINT');
    const { code } = await gw.exited;
    assert.equal(code, 0, 'drained and exited by itself');
    assert.match(gw.output, /draining.*grace=1s/);
  });
});

describe('tokens', () => {
  let gw;
  before(async () => {
    gw = await startGateway();
  });
  after(async () => {
    await gw?.stop('SIGKILL');
  });

  it('refreshes a short-lived token before it expires, on the same connection', async (t) => {
    let calls = 0;
    const getToken = () => {
      calls++;
      return gw.token({ exp: Math.floor(Date.now() / 1000) + 3 });
    };
    const { client, statuses } = nodeClient(t, { url: gw.base, getToken });
    const rec = record(client, 'p', 'c');
    await waitFor(() => rec.subscribed.length === 1, { message: 'subscribed' });
    const connection = client.status.connection;
    const firstExpiry = client.status.expiresAt.getTime();
    // The refresh is recorded as a new status with a later expiresAt.
    await waitFor(() => statuses.some((s) => s.expiresAt && s.expiresAt.getTime() > firstExpiry), { message: 'a refreshed expiresAt' });
    // Past the first token's exp (whole seconds) the gateway would have closed
    // the connection with 4009 had the refresh not been applied; an event
    // delivered after that proves the connection outlived it.
    await waitFor(() => Date.now() > firstExpiry + 1000, { message: 'the first token expired' });
    await gw.publish(docs('p', 'c', 0, 1));
    await waitFor(() => rec.events.length === 1, { message: 'event after expiry of the first token' });
    assert.equal(client.status.state, 'open');
    assert.equal(client.status.connection, connection, 'same connection: refreshed, not reconnected');
    assert.ok(client.status.expiresAt.getTime() > firstExpiry, 'expiresAt moved forward');
    assert.ok(calls >= 2, `getToken called ${calls} times`);
    assert.ok(!statuses.some((s) => s.state === 'reconnecting'), 'never dropped');
  });

  it('on 4009 fetches a new token, reconnects and resumes', async (t) => {
    let calls = 0;
    let refuse = false;
    const getToken = () => {
      calls++;
      if (refuse) throw new Error('identity provider down');
      return gw.token({ exp: Math.floor(Date.now() / 1000) + 2 });
    };
    const { client, statuses } = nodeClient(t, { url: gw.base, getToken, reconnect: { restartJitterMs: 100 } });
    const rec = record(client, 'p', 'exp');
    await waitFor(() => rec.subscribed.length === 1, { message: 'subscribed' });
    refuse = true; // refreshes fail until the gateway closes with 4009
    const before = calls;
    await waitFor(() => statuses.some((s) => s.lastError?.closeCode === 4009), { timeoutMs: 6000, message: '4009' });
    assert.ok(calls > before, 'refresh was attempted before expiry');
    await gw.publish(docs('p', 'exp', 0, 2)); // while the client has no connection
    refuse = false;
    await waitFor(() => client.status.state === 'open' && rec.events.length === 2, { timeoutMs: 8000, message: 'reconnected and resumed' });
    assert.deepEqual(ids(rec.events), range(0, 2));
    assert.equal(rec.resets.length, 0);
  });
});

// forwarder accepts TCP connections on a free loopback port and pipes each
// to 127.0.0.1:<target> as target is when the connection arrives.
async function forwarder(target) {
  const { createServer, connect } = await import('node:net');
  const socks = new Set();
  const f = { target, port: 0 };
  const srv = createServer((c) => {
    const up = connect(f.target, '127.0.0.1');
    for (const s of [c, up]) {
      socks.add(s);
      s.on('close', () => socks.delete(s));
      s.on('error', () => {});
    }
    c.pipe(up).pipe(c);
    c.on('close', () => up.destroy());
    up.on('close', () => c.destroy());
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  f.port = srv.address().port;
  f.close = () => {
    for (const s of socks) s.destroy();
    return new Promise((r) => srv.close(r));
  };
  return f;
}
