import { describe, expect, it } from 'vitest';
import { errorRateOf, judgeSample, type GateSample, type Gates } from '../../src/steps/gates.js';
import { rng } from '../../src/util/random.js';

const ALL: Gates = { maxQueueDepth: 500, maxErrorRate: 0.05, p99LatencyMs: 20 };
const CALM: GateSample = { halted: false, queueDepth: 10, sent: 100, errors: 1, p99LatencyMs: 5 };

/** Seeded random gates and a sample inside every one of them (strictly or at the limit). */
function withinLimits(r: () => number): { gates: Gates; sample: GateSample } {
  const gates: Gates = { maxQueueDepth: Math.floor(r() * 10_000), maxErrorRate: r(), p99LatencyMs: 0.5 + r() * 1000 };
  const sent = 1 + Math.floor(r() * 5_000);
  const atLimit = r() < 0.2;
  const sample: GateSample = {
    halted: false,
    queueDepth: atLimit ? (gates.maxQueueDepth as number) : Math.floor(r() * ((gates.maxQueueDepth as number) + 1)),
    sent,
    errors: Math.floor(r() * (gates.maxErrorRate as number) * sent),
    p99LatencyMs: atLimit ? (gates.p99LatencyMs as number) : r() * (gates.p99LatencyMs as number),
  };
  return { gates, sample };
}

describe('judgeSample', () => {
  it('passes a sample within every limit', () => {
    expect(judgeSample(ALL, CALM)).toEqual({ verdict: 'pass', breaches: [] });
  });

  it('passes any sample when no gate is set and the engine runs', () => {
    expect(judgeSample({}, { halted: false, queueDepth: 1e9, sent: 0, errors: 5, p99LatencyMs: null })).toEqual({ verdict: 'pass', breaches: [] });
  });

  it.each([1, 2, 3, 4, 5])('passes every seeded sample that is within every limit, at the limit included (seed %i)', (seed) => {
    const r = rng(seed);
    for (let i = 0; i < 2_000; i++) {
      const { gates, sample } = withinLimits(r);
      expect(judgeSample(gates, sample), JSON.stringify({ gates, sample })).toEqual({ verdict: 'pass', breaches: [] });
    }
  });

  it.each([1, 2, 3])('fails every seeded sample over some limit, naming each breached gate once (seed %i)', (seed) => {
    const r = rng(seed);
    for (let i = 0; i < 2_000; i++) {
      const { gates, sample } = withinLimits(r);
      const over = { queue: r() < 0.5, errors: r() < 0.5, p99: r() < 0.5 };
      if (!over.queue && !over.errors && !over.p99) over.queue = true;
      const bad: GateSample = {
        ...sample,
        queueDepth: over.queue ? (gates.maxQueueDepth as number) + 1 + Math.floor(r() * 100) : sample.queueDepth,
        errors: over.errors ? sample.sent : sample.errors,
        p99LatencyMs: over.p99 ? (gates.p99LatencyMs as number) + 1 : sample.p99LatencyMs,
      };
      // An error rate of 1 is only a breach below a limit of 1.
      const errorsBreach = over.errors && (gates.maxErrorRate as number) < 1;
      const j = judgeSample(gates, bad);
      expect(j.verdict).toBe('fail');
      expect(j.breaches).toHaveLength(Number(over.queue) + Number(errorsBreach) + Number(over.p99));
    }
  });

  it('fails when the engine halted itself, even with no gates and with every limit held', () => {
    expect(judgeSample({}, { ...CALM, halted: true })).toEqual({ verdict: 'fail', breaches: ['the engine halted itself'] });
    expect(judgeSample(ALL, { ...CALM, halted: true })).toEqual({ verdict: 'fail', breaches: ['the engine halted itself'] });
  });

  it('fails a queue deeper than maxQueueDepth, not one at it', () => {
    expect(judgeSample({ maxQueueDepth: 500 }, { ...CALM, queueDepth: 612 })).toEqual({ verdict: 'fail', breaches: ['queue depth 612 > 500'] });
    expect(judgeSample({ maxQueueDepth: 500 }, { ...CALM, queueDepth: 500 }).verdict).toBe('pass');
  });

  it('fails an error rate over maxErrorRate, with the rate to three places', () => {
    expect(judgeSample({ maxErrorRate: 0.05 }, { ...CALM, sent: 300, errors: 20 })).toEqual({ verdict: 'fail', breaches: ['error rate 0.067 > 0.05'] });
    expect(judgeSample({ maxErrorRate: 0.05 }, { ...CALM, sent: 100, errors: 5 }).verdict).toBe('pass');
  });

  it('fails a p99 over p99LatencyMs, not one at it', () => {
    expect(judgeSample({ p99LatencyMs: 20 }, { ...CALM, p99LatencyMs: 40 })).toEqual({ verdict: 'fail', breaches: ['p99 40ms > 20ms'] });
    expect(judgeSample({ p99LatencyMs: 20 }, { ...CALM, p99LatencyMs: 20 }).verdict).toBe('pass');
  });

  it('lists breaches in a fixed order: halt, queue depth, error rate, p99', () => {
    const j = judgeSample(ALL, { halted: true, queueDepth: 612, sent: 10, errors: 10, p99LatencyMs: 40 });
    expect(j).toEqual({ verdict: 'fail', breaches: ['the engine halted itself', 'queue depth 612 > 500', 'error rate 1.000 > 0.05', 'p99 40ms > 20ms'] });
  });

  it('is inconclusive when the p99 gate has no latencies to judge', () => {
    expect(judgeSample({ p99LatencyMs: 20 }, { ...CALM, p99LatencyMs: null })).toEqual({ verdict: 'inconclusive', breaches: [] });
    expect(judgeSample(ALL, { ...CALM, p99LatencyMs: null }).verdict).toBe('inconclusive');
  });

  it('is inconclusive when the error-rate gate has no orders to judge', () => {
    expect(judgeSample({ maxErrorRate: 0 }, { ...CALM, sent: 0, errors: 0 })).toEqual({ verdict: 'inconclusive', breaches: [] });
  });

  it('errs when a measurement a gate needs is NaN', () => {
    expect(judgeSample({ maxQueueDepth: 500 }, { ...CALM, queueDepth: Number.NaN })).toEqual({ verdict: 'error', breaches: [] });
    expect(judgeSample({ maxErrorRate: 0.1 }, { ...CALM, errors: Number.NaN })).toEqual({ verdict: 'error', breaches: [] });
    expect(judgeSample({ p99LatencyMs: 20 }, { ...CALM, p99LatencyMs: Number.NaN })).toEqual({ verdict: 'error', breaches: [] });
    // A measurement no gate looks at does not matter.
    expect(judgeSample({ p99LatencyMs: 20 }, { ...CALM, queueDepth: Number.NaN }).verdict).toBe('pass');
  });

  it('ranks a breach over an error, and an error over a gap', () => {
    expect(judgeSample(ALL, { halted: false, queueDepth: Number.NaN, sent: 0, errors: 0, p99LatencyMs: 40 }).verdict).toBe('fail');
    expect(judgeSample(ALL, { halted: false, queueDepth: Number.NaN, sent: 0, errors: 0, p99LatencyMs: null }).verdict).toBe('error');
    expect(judgeSample(ALL, { halted: true, queueDepth: Number.NaN, sent: 0, errors: 0, p99LatencyMs: null }).verdict).toBe('fail');
  });

  it('is pure: the same gates and sample give the same judgement, and neither is changed', () => {
    const gates = { ...ALL };
    const sample = { ...CALM, queueDepth: 612 };
    const first = judgeSample(gates, sample);
    expect(judgeSample(gates, sample)).toEqual(first);
    expect(gates).toEqual(ALL);
    expect(sample).toEqual({ ...CALM, queueDepth: 612 });
  });
});

describe('errorRateOf', () => {
  it('divides errors by orders sent, and counts a window with nothing sent as 0', () => {
    expect(errorRateOf({ sent: 200, errors: 3 })).toBe(0.015);
    expect(errorRateOf({ sent: 0, errors: 4 })).toBe(0);
  });
});
