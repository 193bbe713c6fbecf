import { resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { duration } from './fields.js';
import { formatDuration, parseDuration } from '../util/duration.js';
import { engineJudgements, errorRateOf, type GateSample } from './gates.js';
import { countsText, decide, promote, record, worstVerdict, type GateJudgement, type Tally } from './analysis.js';
import { httpUrlOrExpr, judgePrometheusGates, limitsText, prometheusConnection, prometheusGates } from './prometheus.js';
import { describeProvider, providerFor, trafficProvider, type TrafficProvider, type TrafficWeights } from './providers/index.js';
import { defineStep, engineLabel, errorMessage, noEngine, type EngineTarget, type StepCheck, type StepContext, type StepResult } from './types.js';
import type { ControlClient, LoadRun } from './effects.js';
import type { OrderBody } from '../contract/control-api.js';
import type { LoadOptions } from '../engine-client/load.js';

const weight = z.number().int().min(0).max(100);
/** A stage is never judged on fewer samples than this. */
const MIN_SAMPLES = 3;
/** However scaled, a maker quotes again at most this often: its quotes are requests the engine has to take. */
const MIN_MAKER_REFRESH_MS = 250;

const decimalQty = z.string().regex(/^\d+(\.\d+)?$/, { error: 'expected a decimal quantity like "0.5"' });

/** gates.book: each symbol's book after the reopen (issue 13), from the engine's engine_book_* gauges. */
const bookGate = z
  .strictObject({
    symbols: z
      .array(z.string().regex(/^[A-Z0-9]{2,20}$/, { error: 'expected a symbol like BTCUSDT' }))
      .min(1)
      .refine((v) => new Set(v).size === v.length, { error: 'a symbol is listed twice' })
      .describe('the books to judge, each a gate of its own (book:<symbol>)'),
    maxSpreadBps: z.number().positive().optional().describe('widest spread allowed, basis points of the mid price; a side with no orders fails'),
    minDepth: decimalQty.optional().describe('least base quantity each side must hold over its best `levels` price levels (a decimal string)'),
    levels: z.literal([1, 5, 10, 20]).default(5).describe('how many price levels minDepth counts'),
  })
  .refine((b) => b.maxSpreadBps !== undefined || b.minDepth !== undefined, { error: 'give maxSpreadBps, minDepth or both' });

/** load.makers: market makers that come back gradually after the reopen. */
const loadMakers = z
  .strictObject({
    count: z.number().int().min(1).max(100).default(4).describe('market makers once all are back; maker i quotes from trader i (cycled), who needs the margin'),
    ramp: duration
      .default('5m')
      .describe('from the start of the shift (the reopen) until the last maker is back at the narrowest spread (scaled in rehearsal)'),
    startSpreadBps: z.number().positive().max(1000).default(200).describe('the spread quoted at the reopen, basis points of the mark'),
    endSpreadBps: z.number().positive().max(1000).default(10).describe('the spread at the end of the ramp'),
    levels: z.number().int().min(1).max(10).default(2).describe('price levels each maker quotes on each side'),
    lots: z.number().int().min(1).max(1000).default(5).describe("size of each quote, in lots of the instrument's lot size"),
    refresh: duration.default('1s').describe('how often each maker quotes again around the mark (scaled in rehearsal, at least 250ms)'),
  })
  .refine((m) => m.endSpreadBps <= m.startSpreadBps, { error: 'endSpreadBps may not exceed startSpreadBps', path: ['endSpreadBps'] });

/** load.stops: stop levels traders hold on the client side; the engine has no stop orders. */
const loadStops = z.strictObject({
  perTrader: z.number().int().min(1).max(10).default(1).describe('stop levels each trader holds on each symbol'),
  rangeBps: z.number().positive().max(2000).default(100).describe('levels sit up to this far from where they were set: sell stops below, buy stops above'),
  gapBps: z
    .number()
    .min(0)
    .max(2000)
    .default(50)
    .describe('how far the mark moved while halted: the stops were set this far back from the first mark seen, so those in between trigger at the reopen'),
});

export const trafficShiftWith = z
  .strictObject({
    stages: z
      .array(z.strictObject({ weight, bake: duration }))
      .min(1)
      .optional()
      .describe('each stage: a canary weight (percent) and how long to watch it'),
    stepWeights: z.array(weight).min(1).optional().describe('shorthand for stages with one bake, e.g. [5, 25, 50, 100]'),
    bake: duration.optional().describe('with stepWeights: the bake of every stage'),
    interval: duration.default('1s').describe('how often the gates are sampled (scaled in rehearsal, at least 50ms)'),
    provider: trafficProvider.optional().describe("what moves the traffic at each stage; default the engine's own admission weight"),
    prometheus: prometheusConnection.optional().describe('the Prometheus server that gates.prometheus queries'),
    gates: z
      .strictObject({
        maxQueueDepth: z.number().int().min(0).optional().describe("the engine's margin queue depth, from its /metrics"),
        maxErrorRate: z.number().min(0).max(1).optional().describe('errors / orders sent in a sample window'),
        p99LatencyMs: z.number().positive().optional().describe("the engine's match latency p99 in a sample window"),
        book: bookGate.optional().describe("each symbol's spread and depth, from the engine's /metrics (engine_book_*)"),
        prometheus: prometheusGates.optional().describe('PromQL queries judged at every sample (needs prometheus:)'),
      })
      .default({}),
    failureLimit: z.number().int().min(0).default(0).describe('failed samples of one gate tolerated; one more aborts the shift'),
    inconclusiveLimit: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe('inconclusive samples of one gate tolerated; one more pauses the shift and asks a human to promote or abort'),
    consecutiveErrorLimit: z.number().int().min(0).default(4).describe('samples in a row that one gate could not measure; one more aborts the shift'),
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
        url: z
          .string()
          .refine((v) => v.includes('${{') || (httpUrlOrExpr(v) && v.startsWith('http://')), {
            error: 'expected an http:// URL (the load generator speaks plain HTTP: an https:// gateway would get the engine token in the clear)',
          })
          .optional()
          .describe("send the orders here instead of to the engine: the gateway in front of it (the engine's token still goes along)"),
        makers: loadMakers.optional().describe('market makers that come back gradually after the reopen, their spreads narrowing over the ramp'),
        stops: loadStops
          .optional()
          .describe('stop-loss and stop-entry levels held client side (the engine has no stop orders), sent as market orders when the mark crosses them'),
      })
      .default({ rate: 200, accounts: 20, seed: 1 }),
  })
  .refine((w) => (w.stages === undefined) !== (w.stepWeights === undefined), { error: 'give either stages or stepWeights' })
  .refine((w) => w.stepWeights === undefined || w.bake !== undefined, { error: 'stepWeights needs bake', path: ['bake'] })
  .refine((w) => !w.gates.prometheus?.length || w.prometheus !== undefined, { error: 'gates.prometheus needs prometheus: { address }', path: ['prometheus'] });

export type TrafficShiftWith = z.output<typeof trafficShiftWith>;

interface Stage {
  weight: number;
  bake: string;
}

function stagesOf(w: TrafficShiftWith): Stage[] {
  return w.stages ?? (w.stepWeights ?? []).map((weight) => ({ weight, bake: w.bake ?? '30s' }));
}

/** How often the gates are sampled, at this time scale. */
function intervalMsOf(w: TrafficShiftWith, timeScale: number): number {
  return Math.max(50, Math.round((parseDuration(w.interval) ?? 1000) * timeScale));
}

/** How long a stage bakes at this time scale: however short the scaled bake, long enough for MIN_SAMPLES samples. */
function bakeMsOf(stage: Stage, intervalMs: number, timeScale: number): number {
  return Math.max(Math.round((parseDuration(stage.bake) ?? 0) * timeScale), MIN_SAMPLES * intervalMs);
}

type Client = ControlClient;

/** A shift under way: what it drives, and what it has seen so far across its stages. */
interface Shift {
  w: TrafficShiftWith;
  ctx: StepContext;
  client: Client;
  gen: LoadRun;
  provider: TrafficProvider;
  stages: Stage[];
  intervalMs: number;
  tally: Tally;
  checks: StepCheck[];
  samples: number;
  maxQueueDepth: number;
  maxP99: number | null;
  weights: TrafficWeights;
  /** Canary to 0 and remainder to 100 with a provider of its own deadline, for when the step's signal is already aborted. */
  takeBack(): Promise<TrafficWeights>;
}

/** How long taking the traffic back may take once the step has run out of time. */
const TAKE_BACK_MS = 15_000;

/** The traders, their funding and the load generator (synthetic or a recorded flow), not yet started. */
async function prepareLoad(w: TrafficShiftWith, ctx: StepContext, engine: EngineTarget, client: Client): Promise<LoadRun> {
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
  return ctx.engines.load(engine, {
    rate: w.load.rate,
    accounts,
    seed: w.load.seed,
    ...(replay ? { replay } : {}),
    ...(w.load.url ? { orderUrl: w.load.url } : {}),
    ...liquidityOptions(w, ctx.timeScale),
  });
}

/** The load's makers and stops, their durations scaled as the rehearsal scales the playbook's. */
export function liquidityOptions(w: TrafficShiftWith, timeScale: number): Pick<LoadOptions, 'makers' | 'stops'> {
  const m = w.load.makers;
  const scaled = (d: string): number => Math.round((parseDuration(d) ?? 0) * timeScale);
  return {
    ...(m
      ? {
          makers: {
            count: m.count,
            rampMs: scaled(m.ramp),
            startSpreadBps: m.startSpreadBps,
            endSpreadBps: m.endSpreadBps,
            levels: m.levels,
            lots: m.lots,
            refreshMs: Math.max(MIN_MAKER_REFRESH_MS, scaled(m.refresh)),
          },
        }
      : {}),
    ...(w.load.stops ? { stops: { ...w.load.stops } } : {}),
  };
}

/** The engine's view of one sample window, between two reads of its /metrics and of the load's counters. */
type ParsedMetrics = import('../engine-client/load.js').ParsedMetrics;

interface Window {
  metrics: ParsedMetrics;
  stats: ReturnType<LoadRun['stats']>;
}

/** One sample: every gate judged, journaled, and counted. */
async function sample(s: Shift, prev: Window): Promise<{ judgements: GateJudgement[]; window: Window; gateSample: GateSample }> {
  const { parseMetrics, p99Between } = await import('../engine-client/load.js');
  const { w, ctx } = s;
  const [read, prom] = await Promise.all([
    // An engine that does not answer one read is an unmeasurable sample (counted against
    // consecutiveErrorLimit), not the end of the shift.
    s.client.metrics().then(parseMetrics, () => null),
    w.prometheus && w.gates.prometheus?.length
      ? judgePrometheusGates(w.prometheus, w.gates.prometheus, { fetch: ctx.fetch, signal: ctx.signal })
      : Promise.resolve(undefined),
  ]);
  const metrics: ParsedMetrics = read ?? { queueDepth: NaN, halted: false, latencyBuckets: prev.metrics.latencyBuckets, latencyCount: NaN, books: {} };
  const stats = s.gen.stats();
  const gateSample: GateSample = {
    halted: metrics.halted,
    queueDepth: metrics.queueDepth,
    sent: stats.sent - prev.stats.sent,
    errors: stats.errors - prev.stats.errors,
    p99LatencyMs: Number.isNaN(metrics.latencyCount) ? NaN : p99Between(prev.metrics.latencyBuckets, metrics.latencyBuckets),
    books: read?.books,
  };
  const judgements = [
    ...engineJudgements(w.gates, gateSample),
    ...(prom?.gates ?? []).map((g, i): GateJudgement => {
      const gate = w.gates.prometheus?.[i];
      return { gate: g.name, source: 'prometheus', verdict: g.verdict, value: g.value, detail: g.detail, ...(gate ? { threshold: limitsText(gate) } : {}) };
    }),
  ];
  // An unread sample keeps the last good histogram as the next window's start.
  return { judgements, window: { metrics: Number.isNaN(metrics.latencyCount) ? prev.metrics : metrics, stats }, gateSample };
}

/** Pause for a human: promote past the inconclusive gates (true) or abort (false), as gate.approve asks. */
async function askToPromote(s: Shift, n: number, reason: string): Promise<{ promoted: boolean; by: string; why?: string }> {
  const stage = s.stages[n - 1] as Stage;
  s.ctx.notice(`stage ${n}/${s.stages.length} paused: ${reason}; asking whether to promote or abort`);
  const answer = await s.ctx.approver.approve(
    `traffic.shift ${s.ctx.stepId} stage ${n}/${s.stages.length} (weight ${stage.weight}%) is inconclusive: ${reason}. Promote and continue the shift?`,
    s.ctx.signal,
  );
  if (answer.approved) return { promoted: true, by: answer.by };
  return { promoted: false, by: answer.by, why: answer.unavailable ?? `not promoted (answered by ${answer.by})` };
}

/** The stage's judgements per gate as JUnit cases: a failed or unmeasurable gate fails its case. */
function stageChecks(s: Shift, n: number, before: Tally, durationMs: number, stopped = false): StepCheck[] {
  const stage = s.stages[n - 1] as Stage;
  return [...s.tally].map(([gate, c]) => {
    const b = before.get(gate);
    const d = {
      pass: c.pass - (b?.pass ?? 0),
      fail: c.fail - (b?.fail ?? 0),
      inconclusive: c.inconclusive - (b?.inconclusive ?? 0),
      error: c.error - (b?.error ?? 0),
    };
    return {
      name: `stage ${n} (weight ${stage.weight}%) ${gate}`,
      // Failures within the limits are tolerated, as the step's outcome says; in the stage that stopped
      // the shift, every gate that did not always pass fails its case.
      ok: !stopped || (d.fail === 0 && d.error === 0 && d.inconclusive === 0),
      message: countsText({ ...d, consecutiveErrors: 0, inconclusiveSincePromotion: 0 }),
      durationMs,
    };
  });
}

/** Why a stage stopped the shift: what kind of limit, and the words for it. */
interface Stop {
  kind: 'breached' | 'unmeasurable' | 'inconclusive';
  reason: string;
}

/**
 * Bake one stage: move the traffic, then sample every interval and act on the analysis. Returns why the
 * shift must stop (a limit passed, a human said no), or null when the stage held.
 */
async function bakeStage(s: Shift, n: number): Promise<Stop | null> {
  const { parseMetrics } = await import('../engine-client/load.js');
  const { ctx, w } = s;
  const stage = s.stages[n - 1] as Stage;
  s.weights = await s.provider.set(stage.weight, n);
  const bakeMs = bakeMsOf(stage, s.intervalMs, ctx.timeScale);
  ctx.progress(`stage ${n}/${s.stages.length}: weight ${stage.weight}%, bake ${formatDuration(bakeMs)}`, {
    stage: n,
    stages: s.stages.length,
    weight: s.weights.weight,
    remainderWeight: s.weights.remainderWeight,
    bakeMs,
  });
  let started = ctx.clock.now();
  const before = s.tally;
  let prev: Window = { metrics: parseMetrics(await s.client.metrics()), stats: s.gen.stats() };
  while (ctx.clock.now() - started < bakeMs) {
    await ctx.clock.sleep(Math.min(s.intervalMs, Math.max(1, bakeMs - (ctx.clock.now() - started))), ctx.signal);
    const taken = await sample(s, prev);
    prev = taken.window;
    s.samples++;
    if (!Number.isNaN(taken.gateSample.queueDepth)) s.maxQueueDepth = Math.max(s.maxQueueDepth, taken.gateSample.queueDepth);
    if (taken.gateSample.p99LatencyMs !== null && !Number.isNaN(taken.gateSample.p99LatencyMs))
      s.maxP99 = Math.max(s.maxP99 ?? 0, taken.gateSample.p99LatencyMs);
    ctx.measure({ stage: n, stages: s.stages.length, weight: stage.weight, verdict: worstVerdict(taken.judgements), judgements: taken.judgements });
    ctx.progress(`stage ${n}/${s.stages.length} weight ${stage.weight}%`, {
      stage: n,
      stages: s.stages.length,
      weight: stage.weight,
      queueDepth: taken.gateSample.queueDepth,
      errorRate: Number(errorRateOf(taken.gateSample).toFixed(4)),
      p99LatencyMs: taken.gateSample.p99LatencyMs,
      sent: taken.gateSample.sent,
      breaches: taken.judgements.filter((j) => j.verdict === 'fail').length,
    });
    s.tally = record(s.tally, taken.judgements);
    const halted = taken.gateSample.halted ? 'the engine halted itself' : null;
    const decision = halted ? { action: 'abort' as const, reason: halted } : decide(s.tally, w);
    if (decision.action === 'abort') {
      s.checks.push(...stageChecks(s, n, before, ctx.clock.now() - started, true));
      const breaches = taken.judgements.filter((j) => j.verdict === 'fail').map((j) => j.detail);
      if (halted || breaches.length) return { kind: 'breached', reason: halted ?? `${breaches.join('; ')} (${decision.reason})` };
      return { kind: 'unmeasurable', reason: decision.reason };
    }
    if (decision.action === 'ask') {
      const pausedAt = ctx.clock.now();
      const answer = await askToPromote(s, n, decision.reason);
      // The stage was not watched while it waited for a human: that time is not bake time.
      started += ctx.clock.now() - pausedAt;
      if (!answer.promoted) {
        s.checks.push(...stageChecks(s, n, before, ctx.clock.now() - started, true));
        return { kind: 'inconclusive', reason: `${decision.reason}; ${answer.why ?? 'not promoted'}` };
      }
      s.tally = promote(s.tally, decision.gates);
      ctx.notice(`stage ${n}/${s.stages.length}: promoted past ${decision.gates.join(', ')} by ${answer.by}`);
    }
  }
  s.checks.push(...stageChecks(s, n, before, ctx.clock.now() - started));
  return null;
}

/** The stage to start at: the first, or on a resume the one the gateway already reached (it is asked first). */
async function firstStage(s: Shift): Promise<number> {
  if (!s.ctx.resumed) return 1;
  s.weights = await s.provider.current();
  // Weights that are not a canary/remainder split recoverctl set (a gateway's configured 100/100) mean no stage was reached.
  const split = s.weights.remainderWeight === null || s.weights.weight + s.weights.remainderWeight === 100;
  if (!split) {
    s.ctx.notice(`resumed: ${s.provider.type} has weights ${s.weights.weight}/${s.weights.remainderWeight}, not a split this shift set; starting at stage 1`);
    return 1;
  }
  const reached = s.stages.reduce((at, st, i) => (s.weights.weight > 0 && st.weight <= s.weights.weight ? i + 1 : at), 1);
  s.ctx.notice(
    `resumed: ${s.provider.type} has the canary at ${s.weights.weight}%${s.weights.remainderWeight === null ? '' : ` and the remainder at ${s.weights.remainderWeight}%`}; continuing at stage ${reached}/${s.stages.length}`,
  );
  return reached;
}

function shiftOutputs(s: Shift): Record<string, number | string | null> {
  return {
    weight: s.weights.weight,
    remainderWeight: s.weights.remainderWeight,
    provider: s.provider.type,
    stages: s.stages.length,
    samples: s.samples,
    maxQueueDepth: s.maxQueueDepth,
    maxP99LatencyMs: s.maxP99,
    ...s.gen.stats(),
  };
}

/** Every stage in turn under load; on an abort the provider takes the traffic back and the shift stops. */
async function shiftStages(s: Shift): Promise<StepResult> {
  const fail = async (error: string, stage: number): Promise<StepResult> => {
    s.weights = await s.provider.abort().then(
      (back) => {
        error +=
          s.provider.type === 'engine' ? '; admission set to 0' : `; traffic taken back (canary ${back.weight}%, remainder ${back.remainderWeight ?? '–'}%)`;
        return back;
      },
      (e: unknown) => {
        error += `; and taking the traffic back FAILED: ${errorMessage(e)}`;
        return s.weights;
      },
    );
    return { ok: false, error, checks: s.checks, outputs: { failedStage: stage, ...shiftOutputs(s) } };
  };
  let n = 1;
  s.gen.start();
  try {
    for (n = await firstStage(s); n <= s.stages.length; n++) {
      const stopped = await bakeStage(s, n);
      const stage = s.stages[n - 1] as Stage;
      const what = { breached: 'gate breached', unmeasurable: 'gates could not measure', inconclusive: 'analysis inconclusive' } as const;
      if (stopped) return await fail(`${what[stopped.kind]} at stage ${n} (weight ${stage.weight}%): ${stopped.reason}`, n);
    }
  } catch (e) {
    // Interrupted (Ctrl-C): the traffic stays where it is, for --resume to continue from. Out of time
    // (the step's timeout): the shift gives up, so the traffic goes back before the rollback runs.
    if (s.ctx.signal.aborted && !s.ctx.interrupt.aborted) {
      await s.takeBack().catch(() => undefined);
      throw e;
    }
    if (s.ctx.signal.aborted) throw e;
    return fail(`traffic.shift at stage ${n}: ${errorMessage(e)}`, n);
  } finally {
    await s.gen.stop();
  }
  await s.provider.finish?.();
  s.ctx.progress(`shift complete: ${s.provider.type} at ${s.weights.weight}%; ${[...s.tally].map(([g, c]) => `${g} ${countsText(c)}`).join('; ')}`);
  return { ok: true, checks: s.checks, outputs: shiftOutputs(s) };
}

export const trafficShiftStep = defineStep({
  uses: 'traffic.shift',
  with: trafficShiftWith,
  // The command provider's argv templates are filled by the shift at each stage, not by the playbook.
  templates: {
    paths: [
      ['provider', 'set'],
      ['provider', 'verify'],
      ['provider', 'abort'],
      ['provider', 'current'],
    ],
    names: ['weight', 'remainder', 'stage'],
  },
  needs: (w, ctx) => [
    { need: 'engine' },
    ...(w.load.replay ? [{ need: 'file', field: 'load.replay', path: resolvePath(ctx.playbookDir, w.load.replay) } as const] : []),
    ...(w.gates.prometheus ?? []).map((g, i) => ({
      need: 'promql' as const,
      field: `gates.prometheus.${i}.query`,
      address: w.prometheus?.address ?? '',
      headers: w.prometheus?.headers ?? {},
      timeoutMs: parseDuration(w.prometheus?.timeout ?? '10s') ?? 10_000,
      query: g.query,
    })),
  ],
  // Every stage's bake (a shift that stops early bakes fewer).
  timing: { waitMs: (w, timeScale) => stagesOf(w).reduce((sum, stage) => sum + bakeMsOf(stage, intervalMsOf(w, timeScale), timeScale), 0) },
  describe: (w, ctx) => {
    const stages = stagesOf(w)
      .map((s) => `${s.weight}%/${s.bake}`)
      .join(' → ');
    const engineGates = Object.entries(w.gates)
      .filter(([k]) => k !== 'prometheus' && k !== 'book')
      .map(([k, v]) => `${k} ${String(v)}`);
    const b = w.gates.book;
    if (b) {
      const limits = [
        ...(b.maxSpreadBps !== undefined ? [`spread <= ${b.maxSpreadBps}bps`] : []),
        ...(b.minDepth !== undefined ? [`depth(${b.levels}) >= ${b.minDepth}`] : []),
      ];
      engineGates.push(`book ${b.symbols.join(',')} ${limits.join(' ')}`);
    }
    const promGates = (w.gates.prometheus ?? []).map((g) => `${g.name} (prometheus)`);
    const gates = [...engineGates, ...promGates].join(', ') || 'no gates';
    const via = w.provider && w.provider.type !== 'engine' ? describeProvider(w.provider) : `the admission weight of ${engineLabel(ctx.engine)}`;
    const flow = [
      w.load.replay ? `replaying ${w.load.replay}` : `${w.load.rate} orders/s`,
      ...(w.load.makers ? [`${w.load.makers.count} makers back over ${w.load.makers.ramp}`] : []),
      ...(w.load.stops ? ['stops'] : []),
    ].join(', ');
    return `shift traffic through ${via}: ${stages} (${flow}), gates: ${gates}; limits: failures ${w.failureLimit}, inconclusive ${w.inconclusiveLimit}, errors in a row ${w.consecutiveErrorLimit}`;
  },
  async run(w, ctx): Promise<StepResult> {
    if (!ctx.engine) return noEngine('traffic.shift');
    const client = await ctx.engines.connect(ctx.engine);
    const health = await client.health();
    if (health.phase === 'halted')
      return { ok: false, error: `traffic.shift: the engine is halted${health.reason ? ` (${health.reason})` : ''}; resume it first` };
    const config = w.provider ?? { type: 'engine' as const };
    const deps = { exec: ctx.exec, socket: ctx.socket, signal: ctx.signal, playbookDir: ctx.playbookDir, engine: client };
    const provider = providerFor(config, deps);
    const takeBack = (): Promise<TrafficWeights> => providerFor(config, { ...deps, signal: AbortSignal.timeout(TAKE_BACK_MS) }).abort();
    const gen = await prepareLoad(w, ctx, ctx.engine, client);
    const stages = stagesOf(w);
    const intervalMs = intervalMsOf(w, ctx.timeScale);
    const shift: Shift = {
      w,
      ctx,
      client,
      gen,
      provider,
      stages,
      intervalMs,
      tally: new Map(),
      checks: [],
      samples: 0,
      maxQueueDepth: 0,
      maxP99: null,
      weights: { weight: 0, remainderWeight: null },
      takeBack,
    };
    return shiftStages(shift);
  },
});
