import { z } from 'zod';
import { durationOrExpr } from './fields.js';
import { formatDuration, parseDuration } from '../util/duration.js';
import { defineStep, type StepResult } from './types.js';

export const waitWith = z
  .strictObject({
    duration: durationOrExpr.describe('how long to pause'),
  })
  .meta({ examples: [{ duration: '30s' }] });

export const waitStep = defineStep({
  uses: 'wait',
  with: waitWith,
  describe: (w, ctx) => {
    const ms = parseDuration(w.duration);
    if (ms === undefined) return `pause for ${w.duration}`;
    return ctx.timeScale === 1 ? `pause for ${w.duration}` : `pause for ${w.duration} (${formatDuration(ms * ctx.timeScale)} at time scale ${ctx.timeScale})`;
  },
  timing: { waitMs: (w, timeScale) => Math.round((parseDuration(w.duration) ?? 0) * timeScale) },
  async run(w, ctx): Promise<StepResult> {
    const ms = parseDuration(w.duration);
    if (ms === undefined) return { ok: false, error: `duration: '${w.duration}' is not a duration like 30s` };
    const scaled = Math.round(ms * ctx.timeScale);
    ctx.progress(`waiting ${formatDuration(scaled)}`);
    await ctx.clock.sleep(scaled, ctx.signal);
    return { ok: true, outputs: { waitedMs: scaled } };
  },
});
