/**
 * Wire types of the syncgate client protocol (`GET /v1/ws`, subprotocol
 * `syncgate.v1`) and the public types of the SDK.
 */

/** The WebSocket subprotocol every syncgate connection negotiates. */
export const SUBPROTOCOL = 'syncgate.v1';

/** Who may receive an event; absent means everyone subscribed. */
export interface Audience {
  users?: string[];
  roles?: string[];
}

/**
 * One change event as the gateway delivers it. `offset` is opaque: the SDK
 * stores it and hands it back on resume, and so should you.
 */
export interface SyncEvent<TDocument = unknown> {
  type: string;
  project: string;
  collection: string;
  documentId?: string;
  document?: TDocument;
  oldDocument?: TDocument;
  actor?: string;
  audience?: Audience;
  timestamp?: string;
  offset: string;
}

/**
 * Connection states. A healthy client walks `connecting`, `open`, and after
 * a drop `reconnecting`, `open` again. `offline`: the browser said so.
 * `disconnected`: the app called `disconnect()` (undone by `reconnect()`).
 * `failed`: `reconnect.maxAttempts` tries in a row failed (undone by
 * `reconnect()`). `closed`: `close()` or a fatal error, for good.
 */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'offline' | 'disconnected' | 'failed' | 'closed';

/** A snapshot of the client's connection; a new object on every change. */
export interface SyncStatus {
  readonly state: ConnectionState;
  /** Consecutive failed or dropped connection attempts since the last `ready`. */
  readonly attempt: number;
  /** The error that caused the latest drop or failure, cleared by nothing but the next error. */
  readonly lastError: SyncError | null;
  /** Connection id from the latest `ready`. */
  readonly connection: string | null;
  /** Token subject from the latest `ready`. */
  readonly user: string | null;
  /** Token expiry from the latest `ready`. */
  readonly expiresAt: Date | null;
  /** When the next reconnect attempt is due (epoch ms), while one is scheduled. */
  readonly nextRetryAt: number | null;
  /**
   * True whenever the gateway cannot be reached: the browser is offline, or
   * a connection was lost or could not be made and no new one is `ready`
   * yet (`reconnecting`, `failed`). False while `open`, during the very first
   * `connecting`, and after `disconnect()` or `close()`.
   */
  readonly offline: boolean;
}

/** offlineOf derives SyncStatus.offline from the state and attempt count. */
export function offlineOf(state: ConnectionState, attempt: number): boolean {
  switch (state) {
    case 'offline':
    case 'reconnecting':
    case 'failed':
      return true;
    case 'connecting':
      return attempt > 0;
    default:
      return false;
  }
}

/**
 * Error codes the SDK reports: the server's `error` codes plus the close
 * codes of the protocol, named.
 */
export type SyncErrorCode =
  | 'bad_request'
  | 'forbidden'
  | 'not_found'
  | 'limit_exceeded'
  | 'unauthorized'
  | 'internal'
  | 'token_expired'
  | 'slow_consumer'
  | 'protocol_error'
  | 'service_restart'
  | 'try_again_later'
  | 'connection_lost'
  | 'timeout'
  | 'token_unavailable'
  | 'offline';

/** An error from the gateway or from the connection. */
export class SyncError extends Error {
  readonly code: SyncErrorCode | (string & {});
  /** The WebSocket close code when the error comes from a close. */
  readonly closeCode: number | undefined;

  constructor(code: SyncErrorCode | (string & {}), message: string, closeCode?: number) {
    super(message);
    this.name = 'SyncError';
    this.code = code;
    this.closeCode = closeCode;
  }
}

/** Batch context passed to subscription callbacks. */
export interface BatchInfo {
  project: string;
  /** The subscription's collection (`*` for a project-wide subscription). */
  collection: string;
  /** The resume offset after this batch. */
  offset: string;
}

/** Passed to `onReset` when the gateway could not replay every missed event. */
export interface ResetInfo {
  project: string;
  collection: string;
  /** The stream head the subscription continues from. */
  offset: string;
}

/**
 * Subscription callbacks. Each is called at most once per `events` frame,
 * with every matching event of that frame, in offset order.
 */
export interface SubscribeHandlers<TDocument = unknown> {
  /** Every event of the frame. */
  onEvents?: (events: SyncEvent<TDocument>[], info: BatchInfo) => void;
  /** The frame's created/updated events (`document:created`, `document:updated`, `insert`, `update`). */
  onUpdate?: (events: SyncEvent<TDocument>[], info: BatchInfo) => void;
  /** The frame's deleted events (`document:deleted`, `delete`). */
  onDelete?: (events: SyncEvent<TDocument>[], info: BatchInfo) => void;
  /**
   * Events after the resume point are gone from the gateway's history
   * (`recovered: false`): reload your state, then live events continue.
   */
  onReset?: (info: ResetInfo) => void;
  /** The subscription failed (forbidden, bad name, limit) or the cache failed. */
  onError?: (error: SyncError) => void;
  /** The gateway confirmed the subscription (after every (re)connect). */
  onSubscribed?: (info: { project: string; collection: string; offset: string; recovered: boolean }) => void;
}

/**
 * Handlers of `subscribe(collection, handlers)` (the client's default
 * `project`), for apps that keep documents rather than events. Each is
 * called at most once per `events` frame.
 */
export interface CollectionHandlers<TDocument = unknown> {
  /** The `document` of each created/updated event of the frame (`document:created`, `document:updated`, `insert`, `update`), in order. */
  onUpdate?: (documents: TDocument[], events: SyncEvent<TDocument>[]) => void;
  /** The `documentId` of each deleted event of the frame (`document:deleted`, `delete`). */
  onDelete?: (ids: string[], events: SyncEvent<TDocument>[]) => void;
  /** The collection was emptied (`collection:cleared`, `drop_table`). */
  onClear?: (events: SyncEvent<TDocument>[]) => void;
  /** The gateway could not replay what was missed: reload the collection. */
  onReset?: (info: ResetInfo) => void;
  /** The subscription failed (forbidden, bad name, limit) or the cache failed. */
  onError?: (error: SyncError) => void;
}

/** The part of the WebSocket API the client uses; the browser's and `ws`'s both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: any) => void) | null;
}

/** A WebSocket constructor, e.g. the browser's `WebSocket` or the `ws` package's. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** A document in the local cache. */
export interface CachedDocument<TDocument = unknown> {
  id: string;
  document: TDocument;
}

/** Event types that put `document` under `documentId` in the cache. */
export const UPSERT_TYPES: ReadonlySet<string> = new Set(['document:created', 'document:updated', 'insert', 'update']);
/** Event types that remove `documentId` from the cache. */
export const DELETE_TYPES: ReadonlySet<string> = new Set(['document:deleted', 'delete']);
/** Event types that empty the event's collection in the cache. */
export const CLEAR_TYPES: ReadonlySet<string> = new Set(['collection:cleared', 'drop_table']);

const PROJECT_RE = /^[A-Za-z0-9_-]{1,64}$/;
const COLLECTION_RE = /^[A-Za-z0-9_.-]{1,128}$/;

/** Throws a TypeError naming the bad value unless project and collection are valid names. */
export function validateNames(project: string, collection: string): void {
  if (typeof project !== 'string' || !PROJECT_RE.test(project)) {
    throw new TypeError(`syncgate: invalid project ${JSON.stringify(project)}: want [A-Za-z0-9_-]{1,64}`);
  }
  if (collection !== '*' && (typeof collection !== 'string' || !COLLECTION_RE.test(collection))) {
    throw new TypeError(`syncgate: invalid collection ${JSON.stringify(collection)}: want [A-Za-z0-9_.-]{1,128} or "*"`);
  }
}
