/**
 * Book quality after a reopen (issue 13): the engine's `engine_book_*` gauges, read back by the client,
 * and judged by traffic.shift's `gates.book`, on its own and inside a shift (fake engine and load).
 */
import { describe, expect, it } from 'vitest';
import { OrderBook, type Side } from '../../src/engine/book.js';
import { BOOK_DEPTH_LEVELS, renderBookQuality, spreadCentiBps } from '../../src/engine/metrics.js';
import { parseMetrics, type BookMetrics } from '../../src/engine-client/load.js';
import { decimalLess, engineJudgements, judgeSample, type BookGate, type GateSample } from '../../src/steps/gates.js';
import { trafficShiftStep, trafficShiftWith } from '../../src/steps/traffic-shift.js';
import type { LoadOptions } from '../../src/engine-client/load.js';
import { admissionEngine, fakeClient, fakeEngines, fakeLoad, health, stepContext } from '../support/fakes.js';

let nextId = 1;
/** A book from [side, price in 0.01, qty in 0.000001] orders. */
function bookOf(orders: [Side, number, number][]): OrderBook {
  const book = new OrderBook();
  for (const [side, price, qty] of orders) book.add({ id: nextId++, account: 'a', side, price, remaining: qty });
  return book;
}

describe('the engine’s book-quality gauges', () => {
  it('sum the resting quantity of a side over its best N levels (read-only)', () => {
    const book = bookOf([
      ['buy', 100, 1],
      ['buy', 100, 2],
      ['buy', 99, 4],
      ['buy', 90, 8],
      ['sell', 101, 16],
    ]);
    expect([1, 2, 3, 20].map((n) => book.topDepth('buy', n))).toEqual([3, 7, 15, 15]);
    expect(book.topDepth('sell', 5)).toBe(16);
    expect(new OrderBook().topDepth('sell', 5)).toBe(0);
    expect(book.size).toBe(5);
  });

  it('put the spread in basis points of the mid price, exact to a hundredth, rounded half away from zero', () => {
    // 59999.90 / 60000.10: 0.20 over a mid of 60000 is 0.0333 bps.
    expect(spreadCentiBps(5_999_990, 6_000_010)).toBe(3n);
    // 2999 / 3001: 2 over 3000 is 6.6667 bps.
    expect(spreadCentiBps(299_900, 300_100)).toBe(667n);
    // 99 / 101: 2 over 100 is exactly 200 bps; 1 / 3 is 10000 bps.
    expect(spreadCentiBps(9_900, 10_100)).toBe(20_000n);
    expect(spreadCentiBps(100, 300)).toBe(1_000_000n);
    // 7999.99 / 8000.01: 0.02 over 8000 is 0.025 bps, half a hundredth, rounded away from zero (a crossed book too).
    expect(spreadCentiBps(799_999, 800_001)).toBe(3n);
    expect(spreadCentiBps(800_001, 799_999)).toBe(-3n);
  });

  it('are read back by the client as the engine served them: best prices and depths as decimal text', () => {
    const books = new Map([
      [
        'BTCUSDT',
        bookOf([
          ['buy', 5_999_990, 5_000],
          ['buy', 5_999_980, 10_000],
          ['sell', 6_000_010, 1_000],
        ]),
      ],
      ['ETHUSDT', bookOf([['buy', 299_900, 50_000]])],
      ['BTCUSDC', new OrderBook()],
    ]);
    const text = renderBookQuality(books);
    expect(text).toContain('engine_book_spread_bps{symbol="BTCUSDT"} 0.03\n');
    expect(text).toContain('engine_book_depth{symbol="BTCUSDT",side="bid",levels="5"} 0.015\n');
    expect(text).toContain('# TYPE engine_book_depth gauge\n');
    const parsed = parseMetrics(text).books;
    expect(parsed.BTCUSDT).toEqual({
      bestBid: '59999.9',
      bestAsk: '60000.1',
      spreadBps: 0.03,
      depth: { bid: { '1': '0.005', '5': '0.015', '10': '0.015', '20': '0.015' }, ask: { '1': '0.001', '5': '0.001', '10': '0.001', '20': '0.001' } },
    });
    // A side with no orders: no best price and no spread series (absent, not NaN); its depths are 0.
    expect(parsed.ETHUSDT).toMatchObject({ bestBid: '2999', bestAsk: null, spreadBps: null, depth: { ask: { '5': '0' } } });
    expect(parsed.BTCUSDC).toMatchObject({ bestBid: null, bestAsk: null, spreadBps: null });
    expect(Object.keys(parsed.BTCUSDC?.depth.bid ?? {})).toEqual(BOOK_DEPTH_LEVELS.map(String));
    expect(text).not.toMatch(/NaN/);
  });

  it('leave the rest of /metrics as it was: a text without book series parses to no books', () => {
    const m = parseMetrics('engine_margin_queue_depth 7\nengine_phase{phase="halted"} 0\n');
    expect(m).toMatchObject({ queueDepth: 7, halted: false, books: {} });
  });
});

/** A book's metrics: spread, and depth over the best 5 levels per side. */
function reading(spreadBps: number | null, bid5: string, ask5: string, over: Partial<BookMetrics> = {}): BookMetrics {
  return {
    bestBid: bid5 === '0' ? null : '59990',
    bestAsk: ask5 === '0' ? null : '60010',
    spreadBps,
    depth: { bid: { '1': bid5, '5': bid5 }, ask: { '1': ask5, '5': ask5 } },
    ...over,
  };
}
const CALM: GateSample = { halted: false, queueDepth: 0, sent: 10, errors: 0, p99LatencyMs: 1 };
const GATE: BookGate = { symbols: ['BTCUSDT'], maxSpreadBps: 50, minDepth: '0.5', levels: 5 };
const judge = (books: GateSample['books'], gate: BookGate = GATE) => judgeSample({ book: gate }, { ...CALM, books });

describe('gates.book', () => {
  it('passes a book within the spread and with the depth on both sides, the limits themselves included', () => {
    expect(judge({ BTCUSDT: reading(12.5, '0.7', '0.9') })).toEqual({ verdict: 'pass', breaches: [] });
    expect(judge({ BTCUSDT: reading(50, '0.5', '0.500') })).toEqual({ verdict: 'pass', breaches: [] });
  });

  it('fails a spread wider than maxSpreadBps, and a side thinner than minDepth over the top levels, each named', () => {
    expect(judge({ BTCUSDT: reading(50.01, '0.7', '0.9') })).toEqual({ verdict: 'fail', breaches: ['BTCUSDT spread 50.01bps > 50bps'] });
    expect(judge({ BTCUSDT: reading(10, '0.499999', '0.9') })).toEqual({
      verdict: 'fail',
      breaches: ['BTCUSDT bid depth 0.499999 < 0.5 (top 5 levels)'],
    });
    expect(judge({ BTCUSDT: reading(80, '0.9', '0.1') }).breaches).toEqual(['BTCUSDT spread 80bps > 50bps', 'BTCUSDT ask depth 0.1 < 0.5 (top 5 levels)']);
  });

  it('fails a book with a side empty: there is no spread to hold to the limit', () => {
    expect(judge({ BTCUSDT: reading(null, '0.7', '0') }, { ...GATE, minDepth: undefined })).toEqual({
      verdict: 'fail',
      breaches: ['BTCUSDT has no asks: no spread'],
    });
    expect(judge({ BTCUSDT: reading(null, '0', '0') }, { ...GATE, minDepth: undefined }).breaches).toEqual(['BTCUSDT has no bids or asks: no spread']);
  });

  it('judges only the limits it is given', () => {
    expect(judge({ BTCUSDT: reading(400, '0.7', '0.9') }, { ...GATE, maxSpreadBps: undefined }).verdict).toBe('pass');
    expect(judge({ BTCUSDT: reading(null, '0', '0.9') }, { ...GATE, minDepth: undefined }).verdict).toBe('fail');
    expect(judge({ BTCUSDT: reading(null, '0', '0.9') }, { ...GATE, maxSpreadBps: undefined }).breaches).toEqual(['BTCUSDT bid depth 0 < 0.5 (top 5 levels)']);
    expect(judge({ BTCUSDT: reading(1, '0.01', '0.9') }, { ...GATE, minDepth: undefined }).verdict).toBe('pass');
  });

  it('compares depths exactly, as decimals', () => {
    expect(decimalLess('0.3', '0.30')).toBe(false);
    expect(decimalLess('0.29999999999999999', '0.3')).toBe(true);
    expect(decimalLess('10', '9.99')).toBe(false);
    expect(decimalLess('0', '0.000001')).toBe(true);
  });

  it('cannot measure a book /metrics did not show: not read, no series for the symbol or its levels, or a value that is not a number', () => {
    expect(judge(undefined)).toEqual({ verdict: 'error', breaches: [] });
    expect(judge({ ETHUSDT: reading(1, '1', '1') })).toEqual({ verdict: 'error', breaches: [] });
    expect(judge({ BTCUSDT: reading(1, '1', '1') }, { ...GATE, levels: 10 })).toEqual({ verdict: 'error', breaches: [] });
    expect(judge({ BTCUSDT: reading(NaN, '1', '1') })).toEqual({ verdict: 'error', breaches: [] });
    expect(judge({ BTCUSDT: reading(1, 'NaN', '1') })).toEqual({ verdict: 'error', breaches: [] });
    // Both sides quoted but no spread series: the engine's metrics are not what the gate reads.
    expect(judge({ BTCUSDT: reading(null, '1', '1') })).toEqual({ verdict: 'error', breaches: [] });
  });

  it('ranks a breach over an unmeasurable book, as the other gates do', () => {
    const gate: BookGate = { ...GATE, symbols: ['BTCUSDT', 'ETHUSDT'] };
    expect(judge({ BTCUSDT: reading(90, '1', '1') }, gate)).toEqual({ verdict: 'fail', breaches: ['BTCUSDT spread 90bps > 50bps'] });
  });

  it('is one judgement per symbol, book:<symbol>, with the spread as its value and the limits in its detail', () => {
    const gate: BookGate = { symbols: ['BTCUSDT', 'ETHUSDT', 'BTCUSDC'], maxSpreadBps: 50, minDepth: '0.5', levels: 5 };
    const books = { BTCUSDT: reading(12.5, '0.7', '0.9'), ETHUSDT: reading(75, '2', '3') };
    expect(engineJudgements({ book: gate }, { ...CALM, books })).toEqual([
      {
        gate: 'book:BTCUSDT',
        source: 'engine',
        verdict: 'pass',
        value: 12.5,
        detail: 'BTCUSDT spread 12.5bps <= 50bps, depth (top 5 levels) bid 0.7 ask 0.9 >= 0.5',
        threshold: 'spread <= 50bps, depth (top 5 levels) >= 0.5',
      },
      {
        gate: 'book:ETHUSDT',
        source: 'engine',
        verdict: 'fail',
        value: 75,
        detail: 'ETHUSDT spread 75bps > 50bps',
        threshold: 'spread <= 50bps, depth (top 5 levels) >= 0.5',
      },
      {
        gate: 'book:BTCUSDC',
        source: 'engine',
        verdict: 'error',
        value: null,
        detail: 'BTCUSDC book not measurable: no engine_book_depth{symbol="BTCUSDC",levels="5"} in /metrics',
        threshold: 'spread <= 50bps, depth (top 5 levels) >= 0.5',
      },
    ]);
    // With no spread limit, the value shown is the thinner side's depth.
    expect(engineJudgements({ book: { ...gate, maxSpreadBps: undefined, symbols: ['BTCUSDT'] } }, { ...CALM, books })[0]?.value).toBe(0.7);
  });
});

describe('gates.book in the playbook', () => {
  const parse = (gates: unknown) => trafficShiftWith.safeParse({ stepWeights: [100], bake: '1s', gates });

  it('takes the symbols, a spread and a depth limit, and the levels the engine exports (5 by default)', () => {
    const r = parse({ book: { symbols: ['BTCUSDT'], maxSpreadBps: 50, minDepth: '0.5' } });
    expect(r.success && r.data.gates.book).toEqual({ symbols: ['BTCUSDT'], maxSpreadBps: 50, minDepth: '0.5', levels: 5 });
  });

  it.each([
    ['no limit', { symbols: ['BTCUSDT'] }],
    ['no symbols', { symbols: [], maxSpreadBps: 50 }],
    ['a symbol twice', { symbols: ['BTCUSDT', 'BTCUSDT'], maxSpreadBps: 50 }],
    ['a depth as a float', { symbols: ['BTCUSDT'], minDepth: 0.5 }],
    ['levels the engine does not export', { symbols: ['BTCUSDT'], minDepth: '1', levels: 3 }],
    ['an unknown key', { symbols: ['BTCUSDT'], maxSpreadBps: 5, maxSpread: 5 }],
  ])('refuses %s', (_what, book) => {
    expect(parse({ book }).success).toBe(false);
  });
});

/** /metrics of an engine whose BTCUSDT book has this spread (null: no asks), 1 BTC a side. */
const metricsWith = (spread: number | null) =>
  [
    'engine_margin_queue_depth 0',
    'engine_phase{phase="halted"} 0',
    'engine_match_latency_seconds_bucket{le="+Inf"} 0',
    'engine_book_best_bid{symbol="BTCUSDT"} 59990',
    ...(spread === null ? [] : ['engine_book_best_ask{symbol="BTCUSDT"} 60010', `engine_book_spread_bps{symbol="BTCUSDT"} ${spread}`]),
    'engine_book_depth{symbol="BTCUSDT",side="bid",levels="5"} 1',
    `engine_book_depth{symbol="BTCUSDT",side="ask",levels="5"} ${spread === null ? 0 : 1}`,
    '',
  ].join('\n');

describe('traffic.shift with gates.book (fake engine and load)', () => {
  const engine = admissionEngine;
  const shift = (more: Record<string, unknown>) =>
    trafficShiftWith.parse({ stepWeights: [50, 100], bake: '1s', interval: '250ms', gates: { book: { symbols: ['BTCUSDT'], maxSpreadBps: 50 } }, ...more });

  it('samples each book as a gate of its own: a JUnit case per stage, its spread journaled', async () => {
    const { client } = engine(() => Promise.resolve(metricsWith(12.5)));
    const ctx = stepContext({ engines: fakeEngines(client) });
    const r = await trafficShiftStep.run(shift({}), ctx);
    expect(r.ok).toBe(true);
    expect(ctx.measurements[0]?.judgements.map((j) => [j.gate, j.verdict, j.value])).toEqual([['book:BTCUSDT', 'pass', 12.5]]);
    expect(r.checks?.map((c) => `${c.name}: ${c.message ?? ''}`)).toEqual([
      'stage 1 (weight 50%) book:BTCUSDT: 4 pass',
      'stage 2 (weight 100%) book:BTCUSDT: 4 pass',
    ]);
  });

  it('aborts when a spread stays wider than the limit past failureLimit, and takes the traffic back', async () => {
    let reads = 0;
    // The stage's baseline read, then two samples within the limit, then the spread blows out.
    const { client, weights } = engine(() => Promise.resolve(metricsWith(reads++ >= 3 ? 120 : 20)));
    const r = await trafficShiftStep.run(shift({ failureLimit: 1 }), stepContext({ engines: fakeEngines(client) }));
    if (r.ok) throw new Error('expected a failure');
    expect(r.error).toBe(
      'gate breached at stage 1 (weight 50%): BTCUSDT spread 120bps > 50bps (book:BTCUSDT failed 2 times (failureLimit 1)); admission set to 0',
    );
    expect(weights).toEqual([50, 0]);
    expect(r.checks?.map((c) => [c.name, c.ok])).toEqual([['stage 1 (weight 50%) book:BTCUSDT', false]]);
  });

  it('fails a book with no asks, whatever the spread limit', async () => {
    const { client } = engine(() => Promise.resolve(metricsWith(null)));
    const r = await trafficShiftStep.run(shift({ failureLimit: 0 }), stepContext({ engines: fakeEngines(client) }));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(/^gate breached at stage 1 \(weight 50%\): BTCUSDT has no asks: no spread \(book:BTCUSDT failed once/);
  });

  it('counts an engine without book gauges as unmeasurable, against consecutiveErrorLimit', async () => {
    const { client } = engine(() => Promise.resolve('engine_margin_queue_depth 0\nengine_phase{phase="halted"} 0\n'));
    const ctx = stepContext({ engines: fakeEngines(client) });
    const r = await trafficShiftStep.run(shift({ consecutiveErrorLimit: 2 }), ctx);
    if (r.ok) throw new Error('expected a failure');
    expect(r.error).toMatch(
      /^gates could not measure at stage 1 \(weight 50%\): book:BTCUSDT could not be measured 3 times in a row \(consecutiveErrorLimit 2\)/,
    );
    expect(ctx.measurements.map((m) => m.judgements[0]?.detail)).toEqual(
      Array(3).fill('BTCUSDT book not measurable: no engine_book_depth{symbol="BTCUSDT",levels="5"} in /metrics'),
    );
  });

  it('counts a /metrics read that fails as unmeasurable too, then goes on judging', async () => {
    let reads = 0;
    const { client } = engine(() => (reads++ === 2 ? Promise.reject(new Error('connection reset')) : Promise.resolve(metricsWith(5))));
    const ctx = stepContext({ engines: fakeEngines(client) });
    const r = await trafficShiftStep.run(shift({}), ctx);
    expect(r.ok).toBe(true);
    expect(ctx.measurements.slice(0, 3).map((m) => m.verdict)).toEqual(['pass', 'error', 'pass']);
    expect(ctx.measurements[1]?.judgements[0]?.detail).toBe('BTCUSDT book not measurable: /metrics not read');
  });
});

describe('traffic.shift’s load: makers and stops', () => {
  async function loadOptionsOf(load: Record<string, unknown>, timeScale = 1): Promise<Omit<LoadOptions, 'url' | 'token' | 'instruments'>> {
    const client = fakeClient({
      health: () => Promise.resolve(health({ phase: 'open' })),
      metrics: () => Promise.resolve(metricsWith(1)),
      setAdmission: (weight) => Promise.resolve({ admissionWeight: weight }),
    });
    const engines = fakeEngines(client);
    let seen: Omit<LoadOptions, 'url' | 'token' | 'instruments'> | undefined;
    const ctx = stepContext({
      timeScale,
      engines: {
        ...engines,
        load: (_target, options) => {
          seen = options;
          return Promise.resolve(fakeLoad());
        },
      },
    });
    await trafficShiftStep.run(trafficShiftWith.parse({ stepWeights: [100], bake: '1s', load }), ctx);
    if (!seen) throw new Error('no load was asked for');
    return seen;
  }

  it('asks for neither unless the playbook does: the flow is the one it always was', async () => {
    const o = await loadOptionsOf({});
    expect(o).toEqual({ rate: 200, accounts: expect.any(Array) as unknown, seed: 1 });
  });

  it('passes the makers’ ramp and refresh scaled as the rehearsal scales the playbook, the refresh at least 250ms', async () => {
    const o = await loadOptionsOf({ makers: { ramp: '5m' }, stops: {} }, 0.02);
    expect(o.makers).toEqual({ count: 4, rampMs: 6_000, startSpreadBps: 200, endSpreadBps: 10, levels: 2, lots: 5, refreshMs: 250 });
    expect(o.stops).toEqual({ perTrader: 1, rangeBps: 100, gapBps: 50 });
    const real = await loadOptionsOf({ makers: { count: 6, ramp: '10m', refresh: '2s', startSpreadBps: 300, endSpreadBps: 5 } });
    expect(real.makers).toMatchObject({ count: 6, rampMs: 600_000, refreshMs: 2_000, startSpreadBps: 300, endSpreadBps: 5 });
  });

  it('refuses makers whose spread would widen over the ramp', () => {
    expect(trafficShiftWith.safeParse({ stepWeights: [100], bake: '1s', load: { makers: { startSpreadBps: 10, endSpreadBps: 20 } } }).success).toBe(false);
  });
});
