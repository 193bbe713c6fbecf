/**
 * traffic.shift's gates, judged like an Argo Rollouts measurement: a pure function of the limits and one
 * sample, so a new source of samples (Prometheus, say) plugs in without touching the shift itself.
 */

import type { GateJudgement } from './analysis.js';

/** The limits a stage is held to; an absent limit is not judged. */
export interface Gates {
  maxQueueDepth?: number | undefined;
  /** Errors / orders sent in the sample window, 0..1. */
  maxErrorRate?: number | undefined;
  p99LatencyMs?: number | undefined;
}

/** What one sample window saw. */
export interface GateSample {
  /** The engine reports itself halted: always a breach, whatever the limits. */
  halted: boolean;
  queueDepth: number;
  /** Orders sent in the window, and the errors among them. */
  sent: number;
  errors: number;
  /** null: no latency observations in the window, so there is no p99 to judge. */
  p99LatencyMs: number | null;
}

/**
 * `fail`: some limit was breached (or the engine halted). `error`: a measurement a limit needs is NaN (a
 * malformed source). `inconclusive`: a limit had nothing to judge (no orders, no latencies).
 * `pass`: every limit was judged and held. A breach outranks an error, an error outranks a gap.
 */
export type Verdict = 'pass' | 'fail' | 'inconclusive' | 'error';

export interface Judgement {
  verdict: Verdict;
  /** One human line per breach, in a fixed order: halt, queue depth, error rate, p99. */
  breaches: string[];
}

/** The window's error rate; a window with no orders sent counts as 0 (and the gate as inconclusive). */
export function errorRateOf(sample: Pick<GateSample, 'sent' | 'errors'>): number {
  return sample.sent > 0 ? sample.errors / sample.sent : 0;
}

type GateOutcome = { breach: string } | 'held' | 'no-data' | 'unmeasurable';

function judgeQueueDepth(limit: number, s: GateSample): GateOutcome {
  if (Number.isNaN(s.queueDepth)) return 'unmeasurable';
  return s.queueDepth > limit ? { breach: `queue depth ${s.queueDepth} > ${limit}` } : 'held';
}

function judgeErrorRate(limit: number, s: GateSample): GateOutcome {
  if (Number.isNaN(s.sent) || Number.isNaN(s.errors)) return 'unmeasurable';
  if (s.sent <= 0) return 'no-data';
  const rate = errorRateOf(s);
  return rate > limit ? { breach: `error rate ${rate.toFixed(3)} > ${limit}` } : 'held';
}

function judgeP99(limit: number, s: GateSample): GateOutcome {
  if (s.p99LatencyMs === null) return 'no-data';
  if (Number.isNaN(s.p99LatencyMs)) return 'unmeasurable';
  return s.p99LatencyMs > limit ? { breach: `p99 ${s.p99LatencyMs}ms > ${limit}ms` } : 'held';
}

/** Judge one sample against the gates. Pure: same gates and sample, same judgement. */
export function judgeSample(gates: Gates, sample: GateSample): Judgement {
  const outcomes: GateOutcome[] = [];
  if (gates.maxQueueDepth !== undefined) outcomes.push(judgeQueueDepth(gates.maxQueueDepth, sample));
  if (gates.maxErrorRate !== undefined) outcomes.push(judgeErrorRate(gates.maxErrorRate, sample));
  if (gates.p99LatencyMs !== undefined) outcomes.push(judgeP99(gates.p99LatencyMs, sample));
  const breaches = [...(sample.halted ? ['the engine halted itself'] : []), ...outcomes.flatMap((o) => (typeof o === 'object' ? [o.breach] : []))];
  if (breaches.length > 0) return { verdict: 'fail', breaches };
  if (outcomes.includes('unmeasurable')) return { verdict: 'error', breaches };
  if (outcomes.includes('no-data')) return { verdict: 'inconclusive', breaches };
  return { verdict: 'pass', breaches };
}

/** Each of the engine's gates judged on its own, as the analysis counts them: one judgement per gate set. */
export function engineJudgements(gates: Gates, sample: GateSample): GateJudgement[] {
  const out: GateJudgement[] = [];
  // A halted engine is a failure of the shift whatever the gates say.
  if (sample.halted) out.push({ gate: 'engine', source: 'engine', verdict: 'fail', value: null, detail: 'the engine halted itself' });
  const measured = { ...sample, halted: false };
  if (gates.maxQueueDepth !== undefined) {
    const j = judgeSample({ maxQueueDepth: gates.maxQueueDepth }, measured);
    const detail = j.breaches[0] ?? (j.verdict === 'error' ? 'queue depth not measurable' : `queue depth ${sample.queueDepth} <= ${gates.maxQueueDepth}`);
    out.push({ gate: 'maxQueueDepth', source: 'engine', verdict: j.verdict, value: Number.isNaN(sample.queueDepth) ? null : sample.queueDepth, detail });
  }
  if (gates.maxErrorRate !== undefined) {
    const j = judgeSample({ maxErrorRate: gates.maxErrorRate }, measured);
    const rate = errorRateOf(sample);
    const detail =
      j.breaches[0] ??
      (j.verdict === 'inconclusive'
        ? 'no orders sent in the window'
        : j.verdict === 'error'
          ? 'orders sent not measurable'
          : `error rate ${rate.toFixed(3)} <= ${gates.maxErrorRate}`);
    out.push({ gate: 'maxErrorRate', source: 'engine', verdict: j.verdict, value: sample.sent > 0 && !Number.isNaN(rate) ? rate : null, detail });
  }
  if (gates.p99LatencyMs !== undefined) {
    const j = judgeSample({ p99LatencyMs: gates.p99LatencyMs }, measured);
    const detail =
      j.breaches[0] ??
      (j.verdict === 'inconclusive'
        ? 'no orders matched in the window'
        : j.verdict === 'error'
          ? 'p99 not measurable'
          : `p99 ${sample.p99LatencyMs}ms <= ${gates.p99LatencyMs}ms`);
    const value = sample.p99LatencyMs === null || Number.isNaN(sample.p99LatencyMs) ? null : sample.p99LatencyMs;
    out.push({ gate: 'p99LatencyMs', source: 'engine', verdict: j.verdict, value, detail });
  }
  return out;
}
