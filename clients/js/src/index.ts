/**
 * @syncgate/client: a browser and Node client for the syncgate gateway.
 *
 * ```ts
 * import { createClient } from '@syncgate/client';
 * const client = createClient({ url: 'https://gateway.example.com', getToken });
 * const stop = client.subscribe('p1', 'tasks', { onEvents: (events) => render(events) });
 * ```
 */
export { createClient } from './client.js';
export type { ClientOptions, CollectionView, SyncClient } from './client.js';
export { MemoryCache, planBatch } from './cache.js';
export type { CacheOp, CacheStore } from './cache.js';
export { IndexedDBCache } from './indexeddb.js';
export { backoffDelay, restartDelay } from './backoff.js';
export type { BackoffOptions } from './backoff.js';
export { SyncError, SUBPROTOCOL, validateNames } from './types.js';
export type {
  Audience,
  BatchInfo,
  CachedDocument,
  CollectionHandlers,
  ConnectionState,
  ResetInfo,
  SubscribeHandlers,
  SyncErrorCode,
  SyncEvent,
  SyncStatus,
  WebSocketConstructor,
  WebSocketLike,
} from './types.js';
