/**
 * The infrastructure a gateway rehearsal runs through, as child processes on free 127.0.0.1 ports with
 * generated configs in the rehearsal's scratch dir: Debian's HAProxy in front of the scratch engine (the
 * canary) and a "sorry" server (503 with Retry-After), and Debian's Prometheus scraping the engine. Every
 * process started here is stopped by `stop()`, and killed when this process exits however it ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { InputError } from '../errors.js';
import { nodeSocket } from './effects.js';

/** What the rehearsed playbook is told, as vars: where its gateway and its Prometheus are. */
export interface RehearsalInfra {
  vars: Record<string, string>;
  stop(): Promise<void>;
  /** Where the configs, logs and HAProxy's admin socket (`admin.sock`) are. */
  dir: string;
  /** Stop one service before the rest (the chaos fault `metrics-down`); nothing when it was not started. */
  stopService(name: 'haproxy' | 'prometheus'): Promise<void>;
}

const children = new Set<ChildProcess>();
let exitHookInstalled = false;

function killAllOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // SIGTERM, not SIGKILL: the reaper passes it on (and escalates) instead of dying and leaving its child.
  process.once('exit', () => {
    for (const c of children) c.kill('SIGTERM');
  });
}

/**
 * A small node process between us and the service: it passes SIGTERM/SIGINT/SIGHUP on (SIGKILL after
 * 4 s), and when this process is gone, whatever killed it (SIGKILL included), it stops the service
 * itself, as the engine's --exit-with does. HAProxy and Prometheus have no such option of their own.
 */
const REAPER = `
const { spawn } = require('node:child_process');
const [parent, bin, ...args] = process.argv.slice(1);
const child = spawn(bin, args, { stdio: 'inherit' });
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  try { child.kill('SIGTERM'); } catch {}
  setTimeout(() => { try { child.kill('SIGKILL'); } catch {} }, 4000).unref();
};
for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(s, stop);
const watch = setInterval(() => { try { process.kill(Number(parent), 0); } catch { stop(); } }, 500);
child.on('error', (e) => { console.error(String(e)); process.exit(127); });
child.on('exit', (code, signal) => { clearInterval(watch); process.exit(code ?? (signal ? 1 : 0)); });
`;

/** An executable on PATH or in Debian's sbin folders (root's PATH has them, a user's may not). */
export function findBinary(name: string): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/bin', '/sbin', '/usr/local/bin'].filter(Boolean)) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  return undefined;
}

/** A port nothing listens on now: listen on 0, note it, close. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port from listen(0)');
  return address.port;
}

/** SIGTERM, SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopChild(child: ChildProcess, graceMs = 5_000): Promise<void> {
  children.delete(child);
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Start a service and wait until `ready()` says so; its output goes to `log`. Fails with the log's tail. */
async function startService(name: string, bin: string, args: string[], log: string, ready: () => Promise<boolean>, timeoutMs = 30_000): Promise<ChildProcess> {
  killAllOnExit();
  const fd = openSync(log, 'w');
  const child = spawn(process.execPath, ['-e', REAPER, String(process.pid), bin, ...args], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  // A spawn that fails shows as an exit before ready, below; it must not crash this process.
  child.on('error', () => undefined);
  children.add(child);
  const tail = (): string => readFileSync(log, 'utf8').trim().split('\n').slice(-5).join(' | ');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      children.delete(child);
      throw new InputError(`rehearsal: ${name} exited (${child.exitCode ?? child.signalCode}) before it was ready: ${tail()}`);
    }
    if (await ready().catch(() => false)) return child;
    if (Date.now() > deadline) {
      await stopChild(child);
      throw new InputError(`rehearsal: ${name} was not ready within ${timeoutMs / 1000}s: ${tail()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The sorry server: every request turned away with 503 and Retry-After, as a maintenance page does. */
async function startSorryServer(): Promise<{ port: number; server: Server }> {
  const server = createHttpServer((req, res) => {
    req.resume();
    res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
    res.end('{"status":"rejected","reason":"RETRY_LATER","message":"trading is resuming: try again shortly"}');
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port for the sorry server');
  return { port: address.port, server };
}

/** haproxy.cfg: the engine as canary `engine` at weight 0, the sorry server as `sorry` at 100, an admin socket. */
export function haproxyConfig(o: { socket: string; frontendPort: number; enginePort: number; sorryPort: number }): string {
  return `global
  stats socket ${o.socket} mode 600 level admin
  stats timeout 30s

defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  # One request per server-side connection: no race with a server closing an idle keep-alive connection
  # HAProxy is about to reuse (the engine's and the sorry server's idle timeouts are a few seconds), which
  # would reach the load generator as a 502 or a hang-up and count against the error-rate gate.
  option http-server-close
  retries 2
  retry-on conn-failure empty-response

frontend fe_orders
  bind 127.0.0.1:${o.frontendPort}
  default_backend be_orders

backend be_orders
  balance roundrobin
  server engine 127.0.0.1:${o.enginePort} weight 0
  server sorry 127.0.0.1:${o.sorryPort} weight 100
`;
}

/** prometheus.yml (JSON is YAML): the engine's /metrics every second, with its bearer token. */
export function prometheusConfig(o: { enginePort: number; tokenFile: string }): string {
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    scrape_configs: [
      {
        job_name: 'engine',
        authorization: { type: 'Bearer', credentials_file: o.tokenFile },
        static_configs: [{ targets: [`127.0.0.1:${o.enginePort}`] }],
      },
    ],
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

async function startHaproxy(dir: string, enginePort: number, sorryPort: number): Promise<{ child: ChildProcess; vars: Record<string, string> }> {
  const bin = findBinary('haproxy');
  if (!bin) throw new InputError('rehearsal.gateway: haproxy is not installed (apt-get install haproxy)');
  const socket = join(dir, 'admin.sock');
  const frontendPort = await freePort();
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, haproxyConfig({ socket, frontendPort, enginePort, sorryPort }));
  const address = `unix://${socket}`;
  const ready = async (): Promise<boolean> =>
    (await nodeSocket(address, 'show info', { signal: new AbortController().signal, timeoutMs: 1_000 })).includes('Name: HAProxy');
  const child = await startService('haproxy', bin, ['-f', cfg, '-db'], join(dir, 'haproxy.log'), ready);
  return { child, vars: { gatewaySocket: address, gatewayUrl: `http://127.0.0.1:${frontendPort}` } };
}

async function startPrometheus(dir: string, enginePort: number, tokenFile: string): Promise<{ child: ChildProcess; vars: Record<string, string> }> {
  const bin = findBinary('prometheus');
  if (!bin) throw new InputError('rehearsal.prometheus: prometheus is not installed (apt-get install prometheus)');
  const port = await freePort();
  const cfg = join(dir, 'prometheus.yml');
  writeFileSync(cfg, prometheusConfig({ enginePort, tokenFile }));
  const url = `http://127.0.0.1:${port}`;
  const args = [`--config.file=${cfg}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'];
  // Ready once it has scraped the engine: the gates' first sample then has data to judge.
  const ready = async (): Promise<boolean> => {
    const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent('up{job="engine"}')}`, { signal: AbortSignal.timeout(1_000) });
    const body = (await res.json()) as { data?: { result?: { value?: [number, string] }[] } };
    return body.data?.result?.[0]?.value?.[1] === '1';
  };
  const child = await startService('prometheus', bin, args, join(dir, 'prometheus.log'), ready);
  return { child, vars: { prometheusUrl: url } };
}

/**
 * Start what `rehearsal:` asks for in front of (and beside) the scratch engine. Vars: `gatewaySocket`,
 * `gatewayUrl` (haproxy), `prometheusUrl` (prometheus).
 */
export async function startRehearsalInfra(o: {
  scratch: string;
  engineUrl: string;
  tokenFile: string;
  gateway?: 'haproxy' | undefined;
  prometheus?: boolean | undefined;
}): Promise<RehearsalInfra> {
  const dir = join(o.scratch, 'infra');
  mkdirSync(dir, { recursive: true });
  const enginePort = Number(new URL(o.engineUrl).port);
  const started: ChildProcess[] = [];
  const byName = new Map<'haproxy' | 'prometheus', ChildProcess>();
  let sorry: Server | undefined;
  const vars: Record<string, string> = {};
  const stop = async (): Promise<void> => {
    await Promise.all(started.map((c) => stopChild(c)));
    if (sorry) await new Promise<void>((resolve) => sorry?.close(() => resolve()));
  };
  try {
    if (o.gateway === 'haproxy') {
      const s = await startSorryServer();
      sorry = s.server;
      const h = await startHaproxy(dir, enginePort, s.port);
      started.push(h.child);
      byName.set('haproxy', h.child);
      Object.assign(vars, h.vars);
    }
    if (o.prometheus) {
      const p = await startPrometheus(dir, enginePort, o.tokenFile);
      started.push(p.child);
      byName.set('prometheus', p.child);
      Object.assign(vars, p.vars);
    }
  } catch (e) {
    await stop();
    throw e;
  }
  const stopService = async (name: 'haproxy' | 'prometheus'): Promise<void> => {
    const child = byName.get(name);
    if (child) await stopChild(child);
  };
  return { vars, stop, dir, stopService };
}
