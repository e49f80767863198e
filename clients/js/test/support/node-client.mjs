// Node-side helpers: the SDK over the `ws` package, with every socket and
// every received frame recorded so tests can compare callbacks with frames.
import WebSocket from 'ws';
import { createClient } from '../../dist/index.js';

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
