/**
 * The local cache: each subscribed collection's documents keyed by
 * documentId, plus each subscription's resume offset, so that a reloaded page
 * resumes where it stopped instead of reloading everything.
 */
import { CLEAR_TYPES, DELETE_TYPES, UPSERT_TYPES, type CachedDocument, type SyncEvent } from './types.js';

/**
 * Storage behind `cache`. Implementations must apply one batch atomically
 * (documents and offset together) and may be asynchronous.
 */
export interface CacheStore {
  /** The stored resume offset of the subscription (project, subscription collection or `*`). */
  getOffset(project: string, subscription: string): Promise<string | undefined>;
  /** Stores the resume offset alone (after a fresh subscribe). */
  setOffset(project: string, subscription: string, offset: string): Promise<void>;
  /** Applies one batch of events and stores `offset`, atomically. */
  apply(project: string, subscription: string, events: readonly SyncEvent[], offset: string): Promise<void>;
  /** Drops every document the subscription covers and stores `offset` (on `recovered: false`). */
  reset(project: string, subscription: string, offset: string): Promise<void>;
  /** Replaces one collection's documents (to seed the cache after a reset). */
  replaceAll(project: string, collection: string, documents: readonly CachedDocument[]): Promise<void>;
  /** Every document of one collection, ordered by id. */
  getAll(project: string, collection: string): Promise<CachedDocument[]>;
  /** One document, or undefined. */
  get(project: string, collection: string, id: string): Promise<CachedDocument | undefined>;
  /** Releases resources (the IndexedDB connection). */
  close(): void;
}

/** One change to the cache derived from an event. */
export type CacheOp =
  | { kind: 'put'; collection: string; id: string; document: unknown }
  | { kind: 'delete'; collection: string; id: string }
  | { kind: 'clear'; collection: string };

/**
 * planBatch turns events into cache operations. Upserts without a document
 * and events without a documentId change nothing; schema events other than
 * drop_table are ignored.
 */
export function planBatch(events: readonly SyncEvent[]): CacheOp[] {
  const ops: CacheOp[] = [];
  for (const ev of events) {
    if (UPSERT_TYPES.has(ev.type)) {
      if (ev.documentId !== undefined && ev.document !== undefined) {
        ops.push({ kind: 'put', collection: ev.collection, id: ev.documentId, document: ev.document });
      }
    } else if (DELETE_TYPES.has(ev.type)) {
      if (ev.documentId !== undefined) ops.push({ kind: 'delete', collection: ev.collection, id: ev.documentId });
    } else if (CLEAR_TYPES.has(ev.type)) {
      ops.push({ kind: 'clear', collection: ev.collection });
    }
  }
  return ops;
}

function compareIds(a: CachedDocument, b: CachedDocument): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** MemoryCache keeps everything in maps; it lives as long as the client. */
export class MemoryCache implements CacheStore {
  readonly #docs = new Map<string, Map<string, Map<string, unknown>>>();
  readonly #offsets = new Map<string, string>();

  #collection(project: string, collection: string, create: boolean): Map<string, unknown> | undefined {
    let p = this.#docs.get(project);
    if (!p) {
      if (!create) return undefined;
      p = new Map();
      this.#docs.set(project, p);
    }
    let c = p.get(collection);
    if (!c && create) {
      c = new Map();
      p.set(collection, c);
    }
    return c;
  }

  async getOffset(project: string, subscription: string): Promise<string | undefined> {
    return this.#offsets.get(`${project}\u0000${subscription}`);
  }

  async setOffset(project: string, subscription: string, offset: string): Promise<void> {
    this.#offsets.set(`${project}\u0000${subscription}`, offset);
  }

  async apply(project: string, subscription: string, events: readonly SyncEvent[], offset: string): Promise<void> {
    for (const op of planBatch(events)) {
      if (op.kind === 'put') this.#collection(project, op.collection, true)!.set(op.id, op.document);
      else if (op.kind === 'delete') this.#collection(project, op.collection, false)?.delete(op.id);
      else this.#collection(project, op.collection, false)?.clear();
    }
    this.#offsets.set(`${project}\u0000${subscription}`, offset);
  }

  async reset(project: string, subscription: string, offset: string): Promise<void> {
    if (subscription === '*') this.#docs.delete(project);
    else this.#docs.get(project)?.delete(subscription);
    this.#offsets.set(`${project}\u0000${subscription}`, offset);
  }

  async replaceAll(project: string, collection: string, documents: readonly CachedDocument[]): Promise<void> {
    const c = this.#collection(project, collection, true)!;
    c.clear();
    for (const d of documents) c.set(d.id, d.document);
  }

  async getAll(project: string, collection: string): Promise<CachedDocument[]> {
    const c = this.#collection(project, collection, false);
    if (!c) return [];
    return [...c].map(([id, document]) => ({ id, document })).sort(compareIds);
  }

  async get(project: string, collection: string, id: string): Promise<CachedDocument | undefined> {
    const c = this.#collection(project, collection, false);
    return c?.has(id) ? { id, document: c.get(id) } : undefined;
  }

  close(): void {}
}
