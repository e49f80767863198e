// Compiled (not run) by `npm run typecheck`: the published .d.ts files, found
// through the package's own exports map, type an app's everyday code.
import { createClient, SyncError, type SyncEvent, type SyncStatus, type CacheStore } from '@syncgate/client';
import { createPublisher, PublishError, type Publisher } from '@syncgate/client/server';
import { useCollection, useEvents, useSyncStatus, useAutoRefresh, SyncProvider } from '@syncgate/client/react';

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
const state: 'connecting' | 'open' | 'reconnecting' | 'offline' | 'closed' = status.state;
void state;
void client.collection<Task>('p1', 'tasks').getAll().then((docs) => docs.map((d) => d.document.done));

// @ts-expect-error a token or getToken is required, url is a string
createClient({ url: 1 });

export function useTasks(): Task[] {
  useEvents<Task>('p1', 'tasks', (events) => events.length);
  useAutoRefresh('p1', 'orders', () => {}, { debounceMs: 100 });
  const s: SyncStatus = useSyncStatus();
  void s;
  return useCollection<Task>('p1', 'tasks').documents.map((d) => d.document);
}
void SyncProvider;
export type { CacheStore };

const sg: Publisher = createPublisher({ url: 'http://gateway:8080', key: 'k' });
void sg.documentCreated('p1', 'tasks', 't1', { title: 'x' }, { actor: 'u1', timestamp: new Date() }).then((offset: string) => offset);
void sg.documentUpdated('p1', 'tasks', 't1', { title: 'y' }, { title: 'x' }, { audience: { roles: ['admin'] } });
void sg.publish({ type: 'insert', project: 'p1', collection: 'orders', documentId: '1' }).then((offsets: string[]) => offsets.length);
void sg.documentDeleted('p1', 'tasks', 't1').catch((e: unknown) => e instanceof PublishError && e.status === 504 && e.mayHavePublished);
