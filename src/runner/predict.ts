import { closeSync, openSync, readdirSync, readSync } from 'node:fs';
import { join } from 'node:path';
import type { LoadedPlaybook, RuntimeStep } from '../playbook/load.js';
import { REGISTRY, type ErasedStepKind } from '../steps/registry.js';
import { formatDuration, parseDuration } from '../util/duration.js';
import { rng } from '../util/random.js';
import type { EventOf, Phase, RunEvent } from './events.js';
import { JOURNAL_FILE, readJournal, runsDir } from './journal.js';
import { interpolateWith, References, UnresolvedReference, type StepState } from './scope.js';

/**
 * The RTO predicted from the journals of earlier runs and rehearsals of a playbook (docs/chaos.md, "RTO
 * prediction"): each step's observed durations with configured waits counted at the predicted run's time
 * scale, combined exactly when the combinations are few, else by a seeded Monte Carlo.
 */

/** One step as one run journaled it. */
export interface StepObservation {
  step: string;
  phase: Phase;
  uses: string;
  /** From its first start to its ok/fail, retries and their backoff included; 0 for a step its condition skipped. */
  observedMs: number;
  /** The time scale the run ran at (1 for a real run). */
  timeScale: number;
  /** The step's `with` as that run resolved it, for a kind with configured waits; absent when it could not be resolved. */
  config?: unknown;
  /** A person answered this approval, in a run at time scale 1. */
  answeredByPerson: boolean;
}

/** What one earlier run says: the steps it finished before any failure, and every step it took. */
export interface RunSamples {
  runId: string;
  /** Main steps that ended (or were skipped by their condition) before a step failed the run. */
  recovery: StepObservation[];
  /** Every step the run took, in order: the recovery, the step that failed, the rollback, the steps after it. */
  taken: StepObservation[];
  /** `rolled-back`: a main step failed the run and it ended (its rollback ran, if it has one). */
  ending: 'recovered' | 'rolled-back' | 'unfinished';
}

export interface History {
  playbook: string;
  /** Runs of this playbook with its step list that finished at least one step, oldest first. */
  runs: RunSamples[];
  /** Runs with this playbook's name but another step list: the playbook changed since. */
  ignoredRuns: number;
}

export interface JournalOfRun {
  runId: string;
  events: RunEvent[];
}

/** How a main step is counted in the recovery path. */
export type StepBasis = 'observed' | 'expectedWait' | 'answered at once' | 'not counted' | 'unobserved';

interface PredictionBase {
  playbook: string;
  /** `metadata.rto` in milliseconds; null without one. */
  objectiveMs: number | null;
  runs: number;
  ignoredRuns: number;
}

export type RtoPrediction =
  | (PredictionBase & { status: 'none'; reason: 'no-history' | 'playbook-changed' })
  | (PredictionBase & {
      status: 'predicted';
      /** Percentiles of a real incident's run: time scale 1, approvals as people answer them. */
      p50Ms: number;
      p90Ms: number;
      p99Ms: number;
      /** p90 exceeds the objective. */
      atRisk: boolean;
      /** The two steps with the largest mean duration among the outcomes at or above p90. */
      tail: string[];
      tailMeansMs: Record<string, number>;
      /** Every combination of the steps' samples enumerated (nearest-rank percentiles), or seeded draws. */
      exact: boolean;
      /** How many outcomes the percentiles are over: combinations (plus rolled-back runs) or draws. */
      outcomes: number;
      /** Fewer than MIN_TRUSTED_RUNS runs. */
      fewSamples: boolean;
      rolledBackRuns: number;
      /** Share of the outcomes that are a rolled-back run (rolled-back runs over finished runs). */
      rolledBackShare: number;
      /** Approvals with no expectedWait and no answer from a person in a real run: counted as 0. */
      approvalsNotCounted: string[];
      /** Main steps no run finished before a failure: counted as 0. */
      unobserved: string[];
      perStep: Record<string, { samples: number; medianMs: number; basis: StepBasis }>;
      /**
       * The same for the run as it is set up, when it is not a real incident's (a rehearsal's time scale,
       * approvals answered at once): what its measured RTO compares with. Null otherwise.
       */
      asRun: { timeScale: number; autoApproved: boolean; p50Ms: number; p90Ms: number; p99Ms: number } | null;
    });

export interface PredictOptions {
  /** The time scale of the run the prediction is for (a rehearsal's), for `asRun`; default 1. */
  timeScale?: number;
  /** That run answers approvals at once (`--yes`, a rehearsal): they count as 0 in `asRun`. */
  autoApprove?: boolean;
  /** Enumerate every combination up to this many; default EXACT_LIMIT. */
  exactLimit?: number;
  /** Monte Carlo draws beyond it; default DRAWS. */
  draws?: number;
  seed?: number;
}

export const EXACT_LIMIT = 200_000;
export const DRAWS = 20_000;
export const SEED = 15;
export const MIN_TRUSTED_RUNS = 5;

/** The journals of the state dir's runs (unreadable ones left out), then their history for this playbook. */
export function loadHistory(stateDir: string, pb: LoadedPlaybook, opts: { excludeRun?: string } = {}): History {
  let ids: string[];
  try {
    ids = readdirSync(runsDir(stateDir));
  } catch {
    ids = [];
  }
  const journals: JournalOfRun[] = [];
  for (const runId of ids.sort()) {
    if (runId === opts.excludeRun) continue;
    try {
      // Other playbooks' journals (chaos trials add many) are told apart by their first record alone.
      if (playbookOf(join(runsDir(stateDir), runId, JOURNAL_FILE)) !== pb.spec.metadata.name) continue;
      journals.push({ runId, events: readJournal(join(runsDir(stateDir), runId, JOURNAL_FILE)).events });
    } catch {
      // Not a run folder, or a journal that cannot be read: not history.
    }
  }
  return historyOf(pb, journals);
}

/** The playbook a journal's first record (its run-start) names; undefined when it cannot be read. */
function playbookOf(path: string): string | undefined {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(64 * 1024);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const first = buf.subarray(0, n).toString('utf8').split('\n')[0] ?? '';
    const start = JSON.parse(first) as { event?: string; playbook?: unknown };
    return start.event === 'run-start' && typeof start.playbook === 'string' ? start.playbook : undefined;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** The runs of this playbook (by `metadata.name`) whose every run-start has its step list. */
export function historyOf(pb: LoadedPlaybook, journals: JournalOfRun[]): History {
  const name = pb.spec.metadata.name;
  const ids = pb.steps.map((s) => s.id).join('\n');
  const history: History = { playbook: name, runs: [], ignoredRuns: 0 };
  for (const j of journals) {
    const starts = j.events.filter((e): e is EventOf<'run-start'> => e.event === 'run-start');
    // A journal must open with its run-start (as foldJournal requires).
    if (j.events[0]?.event !== 'run-start' || starts[0]?.playbook !== name) continue;
    if (starts.some((s) => s.steps.join('\n') !== ids)) {
      history.ignoredRuns++;
      continue;
    }
    const samples = samplesOfRun(pb, j);
    if (samples.taken.length > 0) history.runs.push(samples);
  }
  return history;
}

type StepEnd = EventOf<'ok'> | EventOf<'fail'> | EventOf<'skip'>;

function samplesOfRun(pb: LoadedPlaybook, j: JournalOfRun): RunSamples {
  const recovery: StepObservation[] = [];
  const taken: StepObservation[] = [];
  const states = new Map<string, StepState>();
  let start: EventOf<'run-start'> | undefined;
  let failed = false;
  let end: EventOf<'run-end'>['outcome'] | undefined;
  for (const e of j.events) {
    if (e.event === 'run-start') {
      start = e;
      end = undefined;
    } else if (e.event === 'run-end') {
      end = e.outcome;
    } else if ((e.event === 'ok' || e.event === 'fail' || e.event === 'skip') && start) {
      const o = observe(pb, start, e, states);
      if (e.phase === 'main')
        states.set(e.step, {
          outcome: e.event === 'ok' ? 'success' : e.event === 'fail' ? 'failure' : 'skipped',
          outputs: e.event === 'skip' ? {} : (e.outputs ?? {}),
        });
      // The step that fails the run is the first of its rolled-back path, not a sample of the recovery.
      if (e.event === 'fail' && e.phase === 'main' && !e.continued) failed = true;
      if (!o) continue;
      taken.push(o);
      if (!failed && e.phase === 'main') recovery.push(o);
    }
  }
  const ending = end === 'success' ? 'recovered' : failed && (end === 'failed' || end === 'rollback-failed') ? 'rolled-back' : 'unfinished';
  return { runId: j.runId, recovery, taken, ending };
}

/** A step's end as an observation; none for a step done by hand or skipped after a failure (no time taken), or no longer in the playbook. */
function observe(pb: LoadedPlaybook, start: EventOf<'run-start'>, e: StepEnd, states: ReadonlyMap<string, StepState>): StepObservation | undefined {
  if (e.event === 'skip' && e.reason !== 'condition') return undefined;
  const step = (e.phase === 'main' ? pb.steps : pb.rollback).find((s) => s.id === e.step);
  if (!step) return undefined;
  const kind = REGISTRY.get(step.uses);
  const base = { step: e.step, phase: e.phase, uses: step.uses, timeScale: start.timeScale };
  if (e.event === 'skip') return { ...base, observedMs: 0, answeredByPerson: false };
  const config = kind?.timing?.waitMs ? resolvedWith(step, kind, start, states) : undefined;
  return {
    ...base,
    observedMs: e.durationMs,
    ...(config === undefined ? {} : { config }),
    answeredByPerson: start.timeScale === 1 && (kind?.timing?.answeredByPerson?.(e.outputs ?? {}) ?? false),
  };
}

/** The step's `with` as the run resolved it (its vars, its earlier steps' outputs); undefined when it cannot be (an env var). */
function resolvedWith(step: RuntimeStep, kind: ErasedStepKind, start: EventOf<'run-start'>, states: ReadonlyMap<string, StepState>): unknown {
  const refs = new References({ values: start.vars, secretNames: new Set() }, {}, states);
  try {
    const parsed = kind.with.safeParse(interpolateWith(step.with, kind.templates, (r) => refs.value(r)));
    return parsed.success ? parsed.data : undefined;
  } catch (e) {
    if (e instanceof UnresolvedReference) return undefined;
    throw e;
  }
}

/**
 * A duration observed at the run's time scale, as it would be at `timeScale`: the step's configured waits
 * (as much of them as it got through, for a step that stopped early) at that scale, the rest as observed.
 */
export function atTimeScale(o: StepObservation, timeScale: number): number {
  const timing = REGISTRY.get(o.uses)?.timing;
  if (o.config === undefined || !timing?.waitMs || o.timeScale === timeScale) return o.observedMs;
  const atRun = timing.waitMs(o.config, o.timeScale);
  if (atRun <= 0) return o.observedMs;
  const waited = Math.min(o.observedMs, atRun);
  return Math.round(o.observedMs - waited + (waited * timing.waitMs(o.config, timeScale)) / atRun);
}

/** How each step is counted: the approvals' rule, then time-scaled observations. */
interface Counting {
  timeScale: number;
  autoApprove: boolean;
  /** Approvals by step id: their expectedWait, or undefined without one. */
  approvals: Map<string, number | undefined>;
}

function countingOf(pb: LoadedPlaybook, timeScale: number, autoApprove: boolean): Counting {
  const approvals = new Map<string, number | undefined>();
  for (const step of [...pb.steps, ...pb.rollback]) {
    const kind = REGISTRY.get(step.uses);
    if (!kind?.timing?.personWaitMs) continue;
    const parsed = kind.with.safeParse(step.with);
    approvals.set(step.id, parsed.success ? kind.timing.personWaitMs(parsed.data) : undefined);
  }
  return { timeScale, autoApprove, approvals };
}

/** One observation as the prediction counts it. */
function countedMs(o: StepObservation, c: Counting): number {
  if (!c.approvals.has(o.step)) return atTimeScale(o, c.timeScale);
  if (c.autoApprove) return 0;
  return c.approvals.get(o.step) ?? (o.answeredByPerson ? o.observedMs : 0);
}

/** The recovery path's values for one main step, and how it is counted. */
function stepValues(step: RuntimeStep, runs: RunSamples[], c: Counting): { values: number[]; samples: number; basis: StepBasis } {
  let seen = runs.flatMap((r) => r.recovery.filter((o) => o.step === step.id));
  if (c.approvals.has(step.id)) {
    const expected = c.approvals.get(step.id);
    if (c.autoApprove) return { values: [0], samples: 0, basis: 'answered at once' };
    if (expected !== undefined) return { values: [expected], samples: 0, basis: 'expectedWait' };
    seen = seen.filter((o) => o.answeredByPerson);
    if (seen.length === 0) return { values: [0], samples: 0, basis: 'not counted' };
  }
  if (seen.length === 0) return { values: [0], samples: 0, basis: 'unobserved' };
  return { values: seen.map((o) => countedMs(o, c)), samples: seen.length, basis: 'observed' };
}

/** What is combined: the recovery path step by step, and the rolled-back runs whole, each path weighted by how often it happened. */
export interface Model {
  steps: { id: string; values: number[] }[];
  rolledBack: { total: number; byStep: Map<string, number> }[];
  /** Relative weights of the two paths: finished runs that recovered, and that rolled back. */
  recoveredWeight: number;
  rolledBackWeight: number;
}

export interface Outcomes {
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  tail: { step: string; meanMs: number }[];
  exact: boolean;
  outcomes: number;
}

/** Predict the RTO of the playbook's next run from its history; pure. */
export function predictRto(pb: LoadedPlaybook, history: History, opts: PredictOptions = {}): RtoPrediction {
  const rto = pb.spec.metadata.rto;
  const base = {
    playbook: pb.spec.metadata.name,
    objectiveMs: rto ? (parseDuration(rto) ?? null) : null,
    runs: history.runs.length,
    ignoredRuns: history.ignoredRuns,
  };
  if (history.runs.length === 0) return { ...base, status: 'none', reason: history.ignoredRuns > 0 ? 'playbook-changed' : 'no-history' };
  const real = modelOf(pb, history, countingOf(pb, 1, false));
  const out = combine(real.model, opts);
  const timeScale = opts.timeScale ?? 1;
  const autoApproved = opts.autoApprove ?? false;
  let asRun: Extract<RtoPrediction, { status: 'predicted' }>['asRun'] = null;
  if (timeScale !== 1 || autoApproved) {
    const scaled = combine(modelOf(pb, history, countingOf(pb, timeScale, autoApproved)).model, opts);
    asRun = { timeScale, autoApproved, p50Ms: scaled.p50Ms, p90Ms: scaled.p90Ms, p99Ms: scaled.p99Ms };
  }
  const ids = (basis: StepBasis): string[] => pb.steps.filter((s) => real.perStep[s.id]?.basis === basis).map((s) => s.id);
  return {
    ...base,
    status: 'predicted',
    p50Ms: out.p50Ms,
    p90Ms: out.p90Ms,
    p99Ms: out.p99Ms,
    atRisk: base.objectiveMs !== null && out.p90Ms > base.objectiveMs,
    tail: out.tail.map((t) => t.step),
    tailMeansMs: Object.fromEntries(out.tail.map((t) => [t.step, t.meanMs])),
    exact: out.exact,
    outcomes: out.outcomes,
    fewSamples: history.runs.length < MIN_TRUSTED_RUNS,
    rolledBackRuns: real.model.rolledBack.length,
    rolledBackShare: real.model.rolledBackWeight / (real.model.recoveredWeight + real.model.rolledBackWeight),
    approvalsNotCounted: ids('not counted'),
    unobserved: ids('unobserved'),
    perStep: real.perStep,
    asRun,
  };
}

/** The history as values to combine, each counted the way `c` says. */
function modelOf(pb: LoadedPlaybook, history: History, c: Counting): { model: Model; perStep: Extract<RtoPrediction, { status: 'predicted' }>['perStep'] } {
  const perStep: Extract<RtoPrediction, { status: 'predicted' }>['perStep'] = {};
  const steps = pb.steps.map((step) => {
    const v = stepValues(step, history.runs, c);
    perStep[step.id] = {
      samples: v.samples,
      medianMs: nearestRank(
        [...v.values].sort((a, b) => a - b),
        50,
      ),
      basis: v.basis,
    };
    return { id: step.id, values: v.values };
  });
  const rolledBack = history.runs.filter((r) => r.ending === 'rolled-back');
  const recovered = history.runs.filter((r) => r.ending === 'recovered').length;
  const model: Model = {
    steps,
    rolledBack: rolledBack.map((r) => {
      const byStep = new Map<string, number>();
      for (const o of r.taken) byStep.set(o.step, (byStep.get(o.step) ?? 0) + countedMs(o, c));
      return { total: [...byStep.values()].reduce((a, b) => a + b, 0), byStep };
    }),
    // Only unfinished runs: the recovery path alone.
    recoveredWeight: recovered + rolledBack.length === 0 ? 1 : recovered,
    rolledBackWeight: rolledBack.length,
  };
  return { model, perStep };
}

/** The value at percentile p of ascending values: the ceil(p/100 × n)-th (nearest rank). */
function nearestRank(sorted: readonly number[], p: number): number {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

/** Exact when the recovery path's combinations are few enough, else a seeded Monte Carlo. */
export function combine(m: Model, opts: Pick<PredictOptions, 'exactLimit' | 'draws' | 'seed'> = {}): Outcomes {
  const combinations = m.recoveredWeight === 0 ? 0 : m.steps.reduce((n, s) => n * s.values.length, 1);
  return combinations <= (opts.exactLimit ?? EXACT_LIMIT) ? enumerate(m, combinations) : draw(m, opts.draws ?? DRAWS, opts.seed ?? SEED);
}

/** Outcomes as parallel arrays: each one's total, its weight, and its steps' durations on demand. */
interface Weighted {
  totals: Float64Array;
  weights: Float64Array;
  stepsOf(i: number): Iterable<[string, number]>;
}

/**
 * Every combination of one sample per step (the last step varying fastest), each weighing the recovered
 * runs' count, and every rolled-back run weighing the number of combinations: the two paths in proportion.
 */
function enumerate(m: Model, combinations: number): Outcomes {
  let totals = new Float64Array(combinations === 0 ? 0 : 1);
  for (const s of combinations === 0 ? [] : m.steps) {
    const next = new Float64Array(totals.length * s.values.length);
    totals.forEach((t, i) => s.values.forEach((v, k) => (next[i * s.values.length + k] = t + v)));
    totals = next;
  }
  const n = combinations + m.rolledBack.length;
  const all = new Float64Array(n);
  all.set(totals);
  m.rolledBack.forEach((r, i) => (all[combinations + i] = r.total));
  const weights = new Float64Array(n).fill(m.recoveredWeight, 0, combinations).fill(Math.max(combinations, 1), combinations);
  const stepsOf = function* (i: number): Iterable<[string, number]> {
    if (i >= combinations) {
      yield* (m.rolledBack[i - combinations] as Model['rolledBack'][number]).byStep;
      return;
    }
    let rest = i;
    for (let k = m.steps.length - 1; k >= 0; k--) {
      const s = m.steps[k] as Model['steps'][number];
      yield [s.id, s.values[rest % s.values.length] as number];
      rest = Math.floor(rest / s.values.length);
    }
  };
  return { ...summarise({ totals: all, weights, stepsOf }, m), exact: true, outcomes: n };
}

/** Seeded draws: a rolled-back run with its path's share, else one observed sample of every step. */
function draw(m: Model, draws: number, seed: number): Outcomes {
  const random = rng(seed);
  const rolledBackShare = m.rolledBackWeight / (m.recoveredWeight + m.rolledBackWeight);
  const totals = new Float64Array(draws);
  // Per draw: the rolled-back run drawn (≥ 0), or -1 and the sample index of each step.
  const rolledBack = new Int32Array(draws).fill(-1);
  const picks = new Uint32Array(draws * m.steps.length);
  for (let d = 0; d < draws; d++) {
    if (m.rolledBack.length > 0 && random() < rolledBackShare) {
      rolledBack[d] = Math.floor(random() * m.rolledBack.length);
      totals[d] = (m.rolledBack[rolledBack[d] as number] as Model['rolledBack'][number]).total;
      continue;
    }
    m.steps.forEach((s, k) => {
      const pick = Math.floor(random() * s.values.length);
      picks[d * m.steps.length + k] = pick;
      totals[d] = (totals[d] as number) + (s.values[pick] as number);
    });
  }
  const stepsOf = function* (d: number): Iterable<[string, number]> {
    const r = rolledBack[d] as number;
    if (r >= 0) {
      yield* (m.rolledBack[r] as Model['rolledBack'][number]).byStep;
      return;
    }
    for (let k = 0; k < m.steps.length; k++) {
      const s = m.steps[k] as Model['steps'][number];
      yield [s.id, s.values[picks[d * m.steps.length + k] as number] as number];
    }
  };
  return { ...summarise({ totals, weights: new Float64Array(draws).fill(1), stepsOf }, m), exact: false, outcomes: draws };
}

/** Weighted nearest-rank percentiles, and the two steps with the largest mean over the outcomes at or above p90. */
function summarise(w: Weighted, m: Model): Omit<Outcomes, 'exact' | 'outcomes'> {
  const order = Array.from(w.totals.keys()).sort((a, b) => (w.totals[a] as number) - (w.totals[b] as number) || a - b);
  const total = w.weights.reduce((a, b) => a + b, 0);
  const at = (p: number): number => {
    let cumulative = 0;
    for (const i of order) {
      cumulative += w.weights[i] as number;
      // Integer weights: compared exactly, without dividing.
      if (cumulative * 100 >= p * total) return w.totals[i] as number;
    }
    return 0;
  };
  const p90Ms = at(90);
  const sums = new Map<string, number>();
  let tailWeight = 0;
  for (const i of order) {
    const weight = w.weights[i] as number;
    if ((w.totals[i] as number) < p90Ms || weight === 0) continue;
    tailWeight += weight;
    for (const [step, ms] of w.stepsOf(i)) sums.set(step, (sums.get(step) ?? 0) + ms * weight);
  }
  const rank = new Map([...m.steps.map((s) => s.id), ...m.rolledBack.flatMap((r) => [...r.byStep.keys()])].map((id, i) => [id, i]));
  const tail = [...sums]
    .map(([step, sum]) => ({ step, meanMs: Math.round(sum / tailWeight) }))
    .filter((t) => t.meanMs > 0)
    .sort((a, b) => b.meanMs - a.meanMs || (rank.get(a.step) ?? 0) - (rank.get(b.step) ?? 0))
    .slice(0, 2);
  return { p50Ms: at(50), p90Ms, p99Ms: at(99), tail };
}

/** The prediction for people: a few lines after the plan, the rehearsal's verdict or the report. */
export function predictionLines(p: RtoPrediction): string[] {
  if (p.status === 'none') {
    const runs = `${p.ignoredRuns} earlier run${p.ignoredRuns === 1 ? '' : 's'}`;
    return p.reason === 'playbook-changed'
      ? [`RTO prediction: none (${runs} of ${p.playbook} ${p.ignoredRuns === 1 ? 'has' : 'have'} a different step list: the playbook changed)`]
      : [`RTO prediction: none (no earlier runs or rehearsals of ${p.playbook} in the state dir: no history)`];
  }
  const d = formatDuration;
  const objective =
    p.objectiveMs === null
      ? 'no objective (metadata.rto)'
      : `against an objective of ${d(p.objectiveMs)}: ${p.atRisk ? 'at risk (p90 over it)' : 'p90 within it'}`;
  const how = p.exact ? `exact over ${p.outcomes.toLocaleString('en-US')} outcomes` : `${p.outcomes.toLocaleString('en-US')} seeded Monte Carlo draws`;
  const lines = [
    `RTO prediction: p50 ${d(p.p50Ms)}, p90 ${d(p.p90Ms)}, p99 ${d(p.p99Ms)} ${objective}`,
    `  from ${p.runs} earlier run${p.runs === 1 ? '' : 's'} (${how})${p.tail.length ? `; the tail: ${p.tail.map((s) => `${s} (mean ${d(p.tailMeansMs[s] ?? 0)})`).join(', ')}` : ''}`,
  ];
  if (p.fewSamples) lines.push(`  few samples (${p.runs} run${p.runs === 1 ? '' : 's'}, under ${MIN_TRUSTED_RUNS}): not to be trusted`);
  if (p.rolledBackRuns > 0) {
    const runs = p.rolledBackRuns === 1 ? '1 run' : `${p.rolledBackRuns} runs`;
    lines.push(`  ${runs} failed: ${Math.round(p.rolledBackShare * 100)}% of the outcomes, each counted as it ran (its rollback included)`);
  }
  if (p.approvalsNotCounted.length) {
    lines.push(`  approvals not counted (no expectedWait, never answered by a person in a real run): ${p.approvalsNotCounted.join(', ')}`);
  }
  if (p.unobserved.length) lines.push(`  never observed, counted as 0: ${p.unobserved.join(', ')}`);
  if (p.ignoredRuns > 0) lines.push(`  ${p.ignoredRuns} earlier run${p.ignoredRuns === 1 ? '' : 's'} ignored: a different step list (the playbook changed)`);
  if (p.asRun) lines.push(`  for this run (${asRunText(p.asRun)}): p50 ${d(p.asRun.p50Ms)}, p90 ${d(p.asRun.p90Ms)}, p99 ${d(p.asRun.p99Ms)}`);
  return lines;
}

/** How a run differs from a real incident's: `time scale 0.01, approvals answered at once`. */
export function asRunText(asRun: { timeScale: number; autoApproved: boolean }): string {
  return [...(asRun.timeScale === 1 ? [] : [`time scale ${asRun.timeScale}`]), ...(asRun.autoApproved ? ['approvals answered at once'] : [])].join(', ');
}

/** The prediction for a run about to start (not counting its own journal): never an error (an unreadable history is no prediction). */
export function predictionAtStart(stateDir: string, pb: LoadedPlaybook, runId: string | undefined, opts: PredictOptions): RtoPrediction | undefined {
  try {
    return predictRto(pb, loadHistory(stateDir, pb, runId === undefined ? {} : { excludeRun: runId }), opts);
  } catch {
    return undefined;
  }
}
