import { z } from 'zod';
import {
  engineHaltWith,
  engineResumeWith,
  engineStartWith,
  engineStopStep,
  snapshotTakeStep,
  snapshotVerifyWith,
} from '../steps/engine-steps.js';
import { execWith } from '../steps/exec.js';
import { gateApproveWith } from '../steps/gate-approve.js';
import { fundingRecomputeWith, hotfixDeployWith, hotfixRollbackWith } from '../steps/hotfix.js';
import { integrityCheckWith } from '../steps/integrity-check.js';
import { reportIncidentWith, reportUsersWith } from '../steps/reports.js';
import { smokeTestnetWith } from '../steps/smoke-testnet.js';
import { trafficShiftWith } from '../steps/traffic-shift.js';
import { httpWith } from '../steps/http.js';
import { notifyWith } from '../steps/notify.js';
import { waitWith } from '../steps/wait.js';
import { duration, identifier, scalar } from './fields.js';

export const API_VERSION = 'recoverctl/v1';

/** Fields every step has, whatever it `uses`. */
const commonStepFields = {
  name: z.string().min(1).optional().describe('a human title for progress and reports'),
  timeout: duration.optional().describe('per attempt; the step is aborted when it runs longer'),
  retries: z.number().int().min(0).max(10).optional().describe('attempts after the first, with exponential backoff and jitter'),
  retryDelay: duration.optional().describe('backoff before the first retry (default 1s), doubling each time'),
  if: z.string().min(1).optional().describe("a condition, e.g. ${{ steps.integrity.outcome == 'success' }}"),
  continueOnError: z.boolean().optional().describe('a failure is recorded but does not fail the run'),
};

function stepOf<const U extends string, W extends z.ZodType, I extends z.ZodType>(uses: U, withSchema: W, id: I) {
  return z.strictObject({ id, uses: z.literal(uses), with: withSchema, ...commonStepFields });
}

/** The step kinds and their `with` schemas; the registry (src/steps/registry.ts) must match. */
const kinds = {
  exec: execWith,
  http: httpWith,
  wait: waitWith,
  notify: notifyWith,
  'gate.approve': gateApproveWith,
  'engine.start': engineStartWith,
  'engine.halt': engineHaltWith,
  'engine.resume': engineResumeWith,
  'engine.stop': engineStopStep.with,
  'snapshot.take': snapshotTakeStep.with,
  'snapshot.verify': snapshotVerifyWith,
  'integrity.check': integrityCheckWith,
  'hotfix.deploy': hotfixDeployWith,
  'hotfix.rollback': hotfixRollbackWith,
  'smoke.testnet': smokeTestnetWith,
  'traffic.shift': trafficShiftWith,
  'funding.recompute': fundingRecomputeWith,
  'report.users': reportUsersWith,
  'report.incident': reportIncidentWith,
} as const;

/** One discriminated union over every kind; main steps and rollback steps differ only in their id. */
function stepUnion<I extends z.ZodType>(id: I) {
  return z.discriminatedUnion('uses', [
    stepOf('exec', kinds.exec, id),
    stepOf('http', kinds.http, id),
    stepOf('wait', kinds.wait, id),
    stepOf('notify', kinds.notify, id),
    stepOf('gate.approve', kinds['gate.approve'], id),
    stepOf('engine.start', kinds['engine.start'], id),
    stepOf('engine.halt', kinds['engine.halt'], id),
    stepOf('engine.resume', kinds['engine.resume'], id),
    stepOf('engine.stop', kinds['engine.stop'], id),
    stepOf('snapshot.take', kinds['snapshot.take'], id),
    stepOf('snapshot.verify', kinds['snapshot.verify'], id),
    stepOf('integrity.check', kinds['integrity.check'], id),
    stepOf('hotfix.deploy', kinds['hotfix.deploy'], id),
    stepOf('hotfix.rollback', kinds['hotfix.rollback'], id),
    stepOf('smoke.testnet', kinds['smoke.testnet'], id),
    stepOf('traffic.shift', kinds['traffic.shift'], id),
    stepOf('funding.recompute', kinds['funding.recompute'], id),
    stepOf('report.users', kinds['report.users'], id),
    stepOf('report.incident', kinds['report.incident'], id),
  ]);
}

export const stepSchema = stepUnion(identifier.describe('unique step id'));
export const rollbackStepSchema = stepUnion(identifier.optional().describe('optional in rollback; defaults to rollback-N'));

export const STEP_KINDS = Object.keys(kinds) as (keyof typeof kinds)[];

export const varSchema = z.union([
  scalar,
  z
    .strictObject({
      value: scalar.optional().describe('the value; may be ${{ env.X }}'),
      file: z
        .string()
        .min(1)
        .optional()
        .describe('read the value from this file (relative to the playbook) when the run starts, less one trailing newline; not with value'),
      secret: z.boolean().optional().describe('redact the value from every output, report and the journal'),
      description: z.string().optional(),
    })
    .refine((v) => v.value === undefined || v.file === undefined, {
      error: 'give value or file, not both',
      path: ['file'],
    })
    .meta({ not: { required: ['value', 'file'] } }),
]);

export const engineSchema = z.union([
  z.strictObject({
    dataDir: z.string().min(1).describe('production engine state, relative to the playbook'),
  }),
  z.strictObject({
    url: z.string().min(1).describe('a running engine, e.g. http://127.0.0.1:7070'),
    tokenFile: z.string().min(1).describe('file holding its bearer token'),
  }),
]);

export const playbookSchema = z
  .strictObject({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal('Playbook'),
    metadata: z.strictObject({
      name: identifier.describe('playbook name'),
      incident: z.string().optional().describe('incident reference, free text'),
      description: z.string().optional(),
      rto: duration.optional().describe('recovery time objective; the report flags a breach'),
    }),
    engine: engineSchema.optional(),
    rehearsal: z
      .strictObject({
        timeScale: z.number().positive().max(1).optional().describe('multiplies waits and bakes in rehearsal'),
        expectOutcome: z.enum(['success', 'failed', 'rollback-failed']).optional().describe('what a rehearsal of this playbook should end in (drills expect failed); rehearse --all checks it'),
      })
      .optional(),
    vars: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_-]*$/), varSchema).optional(),
    steps: z.array(stepSchema).min(1, { error: 'a playbook needs at least one step' }),
    rollback: z.array(rollbackStepSchema).optional(),
  })
  .meta({ title: 'recoverctl playbook', description: 'A recovery playbook (apiVersion recoverctl/v1).' });

export type PlaybookSpec = z.output<typeof playbookSchema>;
export type PlaybookStep = z.output<typeof stepSchema>;
export type RollbackStep = z.output<typeof rollbackStepSchema>;

/** JSON Schema of the playbook format, for editors (yaml-language-server). */
export function playbookJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(playbookSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
}
