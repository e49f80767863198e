// The package's exports map: both entry points resolve by name and export
// what the README documents.
import { it } from 'node:test';
import assert from 'node:assert/strict';

it('exports @syncgate/client, @syncgate/client/server and @syncgate/client/react', async () => {
  const main = await import('@syncgate/client');
  for (const name of ['createClient', 'MemoryCache', 'IndexedDBCache', 'SyncError', 'backoffDelay', 'SUBPROTOCOL']) {
    assert.ok(main[name], `@syncgate/client exports ${name}`);
  }
  assert.equal(main.SUBPROTOCOL, 'syncgate.v1');
  const server = await import('@syncgate/client/server');
  assert.equal(typeof server.createPublisher, 'function', '@syncgate/client/server exports createPublisher');
  assert.equal(typeof server.PublishError, 'function', '@syncgate/client/server exports PublishError');
  const react = await import('@syncgate/client/react');
  for (const name of ['SyncProvider', 'useSyncClient', 'useSyncStatus', 'useEvents', 'useAutoRefresh', 'useCollection']) {
    assert.equal(typeof react[name], 'function', `@syncgate/client/react exports ${name}`);
  }
});

it('has no runtime dependencies', async () => {
  const { readFile } = await import('node:fs/promises');
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8'));
  assert.equal(pkg.dependencies, undefined);
  assert.deepEqual(Object.keys(pkg.peerDependencies), ['react']);
  assert.equal(pkg.peerDependenciesMeta.react.optional, true);
});
