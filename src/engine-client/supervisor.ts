import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isPidAlive } from '../util/pid.js';
import { EngineClient, EngineHttpError, EngineUnreachable } from './client.js';
import { VERSION } from '../util/version.js';
import { dataDirLayout } from '../util/data-dir.js';

/** The engine ships in this package: its version is the package's. */
export const ENGINE_VERSION = VERSION;

/** What `engine.json` records about a running engine, so later commands can find it again. */
export interface EngineInfo {
  pid: number;
  url: string;
  startedAt: string;
  version: string;
  dataDir: string;
  testnet: boolean;
}

export interface StartOptions {
  port?: number;
  testnet?: boolean;
  seed?: number;
  feedInterval?: string;
  fundingInterval?: string;
  queueLimit?: number;
  snapshotEvery?: number;
  /** Symbols with their own funding interval, e.g. `{ ETHUSDT: '4h' }`. */
  fundingIntervals?: Record<string, string>;
  haltedPremium?: 'exclude' | 'interest-only';
  /** Testnet only: time moves by `POST /testnet/clock`, from `clockStart` (ISO) or 2026-01-01. */
  manualClock?: boolean;
  clockStart?: string;
  /** Follower mode: the primary's control URL and the file holding its token. */
  follow?: { url: string; tokenFile: string };
  readyTimeoutMs?: number;
  /** Stop the engine when this process ends (testnets, rehearsal scratch engines). */
  exitWithMe?: boolean;
}

/** The engine would not start: carries the tail of its log. */
export class EngineStartFailed extends Error {}

export function engineBin(): string {
  return fileURLToPath(new URL('../../bin/futures-engine.js', import.meta.url));
}

export function readEngineInfo(dataDir: string): EngineInfo | undefined {
  try {
    return JSON.parse(readFileSync(dataDirLayout(dataDir).info, 'utf8')) as EngineInfo;
  } catch {
    return undefined;
  }
}

function tail(file: string, lines = 12): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** The running engine of a data dir, when its pid is alive and it answers /health with the token. */
export async function attach(dataDir: string): Promise<{ info: EngineInfo; client: EngineClient } | undefined> {
  const dir = resolve(dataDir);
  const info = readEngineInfo(dir);
  if (!info || !isPidAlive(info.pid)) return undefined;
  try {
    const client = EngineClient.fromTokenFile(info.url, dataDirLayout(dir).token);
    const health = await client.health();
    if (health.pid !== info.pid) return undefined;
    return { info, client };
  } catch (e) {
    if (e instanceof EngineUnreachable || e instanceof EngineHttpError || (e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** The engine's command line for these options (`bin/futures-engine.js` takes each as a flag). */
export function engineArgs(dir: string, o: StartOptions): string[] {
  const args = ['--data-dir', dir, '--port', String(o.port ?? 0)];
  if (o.testnet) args.push('--testnet');
  if (o.seed !== undefined) args.push('--seed', String(o.seed));
  if (o.feedInterval) args.push('--feed-interval', o.feedInterval);
  if (o.fundingInterval) args.push('--funding-interval', o.fundingInterval);
  if (o.queueLimit !== undefined) args.push('--queue-limit', String(o.queueLimit));
  if (o.snapshotEvery !== undefined) args.push('--snapshot-every', String(o.snapshotEvery));
  const perSymbol = Object.entries(o.fundingIntervals ?? {});
  if (perSymbol.length > 0) args.push('--funding-intervals', perSymbol.map(([s, d]) => `${s}=${d}`).join(','));
  if (o.haltedPremium) args.push('--halted-premium', o.haltedPremium);
  if (o.manualClock) args.push('--manual-clock');
  if (o.clockStart) args.push('--clock-start', o.clockStart);
  if (o.follow) args.push('--follow', o.follow.url, '--token-file', o.follow.tokenFile);
  // A rehearsal's engines (the standby a step starts too) end with the rehearsal, however it ends.
  const owner = o.exitWithMe ? String(process.pid) : process.env.RECOVERCTL_ENGINES_EXIT_WITH;
  if (owner) args.push('--exit-with', owner);
  return args;
}

/**
 * Start the engine on a data dir, detached so it outlives this command, and wait for its ready line.
 * An engine already running there is attached to instead.
 */
export async function startEngine(dataDir: string, o: StartOptions = {}): Promise<{ info: EngineInfo; client: EngineClient; started: boolean }> {
  const dir = resolve(dataDir);
  const running = await attach(dir);
  if (running) return { ...running, started: false };
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new EngineStartFailed(`cannot create the data dir ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const args = [engineBin(), ...engineArgs(dir, o)];
  const logFile = dataDirLayout(dir).log;
  // The engine writes its log straight to the file: nothing of it passes through this process.
  let logFd: number;
  try {
    logFd = openSync(logFile, 'a', 0o600);
  } catch (e) {
    throw new EngineStartFailed(`cannot write ${logFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const { execa } = await import('execa');
  const child = execa(process.execPath, args, {
    detached: true,
    // execa passes any file descriptor to the child (its types list only 3-9): the engine then writes
    // its log itself, with no pipe through this process, so this command can exit and leave it running.
    stdio: ['ignore', 'pipe', logFd as 3],
    reject: false,
    cleanup: false,
    buffer: false,
  });
  closeSync(logFd);
  const timeoutMs = o.readyTimeoutMs ?? 20_000;
  const ready = await new Promise<{ url: string; pid: number }>((resolveReady, rejectReady) => {
    let buf = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      rejectReady(new EngineStartFailed(`engine did not become ready within ${timeoutMs / 1000}s\n${tail(logFile)}`));
    }, timeoutMs);
    child.stdout?.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      try {
        const line = JSON.parse(buf.slice(0, nl)) as { event?: string; url?: string; pid?: number };
        if (line.event !== 'ready' || typeof line.url !== 'string' || typeof line.pid !== 'number') throw new Error('unexpected first line');
        resolveReady({ url: line.url, pid: line.pid });
      } catch {
        rejectReady(new EngineStartFailed(`engine printed an unexpected first line: ${buf.slice(0, 200)}`));
      }
    });
    void child.then((r) => {
      clearTimeout(timer);
      const how = r.signal ? `was killed by ${r.signal}` : `exited with code ${r.exitCode}`;
      rejectReady(new EngineStartFailed(`engine ${how} before it was ready\n${tail(logFile)}`));
    });
  });
  child.stdout?.destroy();
  child.unref();
  const info: EngineInfo = {
    pid: ready.pid,
    url: ready.url,
    startedAt: new Date().toISOString(),
    version: ENGINE_VERSION,
    dataDir: dir,
    testnet: o.testnet ?? false,
  };
  const tmp = join(dir, `engine.json.tmp-${process.pid}`);
  writeFileSync(tmp, `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, dataDirLayout(dir).info);
  return { info, client: EngineClient.fromTokenFile(info.url, dataDirLayout(dir).token), started: true };
}

/** The pid in the engine's own lock file, when that process is alive. */
function lockHolder(dir: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(dataDirLayout(dir).engineLock, 'utf8'), 10);
    return Number.isInteger(pid) && isPidAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Stop the engine of a data dir: SIGTERM (it flushes its WAL), SIGKILL after the timeout. Only a pid
 * that is provably the engine is signalled: it answers /health, or holds the data dir's engine.lock
 * (which also finds an engine whose engine.json was lost).
 */
export async function stopEngine(dataDir: string, timeoutMs = 10_000): Promise<{ wasRunning: boolean; forced: boolean; pid: number | null }> {
  const dir = resolve(dataDir);
  const attached = await attach(dir);
  const pid = attached?.info.pid ?? lockHolder(dir);
  if (pid === undefined) {
    if (existsSync(dataDirLayout(dir).info)) unlinkSync(dataDirLayout(dir).info);
    return { wasRunning: false, forced: false, pid: null };
  }
  const info = { pid };
  process.kill(info.pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  let forced = false;
  while (isPidAlive(info.pid)) {
    if (Date.now() > deadline && !forced) {
      process.kill(info.pid, 'SIGKILL');
      forced = true;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  if (existsSync(dataDirLayout(dir).info)) unlinkSync(dataDirLayout(dir).info);
  return { wasRunning: true, forced, pid: info.pid };
}

/** Connect to a playbook's engine: a local data dir (attach) or a url with a token file. */
export async function connect(target: { dataDir: string } | { url: string; tokenFile: string }): Promise<EngineClient> {
  if ('url' in target) return EngineClient.fromTokenFile(target.url, target.tokenFile);
  const running = await attach(target.dataDir);
  if (!running) throw new EngineUnreachable(`no engine is running on ${target.dataDir} (start it with engine.start or 'recoverctl engine start')`);
  return running.client;
}
