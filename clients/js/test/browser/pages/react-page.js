// A React app using every hook, in StrictMode and a development build, so
// that effects run twice on mount just as they do for app developers.
import { createElement as h, StrictMode, useState, useReducer } from 'react';
import { createRoot } from 'react-dom/client';
import { createClient } from '../../../dist/index.js';
import { SyncProvider, useSyncStatus, useEvents, useAutoRefresh, useCollection } from '../../../dist/react.js';
import { params, RecordingWebSocket } from './shared.js';

const p = params();
const client = createClient({ url: p.gateway, token: p.token, cache: 'memory', WebSocket: RecordingWebSocket });
const counters = { events: 0, handlerIdentities: new Set(), refetches: 0, renders: 0 };
window.__counters = counters;
// Count subscribe calls on the client itself: the one-tick linger would hide a
// storm from the wire, not from here.
counters.subscribeCalls = 0;
const subscribe = client.subscribe.bind(client);
client.subscribe = (...args) => {
  counters.subscribeCalls++;
  return subscribe(...args);
};

function Status() {
  const s = useSyncStatus();
  return h('p', { id: 'status', 'data-state': s.state }, s.state);
}

function Feed({ collection, tick }) {
  counters.renders++;
  // A new handler on every render: must not resubscribe.
  const handler = (events) => {
    counters.events += events.length;
    counters.lastTick = tick;
  };
  counters.handlerIdentities.add(handler);
  useEvents(p.project, collection, handler);
  useAutoRefresh(p.project, collection, () => counters.refetches++, { debounceMs: 150 });
  const { documents, loading } = useCollection(p.project, collection);
  return h(
    'div',
    null,
    h('p', { id: 'loading' }, String(loading)),
    h('ul', { id: 'docs' }, documents.map((d) => h('li', { key: d.id, 'data-id': d.id }, `${d.id}: ${JSON.stringify(d.document)}`))),
  );
}

function App() {
  const [tick, bump] = useReducer((x) => x + 1, 0);
  const [collection, setCollection] = useState('todos');
  const [mounted, setMounted] = useState(true);
  window.__rerender = bump;
  window.__setCollection = setCollection;
  window.__setMounted = setMounted;
  window.__tick = tick;
  return h(SyncProvider, { client }, h(Status), mounted ? h(Feed, { collection, tick }) : h('p', { id: 'unmounted' }, 'unmounted'));
}

createRoot(document.getElementById('root')).render(h(StrictMode, null, h(App)));
