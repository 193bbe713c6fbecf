import { resolve } from 'node:path';
import { InputError, StepFailed, UsageError } from '../errors.js';
import { formatDuration, parseDuration } from '../playbook/duration.js';

export interface EngineFlags {
  dataDir: string;
  json?: boolean;
  port?: string;
  testnet?: boolean;
  seed?: string;
  feedInterval?: string;
  fundingInterval?: string;
  queueLimit?: string;
  reason?: string;
  phases?: string;
  dwell?: string;
  events?: string;
}

function out(flags: EngineFlags, data: Record<string, unknown>, human: string): void {
  process.stdout.write(flags.json ? `${JSON.stringify(data)}\n` : `${human}\n`);
}

function intFlag(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name}: expected a whole number, got '${v}'`);
  return n;
}

function durationFlag(v: string | undefined, name: string): string | undefined {
  if (v === undefined) return undefined;
  if (parseDuration(v) === undefined) throw new UsageError(`--${name}: expected a duration like 500ms, 30s, 8h, got '${v}'`);
  return v;
}

const PHASES = ['halted', 'cancel-only', 'post-only', 'open'] as const;

/** `recoverctl engine start|stop|status|halt|resume|snapshot|fault`. */
export async function engineCommand(action: string, arg: string | undefined, flags: EngineFlags): Promise<void> {
  const sup = await import('../engine-client/supervisor.js');
  const { EngineUnreachable, EngineHttpError } = await import('../engine-client/client.js');
  const dir = resolve(flags.dataDir);
  const connect = async () => {
    const running = await sup.attach(dir);
    if (!running) throw new StepFailed(`no engine is running on ${dir}`);
    return running.client;
  };
  try {
    switch (action) {
      case 'start': {
        const port = intFlag(flags.port, 'port');
        if (port !== undefined && port > 65535) throw new UsageError('--port must be 0..65535');
        const seed = intFlag(flags.seed, 'seed');
        const queueLimit = intFlag(flags.queueLimit, 'queue-limit');
        const feedInterval = durationFlag(flags.feedInterval, 'feed-interval');
        const fundingInterval = durationFlag(flags.fundingInterval, 'funding-interval');
        const r = await sup.startEngine(dir, {
          ...(port !== undefined ? { port } : {}),
          ...(flags.testnet ? { testnet: true } : {}),
          ...(seed !== undefined ? { seed } : {}),
          ...(queueLimit !== undefined ? { queueLimit } : {}),
          ...(feedInterval ? { feedInterval } : {}),
          ...(fundingInterval ? { fundingInterval } : {}),
        });
        const h = await r.client.health();
        out(flags, { ...r.info, started: r.started, phase: h.phase }, `${r.started ? 'started' : 'already running'}: pid ${r.info.pid} at ${r.info.url}, phase ${h.phase} (${dir})`);
        return;
      }
      case 'stop': {
        const r = await sup.stopEngine(dir);
        out(flags, r, r.wasRunning ? `stopped pid ${r.pid}${r.forced ? ' (SIGKILL after timeout)' : ''}` : `no engine was running on ${dir}`);
        return;
      }
      case 'status': {
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
        return;
      }
      case 'halt': {
        const c = await connect();
        const r = await c.setPhase('halted', flags.reason ?? 'operator');
        out(flags, r, `halted${r.reason ? `: ${r.reason}` : ''}`);
        return;
      }
      case 'resume': {
        const phases = (flags.phases ?? 'cancel-only,post-only,open').split(',').map((p) => p.trim());
        for (const p of phases) if (!(PHASES as readonly string[]).includes(p)) throw new UsageError(`--phases: unknown phase '${p}' (${PHASES.join(', ')})`);
        const dwellMs = parseDuration(flags.dwell ?? '0s');
        if (dwellMs === undefined) throw new UsageError(`--dwell: expected a duration, got '${flags.dwell ?? ''}'`);
        const c = await connect();
        for (const [i, p] of phases.entries()) {
          await c.setPhase(p as (typeof PHASES)[number]);
          process.stderr.write(`phase ${p}\n`);
          if (i < phases.length - 1 && dwellMs > 0) {
            process.stderr.write(`  dwell ${formatDuration(dwellMs)}\n`);
            await new Promise((r) => setTimeout(r, dwellMs));
            const h = await c.health();
            if (h.phase !== p) throw new StepFailed(`engine left ${p} during the dwell: now ${h.phase}${h.reason ? ` (${h.reason})` : ''}`);
          }
        }
        const h = await c.health();
        out(flags, { phase: h.phase }, `phase ${h.phase}`);
        return;
      }
      case 'snapshot': {
        const c = await connect();
        const s = await c.snapshot();
        out(flags, s, `${s.path} (seq ${s.seq}, ${s.records} records, sha256 ${s.sha256})`);
        return;
      }
      case 'fault': {
        if (arg !== 'margin-burst' && arg !== 'crash') throw new UsageError(`engine fault: kind must be margin-burst or crash, got '${arg ?? ''}'`);
        const c = await connect();
        const events = intFlag(flags.events, 'events');
        const r = await c.fault(arg, events);
        out(flags, r, JSON.stringify(r));
        return;
      }
      default:
        throw new UsageError(`engine ${action}: unknown action (start, stop, status, halt, resume, snapshot, fault)`);
    }
  } catch (e) {
    if (e instanceof sup.EngineStartFailed) throw new InputError(`engine on ${dir} would not start: ${e.message}`);
    if (e instanceof EngineUnreachable) throw new StepFailed(e.message);
    if (e instanceof EngineHttpError) throw new StepFailed(`engine refused: ${e.message}`);
    throw e;
  }
}
