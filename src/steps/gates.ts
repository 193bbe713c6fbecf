/**
 * traffic.shift's gates, judged like an Argo Rollouts measurement: a pure function of the limits and one
 * sample, so a new source of samples (Prometheus, say) plugs in without touching the shift itself.
 */

import type { BookMetrics } from '../engine-client/load.js';
import type { GateJudgement } from './analysis.js';

/** The limits a stage is held to; an absent limit is not judged. */
export interface Gates {
  maxQueueDepth?: number | undefined;
  /** Errors / orders sent in the sample window, 0..1. */
  maxErrorRate?: number | undefined;
  p99LatencyMs?: number | undefined;
  /** The books of these symbols, each judged as a gate of its own (`book:BTCUSDT`). */
  book?: BookGate | undefined;
}

/**
 * Book quality after a reopen (issue 13), from the engine's `engine_book_*` gauges: a symbol fails when its
 * spread is wider than `maxSpreadBps` (a side with no orders has no spread: a failure too), or when either
 * side holds less than `minDepth` over its best `levels` price levels.
 */
export interface BookGate {
  symbols: readonly string[];
  maxSpreadBps?: number | undefined;
  /** Base quantity, a decimal string, compared exactly. */
  minDepth?: string | undefined;
  /** 1, 5, 10 or 20: the depths the engine exports. */
  levels: number;
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
  /** The books as `/metrics` showed them, by symbol; undefined when `/metrics` could not be read. */
  books?: Record<string, BookMetrics> | undefined;
}

/**
 * `fail`: some limit was breached (or the engine halted). `error`: a measurement a limit needs is NaN (a
 * malformed source). `inconclusive`: a limit had nothing to judge (no orders, no latencies).
 * `pass`: every limit was judged and held. A breach outranks an error, an error outranks a gap.
 */
export type Verdict = 'pass' | 'fail' | 'inconclusive' | 'error';

export interface Judgement {
  verdict: Verdict;
  /** One human line per breach, in a fixed order: halt, queue depth, error rate, p99, then each book in the gate's order. */
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

const PLAIN_DECIMAL = /^\d+(\.\d+)?$/;

/** a < b for plain decimal strings (`"0.5"`, `"12"`), exactly: no binary floats for quantities. */
export function decimalLess(a: string, b: string): boolean {
  const [ai = '0', af = ''] = a.split('.');
  const [bi = '0', bf = ''] = b.split('.');
  const scale = Math.max(af.length, bf.length);
  return BigInt(`${ai}${af.padEnd(scale, '0')}`) < BigInt(`${bi}${bf.padEnd(scale, '0')}`);
}

/** One symbol's book judged: its outcome, the breaches in words, and what to show (the spread, else the thinner side). */
interface BookVerdict {
  outcome: GateOutcome;
  breaches: string[];
  value: number | null;
  detail: string;
}

function judgeBook(gate: BookGate, symbol: string, books: GateSample['books']): BookVerdict {
  const levels = String(gate.levels);
  const book = books?.[symbol];
  const bid = book?.depth.bid[levels];
  const ask = book?.depth.ask[levels];
  const unmeasurable = (why: string): BookVerdict => ({ outcome: 'unmeasurable', breaches: [], value: null, detail: `${symbol} book not measurable: ${why}` });
  if (books === undefined) return unmeasurable('/metrics not read');
  if (!book || bid === undefined || ask === undefined) return unmeasurable(`no engine_book_depth{symbol="${symbol}",levels="${levels}"} in /metrics`);
  if (!PLAIN_DECIMAL.test(bid) || !PLAIN_DECIMAL.test(ask)) return unmeasurable(`depth ${bid}/${ask} is not a decimal`);
  const spread = book.spreadBps;
  const oneSided = book.bestBid === null || book.bestAsk === null;
  if (gate.maxSpreadBps !== undefined && (spread === null ? !oneSided : Number.isNaN(spread))) return unmeasurable('no engine_book_spread_bps');
  const breaches: string[] = [];
  if (gate.maxSpreadBps !== undefined) {
    const empty = book.bestBid === null && book.bestAsk === null ? 'bids or asks' : book.bestBid === null ? 'bids' : 'asks';
    if (spread === null) breaches.push(`${symbol} has no ${empty}: no spread`);
    else if (spread > gate.maxSpreadBps) breaches.push(`${symbol} spread ${spread}bps > ${gate.maxSpreadBps}bps`);
  }
  if (gate.minDepth !== undefined) {
    for (const [side, depth] of [
      ['bid', bid],
      ['ask', ask],
    ] as const) {
      if (decimalLess(depth, gate.minDepth)) breaches.push(`${symbol} ${side} depth ${depth} < ${gate.minDepth} (top ${levels} levels)`);
    }
  }
  const thinner = decimalLess(bid, ask) ? bid : ask;
  const value = gate.maxSpreadBps !== undefined ? spread : Number(thinner);
  if (breaches.length > 0) return { outcome: { breach: breaches.join('; ') }, breaches, value, detail: breaches.join('; ') };
  const held = [
    ...(gate.maxSpreadBps !== undefined ? [`spread ${spread}bps <= ${gate.maxSpreadBps}bps`] : []),
    ...(gate.minDepth !== undefined ? [`depth (top ${levels} levels) bid ${bid} ask ${ask} >= ${gate.minDepth}`] : []),
  ];
  return { outcome: 'held', breaches, value, detail: `${symbol} ${held.join(', ')}` };
}

/** Judge one sample against the gates. Pure: same gates and sample, same judgement. */
export function judgeSample(gates: Gates, sample: GateSample): Judgement {
  const outcomes: GateOutcome[] = [];
  if (gates.maxQueueDepth !== undefined) outcomes.push(judgeQueueDepth(gates.maxQueueDepth, sample));
  if (gates.maxErrorRate !== undefined) outcomes.push(judgeErrorRate(gates.maxErrorRate, sample));
  if (gates.p99LatencyMs !== undefined) outcomes.push(judgeP99(gates.p99LatencyMs, sample));
  for (const symbol of gates.book?.symbols ?? []) {
    const b = judgeBook(gates.book as BookGate, symbol, sample.books);
    outcomes.push(...(b.breaches.length > 0 ? b.breaches.map((breach) => ({ breach })) : [b.outcome]));
  }
  const breaches = [...(sample.halted ? ['the engine halted itself'] : []), ...outcomes.flatMap((o) => (typeof o === 'object' ? [o.breach] : []))];
  if (breaches.length > 0) return { verdict: 'fail', breaches };
  if (outcomes.includes('unmeasurable')) return { verdict: 'error', breaches };
  if (outcomes.includes('no-data')) return { verdict: 'inconclusive', breaches };
  return { verdict: 'pass', breaches };
}

/** A book gate's limits in words: `spread <= 25bps, depth (top 5 levels) >= 1.5`. */
function bookLimitText(gate: BookGate): string {
  const parts = [
    ...(gate.maxSpreadBps !== undefined ? [`spread <= ${gate.maxSpreadBps}bps`] : []),
    ...(gate.minDepth !== undefined ? [`depth (top ${gate.levels} levels) >= ${gate.minDepth}`] : []),
  ];
  return parts.join(', ') || 'measurable';
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
    out.push({
      gate: 'maxQueueDepth',
      source: 'engine',
      verdict: j.verdict,
      value: Number.isNaN(sample.queueDepth) ? null : sample.queueDepth,
      detail,
      threshold: `<= ${gates.maxQueueDepth}`,
    });
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
    out.push({
      gate: 'maxErrorRate',
      source: 'engine',
      verdict: j.verdict,
      value: sample.sent > 0 && !Number.isNaN(rate) ? rate : null,
      detail,
      threshold: `<= ${gates.maxErrorRate}`,
    });
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
    out.push({ gate: 'p99LatencyMs', source: 'engine', verdict: j.verdict, value, detail, threshold: `<= ${gates.p99LatencyMs}ms` });
  }
  for (const symbol of gates.book?.symbols ?? []) {
    const b = judgeBook(gates.book as BookGate, symbol, sample.books);
    const verdict = typeof b.outcome === 'object' ? 'fail' : b.outcome === 'unmeasurable' ? 'error' : 'pass';
    out.push({ gate: `book:${symbol}`, source: 'engine', verdict, value: b.value, detail: b.detail, threshold: bookLimitText(gates.book as BookGate) });
  }
  return out;
}
