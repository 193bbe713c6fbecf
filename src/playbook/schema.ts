import { z } from 'zod';
import { STEP_KINDS, STEPS } from '../steps/registry.js';
import { commsSchema } from '../steps/notify-channels.js';
import type { StepKind } from '../steps/types.js';
import { duration, identifier, scalar } from '../steps/fields.js';

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

/** The schema of a step of kind K: its id, `uses: K['uses']`, its `with`, and the common fields. */
type StepSchemaOf<K, I extends z.ZodType> = K extends StepKind<infer W, infer U> ? ReturnType<typeof stepOf<U, W, I>> : never;
type StepSchemas<T extends readonly unknown[], I extends z.ZodType> = { -readonly [P in keyof T]: StepSchemaOf<T[P], I> };

/**
 * One discriminated union over every kind in `STEPS` (src/steps/registry.ts), the one list of kinds;
 * main steps and rollback steps differ only in their id. The cast only restores the tuple type that
 * `map` loses: each element is exactly `stepOf(kind.uses, kind.with, id)`.
 */
function stepUnion<I extends z.ZodType>(id: I) {
  const options = STEPS.map((k) => stepOf(k.uses, k.with, id)) as unknown as StepSchemas<typeof STEPS, I>;
  return z.discriminatedUnion('uses', options);
}

export const stepSchema = stepUnion(identifier.describe('unique step id'));
export const rollbackStepSchema = stepUnion(identifier.optional().describe('optional in rollback; defaults to rollback-N'));

export { STEP_KINDS };

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
    comms: commsSchema.optional().describe('status updates at a fixed cadence while the run lasts (current step, elapsed, RTO budget left)'),
    rehearsal: z
      .strictObject({
        timeScale: z.number().positive().max(1).optional().describe('multiplies waits and bakes in rehearsal'),
        expectOutcome: z
          .enum(['success', 'failed', 'rollback-failed'])
          .optional()
          .describe('what a rehearsal of this playbook should end in (drills expect failed); rehearse --all checks it'),
        gateway: z
          .enum(['haproxy'])
          .optional()
          .describe('start HAProxy in front of the scratch engine (canary `engine`, remainder `sorry`) and pass vars.gatewaySocket and vars.gatewayUrl'),
        prometheus: z.boolean().optional().describe('start Prometheus scraping the scratch engine and pass vars.prometheusUrl'),
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
  return z.toJSONSchema(playbookSchema, { io: 'input', unrepresentable: 'any' });
}
