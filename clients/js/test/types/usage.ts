// Compiled (not run) by `npm run typecheck`: the published .d.ts files, found
// through the package's own exports map, type an app's everyday code.
import { createClient, SyncError, type SyncEvent, type SyncStatus, type CacheStore } from '@syncgate/client';
import { createPublisher, PublishError, type Publisher } from '@syncgate/client/server';
import { useCollection, useEvents, useSyncStatus, useAutoRefresh, useConnection, useProjectEvents, SyncProvider } from '@syncgate/client/react';

interface Task {
  title: string;
  done: boolean;
}

const client = createClient({ url: 'https://gw.example', getToken: async () => 'token', cache: 'indexeddb' });
const stop: () => void = client.subscribe<Task>('p1', 'tasks', {
  onEvents: (events: SyncEvent<Task>[], info) => {
    const title: string | undefined = events[0]?.document?.title;
    const offset: string = info.offset;
    void title;
    void offset;
  },
  onReset: ({ offset }) => void offset,
  onError: (err: SyncError) => void err.code,
});
stop();
const status: SyncStatus = client.status;
const state: 'connecting' | 'open' | 'reconnecting' | 'offline' | 'disconnected' | 'failed' | 'closed' = status.state;
void state;
void client.collection<Task>('p1', 'tasks').getAll().then((docs) => docs.map((d) => d.document.done));

// @ts-expect-error a token or getToken is required, url is a string
createClient({ url: 1 });

export function useTasks(): Task[] {
  useEvents<Task>('p1', 'tasks', (events) => events.length);
  useAutoRefresh('p1', 'orders', () => {}, { debounceMs: 100 });
  const s: SyncStatus = useSyncStatus();
  void s;
  const projectId: string | null = null;
  useEvents(projectId, null, () => {});
  useProjectEvents(projectId, (events) => events.map((e) => e.collection));
  const conn = useConnection();
  const info: [boolean, boolean, string | null, number] = [conn.connected, conn.offline, conn.connectionId, conn.attempt];
  void info;
  conn.disconnect();
  conn.reconnect();
  return useCollection<Task>('p1', 'tasks').documents.map((d) => d.document);
}
void SyncProvider;
export type { CacheStore };

const sg: Publisher = createPublisher({ url: 'http://gateway:8080', key: 'k' });
void sg.documentCreated('p1', 'tasks', 't1', { title: 'x' }, { actor: 'u1', timestamp: new Date() }).then((offset: string) => offset);
void sg.documentUpdated('p1', 'tasks', 't1', { title: 'y' }, { title: 'x' }, { audience: { roles: ['admin'] } });
void sg.publish({ type: 'insert', project: 'p1', collection: 'orders', documentId: '1' }).then((offsets: string[]) => offsets.length);
void sg.documentDeleted('p1', 'tasks', 't1').catch((e: unknown) => e instanceof PublishError && e.status === 504 && e.mayHavePublished);

const dataSync = createClient({ url: 'https://gw.example', token: 't', project: 'p1', reconnect: { maxAttempts: 5 } });
dataSync.subscribe<Task>('tasks', {
  onUpdate: (documents: Task[]) => documents.map((d) => d.title),
  onDelete: (ids: string[]) => ids.length,
  onError: (err: SyncError) => err.code,
});
