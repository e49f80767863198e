// Runs real gateway processes built from this repository, on loopback ports.
import { spawn, execFileSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');

let built = null;

/**
 * The gateway binary: $SYNCGATE_GATEWAY_BIN when set (the Makefile builds it
 * once), else `go build ./cmd/gateway` into a temporary directory.
 */
export function gatewayBinary() {
  if (process.env.SYNCGATE_GATEWAY_BIN) return process.env.SYNCGATE_GATEWAY_BIN;
  if (built) return built;
  const out = join(mkdtempSync(join(tmpdir(), 'syncgate-js-')), 'gateway');
  execFileSync('go', ['build', '-o', out, './cmd/gateway'], { cwd: REPO_ROOT, stdio: 'inherit' });
  built = out;
  return out;
}

/** A free loopback port. */
export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `fn` until it returns truthy or `timeoutMs` passes. Poll only for
 * conditions that stay true once reached (a count, a recorded transition);
 * `message` may be a function, called for the timeout's error.
 */
export async function waitFor(fn, { timeoutMs = 10_000, intervalMs = 20, message = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof message === 'function' ? message() : message}`);
    }
    await sleep(intervalMs);
  }
}

/** HS256 JWT with the claims the gateway reads. */
export function signToken(secret, claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  const sig = createHmac('sha256', secret).update(body).digest('base64url');
  return `${body}.${sig}`;
}

/**
 * Starts one gateway process. `env` adds to the test defaults (a secret and
 * a publish key); pass `dev: true` to run it without them, as a developer
 * does with a bare `go run ./cmd/gateway`.
 */
export async function startGateway({ port, env = {}, dev = false, secret: givenSecret, publishKey: givenKey } = {}) {
  const p = port ?? (await freePort());
  const secret = dev ? null : (givenSecret ?? `secret-${randomBytes(24).toString('hex')}`);
  const publishKey = dev ? null : (givenKey ?? `key-${randomBytes(8).toString('hex')}`);
  const fullEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME ?? tmpdir(),
    SYNCGATE_ADDR: `127.0.0.1:${p}`,
    ...(dev ? {} : { SYNCGATE_JWT_SECRET: secret, SYNCGATE_PUBLISH_KEYS: publishKey }),
    // A development node keeps its own (short) default.
    ...(dev ? {} : { SYNCGATE_SHUTDOWN_GRACE: '2s' }),
    ...env,
  };
  const bin = gatewayBinary();
  if (!existsSync(bin)) throw new Error(`gateway binary ${bin} missing`);
  const proc = spawn(bin, [], { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout.on('data', (d) => (output += d));
  proc.stderr.on('data', (d) => (output += d));
  const exited = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  const base = `http://127.0.0.1:${p}`;
  let dead = false;
  exited.then(() => (dead = true));
  await waitFor(
    async () => {
      if (dead) throw new Error(`gateway exited during start:\n${output}`);
      try {
        return (await fetch(`${base}/healthz`)).ok;
      } catch {
        return false;
      }
    },
    { timeoutMs: 15_000, message: 'gateway /healthz' },
  );
  const gw = {
    port: p,
    base,
    wsUrl: `ws://127.0.0.1:${p}/v1/ws`,
    secret,
    publishKey,
    proc,
    exited,
    get output() {
      return output;
    },
    token(claims = {}) {
      return signToken(secret, { sub: 'u1', projects: ['*'], exp: Math.floor(Date.now() / 1000) + 3600, ...claims });
    },
    async publish(events, key = gw.publishKey) {
      const res = await fetch(`${base}/v1/publish`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(Array.isArray(events) ? { events } : events),
      });
      const body = await res.json().catch(() => null);
      if (!res.ok) throw new Error(`publish: ${res.status} ${JSON.stringify(body)}`);
      return body;
    },
    /** Stops the process with `signal` and waits for it to exit. */
    async stop(signal = 'SIGTERM') {
      if (!dead) proc.kill(signal);
      return exited;
    },
  };
  return gw;
}

/** A document event for tests. */
export function docEvent(project, collection, id, document, type = 'document:updated') {
  return { type, project, collection, documentId: id, document };
}
