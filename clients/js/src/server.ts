/**
 * @syncgate/client/server: publishing from a Node backend (Node 20+), over
 * the gateway's `POST /v1/publish`, with the global `fetch` and nothing else.
 *
 * ```ts
 * import { createPublisher } from '@syncgate/client/server';
 * const sg = createPublisher({ url: 'http://gateway:8080', key: process.env.SYNCGATE_PUBLISH_KEY! });
 * await sg.documentCreated('p1', 'tasks', task.id, task, { actor: userId });
 * ```
 *
 * Calls made close together are sent as one request (`{"events": […]}`),
 * in call order, one request at a time, so the gateway assigns offsets in
 * the order the calls were made. Each call resolves to its own offsets.
 *
 * Retries: publishing is not idempotent, so a request is sent again only
 * when it certainly was not applied — the gateway answered 503 (or a proxy
 * 429), or no connection could be made. A 504, a broken connection after the
 * request went out, or a timeout is reported at once with
 * `mayHavePublished: true` and never retried.
 */
import { validateNames, type Audience } from './types.js';

/** Options of createPublisher; every optional field states its default. */
export interface PublisherOptions {
  /** The gateway's origin, e.g. `http://gateway:8080` (`/v1/publish` is appended), or the full publish URL. */
  url: string;
  /** A publish key (one of the gateway's `SYNCGATE_PUBLISH_KEYS`). */
  key: string;
  /** How long the first call of a batch waits for more calls before the request goes out. Default 0 (the next turn of the event loop). */
  batchDelayMs?: number;
  /** Retries of a request that certainly was not applied (503, no connection). Default 4; 0 disables. */
  maxRetries?: number;
  /** First retry's backoff; it doubles per retry. Default 100. */
  retryBaseDelayMs?: number;
  /** Cap of any backoff (and of the gateway's `Retry-After`). Default 2000. */
  retryMaxDelayMs?: number;
  /** Give up on one request after this long; the outcome is then unknown. Default 10000. */
  timeoutMs?: number;
  /** The fetch implementation. Default `globalThis.fetch`. */
  fetch?: typeof fetch;
}

/** One change event as a publisher sends it (the gateway assigns `offset`). */
export interface PublishEvent<TDocument = unknown> {
  type: string;
  project: string;
  collection: string;
  documentId?: string;
  document?: TDocument;
  oldDocument?: TDocument;
  actor?: string;
  audience?: Audience;
  /** ISO 8601; set by the gateway when absent. */
  timestamp?: string;
}

/** Optional fields of the helpers. */
export interface PublishOptions {
  /** Who made the change, e.g. a user id. */
  actor?: string;
  /** Only these users or roles receive the event. */
  audience?: Audience;
  /** When the change happened. Default: when the gateway received it. */
  timestamp?: Date | string;
}

/** A publisher bound to one gateway and key. */
export interface Publisher {
  /** Publishes events in order; resolves to their offsets, one per event. */
  publish(...events: PublishEvent[]): Promise<string[]>;
  /** Publishes `document:created`; resolves to its offset. */
  documentCreated(project: string, collection: string, id: string, document: unknown, opts?: PublishOptions): Promise<string>;
  /** Publishes `document:updated` (with `oldDocument` when given); resolves to its offset. */
  documentUpdated(project: string, collection: string, id: string, document: unknown, oldDocument?: unknown, opts?: PublishOptions): Promise<string>;
  /** Publishes `document:deleted`; resolves to its offset. */
  documentDeleted(project: string, collection: string, id: string, opts?: PublishOptions): Promise<string>;
  /** Publishes `collection:cleared`; resolves to its offset. */
  collectionCleared(project: string, collection: string, opts?: PublishOptions): Promise<string>;
  /** Resolves once every call made so far has settled. */
  flush(): Promise<void>;
  /** Sends what is queued, then refuses new calls. */
  close(): Promise<void>;
}

/**
 * A publish that failed. `status` is the HTTP status (0 when no answer came
 * or the event was refused before sending); `code` the gateway's error code
 * (`bad_request`, `unauthorized`, `limit_exceeded`, `unavailable`,
 * `timeout`, `internal`).
 */
export class PublishError extends Error {
  readonly status: number;
  readonly code: string;
  /**
   * True when the request reached the gateway but its outcome is unknown
   * (504, a broken connection, a timeout): the events may have been
   * published. Such a request is never retried.
   */
  readonly mayHavePublished: boolean;
  /** Events of this call published before the failure (calls larger than one request go as several). */
  readonly published: number;

  constructor(status: number, code: string, message: string, opts: { mayHavePublished?: boolean; published?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'PublishError';
    this.status = status;
    this.code = code;
    this.mayHavePublished = opts.mayHavePublished ?? false;
    this.published = opts.published ?? 0;
  }
}

// The gateway's limits (README: 1,000 events and 1 MiB a request, 256 KiB an event).
const MAX_EVENTS = 1000;
const MAX_BODY = 1 << 20;
const MAX_EVENT = 256 << 10;
const TYPE_RE = /^[a-z_:.]{1,64}$/;
const FIELDS = new Set(['type', 'project', 'collection', 'documentId', 'document', 'oldDocument', 'actor', 'audience', 'timestamp']);
const utf8 = new TextEncoder();

/** One call's state: its events (encoded), and the offsets received so far. */
interface Call {
  readonly encoded: string[];
  readonly offsets: string[];
  /** How many of `offsets` are filled. */
  done: number;
  settled: boolean;
  resolve(offsets: string[]): void;
  reject(err: PublishError): void;
}

/** One queued event of a call. */
interface Slot {
  readonly call: Call;
  readonly index: number;
}

/** Checks one event as the gateway would, so a bad event fails its own call instead of a shared batch. */
function encodeEvent(ev: PublishEvent, where: string): string {
  if (!ev || typeof ev !== 'object' || Array.isArray(ev)) throw new PublishError(0, 'bad_request', `${where}: not an event object`);
  for (const k of Object.keys(ev)) {
    if (!FIELDS.has(k)) throw new PublishError(0, 'bad_request', `${where}: unknown field ${JSON.stringify(k)}${k === 'offset' ? ' (only the gateway assigns offsets)' : ''}`);
  }
  if (typeof ev.type !== 'string' || !TYPE_RE.test(ev.type)) {
    throw new PublishError(0, 'bad_request', `${where}: invalid type ${JSON.stringify(ev.type)}: want [a-z_:.]{1,64}`);
  }
  try {
    validateNames(ev.project, ev.collection);
  } catch (err) {
    throw new PublishError(0, 'bad_request', `${where}: ${(err as Error).message.replace(/^syncgate: /, '')}`);
  }
  if (ev.collection === '*') throw new PublishError(0, 'bad_request', `${where}: invalid collection "*": events go to one collection`);
  for (const k of ['documentId', 'actor', 'timestamp'] as const) {
    if (ev[k] !== undefined && typeof ev[k] !== 'string') throw new PublishError(0, 'bad_request', `${where}: ${k} must be a string, got ${typeof ev[k]}`);
  }
  let json: string;
  try {
    json = JSON.stringify(ev);
  } catch (err) {
    throw new PublishError(0, 'bad_request', `${where}: not JSON-serializable: ${(err as Error).message}`);
  }
  const size = utf8.encode(json).length;
  if (size > MAX_EVENT) throw new PublishError(0, 'bad_request', `${where}: encoded size ${size} exceeds ${MAX_EVENT} bytes`);
  return json;
}

function endpointOf(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(`syncgate: createPublisher: invalid url ${JSON.stringify(url)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`syncgate: createPublisher: url ${JSON.stringify(url)} is not http(s)`);
  if (u.pathname === '' || u.pathname === '/') u.pathname = '/v1/publish';
  return u.toString();
}

/** Error codes of Node's fetch (undici) that mean no connection was made, so nothing was sent. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

function causeCode(err: unknown): string | undefined {
  for (let e: unknown = err, i = 0; e && typeof e === 'object' && i < 5; e = (e as { cause?: unknown }).cause, i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
  }
  return undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function helperEvent(type: string, project: string, collection: string, fields: Partial<PublishEvent>, opts: PublishOptions | undefined): PublishEvent {
  const ev: PublishEvent = { type, project, collection, ...fields };
  if (opts?.actor !== undefined) ev.actor = opts.actor;
  if (opts?.audience !== undefined) ev.audience = opts.audience;
  if (opts?.timestamp !== undefined) {
    const ts = opts.timestamp;
    if (ts instanceof Date) {
      if (Number.isNaN(ts.getTime())) throw new PublishError(0, 'bad_request', 'timestamp is an invalid Date');
      ev.timestamp = ts.toISOString();
    } else ev.timestamp = ts;
  }
  return ev;
}

class HttpPublisher implements Publisher {
  readonly #endpoint: string;
  readonly #auth: string;
  readonly #fetch: typeof fetch;
  readonly #delay: number;
  readonly #maxRetries: number;
  readonly #retryBase: number;
  readonly #retryMax: number;
  readonly #timeout: number;

  /** Events waiting for a request, in call order. */
  #queue: Slot[] = [];
  #timer: ReturnType<typeof setTimeout> | null = null;
  #inFlight = false;
  #closed = false;
  /** Resolvers of flush(), called when the queue is empty and nothing is in flight. */
  #idle: (() => void)[] = [];

  constructor(opts: PublisherOptions) {
    if (!opts || typeof opts.url !== 'string') throw new TypeError('syncgate: createPublisher needs { url }');
    if (typeof opts.key !== 'string' || opts.key === '') throw new TypeError('syncgate: createPublisher needs { key } (a publish key)');
    this.#endpoint = endpointOf(opts.url);
    this.#auth = `Bearer ${opts.key}`;
    const f = opts.fetch ?? (globalThis as { fetch?: typeof fetch }).fetch;
    if (typeof f !== 'function') throw new TypeError('syncgate: no global fetch (Node 20+ has one); pass { fetch }');
    this.#fetch = f;
    const num = (name: string, v: number | undefined, def: number): number => {
      if (v === undefined) return def;
      if (typeof v !== 'number' || !(v >= 0) || !Number.isFinite(v)) throw new TypeError(`syncgate: createPublisher: ${name} ${String(v)} is not a number >= 0`);
      return v;
    };
    this.#delay = num('batchDelayMs', opts.batchDelayMs, 0);
    this.#maxRetries = Math.floor(num('maxRetries', opts.maxRetries, 4));
    this.#retryBase = num('retryBaseDelayMs', opts.retryBaseDelayMs, 100);
    this.#retryMax = Math.max(this.#retryBase, num('retryMaxDelayMs', opts.retryMaxDelayMs, 2000));
    this.#timeout = num('timeoutMs', opts.timeoutMs, 10_000);
  }

  publish(...events: PublishEvent[]): Promise<string[]> {
    if (this.#closed) return Promise.reject(new PublishError(0, 'closed', 'syncgate publish: the publisher is closed'));
    if (events.length === 0) return Promise.resolve([]);
    let encoded: string[];
    try {
      encoded = events.map((ev, i) => encodeEvent(ev, events.length > 1 ? `events[${i}]` : 'event'));
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<string[]>((resolve, reject) => {
      const call: Call = { encoded, offsets: [], done: 0, settled: false, resolve, reject };
      for (let i = 0; i < encoded.length; i++) this.#queue.push({ call, index: i });
      this.#schedule();
    });
  }

  async documentCreated(project: string, collection: string, id: string, document: unknown, opts?: PublishOptions): Promise<string> {
    return this.#one(helperEvent('document:created', project, collection, { documentId: id, document }, opts));
  }

  async documentUpdated(project: string, collection: string, id: string, document: unknown, oldDocument?: unknown, opts?: PublishOptions): Promise<string> {
    const fields: Partial<PublishEvent> = { documentId: id, document };
    if (oldDocument !== undefined) fields.oldDocument = oldDocument;
    return this.#one(helperEvent('document:updated', project, collection, fields, opts));
  }

  async documentDeleted(project: string, collection: string, id: string, opts?: PublishOptions): Promise<string> {
    return this.#one(helperEvent('document:deleted', project, collection, { documentId: id }, opts));
  }

  async collectionCleared(project: string, collection: string, opts?: PublishOptions): Promise<string> {
    return this.#one(helperEvent('collection:cleared', project, collection, {}, opts));
  }

  async #one(ev: PublishEvent): Promise<string> {
    const [offset] = await this.publish(ev);
    return offset as string;
  }

  flush(): Promise<void> {
    if (this.#queue.length === 0 && !this.#inFlight) return Promise.resolve();
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
      void this.#run();
    }
    return new Promise((r) => this.#idle.push(r));
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
  }

  #schedule(): void {
    if (this.#inFlight || this.#timer) return; // the running loop takes it
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.#run();
    }, this.#delay);
  }

  /** Sends queued events, one request at a time, until the queue is empty. */
  async #run(): Promise<void> {
    if (this.#inFlight) return;
    this.#inFlight = true;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#take();
        await this.#send(batch);
      }
    } finally {
      this.#inFlight = false;
      const idle = this.#idle;
      this.#idle = [];
      for (const r of idle) r();
    }
  }

  /** Takes the next request's events: up to 1,000 and 1 MiB. */
  #take(): Slot[] {
    let bytes = '{"events":[]}'.length;
    let n = 0;
    while (n < this.#queue.length && n < MAX_EVENTS) {
      const slot = this.#queue[n] as Slot;
      const size = utf8.encode(slot.call.encoded[slot.index] as string).length + 1;
      if (n > 0 && bytes + size > MAX_BODY) break;
      bytes += size;
      n++;
    }
    return this.#queue.splice(0, n);
  }

  async #send(batch: Slot[]): Promise<void> {
    const body = `{"events":[${batch.map((s) => s.call.encoded[s.index]).join(',')}]}`;
    let offsets: string[];
    try {
      offsets = await this.#postWithRetry(body, batch.length);
    } catch (err) {
      const e = err as PublishError;
      const bad = e.status === 400 ? /^syncgate publish: 400 \w+: events\[(\d+)\]/.exec(e.message) : null;
      const culprit = bad ? batch[Number(bad[1])] : undefined;
      if (culprit) {
        // Nothing of a refused batch is published: fail the call with the
        // bad event (named by its index in that call), send the others again.
        this.#fail(culprit.call, new PublishError(e.status, e.code, e.message.replace(/events\[\d+\]/, `events[${culprit.index}]`)));
        this.#queue.unshift(...batch.filter((s) => s.call !== culprit.call));
        return;
      }
      for (const s of batch) this.#fail(s.call, e);
      return;
    }
    batch.forEach((s, i) => {
      const c = s.call;
      c.offsets[s.index] = offsets[i] as string;
      c.done++;
      if (!c.settled && c.done === c.encoded.length) {
        c.settled = true;
        c.resolve(c.offsets);
      }
    });
  }

  #fail(call: Call, e: PublishError): void {
    if (call.settled) return;
    call.settled = true;
    this.#queue = this.#queue.filter((s) => s.call !== call);
    const published = call.done;
    call.reject(
      published === 0
        ? e
        : new PublishError(e.status, e.code, `${e.message} (${published} earlier events of the call were published)`, {
            mayHavePublished: e.mayHavePublished,
            published,
            cause: e,
          }),
    );
  }

  async #postWithRetry(body: string, n: number): Promise<string[]> {
    for (let attempt = 0; ; attempt++) {
      const r = await this.#post(body, n);
      if (r.ok) return r.offsets;
      if (r.retryAfterMs < 0 || attempt >= this.#maxRetries) throw r.error;
      const cap = Math.min(this.#retryMax, this.#retryBase * 2 ** Math.min(attempt, 30));
      let wait = cap / 2 + Math.random() * (cap / 2);
      if (r.retryAfterMs > wait) wait = Math.min(r.retryAfterMs, this.#retryMax);
      await sleep(wait);
    }
  }

  /** One attempt. retryAfterMs < 0: must not be retried. */
  async #post(body: string, n: number): Promise<{ ok: true; offsets: string[] } | { ok: false; error: PublishError; retryAfterMs: number }> {
    let res: Response;
    try {
      res = await this.#fetch(this.#endpoint, {
        method: 'POST',
        headers: { Authorization: this.#auth, 'Content-Type': 'application/json' },
        body,
        signal: AbortSignal.timeout(this.#timeout),
      });
    } catch (err) {
      const code = causeCode(err);
      if (code && NOT_SENT.has(code)) {
        return { ok: false, retryAfterMs: 0, error: new PublishError(0, 'unavailable', `syncgate publish: cannot reach ${this.#endpoint} (${code}); nothing was published`, { cause: err }) };
      }
      const what = (err as Error)?.name === 'TimeoutError' ? `no answer within ${this.#timeout} ms` : `the connection failed (${code ?? (err as Error)?.message})`;
      return {
        ok: false,
        retryAfterMs: -1,
        error: new PublishError(0, 'unavailable', `syncgate publish: ${what} after the request was sent; the events may have been published`, { mayHavePublished: true, cause: err }),
      };
    }
    let text = '';
    try {
      text = await res.text();
    } catch (err) {
      if (res.ok) {
        return { ok: false, retryAfterMs: -1, error: new PublishError(res.status, 'unavailable', 'syncgate publish: the answer broke off; the events may have been published', { mayHavePublished: true, cause: err }) };
      }
    }
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      // not JSON (a proxy's error page): described below
    }
    if (res.ok) {
      const offsets = (json as { offsets?: unknown } | null)?.offsets;
      if (Array.isArray(offsets) && offsets.length === n && offsets.every((o) => typeof o === 'string')) return { ok: true, offsets };
      return {
        ok: false,
        retryAfterMs: -1,
        error: new PublishError(res.status, 'internal', `syncgate publish: unexpected answer for ${n} events: ${text.slice(0, 200)}`, { mayHavePublished: true }),
      };
    }
    const apiErr = (json as { error?: { code?: unknown; message?: unknown } } | null)?.error;
    const code = typeof apiErr?.code === 'string' ? apiErr.code : codeForStatus(res.status);
    let message = typeof apiErr?.message === 'string' ? apiErr.message : `${res.statusText || 'error'}: ${text.trim().slice(0, 200)}`;
    const uncertain = res.status === 502 || res.status === 504;
    if (uncertain && !/may have been published/.test(message)) message += '; the events may have been published';
    const error = new PublishError(res.status, code, `syncgate publish: ${res.status} ${code}: ${message}`, { mayHavePublished: uncertain });
    if (res.status === 503 || res.status === 429) return { ok: false, error, retryAfterMs: retryAfterMs(res.headers.get('Retry-After')) };
    return { ok: false, error, retryAfterMs: -1 };
  }
}

function codeForStatus(status: number): string {
  switch (status) {
    case 400:
      return 'bad_request';
    case 401:
    case 403:
      return 'unauthorized';
    case 413:
    case 429:
      return 'limit_exceeded';
    case 502:
    case 503:
      return 'unavailable';
    case 504:
      return 'timeout';
    default:
      return 'internal';
  }
}

function retryAfterMs(h: string | null): number {
  if (!h) return 0;
  const s = Number(h);
  if (Number.isFinite(s) && s >= 0) return s * 1000;
  const at = Date.parse(h);
  return Number.isNaN(at) ? 0 : Math.max(0, at - Date.now());
}

/** createPublisher returns a publisher for one gateway and publish key. */
export function createPublisher(options: PublisherOptions): Publisher {
  return new HttpPublisher(options);
}

export type { Audience };
