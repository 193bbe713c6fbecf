import type { z } from 'zod';
import type { Clock } from '../util/clock.js';
import type { EngineSupervisor, EngineTarget, Exec, ReportWriter } from './effects.js';

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
  /** Commands (`exec`), HTTP (`http`, `notify`), engines and the reports built from the journal. */
  exec: Exec;
  fetch: typeof globalThis.fetch;
  engines: EngineSupervisor;
  reports: ReportWriter;
  /** The playbook's engine, resolved against its folder; undefined when it has none. */
  engine: EngineTarget | undefined;
  /** A progress update for the renderers and the journal. */
  progress(message: string, data?: Record<string, OutputValue>): void;
  /** A result line for stdout (e.g. `notify` on the stdout channel). */
  emitResult(text: string): void;
}

export interface DescribeContext {
  playbookDir: string;
  timeScale: number;
  engine?: EngineTarget | undefined;
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
  /** A running engine; `starts` when this step starts one itself; `local` when it needs engine.dataDir. */
  | { need: 'engine'; starts?: boolean; local?: boolean };

/** A step kind: its `with` schema, its dry-run description and its action. */
export interface StepKind<W extends z.ZodType, U extends string = string> {
  readonly uses: U;
  readonly with: W;
  /** One line for the plan, with resolved values; never has side effects. */
  describe(w: z.output<W>, ctx: DescribeContext): string;
  /** What it will need at run time (files, commands, an engine, an answer); pure, no I/O. */
  needs?(w: z.output<W>, ctx: DescribeContext): StepNeed[];
  /** Do the work; safe to call again after an interruption (checks before it acts). */
  run(w: z.output<W>, ctx: StepContext): Promise<StepResult>;
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
