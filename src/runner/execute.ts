import { evaluate, ExpressionEvalError, ExpressionSyntaxError, shouldRun, truthy, type Reference, type Value } from '../playbook/expressions.js';
import { formatDuration, parseDuration } from '../util/duration.js';
import { startCadence, statusText } from './comms.js';
import type { NotifyChannelInput } from '../steps/notify-channels.js';
import type { LoadedPlaybook, RuntimeStep } from '../playbook/load.js';
import type { ErasedStepKind, StepRegistry } from '../steps/registry.js';
import type { Effects } from '../steps/effects.js';
import { errorMessage, type Approver, type EngineTarget, type OutputValue, type StepContext, type StepResult } from '../steps/types.js';
import type { Clock } from '../util/clock.js';
import { firstLine } from '../util/text.js';
import { EXIT_CODE_OF, type EventSink, type Phase, type RunEvent, type RunEventBody, type RunOutcome, type StepOutcome } from './events.js';
import type { RunState } from './journal.js';
import type { RtoPrediction } from './predict.js';
import { addEnvSecrets, interpolateDeep, interpolateWith, References, UnresolvedReference, type ResolvedVars, type StepState } from './scope.js';
import { REDACTED, type Redactor } from '../util/redact.js';
import { dispositionOf, fromIndexOf } from './plan.js';

/** Why a step's signal was aborted. */
export class StepTimeout extends Error {}
export class RunInterrupted extends Error {
  constructor(readonly signalName: string) {
    super(`interrupted by ${signalName}`);
  }
}

/** How long a step may take to stop after its signal aborts before the runner stops waiting for it. */
export const ABORT_GRACE_MS = 10_000;
const MAX_BACKOFF_MS = 60_000;

export interface RunOptions {
  playbook: LoadedPlaybook;
  runId: string;
  runDir: string;
  vars: ResolvedVars;
  varOverrides: Record<string, string>;
  env: NodeJS.ProcessEnv;
  redactor: Redactor;
  clock: Clock;
  approver: Approver;
  /** The step kinds to run (REGISTRY for a real run; a test may swap in fakes). */
  registry: StepRegistry;
  /** Commands, HTTP, engines and reports, as the steps reach them. */
  effects: Effects;
  /** Where steps may make throwaway folders. */
  scratchDir: string;
  /** The playbook's engine, resolved (rehearsals replace it with a scratch engine). */
  engine: EngineTarget | undefined;
  timeScale: number;
  sink: EventSink;
  /** Aborted (with a RunInterrupted reason) by SIGINT/SIGTERM. */
  interrupt: AbortSignal;
  resume?: RunState | undefined;
  fromStep?: string | undefined;
  random?: () => number;
  /** Journaled in run-start, for the incident report to set beside the measured RTO. */
  rtoPrediction?: RtoPrediction | undefined;
}

export interface RunResult {
  outcome: RunOutcome;
  exitCode: (typeof EXIT_CODE_OF)[RunOutcome];
  failedStep: string | undefined;
  error: string | undefined;
  rollbackFailedSteps: string[];
  durationMs: number;
}

type AttemptResult = StepResult | { interrupted: true };
/** How a step ended, for the run's bookkeeping. */
type StepRun = { outcome: StepOutcome; error?: string } | 'interrupted';

/** Exponential backoff with full jitter over the upper half: delay in [base*2^n / 2, base*2^n]. */
export function backoffDelay(baseMs: number, retryNumber: number, random: () => number): number {
  const ceiling = Math.min(MAX_BACKOFF_MS, baseMs * 2 ** (retryNumber - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/**
 * The engine the steps act on after these finished steps: the playbook's, moved by every step whose kind
 * moves the primary (a promotion, a switch back), in run order. A resume's preflight asks it too.
 */
export function engineAfter(
  pb: LoadedPlaybook,
  registry: StepRegistry,
  engine: EngineTarget | undefined,
  states: { main(id: string): StepState | undefined; rollback(id: string): StepState | undefined },
): EngineTarget | undefined {
  let now = engine;
  const move = (step: RuntimeStep, state: StepState | undefined): void => {
    if (state?.outcome !== 'success') return;
    const moved = registry.get(step.uses)?.primaryAfter?.(state.outputs);
    if (moved) now = moved;
  };
  for (const s of pb.steps) move(s, states.main(s.id));
  for (const s of pb.rollback) move(s, states.rollback(s.id));
  return now;
}

/** Runs a playbook's steps in order, then its rollback when a step fails. */
export class Runner {
  private readonly steps = new Map<string, StepState>();
  /** Rollback steps' states, apart from the main steps' (references name main steps only). */
  private readonly rollbackStates = new Map<string, StepState>();
  /** Steps that were running when the run last stopped, so their kind can check what is already done. */
  private readonly rechecked = new Set<string>();
  /** The step running now (main or rollback), for status updates. */
  private current: string | null = null;
  private comms: { stop(): Promise<void> } | undefined;
  private failed = false;
  private readonly started: number;
  private readonly random: () => number;

  constructor(private readonly o: RunOptions) {
    this.started = o.clock.now();
    this.random = o.random ?? Math.random;
  }

  private emit(body: RunEventBody): void {
    const event: RunEvent = { ts: new Date(this.o.clock.now()).toISOString(), run: this.o.runId, ...body };
    this.o.sink.write(this.o.redactor.deep(event));
  }

  private get refs(): References {
    return new References(this.o.vars, this.o.env, this.steps);
  }

  /** The run's first event: what runs, with which (redacted) values. */
  private emitRunStart(): void {
    const pb = this.o.playbook;
    const redactedVars: Record<string, OutputValue> = {};
    for (const [k, v] of Object.entries(this.o.vars.values)) redactedVars[k] = this.o.vars.secretNames.has(k) ? REDACTED : v;
    const redactedOverrides: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.o.varOverrides)) redactedOverrides[k] = this.o.vars.secretNames.has(k) ? REDACTED : v;
    this.emit({
      event: 'run-start',
      step: null,
      playbook: pb.spec.metadata.name,
      file: pb.path,
      sha256: pb.sha256,
      pid: process.pid,
      resumed: this.o.resume !== undefined,
      fromStep: this.o.fromStep ?? null,
      steps: pb.steps.map((s) => s.id),
      rollbackSteps: pb.rollback.map((s) => s.id),
      vars: redactedVars,
      varOverrides: redactedOverrides,
      timeScale: this.o.timeScale,
      rto: pb.spec.metadata.rto ?? null,
      incident: pb.spec.metadata.incident ?? null,
      comms: pb.spec.comms?.every ?? null,
      ...(this.o.rtoPrediction ? { rtoPrediction: this.o.rtoPrediction } : {}),
    });
  }

  /**
   * A main step that does not run now, by the same decision `plan` shows (dispositionOf): finished in an
   * earlier attempt (resume), or done by hand (--from-step). A step to recheck is announced.
   */
  private passedOver(step: RuntimeStep, index: number, fromIndex: number): boolean {
    const d = dispositionOf(step, index, { resume: this.o.resume, fromIndex });
    if (d.do === 'recheck') {
      this.rechecked.add(step.id);
      this.emit({ event: 'recheck', step: step.id, phase: 'main', note: 'was running when the run stopped; checking and running it again' });
    }
    if (d.do === 'recheck' || d.do === 'run') return false;
    if (d.do === 'restore') {
      this.steps.set(step.id, d.previous);
      this.emit({ event: 'restored', step: step.id, phase: 'main', outcome: d.previous.outcome });
      return true;
    }
    this.steps.set(step.id, { outcome: 'skipped', outputs: {} });
    this.emit({
      event: 'skip',
      step: step.id,
      phase: 'main',
      uses: step.uses,
      name: step.name === undefined ? null : this.displayName(step.name),
      reason: 'manual',
      detail: `done by hand before --from-step ${this.o.fromStep}`,
    });
    return true;
  }

  async run(): Promise<RunResult> {
    this.learnCredentials();
    this.emitRunStart();
    this.comms = this.startComms();
    try {
      return await this.runSteps();
    } finally {
      // Normally stopped before run-end (finish); here for a run that ended by throwing.
      await this.comms?.stop();
    }
  }

  /**
   * Credentials in the steps' `with` and in `comms:` (webhook URLs, routing keys, headers) are redacted
   * from the first event on, even when the var that holds one is not marked secret.
   */
  private learnCredentials(): void {
    const pb = this.o.playbook;
    const lenient = (r: Reference): Value => this.refs.lenient(r) ?? '';
    for (const step of [...pb.steps, ...pb.rollback]) {
      try {
        addEnvSecrets(this.o.redactor, interpolateWith(step.with, this.o.registry.get(step.uses)?.templates, lenient));
      } catch {
        // A value only a later step gives: learned when that step is prepared.
      }
    }
    if (pb.spec.comms) {
      try {
        addEnvSecrets(this.o.redactor, interpolateDeep(pb.spec.comms, lenient));
      } catch {
        // as above
      }
    }
  }

  /** Status updates on the playbook's `comms:` cadence, beside the steps, until the run ends. */
  private startComms(): { stop(): Promise<void> } | undefined {
    const comms = this.o.playbook.spec.comms;
    const everyMs = comms ? parseDuration(comms.every) : undefined;
    if (!comms || !everyMs) return undefined;
    const { every: _every, ...channel } = comms;
    return startCadence({
      everyMs: Math.max(1, Math.round(everyMs * this.o.timeScale)),
      clock: this.o.clock,
      tick: async (n, signal) => {
        const message = this.statusNow();
        let result: StepResult;
        try {
          const filled = interpolateDeep(channel, (r) => this.refs.value(r)) as NotifyChannelInput;
          addEnvSecrets(this.o.redactor, filled);
          const { sendNotification } = await import('../steps/notify-send.js');
          result = await sendNotification(filled, message, {
            fetch: this.o.effects.fetch,
            clock: this.o.clock,
            signal,
            runDir: this.o.runDir,
            runId: this.o.runId,
            playbookName: this.o.playbook.spec.metadata.name,
            stepId: `comms-${n}`,
            once: false,
          });
        } catch (e) {
          result = { ok: false, error: errorMessage(e) };
        }
        this.emit({ event: 'comms', step: null, channel: channel.channel, ok: result.ok, message, error: result.ok ? null : result.error });
      },
    });
  }

  /** The status update's text, from what the run has done so far. */
  private statusNow(): string {
    const pb = this.o.playbook;
    const now = this.o.clock.now();
    const haltedAt = [...this.steps.values()].map((s) => s.outputs.haltedAt).find((v): v is string => typeof v === 'string');
    const detected = haltedAt ? Date.parse(haltedAt) : this.started;
    const rto = pb.spec.metadata.rto ? (parseDuration(pb.spec.metadata.rto) ?? null) : null;
    return statusText({
      playbook: pb.spec.metadata.name,
      incident: pb.spec.metadata.incident ?? null,
      step: this.current,
      index: this.current ? pb.steps.findIndex((s) => s.id === this.current) + 1 : 0,
      steps: pb.steps.length,
      rollingBack: this.current !== null && !pb.steps.some((s) => s.id === this.current),
      elapsedMs: now - this.started,
      rtoMs: rto,
      sinceDetectionMs: now - detected,
      failed: this.failed,
      format: formatDuration,
    });
  }

  private async runSteps(): Promise<RunResult> {
    const pb = this.o.playbook;
    const resume = this.o.resume;

    let failedStep: string | undefined;
    let failError: string | undefined;
    let rollbackFailed: string[] = [];
    let rolledBack = false;
    if (resume) {
      this.failed = resume.failed;
      if (resume.failed) {
        const failure = resume.events.find((e) => e.event === 'fail' && e.phase === 'main' && !e.continued);
        if (failure?.event === 'fail') {
          failedStep = failure.step;
          failError = failure.error;
        }
      }
    }
    const fromIndex = fromIndexOf(pb, this.o.fromStep);

    const runRollback = async (reason: string): Promise<RunResult | undefined> => {
      rolledBack = true;
      const outcome = await this.rollback(reason);
      if (outcome === 'interrupted') return this.finish('interrupted', failedStep, failError, []);
      rollbackFailed = outcome;
      return undefined;
    };

    // A run that died after a failure, or during its rollback, goes straight back to the rollback.
    if (resume && (resume.rollbackStarted || resume.failed) && pb.rollback.length > 0) {
      const stopped = await runRollback(`resuming the rollback of run ${resume.runId} after ${failedStep ?? 'a failure'}`);
      if (stopped) return stopped;
    }

    for (let i = 0; i < pb.steps.length; i++) {
      const step = pb.steps[i] as RuntimeStep;
      if (this.passedOver(step, i, fromIndex)) continue;
      const outcome = await this.runStep(step, 'main');
      if (outcome === 'interrupted') return this.finish('interrupted', failedStep, failError, []);
      if (outcome.outcome === 'failure' && !step.continueOnError && !this.failed) {
        this.failed = true;
        failedStep = step.id;
        failError = outcome.error;
        if (pb.rollback.length > 0 && !rolledBack) {
          const stopped = await runRollback(`step ${step.id} failed: ${firstLine(outcome.error ?? 'failed')}`);
          if (stopped) return stopped;
        }
      }
    }
    if (!this.failed) {
      const gone = await this.tradingEngineGone();
      if (gone) {
        this.failed = true;
        failedStep = [...pb.steps].reverse().find((st) => this.steps.has(st.id))?.id;
        failError = gone;
        if (pb.rollback.length > 0) {
          const stopped = await runRollback(gone);
          if (stopped) return stopped;
        }
      }
    }
    if (rollbackFailed.length > 0) return this.finish('rollback-failed', failedStep, failError, rollbackFailed);
    if (this.failed) return this.finish('failed', failedStep, failError, []);
    return this.finish('success', undefined, undefined, []);
  }

  /**
   * A run that reopened trading (an `engine.resume` finished) does not end `success` with the engine that
   * trades gone: checked once every main step has passed (found by rehearse --chaos: the engine killed
   * during user-reports, and every later step passed without it). The reason, when it is gone.
   */
  private async tradingEngineGone(): Promise<string | undefined> {
    const resumed = this.o.playbook.steps.some(
      (st) => st.uses === 'engine.resume' && (this.steps.get(st.id) ?? this.o.resume?.finished.get(st.id))?.outcome === 'success',
    );
    const target = this.engineNow();
    // A playbook that stops the engine itself means it to be down at the end.
    const stops = this.o.playbook.steps.some((st) => st.uses === 'engine.stop');
    if (!resumed || stops || !target || !('dataDir' in target)) return undefined;
    const running = await this.o.effects.engines.attach(target.dataDir).catch(() => undefined);
    return running ? undefined : `the engine on ${target.dataDir} stopped after trading resumed: it is not running at the end of the run`;
  }

  private async finish(outcome: RunOutcome, failedStep: string | undefined, error: string | undefined, rollbackFailedSteps: string[]): Promise<RunResult> {
    await this.comms?.stop();
    const exitCode = EXIT_CODE_OF[outcome];
    const durationMs = this.o.clock.now() - this.started;
    const summary =
      outcome === 'success'
        ? `${this.o.playbook.spec.metadata.name} succeeded in ${formatDuration(durationMs)}`
        : outcome === 'failed'
          ? `step ${failedStep ?? '?'} failed: ${firstLine(error ?? 'failed')}${this.o.playbook.rollback.length ? '; rollback succeeded' : '; nothing to roll back'}`
          : outcome === 'rollback-failed'
            ? `step ${failedStep ?? '?'} failed and the rollback failed at ${rollbackFailedSteps.join(', ')}: a human must look`
            : `interrupted; resume with: recoverctl run ${this.o.playbook.file} --resume ${this.o.runId}`;
    this.emit({ event: 'run-end', step: null, outcome, exitCode, durationMs, summary });
    return { outcome, exitCode, failedStep, error, rollbackFailedSteps, durationMs };
  }

  /** Runs the rollback list; returns the ids of rollback steps that failed, or 'interrupted'. */
  private async rollback(reason: string): Promise<string[] | 'interrupted'> {
    const resume = this.o.resume;
    this.emit({ event: 'rollback', step: null, reason });
    const failedSteps: string[] = [];
    for (const step of this.o.playbook.rollback) {
      const previous = resume?.rollbackFinished.get(step.id);
      if (previous) {
        this.emit({ event: 'restored', step: step.id, phase: 'rollback', outcome: previous.outcome });
        if (previous.outcome === 'failure') failedSteps.push(step.id);
        continue;
      }
      const outcome = await this.runStep(step, 'rollback');
      if (outcome === 'interrupted') return 'interrupted';
      if (outcome.outcome === 'failure' && !step.continueOnError) failedSteps.push(step.id);
    }
    this.emit({ event: 'rollback-end', step: null, ok: failedSteps.length === 0, failedSteps });
    return failedSteps;
  }

  private async runStep(step: RuntimeStep, phase: Phase): Promise<StepRun> {
    if (this.o.interrupt.aborted) {
      this.emit({ event: 'interrupted', step: null, signal: this.interruptSignalName() });
      return 'interrupted';
    }
    const decision = this.decide(step, phase);
    if (decision === 'skip') {
      this.record(step, phase, { outcome: 'skipped', outputs: {} });
      const reason = step.condition === undefined ? 'earlier-failure' : 'condition';
      this.emit({
        event: 'skip',
        step: step.id,
        phase,
        uses: step.uses,
        name: step.name === undefined ? null : this.displayName(step.name),
        reason,
        detail: reason === 'condition' ? `if: ${this.conditionSource(step)}` : 'an earlier step failed',
      });
      return { outcome: 'skipped' };
    }
    if (decision !== 'run') return this.failBeforeStart(step, phase, decision.error);
    const started = this.o.clock.now();
    const prepared = this.prepare(step);
    if ('error' in prepared) return this.failBeforeStart(step, phase, prepared.error);
    return this.attempts(step, phase, prepared, started);
  }

  private record(step: RuntimeStep, phase: Phase, state: StepState): void {
    if (phase === 'main') this.steps.set(step.id, state);
    else this.rollbackStates.set(step.id, state);
  }

  /**
   * The engine the steps act on now: the playbook's, moved by every finished step whose kind moves the
   * primary (a promotion, a switch back), in run order, this attempt's or an earlier one's.
   */
  private engineNow(): EngineTarget | undefined {
    const resume = this.o.resume;
    return engineAfter(this.o.playbook, this.o.registry, this.o.engine, {
      main: (id) => this.steps.get(id) ?? resume?.finished.get(id),
      rollback: (id) => this.rollbackStates.get(id) ?? resume?.rollbackFinished.get(id),
    });
  }

  /** Whether the step runs, by its `if:` and the run's state; a condition that cannot be evaluated fails it. */
  private decide(step: RuntimeStep, phase: Phase): 'run' | 'skip' | { error: string } {
    // Rollback steps run by default, as if always(): the run has failed by the time they do.
    try {
      const scope = { failed: phase === 'rollback' ? true : this.failed, resolve: (r: Reference) => this.refs.lenient(r) };
      const run = phase === 'rollback' ? step.condition === undefined || truthy(evaluate(step.condition, scope)) : shouldRun(step.condition, scope);
      return run ? 'run' : 'skip';
    } catch (e) {
      if (!(e instanceof ExpressionSyntaxError)) throw e;
      // fromJSON of text that is not JSON fails the step, as in GitHub Actions: skipping it could skip a safety check.
      if (!(e instanceof ExpressionEvalError)) return 'skip';
      const at = this.o.playbook.locate([...step.yamlPath, 'if']);
      return { error: `${this.o.playbook.file}:${at.line}:${at.col}: if: ${e.message}` };
    }
  }

  /** The step's `with` filled in and parsed, and its description; a reference with no value is an error at its place. */
  private prepare(step: RuntimeStep): { kind: ErasedStepKind; withValue: unknown; description: string } | { error: string } {
    const pb = this.o.playbook;
    const kind = this.o.registry.get(step.uses);
    if (!kind) return { error: `${pb.file}: step ${step.id}: no handler for the kind ${step.uses} in this runner` };
    try {
      const filled = interpolateWith(step.with, kind.templates, (r) => this.refs.value(r));
      addEnvSecrets(this.o.redactor, filled);
      const parsed = kind.with.safeParse(filled);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const at = pb.locate([...step.yamlPath, 'with', ...(issue?.path.filter((p) => typeof p !== 'symbol') ?? [])]);
        throw new UnresolvedReference(`with${issue?.path.length ? `.${issue.path.join('.')}` : ''}: ${issue?.message ?? 'invalid'} (after interpolation)`, at);
      }
      const description = this.o.redactor.text(
        kind.describe(parsed.data, { playbookDir: pb.dir, timeScale: this.o.timeScale, engine: this.engineNow(), playbookEngine: this.o.engine }),
      );
      return { kind, withValue: parsed.data, description };
    } catch (e) {
      if (!(e instanceof UnresolvedReference)) throw e;
      const at = e.at ?? pb.locate([...step.yamlPath, 'with']);
      return { error: `${pb.file}:${at.line}:${at.col}: ${e.message}` };
    }
  }

  /** A step that fails before its first attempt: journaled as started and failed, so it shows everywhere. */
  private failBeforeStart(step: RuntimeStep, phase: Phase, error: string): StepRun {
    this.emit({ event: 'start', step: step.id, phase, uses: step.uses, name: step.name ?? null, attempt: 1, description: step.uses });
    this.record(step, phase, { outcome: 'failure', outputs: {} });
    this.emit({ event: 'fail', step: step.id, phase, uses: step.uses, durationMs: 0, attempts: 1, error, continued: step.continueOnError });
    return { outcome: 'failure', error };
  }

  /** Attempts with backoff between them, until one succeeds or the retries are spent. */
  private async attempts(
    step: RuntimeStep,
    phase: Phase,
    prepared: { kind: ErasedStepKind; withValue: unknown; description: string },
    started: number,
  ): Promise<StepRun> {
    const { kind } = prepared;
    const name = step.name === undefined ? null : this.displayName(step.name);
    const attempts = step.retries + 1;
    let last: StepResult = { ok: false, error: 'not run' };
    for (let attempt = 1; attempt <= attempts; attempt++) {
      this.emit({ event: 'start', step: step.id, phase, uses: step.uses, name, attempt, description: prepared.description });
      this.current = step.id;
      const result = await this.attempt(step, phase, kind.run.bind(kind), prepared.withValue, attempt);
      if ('interrupted' in result) {
        this.emit({ event: 'interrupted', step: step.id, signal: this.interruptSignalName() });
        return 'interrupted';
      }
      last = result;
      if (result.ok) {
        this.record(step, phase, { outcome: 'success', outputs: result.outputs });
        const checks = result.checks ? { checks: result.checks } : {};
        this.emit({
          event: 'ok',
          step: step.id,
          phase,
          uses: step.uses,
          durationMs: this.o.clock.now() - started,
          attempts: attempt,
          outputs: result.outputs,
          ...checks,
        });
        return { outcome: 'success' };
      }
      if (attempt < attempts) {
        const delayMs = backoffDelay(step.retryDelayMs, attempt, this.random);
        this.emit({ event: 'retry', step: step.id, phase, attempt, delayMs, error: result.error });
        try {
          await this.o.clock.sleep(delayMs, this.o.interrupt);
        } catch {
          this.emit({ event: 'interrupted', step: step.id, signal: this.interruptSignalName() });
          return 'interrupted';
        }
      }
    }
    const failure = last as Extract<StepResult, { ok: false }>;
    this.record(step, phase, { outcome: 'failure', outputs: failure.outputs ?? {} });
    this.emit({
      event: 'fail',
      step: step.id,
      phase,
      uses: step.uses,
      durationMs: this.o.clock.now() - started,
      attempts,
      error: failure.error,
      continued: step.continueOnError,
      ...(failure.outputs ? { outputs: failure.outputs } : {}),
      ...(failure.checks ? { checks: failure.checks } : {}),
    });
    return { outcome: 'failure', error: failure.error };
  }

  /** A step's name with its references filled in where they have values. */
  private displayName(name: string): string {
    try {
      return String(interpolateDeep(name, (r) => this.refs.lenient(r) ?? `<${r.kind}>`));
    } catch {
      return name;
    }
  }

  private conditionSource(step: RuntimeStep): string {
    const [section, index] = step.yamlPath as ['steps' | 'rollback', number];
    const src = section === 'steps' ? this.o.playbook.spec.steps[index]?.if : this.o.playbook.spec.rollback?.[index]?.if;
    return src ?? '';
  }

  private interruptSignalName(): string {
    const reason: unknown = this.o.interrupt.reason;
    return reason instanceof RunInterrupted ? reason.signalName : 'abort';
  }

  /** One attempt, bounded by the step's timeout and the run's interrupt signal. */
  private async attempt(
    step: RuntimeStep,
    phase: Phase,
    run: (w: unknown, ctx: StepContext) => Promise<StepResult>,
    withValue: unknown,
    attempt: number,
  ): Promise<AttemptResult> {
    const controller = new AbortController();
    const onInterrupt = (): void => controller.abort(this.o.interrupt.reason);
    this.o.interrupt.addEventListener('abort', onInterrupt, { once: true });
    // An interrupt that came while the step was being announced still stops it.
    if (this.o.interrupt.aborted) onInterrupt();
    // Timers run on the injected clock, so a test with a fake clock sees timeouts without waiting for them.
    const timers = new AbortController();
    const after = (ms: number, fire: () => void): void => {
      void this.o.clock.sleep(ms, timers.signal).then(fire, () => undefined);
    };
    const timeoutMs = step.timeoutMs;
    if (timeoutMs !== undefined) after(timeoutMs, () => controller.abort(new StepTimeout(`timed out after ${formatDuration(timeoutMs)}`)));
    const ctx: StepContext = {
      runId: this.o.runId,
      playbookName: this.o.playbook.spec.metadata.name,
      stepId: step.id,
      attempt,
      signal: controller.signal,
      interrupt: this.o.interrupt,
      clock: this.o.clock,
      timeScale: this.o.timeScale,
      playbookDir: this.o.playbook.dir,
      runDir: this.o.runDir,
      scratchDir: this.o.scratchDir,
      approver: this.o.approver,
      ...this.o.effects,
      engine: this.engineNow(),
      playbookEngine: this.o.engine,
      resumed: this.rechecked.has(step.id),
      measure: (m) => this.emit({ event: 'measurement', step: step.id, phase, ...m }),
      progress: (message, data) => this.emit({ event: 'progress', step: step.id, phase, message, ...(data ? { data } : {}) }),
      notice: (message) => this.emit({ event: 'progress', step: step.id, phase, message, notice: true }),
      emitResult: (text) => this.emit({ event: 'output', step: step.id, phase, text }),
    };
    // A step that ignores its signal is abandoned after a grace period rather than hanging the run.
    let abandon: (() => void) | undefined;
    const abandoned = new Promise<'abandoned'>((resolve) => {
      abandon = () => resolve('abandoned');
    });
    const onAbort = (): void => after(ABORT_GRACE_MS, () => abandon?.());
    controller.signal.addEventListener('abort', onAbort, { once: true });
    try {
      const settled = await Promise.race([run(withValue, ctx).then((r) => ({ r })), abandoned]);
      const reason: unknown = controller.signal.reason;
      // A step that completed despite the interrupt is journaled as done, so a resume does not repeat it.
      if (this.o.interrupt.aborted) return settled !== 'abandoned' && settled.r.ok ? settled.r : { interrupted: true };
      if (reason instanceof StepTimeout) {
        return { ok: false, error: settled === 'abandoned' ? `${reason.message} (and did not stop within ${ABORT_GRACE_MS / 1000}s)` : reason.message };
      }
      if (settled === 'abandoned') return { ok: false, error: 'step did not stop after being aborted' };
      return settled.r;
    } catch (e) {
      const reason: unknown = controller.signal.reason;
      if (this.o.interrupt.aborted) return { interrupted: true };
      if (reason instanceof StepTimeout) return { ok: false, error: reason.message };
      return { ok: false, error: `${step.uses} failed unexpectedly: ${errorMessage(e)}` };
    } finally {
      timers.abort();
      this.o.interrupt.removeEventListener('abort', onInterrupt);
    }
  }
}
