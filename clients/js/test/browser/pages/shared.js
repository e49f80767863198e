// Shared by the browser test pages: parameters from the URL fragment and a
// WebSocket wrapper that records what the SDK sends.
export function params() {
  return Object.fromEntries(new URLSearchParams(location.hash.replace(/^#/, '')));
}

export const sent = [];
window.__sent = sent;

export class RecordingWebSocket extends WebSocket {
  send(data) {
    sent.push(JSON.parse(data));
    return super.send(data);
  }
}

export function sentOps(op) {
  return sent.filter((m) => m.op === op);
}
