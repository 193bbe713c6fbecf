import { join, resolve as resolvePath } from 'node:path';
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
    const { writeUserReports } = await import('../report/users.js');
    const { SnapshotError } = await import('../snapshot/format.js');
    try {
      const out = resolvePath(ctx.playbookDir, w.out);
      const r = await writeUserReports(resolvePath(ctx.playbookDir, w.snapshot), out);
      ctx.progress(`${r.accounts} accounts reported`);
      return { ok: true, outputs: { accounts: r.accounts, files: r.files, dir: out, seq: r.seq } };
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
    const { mkdir, writeFile } = await import('node:fs/promises');
    // The one known breach of the steps layer: the journal reader should reach steps through StepContext (issue 11, Deliver 2).
    // eslint-disable-next-line import-x/no-restricted-paths -- until then, reading the run's journal needs runner/journal
    const { readJournal } = await import('../runner/journal.js');
    const { buildIncident, detectionOf, renderHtml, renderMarkdown } = await import('../report/incident.js');
    try {
      const { events } = readJournal(join(ctx.runDir, 'journal.ndjson'));
      let fallback: { at: string | null; reason: string | null } = { at: null, reason: null };
      if (ctx.engine) {
        // The report matters most when the engine is down: then detection comes from the journal alone.
        const { connect } = await import('../engine-client/supervisor.js');
        const h = await connect(ctx.engine)
          .then((c) => c.health())
          .catch(() => undefined);
        if (h?.haltedAt) fallback = { at: h.haltedAt, reason: h.haltReason };
      }
      const report = buildIncident(events, detectionOf(events, fallback), new Date(ctx.clock.now()));
      const out = w.out === undefined ? ctx.runDir : resolvePath(ctx.playbookDir, w.out);
      await mkdir(out, { recursive: true });
      const outputs: Record<string, string | number | boolean | null> = {
        dir: out,
        steps: report.steps.length,
        rtoMs: report.rto.actualMs,
        rtoBreached: report.rto.breached,
      };
      for (const f of w.formats) {
        const file = join(out, `incident.${f}`);
        await writeFile(file, f === 'json' ? `${JSON.stringify(report, null, 2)}\n` : f === 'md' ? renderMarkdown(report) : renderHtml(report));
        outputs[f] = file;
      }
      return { ok: true, outputs };
    } catch (e) {
      return { ok: false, error: `report.incident: ${errorMessage(e)}` };
    }
  },
});
