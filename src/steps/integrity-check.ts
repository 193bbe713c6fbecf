import { resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { defineStep, engineLabel, errorMessage, noEngine, type StepCheck, type StepContext, type StepResult } from './types.js';
import { dataDirLayout } from '../util/data-dir.js';
import { isPostgresUrl, type IntegrityTarget } from '../integrity/run.js';

export const integrityCheckWith = z.strictObject({
  snapshot: z.string().min(1).describe('the pre-outage snapshot, relative to the playbook'),
  against: z
    .string()
    .min(1)
    .optional()
    .describe('compare with this snapshot file, or a PostgreSQL database (postgres://user@host:port/db, with sourceMap), instead of the live engine'),
  sourceMap: z
    .string()
    .min(1)
    .optional()
    .describe('with against: postgres://…, the IntegritySource file giving the SQL for each record type, relative to the playbook'),
  passwordFile: z.string().min(1).optional().describe('with against: postgres://…, a file holding the database password (else PGPASSWORD or ~/.pgpass)'),
  wal: z
    .union([z.boolean(), z.string().min(1)])
    .default(true)
    .describe("explain changes after the snapshot from the engine's WAL: true (the engine's wal/), a folder, or false"),
  limit: z.number().int().min(1).optional().describe('stop after this many findings'),
});

type IntegrityCheckWith = z.output<typeof integrityCheckWith>;

/** The state now: the database or snapshot named by `against`, or the playbook's engine. */
async function stateNow(w: IntegrityCheckWith, ctx: StepContext): Promise<IntegrityTarget | { error: string }> {
  const target = ctx.engine;
  if (w.against !== undefined && isPostgresUrl(w.against)) {
    if (w.sourceMap === undefined) return { error: 'integrity.check: against a database needs sourceMap (the SQL for each record type)' };
    return {
      postgres: w.against,
      sourceMap: resolvePath(ctx.playbookDir, w.sourceMap),
      passwordFile: w.passwordFile === undefined ? undefined : resolvePath(ctx.playbookDir, w.passwordFile),
    };
  }
  if (w.against !== undefined) return { against: resolvePath(ctx.playbookDir, w.against) };
  if (!target) {
    const r = noEngine('integrity.check');
    return { error: r.ok ? '' : r.error };
  }
  if ('dataDir' in target) {
    const running = await ctx.engines.attach(target.dataDir);
    if (!running) return { error: `integrity.check: no engine is running on ${target.dataDir}` };
    return { engine: running.info.url, tokenFile: dataDirLayout(target.dataDir).token };
  }
  return { engine: target.url, tokenFile: target.tokenFile };
}

export const integrityCheckStep = defineStep({
  uses: 'integrity.check',
  with: integrityCheckWith,
  needs: (w, ctx) => [
    { need: 'file', field: 'snapshot', path: resolvePath(ctx.playbookDir, w.snapshot) },
    ...(w.against === undefined
      ? [{ need: 'engine' } as const]
      : isPostgresUrl(w.against)
        ? [
            ...(w.sourceMap === undefined ? [] : [{ need: 'file', field: 'sourceMap', path: resolvePath(ctx.playbookDir, w.sourceMap) } as const]),
            ...(w.passwordFile === undefined ? [] : [{ need: 'file', field: 'passwordFile', path: resolvePath(ctx.playbookDir, w.passwordFile) } as const]),
          ]
        : [{ need: 'file', field: 'against', path: resolvePath(ctx.playbookDir, w.against) } as const]),
    ...(typeof w.wal === 'string' ? [{ need: 'dir', field: 'wal', path: resolvePath(ctx.playbookDir, w.wal) } as const] : []),
  ],
  describe: (w, ctx) =>
    `compare ${w.snapshot} with ${w.against ?? `the state of ${engineLabel(ctx.engine)}`}${w.wal === false ? '' : ', changes explained by the WAL'}: no order lost, positions as before`,
  async run(w, ctx): Promise<StepResult> {
    const { runIntegrity } = await import('../integrity/run.js');
    const { CATEGORIES } = await import('../integrity/findings.js');
    const target = ctx.engine;
    const source = await stateNow(w, ctx);
    if ('error' in source) return { ok: false, error: source.error };
    const database = 'postgres' in source;
    let wal: string | undefined;
    if (w.wal === true && database) {
      // A database has no WAL seq to replay to: its rows are the state now.
    } else if (w.wal === true) {
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
