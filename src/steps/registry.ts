import type { z } from 'zod';
import { engineHaltStep, engineResumeStep, engineStartStep, engineStopStep, snapshotTakeStep, snapshotVerifyStep } from './engine-steps.js';
import { execStep } from './exec.js';
import { gateApproveStep } from './gate-approve.js';
import { httpStep } from './http.js';
import { fundingRecomputeStep, hotfixDeployStep, hotfixRollbackStep } from './hotfix.js';
import { integrityCheckStep } from './integrity-check.js';
import { reportIncidentStep, reportUsersStep } from './reports.js';
import { riskPreviewStep } from './risk-preview.js';
import { smokeTestnetStep } from './smoke-testnet.js';
import { engineDemoteStep, engineFailbackStep, enginePromoteStep, engineStandbyStep } from './standby.js';
import { trafficShiftStep } from './traffic-shift.js';
import { notifyStep } from './notify.js';
import type { DescribeContext, EngineTarget, StepContext, StepNeed, StepOutputs, StepResult, StepTemplates, StepTiming } from './types.js';
import { waitStep } from './wait.js';

/**
 * Every step kind, once, in the order the docs list them: the playbook schema's union, the list of
 * kinds and the registry below are all derived from this tuple.
 */
export const STEPS = [
  execStep,
  httpStep,
  waitStep,
  notifyStep,
  gateApproveStep,
  engineStartStep,
  engineHaltStep,
  engineResumeStep,
  engineStopStep,
  engineStandbyStep,
  enginePromoteStep,
  engineDemoteStep,
  engineFailbackStep,
  snapshotTakeStep,
  snapshotVerifyStep,
  integrityCheckStep,
  hotfixDeployStep,
  hotfixRollbackStep,
  smokeTestnetStep,
  riskPreviewStep,
  trafficShiftStep,
  fundingRecomputeStep,
  reportUsersStep,
  reportIncidentStep,
] as const;

export type Uses = (typeof STEPS)[number]['uses'];

/** The kinds' names, for messages ("known kinds: ..."). */
export const STEP_KINDS: readonly Uses[] = STEPS.map((k) => k.uses);

/** A step kind with its `with` type erased, for code that handles every kind alike. */
export interface ErasedStepKind {
  readonly uses: string;
  readonly with: z.ZodType;
  describe(w: unknown, ctx: DescribeContext): string;
  needs?(w: unknown, ctx: DescribeContext): StepNeed[];
  readonly templates?: StepTemplates;
  run(w: unknown, ctx: StepContext): Promise<StepResult>;
  primaryAfter?(outputs: StepOutputs): EngineTarget | undefined;
  readonly timing?: StepTiming<unknown>;
}

/** The step kinds a runner executes, by `uses`: injected, so a test can put a fake in place of a kind. */
export type StepRegistry = ReadonlyMap<string, ErasedStepKind>;

/**
 * Every kind of STEPS by its `uses`. The cast is sound because callers pass `describe`/`run` only a value
 * that the same kind's `with` schema has just parsed.
 */
export const REGISTRY: StepRegistry = new Map(STEPS.map((k) => [k.uses, k as unknown as ErasedStepKind]));

/** The kind for `uses` (the playbook schema admits only kinds of STEPS). */
export function stepKind(uses: Uses): ErasedStepKind {
  return REGISTRY.get(uses) as ErasedStepKind;
}
