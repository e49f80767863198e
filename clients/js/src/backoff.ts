/**
 * Reconnect delays. Full jitter (a uniformly random delay between zero and an
 * exponentially growing cap) spreads a crowd of clients that lost the same
 * node over the whole window instead of sending them back in waves.
 */

/** Reconnect timing; every field has the documented default. */
export interface BackoffOptions {
  /** Cap of the first retry's delay, in ms. Default 500. */
  baseDelayMs?: number;
  /** Upper bound of any delay, in ms. Default 30000. */
  maxDelayMs?: number;
  /**
   * Window for the "at once" reconnect after 1012 (service restart), 1001,
   * 4008 (slow consumer) and 4009 (token expired), in ms. Default 1000.
   */
  restartJitterMs?: number;
  /**
   * Reconnect tries after a lost or failed connection before the client
   * gives up with state `failed` (Socket.IO's `reconnectionAttempts`);
   * `reconnect()` starts over. Default Infinity; 0 never reconnects.
   */
  maxAttempts?: number;
}

export const DEFAULT_BASE_DELAY_MS = 500;
export const DEFAULT_MAX_DELAY_MS = 30_000;
export const DEFAULT_RESTART_JITTER_MS = 1_000;

/**
 * backoffDelay returns the delay before retry number `attempt` (1 for the
 * first retry): random() * min(max, base * 2^(attempt-1)).
 */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}, random: () => number = Math.random): number {
  const base = opts.baseDelayMs ?? DEFAULT_BASE_DELAY_MS;
  const max = opts.maxDelayMs ?? DEFAULT_MAX_DELAY_MS;
  const exp = Math.min(Math.max(attempt, 1) - 1, 30);
  const cap = Math.min(max, base * 2 ** exp);
  return Math.floor(clamp01(random()) * cap);
}

/** restartDelay returns the jittered delay of an "at once" reconnect. */
export function restartDelay(opts: BackoffOptions = {}, random: () => number = Math.random): number {
  const window = opts.restartJitterMs ?? DEFAULT_RESTART_JITTER_MS;
  return Math.floor(clamp01(random()) * window);
}

function clamp01(x: number): number {
  if (!(x >= 0)) return 0;
  return x >= 1 ? 0.999999 : x;
}
