import type { z } from 'zod';
import type { Clock } from '../util/clock.js';
import type { Measurement } from './analysis.js';
import type { EngineSupervisor, EngineTarget, Exec, ReportWriter, SocketCommand } from './effects.js';

export type { EngineTarget } from './effects.js';

export type OutputValue = string | number | boolean | null;
export type StepOutputs = Record<string, OutputValue>;

/** A check inside a step (a smoke-test case, a gate evaluation), reported as its own JUnit test case. */
export interface StepCheck {
  name: string;
  ok: boolean;
  message?: string;
  durationMs?: number;
}

/** Expected outcomes of a step come back as values; exceptions are for bugs. */
export type StepResult = { ok: true; outputs: StepOutputs; checks?: StepCheck[] } | { ok: false; error: string; outputs?: StepOutputs; checks?: StepCheck[] };

export interface ApprovalAnswer {
  approved: boolean;
  /** Who or what answered: `--yes`, `tty:<user>`, `rehearsal`. */
  by: string;
  /** Why no answer could be had (no TTY); set only when not approved for that reason. */
  unavailable?: string;
}

export interface Approver {
  approve(message: string, signal: AbortSignal): Promise<ApprovalAnswer>;
}

/**
 * What a running step may touch: every side effect goes through here. It writes files only under
 * `runDir`, `scratchDir`, the engine's data dir, and the paths its own `with` names.
 */
export interface StepContext {
  runId: string;
  playbookName: string;
  stepId: string;
  attempt: number;
  signal: AbortSignal;
  /**
   * The run's own interrupt (Ctrl-C, SIGTERM): aborted with `signal` when the run is stopped, but not
   * when only this step's timeout fired, so a step can tell "stop where you are" from "give up and undo".
   */
  interrupt: AbortSignal;
  clock: Clock;
  /** Multiplies waits and bake times; 1 for a real run, smaller in rehearsal. */
  timeScale: number;
  /** Directory of the playbook file: relative paths in `with` resolve against it. */
  playbookDir: string;
  /** The run's own folder in the state dir (journal, reports). */
  runDir: string;
  /** Where a step may make throwaway folders (testnet engines); it removes what it made. */
  scratchDir: string;
  approver: Approver;
  /** Commands (`exec`), HTTP (`http`, `notify`), admin sockets (gateways), engines and the reports built from the journal. */
  exec: Exec;
  fetch: typeof globalThis.fetch;
  socket: SocketCommand;
  engines: EngineSupervisor;
  reports: ReportWriter;
  /**
   * The engine the steps act on now: the playbook's, or the standby a finished `engine.promote` made
   * the primary (and the playbook's again after a switch back). Undefined when the playbook has none.
   */
  engine: EngineTarget | undefined;
  /** The playbook's own engine (`engine:`, or the rehearsal's scratch engine), whichever is primary now. */
  playbookEngine: EngineTarget | undefined;
  /** True when this step was running when the run last stopped (a crash, Ctrl-C) and now runs again. */
  resumed: boolean;
  /** A traffic-shift sample with every gate judged, for the journal, the live view, JUnit and the report. */
  measure(m: Measurement): void;
  /** A progress update for the renderers and the journal. */
  progress(message: string, data?: Record<string, OutputValue>): void;
  /** News a person must see at once (a paused shift, a promotion): shown on its own line, never thinned out. */
  notice(message: string): void;
  /** A result line for stdout (e.g. `notify` on the stdout channel). */
  emitResult(text: string): void;
}

export interface DescribeContext {
  playbookDir: string;
  timeScale: number;
  engine?: EngineTarget | undefined;
  playbookEngine?: EngineTarget | undefined;
}

export function engineLabel(target: EngineTarget | undefined): string {
  if (!target) return '(no engine: the playbook has no engine section)';
  return 'dataDir' in target ? target.dataDir : target.url;
}

export function noEngine(kind: string): StepResult {
  return { ok: false, error: `${kind} needs an engine: add engine.dataDir (or engine.url and engine.tokenFile) to the playbook` };
}

/**
 * What a step will need when it runs, so preflight can check it before the first step acts. Paths are
 * absolute; `field` names the `with` key, to point at its line in the playbook.
 */
export type StepNeed =
  | { need: 'file'; field: string; path: string }
  | { need: 'dir'; field: string; path: string }
  /** `path`: the step's own PATH, when its `env` sets one. */
  | { need: 'command'; field: string; command: string; cwd: string; path?: string | undefined }
  | { need: 'approval' }
  /** A PromQL query the step will run: preflight asks the server once, so a malformed one stops the run before it acts. */
  | { need: 'promql'; field: string; address: string; headers: Record<string, string>; timeoutMs: number; query: string }
  /** A running engine; `starts` when this step starts one itself; `local` when it needs engine.dataDir. */
  | { need: 'engine'; starts?: boolean; local?: boolean };

/**
 * Placeholders a step kind fills in itself at run time, in the `with` fields it names (traffic.shift's
 * command provider: `${{ weight }}`, `${{ remainder }}`, `${{ stage }}`). Playbook interpolation and the
 * loader's checks leave them alone there, and only there.
 */
export interface StepTemplates {
  /** Paths inside `with`; everything under each is covered. */
  paths: readonly (readonly string[])[];
  names: readonly string[];
}

/**
 * How the RTO prediction (src/runner/predict.ts) times a kind beyond what runs observed: the waits the
 * runner scales with the time scale, and whether the step waits for a person's answer.
 */
export interface StepTiming<W> {
  /** The configured waits of one run (bakes, dwells, pauses) at this time scale, as `run` scales them; pure. */
  waitMs?(w: W, timeScale: number): number;
  /** The step waits for a person: how long people usually take to answer (`expectedWait`), when configured. */
  personWaitMs?(w: W): number | undefined;
  /** Whether these outputs say a person answered (not `--yes`, not a rehearsal). */
  answeredByPerson?(outputs: StepOutputs): boolean;
}

/** A step kind: its `with` schema, its dry-run description and its action. */
export interface StepKind<W extends z.ZodType, U extends string = string> {
  readonly uses: U;
  readonly with: W;
  /** One line for the plan, with resolved values; never has side effects. */
  describe(w: z.output<W>, ctx: DescribeContext): string;
  /** What it will need at run time (files, commands, an engine, an answer); pure, no I/O. */
  needs?(w: z.output<W>, ctx: DescribeContext): StepNeed[];
  /** Placeholders this kind fills in itself (`${{ weight }}`), which playbook interpolation must leave alone. */
  readonly templates?: StepTemplates;
  /** Do the work; safe to call again after an interruption (checks before it acts). */
  run(w: z.output<W>, ctx: StepContext): Promise<StepResult>;
  /**
   * The engine that is the primary once this step finished with these outputs (a promotion, a switch
   * back): the steps after it act on that one. Undefined when the step does not move the primary.
   */
  primaryAfter?(outputs: StepOutputs): EngineTarget | undefined;
  /** For the RTO prediction: the kind's configured waits and person waits (none when absent). */
  readonly timing?: StepTiming<z.output<W>>;
}

/** A step kind, its `uses` kept as a literal type (the playbook schema's union is derived from it). */
export function defineStep<const U extends string, W extends z.ZodType>(kind: StepKind<W, U>): StepKind<W, U> {
  return kind;
}

export function errorMessage(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as Error & { cause?: unknown }).cause;
    return cause instanceof Error && cause.message && !e.message.includes(cause.message) ? `${e.message}: ${cause.message}` : e.message;
  }
  return String(e);
}
