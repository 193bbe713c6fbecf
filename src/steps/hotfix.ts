import { join, resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { patternOrExpr } from './fields.js';
import { defineStep, engineLabel, errorMessage, noEngine, type StepContext, type StepResult } from './types.js';

const sha256 = patternOrExpr(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits');
const version = patternOrExpr(/^\d+\.\d+\.\d+$/, 'expected a version x.y.z');

export const hotfixDeployWith = z.strictObject({
  component: z.literal('margin').describe('the engine component to replace'),
  artifact: z.string().min(1).describe('the module file, relative to the playbook; named <component>-<version>.mjs'),
  sha256: sha256.describe('expected digest of the artifact; a mismatch is refused before anything is installed'),
  version: version.optional().describe('defaults to the version in the artifact name'),
  dataDir: z
    .string()
    .min(1)
    .optional()
    .describe("install into the engine on this data dir instead of the run's engine, e.g. a standby: ${{ steps.standby.outputs.dataDir }}"),
});

export const hotfixRollbackWith = z.strictObject({
  component: z.literal('margin'),
  from: version.describe('the version to roll back from: nothing happens unless it is the active one (so a re-run does not undo the rollback)'),
});

/** The version in an artifact named `<component>-<x.y.z>.mjs`. */
export function versionFromName(component: string, file: string): string | undefined {
  const base = file.split('/').pop() ?? '';
  const m = new RegExp(`^${component}-(\\d+\\.\\d+\\.\\d+)\\.m?js$`).exec(base);
  return m?.[1];
}

/** Read an artifact for installation: a regular file (no symlink), its bytes and sha256. */
export async function readArtifact(ctx: StepContext, artifact: string): Promise<{ path: string; bytes: Buffer; digest: string } | { error: string }> {
  const { lstat, readFile } = await import('node:fs/promises');
  const { createHash } = await import('node:crypto');
  const path = resolvePath(ctx.playbookDir, artifact);
  try {
    const st = await lstat(path);
    if (st.isSymbolicLink()) return { error: `artifact ${path} is a symlink; give the file itself` };
    if (!st.isFile()) return { error: `artifact ${path} is not a regular file` };
    const bytes = await readFile(path);
    return { path, bytes, digest: createHash('sha256').update(bytes).digest('hex') };
  } catch (e) {
    return { error: `cannot read artifact ${path}: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}` };
  }
}

export const hotfixDeployStep = defineStep({
  uses: 'hotfix.deploy',
  with: hotfixDeployWith,
  needs: (w, ctx) => [
    { need: 'file', field: 'artifact', path: resolvePath(ctx.playbookDir, w.artifact) },
    { need: 'engine', local: true },
  ],
  describe: (w, ctx) =>
    `verify ${w.artifact} (sha256 ${w.sha256.slice(0, 12)}…), install it as ${w.component} ${w.version ?? versionFromName(w.component, w.artifact) ?? '?'} on ${w.dataDir === undefined ? engineLabel(ctx.engine) : resolvePath(ctx.playbookDir, w.dataDir)} and activate it`,
  async run(w, ctx): Promise<StepResult> {
    const target = w.dataDir === undefined ? ctx.engine : { dataDir: resolvePath(ctx.playbookDir, w.dataDir) };
    if (!target) return noEngine('hotfix.deploy');
    if (!('dataDir' in target)) return { ok: false, error: 'hotfix.deploy installs into the engine data dir: it needs engine.dataDir' };
    const ver = w.version ?? versionFromName(w.component, w.artifact);
    if (!ver) return { ok: false, error: `cannot tell the version of ${w.artifact}: name it ${w.component}-<x.y.z>.mjs or give with.version` };
    const art = await readArtifact(ctx, w.artifact);
    if ('error' in art) return { ok: false, error: art.error };
    if (art.digest !== w.sha256) {
      return {
        ok: false,
        error: `sha256 mismatch for ${art.path}: expected ${w.sha256}, got ${art.digest}; nothing was installed`,
        outputs: { expected: w.sha256, actual: art.digest },
      };
    }
    const { mkdir, readFile, rename, rm, writeFile } = await import('node:fs/promises');
    const { createHash, randomBytes } = await import('node:crypto');
    const { EngineHttpError } = await import('../engine-client/client.js');
    try {
      const client = await ctx.engines.connect(target);
      const health = await client.health();
      const before = health.modules[w.component]?.active ?? null;
      const dir = join(target.dataDir, 'modules', w.component);
      const dest = join(dir, `${ver}.mjs`);
      // Checks before it acts: a re-run after a crash finds the version installed and active.
      const installed = await readFile(dest).then(
        (b) => createHash('sha256').update(b).digest('hex'),
        () => undefined,
      );
      if (before === ver && installed === art.digest) {
        return {
          ok: true,
          outputs: {
            component: w.component,
            version: ver,
            previous: health.modules[w.component]?.previous ?? null,
            sha256: art.digest,
            alreadyActive: true,
            path: dest,
          },
        };
      }
      if (installed !== undefined && installed !== art.digest) {
        return { ok: false, error: `${dest} already holds a different ${w.component} ${ver} (sha256 ${installed}); refusing to overwrite it` };
      }
      if (installed === undefined) {
        await mkdir(dir, { recursive: true });
        const tmp = join(dir, `.${ver}.tmp-${randomBytes(4).toString('hex')}`);
        await writeFile(tmp, art.bytes, { mode: 0o644 });
        await rename(tmp, dest);
      }
      ctx.progress(`installed ${dest}; activating`);
      try {
        const r = await client.activate(w.component, ver);
        return { ok: true, outputs: { component: w.component, version: r.active, previous: r.previous, sha256: art.digest, alreadyActive: false, path: dest } };
      } catch (e) {
        // Refused (failed its self-test): take the artifact back out, so the deploy changes nothing. On
        // any other error the engine may have activated it: leave the file for the re-run to check.
        if (e instanceof EngineHttpError && e.status === 422) {
          await rm(dest, { force: true });
          return { ok: false, error: `engine refused ${w.component} ${ver}: ${e.message}; the file was removed` };
        }
        if (e instanceof EngineHttpError) return { ok: false, error: `engine refused ${w.component} ${ver}: ${e.message}` };
        throw e;
      }
    } catch (e) {
      if (ctx.signal.aborted) throw e;
      return { ok: false, error: `hotfix.deploy: ${errorMessage(e)}` };
    }
  },
});

export const hotfixRollbackStep = defineStep({
  uses: 'hotfix.rollback',
  with: hotfixRollbackWith,
  needs: () => [{ need: 'engine' }],
  describe: (w, ctx) => `switch ${w.component} on ${engineLabel(ctx.engine)} back from ${w.from} to its previous version (if ${w.from} is active)`,
  async run(w, ctx): Promise<StepResult> {
    if (!ctx.engine) return noEngine('hotfix.rollback');
    const { EngineHttpError } = await import('../engine-client/client.js');
    try {
      const client = await ctx.engines.connect(ctx.engine);
      const h = await client.health();
      const active = h.modules[w.component]?.active ?? null;
      if (active !== w.from) {
        return { ok: true, outputs: { rolledBack: false, active, note: `${w.from} is not active: nothing to roll back` } };
      }
      try {
        const r = await client.rollbackModule(w.component);
        return { ok: true, outputs: { rolledBack: true, active: r.active, from: r.previous } };
      } catch (e) {
        if (e instanceof EngineHttpError && e.status === 409) return { ok: true, outputs: { rolledBack: false, active, note: 'no previous version' } };
        throw e;
      }
    } catch (e) {
      if (ctx.signal.aborted) throw e;
      return { ok: false, error: `hotfix.rollback: ${errorMessage(e)}` };
    }
  },
});

export const fundingRecomputeWith = z
  .strictObject({
    from: z.string().optional().describe('ISO time; default: the first interval not yet settled'),
    to: z.string().optional().describe('ISO time; default: now'),
  })
  .prefault({});

export const fundingRecomputeStep = defineStep({
  uses: 'funding.recompute',
  with: fundingRecomputeWith,
  needs: () => [{ need: 'engine' }],
  describe: (w, ctx) =>
    `settle the funding intervals missed on ${engineLabel(ctx.engine)} from ${w.from ?? 'the first unsettled one'} to ${w.to ?? 'now'}; payments must net to zero`,
  async run(w, ctx): Promise<StepResult> {
    if (!ctx.engine) return noEngine('funding.recompute');
    try {
      const client = await ctx.engines.connect(ctx.engine);
      // By default every interval still unsettled, whichever halt it fell in (the engine starts at its
      // earliest recorded boundary).
      const from = w.from ?? new Date(0).toISOString();
      const to = w.to ?? new Date(ctx.clock.now()).toISOString();
      const r = await client.recomputeFunding(from, to);
      // Each settled interval, with the holders it was charged to: the record the users' reports rest on.
      for (const i of r.intervals) {
        const holders = i.holders.map((h) => `${h.account} ${h.qty} ${h.amount}`).join('; ');
        const markPrice = `${Math.trunc(i.markPrice / 100)}.${String(i.markPrice % 100).padStart(2, '0')}`;
        ctx.progress(
          `${i.symbol} interval ${i.intervalStart}: rate ${i.rate}, mark ${markPrice}, paid ${i.paid}, received ${i.received}; ${i.holders.length} holders${holders ? `: ${holders}` : ''}`,
          { fundingInterval: i.intervalStart, symbol: i.symbol, rate: i.rate, markPrice, paid: i.paid, received: i.received, holders },
        );
      }
      const outputs: Record<string, string | number> = {
        intervals: r.intervals.length,
        holders: r.intervals.reduce((n, i) => n + i.holders.length, 0),
        missingMarks: r.missingMarks.length,
        from,
        to,
      };
      const unbalanced: string[] = [];
      for (const [symbol, t] of Object.entries(r.totals)) {
        outputs[`${symbol}.paid`] = t.paid;
        outputs[`${symbol}.net`] = t.net;
        if (t.net !== '0') unbalanced.push(`${symbol} nets ${t.net}`);
      }
      const checks = Object.entries(r.totals).map(([symbol, t]) => ({
        name: `funding ${symbol} nets to zero`,
        ok: t.net === '0',
        ...(t.net === '0' ? {} : { message: `paid ${t.paid}, received ${t.received}` }),
      }));
      if (unbalanced.length) return { ok: false, error: `funding does not net to zero: ${unbalanced.join(', ')}`, outputs, checks };
      ctx.progress(`${r.intervals.length} interval settlements, all symbols net to zero`);
      return { ok: true, outputs, checks };
    } catch (e) {
      if (ctx.signal.aborted) throw e;
      return { ok: false, error: `funding.recompute: ${errorMessage(e)}` };
    }
  },
});
