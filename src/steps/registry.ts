import type { z } from 'zod';
import { engineHaltStep, engineResumeStep, engineStartStep, engineStopStep, snapshotTakeStep, snapshotVerifyStep } from './engine-steps.js';
import { execStep } from './exec.js';
import { gateApproveStep } from './gate-approve.js';
import { httpStep } from './http.js';
import { fundingRecomputeStep, hotfixDeployStep, hotfixRollbackStep } from './hotfix.js';
import { integrityCheckStep } from './integrity-check.js';
import { reportIncidentStep, reportUsersStep } from './reports.js';
import { smokeTestnetStep } from './smoke-testnet.js';
import { trafficShiftStep } from './traffic-shift.js';
import { notifyStep } from './notify.js';
import type { DescribeContext, StepContext, StepNeed, StepResult } from './types.js';
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
  snapshotTakeStep,
  snapshotVerifyStep,
  integrityCheckStep,
  hotfixDeployStep,
  hotfixRollbackStep,
  smokeTestnetStep,
  trafficShiftStep,
  fundingRecomputeStep,
  reportUsersStep,
  reportIncidentStep,
] as const;

export type Uses = (typeof STEPS)[number]['uses'];

/** The kinds' names, for messages ("known kinds: ..."). */
export const STEP_KINDS: readonly Uses[] = STEPS.map((k) => k.uses);

const byUses = new Map<string, (typeof STEPS)[number]>(STEPS.map((k) => [k.uses, k]));

/** A step kind with its `with` type erased, for code that handles every kind alike. */
export interface ErasedStepKind {
  readonly uses: string;
  readonly with: z.ZodType;
  describe(w: unknown, ctx: DescribeContext): string;
  needs?(w: unknown, ctx: DescribeContext): StepNeed[];
  run(w: unknown, ctx: StepContext): Promise<StepResult>;
}

/**
 * The kind for `uses`. The cast is sound because callers pass `describe`/`run` only a value that the
 * same kind's `with` schema has just parsed.
 */
export function stepKind(uses: Uses): ErasedStepKind {
  return byUses.get(uses) as unknown as ErasedStepKind;
}
