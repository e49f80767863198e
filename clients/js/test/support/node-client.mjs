// Node-side helpers: the SDK over the `ws` package, with every socket and
// every received frame recorded so tests can compare callbacks with frames.
import WebSocket from 'ws';
import { createClient } from '../../dist/index.js';
import { waitFor } from './gateway.mjs';

export class TrackedWebSocket extends WebSocket {
  /** @type {TrackedWebSocket[]} */
  static instances = [];

  constructor(url, protocols) {
    super(url, protocols);
    this.frames = [];
    this.closeCode = null;
    /** Frames the client sent, parsed. */
    this.sentFrames = [];
    TrackedWebSocket.instances.push(this);
    this.addEventListener('message', (e) => {
      try {
        this.frames.push(JSON.parse(e.data));
      } catch {
        this.frames.push(e.data);
      }
    });
    this.addEventListener('close', (e) => (this.closeCode = e.code));
  }

  send(data, ...rest) {
    this.sentFrames.push(JSON.parse(data));
    return super.send(data, ...rest);
  }

  static eventFrames() {
    return TrackedWebSocket.instances.flatMap((s) => s.frames.filter((f) => f.op === 'events'));
  }

  static allFrames() {
    return TrackedWebSocket.instances.flatMap((s) => s.frames);
  }
}

/** createClient for Node tests: `ws` sockets, no online/offline source, closed after the test. */
export function nodeClient(t, opts) {
  const client = createClient({ WebSocket: TrackedWebSocket, onlineTarget: null, ...opts });
  const statuses = [];
  client.onStatus((s) => statuses.push(s));
  t.after(() => client.close());
  return { client, statuses };
}

/** Subscribes and records everything the callbacks get. */
export function record(client, project, collection) {
  const rec = { batches: [], events: [], resets: [], errors: [], subscribed: [] };
  rec.stop = client.subscribe(project, collection, {
    onEvents: (events) => {
      rec.batches.push(events);
      rec.events.push(...events);
    },
    onReset: (info) => rec.resets.push(info),
    onError: (err) => rec.errors.push(err),
    onSubscribed: (info) => rec.subscribed.push(info),
  });
  return rec;
}

/**
 * Awaits `states` in order (not necessarily adjacent) among the statuses a
 * client recorded after index `from`, and returns the index just past the
 * last match. Transient states such as `reconnecting` can come and go
 * between two polls of `client.status`; the record keeps every transition.
 */
export async function waitForStates(statuses, states, { from = 0, timeoutMs = 10_000 } = {}) {
  let end = from;
  await waitFor(
    () => {
      let i = from;
      for (const want of states) {
        while (i < statuses.length && statuses[i].state !== want) i++;
        if (i === statuses.length) return false;
        i++;
      }
      end = i;
      return true;
    },
    { timeoutMs, message: () => `states ${states.join(' → ')} after #${from} (recorded: ${statuses.slice(from).map((s) => s.state).join(', ')})` },
  );
  return end;
}
