import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { ExitCode, InputError, Interrupted, PlaybookError, PreflightFailed, RecoverctlError, RollbackFailed, StepFailed, UsageError } from '../errors.js';
import { expandPlaybookArgs } from '../playbook/files.js';
import { loadPlaybook, type LoadedPlaybook } from '../playbook/load.js';
import { EXIT_CODE_OF, type RunOutcome } from '../runner/events.js';
import type { RunResult } from '../runner/execute.js';
import { preflight } from '../runner/preflight.js';
import { buildRedactor, resolveVars } from '../runner/scope.js';
import type { StepCheck } from '../steps/types.js';
import { rehearsalApprover } from '../ui/approver.js';
import type { GitHubAnnotations } from '../ui/annotations.js';
import type { JunitRun, RehearsalVerdict } from '../ui/junit.js';
import type { RunRecorder } from '../ui/recorder.js';
import { firstLine } from '../util/text.js';
import { executeRun, writeJunit } from './run.js';
import type { RehearsalInfra } from './rehearsal-infra.js';
import { dataDirLayout } from '../util/data-dir.js';
import { terminateOnExit } from '../util/pid.js';

/** The vars a rehearsal sets itself when the playbook declares them. */
const REHEARSAL_VARS = ['preOutageSnapshot', 'outDir', 'gatewaySocket', 'gatewayUrl', 'prometheusUrl'] as const;

/** One rehearsal's line in the summary (the table, and the `rehearse-summary` event). */
export interface RehearsalRow {
  file: string;
  playbook: string | null;
  expected: string | null;
  outcome: string;
  ok: boolean;
  reason: string | null;
  seconds: number;
  run: string | null;
  /** The exit code this row alone would give. */
  exitCode: number;
  /** The recovery path (in-place, blue-green), the RTO from detection and the time trading was closed; null when no run. */
  path?: string | null;
  rtoSeconds?: number | null;
  closedSeconds?: number | null;
}

/** Verdict of a rehearsal: its outcome against `rehearsal.expectOutcome`, and the outcome checks. */
export function rehearsalVerdict(
  expected: string,
  result: Pick<RunResult, 'outcome' | 'failedStep' | 'error'>,
  checks: readonly StepCheck[],
): RehearsalVerdict {
  const failedChecks = checks.filter((c) => !c.ok);
  if (result.outcome !== expected) {
    const why = result.failedStep ? ` (step ${result.failedStep} failed: ${firstLine(result.error ?? 'failed')})` : '';
    return { expected, outcome: result.outcome, ok: false, reason: `expected ${expected}, got ${result.outcome}${why}` };
  }
  if (failedChecks.length > 0) {
    return {
      expected,
      outcome: result.outcome,
      ok: false,
      reason: `outcome checks failed: ${failedChecks.map((c) => `${c.name}${c.message ? ` (${c.message})` : ''}`).join('; ')}`,
    };
  }
  return { expected, outcome: result.outcome, ok: true, reason: undefined };
}

/** The exit code of a verdict: 0 when the rehearsal ended as expected. */
function verdictExitCode(v: RehearsalVerdict): number {
  if (v.ok) return ExitCode.ok;
  // A run that succeeded against an expected failure is still a failed rehearsal.
  const outcome = Object.keys(EXIT_CODE_OF).find((o): o is RunOutcome => o === v.outcome);
  return outcome === undefined || outcome === 'success' ? ExitCode.failed : EXIT_CODE_OF[outcome];
}

function summaryEvent(rows: readonly RehearsalRow[], exitCode: number): string {
  return `${JSON.stringify({ ts: new Date().toISOString(), run: null, step: null, event: 'rehearse-summary', ok: exitCode === 0, exitCode, results: rows })}\n`;
}

/** Under GitHub Actions, an error that stopped a rehearsal as annotations: located where it can be. */
async function annotateError(e: RecoverctlError, pb: LoadedPlaybook): Promise<void> {
  if (process.env.GITHUB_ACTIONS !== 'true') return;
  const { errorAnnotation } = await import('../ui/annotations.js');
  if (e instanceof PreflightFailed) {
    for (const p of e.problems) process.stderr.write(errorAnnotation(p.message, p.at));
    return;
  }
  process.stderr.write(errorAnnotation(e.lines()[0] ?? e.message, { file: pb.file, line: 1, col: 1, title: `rehearsal of ${pb.spec.metadata.name}` }));
}

export const MIN_TIME_SCALE = 0.005;

export interface RehearseFlags {
  seed?: string;
  accounts?: string;
  timeScale?: string;
  noAutoApprove?: boolean;
  autoApprove?: boolean;
  keep?: boolean;
  json?: boolean;
  junit?: string;
  stateDir: string;
}

function log(json: boolean, text: string): void {
  process.stderr.write(`${new Date().toISOString()} rehearse: ${text}\n`);
  void json;
}

export interface Rehearsal {
  result: RunResult;
  recorder: RunRecorder;
  verdict: RehearsalVerdict;
  runId: string;
  /** What the incident report says of the run: its path, RTO and time with trading closed. */
  recovery: {
    path: 'in-place' | 'blue-green';
    rtoMs: number;
    closedMs: number | null;
    objective: string | null;
    line: string;
    prediction: import('../runner/predict.js').RtoPrediction | null;
    /** The run itself, first step to its end (what a prediction from step durations compares with); null when it never ended. */
    runMs: number | null;
  };
}

/** The run's path, RTO and time with trading closed, as its incident report computes them. */
export async function recoveryOf(runDir: string): Promise<Rehearsal['recovery']> {
  const { JOURNAL_FILE, readJournal } = await import('../runner/journal.js');
  const { buildIncident, detectionOf, pathLine } = await import('../report/incident.js');
  const { events } = readJournal(join(runDir, JOURNAL_FILE));
  const r = buildIncident(events, detectionOf(events, { at: null, reason: null }), new Date());
  return {
    path: r.path.kind,
    rtoMs: r.rto.actualMs,
    closedMs: r.path.tradingClosedMs,
    objective: r.rto.objective,
    line: pathLine(r.path),
    prediction: r.rto.prediction,
    runMs: events.reduce<number | null>((ms, e) => (e.event === 'run-end' ? e.durationMs : ms), null),
  };
}

/** The prediction the run started with against what it measured: `RTO predicted p50 …, p90 … for this rehearsal; actual …`. */
export async function predictedVsActual(recovery: Rehearsal['recovery']): Promise<string> {
  const { formatDuration: d } = await import('../util/duration.js');
  const { predictionLines, asRunText } = await import('../runner/predict.js');
  const p = recovery.prediction;
  if (!p) return `RTO prediction: none made; actual ${d(recovery.rtoMs)}`;
  if (p.status === 'none') return `${predictionLines(p)[0] ?? 'RTO prediction: none'}; actual ${d(recovery.rtoMs)}`;
  const at = p.asRun ?? { timeScale: 1, autoApproved: false, p50Ms: p.p50Ms, p90Ms: p.p90Ms, p99Ms: p.p99Ms };
  // The prediction is of the steps; the RTO also counts the time from detection to the run's start.
  const actual = recovery.runMs ?? recovery.rtoMs;
  const where = at.p90Ms >= actual ? (at.p50Ms >= actual ? 'within p50' : 'within p90') : 'beyond p90';
  const settings = asRunText(at);
  const also = recovery.runMs === null ? '' : ` (RTO ${d(recovery.rtoMs)} from detection)`;
  return `RTO predicted p50 ${d(at.p50Ms)}, p90 ${d(at.p90Ms)}${settings ? ` (${settings})` : ''} from ${p.runs} earlier run${p.runs === 1 ? '' : 's'}${p.fewSamples ? ', few samples' : ''}; actual ${d(actual)} for the run, ${where}${also}`;
}

/** `recoverctl rehearse <playbook>`: exit 0 when it ends as `rehearsal.expectOutcome` says. */
export async function rehearseCommand(file: string, flags: RehearseFlags): Promise<void> {
  const started = Date.now();
  let pb: LoadedPlaybook | undefined;
  let r: Rehearsal;
  try {
    pb = await loadPlaybook(file);
    r = await rehearsePlaybook(pb, flags);
  } catch (e) {
    // --json always ends with the summary, also when the rehearsal could not be made.
    if (flags.json && e instanceof RecoverctlError && !(e instanceof Interrupted)) {
      const row: RehearsalRow = {
        file,
        playbook: pb?.spec.metadata.name ?? null,
        expected: pb ? (pb.spec.rehearsal?.expectOutcome ?? 'success') : null,
        outcome: e instanceof PlaybookError ? 'invalid' : 'error',
        ok: false,
        reason: e.lines()[0] ?? e.message,
        seconds: Math.round(((Date.now() - started) / 1000) * 10) / 10,
        run: null,
        exitCode: e.exitCode,
      };
      process.stdout.write(summaryEvent([row], e.exitCode));
    }
    throw e;
  }
  if (flags.junit) {
    const { junitXml } = await import('../ui/junit.js');
    writeJunit(flags.junit, junitXml([{ recorder: r.recorder, verdict: r.verdict }]));
  }
  const code = verdictExitCode(r.verdict);
  const row = rowOf(file, pb, r, (Date.now() - started) / 1000);
  if (flags.json) process.stdout.write(summaryEvent([row], code));
  if (r.verdict.ok) {
    process.stderr.write(
      `rehearsal of ${pb.spec.metadata.name}: ended ${r.verdict.outcome}, as expected${r.verdict.expected !== 'success' ? ' (rehearsal.expectOutcome)' : ''}\n`,
    );
    return;
  }
  const message = `rehearsal of ${pb.spec.metadata.name}: ${r.verdict.reason ?? 'not as expected'}`;
  if (code === ExitCode.interrupted) throw new Interrupted(message);
  if (code === ExitCode.humanNeeded) throw new RollbackFailed(message);
  throw new StepFailed(message);
}

function rowOf(file: string, pb: LoadedPlaybook, r: Rehearsal, seconds: number): RehearsalRow {
  return {
    file,
    playbook: pb.spec.metadata.name,
    expected: r.verdict.expected,
    outcome: r.verdict.outcome,
    ok: r.verdict.ok,
    reason: r.verdict.reason ?? null,
    seconds: Math.round(seconds * 10) / 10,
    run: r.runId,
    exitCode: verdictExitCode(r.verdict),
    path: r.recovery.path,
    rtoSeconds: Math.round(r.recovery.rtoMs / 100) / 10,
    closedSeconds: r.recovery.closedMs === null ? null : Math.round(r.recovery.closedMs / 100) / 10,
  };
}

type Client = import('../engine-client/client.js').EngineClient;
type Snapshot = Awaited<ReturnType<Client['snapshot']>>;

/** Seed, accounts and time scale of a rehearsal, checked. */
export function rehearsalSettings(pb: LoadedPlaybook, flags: RehearseFlags): { seed: number; accounts: number; timeScale: number } {
  const seed = flags.seed === undefined ? 2026 : Number(flags.seed);
  const accounts = flags.accounts === undefined ? 40 : Number(flags.accounts);
  if (!Number.isInteger(seed) || seed < 0) throw new UsageError(`--seed: expected a whole number, got '${flags.seed ?? ''}'`);
  if (!Number.isInteger(accounts) || accounts < 2 || accounts > 5_000) throw new UsageError(`--accounts: expected 2..5000, got '${flags.accounts ?? ''}'`);
  const timeScale = flags.timeScale === undefined ? (pb.spec.rehearsal?.timeScale ?? 1) : Number(flags.timeScale);
  // Below this, bakes are too short for the gates to see what traffic does (the load rate is not scaled).
  if (!Number.isFinite(timeScale) || timeScale < MIN_TIME_SCALE || timeScale > 1) {
    throw new UsageError(`--time-scale: expected a number in [${MIN_TIME_SCALE}, 1], got '${flags.timeScale ?? timeScale}'`);
  }
  if (!pb.spec.engine) throw new UsageError(`${pb.file} has no engine: section; there is nothing to rehearse against (use run)`);
  return { seed, accounts, timeScale };
}

/** Before the scratch engine: what the playbook needs and the rehearsal does not provide. */
export async function rehearsalPreflight(pb: LoadedPlaybook, flags: RehearseFlags, autoApprove: boolean, known: Record<string, string> = {}): Promise<void> {
  const declared = pb.spec.vars ?? {};
  const vars = resolveVars(pb, known, process.env, { allowMissing: true });
  const checks = await preflight({
    pb,
    vars,
    redactor: buildRedactor(pb, vars),
    pendingVars: new Set<string>(REHEARSAL_VARS.filter((v) => v in declared && !(v in known))),
    env: process.env,
    engine: { dataDir: join(tmpdir(), 'recoverctl-rehearsal-preflight') },
    approval: autoApprove ? 'rehearsal' : process.stdin.isTTY ? 'tty' : 'none',
    checkEngine: false,
    stateDir: resolve(flags.stateDir),
  });
  const problems = checks.filter((k) => !k.ok);
  if (problems.length > 0) throw new PreflightFailed(problems.map((k) => ({ message: k.message, ...(k.at ? { at: k.at } : {}) })));
}

/** Funded traders with positions (neighbours trade with each other) and resting orders on both sides. */
export async function seedTraders(client: Client, accounts: number): Promise<string[]> {
  const { traderAccounts } = await import('../engine-client/load.js');
  const traders = traderAccounts(accounts);
  for (const [i, a] of traders.entries()) {
    await client.deposit(a, 'USDT', '1000000');
    if (i % 3 === 0) await client.deposit(a, 'USDC', '250000');
  }
  await client.setPhase('open');
  const health = await client.health();
  const btc = Number(health.marks.BTCUSDT);
  const eth = Number(health.marks.ETHUSDT);
  for (let i = 0; i + 1 < traders.length; i += 2) {
    const qty = (0.01 * (1 + (i % 5))).toFixed(3);
    await client.placeOrder({ account: traders[i] as string, symbol: 'BTCUSDT', side: 'sell', type: 'limit', price: btc.toFixed(1), qty });
    await client.placeOrder({ account: traders[i + 1] as string, symbol: 'BTCUSDT', side: 'buy', type: 'limit', price: (btc + 5).toFixed(1), qty });
  }
  for (const [i, a] of traders.entries()) {
    await client.placeOrder({ account: a, symbol: 'ETHUSDT', side: 'buy', type: 'limit', price: (eth - 5 - i * 0.05).toFixed(2), qty: '0.1', postOnly: true });
    await client.placeOrder({ account: a, symbol: 'BTCUSDC', side: 'sell', type: 'limit', price: (btc + 50 + i).toFixed(1), qty: '0.01', postOnly: true });
  }
  return traders;
}

/**
 * The incident: a pre-outage snapshot, trading after it (the WAL must explain it), then the margin burst
 * until the engine halts itself with EXCESS_QUEUE_DEPTH, then the time it takes to page someone.
 */
export async function reproduceIncident(
  client: Client,
  url: string,
  dataDir: string,
  traders: string[],
  seed: number,
  say: (text: string) => void,
  checkSetup: () => void,
): Promise<Snapshot> {
  const { LoadGenerator } = await import('../engine-client/load.js');
  const { readFileSync } = await import('node:fs');
  const snap = await client.snapshot();
  say(`pre-outage snapshot ${snap.path} (seq ${snap.seq}, ${snap.records} records)`);
  const token = readFileSync(dataDirLayout(dataDir).token, 'utf8').trim();
  const gen = new LoadGenerator({ url, token, rate: 200, accounts: traders, seed, instruments: await client.instruments() });
  gen.start();
  await new Promise((r) => setTimeout(r, 500));
  await gen.stop();
  await client.fault('margin-burst');
  const deadline = Date.now() + 10_000;
  let halted = await client.health();
  while (halted.haltCode !== 'EXCESS_QUEUE_DEPTH' && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    halted = await client.health();
  }
  if (halted.haltCode !== 'EXCESS_QUEUE_DEPTH') {
    throw new InputError(`the injected margin burst did not halt the scratch engine (phase ${halted.phase}, reason ${halted.reason ?? 'none'})`);
  }
  say(`incident reproduced: ${halted.reason}`);
  // Paging someone takes time: funding intervals end while trading is halted, for the playbook to settle.
  await new Promise((r) => setTimeout(r, 2_500));
  checkSetup();
  return snap;
}

/**
 * Take nothing for granted: look at the engine and the files the run says it made, checking what the
 * playbook's own steps promise. Returns the checks and the HTML report, if one was written.
 */
async function outcomeChecks(
  pb: LoadedPlaybook,
  runResult: RunResult,
  dir: string,
  scratch: string,
  snap: Snapshot,
): Promise<{ checks: StepCheck[]; incidentHtml: string | undefined }> {
  const checks: StepCheck[] = [];
  let incidentHtml: string | undefined;
  const { primary: found, check } = await primaryIn(scratch);
  if (check) checks.push(check);
  if (!found) return { checks, incidentHtml };
  const { client, dataDir } = found;
  const url = client.url;
  const h = await client.health();
  const { JOURNAL_FILE, readJournal } = await import('../runner/journal.js');
  const events = readJournal(join(dir, JOURNAL_FILE)).events;
  const okOutputs = (uses: string) =>
    events.filter((e) => e.event === 'ok' && e.uses === uses && e.phase === 'main').map((e) => (e as { outputs: Record<string, unknown> }).outputs);
  const has = (uses: string) => pb.steps.some((st) => st.uses === uses);
  const { runIntegrity } = await import('../integrity/run.js');
  const integrity = await runIntegrity({
    snapshot: snap.path,
    target: { engine: url, tokenFile: dataDirLayout(dataDir).token },
    wal: dataDirLayout(dataDir).wal,
  });
  checks.push({
    name: 'nothing lost: integrity clean against the pre-outage snapshot and the WAL',
    ok: integrity.clean,
    ...(integrity.clean ? {} : { message: JSON.stringify(integrity.counts) }),
  });
  checks.push({ name: 'ledger and funding balance to the unit', ok: Object.values(h.ledger).every((v) => v === '0'), message: JSON.stringify(h.ledger) });
  if (runResult.outcome === 'success') {
    if (has('engine.resume'))
      checks.push({ name: 'engine open after the recovery', ok: h.phase === 'open', message: `${h.phase}${h.reason ? `: ${h.reason}` : ''}` });
    // A recovery that reopened but takes no orders (admission left at 0 behind a gateway) is not one.
    const shifted = okOutputs('traffic.shift').at(-1);
    if (shifted && typeof shifted.sent === 'number' && shifted.sent > 0)
      checks.push({
        name: 'the recovered engine accepted orders under the traffic shift',
        ok: typeof shifted.accepted === 'number' && shifted.accepted > 0,
        message: `${String(shifted.accepted)} of ${shifted.sent} accepted, ${String(shifted.retryLater)} retry later`,
      });
    const deployed = okOutputs('hotfix.deploy').at(-1);
    if (deployed)
      checks.push({
        name: 'the deployed hotfix is active',
        ok: h.modules.margin?.active === deployed.version,
        message: `margin ${h.modules.margin?.active ?? '?'}, deployed ${String(deployed.version)}`,
      });
  } else {
    checks.push({ name: 'engine halted after the rollback', ok: h.phase === 'halted', message: `${h.phase}, margin ${h.modules.margin?.active ?? '?'}` });
  }
  for (const r of okOutputs('report.incident')) {
    const files = ['md', 'json', 'html'].map((f) => r[f]).filter((f): f is string => typeof f === 'string');
    checks.push({ name: 'incident report written', ok: files.length > 0 && files.every((f) => existsSync(f)), message: files.join(', ') });
    if (typeof r.html === 'string') incidentHtml = r.html;
  }
  return { checks, incidentHtml };
}

/** The data dirs in the scratch folder that have (or had) an engine: the scratch engine, a standby. */
export function engineDirsIn(scratch: string): string[] {
  let names: string[] = [];
  try {
    names = readdirSync(scratch);
  } catch {
    return [];
  }
  return names.map((n) => join(scratch, n)).filter((d) => existsSync(dataDirLayout(d).token));
}

/**
 * The engine that takes writes at the end: exactly one of the scratch folder's running engines may be
 * an unfenced primary (with a standby, a check says so); none is a finding of its own.
 */
export async function primaryIn(scratch: string): Promise<{ primary: { client: Client; dataDir: string } | undefined; check: StepCheck | undefined }> {
  const { connect } = await import('../engine-client/supervisor.js');
  const primaries: { client: Client; dataDir: string }[] = [];
  const seen: string[] = [];
  for (const dataDir of engineDirsIn(scratch)) {
    const client = await connect({ dataDir }).catch(() => undefined);
    const h = client ? await client.health().catch(() => undefined) : undefined;
    if (!client || !h) continue;
    seen.push(`${basename(dataDir)}: ${h.role ?? 'primary'}${h.fenced ? ' (fenced)' : ''}`);
    if (h.role !== 'follower' && !h.fenced) primaries.push({ client, dataDir });
  }
  const several = seen.length > 1 || primaries.length !== 1;
  const check = several ? { name: 'exactly one engine takes writes', ok: primaries.length === 1, message: seen.join(', ') || 'no engine running' } : undefined;
  return { primary: primaries.length === 1 ? primaries[0] : undefined, check };
}

/** Annotations follow the verdict: an expected failure is a notice, a wrong outcome an error on the expectOutcome line. */
async function annotateVerdict(pb: LoadedPlaybook, v: RehearsalVerdict, annotations: GitHubAnnotations | undefined): Promise<void> {
  annotations?.flush(!v.ok);
  if (v.ok || process.env.GITHUB_ACTIONS !== 'true') return;
  const { errorAnnotation } = await import('../ui/annotations.js');
  const at = pb.spec.rehearsal?.expectOutcome ? pb.locate(['rehearsal', 'expectOutcome']) : { line: 1, col: 1 };
  process.stderr.write(errorAnnotation(v.reason ?? 'not as expected', { file: pb.file, ...at, title: `rehearsal of ${pb.spec.metadata.name}` }));
}

/** Ctrl-C during set-up stops the rehearsal at the next `check()`; set-up ends with `done()`. */
function setupInterrupts(): { check: () => void; done: () => void } {
  const setupAbort = new AbortController();
  const onSetupSignal = (): void => setupAbort.abort();
  process.once('SIGINT', onSetupSignal);
  process.once('SIGTERM', onSetupSignal);
  return {
    check: () => {
      if (setupAbort.signal.aborted) throw new Interrupted('rehearsal interrupted while setting up; the scratch engine is stopped');
    },
    done: () => {
      process.off('SIGINT', onSetupSignal);
      process.off('SIGTERM', onSetupSignal);
    },
  };
}

/**
 * A full rehearsal: a scratch production engine with seeded accounts, positions and open orders on
 * margin 1.4.2, traffic, a pre-outage snapshot, the margin burst until the engine halts itself with
 * EXCESS_QUEUE_DEPTH; then the playbook for real against it, checks of the outcome, and the verdict.
 * Throws only when the rehearsal itself cannot be made (bad flags, preflight, an engine that won't start).
 */
export async function rehearsePlaybook(pb: LoadedPlaybook, flags: RehearseFlags): Promise<Rehearsal> {
  const { seed, accounts, timeScale } = rehearsalSettings(pb, flags);
  const autoApprove = !(flags.noAutoApprove || flags.autoApprove === false);
  await rehearsalPreflight(pb, flags, autoApprove);
  const { startEngine, stopEngine, EngineStartFailed } = await import('../engine-client/supervisor.js');
  const { EngineUnreachable, EngineHttpError } = await import('../engine-client/client.js');
  const scratch = mkdtempSync(join(tmpdir(), 'recoverctl-rehearsal-'));
  const dataDir = join(scratch, 'engine');
  process.env.RECOVERCTL_ENGINES_EXIT_WITH = String(process.pid);
  // Whatever ends this process (a second Ctrl-C, a closed pipe), the scratch engine must not outlive it.
  const scratchEngine = terminateOnExit();
  const onPipeError = (e: NodeJS.ErrnoException): void => {
    if (e.code !== 'EPIPE') throw e;
  };
  process.stderr.on('error', onPipeError);
  const setup = setupInterrupts();
  let infra: RehearsalInfra | undefined;
  try {
    log(flags.json ?? false, `scratch engine in ${dataDir} (seed ${seed}, ${accounts} accounts, time scale ${timeScale})`);
    const { client, info } = await startEngine(dataDir, { seed, feedInterval: '100ms', fundingInterval: '1s', exitWithMe: true });
    scratchEngine.watch(info.pid);
    setup.check();
    const traders = await seedTraders(client, accounts);
    setup.check();
    const snap = await reproduceIncident(client, info.url, dataDir, traders, seed, (text) => log(flags.json ?? false, text), setup.check);
    infra = await infraFor(pb, scratch, info.url, dataDir, (text) => log(flags.json ?? false, text));
    setup.check();
    // What only the started infrastructure can answer (a Prometheus query) is checked before any step runs.
    if (infra) await rehearsalPreflight(pb, flags, autoApprove, declaredOnly(pb, infra.vars));
    setup.done();
    return await runAndJudge(pb, flags, { timeScale, autoApprove, scratch, dataDir, client, url: info.url, snap, infraVars: infra?.vars ?? {} });
  } catch (e) {
    // The scratch engine (or its folder) failing is bad input to this rehearsal, not a bug: one line, exit 2.
    if (
      e instanceof EngineStartFailed ||
      e instanceof EngineUnreachable ||
      e instanceof EngineHttpError ||
      typeof (e as NodeJS.ErrnoException).code === 'string'
    ) {
      throw new InputError(`rehearsal of ${pb.spec.metadata.name}: the scratch engine failed: ${(e as Error).message.split('\n')[0] ?? ''}`);
    }
    throw e;
  } finally {
    setup.done();
    await infra?.stop();
    // The scratch engine, and every engine a step started beside it (a standby).
    for (const dir of engineDirsIn(scratch)) await stopEngine(dir).catch(() => undefined);
    scratchEngine.release();
    process.stderr.off('error', onPipeError);
    if (flags.keep) process.stderr.write(`scratch kept: ${scratch}\n`);
    else rmSync(scratch, { recursive: true, force: true });
  }
}

/** The infrastructure's vars that the playbook declares. */
export function declaredOnly(pb: LoadedPlaybook, vars: Record<string, string>): Record<string, string> {
  const declared = pb.spec.vars ?? {};
  return Object.fromEntries(Object.entries(vars).filter(([k]) => k in declared));
}

/** HAProxy and Prometheus when the playbook's `rehearsal:` asks for them, started beside the scratch engine. */
export async function infraFor(
  pb: LoadedPlaybook,
  scratch: string,
  url: string,
  dataDir: string,
  say: (text: string) => void,
): Promise<RehearsalInfra | undefined> {
  const wanted = pb.spec.rehearsal;
  if (!wanted?.gateway && !wanted?.prometheus) return undefined;
  const { startRehearsalInfra } = await import('./rehearsal-infra.js');
  const infra = await startRehearsalInfra({
    scratch,
    engineUrl: url,
    tokenFile: dataDirLayout(dataDir).token,
    gateway: wanted.gateway,
    prometheus: wanted.prometheus,
  });
  say(
    `rehearsal infrastructure: ${Object.entries(infra.vars)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  );
  return infra;
}

/** The playbook for real against the halted scratch engine, its outcome checked, and the verdict. */
async function runAndJudge(
  pb: LoadedPlaybook,
  flags: RehearseFlags,
  s: {
    timeScale: number;
    autoApprove: boolean;
    scratch: string;
    dataDir: string;
    client: Client;
    url: string;
    snap: Snapshot;
    infraVars: Record<string, string>;
  },
): Promise<Rehearsal> {
  const declared = pb.spec.vars ?? {};
  const overrides: Record<string, string> = {};
  for (const [name, value] of Object.entries(s.infraVars)) if (name in declared) overrides[name] = value;
  if ('preOutageSnapshot' in declared) overrides.preOutageSnapshot = s.snap.path;
  // What the playbook writes (reports, notifications) outlives the scratch folder: it goes by the journal.
  if ('outDir' in declared) overrides.outDir = join(resolve(flags.stateDir), 'rehearsals', basename(s.scratch));
  const vars = resolveVars(pb, overrides, process.env);
  let incidentHtml: string | undefined;
  let verdict: RehearsalVerdict | undefined;
  const { result, runDir, runId, recorder, annotations } = await executeRun({
    pb,
    stateDir: resolve(flags.stateDir),
    vars,
    varOverrides: overrides,
    redactor: buildRedactor(pb, vars),
    timeScale: s.timeScale,
    engine: { dataDir: s.dataDir },
    yes: false,
    json: flags.json ?? false,
    deferAnnotations: true,
    ...(s.autoApprove ? { approver: rehearsalApprover } : {}),
    afterRun: async (runResult, rec, dir) => {
      const found = await outcomeChecks(pb, runResult, dir, s.scratch, s.snap);
      const { checks } = found;
      incidentHtml = found.incidentHtml;
      const failedChecks = checks
        .filter((c) => !c.ok)
        .map((c) => c.name)
        .join('; ');
      rec.steps.push({
        id: 'rehearsal-outcome',
        name: 'the rehearsal checks the outcome',
        phase: 'main',
        uses: 'rehearse',
        outcome: failedChecks ? 'failure' : 'success',
        durationMs: 0,
        attempts: 1,
        error: failedChecks || undefined,
        detail: undefined,
        checks,
      });
      for (const c of checks)
        process.stderr.write(`${new Date().toISOString()} rehearse: ${c.ok ? '✓' : '✗'} ${c.name}${c.message ? ` (${c.message})` : ''}\n`);
      verdict = rehearsalVerdict(pb.spec.rehearsal?.expectOutcome ?? 'success', runResult, checks);
    },
  });
  const v = verdict ?? rehearsalVerdict(pb.spec.rehearsal?.expectOutcome ?? 'success', result, []);
  await annotateVerdict(pb, v, annotations);
  const report = incidentHtml ?? join(runDir, 'incident.html');
  if (existsSync(report)) process.stderr.write(`incident report: ${report}\n`);
  const recovery = await recoveryOf(runDir);
  const { formatDuration } = await import('../util/duration.js');
  process.stderr.write(`RTO ${formatDuration(recovery.rtoMs)}${recovery.objective ? ` (objective ${recovery.objective})` : ''}, path ${recovery.line}\n`);
  process.stderr.write(`${await predictedVsActual(recovery)}\n`);
  return { result, recorder, verdict: v, runId, recovery };
}

/**
 * `rehearse --all DIR`: every playbook in the folder validated first (all problems reported), then each
 * valid one with an engine rehearsed; one table, one JUnit file, one `rehearse-summary` event. Exit 2 if
 * any playbook was invalid (or could not be rehearsed for bad input), else 1 if any did not end as it
 * expects, else 0.
 */
export async function rehearseAll(dir: string, flags: RehearseFlags): Promise<void> {
  const { junitXml } = await import('../ui/junit.js');
  const { validateFiles, reportInvalid } = await import('./validate.js');
  const validations = await validateFiles(await playbooksIn(dir, flags.json ?? false));
  await reportInvalid(validations);
  const invalid = validations
    .filter((v) => !v.ok)
    .map((v) => ({ file: v.file, problems: v.error ? [v.error] : v.diagnostics.map((d) => `${d.file}:${d.line}:${d.col}: ${d.message}`) }));
  const rows: RehearsalRow[] = invalid.map((v) => ({ ...row(v.file, null, null, 'invalid', v.problems[0] ?? 'invalid'), exitCode: ExitCode.badInput }));
  const runs: JunitRun[] = [];
  for (const v of validations) {
    if (!v.playbook) continue;
    rows.push(await rehearseRow(v.file, v.playbook, flags, runs));
    if (rows.at(-1)?.outcome === 'interrupted') break;
  }
  if (flags.junit) {
    const errored = rows
      .filter((r) => r.outcome === 'error')
      .map((r) => ({ file: r.file, problems: [r.reason ?? 'error'], caseName: 'rehearsal could be made' }));
    writeJunit(flags.junit, junitXml(runs, [...invalid, ...errored]));
  }
  // The worst row decides: bad input, then a failed rollback (a human must look), then an interrupt, then a mismatch.
  const worst = [ExitCode.badInput, ExitCode.humanNeeded, ExitCode.interrupted, ExitCode.failed].find((code) => rows.some((r) => r.exitCode === code));
  const exitCode = worst ?? (rows.some((r) => !r.ok) ? ExitCode.failed : ExitCode.ok);
  // The table is for people: stdout, unless stdout is NDJSON.
  (flags.json ? process.stderr : process.stdout).write(rehearsalTable(rows));
  if (flags.json) process.stdout.write(summaryEvent(rows, exitCode));
  const bad = rows.filter((r) => !r.ok);
  if (exitCode === ExitCode.ok) return;
  const message = `${bad.length} of ${rows.length} playbook${rows.length === 1 ? '' : 's'} did not rehearse as expected: ${bad.map((r) => r.file).join(', ')}`;
  if (exitCode === ExitCode.badInput) throw new InputError(message);
  if (exitCode === ExitCode.humanNeeded) throw new RollbackFailed(message);
  if (exitCode === ExitCode.interrupted) throw new Interrupted(message);
  throw new StepFailed(message);
}

/** The playbooks of the folder; a folder that cannot be read or holds none is bad input (with its summary under --json). */
async function playbooksIn(dir: string, json: boolean): Promise<string[]> {
  const { statSync } = await import('node:fs');
  const refuse = (error: RecoverctlError): never => {
    if (json) process.stdout.write(summaryEvent([], ExitCode.badInput));
    throw error;
  };
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch (e) {
    refuse(new InputError(`--all ${dir}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`));
  }
  if (!isDir) refuse(new UsageError(`--all ${dir}: not a folder (rehearse one playbook without --all)`));
  const { files, problems } = expandPlaybookArgs([dir]);
  if (problems.length > 0) refuse(new InputError(`--all ${problems.map((p) => p.message).join('; ')}`));
  return files;
}

/** A row that is not a finished rehearsal: its outcome and reason, no time, no run. */
function row(file: string, playbook: string | null, expected: string | null, outcome: string, reason: string | null): Omit<RehearsalRow, 'exitCode'> {
  return { file, playbook, expected, outcome, ok: outcome === 'skipped (no engine)', reason, seconds: 0, run: null };
}

/** One valid playbook of `--all`: rehearsed (its run kept for JUnit), skipped without an engine, or the error that stopped it. */
async function rehearseRow(file: string, pb: LoadedPlaybook, flags: RehearseFlags, runs: JunitRun[]): Promise<RehearsalRow> {
  if (!pb.spec.engine) return { ...row(file, pb.spec.metadata.name, null, 'skipped (no engine)', null), exitCode: ExitCode.ok };
  const started = Date.now();
  try {
    const r = await rehearsePlaybook(pb, flags);
    runs.push({ recorder: r.recorder, verdict: r.verdict });
    return rowOf(file, pb, r, (Date.now() - started) / 1000);
  } catch (e) {
    if (!(e instanceof RecoverctlError) || e instanceof Interrupted) throw e;
    for (const line of e.lines()) process.stderr.write(`${line}\n`);
    await annotateError(e, pb);
    const seconds = Math.round(((Date.now() - started) / 1000) * 10) / 10;
    return {
      ...row(file, pb.spec.metadata.name, pb.spec.rehearsal?.expectOutcome ?? 'success', 'error', e.lines()[0] ?? e.message),
      seconds,
      exitCode: e.exitCode,
    };
  }
}

function rehearsalTable(rows: readonly RehearsalRow[]): string {
  const w = Math.max(8, ...rows.map((r) => r.file.length));
  const lines = [`${'PLAYBOOK'.padEnd(w)}  EXPECTED         OUTCOME              TIME  PATH           RTO  CLOSED  RESULT`];
  const secs = (v: number | null | undefined): string => (v == null ? '-' : `${v.toFixed(1)}s`);
  for (const r of rows) {
    const result = r.ok ? 'ok' : `FAILED: ${r.reason ?? ''}`;
    lines.push(
      `${r.file.padEnd(w)}  ${(r.expected ?? '-').padEnd(15)}  ${r.outcome.padEnd(19)}  ${`${r.seconds.toFixed(1)}s`.padStart(6)}  ${(r.path ?? '-').padEnd(10)}  ${secs(r.rtoSeconds).padStart(6)}  ${secs(r.closedSeconds).padStart(6)}  ${result}`,
    );
  }
  return `${lines.join('\n')}\n`;
}
