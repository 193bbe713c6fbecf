import type { z } from 'zod';
import type { PlaybookStep } from '../playbook/schema.js';
import {
  engineHaltStep,
  engineResumeStep,
  engineStartStep,
  engineStopStep,
  snapshotTakeStep,
  snapshotVerifyStep,
} from './engine-steps.js';
import { execStep } from './exec.js';
import { gateApproveStep } from './gate-approve.js';
import { httpStep } from './http.js';
import { fundingRecomputeStep, hotfixDeployStep, hotfixRollbackStep } from './hotfix.js';
import { integrityCheckStep } from './integrity-check.js';
import { reportIncidentStep, reportUsersStep } from './reports.js';
import { smokeTestnetStep } from './smoke-testnet.js';
import { trafficShiftStep } from './traffic-shift.js';
import { notifyStep } from './notify.js';
import type { DescribeContext, StepContext, StepKind, StepNeed, StepResult } from './types.js';
import { waitStep } from './wait.js';

export type Uses = PlaybookStep['uses'];

type Registry = { [K in Uses]: StepKind<z.ZodType<Extract<PlaybookStep, { uses: K }>['with']>> };

/** Every step kind of the playbook schema; a kind without a handler here does not compile. */
export const registry = {
  exec: execStep,
  http: httpStep,
  wait: waitStep,
  notify: notifyStep,
  'gate.approve': gateApproveStep,
  'engine.start': engineStartStep,
  'engine.halt': engineHaltStep,
  'engine.resume': engineResumeStep,
  'engine.stop': engineStopStep,
  'snapshot.take': snapshotTakeStep,
  'snapshot.verify': snapshotVerifyStep,
  'integrity.check': integrityCheckStep,
  'hotfix.deploy': hotfixDeployStep,
  'hotfix.rollback': hotfixRollbackStep,
  'smoke.testnet': smokeTestnetStep,
  'traffic.shift': trafficShiftStep,
  'funding.recompute': fundingRecomputeStep,
  'report.users': reportUsersStep,
  'report.incident': reportIncidentStep,
} satisfies Registry;

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
  return registry[uses] as unknown as ErasedStepKind;
}
