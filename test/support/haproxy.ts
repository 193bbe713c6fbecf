/**
 * A real HAProxy for integration tests: a generated haproxy.cfg in a temp dir, `haproxy -f cfg -db` as a
 * child process, ready once its stats socket answers `show info`, stopped after each test however it
 * ends. Also the pieces test/support/nginx.ts shares: small HTTP origins, free ports, the stop list.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { nodeSocket } from '../../src/cli/effects.js';
import { findBinary, freePort, stopChild as endChild } from '../../src/cli/rehearsal-infra.js';
import { tempDir } from './cli.js';

/** Whether a program is on PATH (the gateway tests skip, saying so, when it is not). */
export function onPath(program: string): boolean {
  return findBinary(program) !== undefined;
}

const stoppers = new Set<() => Promise<void>>();

/** Run `stop` after the current test (afterEach), whether it passed or not; returns a stop that runs it once. */
export function stopAfterTest(stop: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  const once = (): Promise<void> => {
    stoppers.delete(once);
    return (done ??= stop());
  };
  stoppers.add(once);
  return once;
}

afterEach(async () => {
  await Promise.all([...stoppers].map((s) => s().catch(() => undefined)));
});

// One port finder and one child stopper for the product and its tests (src/cli/rehearsal-infra.ts).
export { freePort, endChild };

export interface Origin {
  /** host:port, as a gateway's server line wants it. */
  address: string;
  /** Requests answered so far. */
  hits(): number;
  stop(): Promise<void>;
}

/** An HTTP server on 127.0.0.1 that answers every request the same; e.g. 200 "engine", or 503 "sorry" with Retry-After: 5. */
export async function startOrigin(answer: { status: number; body: string; headers?: Record<string, string> }): Promise<Origin> {
  let hits = 0;
  const server: Server = createServer((req, res) => {
    hits++;
    req.resume();
    res.writeHead(answer.status, { 'content-type': 'text/plain', connection: 'close', ...answer.headers });
    res.end(answer.body);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const stop = stopAfterTest(() => new Promise<void>((resolve) => server.close(() => resolve()).closeAllConnections()));
  return { address: `127.0.0.1:${address.port}`, hits: () => hits, stop };
}

/** The engine (200 "engine") and the sorry server (503 "sorry", Retry-After: 5) a shift moves traffic between. */
export async function startEngineAndSorry(): Promise<{ engine: Origin; sorry: Origin }> {
  const engine = await startOrigin({ status: 200, body: 'engine' });
  const sorry = await startOrigin({ status: 503, body: 'sorry', headers: { 'retry-after': '5' } });
  return { engine, sorry };
}

/** Poll `ready` until it resolves true; fail early with the child's stderr when it exits first. */
export async function waitReady(child: ChildProcess, stderr: () => string, ready: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${stderr()}`);
    if (await ready().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} not ready within ${timeoutMs}ms:\n${stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface HaproxyOptions {
  /** Backends, each with every server; the frontend sends to the first. Default [be_orders]. */
  backends?: string[];
  /** Server name → host:port, declared in every backend with `weight 100` (so W% maps to weight W). */
  servers: Record<string, string>;
  /** The level of the unix socket: admin (default) or user. The TCP socket is always at level admin. */
  admin?: boolean;
  balance?: 'roundrobin' | 'static-rr' | 'leastconn' | 'first';
  /** Lines added to the frontend before `default_backend`, e.g. `http-request deny deny_status 404 if { path /orders/batch }`. */
  frontendRules?: string[];
}

export interface TestHaproxy {
  /** unix://<dir>/admin.sock (at the level asked). */
  socket: string;
  /** tcp://127.0.0.1:P, at level admin. */
  tcp: string;
  frontendUrl: string;
  dir: string;
  config: string;
  stop(): Promise<void>;
}

export function haproxyConfig(o: HaproxyOptions & { dir: string; statsPort: number; frontendPort: number }): string {
  const backends = o.backends ?? ['be_orders'];
  const servers = Object.entries(o.servers)
    .map(([name, address]) => `  server ${name} ${address} weight 100\n`)
    .join('');
  return [
    'global',
    `  stats socket ${o.dir}/admin.sock level ${o.admin === false ? 'user' : 'admin'} mode 600`,
    `  stats socket ipv4@127.0.0.1:${o.statsPort} level admin`,
    '  stats timeout 10s',
    '  nbthread 1',
    'defaults',
    '  mode http',
    '  timeout connect 2s',
    '  timeout client 10s',
    '  timeout server 10s',
    'frontend fe',
    `  bind 127.0.0.1:${o.frontendPort}`,
    ...(o.frontendRules ?? []).map((l) => `  ${l}`),
    `  default_backend ${backends[0] ?? 'be_orders'}`,
    ...backends.map((b) => `backend ${b}\n  balance ${o.balance ?? 'roundrobin'}\n${servers}`),
    '',
  ].join('\n');
}

/** A real HAProxy on ephemeral loopback ports, stopped after the test. */
export async function startHaproxy(o: HaproxyOptions): Promise<TestHaproxy> {
  const dir = tempDir('recoverctl-haproxy-');
  const [statsPort, frontendPort] = [await freePort(), await freePort()];
  const config = join(dir, 'haproxy.cfg');
  writeFileSync(config, haproxyConfig({ ...o, dir, statsPort, frontendPort }));
  const child = spawn('haproxy', ['-f', config, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const stop = stopAfterTest(() => endChild(child));
  const socket = `unix://${dir}/admin.sock`;
  const tcp = `tcp://127.0.0.1:${statsPort}`;
  const ask = (address: string) =>
    nodeSocket(address, 'show info', { signal: AbortSignal.timeout(2_000), timeoutMs: 1_000 }).then((a) => a.includes('Name: HAProxy'));
  try {
    await waitReady(
      child,
      () => output,
      async () => (await ask(socket)) && (await ask(tcp)),
      'haproxy',
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return { socket, tcp, frontendUrl: `http://127.0.0.1:${frontendPort}/`, dir, config, stop };
}
