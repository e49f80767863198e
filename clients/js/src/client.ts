/**
 * The syncgate client: one WebSocket, any number of subscriptions, and the
 * state machine that keeps them alive.
 *
 * Every inbound socket event (open, message, close) goes through one promise
 * chain, the inbox, and is handled in arrival order; cache writes are awaited
 * inside it, so a subscription's offset only advances once its batch is
 * stored, and a resubscribe after a reconnect always carries the offset of the
 * last batch the app saw.
 */
import {
  backoffDelay,
  restartDelay,
  type BackoffOptions,
} from './backoff.js';
import { MemoryCache, type CacheStore } from './cache.js';
import { IndexedDBCache } from './indexeddb.js';
import {
  CLEAR_TYPES,
  DELETE_TYPES,
  SUBPROTOCOL,
  SyncError,
  UPSERT_TYPES,
  offlineOf,
  validateNames,
  type BatchInfo,
  type CachedDocument,
  type CollectionHandlers,
  type ConnectionState,
  type SubscribeHandlers,
  type SyncEvent,
  type SyncStatus,
  type WebSocketConstructor,
  type WebSocketLike,
} from './types.js';

/** Options of createClient; every optional field states its default. */
export interface ClientOptions {
  /**
   * The gateway: `wss://host/v1/ws`, or an origin (`https://host`,
   * `ws://host:8080`) to which `/v1/ws` is appended. http(s) becomes ws(s).
   */
  url: string;
  /** A fixed token. Without `getToken` the client cannot refresh it: at expiry (4009) it closes. */
  token?: string;
  /**
   * Returns a token. Called for the first connection, before the current
   * token's `expiresAt`, after a close with 4009 or 4001, and whenever the
   * token in hand is near its expiry; otherwise reconnects reuse the token.
   */
  getToken?: () => string | Promise<string>;
  /** The project of `subscribe(collection, handlers)`. Default: none (then that form throws). */
  project?: string;
  /** Local document cache. Default: none (then `collection()` throws). */
  cache?: 'indexeddb' | 'memory' | CacheStore;
  /** IndexedDB database name for `cache: 'indexeddb'`. Default "syncgate". */
  cacheName?: string;
  /** Reconnect timing and limit. Defaults: base 500 ms, max 30 s, restart jitter 1 s, no limit on attempts. */
  reconnect?: BackoffOptions;
  /** Refresh the token this long before `expiresAt` (at most half the remaining lifetime). Default 60000. */
  refreshMarginMs?: number;
  /** Give up on a connection that is not `ready` after this long. Default 10000. */
  connectTimeoutMs?: number;
  /** Send a ping after this much time without traffic. Default 25000; 0 disables. */
  pingIntervalMs?: number;
  /** Drop the connection when nothing arrives this long after a ping. Default 10000. */
  pingTimeoutMs?: number;
  /** WebSocket implementation. Default `globalThis.WebSocket` (pass the `ws` package's in Node 20). */
  WebSocket?: WebSocketConstructor;
  /** Where `online`/`offline` events come from. Default `window` when present; null disables. */
  onlineTarget?: EventTarget | null;
  /** Whether the environment starts online. Default `navigator.onLine` when present, else true. */
  initiallyOnline?: boolean;
  /** Randomness for jitter, [0, 1). Default Math.random; tests pass their own. */
  random?: () => number;
}

/** A read view of one cached collection. */
export interface CollectionView<TDocument = unknown> {
  readonly project: string;
  readonly collection: string;
  /** Every cached document of the collection, ordered by id. */
  getAll(): Promise<CachedDocument<TDocument>[]>;
  /** One cached document. */
  get(id: string): Promise<CachedDocument<TDocument> | undefined>;
  /** Replaces the cached documents, e.g. with a fresh load after `onReset`. */
  replaceAll(documents: readonly CachedDocument<TDocument>[]): Promise<void>;
  /** Called after every change to this collection's cached documents; returns the remover. */
  onChange(listener: () => void): () => void;
}

/** The public client. */
export interface SyncClient {
  /** The current status snapshot. */
  readonly status: SyncStatus;
  /** Calls `listener` with every new status; returns the remover. */
  onStatus(listener: (status: SyncStatus) => void): () => void;
  /**
   * Subscribes to (project, collection); `collection` may be `*`. Several
   * subscribe calls for the same pair share one gateway subscription.
   * Returns the unsubscribe function.
   */
  subscribe<TDocument = unknown>(project: string, collection: string, handlers: SubscribeHandlers<TDocument>): () => void;
  /**
   * Subscribes to `collection` of the client's default `project` with
   * document-level handlers: `onUpdate(documents)`, `onDelete(ids)`.
   * Returns the unsubscribe function.
   */
  subscribe<TDocument = unknown>(collection: string, handlers: CollectionHandlers<TDocument>): () => void;
  /** The cached documents of one collection (requires the `cache` option). */
  collection<TDocument = unknown>(project: string, collection: string): CollectionView<TDocument>;
  /**
   * Connects now: skips a pending reconnect wait (a "retry now" button),
   * and starts over after `disconnect()` or in state `failed`.
   */
  reconnect(): void;
  /**
   * Closes the connection but keeps every subscription and its resume
   * point; state `disconnected` until `reconnect()`, which resumes them.
   */
  disconnect(): void;
  /** Closes the connection for good; status becomes `closed`. */
  close(): void;
}

const WS_OPEN = 1;
/**
 * A connection that lived this long after `ready` counts as healthy. Shorter
 * ones are flaps: after two in a row the "at once" reconnect of 1012/4008/4009
 * turns into backoff, so a gateway that closes every new connection (say, a
 * replay that overflows its queue) does not get hammered.
 */
const STABLE_MS = 10_000;

interface Subscription {
  readonly key: string;
  readonly project: string;
  readonly collection: string;
  readonly handlers: Set<SubscribeHandlers<any>>;
  /** The resume point: offset of the last batch processed, or the head of `subscribed`. */
  offset: string | undefined;
  /** Resolves once the cached offset is loaded. */
  loaded: Promise<void>;
  isLoaded: boolean;
  /** Socket generation the subscribe was sent on; 0 when not sent. */
  sentOn: number;
  /** The `since` the subscribe was sent with. */
  sinceSent: string | undefined;
  /** `subscribed` arrived on the current socket. */
  active: boolean;
  /** The gateway refused it; it is not sent again. */
  failed: boolean;
  /** Pending delayed unsubscribe after the last handler left. */
  lingerTimer: ReturnType<typeof setTimeout> | null;
}

type Inbound =
  | { kind: 'open'; gen: number }
  | { kind: 'message'; gen: number; data: unknown }
  | { kind: 'close'; gen: number; code: number; reason: string };

type Pending = { kind: 'subscribe' | 'unsubscribe'; key: string } | { kind: 'auth' };

/** Close codes and what the client does after them. */
function classifyClose(code: number, reason: string): { error: SyncError; mode: 'backoff' | 'restart' | 'auth' | 'expired' | 'fatal' } {
  const msg = reason ? `${reason} (${code})` : `connection closed (${code})`;
  switch (code) {
    case 4001:
      return { error: new SyncError('unauthorized', msg, code), mode: 'auth' };
    case 4003:
      return { error: new SyncError('forbidden', msg, code), mode: 'auth' };
    case 4009:
      return { error: new SyncError('token_expired', msg, code), mode: 'expired' };
    case 4008:
      return { error: new SyncError('slow_consumer', msg, code), mode: 'restart' };
    case 1012:
    case 1001:
      return { error: new SyncError('service_restart', msg, code), mode: 'restart' };
    case 1013:
      return { error: new SyncError('try_again_later', msg, code), mode: 'backoff' };
    case 4400:
      return { error: new SyncError('protocol_error', msg, code), mode: 'backoff' };
    default:
      return { error: new SyncError('connection_lost', msg, code), mode: 'backoff' };
  }
}

function normalizeUrl(url: string): string {
  const u = new URL(url, (globalThis as { location?: { href: string } }).location?.href);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.pathname === '' || u.pathname === '/') u.pathname = '/v1/ws';
  return u.toString();
}

function report(err: unknown): void {
  const g = globalThis as { reportError?: (e: unknown) => void };
  if (typeof g.reportError === 'function') g.reportError(err);
  else console.error(err);
}

class Client implements SyncClient {
  readonly #opts: ClientOptions;
  readonly #url: string;
  readonly #WS: WebSocketConstructor;
  readonly #random: () => number;
  readonly #cache: CacheStore | null;

  #status: SyncStatus;
  readonly #statusListeners = new Set<(s: SyncStatus) => void>();

  #ws: WebSocketLike | null = null;
  /** Socket generation; bumped for every socket, so events of an abandoned one are ignored. */
  #gen = 0;
  /** `ready` arrived on the current socket. */
  #ready = false;
  #everReady = false;
  #closed = false;
  #online = true;
  /** Not dialling until reconnect(): the app disconnected, or maxAttempts ran out. */
  #stopped: 'disconnected' | 'failed' | null = null;

  readonly #subs = new Map<string, Subscription>();
  /** Keys with an unsubscribe in flight on the current socket; their next subscribe waits. */
  readonly #unsubscribing = new Set<string>();
  readonly #pending = new Map<string, Pending>();
  #nextId = 1;

  #token: string | null = null;
  #tokenExpiresAt = 0;
  #forceNewToken = true;

  #reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  #refreshTimer: ReturnType<typeof setTimeout> | null = null;
  #connectTimer: ReturnType<typeof setTimeout> | null = null;
  #pingTimer: ReturnType<typeof setTimeout> | null = null;
  #pongTimer: ReturnType<typeof setTimeout> | null = null;
  #connecting = false;
  /** When the current connection became ready (epoch ms), 0 when not ready. */
  #readyAt = 0;
  /** Consecutive connections that died within STABLE_MS of ready. */
  #flaps = 0;

  #inbox: Promise<void> = Promise.resolve();
  readonly #cacheListeners = new Map<string, Set<() => void>>();
  readonly #onlineTarget: EventTarget | null;

  constructor(opts: ClientOptions) {
    if (!opts || typeof opts.url !== 'string') throw new TypeError('syncgate: createClient needs { url }');
    if (opts.token === undefined && opts.getToken === undefined) {
      throw new TypeError('syncgate: createClient needs { token } or { getToken }');
    }
    this.#opts = opts;
    this.#url = normalizeUrl(opts.url);
    const WS = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new TypeError('syncgate: no WebSocket implementation; pass { WebSocket } (e.g. from the "ws" package)');
    this.#WS = WS;
    this.#random = opts.random ?? Math.random;
    if (opts.cache === 'memory') this.#cache = new MemoryCache();
    else if (opts.cache === 'indexeddb') this.#cache = new IndexedDBCache(opts.cacheName);
    else this.#cache = opts.cache ?? null;
    if (opts.token !== undefined) this.#token = opts.token;

    const nav = (globalThis as { navigator?: { onLine?: boolean } }).navigator;
    this.#online = opts.initiallyOnline ?? (typeof nav?.onLine === 'boolean' ? nav.onLine : true);
    const win = (globalThis as { window?: EventTarget }).window;
    this.#onlineTarget = opts.onlineTarget === undefined ? (win && typeof win.addEventListener === 'function' ? win : null) : opts.onlineTarget;
    this.#onlineTarget?.addEventListener('online', this.#handleOnline);
    this.#onlineTarget?.addEventListener('offline', this.#handleOffline);

    this.#status = {
      state: this.#online ? 'connecting' : 'offline',
      attempt: 0,
      lastError: null,
      connection: null,
      user: null,
      expiresAt: null,
      nextRetryAt: null,
      offline: !this.#online,
    };
    if (this.#online) void this.#connect();
  }

  // ---- status -------------------------------------------------------------

  get status(): SyncStatus {
    return this.#status;
  }

  onStatus(listener: (status: SyncStatus) => void): () => void {
    this.#statusListeners.add(listener);
    return () => {
      this.#statusListeners.delete(listener);
    };
  }

  #setStatus(patch: Partial<SyncStatus>): void {
    const next = { ...this.#status, ...patch };
    next.offline = offlineOf(next.state, next.attempt);
    const prev = this.#status;
    if (
      next.state === prev.state &&
      next.attempt === prev.attempt &&
      next.lastError === prev.lastError &&
      next.connection === prev.connection &&
      next.user === prev.user &&
      next.expiresAt?.getTime() === prev.expiresAt?.getTime() &&
      next.nextRetryAt === prev.nextRetryAt
    ) {
      return;
    }
    this.#status = Object.freeze(next);
    for (const l of [...this.#statusListeners]) {
      try {
        l(this.#status);
      } catch (err) {
        report(err);
      }
    }
  }

  // ---- connecting ---------------------------------------------------------

  async #getToken(): Promise<string> {
    const get = this.#opts.getToken;
    if (!get) return this.#opts.token as string;
    const margin = this.#refreshMargin(this.#tokenExpiresAt - Date.now());
    if (this.#token !== null && !this.#forceNewToken && (this.#tokenExpiresAt === 0 || Date.now() < this.#tokenExpiresAt - margin)) {
      return this.#token;
    }
    const token = await get();
    if (typeof token !== 'string' || token === '') throw new SyncError('token_unavailable', 'getToken returned no token');
    this.#token = token;
    this.#forceNewToken = false;
    this.#tokenExpiresAt = 0;
    return token;
  }

  #refreshMargin(remaining: number): number {
    const margin = this.#opts.refreshMarginMs ?? 60_000;
    return Math.max(0, Math.min(margin, remaining / 2));
  }

  async #connect(): Promise<void> {
    if (this.#closed || this.#stopped || !this.#online || this.#ws || this.#connecting) return;
    this.#clearTimer('reconnect');
    this.#connecting = true;
    this.#setStatus({ state: this.#everReady ? 'reconnecting' : 'connecting', nextRetryAt: null });
    let token: string;
    try {
      token = await this.#getToken();
    } catch (err) {
      this.#connecting = false;
      const error = err instanceof SyncError ? err : new SyncError('token_unavailable', `getToken failed: ${String((err as Error)?.message ?? err)}`);
      this.#scheduleReconnect('backoff', error);
      return;
    }
    this.#connecting = false;
    if (this.#closed || this.#stopped || !this.#online || this.#ws) return;

    const gen = ++this.#gen;
    let ws: WebSocketLike;
    try {
      ws = new this.#WS(this.#url, SUBPROTOCOL);
    } catch (err) {
      this.#scheduleReconnect('backoff', new SyncError('connection_lost', `cannot open WebSocket: ${String((err as Error)?.message ?? err)}`));
      return;
    }
    this.#ws = ws;
    this.#ready = false;
    ws.onopen = () => {
      if (gen !== this.#gen) return;
      try {
        ws.send(JSON.stringify({ op: 'auth', token }));
      } catch {
        // The close event follows.
      }
      this.#enqueue({ kind: 'open', gen });
    };
    ws.onmessage = (ev) => {
      if (gen !== this.#gen) return;
      this.#gotTraffic();
      this.#enqueue({ kind: 'message', gen, data: ev.data });
    };
    ws.onclose = (ev) => {
      if (gen !== this.#gen) return;
      this.#enqueue({ kind: 'close', gen, code: ev.code, reason: ev.reason });
    };
    ws.onerror = () => {
      // Browsers follow every error with a close event, which carries the code.
    };
    const timeout = this.#opts.connectTimeoutMs ?? 10_000;
    this.#connectTimer = setTimeout(() => {
      this.#connectTimer = null;
      if (gen === this.#gen && !this.#ready) this.#drop(new SyncError('timeout', `no ready within ${timeout} ms`), 'backoff');
    }, timeout);
  }

  /** Abandons the current socket now (timeouts, offline, close) and settles the state. */
  #drop(error: SyncError | null, mode: 'backoff' | 'restart' | 'none'): void {
    const ws = this.#ws;
    this.#gen++;
    this.#ws = null;
    this.#afterSocketGone();
    if (ws) {
      try {
        ws.close(1000);
      } catch {
        // Already closed.
      }
    }
    if (mode !== 'none' && error) this.#scheduleReconnect(mode, error);
  }

  #afterSocketGone(): void {
    if (this.#readyAt !== 0) {
      this.#flaps = Date.now() - this.#readyAt < STABLE_MS ? this.#flaps + 1 : 0;
      this.#readyAt = 0;
    }
    this.#ready = false;
    this.#clearTimer('connect');
    this.#clearTimer('refresh');
    this.#clearTimer('ping');
    this.#clearTimer('pong');
    this.#pending.clear();
    this.#unsubscribing.clear();
    for (const sub of this.#subs.values()) {
      sub.active = false;
      sub.sentOn = 0;
      sub.sinceSent = undefined;
    }
  }

  #scheduleReconnect(mode: 'backoff' | 'restart', error: SyncError): void {
    if (this.#closed || this.#stopped) return;
    if (!this.#online) {
      this.#setStatus({ state: 'offline', lastError: error, nextRetryAt: null });
      return;
    }
    const attempt = this.#status.attempt + 1;
    const maxAttempts = this.#opts.reconnect?.maxAttempts ?? Infinity;
    if (attempt > maxAttempts) {
      // Socket.IO's reconnect_failed: stop until the app says reconnect().
      this.#stopped = 'failed';
      this.#clearTimer('reconnect');
      this.#setStatus({ state: 'failed', attempt, lastError: error, nextRetryAt: null });
      return;
    }
    const delay =
      mode === 'restart' && this.#flaps < 2
        ? restartDelay(this.#opts.reconnect, this.#random)
        : backoffDelay(Math.max(attempt, this.#flaps), this.#opts.reconnect, this.#random);
    this.#clearTimer('reconnect');
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      void this.#connect();
    }, delay);
    this.#setStatus({ state: 'reconnecting', attempt, lastError: error, nextRetryAt: Date.now() + delay });
  }

  #fatal(error: SyncError): void {
    this.#setStatus({ lastError: error });
    this.close();
  }

  reconnect(): void {
    if (this.#closed) return;
    if (this.#stopped) {
      this.#stopped = null;
      // Start over: a fresh backoff and a fresh count of attempts.
      this.#flaps = 0;
      if (!this.#online) this.#setStatus({ state: 'offline', attempt: 0, nextRetryAt: null });
      else this.#setStatus({ attempt: 0 });
      void this.#connect();
      return;
    }
    if (this.#reconnectTimer) {
      this.#clearTimer('reconnect');
      void this.#connect();
    }
  }

  disconnect(): void {
    if (this.#closed || this.#stopped === 'disconnected') return;
    this.#stopped = 'disconnected';
    this.#clearTimer('reconnect');
    this.#drop(null, 'none');
    this.#setStatus({ state: 'disconnected', attempt: 0, nextRetryAt: null });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#clearTimer('reconnect');
    for (const sub of this.#subs.values()) if (sub.lingerTimer) clearTimeout(sub.lingerTimer);
    this.#drop(null, 'none');
    this.#onlineTarget?.removeEventListener('online', this.#handleOnline);
    this.#onlineTarget?.removeEventListener('offline', this.#handleOffline);
    this.#setStatus({ state: 'closed', nextRetryAt: null });
    // Let queued cache writes finish before the cache goes away.
    void this.#inbox.then(() => this.#cache?.close());
  }

  readonly #handleOnline = (): void => {
    if (this.#closed || this.#online) return;
    this.#online = true;
    void this.#connect();
  };

  readonly #handleOffline = (): void => {
    if (this.#closed || !this.#online) return;
    this.#online = false;
    if (this.#stopped) return; // stays disconnected / failed; reconnect() knows we are offline
    this.#clearTimer('reconnect');
    const wasConnected = this.#ws !== null;
    this.#drop(null, 'none');
    this.#setStatus({
      state: 'offline',
      nextRetryAt: null,
      ...(wasConnected ? { lastError: new SyncError('offline', 'the browser went offline') } : {}),
    });
  };

  #clearTimer(which: 'reconnect' | 'refresh' | 'connect' | 'ping' | 'pong'): void {
    const field = {
      reconnect: this.#reconnectTimer,
      refresh: this.#refreshTimer,
      connect: this.#connectTimer,
      ping: this.#pingTimer,
      pong: this.#pongTimer,
    }[which];
    if (field !== null) clearTimeout(field);
    if (which === 'reconnect') this.#reconnectTimer = null;
    else if (which === 'refresh') this.#refreshTimer = null;
    else if (which === 'connect') this.#connectTimer = null;
    else if (which === 'ping') this.#pingTimer = null;
    else this.#pongTimer = null;
  }

  // ---- liveness -----------------------------------------------------------

  #gotTraffic(): void {
    this.#clearTimer('pong');
    if (this.#ready) this.#armPing();
  }

  #armPing(): void {
    const interval = this.#opts.pingIntervalMs ?? 25_000;
    if (interval <= 0) return;
    this.#clearTimer('ping');
    const gen = this.#gen;
    this.#pingTimer = setTimeout(() => {
      this.#pingTimer = null;
      if (gen !== this.#gen || !this.#ready) return;
      this.#send({ op: 'ping' });
      const timeout = this.#opts.pingTimeoutMs ?? 10_000;
      this.#pongTimer = setTimeout(() => {
        this.#pongTimer = null;
        if (gen === this.#gen) this.#drop(new SyncError('timeout', `no answer to ping within ${timeout} ms`), 'backoff');
      }, timeout);
    }, interval);
  }

  // ---- token refresh ------------------------------------------------------

  #scheduleRefresh(expiresAt: Date | null): void {
    this.#clearTimer('refresh');
    if (!this.#opts.getToken || !expiresAt) return;
    const remaining = expiresAt.getTime() - Date.now();
    const delay = Math.max(0, remaining - this.#refreshMargin(remaining));
    const gen = this.#gen;
    this.#refreshTimer = setTimeout(() => {
      this.#refreshTimer = null;
      if (gen === this.#gen) void this.#refresh(gen, expiresAt);
    }, delay);
  }

  async #refresh(gen: number, expiresAt: Date): Promise<void> {
    this.#forceNewToken = true;
    let token: string;
    try {
      token = await this.#getToken();
    } catch (err) {
      if (gen !== this.#gen) return;
      this.#setStatus({ lastError: new SyncError('token_unavailable', `getToken failed: ${String((err as Error)?.message ?? err)}`) });
      // Try again while the token lasts; at expiry the gateway closes with 4009.
      const remaining = expiresAt.getTime() - Date.now();
      if (remaining > 0) {
        this.#refreshTimer = setTimeout(() => {
          this.#refreshTimer = null;
          if (gen === this.#gen) void this.#refresh(gen, expiresAt);
        }, Math.max(50, Math.min(5_000, remaining / 4)));
      }
      return;
    }
    if (gen !== this.#gen || !this.#ready) return;
    const id = String(this.#nextId++);
    this.#pending.set(id, { kind: 'auth' });
    this.#send({ op: 'auth', id, token });
  }

  // ---- sending ------------------------------------------------------------

  #send(msg: Record<string, unknown>): boolean {
    const ws = this.#ws;
    if (!ws || ws.readyState !== WS_OPEN) return false;
    try {
      ws.send(JSON.stringify(msg));
      return true;
    } catch {
      return false;
    }
  }

  #sendSubscribe(sub: Subscription): void {
    if (!this.#ready || sub.failed || sub.sentOn === this.#gen || sub.handlers.size === 0) return;
    if (!sub.isLoaded || this.#unsubscribing.has(sub.key)) return; // sent when loaded / unsubscribed
    const id = String(this.#nextId++);
    const msg: Record<string, unknown> = { op: 'subscribe', id, project: sub.project, collection: sub.collection };
    if (sub.offset !== undefined) msg['since'] = sub.offset;
    if (this.#send(msg)) {
      sub.sentOn = this.#gen;
      sub.sinceSent = sub.offset;
      sub.active = false;
      this.#pending.set(id, { kind: 'subscribe', key: sub.key });
    }
  }

  // ---- inbound ------------------------------------------------------------

  #enqueue(item: Inbound): void {
    this.#inbox = this.#inbox.then(() => this.#handle(item)).catch(report);
  }

  async #handle(item: Inbound): Promise<void> {
    if (item.kind === 'close') {
      if (item.gen !== this.#gen) return;
      this.#ws = null;
      this.#gen++;
      this.#afterSocketGone();
      const { error, mode } = classifyClose(item.code, item.reason);
      if (mode === 'auth' || mode === 'expired') {
        if (!this.#opts.getToken) {
          this.#fatal(error);
          return;
        }
        this.#forceNewToken = true;
        this.#scheduleReconnect(mode === 'expired' ? 'restart' : 'backoff', error);
        return;
      }
      if (mode === 'fatal') {
        this.#fatal(error);
        return;
      }
      this.#scheduleReconnect(mode, error);
      return;
    }
    if (item.gen !== this.#gen || item.kind === 'open') return;
    let parsed: unknown = null;
    try {
      parsed = typeof item.data === 'string' ? JSON.parse(item.data) : null;
    } catch {
      return; // the gateway never sends anything but JSON text
    }
    if (!parsed || typeof parsed !== 'object') return;
    const msg = parsed as Record<string, unknown>;
    switch (msg['op']) {
      case 'ready':
        this.#onReady(msg);
        return;
      case 'subscribed':
        await this.#onSubscribed(msg);
        return;
      case 'events':
        await this.#onEvents(msg);
        return;
      case 'unsubscribed':
        this.#onUnsubscribed(msg);
        return;
      case 'error':
        this.#onError(msg);
        return;
      default:
        return; // pong and future ops
    }
  }

  #onReady(msg: Record<string, unknown>): void {
    const expires = typeof msg['expiresAt'] === 'string' ? new Date(msg['expiresAt']) : null;
    const expiresAt = expires && !Number.isNaN(expires.getTime()) ? expires : null;
    if (expiresAt) this.#tokenExpiresAt = expiresAt.getTime();
    if (typeof msg['id'] === 'string' || typeof msg['id'] === 'number') this.#pending.delete(String(msg['id']));
    const patch: Partial<SyncStatus> = {
      connection: typeof msg['connection'] === 'string' ? msg['connection'] : null,
      user: typeof msg['user'] === 'string' ? msg['user'] : null,
      expiresAt,
    };
    this.#scheduleRefresh(expiresAt);
    if (this.#ready) {
      this.#setStatus(patch); // a refresh was accepted
      return;
    }
    this.#ready = true;
    this.#readyAt = Date.now();
    this.#everReady = true;
    this.#clearTimer('connect');
    this.#setStatus({ ...patch, state: 'open', attempt: 0, nextRetryAt: null });
    this.#armPing();
    for (const sub of this.#subs.values()) this.#sendSubscribe(sub);
  }

  #subFor(msg: Record<string, unknown>): Subscription | undefined {
    const project = msg['project'];
    const collection = msg['collection'];
    if (typeof project !== 'string' || typeof collection !== 'string') return undefined;
    const sub = this.#subs.get(`${project}\u0000${collection}`);
    return sub && sub.sentOn === this.#gen ? sub : undefined;
  }

  async #onSubscribed(msg: Record<string, unknown>): Promise<void> {
    if (msg['id'] !== undefined) this.#pending.delete(String(msg['id']));
    const sub = this.#subFor(msg);
    if (!sub) return;
    const offset = typeof msg['offset'] === 'string' ? msg['offset'] : String(msg['offset'] ?? '');
    const recovered = msg['recovered'] !== false;
    const wasActive = sub.active;
    sub.active = true;
    if (!recovered && (wasActive || sub.sinceSent !== undefined)) {
      // A gap the gateway could not fill: the app must reload.
      sub.offset = offset;
      sub.sinceSent = undefined;
      if (this.#cache) {
        try {
          await this.#cache.reset(sub.project, sub.collection, offset);
        } catch (err) {
          this.#subError(sub, err);
        }
        this.#cacheChanged(sub.project, sub.collection === '*' ? null : sub.collection);
      }
      this.#call(sub, (h) => h.onReset?.({ project: sub.project, collection: sub.collection, offset }));
    } else if (!wasActive && sub.sinceSent === undefined) {
      // Nothing processed yet: the head is the resume point.
      sub.offset = offset;
      if (this.#cache) {
        try {
          await this.#cache.setOffset(sub.project, sub.collection, offset);
        } catch (err) {
          this.#subError(sub, err);
        }
      }
    }
    this.#call(sub, (h) => h.onSubscribed?.({ project: sub.project, collection: sub.collection, offset, recovered }));
  }

  async #onEvents(msg: Record<string, unknown>): Promise<void> {
    const sub = this.#subFor(msg);
    if (!sub || !sub.active) return;
    const raw = msg['events'];
    if (!Array.isArray(raw) || raw.length === 0) return;
    const events: SyncEvent[] = [];
    for (const ev of raw) {
      if (!ev || typeof ev !== 'object') continue;
      const e = ev as SyncEvent;
      if (typeof e.project !== 'string') e.project = sub.project;
      if (typeof e.collection !== 'string') e.collection = sub.collection;
      events.push(e);
    }
    const last = events[events.length - 1];
    if (!last) return;
    const offset = String(last.offset);
    if (this.#cache) {
      try {
        await this.#cache.apply(sub.project, sub.collection, events, offset);
      } catch (err) {
        this.#subError(sub, err);
      }
    }
    sub.offset = offset;
    if (this.#cache) {
      const touched = new Set(events.map((e) => e.collection));
      for (const c of touched) this.#cacheChanged(sub.project, c);
    }
    const info: BatchInfo = { project: sub.project, collection: sub.collection, offset };
    const updates = events.filter((e) => UPSERT_TYPES.has(e.type));
    const deletes = events.filter((e) => DELETE_TYPES.has(e.type));
    this.#call(sub, (h) => h.onEvents?.(events, info));
    if (updates.length > 0) this.#call(sub, (h) => h.onUpdate?.(updates, info));
    if (deletes.length > 0) this.#call(sub, (h) => h.onDelete?.(deletes, info));
  }

  #onUnsubscribed(msg: Record<string, unknown>): void {
    const id = msg['id'];
    if (id !== undefined) this.#pending.delete(String(id));
    const key = `${String(msg['project'])}\u0000${String(msg['collection'])}`;
    this.#unsubscribing.delete(key);
    const sub = this.#subs.get(key);
    if (sub) this.#sendSubscribe(sub);
  }

  #onError(msg: Record<string, unknown>): void {
    const error = new SyncError(String(msg['code'] ?? 'internal'), String(msg['message'] ?? 'gateway error'));
    const id = msg['id'];
    const pending = id !== undefined ? this.#pending.get(String(id)) : undefined;
    if (id !== undefined) this.#pending.delete(String(id));
    if (pending?.kind === 'subscribe') {
      const sub = this.#subs.get(pending.key);
      if (sub && sub.sentOn === this.#gen) {
        sub.failed = true;
        sub.sentOn = 0;
        this.#call(sub, (h) => h.onError?.(error));
      }
      return;
    }
    if (pending?.kind === 'unsubscribe') {
      this.#unsubscribing.delete(pending.key);
      const sub = this.#subs.get(pending.key);
      if (sub) this.#sendSubscribe(sub);
      return;
    }
    // A refused refresh or an error about no request: keep it visible.
    this.#setStatus({ lastError: error });
  }

  #subError(sub: Subscription, err: unknown): void {
    const error = err instanceof SyncError ? err : new SyncError('internal', `cache: ${String((err as Error)?.message ?? err)}`);
    this.#call(sub, (h) => h.onError?.(error));
  }

  #call(sub: Subscription, fn: (h: SubscribeHandlers<any>) => void): void {
    for (const h of [...sub.handlers]) {
      try {
        fn(h);
      } catch (err) {
        report(err);
      }
    }
  }

  // ---- subscriptions ------------------------------------------------------

  subscribe<TDocument = unknown>(project: string, collection: string, handlers: SubscribeHandlers<TDocument>): () => void;
  subscribe<TDocument = unknown>(collection: string, handlers: CollectionHandlers<TDocument>): () => void;
  subscribe<TDocument = unknown>(
    a: string,
    b: string | CollectionHandlers<TDocument>,
    c?: SubscribeHandlers<TDocument>,
  ): () => void {
    if (typeof b === 'string') return this.#subscribe(a, b, c ?? {});
    const project = this.#opts.project;
    if (project === undefined) throw new TypeError('syncgate: subscribe(collection, handlers) needs a default project: createClient({ project, … })');
    if (!b || typeof b !== 'object') throw new TypeError('syncgate: subscribe(collection, handlers): handlers must be an object');
    return this.#subscribe(project, a, fromCollectionHandlers(b));
  }

  #subscribe<TDocument = unknown>(project: string, collection: string, handlers: SubscribeHandlers<TDocument>): () => void {
    validateNames(project, collection);
    if (this.#closed) throw new Error('syncgate: subscribe on a closed client');
    const key = `${project}\u0000${collection}`;
    let sub = this.#subs.get(key);
    if (!sub) {
      const created: Subscription = {
        key,
        project,
        collection,
        handlers: new Set(),
        offset: undefined,
        loaded: Promise.resolve(),
        isLoaded: true,
        sentOn: 0,
        sinceSent: undefined,
        active: false,
        failed: false,
        lingerTimer: null,
      };
      sub = created;
      this.#subs.set(key, created);
      if (this.#cache) {
        const cache = this.#cache;
        created.isLoaded = false;
        created.loaded = cache
          .getOffset(project, collection)
          .then(
            (offset) => {
              if (created.offset === undefined) created.offset = offset;
            },
            (err) => this.#subError(created, err),
          )
          .then(() => {
            created.isLoaded = true;
            if (this.#subs.get(key) === created) this.#sendSubscribe(created);
          });
      }
    }
    if (sub.failed && sub.handlers.size === 0) sub.failed = false; // a new subscriber tries again
    if (sub.lingerTimer) {
      clearTimeout(sub.lingerTimer);
      sub.lingerTimer = null;
    }
    const entry = sub;
    const h = { ...handlers } as SubscribeHandlers<any>;
    entry.handlers.add(h);
    this.#sendSubscribe(entry);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      entry.handlers.delete(h);
      if (entry.handlers.size > 0 || this.#subs.get(key) !== entry) return;
      // Linger one tick: a re-render that unsubscribes and subscribes again
      // (React effects, StrictMode) sends nothing to the gateway.
      entry.lingerTimer = setTimeout(() => {
        entry.lingerTimer = null;
        if (entry.handlers.size > 0 || this.#subs.get(key) !== entry) return;
        this.#subs.delete(key);
        if (entry.sentOn === this.#gen && this.#ready) {
          const id = String(this.#nextId++);
          if (this.#send({ op: 'unsubscribe', id, project: entry.project, collection: entry.collection })) {
            this.#unsubscribing.add(key);
            this.#pending.set(id, { kind: 'unsubscribe', key });
          }
        }
      }, 0);
    };
  }

  // ---- cache --------------------------------------------------------------

  #cacheChanged(project: string, collection: string | null): void {
    for (const [key, listeners] of this.#cacheListeners) {
      const [p, c] = key.split('\u0000');
      if (p !== project || (collection !== null && c !== collection)) continue;
      for (const l of [...listeners]) {
        try {
          l();
        } catch (err) {
          report(err);
        }
      }
    }
  }

  collection<TDocument = unknown>(project: string, collection: string): CollectionView<TDocument> {
    validateNames(project, collection);
    if (collection === '*') throw new TypeError('syncgate: collection("*") is not a collection; name one');
    const cache = this.#cache;
    if (!cache) throw new Error("syncgate: collection() needs the cache option ('memory' or 'indexeddb')");
    const key = `${project}\u0000${collection}`;
    return {
      project,
      collection,
      getAll: () => cache.getAll(project, collection) as Promise<CachedDocument<TDocument>[]>,
      get: (id) => cache.get(project, collection, id) as Promise<CachedDocument<TDocument> | undefined>,
      replaceAll: async (documents) => {
        // Through the inbox, so it cannot interleave with a batch.
        const run = this.#inbox.then(() => cache.replaceAll(project, collection, documents));
        this.#inbox = run.catch(report);
        await run;
        this.#cacheChanged(project, collection);
      },
      onChange: (listener) => {
        let set = this.#cacheListeners.get(key);
        if (!set) {
          set = new Set();
          this.#cacheListeners.set(key, set);
        }
        set.add(listener);
        return () => {
          const s = this.#cacheListeners.get(key);
          s?.delete(listener);
          if (s && s.size === 0) this.#cacheListeners.delete(key);
        };
      },
    };
  }
}

/** fromCollectionHandlers adapts document-level handlers to the event-level ones. */
function fromCollectionHandlers<TDocument>(h: CollectionHandlers<TDocument>): SubscribeHandlers<TDocument> {
  const out: SubscribeHandlers<TDocument> = {};
  const { onUpdate, onDelete, onClear, onReset, onError } = h;
  if (onUpdate) out.onUpdate = (events) => onUpdate(events.map((e) => e.document as TDocument), events);
  if (onDelete) {
    out.onDelete = (events) => {
      const withId = events.filter((e) => typeof e.documentId === 'string');
      if (withId.length > 0) onDelete(withId.map((e) => e.documentId as string), withId);
    };
  }
  if (onClear) {
    out.onEvents = (events) => {
      const cleared = events.filter((e) => CLEAR_TYPES.has(e.type));
      if (cleared.length > 0) onClear(cleared);
    };
  }
  if (onReset) out.onReset = onReset;
  if (onError) out.onError = onError;
  return out;
}

/** createClient connects to a syncgate gateway and keeps the connection alive until `close()`. */
export function createClient(options: ClientOptions): SyncClient {
  return new Client(options);
}

export type { ConnectionState };
