import { resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { duration } from './fields.js';
import { formatDuration, parseDuration } from '../util/duration.js';
import { errorRateOf, judgeSample, type GateSample } from './gates.js';
import { defineStep, engineLabel, errorMessage, noEngine, type EngineTarget, type StepCheck, type StepContext, type StepResult } from './types.js';
import type { ControlClient, LoadRun } from './effects.js';
import type { OrderBody } from '../contract/control-api.js';

const weight = z.number().int().min(0).max(100);
/** A stage is never judged on fewer samples than this. */
const MIN_SAMPLES = 3;

export const trafficShiftWith = z
  .strictObject({
    stages: z
      .array(z.strictObject({ weight, bake: duration }))
      .min(1)
      .optional()
      .describe('each stage: an admission weight and how long to watch it'),
    stepWeights: z.array(weight).min(1).optional().describe('shorthand for stages with one bake, e.g. [5, 25, 50, 100]'),
    bake: duration.optional().describe('with stepWeights: the bake of every stage'),
    interval: duration.default('1s').describe('how often the gates sample /metrics (scaled in rehearsal, at least 50ms)'),
    gates: z
      .strictObject({
        maxQueueDepth: z.number().int().min(0).optional(),
        maxErrorRate: z.number().min(0).max(1).optional().describe('errors / orders sent in a sample window'),
        p99LatencyMs: z.number().positive().optional(),
      })
      .default({}),
    failureLimit: z.number().int().min(0).default(0).describe('failed samples tolerated before the shift is aborted'),
    load: z
      .strictObject({
        rate: z.number().positive().max(50_000).default(200).describe('orders per second offered'),
        accounts: z.number().int().min(1).max(100_000).default(20).describe('traders trader-0001 .. trader-N'),
        fund: z
          .string()
          .regex(/^\d+(\.\d+)?$/)
          .optional()
          .describe('deposit this much USDT into each trader first (testnets and rehearsals only)'),
        seed: z.number().int().min(0).default(1),
        replay: z.string().optional().describe('an NDJSON file of recorded order bodies to replay instead (relative to the playbook)'),
      })
      .default({ rate: 200, accounts: 20, seed: 1 }),
  })
  .refine((w) => (w.stages === undefined) !== (w.stepWeights === undefined), { error: 'give either stages or stepWeights' })
  .refine((w) => w.stepWeights === undefined || w.bake !== undefined, { error: 'stepWeights needs bake', path: ['bake'] });

export type TrafficShiftWith = z.output<typeof trafficShiftWith>;

function stagesOf(w: TrafficShiftWith): { weight: number; bake: string }[] {
  return w.stages ?? (w.stepWeights ?? []).map((weight) => ({ weight, bake: w.bake ?? '30s' }));
}

type Client = ControlClient;
type Load = LoadRun;

/** What the whole shift has seen so far: the failures count across stages against failureLimit. */
interface ShiftTally {
  checks: StepCheck[];
  failures: number;
  samples: number;
  maxQueueDepth: number;
  maxP99: number | null;
}

/** The traders, their funding and the load generator (synthetic or a recorded flow), not yet started. */
async function prepareLoad(w: TrafficShiftWith, ctx: StepContext, engine: EngineTarget, client: Client): Promise<Load> {
  const { traderAccounts } = await import('../engine-client/load.js');
  const { readFile } = await import('node:fs/promises');
  const accounts = traderAccounts(w.load.accounts);
  if (w.load.fund) for (const a of accounts) await client.deposit(a, 'USDT', w.load.fund);
  let replay;
  if (w.load.replay) {
    const text = await readFile(resolvePath(ctx.playbookDir, w.load.replay), 'utf8');
    replay = text
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as OrderBody);
  }
  return ctx.engines.load(engine, { rate: w.load.rate, accounts, seed: w.load.seed, ...(replay ? { replay } : {}) });
}

interface StageRun {
  n: number;
  of: number;
  stage: { weight: number; bake: string };
  intervalMs: number;
}

/**
 * Bake one stage: sample /metrics every interval and judge each sample. Returns the breaches that abort
 * the shift (a halted engine, or one failed sample more than failureLimit), or null when the stage held.
 */
async function bakeStage(w: TrafficShiftWith, ctx: StepContext, client: Client, gen: Load, run: StageRun, tally: ShiftTally): Promise<string[] | null> {
  const { parseMetrics, p99Between } = await import('../engine-client/load.js');
  const { n, of, stage, intervalMs } = run;
  await client.setAdmission(stage.weight);
  // However short the scaled bake, every stage is judged on at least MIN_SAMPLES samples.
  const bakeMs = Math.max(Math.round((parseDuration(stage.bake) ?? 0) * ctx.timeScale), MIN_SAMPLES * intervalMs);
  ctx.progress(`stage ${n}/${of}: weight ${stage.weight}%, bake ${formatDuration(bakeMs)}`, { stage: n, stages: of, weight: stage.weight, bakeMs });
  const stageStart = ctx.clock.now();
  let prevMetrics = parseMetrics(await client.metrics());
  let prevStats = gen.stats();
  let stageFailures = 0;
  while (ctx.clock.now() - stageStart < bakeMs) {
    await ctx.clock.sleep(Math.min(intervalMs, Math.max(1, bakeMs - (ctx.clock.now() - stageStart))), ctx.signal);
    const m = parseMetrics(await client.metrics());
    const stats = gen.stats();
    const sample: GateSample = {
      halted: m.halted,
      queueDepth: m.queueDepth,
      sent: stats.sent - prevStats.sent,
      errors: stats.errors - prevStats.errors,
      p99LatencyMs: p99Between(prevMetrics.latencyBuckets, m.latencyBuckets),
    };
    prevMetrics = m;
    prevStats = stats;
    tally.samples++;
    tally.maxQueueDepth = Math.max(tally.maxQueueDepth, sample.queueDepth);
    if (sample.p99LatencyMs !== null) tally.maxP99 = Math.max(tally.maxP99 ?? 0, sample.p99LatencyMs);
    // Only a breach counts against failureLimit: an inconclusive or unmeasurable sample does not.
    const { breaches } = judgeSample(w.gates, sample);
    ctx.progress(`stage ${n}/${of} weight ${stage.weight}%`, {
      stage: n,
      stages: of,
      weight: stage.weight,
      queueDepth: sample.queueDepth,
      errorRate: Number(errorRateOf(sample).toFixed(4)),
      p99LatencyMs: sample.p99LatencyMs,
      sent: sample.sent,
      breaches: breaches.length,
    });
    if (breaches.length) {
      tally.failures++;
      stageFailures++;
      if (sample.halted || tally.failures > w.failureLimit) {
        tally.checks.push({
          name: `stage ${n} (weight ${stage.weight}%) gates`,
          ok: false,
          message: breaches.join('; '),
          durationMs: ctx.clock.now() - stageStart,
        });
        return breaches;
      }
    }
  }
  tally.checks.push({
    name: `stage ${n} (weight ${stage.weight}%) gates`,
    ok: true,
    durationMs: ctx.clock.now() - stageStart,
    ...(stageFailures ? { message: `${stageFailures} failed samples tolerated` } : {}),
  });
  return null;
}

/** Every stage in turn under load; on a breach or an error admission goes to 0 and the shift stops. */
async function shiftStages(w: TrafficShiftWith, ctx: StepContext, client: Client, gen: Load): Promise<StepResult> {
  const stages = stagesOf(w);
  const intervalMs = Math.max(50, Math.round((parseDuration(w.interval) ?? 1000) * ctx.timeScale));
  const tally: ShiftTally = { checks: [], failures: 0, samples: 0, maxQueueDepth: 0, maxP99: null };
  const fail = async (error: string, stage: number): Promise<StepResult> => {
    await client.setAdmission(0).catch(() => undefined);
    return {
      ok: false,
      error,
      checks: tally.checks,
      outputs: { failedStage: stage, weight: 0, samples: tally.samples, maxQueueDepth: tally.maxQueueDepth, maxP99LatencyMs: tally.maxP99, ...gen.stats() },
    };
  };
  gen.start();
  try {
    for (const [i, stage] of stages.entries()) {
      const n = i + 1;
      const breaches = await bakeStage(w, ctx, client, gen, { n, of: stages.length, stage, intervalMs }, tally);
      if (breaches) return await fail(`gate breached at stage ${n} (weight ${stage.weight}%): ${breaches.join('; ')}; admission set to 0`, n);
    }
  } catch (e) {
    if (ctx.signal.aborted) throw e;
    return fail(`traffic.shift: ${errorMessage(e)}`, -1);
  } finally {
    await gen.stop();
  }
  const last = stages[stages.length - 1] as { weight: number };
  return {
    ok: true,
    checks: tally.checks,
    outputs: {
      weight: last.weight,
      stages: stages.length,
      samples: tally.samples,
      maxQueueDepth: tally.maxQueueDepth,
      maxP99LatencyMs: tally.maxP99,
      ...gen.stats(),
    },
  };
}

export const trafficShiftStep = defineStep({
  uses: 'traffic.shift',
  with: trafficShiftWith,
  needs: (w, ctx) => [
    { need: 'engine' },
    ...(w.load.replay ? [{ need: 'file', field: 'load.replay', path: resolvePath(ctx.playbookDir, w.load.replay) } as const] : []),
  ],
  describe: (w, ctx) => {
    const stages = stagesOf(w)
      .map((s) => `${s.weight}%/${s.bake}`)
      .join(' → ');
    const gates =
      Object.entries(w.gates)
        .map(([k, v]) => `${k} ${String(v)}`)
        .join(', ') || 'no gates';
    return `shift traffic on ${engineLabel(ctx.engine)} ${stages} (${w.load.replay ? `replaying ${w.load.replay}` : `${w.load.rate} orders/s`}), gates: ${gates}, failureLimit ${w.failureLimit}`;
  },
  async run(w, ctx): Promise<StepResult> {
    if (!ctx.engine) return noEngine('traffic.shift');
    const client = await ctx.engines.connect(ctx.engine);
    const health = await client.health();
    if (health.phase === 'halted')
      return { ok: false, error: `traffic.shift: the engine is halted${health.reason ? ` (${health.reason})` : ''}; resume it first` };
    const gen = await prepareLoad(w, ctx, ctx.engine, client);
    return shiftStages(w, ctx, client, gen);
  },
});
