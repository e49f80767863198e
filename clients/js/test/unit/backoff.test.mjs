import { it } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay, restartDelay, planBatch } from '../../dist/index.js';

it('full jitter stays within [0, min(max, base * 2^(n-1))) and is spread', () => {
  const opts = { baseDelayMs: 100, maxDelayMs: 5000 };
  for (let attempt = 1; attempt <= 40; attempt++) {
    const cap = Math.min(5000, 100 * 2 ** (attempt - 1));
    const seen = new Set();
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(attempt, opts);
      assert.ok(d >= 0 && d < cap, `attempt ${attempt}: ${d} not in [0, ${cap})`);
      seen.add(Math.floor((d / cap) * 4));
    }
    assert.equal(seen.size, 4, `attempt ${attempt}: delays cover the whole window`);
  }
  assert.equal(backoffDelay(1000, opts, () => 0.999999), 4999, 'huge attempt counts stay bounded');
  assert.equal(backoffDelay(3, opts, () => 1), 399, 'random() = 1 is clamped below the cap');
  assert.equal(backoffDelay(3, opts, () => NaN), 0);
});

it('restart delay is jitter within restartJitterMs', () => {
  for (let i = 0; i < 200; i++) {
    const d = restartDelay({ restartJitterMs: 250 });
    assert.ok(d >= 0 && d < 250);
  }
  assert.equal(restartDelay({}, () => 0.5), 500, 'default window is 1 s');
});

it('planBatch maps event types to cache operations', () => {
  const ev = (type, extra = {}) => ({ type, project: 'p', collection: 'c', documentId: 'd', document: { v: 1 }, offset: '1', ...extra });
  assert.deepEqual(
    planBatch([
      ev('document:created'),
      ev('update'),
      ev('document:updated', { document: undefined }),
      ev('document:deleted'),
      ev('delete', { collection: 'other' }),
      ev('collection:cleared'),
      ev('drop_table'),
      ev('add_column'),
      ev('insert', { documentId: undefined }),
    ]),
    [
      { kind: 'put', collection: 'c', id: 'd', document: { v: 1 } },
      { kind: 'put', collection: 'c', id: 'd', document: { v: 1 } },
      { kind: 'delete', collection: 'c', id: 'd' },
      { kind: 'delete', collection: 'other', id: 'd' },
      { kind: 'clear', collection: 'c' },
      { kind: 'clear', collection: 'c' },
    ],
  );
});
