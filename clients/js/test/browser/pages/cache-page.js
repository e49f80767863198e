// A page using the SDK with the IndexedDB cache. Everything the test checks
// is exposed on window.
import { createClient } from '../../../dist/index.js';
import { params, RecordingWebSocket } from './shared.js';

const p = params();

// Count IndexedDB write transactions by their stores.
const txLog = [];
window.__tx = txLog;
const origTransaction = IDBDatabase.prototype.transaction;
IDBDatabase.prototype.transaction = function (stores, mode, ...rest) {
  if (mode === 'readwrite') txLog.push([].concat(stores).sort().join('+'));
  return origTransaction.call(this, stores, mode, ...rest);
};

const client = createClient({
  url: p.gateway,
  token: p.token,
  cache: 'indexeddb',
  cacheName: p.db,
  WebSocket: RecordingWebSocket,
  reconnect: { baseDelayMs: 200, maxDelayMs: 1000 },
});
window.__client = client;
window.__states = [];
client.onStatus((s) => window.__states.push(s.state));

const state = { batches: [], events: [], resets: [], subscribed: [], errors: [] };
window.__state = state;
client.subscribe(p.project, p.collection, {
  onEvents: (events) => {
    state.batches.push(events.length);
    state.events.push(...events.map((e) => ({ id: e.documentId, type: e.type, offset: e.offset })));
    // Each batch is applied to the cache before the callback runs.
    void render();
  },
  onReset: (info) => state.resets.push(info),
  onSubscribed: (info) => state.subscribed.push(info),
  onError: (err) => state.errors.push(err.code),
});

window.__docs = () => client.collection(p.project, p.collection).getAll();

async function render() {
  const docs = await window.__docs();
  const ul = document.getElementById('docs');
  ul.replaceChildren(
    ...docs.map((d) => {
      const li = document.createElement('li');
      li.dataset.id = d.id;
      li.textContent = `${d.id}: ${JSON.stringify(d.document)}`;
      return li;
    }),
  );
}
void render();
