// The development demo page: connects to the gateway that serves it, with
// the token from the URL fragment (#token=…, never sent to any server), and
// shows events and the cached documents live. Built from the SDK sources by
// `npm run build:demo` into internal/demo/static.
import { createClient, MemoryCache, type SyncClient, type SyncEvent, type SyncStatus } from '../src/index.js';

const MAX_EVENTS = 200;

function $(id: string): HTMLElement {
  const el = document.getElementById(id);
  if (!el) throw new Error(`demo: #${id} missing`);
  return el;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function tokenFromFragment(): string | null {
  const params = new URLSearchParams(location.hash.replace(/^#/, ''));
  return params.get('token');
}

let client: SyncClient | null = null;
let token = '';
const cache = new MemoryCache();
let stop: (() => void) | null = null;
let eventCount = 0;
const seenCollections = new Set<string>();
let current = { project: 'demo', collection: '*' };

function renderStatus(s: SyncStatus): void {
  const box = $('status');
  box.dataset['state'] = s.state;
  let text: string = s.state;
  if (s.state === 'reconnecting' && s.nextRetryAt) {
    text += ` (attempt ${s.attempt}, retry in ${Math.max(0, Math.round((s.nextRetryAt - Date.now()) / 100) / 10)} s)`;
  }
  if (s.lastError && s.state !== 'open') text += ` · ${s.lastError.code}`;
  $('status-text').textContent = text;
  $('whoami').textContent = s.user ? `Connected as ${s.user}, token valid until ${s.expiresAt?.toLocaleString() ?? '?'}.` : '';
}

function addEventRow(ev: SyncEvent, fromHistory = false): void {
  const li = el('li', fromHistory ? 'history' : undefined);
  li.dataset['offset'] = ev.offset;
  li.dataset['type'] = ev.type;
  if (fromHistory) li.dataset['history'] = 'true';
  const when = fromHistory && ev.timestamp ? new Date(ev.timestamp) : new Date();
  li.append(
    el('span', 'time', when.toLocaleTimeString()),
    el('span', 'type', ev.type),
    el('span', 'where', `${ev.collection}${ev.documentId !== undefined ? ' / ' + ev.documentId : ''}`),
  );
  if (ev.document !== undefined) li.append(el('pre', undefined, JSON.stringify(ev.document)));
  const list = $('events');
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastElementChild?.remove();
}

function addNote(text: string): void {
  $('events').prepend(el('li', 'reset', text));
}

async function renderDocuments(): Promise<void> {
  if (!client) return;
  const box = $('documents');
  const collections = current.collection === '*' ? [...seenCollections].sort() : [current.collection];
  const tables: HTMLElement[] = [];
  let total = 0;
  for (const c of collections) {
    const docs = await client.collection(current.project, c).getAll();
    if (docs.length === 0) continue;
    total += docs.length;
    const table = el('table');
    table.dataset['collection'] = c;
    table.append(el('caption', undefined, c));
    const head = el('tr');
    head.append(el('th', undefined, 'id'), el('th', undefined, 'document'));
    table.append(head);
    for (const d of docs) {
      const tr = el('tr');
      tr.dataset['id'] = d.id;
      const td = el('td');
      td.append(el('code', undefined, JSON.stringify(d.document)));
      tr.append(el('td', undefined, d.id), td);
      table.append(tr);
    }
    tables.push(table);
  }
  box.replaceChildren(...tables);
  $('doc-count').textContent = String(total);
}

/**
 * Shows what was published before the page opened: the development node's
 * /demo/recent answers the stream's newest events and its head, and the
 * subscription then resumes from that head (through the cache's stored
 * offset), so nothing is missed or shown twice between the two.
 */
async function loadRecent(project: string, collection: string): Promise<void> {
  if ((await cache.getOffset(project, collection)) !== undefined) return; // seen before: the subscription resumes
  let body: { events: SyncEvent[]; offset: string; complete: boolean };
  try {
    const q = new URLSearchParams({ project, collection });
    const res = await fetch(`/demo/recent?${q}`, { headers: { Authorization: `Bearer ${token}` } });
    if (!res.ok) return;
    body = (await res.json()) as typeof body;
  } catch {
    return; // not a development node, or offline: live events only
  }
  if (typeof body.offset !== 'string' || !Array.isArray(body.events)) return;
  if (body.events.length > 0) await cache.apply(project, collection, body.events, body.offset);
  else await cache.setOffset(project, collection, body.offset);
  if (!body.complete) addNote('Older events are no longer in history; showing the newest.');
  for (const ev of body.events) {
    addEventRow(ev, true);
    seenCollections.add(ev.collection);
  }
  eventCount += body.events.length;
  $('event-count').textContent = String(eventCount);
  $('history-count').textContent = body.events.length > 0 ? `${body.events.length} from before this page opened` : '';
}

function subscribe(project: string, collection: string): void {
  if (!client) return;
  stop?.();
  stop = null;
  current = { project, collection };
  seenCollections.clear();
  if (collection !== '*') seenCollections.add(collection);
  $('events').replaceChildren();
  eventCount = 0;
  $('event-count').textContent = '0';
  $('history-count').textContent = '';
  $('sub-info').textContent = `subscribing to ${project} / ${collection} …`;
  const want = current;
  void loadRecent(project, collection).then(() => {
    if (current !== want || !client) return; // another subscription was asked for meanwhile
    void renderDocuments();
    live(project, collection);
  });
}

function live(project: string, collection: string): void {
  if (!client) return;
  stop = client.subscribe(project, collection, {
    onSubscribed: (info) => {
      $('sub-info').textContent = `live on ${info.project} / ${info.collection}`;
    },
    onEvents: (events) => {
      for (const ev of events) {
        addEventRow(ev);
        seenCollections.add(ev.collection);
      }
      eventCount += events.length;
      $('event-count').textContent = String(eventCount);
      void renderDocuments();
    },
    onReset: () => {
      addNote('The gateway could not replay every missed event: the view was reset.');
      void renderDocuments();
    },
    onError: (err) => {
      $('sub-info').textContent = `${err.code}: ${err.message}`;
    },
  });
}

function start(t: string): void {
  token = t;
  $('no-token').hidden = true;
  client = createClient({ url: location.origin, token, cache });
  client.onStatus(renderStatus);
  renderStatus(client.status);
  setInterval(() => client && renderStatus(client.status), 500);
  subscribe(current.project, current.collection);
}

$('sub-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const project = ($('project') as HTMLInputElement).value.trim();
  const collection = ($('collection') as HTMLInputElement).value.trim();
  try {
    subscribe(project, collection);
  } catch (err) {
    $('sub-info').textContent = String((err as Error).message);
  }
});

$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const t = ($('token-input') as HTMLInputElement).value.trim();
  if (!t) return;
  history.replaceState(null, '', `#token=${encodeURIComponent(t)}`);
  start(t);
});

const fromFragment = tokenFromFragment();
if (fromFragment) {
  start(fromFragment);
} else {
  $('no-token').hidden = false;
  $('status').dataset['state'] = 'closed';
  $('status-text').textContent = 'no token';
}
