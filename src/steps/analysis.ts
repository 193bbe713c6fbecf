/**
 * The analysis of a traffic shift, as Argo Rollouts runs one: every gate's every sample is judged
 * (`pass`, `fail`, `inconclusive`, `error`), counted per gate over the whole shift, and held to three
 * limits. Pure: the shift feeds judgements in and acts on the decision that comes out.
 */
import type { Verdict } from './gates.js';

/** One gate's judgement of one sample. */
export interface GateJudgement {
  /** `maxQueueDepth`, `p99LatencyMs`, … for the engine's gates; the gate's `name` for a Prometheus one. */
  gate: string;
  source: 'engine' | 'prometheus';
  verdict: Verdict;
  /** What was measured; null when nothing could be. */
  value: number | null;
  /** Why the verdict is what it is, the limit included. */
  detail: string;
  /** The limit alone (`<= 500`, `in [0, 2]`), for the report's and dashboard's gate columns; absent in journals before it. */
  threshold?: string;
}

/** One sample of every gate at a stage of the shift: what the journal records and the renderers show. */
export interface Measurement {
  stage: number;
  stages: number;
  /** The canary's weight at this stage, percent. */
  weight: number;
  /** The worst of the judgements. */
  verdict: Verdict;
  judgements: GateJudgement[];
}

export interface AnalysisLimits {
  /** Failed measurements of one gate tolerated; one more aborts the shift. */
  failureLimit: number;
  /** Inconclusive measurements of one gate tolerated; one more pauses the shift for a human. */
  inconclusiveLimit: number;
  /** Errors in a row of one gate tolerated; one more aborts the shift. */
  consecutiveErrorLimit: number;
}

export interface GateCounts {
  pass: number;
  fail: number;
  inconclusive: number;
  error: number;
  consecutiveErrors: number;
  /** Inconclusive measurements since a human last promoted past them. */
  inconclusiveSincePromotion: number;
}

/** Counts per gate, in the order the gates were first seen. */
export type Tally = ReadonlyMap<string, GateCounts>;

export type Decision =
  | { action: 'continue' }
  /** A limit was passed: the shift stops, traffic goes back, the step fails. */
  | { action: 'abort'; reason: string }
  /** Too many inconclusive measurements: a human decides to promote past them or to abort. */
  | { action: 'ask'; reason: string; gates: string[] };

const ZERO: GateCounts = { pass: 0, fail: 0, inconclusive: 0, error: 0, consecutiveErrors: 0, inconclusiveSincePromotion: 0 };

/** The tally after one sample's judgements. */
export function record(tally: Tally, judgements: readonly GateJudgement[]): Tally {
  const next = new Map(tally);
  for (const j of judgements) {
    const c = { ...(next.get(j.gate) ?? ZERO) };
    c[j.verdict]++;
    c.consecutiveErrors = j.verdict === 'error' ? c.consecutiveErrors + 1 : 0;
    if (j.verdict === 'inconclusive') c.inconclusiveSincePromotion++;
    next.set(j.gate, c);
  }
  return next;
}

/** A human promoted past the inconclusive measurements of `gates`: they no longer count towards the pause. */
export function promote(tally: Tally, gates: readonly string[]): Tally {
  const next = new Map(tally);
  for (const g of gates) {
    const c = next.get(g);
    if (c) next.set(g, { ...c, inconclusiveSincePromotion: 0 });
  }
  return next;
}

const times = (n: number): string => (n === 1 ? 'once' : `${n} times`);

/** What the shift does next. A failure outranks an error streak, which outranks a pause. */
export function decide(tally: Tally, limits: AnalysisLimits): Decision {
  const over = (pick: (c: GateCounts) => number, limit: number): [string, number][] =>
    [...tally].filter(([, c]) => pick(c) > limit).map(([g, c]) => [g, pick(c)]);
  const failed = over((c) => c.fail, limits.failureLimit);
  if (failed.length) {
    return { action: 'abort', reason: failed.map(([g, n]) => `${g} failed ${times(n)} (failureLimit ${limits.failureLimit})`).join('; ') };
  }
  const erring = over((c) => c.consecutiveErrors, limits.consecutiveErrorLimit);
  if (erring.length) {
    return {
      action: 'abort',
      reason: erring.map(([g, n]) => `${g} could not be measured ${times(n)} in a row (consecutiveErrorLimit ${limits.consecutiveErrorLimit})`).join('; '),
    };
  }
  const unsure = over((c) => c.inconclusiveSincePromotion, limits.inconclusiveLimit);
  if (unsure.length) {
    return {
      action: 'ask',
      reason: unsure.map(([g, n]) => `${g} inconclusive ${times(n)} (inconclusiveLimit ${limits.inconclusiveLimit})`).join('; '),
      gates: unsure.map(([g]) => g),
    };
  }
  return { action: 'continue' };
}

/** The worst verdict of a sample: fail, then error, then inconclusive, then pass. */
export function worstVerdict(judgements: readonly GateJudgement[]): Verdict {
  for (const v of ['fail', 'error', 'inconclusive'] as const) if (judgements.some((j) => j.verdict === v)) return v;
  return 'pass';
}

/** `12 pass, 1 inconclusive` for a gate's counts; zero counts left out. */
export function countsText(c: GateCounts): string {
  const parts = (['pass', 'fail', 'inconclusive', 'error'] as const).filter((k) => c[k] > 0).map((k) => `${c[k]} ${k}`);
  return parts.join(', ') || 'no samples';
}
