import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { isPidAlive } from '../util/pid.js';
import { EngineRuntime } from './runtime.js';
import { bootstrapFollower, divergence, followPrimary, primaryEpoch } from './follower.js';
import { isSymbol, SYMBOLS, type Symbol } from './instruments.js';
import type { HaltedPremiumPolicy } from './market.js';
import { createControlServer } from './server.js';
import { dataDirLayout } from '../util/data-dir.js';

/** The futures engine process: `bin/futures-engine.js --data-dir DIR [--port 0] [--testnet] [--seed N]`. */

function log(event: Record<string, unknown>): void {
  process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), ...event })}\n`);
}

function die(message: string, code = 2): never {
  log({ level: 'fatal', msg: message });
  process.exit(code);
}

/** Only one engine per data dir: an O_EXCL lock file naming the pid; a dead holder's lock is stale. */
function lockDataDir(dir: string): string {
  const path = dataDirLayout(dir).engineLock;
  for (let i = 0; i < 2; i++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return path;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
      if (Number.isInteger(pid) && pid !== process.pid && isPidAlive(pid)) die(`data dir ${dir} is locked by engine pid ${pid}`);
      unlinkSync(path);
    }
  }
  return die(`could not lock ${dir}`);
}

function intOpt(v: string | undefined, name: string, dflt: number, min: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) die(`--${name} must be an integer >= ${min}`);
  return n;
}

function durationOpt(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const m = /^(\d+)(ms|s|m|h)$/.exec(v);
  if (!m) return die(`--${name} must be a duration like 500ms, 30s, 8h`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return Number(m[1]) * unit;
}

/** `--funding-intervals BTCUSDT=4h,ETHUSDT=1h`: symbols whose funding interval is not the default. */
function fundingIntervalsOpt(v: string | undefined): Partial<Record<Symbol, number>> {
  const out: Partial<Record<Symbol, number>> = {};
  if (v === undefined) return out;
  for (const part of v.split(',')) {
    const [symbol, duration] = part.split('=');
    if (duration === undefined) die(`--funding-intervals takes SYMBOL=DURATION pairs, like ETHUSDT=4h, not '${part}'`);
    if (!isSymbol(symbol)) die(`--funding-intervals: unknown symbol '${symbol ?? ''}' (known: ${SYMBOLS.join(', ')})`);
    out[symbol] = Math.max(1000, durationOpt(duration, 'funding-intervals', 0));
  }
  return out;
}

/** `--halted-premium`; without it the data dir's recorded policy stays (a fresh one excludes). */
function haltedPremiumOpt(v: string | undefined): { haltedPremium?: HaltedPremiumPolicy } {
  if (v === undefined) return {};
  if (v === 'exclude' || v === 'interest-only') return { haltedPremium: v };
  return die(`--halted-premium must be exclude or interest-only, not '${v}'`);
}

/** `--manual-clock` (testnet only): time moves only by `POST /testnet/clock`, from `--clock-start` (default 2026-01-01). */
function manualClockOpt(values: EngineArgs): { start: number } | undefined {
  if (values['manual-clock'] !== true) {
    if (values['clock-start'] !== undefined) die('--clock-start needs --manual-clock');
    return undefined;
  }
  if (values.testnet !== true) die('--manual-clock needs --testnet: a production engine takes time from the system clock');
  const text = (values['clock-start'] as string | undefined) ?? '2026-01-01T00:00:00Z';
  const start = Date.parse(text);
  if (!Number.isFinite(start) || start <= 0) die(`--clock-start must be an ISO time, not '${text}'`);
  return { start };
}

/** `--follow URL --token-file F`: a standby of that primary; a fresh data dir starts from the primary's state. */
async function followOpt(values: EngineArgs, dataDir: string): Promise<{ url: string; tokenFile: string } | undefined> {
  const url = values.follow as string | undefined;
  if (url === undefined) {
    if (values['token-file'] !== undefined) die('--token-file needs --follow');
    return undefined;
  }
  if (!/^http:\/\/(127\.0\.0\.1|localhost|\[::1\]):\d+$/.test(url))
    die(`--follow must be the primary's loopback control URL, like http://127.0.0.1:PORT, not '${url}'`);
  const tokenFile = values['token-file'] as string | undefined;
  if (tokenFile === undefined) die("--follow needs --token-file (the primary's control.token)");
  let token: string;
  try {
    token = readFileSync(tokenFile, 'utf8').trim();
  } catch (e) {
    return die(`--token-file ${tokenFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const boot = await bootstrapFollower(dataDir, url, token);
  if (boot) log({ level: 'info', msg: "follower: started from the primary's state", url, seq: boot.seq });
  return { url, tokenFile };
}

export async function main(argv: string[]): Promise<void> {
  try {
    await run(argv);
  } catch (e) {
    // One line in the log, not a stack: the supervisor shows the log's tail to the operator.
    die(`cannot start: ${(e as Error).message}`, 1);
  }
}

type EngineArgs = Record<string, string | boolean | undefined>;

/** The command line, or the usage line and nothing for --help. */
function parseEngineArgs(argv: string[]): EngineArgs | undefined {
  let values: EngineArgs;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        'data-dir': { type: 'string' },
        port: { type: 'string' },
        testnet: { type: 'boolean' },
        seed: { type: 'string' },
        'feed-interval': { type: 'string' },
        'funding-interval': { type: 'string' },
        'queue-limit': { type: 'string' },
        'snapshot-every': { type: 'string' },
        'exit-with': { type: 'string' },
        'funding-intervals': { type: 'string' },
        'halted-premium': { type: 'string' },
        'manual-clock': { type: 'boolean' },
        'clock-start': { type: 'string' },
        follow: { type: 'string' },
        'token-file': { type: 'string' },
        help: { type: 'boolean' },
      },
      strict: true,
    }));
  } catch (e) {
    die((e as Error).message);
  }
  if (!values.help) return values;
  process.stdout.write(
    'futures-engine --data-dir DIR [--port 0] [--testnet] [--seed N] [--feed-interval 1s] [--funding-interval 8h] [--funding-intervals ETHUSDT=4h,...] [--halted-premium exclude|interest-only] [--manual-clock [--clock-start ISO]] [--follow URL --token-file FILE] [--queue-limit 10000] [--snapshot-every 100000] [--exit-with PID]\n',
  );
  return undefined;
}

/** A fresh bearer token in DATA_DIR/control.token, readable by this user only. */
function writeToken(dataDir: string): string {
  const token = randomBytes(32).toString('hex');
  const tokenPath = dataDirLayout(dataDir).token;
  if (existsSync(tokenPath)) unlinkSync(tokenPath);
  writeFileSync(tokenPath, `${token}\n`, { mode: 0o600 });
  return token;
}

/** SIGTERM/SIGINT (or the owner's exit) close the server, flush the runtime, free the data dir and exit 0. */
function stopOnSignals(server: import('node:http').Server, runtime: EngineRuntime, lockPath: string, owner: number | undefined): void {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log({ level: 'info', msg: 'stopping', signal });
    server.close();
    server.closeAllConnections();
    void runtime
      .close()
      .then(() => {
        try {
          unlinkSync(lockPath);
        } catch {
          // already gone
        }
        process.exit(0);
      })
      .catch((e: Error) => die(`flush failed: ${e.message}`, 70));
  };
  // A testnet or rehearsal engine lives only as long as the process that started it, however that ends.
  if (owner !== undefined) {
    setInterval(() => {
      if (!isPidAlive(owner)) stop('owner gone');
    }, 250).unref();
  }
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

async function run(argv: string[]): Promise<void> {
  const values = parseEngineArgs(argv);
  if (!values) return;
  const dataDirArg = values['data-dir'];
  if (typeof dataDirArg !== 'string' || dataDirArg === '') die('--data-dir DIR is required');
  const dataDir = resolve(dataDirArg);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const port = intOpt(values.port as string | undefined, 'port', 0, 0);
  if (port > 65535) die('--port must be 0..65535');
  const lockPath = lockDataDir(dataDir);
  const follow = await followOpt(values, dataDir);
  const runtime = await EngineRuntime.open({
    ...(follow ? { follow } : {}),
    dataDir,
    testnet: values.testnet === true,
    seed: intOpt(values.seed as string | undefined, 'seed', 1, 0),
    feedIntervalMs: durationOpt(values['feed-interval'] as string | undefined, 'feed-interval', 1000),
    fundingIntervalMs: Math.max(1000, durationOpt(values['funding-interval'] as string | undefined, 'funding-interval', 8 * 3_600_000)),
    queueLimit: intOpt(values['queue-limit'] as string | undefined, 'queue-limit', 10_000, 1),
    drainIntervalMs: 5,
    drainBudget: 2_000,
    snapshotEvery: intOpt(values['snapshot-every'] as string | undefined, 'snapshot-every', 100_000, 0),
    fundingIntervals: fundingIntervalsOpt(values['funding-intervals'] as string | undefined),
    fundingIntervalGiven: values['funding-interval'] !== undefined,
    ...haltedPremiumOpt(values['halted-premium'] as string | undefined),
    manualClock: manualClockOpt(values),
    log,
  });
  const server = createControlServer({
    runtime,
    token: writeToken(dataDir),
    onCrash: () => {
      log({ level: 'warn', msg: 'crash fault: exiting without flushing' });
      process.kill(process.pid, 'SIGKILL');
    },
  });
  runtime.onFatal((e) => {
    log({ level: 'fatal', msg: 'WAL write failed', reason: e.message });
    process.exit(70);
  });
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(port, '127.0.0.1', () => res());
  });
  const address = server.address();
  const boundPort = typeof address === 'object' && address ? address.port : port;
  if (follow) {
    // A data dir that had state must hold a prefix of the primary's records, or following it would diverge.
    const diverged = divergence(
      { seq: runtime.seq, epoch: runtime.ex.epoch, epochSince: runtime.ex.epochSince },
      await primaryEpoch(follow.url, follow.tokenFile).catch((e: Error) => die(`--follow ${follow.url}: ${e.message}`)),
    );
    if (diverged) die(`cannot follow ${follow.url}: ${diverged}`, 75);
    runtime.stopFollowing = followPrimary(runtime, follow.url, follow.tokenFile, (e) => die(`follower stopped: ${e.message}`, 75));
  } else {
    runtime.start();
  }
  const owner = values['exit-with'] === undefined ? undefined : intOpt(values['exit-with'] as string, 'exit-with', 0, 1);
  stopOnSignals(server, runtime, lockPath, owner);
  log({ level: 'info', msg: 'recovered', ...runtime.recovery, seq: runtime.seq });
  process.stdout.write(`${JSON.stringify({ event: 'ready', url: `http://127.0.0.1:${boundPort}`, pid: process.pid, phase: runtime.ex.phase })}\n`);
}
