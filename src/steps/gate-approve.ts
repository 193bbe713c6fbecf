import { z } from 'zod';
import { defineStep, type StepResult } from './types.js';

export const gateApproveWith = z
  .strictObject({
    message: z.string().min(1).describe('the question put to the operator'),
  })
  .meta({ examples: [{ message: 'Resume trading on margin 1.4.3?' }] });

export const gateApproveStep = defineStep({
  uses: 'gate.approve',
  with: gateApproveWith,
  describe: (w) => `ask the operator: "${w.message}" (a TTY prompt, or --yes)`,
  needs: () => [{ need: 'approval' }],
  async run(w, ctx): Promise<StepResult> {
    const answer = await ctx.approver.approve(w.message, ctx.signal);
    const decidedAt = new Date(ctx.clock.now()).toISOString();
    if (answer.approved) return { ok: true, outputs: { approvedBy: answer.by, decidedAt } };
    if (answer.unavailable) return { ok: false, error: answer.unavailable };
    return { ok: false, error: `not approved (answered by ${answer.by})`, outputs: { declinedBy: answer.by, decidedAt } };
  },
});
