import { type Reference, type Value } from '../playbook/expressions.js';
import type { LoadedPlaybook, RuntimeStep } from '../playbook/load.js';
import { stepKind } from '../steps/registry.js';
import type { EngineTarget } from '../steps/types.js';
import type { RunState } from './journal.js';
import { interpolateWith, UnresolvedReference, type ResolvedVars, type StepState } from './scope.js';
import { REDACTED, type Redactor } from '../util/redact.js';

export type PlanStepStatus = 'pending' | 'done' | 'manual' | 'rerun';

export interface PlanStep {
  id: string;
  uses: string;
  name: string | null;
  description: string;
  condition: string | null;
  timeoutMs: number | null;
  retries: number;
  continueOnError: boolean;
  status: PlanStepStatus;
}

/** What a run would do: pure data, printed by `plan` and `run --dry-run`. */
export interface Plan {
  playbook: string;
  file: string;
  sha256: string;
  incident: string | null;
  rto: string | null;
  resumeOf: string | null;
  fromStep: string | null;
  timeScale: number;
  steps: PlanStep[];
  rollback: PlanStep[];
}

export interface PlanOptions {
  engine?: EngineTarget | undefined;
  vars: ResolvedVars;
  env: NodeJS.ProcessEnv;
  redactor: Redactor;
  timeScale: number;
  fromStep?: string | undefined;
  resume?: RunState | undefined;
}

/** Describe a step with every value that can be known before the run filled in. */
export function describeStep(step: RuntimeStep, opts: PlanOptions, playbookDir: string): string {
  const kind = stepKind(step.uses);
  const placeholder = (ref: Reference): Value => {
    switch (ref.kind) {
      case 'var':
        return opts.vars.secretNames.has(ref.name) ? REDACTED : (opts.vars.values[ref.name] ?? `<vars.${ref.name}>`);
      case 'env':
        return opts.env[ref.name] ?? `<env.${ref.name}>`;
      case 'step-output':
        return `<steps.${ref.step}.outputs.${ref.name}>`;
      case 'step-outcome':
        return `<steps.${ref.step}.outcome>`;
    }
  };
  let filled: unknown;
  try {
    filled = interpolateWith(step.with, stepKind(step.uses).templates, placeholder);
  } catch (e) {
    // fromJSON() of a placeholder is not JSON: describe the step as written.
    if (!(e instanceof UnresolvedReference)) throw e;
    filled = step.with;
  }
  const parsed = kind.with.safeParse(filled);
  const ctx = { playbookDir, timeScale: opts.timeScale, engine: opts.engine, playbookEngine: opts.engine };
  return opts.redactor.text(kind.describe(parsed.success ? parsed.data : step.with, ctx));
}

function conditionText(pb: LoadedPlaybook, step: RuntimeStep, phase: 'steps' | 'rollback', index: number): string | null {
  const src = phase === 'steps' ? pb.spec.steps[index]?.if : pb.spec.rollback?.[index]?.if;
  return src ?? null;
}

/** What a run does with a main step: the one decision, from the playbook and the journal, that `plan` shows and `run` follows. */
export type StepDisposition =
  /** Finished in an earlier attempt of this run (resume): its result is restored, it does not run. */
  | { do: 'restore'; previous: StepState }
  /** Before --from-step: done by hand. */
  | { do: 'manual' }
  /** Running when the run stopped: checked and run again. */
  | { do: 'recheck' }
  | { do: 'run' };

/** Index of the --from-step step (0 without one). */
export function fromIndexOf(pb: LoadedPlaybook, fromStep: string | undefined): number {
  return fromStep === undefined ? 0 : pb.steps.findIndex((s) => s.id === fromStep);
}

export function dispositionOf(step: RuntimeStep, index: number, o: { resume?: RunState | undefined; fromIndex: number }): StepDisposition {
  const previous = o.resume?.finished.get(step.id);
  if (previous) return { do: 'restore', previous };
  if (index < o.fromIndex) return { do: 'manual' };
  if (o.resume?.inFlight.has(`main:${step.id}`)) return { do: 'recheck' };
  return { do: 'run' };
}

const PLAN_STATUS: Record<StepDisposition['do'], PlanStepStatus> = { restore: 'done', manual: 'manual', recheck: 'rerun', run: 'pending' };

export function buildPlan(pb: LoadedPlaybook, opts: PlanOptions): Plan {
  const fromIndex = fromIndexOf(pb, opts.fromStep);
  const statusOf = (step: RuntimeStep, index: number): PlanStepStatus => PLAN_STATUS[dispositionOf(step, index, { resume: opts.resume, fromIndex }).do];
  const toPlanStep = (step: RuntimeStep, index: number, phase: 'steps' | 'rollback'): PlanStep => ({
    id: step.id,
    uses: step.uses,
    name: step.name ?? null,
    description: describeStep(step, opts, pb.dir),
    condition: conditionText(pb, step, phase, index),
    timeoutMs: step.timeoutMs ?? null,
    retries: step.retries,
    continueOnError: step.continueOnError,
    status: phase === 'steps' ? statusOf(step, index) : opts.resume?.rollbackFinished.has(step.id) ? 'done' : 'pending',
  });
  return {
    playbook: pb.spec.metadata.name,
    file: pb.file,
    sha256: pb.sha256,
    incident: pb.spec.metadata.incident ?? null,
    rto: pb.spec.metadata.rto ?? null,
    resumeOf: opts.resume?.runId ?? null,
    fromStep: opts.fromStep ?? null,
    timeScale: opts.timeScale,
    steps: pb.steps.map((s, i) => toPlanStep(s, i, 'steps')),
    rollback: pb.rollback.map((s, i) => toPlanStep(s, i, 'rollback')),
  };
}
