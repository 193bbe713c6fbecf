import { z } from 'zod';
import { defineStep, engineLabel, errorMessage, noEngine, type StepResult } from './types.js';

export const riskPreviewWith = z
  .strictObject({
    maxLiquidations: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe('fail the step (before the approval it informs) when more accounts than this would be liquidated if trading opened now'),
    show: z.number().int().min(0).max(1000).default(20).describe('accounts listed in progress, worst first'),
  })
  .prefault({})
  .meta({ examples: [{ maxLiquidations: 0 }] });

/** Who would be liquidated, or put in reduce-only, if trading opened at the current marks: read before the approval to resume. */
export const riskPreviewStep = defineStep({
  uses: 'risk.preview',
  with: riskPreviewWith,
  needs: () => [{ need: 'engine' }],
  describe: (w, ctx) =>
    `preview the risk of opening ${engineLabel(ctx.engine)} at the current marks: who would be liquidated or restricted${w.maxLiquidations === undefined ? '' : `; fail above ${w.maxLiquidations} liquidations`}`,
  async run(w, ctx): Promise<StepResult> {
    if (!ctx.engine) return noEngine('risk.preview');
    try {
      const client = await ctx.engines.connect(ctx.engine);
      const r = await client.riskPreview();
      for (const a of r.accounts.slice(0, w.show)) {
        ctx.progress(
          `${a.account}: ${a.wouldLiquidate ? 'WOULD BE LIQUIDATED' : a.band}, uniMMR ${a.uniMMR ?? '–'} (equity ${a.equity}, maintenance ${a.maintenance})${a.isolatedBelow.length ? `, isolated below: ${a.isolatedBelow.join(', ')}` : ''}`,
          { riskAccount: a.account, band: a.band, uniMMR: a.uniMMR, equity: a.equity, maintenance: a.maintenance, wouldLiquidate: a.wouldLiquidate },
        );
      }
      const c = r.counts;
      const outputs = { accounts: c.accounts, wouldLiquidate: c.wouldLiquidate, liquidationBand: c.liquidation, reduceOnly: c.reduceOnly, warning: c.warning };
      const checks =
        w.maxLiquidations === undefined
          ? []
          : [
              {
                name: `at most ${w.maxLiquidations} liquidations if trading opened now`,
                ok: c.wouldLiquidate <= w.maxLiquidations,
                message: `${c.wouldLiquidate} would be`,
              },
            ];
      if (w.maxLiquidations !== undefined && c.wouldLiquidate > w.maxLiquidations) {
        const who = r.accounts
          .filter((a) => a.wouldLiquidate)
          .slice(0, 5)
          .map((a) => a.account)
          .join(', ');
        return {
          ok: false,
          error: `${c.wouldLiquidate} accounts would be liquidated if trading opened now (maxLiquidations ${w.maxLiquidations}): ${who}`,
          outputs,
          checks,
        };
      }
      ctx.notice(
        `risk at the current marks: ${c.wouldLiquidate} would be liquidated, ${c.reduceOnly} reduce-only, ${c.warning} warned, of ${c.accounts} accounts with positions`,
      );
      return { ok: true, outputs, checks };
    } catch (e) {
      if (ctx.signal.aborted) throw e;
      return { ok: false, error: `risk.preview: ${errorMessage(e)}` };
    }
  },
});
