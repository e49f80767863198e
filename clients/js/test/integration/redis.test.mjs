// Two gateway processes joined by a real redis-server: the client's node is
// killed and restarted while the other node keeps publishing, and the client
// resumes from Redis history with nothing lost and nothing twice.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, waitFor, docEvent } from '../support/gateway.mjs';
import { startRedis } from '../support/redis.mjs';
import { TrackedWebSocket, nodeClient, record, waitForStates } from '../support/node-client.mjs';

const ids = (events) => events.map((e) => e.documentId);
const range = (from, to) => Array.from({ length: to - from }, (_, i) => `d${from + i}`);
const docs = (from, to) => range(from, to).map((id) => docEvent('p', 'c', id, { id }));

describe('kill and restart a gateway node (Redis backplane)', () => {
  let redis;
  let redisUrl;
  before(async () => {
    redis = await startRedis();
    redisUrl = redis.url;
  });
  after(() => redis?.stop());

  it('resumes from history across the restart of its node: nothing lost, nothing twice', async (t) => {
    TrackedWebSocket.instances = [];
    const a = await startGateway({ env: { SYNCGATE_REDIS_URL: redisUrl } });
    const same = { secret: a.secret, publishKey: a.publishKey, env: { SYNCGATE_REDIS_URL: redisUrl } };
    const b = await startGateway(same);
    t.after(() => b.stop('SIGKILL'));

    const { client, statuses } = nodeClient(t, { url: a.base, token: a.token(), reconnect: { baseDelayMs: 200, maxDelayMs: 1000 } });
    const one = record(client, 'p', 'c');
    const all = record(client, 'p', '*');
    await waitFor(() => one.subscribed.length === 1 && all.subscribed.length === 1, { message: 'subscribed' });

    await b.publish(docs(0, 5)); // through the other node
    await waitFor(() => one.events.length === 5 && all.events.length === 5, { message: 'first 5 events' });

    const mark = statuses.length;
    await a.stop('SIGKILL');
    await waitForStates(statuses, ['reconnecting'], { from: mark });
    await b.publish(docs(5, 8)); // while the client's node is down
    await b.publish(docs(8, 10));
    const restarted = await startGateway({ port: a.port, ...same });
    t.after(() => restarted.stop('SIGKILL'));

    await waitFor(() => one.events.length >= 10 && all.events.length >= 10, { timeoutMs: 15_000, message: 'replay after restart' });
    await restarted.publish(docs(10, 12));
    await waitFor(() => one.events.length === 12 && all.events.length === 12, { message: 'live after resume' });
    assert.deepEqual(ids(one.events), range(0, 12));
    assert.deepEqual(ids(all.events), range(0, 12));
    assert.deepEqual([one.resets.length, all.resets.length], [0, 0], 'Redis history filled the gap: no reset');
    const resub = TrackedWebSocket.instances.at(-1).sentFrames.filter((f) => f.op === 'subscribe');
    assert.equal(resub.find((f) => f.collection === 'c').since, one.events[4].offset);
    assert.equal(resub.find((f) => f.collection === '*').since, all.events[4].offset);
  });
});
