// A scripted stand-in for WebSocket: the test plays the gateway.
export class FakeSocket {
  /** @type {FakeSocket[]} */
  static instances = [];

  static reset() {
    FakeSocket.instances = [];
  }

  static get last() {
    return FakeSocket.instances[FakeSocket.instances.length - 1];
  }

  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    /** Frames the client sent, parsed. */
    this.sent = [];
    this.closedByClient = null;
    this.onopen = null;
    this.onmessage = null;
    this.onclose = null;
    this.onerror = null;
    FakeSocket.instances.push(this);
  }

  send(data) {
    if (this.readyState !== 1) throw new Error('FakeSocket: send while not open');
    this.sent.push(JSON.parse(data));
  }

  close(code, reason) {
    this.closedByClient = { code, reason };
    this.readyState = 3;
  }

  // ---- the gateway's side ----
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }

  receive(msg) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }

  drop(code = 1006, reason = '') {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  /** Frames with this op the client sent. */
  ops(op) {
    return this.sent.filter((m) => m.op === op);
  }
}

/** Lets promise chains and setImmediate callbacks run. */
export async function flush(rounds = 5) {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}
