import { resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { duration, durationOrExpr } from './fields.js';
import { parseDuration } from '../util/duration.js';
import type { ControlClient } from './effects.js';
import { defineStep, engineLabel, errorMessage, noEngine, type StepContext, type StepResult } from './types.js';

const phase = z.enum(['halted', 'cancel-only', 'post-only', 'open']);

function client(ctx: StepContext): Promise<ControlClient> {
  if (!ctx.engine) throw new Error('no engine');
  return ctx.engines.connect(ctx.engine);
}

/** Run engine work, turning an unreachable or refusing engine into a step failure. */
async function guarded(kind: string, ctx: StepContext, work: () => Promise<StepResult>): Promise<StepResult> {
  if (!ctx.engine) return noEngine(kind);
  try {
    return await work();
  } catch (e) {
    if (ctx.signal.aborted) throw e;
    return { ok: false, error: `${kind}: ${errorMessage(e)}` };
  }
}

export const engineStartWith = z
  .strictObject({
    phase: phase.default('halted').describe('phase to start a new engine in (an engine already running is left as it is)'),
    seed: z.number().int().min(0).optional().describe('price feed seed'),
    feedInterval: duration.optional().describe('index feed step, default 1s'),
    fundingInterval: duration.optional().describe('funding interval, default 8h'),
    queueLimit: z.number().int().min(1).optional().describe('margin queue limit, default 10000'),
  })
  .prefault({});

export const engineStartStep = defineStep({
  uses: 'engine.start',
  with: engineStartWith,
  describe: (w, ctx) => `start the engine on ${engineLabel(ctx.engine)} (or attach to it), phase ${w.phase}`,
  needs: () => [{ need: 'engine', starts: true, local: true }],
  run: (w, ctx) =>
    guarded('engine.start', ctx, async (): Promise<StepResult> => {
      const target = ctx.engine;
      if (!target || !('dataDir' in target)) return { ok: false, error: 'engine.start: only an engine with a local dataDir can be started' };
      const r = await ctx.engines.start(target.dataDir, {
        ...(w.seed !== undefined ? { seed: w.seed } : {}),
        ...(w.feedInterval ? { feedInterval: w.feedInterval } : {}),
        ...(w.fundingInterval ? { fundingInterval: w.fundingInterval } : {}),
        ...(w.queueLimit !== undefined ? { queueLimit: w.queueLimit } : {}),
      });
      let health = await r.client.health();
      if (r.started && health.phase !== w.phase) {
        await r.client.setPhase(w.phase, 'engine.start');
        health = await r.client.health();
      }
      ctx.progress(`${r.started ? 'started' : 'attached to'} pid ${r.info.pid} at ${r.info.url}`);
      return {
        ok: true,
        outputs: {
          url: r.info.url,
          pid: r.info.pid,
          started: r.started,
          phase: health.phase,
          reason: health.reason,
          haltedAt: health.phase === 'halted' ? health.haltedAt : null,
          margin: health.modules.margin?.active ?? null,
        },
      };
    }),
});

export const engineHaltWith = z.strictObject({ reason: z.string().min(1).optional() }).prefault({});

export const engineHaltStep = defineStep({
  uses: 'engine.halt',
  with: engineHaltWith,
  needs: () => [{ need: 'engine' }],
  describe: (w, ctx) => `halt trading on ${engineLabel(ctx.engine)}${w.reason ? ` (${w.reason})` : ''}`,
  run: (w, ctx) =>
    guarded('engine.halt', ctx, async (): Promise<StepResult> => {
      const c = await client(ctx);
      const before = await c.health();
      if (before.phase !== 'halted') await c.setPhase('halted', w.reason ?? `halted by ${ctx.playbookName}/${ctx.stepId}`);
      const after = await c.health();
      return { ok: true, outputs: { phase: after.phase, reason: after.reason, wasPhase: before.phase } };
    }),
});

export const engineResumeWith = z
  .strictObject({
    phases: z.array(phase).min(1).default(['cancel-only', 'post-only', 'open']).describe('walked in order'),
    dwell: durationOrExpr.default('30s').describe('time in each phase before the next (scaled in rehearsal)'),
    admission: z.number().int().min(0).max(100).optional().describe('set this admission weight before the first phase (0 lets traffic.shift ramp it up)'),
  })
  .prefault({});

/** The time spent in each phase before the next, at this time scale. */
function dwellMsOf(dwell: string, timeScale: number): number {
  return Math.round((parseDuration(dwell) ?? 30_000) * timeScale);
}

export const engineResumeStep = defineStep({
  uses: 'engine.resume',
  with: engineResumeWith,
  needs: () => [{ need: 'engine' }],
  describe: (w, ctx) => `walk ${engineLabel(ctx.engine)} through ${w.phases.join(' → ')}, ${w.dwell} in each`,
  // A dwell in every phase but the last.
  timing: { waitMs: (w, timeScale) => (w.phases.length - 1) * dwellMsOf(w.dwell, timeScale) },
  run: (w, ctx) =>
    guarded('engine.resume', ctx, async (): Promise<StepResult> => {
      const dwellMs = dwellMsOf(w.dwell, ctx.timeScale);
      const c = await client(ctx);
      const health = await c.health();
      // Re-run after an interruption: continue from the phase the engine is already in.
      const at = w.phases.indexOf(health.phase);
      const start = at >= 0 ? at : 0;
      if (at === w.phases.length - 1) return { ok: true, outputs: { phase: health.phase, alreadyThere: true } };
      if (w.admission !== undefined && at < 0) await c.setAdmission(w.admission);
      for (let i = start; i < w.phases.length; i++) {
        const p = w.phases[i] as (typeof w.phases)[number];
        if (i !== at) await c.setPhase(p);
        ctx.progress(`phase ${p}`, { phase: p, stage: i + 1, stages: w.phases.length });
        if (i === w.phases.length - 1) break;
        const until = ctx.clock.now() + dwellMs;
        while (ctx.clock.now() < until) {
          await ctx.clock.sleep(Math.min(250, until - ctx.clock.now()), ctx.signal);
          const h = await c.health();
          if (h.phase !== p)
            return { ok: false, error: `engine left ${p} during the dwell: now ${h.phase}${h.reason ? ` (${h.reason})` : ''}`, outputs: { phase: h.phase } };
        }
      }
      const final = await c.health();
      return { ok: true, outputs: { phase: final.phase, dwellMs, margin: final.modules.margin?.active ?? null } };
    }),
});

export const engineStopStep = defineStep({
  uses: 'engine.stop',
  with: z.strictObject({ timeout: duration.default('10s').describe('SIGKILL after this') }).prefault({}),
  needs: () => [{ need: 'engine', local: true }],
  describe: (w, ctx) => `stop the engine on ${engineLabel(ctx.engine)} (SIGTERM, SIGKILL after ${w.timeout})`,
  run: (w, ctx) =>
    guarded('engine.stop', ctx, async (): Promise<StepResult> => {
      const target = ctx.engine;
      if (!target || !('dataDir' in target)) return { ok: false, error: 'engine.stop: only an engine with a local dataDir can be stopped' };
      const r = await ctx.engines.stop(target.dataDir, parseDuration(w.timeout) ?? 10_000);
      return { ok: true, outputs: { wasRunning: r.wasRunning, forced: r.forced, pid: r.pid } };
    }),
});

export const snapshotTakeStep = defineStep({
  uses: 'snapshot.take',
  with: z.strictObject({ label: z.string().optional().describe('a note for the timeline') }).prefault({}),
  needs: () => [{ need: 'engine' }],
  describe: (_w, ctx) => `write a snapshot of ${engineLabel(ctx.engine)}`,
  run: (_w, ctx) =>
    guarded('snapshot.take', ctx, async (): Promise<StepResult> => {
      const c = await client(ctx);
      const s = await c.snapshot();
      return { ok: true, outputs: { path: s.path, seq: s.seq, sha256: s.sha256, records: s.records } };
    }),
});

export const snapshotVerifyWith = z.strictObject({
  path: z.string().min(1).describe('snapshot file, relative to the playbook'),
  beforeHalt: z.boolean().default(true).describe("require the snapshot to precede the engine's halt"),
});

export const snapshotVerifyStep = defineStep({
  uses: 'snapshot.verify',
  with: snapshotVerifyWith,
  needs: (w, ctx) => [{ need: 'file', field: 'path', path: resolvePath(ctx.playbookDir, w.path) }, ...(w.beforeHalt ? [{ need: 'engine' } as const] : [])],
  describe: (w) => `verify ${w.path}: trailer count and sha256, order${w.beforeHalt ? ', and that it precedes the halt' : ''}`,
  async run(w, ctx): Promise<StepResult> {
    const { readSnapshot } = await import('../snapshot/reader.js');
    const { SnapshotError } = await import('../snapshot/format.js');
    const file = resolvePath(ctx.playbookDir, w.path);
    let seq = -1;
    let takenAt = '';
    let records = 0;
    try {
      for await (const _r of readSnapshot(file, (h) => {
        seq = h.seq;
        takenAt = h.takenAt;
      })) {
        records++;
      }
    } catch (e) {
      if (e instanceof SnapshotError) return { ok: false, error: e.message };
      throw e;
    }
    const outputs = { path: file, seq, takenAt, records, precedesHalt: null as boolean | null, haltedAtSeq: null as number | null };
    if (!w.beforeHalt) return { ok: true, outputs };
    if (!ctx.engine) return noEngine('snapshot.verify (beforeHalt)');
    const health = await (await client(ctx)).health();
    outputs.haltedAtSeq = health.haltedAtSeq;
    if (health.haltedAtSeq === null) return { ok: false, error: 'the engine has no recorded halt to compare with (set beforeHalt: false)', outputs };
    outputs.precedesHalt = seq < health.haltedAtSeq;
    if (!outputs.precedesHalt) return { ok: false, error: `snapshot seq ${seq} does not precede the halt at seq ${health.haltedAtSeq}`, outputs };
    return { ok: true, outputs };
  },
});
