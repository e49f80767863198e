// @syncgate/client/server, the Node publisher, against real gateway
// processes: one on the memory backplane, one on a real redis-server that
// the tests kill (503: retried) and freeze (504: never retried).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createPublisher, PublishError } from '@syncgate/client/server';
import { startGateway, waitFor } from '../support/gateway.mjs';
import { startRedis } from '../support/redis.mjs';
import { nodeClient, record } from '../support/node-client.mjs';

/** A fetch that records every request's event count and answer status. */
function countingFetch() {
  const requests = [];
  const f = async (url, init) => {
    const r = { events: JSON.parse(init.body).events.length, status: null };
    requests.push(r);
    try {
      const res = await fetch(url, init);
      r.status = res.status;
      return res;
    } catch (err) {
      r.status = 'error';
      throw err;
    }
  };
  return { fetch: f, requests };
}

/** Awaits the rejection of `p` and returns its error. */
async function rejection(p) {
  try {
    await p;
  } catch (err) {
    return err;
  }
  assert.fail('expected a rejection');
}

describe('Node publisher against one gateway', () => {
  let gw;
  before(async () => {
    gw = await startGateway();
  });
  after(() => gw?.stop('SIGKILL'));

  it('publishes with the helpers and publish(); each call resolves to its offsets; subscribers get the events', async (t) => {
    const { client } = nodeClient(t, { url: gw.base, token: gw.token({ sub: 'u1', roles: ['admin'] }) });
    const rec = record(client, 'pub', '*');
    await waitFor(() => rec.subscribed.length === 1, { message: 'subscribed' });
    const sg = createPublisher({ url: gw.base, key: gw.publishKey });
    t.after(() => sg.close());

    const ts = new Date(Date.UTC(2026, 10, 22, 10, 0, 0, 123));
    const created = await sg.documentCreated('pub', 'tasks', 't1', { title: 'Draft' }, { actor: 'user-42', timestamp: ts });
    const updated = await sg.documentUpdated('pub', 'tasks', 't1', { title: 'Launch' }, { title: 'Draft' }, { audience: { roles: ['admin'] } });
    const deleted = await sg.documentDeleted('pub', 'tasks', 't1', { actor: 'user-42' });
    const cleared = await sg.collectionCleared('pub', 'notes');
    const many = await sg.publish(
      { type: 'insert', project: 'pub', collection: 'orders', documentId: 'o1', document: { total: 1 } },
      { type: 'insert', project: 'pub', collection: 'orders', documentId: 'o2', document: { total: 2 } },
    );
    for (const o of [created, updated, deleted, cleared]) assert.equal(typeof o, 'string');
    assert.equal(many.length, 2);
    assert.deepEqual(await sg.publish(), [], 'nothing to publish, no request');

    await waitFor(() => rec.events.length === 6, { message: '6 events' });
    const got = rec.events;
    assert.deepEqual(
      got.map((e) => [e.type, e.collection, e.documentId]),
      [
        ['document:created', 'tasks', 't1'],
        ['document:updated', 'tasks', 't1'],
        ['document:deleted', 'tasks', 't1'],
        ['collection:cleared', 'notes', undefined],
        ['insert', 'orders', 'o1'],
        ['insert', 'orders', 'o2'],
      ],
    );
    assert.equal(got[0].actor, 'user-42');
    assert.equal(got[0].timestamp, '2026-11-22T10:00:00.123Z');
    assert.deepEqual(got[1].document, { title: 'Launch' });
    assert.deepEqual(got[1].oldDocument, { title: 'Draft' });
    assert.deepEqual(got[1].audience, { roles: ['admin'] });
    assert.equal(got[2].document, undefined);
    // A publish answer's offsets are positions in the collection's stream;
    // the * subscription sees the project-wide ones. Both are unique.
    assert.equal(new Set([created, updated, deleted]).size, 3);
  });

  it('batches rapid calls into one request, in call order, each call resolving to its own offset', async (t) => {
    const { client } = nodeClient(t, { url: gw.base, token: gw.token() });
    const rec = record(client, 'batch', 'c');
    await waitFor(() => rec.subscribed.length === 1, { message: 'subscribed' });
    const { fetch: counted, requests } = countingFetch();
    const sg = createPublisher({ url: gw.base, key: gw.publishKey, fetch: counted });
    t.after(() => sg.close());

    // 200 calls in one turn of the event loop, as a busy request handler makes them.
    const calls = Array.from({ length: 200 }, (_, i) => sg.documentUpdated('batch', 'c', `d${i}`, { i }));
    const offsets = await Promise.all(calls);
    assert.deepEqual(requests, [{ events: 200, status: 200 }], 'one request for 200 calls');
    await waitFor(() => rec.events.length === 200, { message: '200 events' });
    assert.deepEqual(rec.events.map((e) => e.documentId), calls.map((_, i) => `d${i}`), 'in call order');
    assert.deepEqual(rec.events.map((e) => e.offset), offsets, 'each call got the offset of its own event');

    // Calls made while a request is in flight go in the next one.
    requests.length = 0;
    const first = sg.documentCreated('batch', 'c', 'x0', {});
    await waitFor(() => requests.length === 1, { message: 'first request sent' });
    const rest = Array.from({ length: 10 }, (_, i) => sg.documentCreated('batch', 'c', `x${i + 1}`, {}));
    await Promise.all([first, ...rest]);
    assert.deepEqual(requests.map((r) => r.events), [1, 10]);

    // More than one request holds (1,000 events): split, still in order.
    requests.length = 0;
    const big = await sg.publish(...Array.from({ length: 1500 }, (_, i) => ({ type: 'insert', project: 'batch', collection: 'big', documentId: `b${i}` })));
    assert.equal(big.length, 1500);
    assert.deepEqual(requests.map((r) => r.events), [1000, 500]);
  });

  it('refuses bad events before sending, and a refused event fails only its own call', async (t) => {
    const { fetch: counted, requests } = countingFetch();
    const sg = createPublisher({ url: gw.base, key: gw.publishKey, fetch: counted });
    t.after(() => sg.close());

    const cases = [
      [{ type: 'Insert!', project: 'p', collection: 'c' }, /invalid type "Insert!"/],
      [{ type: 'insert', project: 'p p', collection: 'c' }, /invalid project "p p"/],
      [{ type: 'insert', project: 'p', collection: '*' }, /collection "\*"/],
      [{ type: 'insert', project: 'p', collection: 'c', offset: '1-0' }, /unknown field "offset"/],
      [{ type: 'insert', project: 'p', collection: 'c', documentID: 'x' }, /unknown field "documentID"/],
      [{ type: 'insert', project: 'p', collection: 'c', document: 'x'.repeat(300 << 10) }, /exceeds 262144/],
    ];
    for (const [ev, want] of cases) {
      const err = await rejection(sg.publish(ev));
      assert.ok(err instanceof PublishError, String(err));
      assert.equal(err.status, 0);
      assert.equal(err.code, 'bad_request');
      assert.match(err.message, want);
    }
    assert.equal(requests.length, 0, 'nothing was sent');

    // The gateway refuses what only it checks (an empty audience): the call
    // with that event fails, the calls batched with it are sent again.
    const good1 = sg.documentCreated('p', 'c', 'a', {});
    const bad = sg.publish(
      { type: 'insert', project: 'p', collection: 'c', documentId: 'ok' },
      { type: 'insert', project: 'p', collection: 'c', audience: {} },
    );
    const good2 = sg.documentCreated('p', 'c', 'b', {});
    const err = await rejection(bad);
    assert.equal(err.status, 400);
    assert.equal(err.code, 'bad_request');
    assert.match(err.message, /events\[1\]: .*audience/, 'named by its index in the call');
    assert.equal(typeof (await good1), 'string');
    assert.equal(typeof (await good2), 'string');
    assert.deepEqual(requests.map((r) => [r.events, r.status]), [[4, 400], [2, 200]]);
  });

  it('a wrong key is 401 unauthorized, not retried', async (t) => {
    const { fetch: counted, requests } = countingFetch();
    const sg = createPublisher({ url: gw.base, key: 'not-the-key', fetch: counted });
    t.after(() => sg.close());
    const err = await rejection(sg.documentCreated('p', 'c', 'x', {}));
    assert.ok(err instanceof PublishError);
    assert.equal(err.status, 401);
    assert.equal(err.code, 'unauthorized');
    assert.equal(err.mayHavePublished, false);
    assert.equal(requests.length, 1);
  });

  it('checks its options and refuses calls after close()', async () => {
    assert.throws(() => createPublisher({ url: 'gateway:8080', key: 'k' }), /invalid url|not http/);
    assert.throws(() => createPublisher({ url: gw.base }), /needs \{ key \}/);
    assert.throws(() => createPublisher({ url: gw.base, key: 'k', maxRetries: -1 }), /maxRetries -1/);
    const sg = createPublisher({ url: gw.base, key: gw.publishKey });
    await sg.close();
    const err = await rejection(sg.documentCreated('p', 'c', 'x', {}));
    assert.equal(err.code, 'closed');
  });
});

describe('Node publisher when the backplane fails (Redis)', () => {
  let redis;
  let gw;
  before(async () => {
    redis = await startRedis();
    gw = await startGateway({ env: { SYNCGATE_REDIS_URL: redis.url } });
  });
  after(async () => {
    await gw?.stop('SIGKILL');
    redis?.resume();
    await redis?.stop();
  });

  it('retries 503 (backplane down) with backoff until Redis is back', async (t) => {
    const sg = createPublisher({ url: gw.base, key: gw.publishKey });
    t.after(() => sg.close());
    assert.equal(typeof (await sg.documentCreated('r', 'c', 'before', {})), 'string');

    const port = redis.port;
    await redis.stop();
    await waitFor(async () => (await fetch(`${gw.base}/readyz`)).status === 503, { message: '/readyz 503 with Redis down' });

    // Without retries the 503 comes straight back, saying nothing was published.
    const once = createPublisher({ url: gw.base, key: gw.publishKey, maxRetries: 0 });
    const err = await rejection(once.documentCreated('r', 'c', 'x', {}));
    assert.equal(err.status, 503);
    assert.equal(err.code, 'unavailable');
    assert.equal(err.mayHavePublished, false);

    // With retries: Redis comes back after the first 503, and the call succeeds.
    const { fetch: counted, requests } = countingFetch();
    const patient = createPublisher({ url: gw.base, key: gw.publishKey, fetch: counted, maxRetries: 100, retryBaseDelayMs: 50, retryMaxDelayMs: 200 });
    const pending = patient.documentCreated('r', 'c', 'after', {});
    await waitFor(() => requests.some((r) => r.status === 503), { message: 'a first 503' });
    redis = await startRedis({ port });
    const offset = await pending;
    assert.equal(typeof offset, 'string');
    const statuses = requests.map((r) => r.status);
    assert.equal(statuses.at(-1), 200);
    assert.ok(statuses.slice(0, -1).every((s) => s === 503), `only 503s were retried: ${statuses}`);
    assert.ok(statuses.length >= 2, `retried: ${statuses}`);
  });

  it('never retries 504 (backplane did not answer): the error says the events may have been published', async (t) => {
    await waitFor(async () => (await fetch(`${gw.base}/readyz`)).status === 200, { timeoutMs: 15_000, message: '/readyz 200' });
    const { fetch: counted, requests } = countingFetch();
    const sg = createPublisher({ url: gw.base, key: gw.publishKey, fetch: counted, maxRetries: 10, retryBaseDelayMs: 10 });
    t.after(() => sg.close());
    redis.pause();
    t.after(() => redis.resume());
    const err = await rejection(sg.documentCreated('r', 'c', 'frozen', {}));
    redis.resume();
    assert.ok(err instanceof PublishError, String(err));
    assert.equal(err.status, 504);
    assert.equal(err.code, 'timeout');
    assert.equal(err.mayHavePublished, true);
    assert.match(err.message, /may have been published/);
    assert.deepEqual(requests.map((r) => r.status), [504], 'one request, not retried');
  });
});

describe('Node publisher when the gateway is unreachable', () => {
  it('retries a refused connection (nothing was sent), then reports unavailable', async () => {
    const { freePort } = await import('../support/gateway.mjs');
    const port = await freePort();
    const { fetch: counted, requests } = countingFetch();
    const sg = createPublisher({ url: `http://127.0.0.1:${port}`, key: 'k', fetch: counted, maxRetries: 2, retryBaseDelayMs: 10 });
    const err = await rejection(sg.documentCreated('p', 'c', 'x', {}));
    assert.deepEqual(requests.map((r) => r.status), ['error', 'error', 'error'], 'the first try and two retries');
    assert.ok(err instanceof PublishError, String(err));
    assert.equal(err.status, 0);
    assert.equal(err.code, 'unavailable');
    assert.equal(err.mayHavePublished, false);
    assert.match(err.message, /ECONNREFUSED.*nothing was published/);
  });
});
