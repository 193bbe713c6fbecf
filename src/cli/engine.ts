import { resolve } from 'node:path';
import { InputError, StepFailed, UsageError } from '../errors.js';
import { formatDuration, parseDuration } from '../util/duration.js';
import { isPidAlive } from '../util/pid.js';

/** What every `engine` subcommand takes. */
export interface EngineTarget {
  dataDir: string;
  json?: boolean;
}
export interface EngineStartFlags extends EngineTarget {
  port?: string;
  testnet?: boolean;
  seed?: string;
  feedInterval?: string;
  fundingInterval?: string;
  queueLimit?: string;
}
export interface EngineHaltFlags extends EngineTarget {
  reason?: string;
}
export interface EngineResumeFlags extends EngineTarget {
  phases: string;
  dwell: string;
}
export interface EngineFaultFlags extends EngineTarget {
  events?: string;
}
export type DepositAsset = 'USDT' | 'USDC';
export interface EngineDepositFlags extends EngineTarget {
  account: string;
  asset: DepositAsset;
  amount: string;
}
export type FaultKind = 'margin-burst' | 'crash';

const PHASES = ['halted', 'cancel-only', 'post-only', 'open'] as const;
type Phase = (typeof PHASES)[number];

/** The engine's money unit is 1e-8 (docs/engine.md): more decimals would be refused, never rounded. */
const MONEY_DECIMALS = 8;
const decimalRe = /^(\d+)(?:\.(\d+))?$/;

/**
 * A deposit amount as the decimal string the control API takes: digits, at most 8 decimals, above zero.
 * Checked on the text and as a bigint of 1e-8 units; no binary float ever holds it.
 */
export function parseDepositAmount(text: string): string {
  const m = decimalRe.exec(text);
  if (!m) throw new UsageError(`--amount: expected a decimal number like 1000 or 250.5, got '${text}'`);
  const frac = m[2] ?? '';
  if (frac.length > MONEY_DECIMALS) throw new UsageError(`--amount: at most ${MONEY_DECIMALS} decimals, got '${text}'`);
  if (BigInt(`${m[1]}${frac.padEnd(MONEY_DECIMALS, '0')}`) <= 0n) throw new UsageError(`--amount: must be above zero, got '${text}'`);
  return text;
}

function out(flags: EngineTarget, data: object, human: string): void {
  process.stdout.write(flags.json ? `${JSON.stringify(data)}\n` : `${human}\n`);
}

function intFlag(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) throw new UsageError(`--${name}: expected a whole number, got '${v}'`);
  return n;
}

function durationFlag(v: string | undefined, name: string): string | undefined {
  if (v === undefined) return undefined;
  if (parseDuration(v) === undefined) throw new UsageError(`--${name}: expected a duration like 500ms, 30s, 8h, got '${v}'`);
  return v;
}

type Supervisor = typeof import('../engine-client/supervisor.js');
type Running = NonNullable<Awaited<ReturnType<Supervisor['attach']>>>;

/**
 * Runs one subcommand against the engine of a data dir and maps what can go wrong to the CLI's errors:
 * a start that fails or a request the engine calls malformed (400) is bad input (exit 2); an engine that
 * is not there or refuses otherwise is a failure (exit 1).
 */
async function onEngine(dataDir: string, body: (ctx: { dir: string; sup: Supervisor; connect: () => Promise<Running> }) => Promise<void>): Promise<void> {
  const sup = await import('../engine-client/supervisor.js');
  const { EngineUnreachable, EngineHttpError } = await import('../engine-client/client.js');
  const dir = resolve(dataDir);
  const connect = async (): Promise<Running> => {
    const running = await sup.attach(dir);
    if (!running) throw new StepFailed(`no engine is running on ${dir}`);
    return running;
  };
  try {
    await body({ dir, sup, connect });
  } catch (e) {
    if (e instanceof sup.EngineStartFailed) throw new InputError(`engine on ${dir} would not start: ${e.message}`);
    if (e instanceof EngineUnreachable) throw new StepFailed(e.message);
    if (e instanceof EngineHttpError) {
      if (e.status === 400) throw new UsageError(`engine refused: ${e.message}`);
      throw new StepFailed(`engine refused: ${e.message}`);
    }
    throw e;
  }
}

/** `recoverctl engine start`: detached, or attached to the engine already running there. */
export async function engineStart(flags: EngineStartFlags): Promise<void> {
  const port = intFlag(flags.port, 'port');
  if (port !== undefined && port > 65535) throw new UsageError('--port must be 0..65535');
  const seed = intFlag(flags.seed, 'seed');
  const queueLimit = intFlag(flags.queueLimit, 'queue-limit');
  const feedInterval = durationFlag(flags.feedInterval, 'feed-interval');
  const fundingInterval = durationFlag(flags.fundingInterval, 'funding-interval');
  await onEngine(flags.dataDir, async ({ dir, sup }) => {
    const r = await sup.startEngine(dir, {
      ...(port !== undefined ? { port } : {}),
      ...(flags.testnet ? { testnet: true } : {}),
      ...(seed !== undefined ? { seed } : {}),
      ...(queueLimit !== undefined ? { queueLimit } : {}),
      ...(feedInterval ? { feedInterval } : {}),
      ...(fundingInterval ? { fundingInterval } : {}),
    });
    const h = await r.client.health();
    out(
      flags,
      { ...r.info, started: r.started, phase: h.phase },
      `${r.started ? 'started' : 'already running'}: pid ${r.info.pid} at ${r.info.url}, phase ${h.phase} (${dir})`,
    );
  });
}

/** `recoverctl engine stop`: SIGTERM, SIGKILL after a timeout. */
export async function engineStop(flags: EngineTarget): Promise<void> {
  await onEngine(flags.dataDir, async ({ dir, sup }) => {
    const r = await sup.stopEngine(dir);
    out(flags, r, r.wasRunning ? `stopped pid ${r.pid}${r.forced ? ' (SIGKILL after timeout)' : ''}` : `no engine was running on ${dir}`);
  });
}

/** `recoverctl engine status`: exit 1 when no engine is running. */
export async function engineStatus(flags: EngineTarget): Promise<void> {
  await onEngine(flags.dataDir, async ({ dir, sup }) => {
    const running = await sup.attach(dir);
    if (!running) {
      out(flags, { running: false, dataDir: dir }, `not running (${dir})`);
      throw new StepFailed(`no engine is running on ${dir}`);
    }
    const h = await running.client.health();
    out(
      flags,
      { running: true, ...running.info, health: h },
      `running: pid ${running.info.pid} at ${running.info.url}\nphase ${h.phase}${h.reason ? ` (${h.reason})` : ''}, seq ${h.seq}, margin ${h.modules.margin?.active ?? '?'}, queue depth ${h.queueDepth}/${h.queueLimit}, admission ${h.admissionWeight}%${h.recovery.walDamage ? `\nWAL damage recovered: ${h.recovery.walDamage.reason} at ${h.recovery.walDamage.file}:${h.recovery.walDamage.line}` : ''}`,
    );
  });
}

/** `recoverctl engine halt`. */
export async function engineHalt(flags: EngineHaltFlags): Promise<void> {
  await onEngine(flags.dataDir, async ({ connect }) => {
    const { client } = await connect();
    const r = await client.setPhase('halted', flags.reason ?? 'operator');
    out(flags, r, `halted${r.reason ? `: ${r.reason}` : ''}`);
  });
}

/** `recoverctl engine resume`: walk the phases, checking after each dwell that the engine stayed there. */
export async function engineResume(flags: EngineResumeFlags): Promise<void> {
  const isPhase = (p: string): p is Phase => (PHASES as readonly string[]).includes(p);
  const phases = flags.phases.split(',').map((text): Phase => {
    const p = text.trim();
    if (!isPhase(p)) throw new UsageError(`--phases: unknown phase '${p}' (${PHASES.join(', ')})`);
    return p;
  });
  const dwellMs = parseDuration(flags.dwell);
  if (dwellMs === undefined) throw new UsageError(`--dwell: expected a duration like 500ms, 30s, 2m, got '${flags.dwell}'`);
  await onEngine(flags.dataDir, async ({ connect }) => {
    const { client } = await connect();
    for (const [i, p] of phases.entries()) {
      await client.setPhase(p);
      process.stderr.write(`phase ${p}\n`);
      if (i < phases.length - 1 && dwellMs > 0) {
        process.stderr.write(`  dwell ${formatDuration(dwellMs)}\n`);
        await new Promise((r) => setTimeout(r, dwellMs));
        const h = await client.health();
        if (h.phase !== p) throw new StepFailed(`engine left ${p} during the dwell: now ${h.phase}${h.reason ? ` (${h.reason})` : ''}`);
      }
    }
    const h = await client.health();
    out(flags, { phase: h.phase }, `phase ${h.phase}`);
  });
}

/** `recoverctl engine snapshot`: the path alone on stdout, so `"$(recoverctl engine snapshot)"` is the file. */
export async function engineSnapshot(flags: EngineTarget): Promise<void> {
  await onEngine(flags.dataDir, async ({ connect }) => {
    const { client } = await connect();
    const s = await client.snapshot();
    if (!flags.json) process.stderr.write(`snapshot seq ${s.seq}, ${s.records} records, sha256 ${s.sha256}\n`);
    out(flags, s, s.path);
  });
}

/** `recoverctl engine fault margin-burst|crash`. */
export async function engineFault(kind: FaultKind, flags: EngineFaultFlags): Promise<void> {
  const events = intFlag(flags.events, 'events');
  await onEngine(flags.dataDir, async ({ connect }) => {
    const { client, info } = await connect();
    if (kind === 'crash') {
      const r = await client.fault('crash');
      // The engine answers, then SIGKILLs itself: wait until it is gone so the next command sees it so.
      const deadline = Date.now() + 5_000;
      while (isPidAlive(info.pid) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 25));
      out(flags, { ...r, pid: info.pid }, `crash: engine pid ${info.pid} killed itself without flushing`);
      return;
    }
    const r = await client.fault('margin-burst', events);
    out(
      flags,
      r,
      `margin-burst: ${r.events} events sent, queue depth ${r.queueDepth}; engine ${r.phase}${r.phase === 'halted' && r.reason ? `: ${r.reason}` : ''}`,
    );
  });
}

/** `recoverctl engine deposit`: credit an account, print its new balance in that asset. */
export async function engineDeposit(flags: EngineDepositFlags): Promise<void> {
  const amount = parseDepositAmount(flags.amount);
  await onEngine(flags.dataDir, async ({ connect }) => {
    const { client } = await connect();
    const view = await client.deposit(flags.account, flags.asset, amount);
    out(
      flags,
      { deposited: { asset: flags.asset, amount }, ...view },
      `deposited ${amount} ${flags.asset} to ${flags.account}: balance ${view.balances[flags.asset]} ${flags.asset}`,
    );
  });
}
