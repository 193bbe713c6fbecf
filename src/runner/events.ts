import { ExitCode } from '../errors.js';
import type { OutputValue, StepCheck, StepOutputs } from '../steps/types.js';
import type { Measurement } from '../steps/analysis.js';
import type { RtoPrediction } from './predict.js';

export type Phase = 'main' | 'rollback';
export type StepOutcome = 'success' | 'failure' | 'skipped';
export type RunOutcome = 'success' | 'failed' | 'rollback-failed' | 'interrupted';

/** The exit code of each outcome of a run: the one map from outcome to code (docs/cli.md, Exit codes). */
export const EXIT_CODE_OF = {
  success: ExitCode.ok,
  failed: ExitCode.failed,
  'rollback-failed': ExitCode.humanNeeded,
  interrupted: ExitCode.interrupted,
} as const satisfies Record<RunOutcome, ExitCode>;
export type SkipReason = 'condition' | 'manual' | 'earlier-failure';

interface Base {
  ts: string;
  run: string;
}
interface StepBase extends Base {
  step: string;
  phase: Phase;
}

/**
 * Everything that happens in a run, as one typed stream. Every output is fed from it: the spinner,
 * plain lines, `--json`, the journal, JUnit and the incident report.
 */
export type RunEvent =
  | (Base & {
      event: 'run-start';
      step: null;
      playbook: string;
      file: string;
      sha256: string;
      pid: number;
      resumed: boolean;
      fromStep: string | null;
      steps: string[];
      rollbackSteps: string[];
      vars: Record<string, OutputValue>;
      varOverrides: Record<string, string>;
      timeScale: number;
      rto: string | null;
      incident: string | null;
      /** The status-update cadence of `comms:` (as written, e.g. 30m); null without one. */
      comms?: string | null;
      /** The RTO predicted from the state dir's earlier runs when the run started (a resumed run keeps its first). */
      rtoPrediction?: RtoPrediction;
    })
  | (StepBase & { event: 'start'; uses: string; name: string | null; attempt: number; description: string })
  | (StepBase & { event: 'recheck'; note: string })
  /** `notice`: news a person must see (a pause, a promotion), never thinned out like live values are. */
  | (StepBase & { event: 'progress'; message: string; data?: Record<string, OutputValue>; notice?: true })
  | (StepBase & { event: 'output'; text: string })
  /** One sample of a traffic shift's gates, each judged (Argo Rollouts' measurement). */
  | (StepBase & { event: 'measurement' } & Measurement)
  | (StepBase & { event: 'retry'; attempt: number; delayMs: number; error: string })
  | (StepBase & { event: 'ok'; uses: string; durationMs: number; attempts: number; outputs: StepOutputs; checks?: StepCheck[] })
  | (StepBase & {
      event: 'fail';
      uses: string;
      durationMs: number;
      attempts: number;
      error: string;
      continued: boolean;
      outputs?: StepOutputs;
      checks?: StepCheck[];
    })
  | (StepBase & { event: 'skip'; uses: string; name: string | null; reason: SkipReason; detail: string })
  /** A step finished in an earlier attempt of this run (resume); shown, not journaled again. */
  | (StepBase & { event: 'restored'; outcome: StepOutcome })
  /** A status update sent on the `comms:` cadence while the run lasts (not a step: it runs beside them). */
  | (Base & { event: 'comms'; step: null; channel: string; ok: boolean; message: string; error: string | null })
  | (Base & { event: 'rollback'; step: null; reason: string })
  | (Base & { event: 'rollback-end'; step: null; ok: boolean; failedSteps: string[] })
  | (Base & { event: 'interrupted'; step: string | null; signal: string })
  | (Base & { event: 'run-end'; step: null; outcome: RunOutcome; exitCode: number; durationMs: number; summary: string });

export type RunEventKind = RunEvent['event'];
export type EventOf<K extends RunEventKind> = Extract<RunEvent, { event: K }>;

/** An event before the runner stamps it with time and run id. */
export type RunEventBody = RunEvent extends infer E ? (E extends RunEvent ? Omit<E, 'ts' | 'run'> : never) : never;

/** Where events go: renderers, the journal, collectors. */
export interface EventSink {
  write(event: RunEvent): void;
  close?(): Promise<void> | void;
}
