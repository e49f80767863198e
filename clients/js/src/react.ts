/**
 * @syncgate/client/react: hooks over one SyncClient.
 *
 * Every hook subscribes in an effect keyed by (client, project, collection)
 * only; handlers live in refs, so re-rendering with new inline callbacks never
 * unsubscribes and subscribes again. Unmounting removes every listener.
 * A `null` (or undefined) project or collection disables a hook: it
 * subscribes to nothing until both are names (say, once a route's project
 * id is known).
 */
import {
  createContext,
  createElement,
  useCallback,
  useContext,
  useEffect,
  useLayoutEffect,
  useMemo,
  useRef,
  useState,
  useSyncExternalStore,
  type ReactNode,
} from 'react';
import type { SyncClient } from './client.js';
import type { BatchInfo, CachedDocument, SubscribeHandlers, SyncError, SyncEvent, SyncStatus } from './types.js';

const SyncContext = createContext<SyncClient | null>(null);

/** Makes `client` the default of every hook below it. */
export function SyncProvider(props: { client: SyncClient; children?: ReactNode }): ReactNode {
  return createElement(SyncContext.Provider, { value: props.client }, props.children);
}

/** The client from the nearest SyncProvider, or the one passed. */
export function useSyncClient(client?: SyncClient): SyncClient {
  const fromContext = useContext(SyncContext);
  const c = client ?? fromContext;
  if (!c) throw new Error('syncgate: no client; wrap the tree in <SyncProvider client={…}> or pass one');
  return c;
}

// useLayoutEffect warns during server rendering in React 18; there is no layout there anyway.
const useIsomorphicLayoutEffect = typeof document !== 'undefined' ? useLayoutEffect : useEffect;

/** Keeps the latest value in a ref without re-running effects. */
function useLatest<T>(value: T): { readonly current: T } {
  const ref = useRef(value);
  useIsomorphicLayoutEffect(() => {
    ref.current = value;
  });
  return ref;
}

/** The client's status; re-renders on every change. */
export function useSyncStatus(client?: SyncClient): SyncStatus {
  const c = useSyncClient(client);
  const subscribe = useCallback((onChange: () => void) => c.onStatus(onChange), [c]);
  const get = useCallback(() => c.status, [c]);
  return useSyncExternalStore(subscribe, get, get);
}

/** What useConnection returns: the status, flattened, and the controls. */
export interface ConnectionInfo extends SyncStatus {
  /** The full status snapshot. */
  status: SyncStatus;
  /** `state === 'open'`. */
  connected: boolean;
  /** The gateway's id of the current connection (`ready.connection`), null when not open. */
  connectionId: string | null;
  /** Connect now (skips a wait; starts over after disconnect() or `failed`). */
  reconnect: () => void;
  /** Close the connection, keeping every subscription, until reconnect(). */
  disconnect: () => void;
}

/**
 * useConnection is the connection as a component needs it (Socket.IO apps'
 * `useWebSocket`): state, `connected`, `offline` (true whenever the gateway
 * cannot be reached), `connectionId`, `attempt`, `lastError`, and
 * `reconnect()` / `disconnect()`.
 */
export function useConnection(client?: SyncClient): ConnectionInfo {
  const c = useSyncClient(client);
  const status = useSyncStatus(c);
  return useMemo(
    () => ({
      ...status,
      status,
      connected: status.state === 'open',
      connectionId: status.state === 'open' ? status.connection : null,
      reconnect: () => c.reconnect(),
      disconnect: () => c.disconnect(),
    }),
    [c, status],
  );
}

/** A handler for useEvents: one call per frame, or a set of callbacks. */
export type EventsHandler<TDocument = unknown> =
  | ((events: SyncEvent<TDocument>[], info: BatchInfo) => void)
  | SubscribeHandlers<TDocument>;

/**
 * useEvents subscribes while mounted and calls the latest `handler` with each
 * batch. Changing `handler` between renders does not resubscribe; changing
 * project or collection does.
 */
export function useEvents<TDocument = unknown>(
  project: string | null | undefined,
  collection: string | null | undefined,
  handler: EventsHandler<TDocument>,
  options: { client?: SyncClient } = {},
): void {
  const client = useSyncClient(options.client);
  const latest = useLatest(handler);
  useEffect(() => {
    if (project == null || collection == null) return undefined;
    const h = (): SubscribeHandlers<TDocument> => {
      const cur = latest.current;
      return typeof cur === 'function' ? { onEvents: cur } : cur;
    };
    return client.subscribe<TDocument>(project, collection, {
      onEvents: (events, info) => h().onEvents?.(events, info),
      onUpdate: (events, info) => h().onUpdate?.(events, info),
      onDelete: (events, info) => h().onDelete?.(events, info),
      onReset: (info) => h().onReset?.(info),
      onError: (err) => h().onError?.(err),
      onSubscribed: (info) => h().onSubscribed?.(info),
    });
  }, [client, project, collection, latest]);
}

/**
 * useProjectEvents calls `handler` with the events of every collection of
 * `project` (the `*` subscription); each event carries its `collection`.
 * A null project disables it.
 */
export function useProjectEvents<TDocument = unknown>(
  project: string | null | undefined,
  handler: EventsHandler<TDocument>,
  options: { client?: SyncClient } = {},
): void {
  useEvents<TDocument>(project, project == null ? null : '*', handler, options);
}

/** Options of useAutoRefresh. */
export interface AutoRefreshOptions {
  /** Wait this long after the last event before refetching. Default 250. */
  debounceMs?: number;
  /** Refetch at the latest this long after the first pending event, even under a steady stream. Default 4 × debounceMs. */
  maxWaitMs?: number;
  /** Only events for which this returns true trigger a refetch. Default: all. */
  filter?: (event: SyncEvent) => boolean;
  client?: SyncClient;
}

/**
 * useAutoRefresh calls `refetch` (debounced) after events and after a reset,
 * for apps that keep their data elsewhere and only need "something changed".
 */
export function useAutoRefresh(
  project: string | null | undefined,
  collection: string | null | undefined,
  refetch: () => void,
  options: AutoRefreshOptions = {},
): void {
  const client = useSyncClient(options.client);
  const latestRefetch = useLatest(refetch);
  const latestOptions = useLatest(options);
  useEffect(() => {
    if (project == null || collection == null) return undefined;
    let timer: ReturnType<typeof setTimeout> | null = null;
    let firstPendingAt = 0;
    const fire = (): void => {
      timer = null;
      firstPendingAt = 0;
      latestRefetch.current();
    };
    const schedule = (): void => {
      const debounce = latestOptions.current.debounceMs ?? 250;
      const maxWait = latestOptions.current.maxWaitMs ?? debounce * 4;
      const now = Date.now();
      if (firstPendingAt === 0) firstPendingAt = now;
      if (timer) clearTimeout(timer);
      timer = setTimeout(fire, Math.max(0, Math.min(debounce, firstPendingAt + maxWait - now)));
    };
    const unsubscribe = client.subscribe(project, collection, {
      onEvents: (events) => {
        const filter = latestOptions.current.filter;
        if (!filter || events.some(filter)) schedule();
      },
      onReset: schedule,
    });
    return () => {
      unsubscribe();
      if (timer) clearTimeout(timer);
    };
  }, [client, project, collection, latestRefetch, latestOptions]);
}

/** What useCollection returns. */
export interface CollectionState<TDocument = unknown> {
  /** The cached documents, ordered by id. */
  documents: CachedDocument<TDocument>[];
  /** True until the first read of the cache finished (false while the hook is disabled). */
  loading: boolean;
  /** The subscription's or the cache's latest error. */
  error: SyncError | null;
}

/**
 * useCollection subscribes to one collection and returns its live documents
 * from the client's cache (the client needs `cache: 'memory' | 'indexeddb'`).
 */
export function useCollection<TDocument = unknown>(
  project: string | null | undefined,
  collection: string | null | undefined,
  options: { client?: SyncClient } = {},
): CollectionState<TDocument> {
  const client = useSyncClient(options.client);
  const enabled = project != null && collection != null;
  const [state, setState] = useState<CollectionState<TDocument>>({ documents: [], loading: enabled, error: null });
  useEffect(() => {
    if (project == null || collection == null) {
      setState((s) => (!s.loading && s.documents.length === 0 && s.error === null ? s : { documents: [], loading: false, error: null }));
      return undefined;
    }
    const view = client.collection<TDocument>(project, collection);
    let alive = true;
    let seq = 0;
    const load = (): void => {
      const n = ++seq;
      view.getAll().then(
        (documents) => {
          if (alive && n === seq) setState((s) => ({ documents, loading: false, error: s.error }));
        },
        (err: unknown) => {
          if (alive) setState((s) => ({ ...s, loading: false, error: err as SyncError }));
        },
      );
    };
    setState((s) => (s.loading && s.documents.length === 0 && s.error === null ? s : { documents: [], loading: true, error: null }));
    const offChange = view.onChange(load);
    const unsubscribe = client.subscribe(project, collection, {
      onError: (error) => {
        if (alive) setState((s) => ({ ...s, error }));
      },
    });
    load();
    return () => {
      alive = false;
      offChange();
      unsubscribe();
    };
  }, [client, project, collection]);
  return state;
}
