// Runs a real redis-server (the Debian package) on a loopback port.
import { spawn, execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { freePort, waitFor } from './gateway.mjs';

function redisServerPath() {
  try {
    return execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

function listening(port) {
  return new Promise((res) => {
    const s = connect(port, '127.0.0.1', () => {
      s.end();
      res(true);
    });
    s.on('error', () => res(false));
  });
}

/**
 * Starts redis-server without persistence on `port` (a free one when
 * absent) and waits until it accepts connections.
 */
export async function startRedis({ port } = {}) {
  const bin = redisServerPath();
  if (!bin) throw new Error('redis-server missing: apt-get install -y redis-server');
  const p = port ?? (await freePort());
  const proc = spawn(bin, ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const exited = new Promise((r) => proc.once('exit', r));
  let dead = false;
  exited.then(() => (dead = true));
  await waitFor(
    async () => {
      if (dead) throw new Error(`redis-server on port ${p} exited during start`);
      return listening(p);
    },
    { message: `redis-server listening on ${p}` },
  );
  return {
    port: p,
    url: `redis://127.0.0.1:${p}/0`,
    proc,
    /** Kills the process and waits for it to exit. */
    async stop(signal = 'SIGKILL') {
      if (!dead) proc.kill(signal);
      await exited;
    },
    /** SIGSTOP: the server keeps its sockets but answers nothing. */
    pause: () => proc.kill('SIGSTOP'),
    resume: () => proc.kill('SIGCONT'),
  };
}
