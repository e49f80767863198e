/**
 * IndexedDB-backed cache. Layout of database `name` (default "syncgate"),
 * version 1:
 *
 *   documents  key [project, collection, id]  value {project, collection, id, document}
 *   offsets    key [project, subscription]    value {project, collection, offset}
 *
 * One batch of events is one readwrite transaction over both stores, so the
 * documents and the resume offset move together or not at all.
 */
import { planBatch, type CacheStore } from './cache.js';
import type { CachedDocument, SyncEvent } from './types.js';

const DOCS = 'documents';
const OFFSETS = 'offsets';

interface DocRecord {
  project: string;
  collection: string;
  id: string;
  document: unknown;
}

interface OffsetRecord {
  project: string;
  collection: string;
  offset: string;
}

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('syncgate: IndexedDB transaction aborted'));
  });
}

// Keys [p, c, id] with a string id sort below [p, c, []] because arrays sort
// after every other key type; the same trick bounds a whole project.
function collectionRange(project: string, collection: string): IDBKeyRange {
  return IDBKeyRange.bound([project, collection], [project, collection, []]);
}

function projectRange(project: string): IDBKeyRange {
  return IDBKeyRange.bound([project], [project, []]);
}

/** IndexedDBCache stores documents and offsets in the browser's IndexedDB. */
export class IndexedDBCache implements CacheStore {
  readonly #name: string;
  #db: Promise<IDBDatabase> | null = null;

  constructor(name = 'syncgate') {
    this.#name = name;
  }

  #open(): Promise<IDBDatabase> {
    if (!this.#db) {
      const factory = globalThis.indexedDB;
      if (!factory) return Promise.reject(new Error('syncgate: IndexedDB is not available here'));
      const req = factory.open(this.#name, 1);
      req.onupgradeneeded = () => {
        const db = req.result;
        if (!db.objectStoreNames.contains(DOCS)) db.createObjectStore(DOCS, { keyPath: ['project', 'collection', 'id'] });
        if (!db.objectStoreNames.contains(OFFSETS)) db.createObjectStore(OFFSETS, { keyPath: ['project', 'collection'] });
      };
      this.#db = request(req).then((db) => {
        // Another tab upgrading the schema must not be blocked by us.
        db.onversionchange = () => {
          db.close();
          this.#db = null;
        };
        return db;
      });
      this.#db.catch(() => {
        this.#db = null;
      });
    }
    return this.#db;
  }

  async getOffset(project: string, subscription: string): Promise<string | undefined> {
    const db = await this.#open();
    const rec = await request<OffsetRecord | undefined>(
      db.transaction(OFFSETS, 'readonly').objectStore(OFFSETS).get([project, subscription]),
    );
    return rec?.offset;
  }

  async setOffset(project: string, subscription: string, offset: string): Promise<void> {
    const db = await this.#open();
    const tx = db.transaction(OFFSETS, 'readwrite');
    tx.objectStore(OFFSETS).put({ project, collection: subscription, offset } satisfies OffsetRecord);
    await done(tx);
  }

  async apply(project: string, subscription: string, events: readonly SyncEvent[], offset: string): Promise<void> {
    const db = await this.#open();
    const tx = db.transaction([DOCS, OFFSETS], 'readwrite');
    const docs = tx.objectStore(DOCS);
    for (const op of planBatch(events)) {
      if (op.kind === 'put') {
        docs.put({ project, collection: op.collection, id: op.id, document: op.document } satisfies DocRecord);
      } else if (op.kind === 'delete') {
        docs.delete([project, op.collection, op.id]);
      } else {
        docs.delete(collectionRange(project, op.collection));
      }
    }
    tx.objectStore(OFFSETS).put({ project, collection: subscription, offset } satisfies OffsetRecord);
    await done(tx);
  }

  async reset(project: string, subscription: string, offset: string): Promise<void> {
    const db = await this.#open();
    const tx = db.transaction([DOCS, OFFSETS], 'readwrite');
    tx.objectStore(DOCS).delete(subscription === '*' ? projectRange(project) : collectionRange(project, subscription));
    tx.objectStore(OFFSETS).put({ project, collection: subscription, offset } satisfies OffsetRecord);
    await done(tx);
  }

  async replaceAll(project: string, collection: string, documents: readonly CachedDocument[]): Promise<void> {
    const db = await this.#open();
    const tx = db.transaction(DOCS, 'readwrite');
    const docs = tx.objectStore(DOCS);
    docs.delete(collectionRange(project, collection));
    for (const d of documents) docs.put({ project, collection, id: d.id, document: d.document } satisfies DocRecord);
    await done(tx);
  }

  async getAll(project: string, collection: string): Promise<CachedDocument[]> {
    const db = await this.#open();
    const recs = await request<DocRecord[]>(
      db.transaction(DOCS, 'readonly').objectStore(DOCS).getAll(collectionRange(project, collection)),
    );
    return recs.map((r) => ({ id: r.id, document: r.document }));
  }

  async get(project: string, collection: string, id: string): Promise<CachedDocument | undefined> {
    const db = await this.#open();
    const rec = await request<DocRecord | undefined>(
      db.transaction(DOCS, 'readonly').objectStore(DOCS).get([project, collection, id]),
    );
    return rec ? { id: rec.id, document: rec.document } : undefined;
  }

  close(): void {
    const db = this.#db;
    this.#db = null;
    db?.then((d) => d.close()).catch(() => {});
  }
}
