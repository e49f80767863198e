// Shared by the browser test pages: parameters from the URL fragment and a
// WebSocket wrapper that records what the SDK sends and receives.
export function params() {
  return Object.fromEntries(new URLSearchParams(location.hash.replace(/^#/, '')));
}

export const sent = [];
window.__sent = sent;

/** Frames the gateway sent, parsed, in arrival order (every socket). */
export const received = [];
window.__received = received;

export class RecordingWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols);
    this.addEventListener('message', (e) => received.push(JSON.parse(e.data)));
  }

  send(data) {
    sent.push(JSON.parse(data));
    return super.send(data);
  }
}

export function sentOps(op) {
  return sent.filter((m) => m.op === op);
}
