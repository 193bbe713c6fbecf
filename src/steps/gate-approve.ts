import { z } from 'zod';
import { duration } from './fields.js';
import { parseDuration } from '../util/duration.js';
import { defineStep, type StepResult } from './types.js';

export const gateApproveWith = z
  .strictObject({
    message: z.string().min(1).describe('the question put to the operator'),
    expectedWait: duration.optional().describe('how long people usually take to answer; used only by the RTO prediction'),
  })
  .meta({ examples: [{ message: 'Resume trading on margin 1.4.3?', expectedWait: '10m' }] });

export const gateApproveStep = defineStep({
  uses: 'gate.approve',
  with: gateApproveWith,
  describe: (w) => `ask the operator: "${w.message}" (a TTY prompt, or --yes)${w.expectedWait ? `; people usually answer within ${w.expectedWait}` : ''}`,
  needs: () => [{ need: 'approval' }],
  timing: {
    personWaitMs: (w) => (w.expectedWait === undefined ? undefined : parseDuration(w.expectedWait)),
    // The approver's `by`: `tty:<user>` is a person at the terminal; `--yes` and `rehearsal` answer at once.
    answeredByPerson: (outputs) => [outputs.approvedBy, outputs.declinedBy].some((by) => typeof by === 'string' && by.startsWith('tty:')),
  },
  async run(w, ctx): Promise<StepResult> {
    const answer = await ctx.approver.approve(w.message, ctx.signal);
    const decidedAt = new Date(ctx.clock.now()).toISOString();
    if (answer.approved) return { ok: true, outputs: { approvedBy: answer.by, decidedAt } };
    if (answer.unavailable) return { ok: false, error: answer.unavailable };
    return { ok: false, error: `not approved (answered by ${answer.by})`, outputs: { declinedBy: answer.by, decidedAt } };
  },
});
