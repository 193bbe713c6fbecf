import { resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { defineStep, errorMessage, type StepResult } from './types.js';

export const reportUsersWith = z.strictObject({
  snapshot: z.string().min(1).describe('the snapshot whose order status is reported (taken at the halt), relative to the playbook'),
  out: z.string().min(1).describe('folder for one JSON and one CSV file per affected account'),
});

export const reportUsersStep = defineStep({
  uses: 'report.users',
  with: reportUsersWith,
  needs: (w, ctx) => [{ need: 'file', field: 'snapshot', path: resolvePath(ctx.playbookDir, w.snapshot) }],
  describe: (w) => `write each affected account's orders, positions and balances from ${w.snapshot} to ${w.out} (JSON and CSV)`,
  async run(w, ctx): Promise<StepResult> {
    const { SnapshotError } = await import('../snapshot/format.js');
    try {
      const out = resolvePath(ctx.playbookDir, w.out);
      const r = await ctx.reports.users(resolvePath(ctx.playbookDir, w.snapshot), out);
      ctx.progress(`${r.accounts} accounts reported`);
      return { ok: true, outputs: { accounts: r.accounts, files: r.files, dir: out, seq: r.seq, openOrders: r.openOrders } };
    } catch (e) {
      if (e instanceof SnapshotError) return { ok: false, error: e.message };
      return { ok: false, error: `report.users: ${errorMessage(e)}` };
    }
  },
});

export const reportIncidentWith = z
  .strictObject({
    out: z.string().min(1).optional().describe('folder for the report; default the run folder in the state dir'),
    formats: z
      .array(z.enum(['md', 'json', 'html']))
      .min(1)
      .default(['md', 'json', 'html']),
  })
  .prefault({});

export const reportIncidentStep = defineStep({
  uses: 'report.incident',
  with: reportIncidentWith,
  describe: (w) => `write the incident timeline (${w.formats.join(', ')}) to ${w.out ?? 'the run folder'}`,
  async run(w, ctx): Promise<StepResult> {
    try {
      let fallback: { at: string | null; reason: string | null } = { at: null, reason: null };
      if (ctx.engine) {
        // The report matters most when the engine is down: then detection comes from the journal alone.
        const h = await ctx.engines
          .connect(ctx.engine)
          .then((c) => c.health())
          .catch(() => undefined);
        if (h?.haltedAt) fallback = { at: h.haltedAt, reason: h.haltReason };
      }
      const out = w.out === undefined ? ctx.runDir : resolvePath(ctx.playbookDir, w.out);
      const r = await ctx.reports.incident({ runDir: ctx.runDir, out, formats: w.formats, fallback, now: new Date(ctx.clock.now()), self: ctx.stepId });
      return { ok: true, outputs: { dir: out, steps: r.steps, rtoMs: r.rtoMs, rtoBreached: r.rtoBreached, ...r.files } };
    } catch (e) {
      return { ok: false, error: `report.incident: ${errorMessage(e)}` };
    }
  },
});
