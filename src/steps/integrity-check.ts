import { resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { defineStep, engineLabel, errorMessage, noEngine, type StepCheck, type StepResult } from './types.js';
import { dataDirLayout } from '../util/data-dir.js';
import type { IntegrityTarget } from '../integrity/run.js';

export const integrityCheckWith = z.strictObject({
  snapshot: z.string().min(1).describe('the pre-outage snapshot, relative to the playbook'),
  against: z.string().min(1).optional().describe('compare with this snapshot file instead of the live engine'),
  wal: z
    .union([z.boolean(), z.string().min(1)])
    .default(true)
    .describe("explain changes after the snapshot from the engine's WAL: true (the engine's wal/), a folder, or false"),
  limit: z.number().int().min(1).optional().describe('stop after this many findings'),
});

export const integrityCheckStep = defineStep({
  uses: 'integrity.check',
  with: integrityCheckWith,
  needs: (w, ctx) => [
    { need: 'file', field: 'snapshot', path: resolvePath(ctx.playbookDir, w.snapshot) },
    ...(w.against === undefined ? [{ need: 'engine' } as const] : [{ need: 'file', field: 'against', path: resolvePath(ctx.playbookDir, w.against) } as const]),
    ...(typeof w.wal === 'string' ? [{ need: 'dir', field: 'wal', path: resolvePath(ctx.playbookDir, w.wal) } as const] : []),
  ],
  describe: (w, ctx) =>
    `compare ${w.snapshot} with ${w.against ?? `the state of ${engineLabel(ctx.engine)}`}${w.wal === false ? '' : ', changes explained by the WAL'}: no order lost, positions as before`,
  async run(w, ctx): Promise<StepResult> {
    const { runIntegrity } = await import('../integrity/run.js');
    const { CATEGORIES } = await import('../integrity/findings.js');
    const target = ctx.engine;
    // The state now: the snapshot named by `against`, or the playbook's engine.
    let source: IntegrityTarget;
    if (w.against !== undefined) {
      source = { against: resolvePath(ctx.playbookDir, w.against) };
    } else if (!target) {
      return noEngine('integrity.check');
    } else if ('dataDir' in target) {
      const running = await ctx.engines.attach(target.dataDir);
      if (!running) return { ok: false, error: `integrity.check: no engine is running on ${target.dataDir}` };
      source = { engine: running.info.url, tokenFile: dataDirLayout(target.dataDir).token };
    } else {
      source = { engine: target.url, tokenFile: target.tokenFile };
    }
    let wal: string | undefined;
    if (w.wal === true) {
      if (target && 'dataDir' in target) wal = dataDirLayout(target.dataDir).wal;
      else if (w.against === undefined) return { ok: false, error: 'integrity.check: wal: true needs an engine dataDir; give the WAL folder, or wal: false' };
    } else if (typeof w.wal === 'string') {
      wal = resolvePath(ctx.playbookDir, w.wal);
    }
    try {
      const started = ctx.clock.now();
      const report = await runIntegrity({
        snapshot: resolvePath(ctx.playbookDir, w.snapshot),
        target: source,
        wal,
        limit: w.limit,
      });
      const durationMs = ctx.clock.now() - started;
      const checks: StepCheck[] = CATEGORIES.map((c) => ({
        name: `no ${c} records`,
        ok: report.counts[c] === 0,
        durationMs,
        ...(report.counts[c]
          ? {
              message: report.findings
                .filter((f) => f.category === c)
                .slice(0, 5)
                .map((f) => `${f.type} ${f.id}${f.field ? ` ${f.field}` : ''}`)
                .join('; '),
            }
          : {}),
      }));
      const outputs = {
        clean: report.clean,
        ...report.counts,
        findings: report.findings.length,
        preRecords: report.pre.records,
        postRecords: report.post?.records ?? 0,
        explainedByWal: report.explainedByWal,
        conservationRule: report.conservationRule,
      };
      if (report.clean) return { ok: true, outputs, checks };
      const summary = Object.entries(report.counts)
        .filter(([, n]) => n > 0)
        .map(([c, n]) => `${c} ${n}`)
        .join(', ');
      const first = report.findings
        .slice(0, 3)
        .map((f) => `${f.category} ${f.type} ${f.id}${f.field ? `.${f.field}` : ''}`)
        .join('; ');
      return { ok: false, error: `integrity findings: ${summary} (${first})`, outputs, checks };
    } catch (e) {
      if (ctx.signal.aborted) throw e;
      return { ok: false, error: `integrity.check: ${errorMessage(e)}` };
    }
  },
});
