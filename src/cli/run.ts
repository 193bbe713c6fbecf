import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { InputError, Interrupted, LockHeldError, PreflightFailed, RollbackFailed, StepFailed, UsageError } from '../errors.js';
import { formatDuration } from '../util/duration.js';
import { loadPlaybook, type LoadedPlaybook } from '../playbook/load.js';
import type { EventSink } from '../runner/events.js';
import { engineAfter, RunInterrupted, Runner, type RunResult } from '../runner/execute.js';
import { ensureStateDir, isResumable, isRunId, JOURNAL_FILE, JournalWriter, listRuns, loadRun, runDir, type RunState } from '../runner/journal.js';
import { RunLock } from '../runner/lock.js';
import { buildPlan, type Plan } from '../runner/plan.js';
import { predictionAtStart, predictionLines, type RtoPrediction } from '../runner/predict.js';
import { preflight, type ApprovalMode, type PreflightCheck } from '../runner/preflight.js';
import { buildRedactor, parseVarFlags, resolveVars, type ResolvedVars } from '../runner/scope.js';
import { promptApprover } from '../ui/approver.js';
import { junitXml } from '../ui/junit.js';
import { RunRecorder } from '../ui/recorder.js';
import { FanOut, JsonRenderer, OutputRenderer, PlainRenderer } from '../ui/renderers.js';
import { chalkFor, useSpinner } from '../ui/style.js';
import { summaryText } from '../ui/summary.js';
import { TrailerFacts, trailerText } from '../ui/trailer.js';
import { systemClock } from '../util/clock.js';
import type { Approver, EngineTarget } from '../steps/types.js';
import { REGISTRY } from '../steps/registry.js';
import { nodeEffects } from './effects.js';
import type { GitHubAnnotations } from '../ui/annotations.js';
import { didYouMean } from '../util/suggest.js';
import { firstLine } from '../util/text.js';
import type { RunFlags } from './main.js';
import { REDACTED, type Redactor } from '../util/redact.js';
import { dataDirLayout } from '../util/data-dir.js';

/** The playbook's engine with its paths resolved against the playbook's folder. */
export function engineTargetOf(pb: LoadedPlaybook): EngineTarget | undefined {
  const e = pb.spec.engine;
  if (!e) return undefined;
  if ('dataDir' in e) return { dataDir: resolve(pb.dir, e.dataDir) };
  return { url: e.url, tokenFile: resolve(pb.dir, e.tokenFile) };
}

export function newRunId(now: Date = new Date()): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

/** The lock file: in the engine's data dir when there is one, so two state dirs still exclude each other. */
export function lockPathFor(pb: LoadedPlaybook, stateDir: string, engine: EngineTarget | undefined = engineTargetOf(pb)): string {
  if (engine && 'dataDir' in engine) return dataDirLayout(engine.dataDir).runLock;
  const key = engine && 'url' in engine ? `engine-${engine.url}` : `playbook-${pb.path}`;
  return join(stateDir, 'locks', `${createHash('sha256').update(key).digest('hex').slice(0, 16)}.lock`);
}

function findResume(pb: LoadedPlaybook, flags: RunFlags, stateDir: string): RunState | undefined {
  if (flags.resume !== undefined && flags.resumeLast) throw new UsageError('--resume and --resume-last: give one of them');
  if ((flags.resume !== undefined || flags.resumeLast) && flags.fromStep !== undefined) {
    throw new UsageError('--from-step starts a fresh run; it cannot be combined with --resume');
  }
  if (flags.force && flags.resume === undefined && !flags.resumeLast) throw new UsageError('--force only goes with --resume or --resume-last');
  let state: RunState | undefined;
  if (flags.resume !== undefined) {
    if (!isRunId(flags.resume)) throw new UsageError(`--resume ${flags.resume}: not a run id`);
    state = loadRun(stateDir, flags.resume);
    if (!state) throw new UsageError(`--resume ${flags.resume}: no such run in ${join(stateDir, 'runs')}`);
    if (state.start.file !== pb.path) {
      throw new UsageError(`--resume ${flags.resume}: that run is of ${state.start.file}, not ${pb.path}`);
    }
  } else if (flags.resumeLast) {
    const mine = listRuns(stateDir).filter((r) => r.start.file === pb.path);
    state = mine[mine.length - 1];
    if (!state) throw new UsageError(`--resume-last: no run of ${pb.file} in ${join(stateDir, 'runs')}`);
  } else {
    return undefined;
  }
  if (!isResumable(state)) {
    throw new UsageError(
      `run ${state.runId} already ended (${state.end?.outcome ?? '?'}); nothing to resume — start a new run, with --from-step if earlier steps are done`,
    );
  }
  if (state.start.sha256 !== pb.sha256 && !flags.force) {
    throw new UsageError(
      `${pb.file} changed since run ${state.runId} started (sha256 ${state.start.sha256.slice(0, 12)}… now ${pb.sha256.slice(0, 12)}…); pass --force to resume anyway`,
    );
  }
  return state;
}

function printPlan(plan: Plan, checks: PreflightCheck[], prediction: RtoPrediction | undefined, json: boolean): void {
  if (json) {
    const rtoPrediction = prediction ?? null;
    process.stdout.write(`${JSON.stringify({ ts: new Date().toISOString(), run: null, step: null, event: 'plan', plan, preflight: checks, rtoPrediction })}\n`);
    return;
  }
  const c = chalkFor(process.stdout);
  const lines: string[] = [];
  lines.push(c.bold(`plan: ${plan.playbook}`) + ` (${plan.file}, sha256 ${plan.sha256.slice(0, 12)}…)`);
  if (plan.incident) lines.push(`incident: ${plan.incident}`);
  if (plan.rto) lines.push(`rto: ${plan.rto}`);
  if (plan.resumeOf) lines.push(`resuming run ${plan.resumeOf}`);
  if (plan.fromStep) lines.push(`starting at step ${plan.fromStep}`);
  const width = Math.max(...[...plan.steps, ...plan.rollback].map((s) => s.id.length));
  const kindWidth = Math.max(...[...plan.steps, ...plan.rollback].map((s) => s.uses.length));
  const row = (s: Plan['steps'][number], i: number): string => {
    const tags = [
      s.condition ? `if: ${s.condition}` : '',
      s.timeoutMs !== null ? `timeout ${formatDuration(s.timeoutMs)}` : '',
      s.retries ? `retries ${s.retries}` : '',
      s.continueOnError ? 'continueOnError' : '',
    ].filter(Boolean);
    const status =
      s.status === 'pending'
        ? ''
        : c.yellow(` [${s.status === 'done' ? 'done' : s.status === 'manual' ? 'skipped: done by hand' : 'was running: re-check and re-run'}]`);
    const title = s.name ? `${c.bold(s.name)} — ` : '';
    return `  ${String(i + 1).padStart(2)}. ${s.id.padEnd(width)}  ${c.cyan(s.uses.padEnd(kindWidth))}  ${title}${s.description}${status}${tags.length ? c.dim(`  (${tags.join(', ')})`) : ''}`;
  };
  lines.push('steps:', ...plan.steps.map(row));
  lines.push(plan.rollback.length ? 'rollback (on failure):' : 'rollback: none', ...plan.rollback.map(row));
  const bad = checks.filter((k) => !k.ok);
  lines.push(`preflight (what run checks before its first step): ${bad.length ? c.red(`${bad.length} problem${bad.length === 1 ? '' : 's'}`) : c.green('ok')}`);
  for (const k of checks) {
    const where = k.at ? c.dim(` (${k.at.file}:${k.at.line}:${k.at.col})`) : '';
    lines.push(`  ${k.ok ? c.green('✓') : c.red('✗')} ${k.check.padEnd(9)} ${k.message}${where}`);
  }
  lines.push(...(prediction ? predictionLines(prediction) : ['RTO prediction: none (the history in the state dir could not be read)']));
  lines.push(c.dim('dry run: nothing was changed'));
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** Write the JUnit file; a failure is reported but does not hide the run's own exit code. */
export function writeJunit(path: string, xml: string): void {
  try {
    mkdirSync(dirname(resolve(path)), { recursive: true });
    writeFileSync(path, xml);
  } catch (e) {
    process.stderr.write(`warning: --junit ${path}: cannot write (${(e as NodeJS.ErrnoException).code ?? String(e)})\n`);
  }
}

export interface ExecuteOptions {
  pb: LoadedPlaybook;
  stateDir: string;
  vars: ResolvedVars;
  varOverrides: Record<string, string>;
  redactor: Redactor;
  timeScale: number;
  engine: EngineTarget | undefined;
  resume?: RunState | undefined;
  fromStep?: string | undefined;
  yes: boolean;
  json: boolean;
  junit?: string | undefined;
  /** Answer gates without asking (rehearsals). */
  approver?: Approver;
  /** Hold failed-step annotations until the caller knows whether the failure was expected (rehearsals). */
  deferAnnotations?: boolean;
  /** More sinks for the run's events (what the caller wants to know afterwards). */
  sinks?: EventSink[];
  /** Extra JUnit cases after the run's own (rehearsal outcome checks). */
  afterRun?: (result: RunResult, recorder: RunRecorder, runDir: string) => Promise<void>;
}

/** A run with its journal, lock, renderers and signal handling: shared by `run` and `rehearse`. */
export interface ExecutedRun {
  result: RunResult;
  runId: string;
  runDir: string;
  recorder: RunRecorder;
  /** Set under GitHub Actions: flush it when annotations were deferred. */
  annotations: GitHubAnnotations | undefined;
}

/** The state dir, the lock and the journal of a run; nothing is left held when one of them fails. */
function openRun(o: ExecuteOptions, runId: string, dir: string): { lock: RunLock; journal: JournalWriter } {
  const lockPath = lockPathFor(o.pb, o.stateDir, o.engine);
  let lock: RunLock;
  try {
    ensureStateDir(o.stateDir);
    lock = RunLock.acquire(lockPath, { pid: process.pid, runId, playbook: o.pb.path });
  } catch (e) {
    if (e instanceof LockHeldError) throw e;
    throw new InputError(`cannot use state dir ${o.stateDir} or lock ${lockPath}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return { lock, journal: new JournalWriter(join(dir, JOURNAL_FILE)) };
  } catch (e) {
    lock.release();
    throw new InputError(`cannot write the journal in ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** Where a run's events go: journal, recorder, the terminal (spinner or plain lines), stdout, annotations. */
async function runSinks(o: ExecuteOptions, journal: JournalWriter, recorder: RunRecorder) {
  const stderrChalk = chalkFor(process.stderr);
  const sinks: EventSink[] = [journal, recorder, ...(o.sinks ?? [])];
  let ui: { pauseUi?: () => void; resumeUi?: () => void } = {};
  if (useSpinner(process.stderr)) {
    const { SpinnerRenderer } = await import('../ui/spinner.js');
    const spinner = await SpinnerRenderer.create(process.stderr, stderrChalk);
    ui = { pauseUi: () => spinner.pause(), resumeUi: () => spinner.resume() };
    sinks.push(spinner);
  } else {
    sinks.push(new PlainRenderer(process.stderr, stderrChalk));
  }
  sinks.push(o.json ? new JsonRenderer(process.stdout) : new OutputRenderer(process.stdout));
  let annotations: GitHubAnnotations | undefined;
  if (process.env.GITHUB_ACTIONS === 'true') {
    const { GitHubAnnotations } = await import('../ui/annotations.js');
    // On stderr, which Actions reads too: stdout is data only.
    annotations = new GitHubAnnotations(o.pb, process.stderr, o.deferAnnotations ?? false);
    sinks.push(annotations);
  }
  return { sink: new FanOut(sinks), ui, annotations };
}

/** SIGINT/SIGTERM abort the run through `interrupt`; a second one exits at once, journal closed, lock released. */
function onSignals(interrupt: AbortController, journal: JournalWriter, lock: RunLock): () => void {
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      process.stderr.write(`\nsecond ${signal}: exiting now; the journal holds every finished step\n`);
      journal.close();
      lock.release();
      process.exit(130);
    }
    interrupt.abort(new RunInterrupted(signal));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

export async function executeRun(o: ExecuteOptions): Promise<ExecutedRun> {
  const runId = o.resume?.runId ?? newRunId();
  const dir = runDir(o.stateDir, runId);
  const { lock, journal } = openRun(o, runId, dir);
  // A reader that goes away (| head) must not crash the run: results are lost, the journal is not.
  const onStdoutError = (e: NodeJS.ErrnoException): void => {
    if (e.code !== 'EPIPE') throw e;
  };
  process.stdout.on('error', onStdoutError);
  process.stderr.on('error', onStdoutError);
  const recorder = new RunRecorder();
  const { sink, ui, annotations } = await runSinks(o, journal, recorder);
  const interrupt = new AbortController();
  const offSignals = onSignals(interrupt, journal, lock);
  // From the runs before this one; a resumed run keeps the prediction it started with.
  const rtoPrediction = o.resume
    ? o.resume.start.rtoPrediction
    : predictionAtStart(o.stateDir, o.pb, runId, { timeScale: o.timeScale, autoApprove: o.yes || o.approver !== undefined });
  let result: RunResult;
  try {
    const runner = new Runner({
      playbook: o.pb,
      runId,
      runDir: dir,
      vars: o.vars,
      varOverrides: o.varOverrides,
      env: process.env,
      redactor: o.redactor,
      clock: systemClock,
      approver: o.approver ?? promptApprover({ yes: o.yes, input: process.stdin, output: process.stderr, ...ui }),
      registry: REGISTRY,
      effects: nodeEffects,
      scratchDir: tmpdir(),
      engine: o.engine,
      timeScale: o.timeScale,
      sink,
      interrupt: interrupt.signal,
      resume: o.resume,
      fromStep: o.fromStep,
      rtoPrediction,
    });
    result = await runner.run();
  } finally {
    offSignals();
    await sink.close();
    lock.release();
  }
  process.stdout.off('error', onStdoutError);
  process.stderr.off('error', onStdoutError);
  await o.afterRun?.(result, recorder, dir);
  if (o.junit) writeJunit(o.junit, junitXml([recorder]));
  // The table is for people: under --json stdout is NDJSON only, so it goes to stderr.
  const tableOut = o.json ? process.stderr : process.stdout;
  tableOut.write(summaryText(recorder, join(dir, JOURNAL_FILE), chalkFor(tableOut)));
  return { result, runId, runDir: dir, recorder, annotations };
}

/**
 * A resumed run keeps the --var values it last ran with, unless given again now; secret ones were
 * never journaled and must be given again.
 */
function resumedVars(pb: LoadedPlaybook, resume: RunState | undefined, overrides: Record<string, string>): Record<string, string> {
  const journaled = resume?.lastStart.varOverrides ?? {};
  for (const [key, value] of Object.entries(journaled)) {
    const decl = pb.spec.vars?.[key];
    if (value === REDACTED && typeof decl === 'object' && decl.secret && overrides[key] === undefined) {
      throw new UsageError(`--var ${key} is secret and was not journaled: give it again with --var ${key}=... to resume`);
    }
  }
  return { ...journaled, ...overrides };
}

export async function runCommand(file: string, flags: RunFlags): Promise<void> {
  const pb = await loadPlaybook(file);
  const stateDir = resolve(flags.stateDir);
  const overrides = parseVarFlags(flags.var);
  if (flags.fromStep !== undefined && !pb.steps.some((s) => s.id === flags.fromStep)) {
    const ids = pb.steps.map((s) => s.id);
    throw new UsageError(`--from-step ${flags.fromStep}: no such step in ${pb.file}${didYouMean(flags.fromStep, ids)} (steps: ${ids.join(', ')})`);
  }
  const resume = findResume(pb, flags, stateDir);
  const varOverrides = resumedVars(pb, resume, overrides);
  // Missing values are not refused here: preflight lists every problem at once.
  const vars = resolveVars(pb, varOverrides, process.env, { allowMissing: true });
  const redactor = buildRedactor(pb, vars);
  const timeScale = flags.timeScale ?? 1;
  const engine = flags.engineDataDir === undefined ? engineTargetOf(pb) : { dataDir: resolve(flags.engineDataDir) };
  const skipSteps = new Set<string>(resume ? [...resume.finished.keys()] : []);
  const fromIndex = flags.fromStep === undefined ? 0 : pb.steps.findIndex((x) => x.id === flags.fromStep);
  for (const s of pb.steps.slice(0, fromIndex)) skipSteps.add(s.id);
  const approval: ApprovalMode = flags.yes ? 'yes' : process.stdin.isTTY ? 'tty' : 'none';
  // A resumed run checks the engine its next steps act on: after a promotion, the standby (the old
  // primary may be down, half-way through becoming its follower). The run's lock stays where it was.
  const current = resume
    ? engineAfter(pb, REGISTRY, engine, { main: (id) => resume.finished.get(id), rollback: (id) => resume.rollbackFinished.get(id) })
    : engine;
  const checks = await preflight({
    pb,
    vars,
    env: process.env,
    engine: current,
    approval,
    skipSteps,
    lockPath: lockPathFor(pb, stateDir, engine),
    stateDir,
    redactor,
  });

  if (flags.dryRun) {
    const plan = buildPlan(pb, { engine: current, vars, env: process.env, redactor, timeScale, fromStep: flags.fromStep, resume });
    const prediction = predictionAtStart(stateDir, pb, undefined, { timeScale, autoApprove: flags.yes ?? false });
    printPlan(plan, checks, prediction, flags.json ?? false);
    return;
  }
  const problems = checks.filter((k) => !k.ok);
  if (problems.length > 0) {
    if (flags.json) process.stdout.write(`${JSON.stringify({ ts: new Date().toISOString(), run: null, step: null, event: 'preflight', ok: false, checks })}\n`);
    throw new PreflightFailed(problems.map((k) => ({ message: k.message, ...(k.at ? { at: k.at } : {}) })));
  }

  const facts = new TrailerFacts();
  const {
    result,
    runId,
    runDir: dir,
  } = await executeRun({
    pb,
    stateDir,
    vars,
    varOverrides,
    redactor,
    timeScale,
    engine,
    resume,
    fromStep: flags.fromStep,
    yes: flags.yes ?? false,
    json: flags.json ?? false,
    junit: flags.junit,
    sinks: [facts],
  });
  const out = flags.json ? process.stderr : process.stdout;
  out.write(await trailerText({ facts, result, runId, runDir: dir, pb, engine, stateDir: flags.stateDir, c: chalkFor(out) }));
  throwForOutcome(result, runId, pb);
}

/** The run's outcome as the one error the CLI handler turns into its exit code; nothing for a success. */
function throwForOutcome(result: RunResult, runId: string, pb: LoadedPlaybook): void {
  switch (result.outcome) {
    case 'success':
      return;
    case 'failed':
      throw new StepFailed(`run ${runId} failed at step ${result.failedStep ?? '?'}: ${firstLine(result.error ?? '')}`);
    case 'rollback-failed':
      throw new RollbackFailed(
        `run ${runId}: step ${result.failedStep ?? '?'} failed and rollback step(s) ${result.rollbackFailedSteps.join(', ')} failed: a human must look`,
      );
    case 'interrupted':
      throw new Interrupted(`run ${runId} interrupted; resume with: recoverctl run ${pb.file} --resume ${runId}`);
  }
}
