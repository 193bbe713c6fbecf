import { resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { parseDuration } from '../util/duration.js';
import { dataDirLayout } from '../util/data-dir.js';
import { duration } from './fields.js';
import { defineStep, engineLabel, errorMessage, noEngine, type StepContext, type StepResult } from './types.js';

/**
 * The hot standby's steps (issue 14): start a follower of the playbook's engine, then fence the primary
 * and promote the follower. docs/engine.md "Hot standby" has the engine side.
 */

/** The primary's URL and token file: the playbook's engine must be a local one (its data dir holds the token). */
async function primaryOf(ctx: StepContext, kind: string): Promise<{ url: string; tokenFile: string } | StepResult> {
  const target = ctx.engine;
  if (!target) return noEngine(kind);
  if (!('dataDir' in target)) return { ok: false, error: `${kind}: the primary must be an engine with a local dataDir (its token file is read from there)` };
  const running = await ctx.engines.attach(target.dataDir);
  if (!running) return { ok: false, error: `${kind}: no engine is running on ${target.dataDir}` };
  return { url: running.info.url, tokenFile: dataDirLayout(target.dataDir).token };
}

export const engineStandbyWith = z.strictObject({
  dataDir: z.string().min(1).describe("the standby's data dir, relative to the playbook; a fresh one starts from the primary's state"),
  catchUp: duration.default('30s').describe('how long the standby may take to apply everything the primary had when it started'),
});

export const engineStandbyStep = defineStep({
  uses: 'engine.standby',
  with: engineStandbyWith,
  needs: () => [{ need: 'engine', local: true }],
  describe: (w, ctx) => `start a standby on ${w.dataDir} following ${engineLabel(ctx.engine)}, caught up within ${w.catchUp}`,
  async run(w, ctx): Promise<StepResult> {
    try {
      const primary = await primaryOf(ctx, 'engine.standby');
      if ('ok' in primary) return primary;
      const dataDir = resolvePath(ctx.playbookDir, w.dataDir);
      const target = (await (await ctx.engines.connect(ctx.engine as NonNullable<StepContext['engine']>)).health()).seq;
      const r = await ctx.engines.start(dataDir, { follow: primary });
      ctx.progress(`${r.started ? 'started' : 'attached to'} standby pid ${r.info.pid} at ${r.info.url}, following ${primary.url}`);
      const deadline = ctx.clock.now() + (parseDuration(w.catchUp) ?? 30_000);
      for (;;) {
        const h = await r.client.health();
        if (h.role !== 'follower')
          return { ok: false, error: `engine.standby: the engine on ${dataDir} is a ${h.role ?? 'primary'}, not a follower of ${primary.url}` };
        if (h.seq >= target) {
          ctx.progress(`standby caught up: seq ${h.seq}, lag ${h.following?.lagRecords ?? 0} records`);
          return {
            ok: true,
            outputs: { url: r.info.url, dataDir, pid: r.info.pid, seq: h.seq, lagRecords: h.following?.lagRecords ?? 0, lagMs: h.following?.lagMs ?? 0 },
          };
        }
        if (ctx.clock.now() > deadline) return { ok: false, error: `engine.standby: still at seq ${h.seq} of ${target} after ${w.catchUp}` };
        await ctx.clock.sleep(50, ctx.signal);
      }
    } catch (e) {
      if (ctx.signal.aborted) throw e;
      return { ok: false, error: `engine.standby: ${errorMessage(e)}` };
    }
  },
});

export const enginePromoteWith = z.strictObject({
  standby: z.string().min(1).describe("the standby's data dir, relative to the playbook (as engine.standby started it)"),
  force: z.boolean().default(false).describe('promote without fencing the primary first (it is down): journaled as forced'),
});

export const enginePromoteStep = defineStep({
  uses: 'engine.promote',
  with: enginePromoteWith,
  needs: () => [{ need: 'engine', local: true }],
  describe: (w, ctx) =>
    w.force
      ? `promote the standby on ${w.standby} WITHOUT fencing ${engineLabel(ctx.engine)} (forced, journaled)`
      : `fence ${engineLabel(ctx.engine)}, wait for the standby on ${w.standby} to apply its last record, promote it`,
  async run(w, ctx): Promise<StepResult> {
    try {
      const standbyDir = resolvePath(ctx.playbookDir, w.standby);
      const standby = await ctx.engines.attach(standbyDir);
      if (!standby) return { ok: false, error: `engine.promote: no standby is running on ${standbyDir}` };
      let fencedSeq: number | null = null;
      if (!w.force) {
        if (!ctx.engine) return noEngine('engine.promote');
        const primary = await ctx.engines.connect(ctx.engine);
        const f = await primary.request<{ fenced: boolean; seq: number; epoch: number }>('POST', '/fence', {});
        fencedSeq = f.seq;
        ctx.progress(`primary fenced at seq ${f.seq} (epoch ${f.epoch})`);
      }
      const p = await standby.client.request<{ role: string; epoch: number; seq: number; forced: boolean }>('POST', '/promote', { force: w.force });
      ctx.notice(
        `standby promoted: epoch ${p.epoch} at seq ${p.seq}${p.forced ? ' (forced: the old primary was not fenced)' : ''}; it now takes writes at ${standby.info.url}`,
      );
      return { ok: true, outputs: { url: standby.info.url, dataDir: standbyDir, epoch: p.epoch, seq: p.seq, forced: p.forced, fencedSeq } };
    } catch (e) {
      if (ctx.signal.aborted) throw e;
      return { ok: false, error: `engine.promote: ${errorMessage(e)}` };
    }
  },
});
