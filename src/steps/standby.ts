import { resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import type { ControlClient } from './effects.js';
import type { EngineInfo } from '../engine-client/supervisor.js';
import { parseDuration } from '../util/duration.js';
import { dataDirLayout } from '../util/data-dir.js';
import { duration } from './fields.js';
import { HaproxyProvider } from './providers/haproxy.js';
import { trafficProvider } from './providers/schema.js';
import { defineStep, engineLabel, errorMessage, noEngine, type EngineTarget, type StepContext, type StepOutputs, type StepResult } from './types.js';

/**
 * The hot standby's steps (issue 14): start a follower of the playbook's engine; fence the primary and
 * promote the follower (switching the gateway); make the old primary a follower of the new one; and the
 * rollback that undoes whichever of these happened. docs/engine.md "Hot standby" has the engine side,
 * docs/recovery.md when to choose this path.
 */

type Running = { info: EngineInfo; client: ControlClient };

/** The playbook's own engine as a local data dir (its token file is read from there), or why not. */
function localHome(ctx: StepContext, kind: string): string | StepResult {
  const home = ctx.playbookEngine;
  if (!home) return noEngine(kind);
  if (!('dataDir' in home))
    return { ok: false, error: `${kind}: the playbook's engine must be a local one (engine.dataDir): the standby reads its token file` };
  return home.dataDir;
}

/** The standby's data dir: as given (relative to the playbook), or beside the playbook's engine. */
function standbyDirOf(
  given: string | undefined,
  ctx: { playbookDir: string; playbookEngine?: EngineTarget | undefined; engine?: EngineTarget | undefined },
): string {
  if (given !== undefined) return resolvePath(ctx.playbookDir, given);
  const home = ctx.playbookEngine ?? ctx.engine;
  return home && 'dataDir' in home ? `${home.dataDir}-standby` : resolvePath(ctx.playbookDir, 'engine-standby');
}

/** Wait until the follower on `r` has applied `target`; its last health, or an error after `catchUp`. */
async function caughtUp(ctx: StepContext, r: Running, primaryUrl: string, target: number, catchUp: string): Promise<StepOutputs> {
  const deadline = ctx.clock.now() + (parseDuration(catchUp) ?? 30_000);
  for (;;) {
    const h = await r.client.health();
    if (h.role !== 'follower') throw new Error(`the engine at ${r.info.url} is a ${h.role ?? 'primary'}, not a follower of ${primaryUrl}`);
    if (h.seq >= target) return { url: r.info.url, pid: r.info.pid, seq: h.seq, lagRecords: h.following?.lagRecords ?? 0, lagMs: h.following?.lagMs ?? 0 };
    if (ctx.clock.now() > deadline) throw new Error(`the follower at ${r.info.url} is still at seq ${h.seq} of ${target} after ${catchUp}`);
    await ctx.clock.sleep(50, ctx.signal);
  }
}

/**
 * Make the engine on `dataDir` a caught-up follower of `primary`: already one, or stopped (it must be
 * fenced: a primary taking writes is never demoted) and started again with --follow. The engine itself
 * refuses to follow when its records are not a prefix of the primary's (writes after a forced promotion).
 */
async function followerOf(ctx: StepContext, dataDir: string, primary: Running & { dataDir: string }, catchUp: string): Promise<StepOutputs> {
  const target = (await primary.client.health()).seq;
  const running = await ctx.engines.attach(dataDir);
  if (running) {
    const h = await running.client.health();
    const following = h.role === 'follower' && h.following?.primary === primary.info.url;
    if (!following && h.role === 'primary' && !h.fenced)
      throw new Error(`the engine on ${dataDir} is a primary that takes writes (not fenced): fence it before it follows ${primary.info.url}`);
    if (following) return caughtUp(ctx, running, primary.info.url, target, catchUp);
    await ctx.engines.stop(dataDir);
    ctx.progress(`stopped the engine on ${dataDir} (pid ${running.info.pid}) to start it again as a follower`);
  }
  const r = await ctx.engines.start(dataDir, { follow: { url: primary.info.url, tokenFile: dataDirLayout(primary.dataDir).token } });
  ctx.progress(`engine on ${dataDir} (pid ${r.info.pid}) follows ${primary.info.url}`);
  return caughtUp(ctx, r, primary.info.url, target, catchUp);
}

/** The gateway a promotion switches: the traffic shift's provider (a YAML anchor shares it). */
const gateway = trafficProvider
  .refine((p) => p.type === 'engine' || p.type === 'haproxy', {
    error: 'the gateway switch drives haproxy (set server addr) or the engine provider (nothing to switch); switch nginx or a command with an exec step',
  })
  .optional()
  .describe("the traffic shift's provider: its canary server is pointed at the new primary (haproxy); the engine provider needs nothing");

/** Point the gateway's canary at `url`; a line for the journal, or null when there is nothing to switch. */
async function switchGateway(ctx: StepContext, config: z.output<typeof gateway>, url: string): Promise<string | null> {
  if (!config || config.type !== 'haproxy') return null;
  const u = new URL(url);
  const moved = await new HaproxyProvider(config, { socket: ctx.socket, signal: ctx.signal }).retarget(u.hostname, Number(u.port));
  const line = `gateway ${config.backend}/${config.canary}: ${moved.from} -> ${moved.to}`;
  ctx.notice(line);
  return line;
}

/** A step's failure with the kind in front; an interruption is rethrown. */
function failed(ctx: StepContext, kind: string, e: unknown): StepResult {
  if (ctx.signal.aborted) throw e;
  return { ok: false, error: `${kind}: ${errorMessage(e)}` };
}

export const engineStandbyWith = z
  .strictObject({
    dataDir: z
      .string()
      .min(1)
      .optional()
      .describe("the standby's data dir, relative to the playbook (default: the engine's data dir + `-standby`); a fresh one starts from the primary's state"),
    catchUp: duration.default('30s').describe('how long the standby may take to apply everything the primary had when it started'),
  })
  .prefault({});

export const engineStandbyStep = defineStep({
  uses: 'engine.standby',
  with: engineStandbyWith,
  needs: () => [{ need: 'engine', local: true }],
  describe: (w, ctx) => `start a standby on ${standbyDirOf(w.dataDir, ctx)} following ${engineLabel(ctx.engine)}, caught up within ${w.catchUp}`,
  async run(w, ctx): Promise<StepResult> {
    try {
      const home = localHome(ctx, 'engine.standby');
      if (typeof home !== 'string') return home;
      const primary = await ctx.engines.attach(home);
      if (!primary) return { ok: false, error: `engine.standby: no engine is running on ${home}` };
      const dataDir = standbyDirOf(w.dataDir, ctx);
      const r = await followerOf(ctx, dataDir, { ...primary, dataDir: home }, w.catchUp);
      ctx.progress(`standby caught up: seq ${String(r.seq)}, lag ${String(r.lagRecords)} records`);
      return { ok: true, outputs: { ...r, dataDir } };
    } catch (e) {
      return failed(ctx, 'engine.standby', e);
    }
  },
});

export const enginePromoteWith = z
  .strictObject({
    standby: z.string().min(1).optional().describe("the standby's data dir, relative to the playbook (default: as engine.standby chose it)"),
    force: z.boolean().default(false).describe('promote without fencing the primary first (it is down): journaled as forced'),
    gateway,
  })
  .prefault({});

/** Fence the primary (unless forced), then promote the standby; what the standby answered. */
async function promote(ctx: StepContext, standby: Running, force: boolean): Promise<{ epoch: number; seq: number; forced: boolean; fencedSeq: number | null }> {
  let fencedSeq: number | null = null;
  if (!force) {
    if (!ctx.engine) throw new Error('the playbook has no engine to fence');
    const primary = await ctx.engines.connect(ctx.engine);
    const f = await primary.request<{ fenced: boolean; seq: number; epoch: number }>('POST', '/fence', {});
    fencedSeq = f.seq;
    ctx.progress(`primary fenced at seq ${f.seq} (epoch ${f.epoch})`);
  }
  const p = await standby.client.request<{ epoch: number; seq: number; forced: boolean }>('POST', '/promote', { force });
  if (p.forced && ctx.engine && 'dataDir' in ctx.engine) await leaveFenceMarker(ctx.engine.dataDir, p.epoch, standby.info.url);
  return { ...p, fencedSeq };
}

/**
 * After a forced promotion the old primary is down or unreachable: a marker in its data dir makes it
 * journal a fence at the new epoch when it starts, before it takes a write (the new primary also keeps
 * trying to fence it over HTTP). docs/engine.md "Hot standby".
 */
async function leaveFenceMarker(dataDir: string, epoch: number, by: string): Promise<void> {
  const { rename, writeFile } = await import('node:fs/promises');
  const file = dataDirLayout(dataDir).fenceMarker;
  await writeFile(`${file}.tmp`, `${JSON.stringify({ epoch, by, at: new Date().toISOString() })}\n`, { mode: 0o644 });
  await rename(`${file}.tmp`, file);
}

export const enginePromoteStep = defineStep({
  uses: 'engine.promote',
  with: enginePromoteWith,
  needs: () => [{ need: 'engine', local: true }],
  describe: (w, ctx) =>
    (w.force
      ? `promote the standby on ${standbyDirOf(w.standby, ctx)} WITHOUT fencing ${engineLabel(ctx.engine)} (forced, journaled)`
      : `fence ${engineLabel(ctx.engine)}, wait for the standby on ${standbyDirOf(w.standby, ctx)} to apply its last record, promote it`) +
    (w.gateway?.type === 'haproxy' ? `, point ${w.gateway.backend}/${w.gateway.canary} at it` : ''),
  async run(w, ctx): Promise<StepResult> {
    try {
      const dataDir = standbyDirOf(w.standby, ctx);
      const standby = await ctx.engines.attach(dataDir);
      if (!standby) return { ok: false, error: `engine.promote: no standby is running on ${dataDir}` };
      const h = await standby.client.health();
      // A resumed run finds the promotion done: it only makes sure of the gateway.
      const done = h.role === 'primary' && !h.fenced;
      const p = done ? { epoch: h.epoch ?? 0, seq: h.epochSince ?? h.seq, forced: null, fencedSeq: null } : await promote(ctx, standby, w.force);
      if (!done)
        ctx.notice(
          `standby promoted: epoch ${p.epoch} at seq ${p.seq}${p.forced ? ' (forced: the old primary was not fenced)' : ''}; it takes writes at ${standby.info.url}`,
        );
      const switched = await switchGateway(ctx, w.gateway, standby.info.url);
      return {
        ok: true,
        outputs: {
          url: standby.info.url,
          dataDir,
          epoch: p.epoch,
          seq: p.seq,
          forced: p.forced,
          fencedSeq: p.fencedSeq,
          alreadyPromoted: done,
          gateway: switched,
        },
      };
    } catch (e) {
      return failed(ctx, 'engine.promote', e);
    }
  },
  primaryAfter: (o) => (typeof o.dataDir === 'string' ? { dataDir: o.dataDir } : undefined),
});

export const engineDemoteWith = z
  .strictObject({
    catchUp: duration.default('30s').describe('how long the old primary may take to apply what the new one wrote since the promotion'),
  })
  .prefault({});

export const engineDemoteStep = defineStep({
  uses: 'engine.demote',
  with: engineDemoteWith,
  needs: () => [{ need: 'engine', local: true }],
  describe: (w, ctx) =>
    `make the old primary ${engineLabel(ctx.playbookEngine)} a follower of ${engineLabel(ctx.engine)} (for a later switch back), caught up within ${w.catchUp}`,
  async run(w, ctx): Promise<StepResult> {
    try {
      const home = localHome(ctx, 'engine.demote');
      if (typeof home !== 'string') return home;
      const now = ctx.engine;
      if (!now || !('dataDir' in now) || now.dataDir === home)
        return { ok: false, error: `engine.demote: no standby was promoted in this run: ${home} is still the primary` };
      const primary = await ctx.engines.attach(now.dataDir);
      if (!primary) return { ok: false, error: `engine.demote: the new primary on ${now.dataDir} is not running` };
      const r = await followerOf(ctx, home, { ...primary, dataDir: now.dataDir }, w.catchUp);
      ctx.notice(`old primary ${home} follows ${primary.info.url} (seq ${String(r.seq)})`);
      return { ok: true, outputs: { ...r, dataDir: home, primary: primary.info.url } };
    } catch (e) {
      return failed(ctx, 'engine.demote', e);
    }
  },
});

export const engineFailbackWith = z
  .strictObject({
    standby: z.string().min(1).optional().describe("the standby's data dir, relative to the playbook (default: as engine.standby chose it)"),
    catchUp: duration.default('30s').describe('how long the old primary may take to apply what the new one wrote'),
    gateway,
  })
  .prefault({});

/** Before a promotion: stop the standby, and lift the fence a promotion that did not happen left on the primary. */
async function dropStandby(ctx: StepContext, home: string, standbyDir: string, standby: Running | undefined): Promise<StepOutputs> {
  if (standby) {
    await ctx.engines.stop(standbyDir);
    ctx.notice(`standby on ${standbyDir} stopped (it was never promoted); its data dir is kept`);
  }
  const primary = (await ctx.engines.attach(home)) ?? (await ctx.engines.start(home));
  const h = await primary.client.health();
  let reclaimed = false;
  if (h.role === 'primary' && h.fenced && !standby)
    // A standby that is down may have been promoted and taken writes: lifting the fence could lose them.
    throw new Error(
      `${home} is fenced and the standby on ${standbyDir} is not running, so whether it was promoted cannot be told: start the standby and run the rollback again (--resume-last)`,
    );
  if (h.role === 'primary' && h.fenced) {
    await primary.client.request('POST', '/promote', { reclaim: true });
    ctx.notice(`the fence on ${home} is lifted: it is the primary again`);
    reclaimed = true;
  }
  return { action: standby ? 'dropped' : 'none', reclaimed, url: primary.info.url };
}

/** After a promotion: the old primary follows the new one, catches up, and is promoted back in its place. */
async function switchBack(ctx: StepContext, w: z.output<typeof engineFailbackWith>, home: string, standbyDir: string, standby: Running): Promise<StepOutputs> {
  const running = await ctx.engines.attach(home);
  const h = running ? await running.client.health() : undefined;
  const sh = await standby.client.health();
  if (running && h?.role === 'primary' && !h.fenced && sh.fenced) {
    return {
      action: 'switched-back',
      url: running.info.url,
      epoch: h.epoch ?? 0,
      alreadyDone: true,
      gateway: await switchGateway(ctx, w.gateway, running.info.url),
    };
  }
  // A rollback stops trading first: the old primary takes the halt from its WAL and comes back halted on
  // its own module, never open on the one the incident halted (found by rehearse --chaos, gateway-refuses).
  if (sh.phase !== 'halted') {
    await standby.client.setPhase('halted', 'failback: switching back to the previous primary');
    ctx.progress(`trading halted on ${standbyDir} before switching back`);
  }
  await followerOf(ctx, home, { ...standby, dataDir: standbyDir }, w.catchUp);
  const fenced = await standby.client.request<{ seq: number }>('POST', '/fence', {});
  ctx.progress(`new primary ${standbyDir} fenced at seq ${fenced.seq}`);
  const old = (await ctx.engines.attach(home)) as Running;
  const p = await old.client.request<{ epoch: number; seq: number }>('POST', '/promote', {});
  ctx.notice(`switched back: ${home} is the primary again (epoch ${p.epoch} at seq ${p.seq}); ${standbyDir} stays fenced`);
  return { action: 'switched-back', url: old.info.url, epoch: p.epoch, alreadyDone: false, gateway: await switchGateway(ctx, w.gateway, old.info.url) };
}

export const engineFailbackStep = defineStep({
  uses: 'engine.failback',
  with: engineFailbackWith,
  needs: () => [{ need: 'engine', local: true }],
  describe: (w, ctx) =>
    `undo the standby on ${standbyDirOf(w.standby, ctx)}: before its promotion stop it; after it, make ${engineLabel(ctx.playbookEngine)} the primary again`,
  async run(w, ctx): Promise<StepResult> {
    try {
      const home = localHome(ctx, 'engine.failback');
      if (typeof home !== 'string') return home;
      const standbyDir = standbyDirOf(w.standby, ctx);
      const standby = await ctx.engines.attach(standbyDir);
      const sh = standby ? await standby.client.health() : undefined;
      const promoted = standby !== undefined && sh?.role === 'primary';
      const r = promoted ? await switchBack(ctx, w, home, standbyDir, standby) : await dropStandby(ctx, home, standbyDir, standby);
      return { ok: true, outputs: { ...r, dataDir: home } };
    } catch (e) {
      return failed(ctx, 'engine.failback', e);
    }
  },
  primaryAfter: (o) => (typeof o.dataDir === 'string' ? { dataDir: o.dataDir } : undefined),
});
