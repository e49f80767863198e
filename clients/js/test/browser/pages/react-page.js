// A React app using every hook, in StrictMode and a development build, so
// that effects run twice on mount just as they do for app developers.
import { createElement as h, StrictMode, useState, useReducer } from 'react';
import { createRoot } from 'react-dom/client';
import { createClient } from '../../../dist/index.js';
import { SyncProvider, useConnection, useEvents, useAutoRefresh, useCollection, useProjectEvents } from '../../../dist/react.js';
import { params, RecordingWebSocket } from './shared.js';

const p = params();
const client = createClient({ url: p.gateway, token: p.token, cache: 'memory', WebSocket: RecordingWebSocket });
window.__client = client;
const counters = { events: 0, handlerIdentities: new Set(), refetches: 0, renders: 0, projectEvents: [] };
window.__counters = counters;
// Count subscribe calls on the client itself: the one-tick linger would hide a
// storm from the wire, not from here.
counters.subscribeCalls = 0;
const subscribe = client.subscribe.bind(client);
client.subscribe = (...args) => {
  counters.subscribeCalls++;
  return subscribe(...args);
};

// useConnection, as Socket.IO apps use their useWebSocket hook.
function Status() {
  const c = useConnection();
  window.__disconnect = c.disconnect;
  window.__reconnect = c.reconnect;
  return h(
    'div',
    null,
    h('p', { id: 'status', 'data-state': c.state, 'data-offline': String(c.offline) }, c.state),
    h('p', { id: 'conn-id' }, c.connectionId ?? ''),
    h('p', { id: 'attempt' }, String(c.attempt)),
  );
}

// The seed's arguments: null until the project id is known; null collection
// disables the collection hooks.
function ProjectFeed() {
  const [projectId, setProjectId] = useState(null);
  window.__setProjectId = setProjectId;
  useProjectEvents(projectId, (events) => counters.projectEvents.push(...events.map((e) => `${e.collection}/${e.documentId}`)));
  useEvents(projectId, null, () => counters.projectEvents.push('disabled useEvents ran'));
  useAutoRefresh(null, 'todos', () => counters.projectEvents.push('disabled useAutoRefresh ran'));
  const nothing = useCollection(projectId, null);
  return h('p', { id: 'project-feed', 'data-loading': String(nothing.loading), 'data-docs': String(nothing.documents.length) }, projectId ?? 'no project');
}

// A subscription outside the hooks, to prove a publish was delivered.
window.__sentinel = (collection) => {
  const seen = [];
  subscribe(p.project, collection, { onEvents: (events) => seen.push(...events.map((e) => e.documentId)) });
  return seen;
};

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
  return h(
    SyncProvider,
    { client },
    h(Status),
    p.projectFeed ? h(ProjectFeed) : null,
    mounted ? h(Feed, { collection, tick }) : h('p', { id: 'unmounted' }, 'unmounted'),
  );
}

createRoot(document.getElementById('root')).render(h(StrictMode, null, h(App)));
