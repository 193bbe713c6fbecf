/**
 * One chaos trial (docs/chaos.md): a scratch engine halted by the incident, as `rehearse` makes it;
 * then the playbook run for real by a `recoverctl run` child process, with one fault struck when the
 * journal shows the chosen step starting; then the safety properties judged from the engine, its WAL,
 * the journal and the notification files. Every process it starts is stopped, however it ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadedPlaybook } from '../playbook/load.js';
import type { RunEvent } from '../runner/events.js';
import { JournalFollower } from '../runner/follow.js';
import { JOURNAL_FILE, readJournal } from '../runner/journal.js';
import type { RehearsalInfra } from './rehearsal-infra.js';
import { dataDirLayout } from '../util/data-dir.js';
import { parseDuration } from '../util/duration.js';
import { faultParams, FAULTS, hotfixVars, type TrialSpec } from '../chaos/faults.js';
import { finalNotifyKey, judge, type Observed, type PropertyVerdict, type TrialOutcome, type WalChange } from '../chaos/properties.js';

const BIN = fileURLToPath(new URL('../../bin/recoverctl.js', import.meta.url));
const BAD_HOTFIX = fileURLToPath(new URL('../../playbooks/hotfixes/margin-1.4.4.mjs', import.meta.url));

export interface TrialResult {
  spec: TrialSpec;
  /** Where the fault struck (`during shift, +120 ms`), or null when the run ended before it got there. */
  struck: string | null;
  outcome: TrialOutcome | 'error';
  exitCode: number | null;
  rtoMs: number | null;
  properties: PropertyVerdict[];
  seconds: number;
  runId: string | null;
  /** The scratch folder, kept when a property broke (or with --keep). */
  kept: string | null;
  error: string | null;
}

export interface TrialContext {
  pb: LoadedPlaybook;
  timeScale: number;
  accounts: number;
  /** Where the trial's journal is copied when it ends, so `plan` counts it in the RTO prediction. */
  stateDir: string;
  keep: boolean;
}

type Client = import('../engine-client/client.js').EngineClient;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The journal of the trial's run (once the run has ended), read as the runner reads it: up to its last whole record. */
function journalOf(state: string): { runId: string | null; events: RunEvent[] } {
  let runId: string | null;
  try {
    runId = readdirSync(join(state, 'runs'))[0] ?? null;
  } catch {
    return { runId: null, events: [] };
  }
  if (runId === null) return { runId, events: [] };
  try {
    return { runId, events: readJournal(join(state, 'runs', runId, JOURNAL_FILE)).events };
  } catch {
    return { runId, events: [] };
  }
}

/**
 * The engine that takes writes now: the scratch folder's one unfenced primary (after a promotion, the
 * standby), else the playbook's data dir; it may have restarted on another port.
 */
async function writerNow(scratch: string, dataDir: string): Promise<{ client: Client; pid: number; dataDir: string } | undefined> {
  const { readEngineInfo } = await import('../engine-client/supervisor.js');
  const { EngineClient } = await import('../engine-client/client.js');
  const { primaryIn } = await import('./rehearse.js');
  const dir = (await primaryIn(scratch).catch(() => undefined))?.primary?.dataDir ?? dataDir;
  const info = readEngineInfo(dir);
  if (!info) return undefined;
  return { client: EngineClient.fromTokenFile(info.url, dataDirLayout(dir).token), pid: info.pid, dataDir: dir };
}

/** Resting post-only orders at `rate`/s, away from the mark, to the engine that takes writes; the client order ids it acknowledged. */
function clientLoad(scratch: string, dataDir: string, traders: readonly string[], t: TrialSpec, mark: number): { stop(): Promise<string[]> } {
  const acked: string[] = [];
  let stopped = false;
  const loop = async (): Promise<void> => {
    let n = 0;
    let writer: Awaited<ReturnType<typeof writerNow>>;
    let lookedAt = 0;
    while (!stopped && t.load > 0) {
      await sleep(1000 / t.load);
      n++;
      const buy = n % 2 === 0;
      const id = `chaos-${t.seed}-${n}`;
      try {
        if (!writer || Date.now() - lookedAt > 1_000) {
          writer = await writerNow(scratch, dataDir);
          lookedAt = Date.now();
        }
        if (!writer) continue;
        const order = { account: traders[n % traders.length] as string, symbol: 'ETHUSDT', side: buy ? ('buy' as const) : ('sell' as const) };
        const price = (mark * (buy ? 0.97 : 1.03)).toFixed(2);
        const answer = await writer.client.placeOrder(
          { ...order, type: 'limit', price, qty: '0.01', postOnly: true, clientOrderId: id },
          AbortSignal.timeout(5_000),
        );
        if (answer.status !== 'rejected') acked.push(id);
      } catch {
        // Down, slow or refusing: no acknowledgement, so nothing is owed for this order.
        writer = undefined;
      }
    }
  };
  const running = loop();
  return {
    stop: async () => {
      stopped = true;
      await running;
      return acked;
    },
  };
}

/** The trial's journal, read as it grows by the runner's whole-record rule (JournalFollower), once its run folder exists. */
class JournalTail {
  private follower: JournalFollower | null = null;

  constructor(private readonly state: string) {}

  poll(): readonly RunEvent[] {
    if (this.follower === null) {
      let runId: string | undefined;
      try {
        runId = readdirSync(join(this.state, 'runs'))[0];
      } catch {
        return [];
      }
      if (runId === undefined) return [];
      this.follower = new JournalFollower(join(this.state, 'runs', runId, JOURNAL_FILE));
    }
    this.follower.poll();
    return this.follower.current.events;
  }
}

/** The step running now (started, not yet finished), if any. */
function runningStep(events: readonly RunEvent[]): string | undefined {
  const open = new Set<string>();
  for (const e of events) {
    if (e.event === 'start') open.add(`${e.phase}/${e.step}`);
    if (e.event === 'ok' || e.event === 'fail' || e.event === 'skip') open.delete(`${e.phase}/${e.step}`);
  }
  return [...open].at(-1)?.split('/')[1];
}

/** `recoverctl run` of the playbook against the scratch engine: stdout to `out`, stderr to `err`; resolves to its exit code. */
function runChild(
  args: string[],
  out: string,
  err: string,
  env: NodeJS.ProcessEnv,
  children: Set<ChildProcess>,
): { child: ChildProcess; exited: Promise<number> } {
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const o = createWriteStream(out, { flags: 'a' });
  const e = createWriteStream(err, { flags: 'a' });
  child.stdout?.pipe(o);
  child.stderr?.pipe(e);
  const exited = new Promise<number>((resolve) => {
    child.once('error', () => resolve(127));
    child.once('close', (code, signal) => {
      children.delete(child);
      resolve(code ?? (signal ? 137 : 1));
    });
  });
  return { child, exited };
}

/**
 * Wait for the point's step to start, then the seeded delay, and say which step is running then; null
 * when the run ends first (a fault after the run is not part of it).
 */
async function dueStep(tail: JournalTail, t: TrialSpec, exited: Promise<number>): Promise<string | null> {
  let done = false;
  void exited.then(() => (done = true));
  const ended = (): boolean => done || tail.poll().some((e) => e.event === 'run-end');
  while (!tail.poll().some((e) => e.event === 'start' && e.step === t.point)) {
    if (ended()) return null;
    await sleep(5);
  }
  // The seeded delay into the step, cut short when the step ends first: it then strikes as the next begins.
  const due = Date.now() + faultParams(t.seed).delayMs;
  const over = (): boolean => tail.poll().some((e) => (e.event === 'ok' || e.event === 'fail' || e.event === 'skip') && e.step === t.point);
  while (Date.now() < due && !over()) {
    if (ended()) return null;
    await sleep(5);
  }
  if (ended()) return null;
  const events = tail.poll();
  const finished = events.filter((e) => e.event === 'ok' || e.event === 'fail' || e.event === 'skip').at(-1);
  return runningStep(events) ?? `after ${finished?.step ?? t.point}`;
}

/** Strike the fault now; a one-line note of what was done. */
async function strike(t: TrialSpec, s: { scratch: string; dataDir: string; infra: RehearsalInfra | undefined; child: ChildProcess }): Promise<string> {
  const p = faultParams(t.seed);
  const engine = await writerNow(s.scratch, s.dataDir);
  switch (t.fault) {
    case 'engine-crash':
      if (engine) process.kill(engine.pid, 'SIGKILL');
      return engine ? `engine pid ${engine.pid} killed` : 'no engine to kill';
    case 'runner-crash':
      s.child.kill('SIGKILL');
      return `recoverctl pid ${s.child.pid ?? '?'} killed`;
    case 'burst-after-resume':
      await engine?.client.fault('margin-burst');
      return 'margin burst';
    case 'control-latency':
      await engine?.client.slowDown('control-latency', p.slowMs, p.forMs);
      return `control API +${p.slowMs} ms for ${p.forMs} ms`;
    case 'wal-stall':
      await engine?.client.slowDown('wal-stall', p.stallMs, p.forMs);
      return `fsync +${p.stallMs} ms for ${p.forMs} ms`;
    case 'metrics-down':
      await s.infra?.stopService('prometheus');
      return 'prometheus stopped';
    case 'gateway-refuses': {
      const socket = join(s.infra?.dir ?? '', 'admin.sock');
      renameSync(socket, `${socket}.away`);
      setTimeout(() => {
        try {
          renameSync(`${socket}.away`, socket);
        } catch {
          // the trial ended and its folder is gone
        }
      }, p.forMs).unref();
      return `admin socket gone for ${p.forMs} ms`;
    }
    case 'bad-hotfix':
    case 'smoke-failure':
      return FAULTS[t.fault].does;
  }
}

/** The `--var`s of the trial's run: the rehearsal's own, and for bad-hotfix the artifact swapped with its digest. */
function trialVars(pb: LoadedPlaybook, t: TrialSpec, scratch: string, snapshot: string, infraVars: Record<string, string>): string[] {
  const declared = pb.spec.vars ?? {};
  const vars: Record<string, string> = {};
  for (const [k, v] of Object.entries(infraVars)) if (k in declared) vars[k] = v;
  if ('preOutageSnapshot' in declared) vars.preOutageSnapshot = snapshot;
  if ('outDir' in declared) vars.outDir = join(scratch, 'out');
  const h = hotfixVars(pb);
  if (t.fault === 'bad-hotfix' && h) {
    const bytes = readFileSync(BAD_HOTFIX);
    vars[h.artifact] = BAD_HOTFIX;
    vars[h.sha256] = createHash('sha256').update(bytes).digest('hex');
    const version = /export const version = '([^']+)'/.exec(bytes.toString('utf8'))?.[1];
    if (h.version && version) vars[h.version] = version;
  }
  return Object.entries(vars).flatMap(([k, v]) => ['--var', `${k}=${v}`]);
}

/** The run, the fault struck at its point, and for runner-crash the resume an operator would type. */
async function runWithFault(
  t: TrialSpec,
  c: TrialContext,
  s: { scratch: string; dataDir: string; state: string; vars: string[]; infra: RehearsalInfra | undefined; children: Set<ChildProcess> },
): Promise<{ exitCode: number; struck: string | null; err: string; out: string }> {
  const common = ['--yes', '--time-scale', String(c.timeScale), '--engine-data-dir', s.dataDir, '--state-dir', s.state];
  const tmp = join(s.scratch, 'tmp');
  mkdirSync(tmp, { recursive: true });
  const env = {
    ...process.env,
    CI: 'true',
    NO_COLOR: '1',
    // What the run makes in the temp dir (a testnet) lives in the scratch folder and goes with it.
    TMPDIR: tmp,
    RECOVERCTL_ENGINES_EXIT_WITH: String(process.pid),
    ...(t.fault === 'smoke-failure' ? { RECOVERCTL_CHAOS: 'smoke-failure' } : {}),
  };
  const out = join(s.scratch, 'run.out');
  let err = join(s.scratch, 'run.err');
  const first = runChild(['run', c.pb.path, ...common, ...s.vars], out, err, env, s.children);
  const tail = new JournalTail(s.state);
  const during = await dueStep(tail, t, first.exited);
  let struck: string | null = null;
  if (during !== null) {
    const at = Date.now();
    const note = await strike(t, { scratch: s.scratch, dataDir: s.dataDir, infra: s.infra, child: first.child }).catch(
      (e: unknown) => `strike failed: ${String(e)}`,
    );
    struck = `${during}: ${note}`;
    // The run may have journaled its end in the moment between the last look and the strike: then it was not struck.
    const end = tail.poll().find((e) => e.event === 'run-end');
    if (end && Date.parse(end.ts) <= at) struck = null;
  }
  let exitCode = await first.exited;
  if (t.fault === 'runner-crash' && struck !== null) {
    const end = journalOf(s.state).events.find((e) => e.event === 'run-end');
    if (end?.event === 'run-end') exitCode = end.exitCode;
    else {
      err = join(s.scratch, 'resume.err');
      exitCode = await runChild(['run', c.pb.path, '--resume-last', ...common], out, err, env, s.children).exited;
    }
  }
  return { exitCode, struck, err, out };
}

/** The last line the run's last attempt printed on stderr: for exit 3, what a human must look at. */
function lastLine(err: string): string {
  const lines = (existsSync(err) ? readFileSync(err, 'utf8') : '').split('\n').filter((l) => l.trim());
  return lines.at(-1) ?? '';
}

/** WAL changes after the snapshot, the client order ids it holds, in the data dir of the engine that takes writes. */
async function walFacts(dataDir: string, afterSeq: number): Promise<{ changes: WalChange[]; ids: Set<string> }> {
  const { scanWal } = await import('../engine/wal.js');
  type Body = { op: string; ts: number; phase?: string; reason?: string | null; component?: string; version?: string; req?: { clientOrderId?: string | null } };
  const { records } = scanWal<Body>(dataDirLayout(dataDir).wal, 0, false);
  const changes: WalChange[] = [];
  const ids = new Set<string>();
  for (const { seq, body } of records) {
    if (body.op === 'order' && body.req?.clientOrderId) ids.add(body.req.clientOrderId);
    if (seq <= afterSeq) continue;
    if (body.op === 'phase' && body.phase) changes.push({ ts: body.ts, phase: body.phase, reason: body.reason ?? null });
    if (body.op === 'module' && body.component === 'margin' && body.version) changes.push({ ts: body.ts, margin: body.version });
  }
  return { changes, ids };
}

/** After the run: the engine that takes writes (started again from its data dir if the run left none). */
async function finalEngine(scratch: string, dataDir: string): Promise<{ client: Client; dataDir: string; running: boolean }> {
  const { primaryIn } = await import('./rehearse.js');
  const { primary } = await primaryIn(scratch);
  if (primary) return { ...primary, running: true };
  const { startEngine } = await import('../engine-client/supervisor.js');
  const { client } = await startEngine(dataDir, { exitWithMe: true });
  return { client, dataDir, running: false };
}

/** Does the incident's margin burst halt the engine again? Asked only once everything else was looked at. */
async function haltsUnderBurst(client: Client): Promise<boolean> {
  await client.fault('margin-burst');
  const deadline = Date.now() + 3_000;
  while (Date.now() < deadline) {
    if ((await client.health()).haltCode === 'EXCESS_QUEUE_DEPTH') return true;
    await sleep(50);
  }
  return false;
}

/** The notification keys in the file sinks the journal's notify steps wrote to, one per line. */
function notificationKeys(events: readonly RunEvent[]): string[] {
  const paths = new Set<string>();
  for (const e of events) if (e.event === 'ok' && e.uses === 'notify' && typeof e.outputs.path === 'string') paths.add(e.outputs.path);
  return [...paths].flatMap((p) =>
    existsSync(p)
      ? readFileSync(p, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => l.split('\t')[1] ?? '')
      : [],
  );
}

/** What the trial left, gathered for judging (the burst probe last: it changes the engine). */
async function observe(
  c: TrialContext,
  s: { scratch: string; dataDir: string; state: string; snapshot: { path: string; seq: number }; previousMargin: string; acked: string[] },
  run: { exitCode: number; err: string },
): Promise<Observed> {
  const { runIntegrity } = await import('../integrity/run.js');
  const { notificationKey } = await import('../steps/notify-send.js');
  const final = await finalEngine(s.scratch, s.dataDir);
  const h = await final.client.health();
  const integrity = await runIntegrity({
    snapshot: s.snapshot.path,
    target: { engine: final.client.url, tokenFile: dataDirLayout(final.dataDir).token },
    wal: dataDirLayout(final.dataDir).wal,
  });
  const wal = await walFacts(final.dataDir, s.snapshot.seq);
  const { events } = journalOf(s.state);
  const shift = c.pb.steps.find((st) => st.uses === 'traffic.shift');
  const interval = parseDuration(String((shift?.with as { interval?: unknown } | undefined)?.interval ?? '5s'));
  // The final status is judged where it can be read back: a notify step to a file.
  const lastNotify = (steps: LoadedPlaybook['steps']) => {
    const last = steps.filter((st) => st.uses === 'notify').at(-1);
    return last && (last.with as { channel?: unknown } | undefined)?.channel === 'file' ? last.id : undefined;
  };
  // An engine the run left down is judged as it comes back: trading open on a bad module after a restart counts too.
  const open = h.phase === 'open';
  const summary = Object.entries(integrity.counts)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${n} ${k}`)
    .join(', ');
  return {
    exitCode: run.exitCode,
    lastLine: lastLine(run.err),
    engine: { running: final.running, phase: h.phase, margin: h.modules.margin?.active ?? null },
    previousMargin: s.previousMargin,
    integrity: { clean: integrity.clean, missing: integrity.counts.missing, summary: summary || 'clean' },
    acked: s.acked,
    inWal: wal.ids,
    wal: wal.changes,
    gateIntervalMs: shift && interval !== undefined ? Math.round(interval * c.timeScale) : null,
    endedAt: Date.now(),
    journal: events,
    notificationKeys: notificationKeys(events),
    finalKey: finalNotifyKey(events, { main: lastNotify(c.pb.steps), rollback: lastNotify(c.pb.rollback) }, notificationKey),
    haltsUnderLoad: open ? await haltsUnderBurst(final.client) : null,
  };
}

/** The scratch engine halted by the incident, as a rehearsal makes it. */
async function incidentIn(c: TrialContext, t: TrialSpec, dataDir: string) {
  const { startEngine } = await import('../engine-client/supervisor.js');
  const { seedTraders, reproduceIncident } = await import('./rehearse.js');
  const { client, info } = await startEngine(dataDir, { seed: t.seed, feedInterval: '100ms', fundingInterval: '1s', exitWithMe: true });
  const traders = await seedTraders(client, c.accounts);
  const snapshot = await reproduceIncident(
    client,
    info.url,
    dataDir,
    traders,
    t.seed,
    () => undefined,
    () => undefined,
  );
  const h = await client.health();
  return { client, url: info.url, traders, snapshot, previousMargin: h.modules.margin?.active ?? '?', mark: Number(h.marks.ETHUSDT) };
}

/** A run whose end could not be looked at (the engine would not come back, integrity could not be read): P3 broken, the rest not judged. */
function uninspectable(result: TrialResult, message: string): void {
  result.outcome = 'unsafe';
  const notJudged = (id: 'P1' | 'P2' | 'P4') => ({ id, ok: false, message: `not judged: ${message}` });
  result.properties = [
    notJudged('P1'),
    notJudged('P2'),
    { id: 'P3', ok: false, message: `the end of the run could not be looked at: ${message}` },
    notJudged('P4'),
  ];
}

/** One trial, from a fresh scratch engine to its judged properties. Never throws for what the trial found. */
export async function runTrial(t: TrialSpec, c: TrialContext): Promise<TrialResult> {
  const started = Date.now();
  const scratch = mkdtempSync(join(tmpdir(), 'recoverctl-chaos-'));
  const dataDir = join(scratch, 'engine');
  const state = join(scratch, 'state');
  mkdirSync(state);
  const result: TrialResult = {
    spec: t,
    struck: null,
    outcome: 'error',
    exitCode: null,
    rtoMs: null,
    properties: [],
    seconds: 0,
    runId: null,
    kept: null,
    error: null,
  };
  let infra: RehearsalInfra | undefined;
  let load: { stop(): Promise<string[]> } | undefined;
  const children = new Set<ChildProcess>();
  let ran = false;
  try {
    const inc = await incidentIn(c, t, dataDir);
    const { infraFor } = await import('./rehearse.js');
    infra = await infraFor(c.pb, scratch, inc.url, dataDir, () => undefined);
    load = clientLoad(scratch, dataDir, inc.traders, t, inc.mark);
    const vars = trialVars(c.pb, t, scratch, inc.snapshot.path, infra?.vars ?? {});
    const run = await runWithFault(t, c, { scratch, dataDir, state, vars, infra, children });
    ran = true;
    const acked = await load.stop();
    load = undefined;
    result.struck = run.struck;
    result.exitCode = run.exitCode;
    result.runId = journalOf(state).runId;
    const observed = await observe(c, { scratch, dataDir, state, snapshot: inc.snapshot, previousMargin: inc.previousMargin, acked }, run);
    const judged = judge(observed);
    result.outcome = judged.outcome;
    result.properties = judged.properties;
    if (result.runId) {
      const { recoveryOf } = await import('./rehearse.js');
      const runDir = join(state, 'runs', result.runId);
      result.rtoMs = (await recoveryOf(runDir)).rtoMs;
      cpSync(runDir, join(c.stateDir, 'runs', result.runId), { recursive: true });
    }
  } catch (e) {
    const message = (e as Error).message.split('\n')[0] ?? String(e);
    // After the run, what cannot be looked at is a finding about the run (P3), with its reproducer.
    if (ran) uninspectable(result, message);
    else result.error = message;
  } finally {
    for (const child of children) child.kill('SIGKILL');
    await load?.stop();
    await infra?.stop();
    const { stopEngine } = await import('../engine-client/supervisor.js');
    const { engineDirsIn } = await import('./rehearse.js');
    for (const dir of engineDirsIn(scratch)) await stopEngine(dir).catch(() => undefined);
    const broken = result.error !== null || result.properties.some((p) => !p.ok);
    if (c.keep || broken) result.kept = scratch;
    else rmSync(scratch, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    result.seconds = Math.round((Date.now() - started) / 100) / 10;
  }
  return result;
}
