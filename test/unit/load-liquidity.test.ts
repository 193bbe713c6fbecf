/**
 * Liquidity after a reopen (issue 13), the load generator's pure parts: makers that come back over a ramp
 * with spreads narrowing, and the stop levels traders hold on the client side, a cluster of which triggers
 * at the reopen. No sleeps and no clock: every function takes the elapsed time or the mark it judges.
 */
import { describe, expect, it } from 'vitest';
import { instrumentView } from '../support/fakes.js';
import type { InstrumentView } from '../../src/contract/control-api.js';
import { InternalError } from '../../src/errors.js';
import {
  gapReference,
  halfSpreadTicks,
  LoadGenerator,
  lotsOf,
  makerLadder,
  makerPlans,
  makersPresent,
  placeStops,
  priceGrid,
  priceOf,
  rampSpreadBps,
  stopOrder,
  stopTriggered,
  ticksOf,
  traderAccounts,
  type StopLevel,
} from '../../src/engine-client/load.js';

const view = instrumentView;
const btc = priceGrid(view('BTCUSDT', '0.1', '0.001'));
const eth = priceGrid(view('ETHUSDT', '0.01', '0.01'));
const RAMP = { rampMs: 300_000, startSpreadBps: 200, endSpreadBps: 10 };
const accounts = traderAccounts(40);

describe('makers returning after the reopen', () => {
  it('are the same makers for the same seed, and others for another seed', () => {
    expect(makerPlans({ count: 6, rampMs: 60_000 }, accounts, 7)).toEqual(makerPlans({ count: 6, rampMs: 60_000 }, accounts, 7));
    expect(makerPlans({ count: 6, rampMs: 60_000 }, accounts, 7)).not.toEqual(makerPlans({ count: 6, rampMs: 60_000 }, accounts, 8));
  });

  it.each([1, 2, 3, 4, 5, 6, 7, 8])('one is back at the reopen, the rest one in each slice of the ramp, all before its end (seed %i)', (seed) => {
    const plans = makerPlans({ count: 5, rampMs: 120_000 }, accounts, seed);
    expect(plans[0]?.returnsAtMs).toBe(0);
    plans.slice(1).forEach((p, i) => {
      expect(p.returnsAtMs).toBeGreaterThanOrEqual((120_000 * i) / 4);
      expect(p.returnsAtMs).toBeLessThan((120_000 * (i + 1)) / 4);
    });
    for (const p of plans) {
      expect(p.width).toBeGreaterThanOrEqual(1);
      expect(p.width).toBeLessThan(1.5);
    }
    expect(plans.map((p) => p.account)).toEqual(accounts.slice(0, 5));
  });

  it('grow in number over the ramp: one at the reopen, never fewer later, all of them at its end', () => {
    const plans = makerPlans({ count: 8, rampMs: 300_000 }, accounts, 3);
    let before = 0;
    for (let t = 0; t <= 300_000; t += 1_000) {
      const n = makersPresent(plans, t);
      expect(n).toBeGreaterThanOrEqual(before);
      before = n;
    }
    expect(makersPresent(plans, 0)).toBe(1);
    expect(makersPresent(plans, 150_000)).toBeGreaterThan(1);
    expect(makersPresent(plans, 150_000)).toBeLessThan(8);
    expect(makersPresent(plans, 300_000)).toBe(8);
  });

  it('quote from the accounts in turn when there are more makers than accounts', () => {
    expect(makerPlans({ count: 5, rampMs: 1_000 }, ['a', 'b'], 1).map((p) => p.account)).toEqual(['a', 'b', 'a', 'b', 'a']);
  });

  it('narrow the spread geometrically from the start to the end of the ramp, and hold it there', () => {
    expect(rampSpreadBps(RAMP, 0)).toBe(200);
    expect(rampSpreadBps(RAMP, -5)).toBe(200);
    expect(rampSpreadBps(RAMP, 150_000)).toBeCloseTo(Math.sqrt(200 * 10), 9);
    expect(rampSpreadBps(RAMP, 300_000)).toBeCloseTo(10, 9);
    expect(rampSpreadBps(RAMP, 3_000_000)).toBeCloseTo(10, 9);
    // No ramp: the narrowest spread at once.
    expect(rampSpreadBps({ ...RAMP, rampMs: 0 }, 0)).toBe(10);
    let before = Infinity;
    for (let t = 0; t <= 300_000; t += 5_000) {
      const s = rampSpreadBps(RAMP, t);
      expect(s).toBeLessThan(before);
      before = s;
    }
  });

  it('price half the spread in whole ticks, rounded up and never less than a tick', () => {
    const mark = ticksOf('60000', btc) as bigint;
    // 200 bps of 60000 is 1200: 600 on each side, 6000 ticks of 0.1.
    expect(halfSpreadTicks(mark, 200)).toBe(6_000n);
    // 10 bps: 30 each side, 300 ticks; 0.05 bps is 0.15 each side, 1.5 ticks, rounded up to 2.
    expect(halfSpreadTicks(mark, 10)).toBe(300n);
    expect(halfSpreadTicks(mark, 0.05)).toBe(2n);
    expect(halfSpreadTicks(mark, 0.01)).toBe(1n);
    expect(halfSpreadTicks(mark, 0)).toBe(1n);
  });

  it('quote bids below and asks above the mark, best first, each further level wider, on the grid', () => {
    const mark = ticksOf('3000', eth) as bigint;
    const { bids, asks } = makerLadder(mark, 20, 3);
    // 20 bps of 3000 is 6.00: the best quotes 3.00 away, then 4.00 and 5.00.
    expect(bids.map((t) => priceOf(t, eth))).toEqual(['2997.00', '2996.00', '2995.00']);
    expect(asks.map((t) => priceOf(t, eth))).toEqual(['3003.00', '3004.00', '3005.00']);
  });

  it('never put two levels on one price, however narrow the spread', () => {
    const mark = ticksOf('60000', btc) as bigint;
    const { bids, asks } = makerLadder(mark, 0.01, 4);
    expect(asks.map((t) => t - mark)).toEqual([1n, 2n, 3n, 4n]);
    expect(bids.map((t) => mark - t)).toEqual([1n, 2n, 3n, 4n]);
  });

  it('size quotes in whole lots, exactly', () => {
    expect(lotsOf(5, btc)).toBe('0.005');
    expect(lotsOf(12, eth)).toBe('0.12');
    expect(lotsOf(3, priceGrid(view('X', '1', '1')))).toBe('3');
    expect(lotsOf(3, priceGrid(view('X', '1', '0.5')))).toBe('1.5');
  });
});

describe('stop levels held on the client side', () => {
  const place = (seed: number, referenceTicks: bigint, over: Partial<Parameters<typeof placeStops>[0]> = {}) =>
    placeStops({ accounts, symbol: 'BTCUSDT', referenceTicks, perTrader: 2, rangeBps: 100, seed, ...over });
  const ref = ticksOf('60000', btc) as bigint;

  it('are the same levels for the same seed and symbol, and others for another', () => {
    expect(place(7, ref)).toEqual(place(7, ref));
    expect(place(7, ref)).not.toEqual(place(8, ref));
    expect(place(7, ref, { symbol: 'ETHUSDT' }).map((s) => s.triggerTicks)).not.toEqual(place(7, ref).map((s) => s.triggerTicks));
  });

  it.each([1, 2, 3, 4, 5])('sit sell stops below and buy stops above where they were set, within the range, none triggered there (seed %i)', (seed) => {
    const stops = place(seed, ref);
    expect(stops).toHaveLength(accounts.length * 2);
    const range = (ref * 100n) / 10_000n;
    for (const s of stops) {
      const away = s.side === 'sell' ? ref - s.triggerTicks : s.triggerTicks - ref;
      expect(away).toBeGreaterThanOrEqual(1n);
      expect(away).toBeLessThanOrEqual(range);
      expect(stopTriggered(s, ref)).toBe(false);
      expect(s.lots).toBeGreaterThanOrEqual(1);
      expect(s.lots).toBeLessThanOrEqual(3);
    }
    expect(new Set(stops.map((s) => s.side))).toEqual(new Set(['buy', 'sell']));
    expect(new Set(stops.map((s) => s.kind))).toEqual(new Set(['stop-loss', 'stop-entry']));
  });

  it('trigger when the mark crosses the level: a sell stop at or below it, a buy stop at or above it', () => {
    const sell = { side: 'sell', triggerTicks: 100n } as const;
    const buy = { side: 'buy', triggerTicks: 100n } as const;
    expect([101n, 100n, 99n].map((m) => stopTriggered(sell, m))).toEqual([false, true, true]);
    expect([99n, 100n, 101n].map((m) => stopTriggered(buy, m))).toEqual([false, true, true]);
  });

  it('were set where the mark was before it gapped over the halt: the gap back from the first mark, the direction by the seed', () => {
    const mark = ticksOf('60000', btc) as bigint;
    const refs = [1, 2, 3, 4, 5, 6, 7, 8].map((seed) => gapReference(mark, 50, seed, 'BTCUSDT'));
    // 50 bps of 60000 is 300, 3000 ticks.
    for (const r of refs) expect([mark - 3_000n, mark + 3_000n]).toContain(r);
    expect(new Set(refs).size).toBe(2);
    expect(gapReference(mark, 50, 1, 'BTCUSDT')).toBe(gapReference(mark, 50, 1, 'BTCUSDT'));
    expect(gapReference(mark, 0, 1, 'BTCUSDT')).toBe(mark);
  });

  it.each([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])(
    'trigger as a cluster at the reopen: those between the reference and the first mark, on its side (seed %i)',
    (seed) => {
      const mark = ticksOf('60000', btc) as bigint;
      const reference = gapReference(mark, 50, seed, 'BTCUSDT');
      const stops = placeStops({ accounts, symbol: 'BTCUSDT', referenceTicks: reference, perTrader: 1, rangeBps: 100, seed });
      const fired = stops.filter((s) => stopTriggered(s, mark));
      const up = mark > reference;
      expect(fired.length).toBeGreaterThan(0);
      expect(fired.length).toBeLessThan(stops.length);
      // The mark gapped up: buy stops between the reference and it fire, no sell stop; the other way round down.
      for (const s of fired) {
        expect(s.side).toBe(up ? 'buy' : 'sell');
        expect(up ? s.triggerTicks <= mark : s.triggerTicks >= mark).toBe(true);
      }
      const between = stops.filter((s) => s.side === (up ? 'buy' : 'sell') && (up ? s.triggerTicks <= mark : s.triggerTicks >= mark));
      expect(fired).toEqual(between);
    },
  );

  it('send a market order: reduce-only for a stop-loss, plain for a stop-entry, sized in lots', () => {
    const stop: StopLevel = { account: 'trader-0001', symbol: 'BTCUSDT', side: 'sell', kind: 'stop-loss', triggerTicks: 599_000n, lots: 3 };
    expect(stopOrder(stop, btc)).toEqual({ account: 'trader-0001', symbol: 'BTCUSDT', side: 'sell', type: 'market', qty: '0.003', reduceOnly: true });
    expect(stopOrder({ ...stop, kind: 'stop-entry', side: 'buy', lots: 1 }, btc)).toEqual({
      account: 'trader-0001',
      symbol: 'BTCUSDT',
      side: 'buy',
      type: 'market',
      qty: '0.001',
    });
  });
});

describe('the load generator’s makers and stops options', () => {
  const base = { url: 'http://127.0.0.1:1', token: 't', rate: 1, accounts: ['a'], seed: 1, instruments: [view('BTCUSDT', '0.1', '0.001')] };
  const makers = { count: 2, rampMs: 1_000, startSpreadBps: 200, endSpreadBps: 10, levels: 2, lots: 1, refreshMs: 100 };

  it('reports makers present and stops triggered only when they are on', () => {
    expect(new LoadGenerator(base).stats()).toEqual({ sent: 0, accepted: 0, retryLater: 0, rejected: 0, errors: 0, lastError: null });
    expect(new LoadGenerator({ ...base, makers, stops: { perTrader: 1, rangeBps: 100, gapBps: 50 } }).stats()).toMatchObject({
      makersPresent: 0,
      stopsTriggered: 0,
    });
  });

  it('refuses makers or stops without accounts, or a stop reference that is not a price of a traded symbol', () => {
    expect(() => new LoadGenerator({ ...base, accounts: [], makers })).toThrow(InternalError);
    const stops = { perTrader: 1, rangeBps: 100, gapBps: 50 };
    expect(() => new LoadGenerator({ ...base, stops: { ...stops, reference: { BTCUSDT: '6e4' } } })).toThrow(/stop reference BTCUSDT/);
    expect(() => new LoadGenerator({ ...base, stops: { ...stops, reference: { DOGEUSDT: '1' } } })).toThrow(/DOGEUSDT/);
    expect(() => new LoadGenerator({ ...base, stops: { ...stops, reference: { BTCUSDT: '60000.5' } } })).not.toThrow();
    // Options a timer would trip over later are refused at once.
    expect(() => new LoadGenerator({ ...base, makers: { ...makers, endSpreadBps: 300 } })).toThrow(/0 < endSpreadBps <= startSpreadBps/);
    expect(() => new LoadGenerator({ ...base, makers: { ...makers, startSpreadBps: NaN } })).toThrow(InternalError);
    expect(() => new LoadGenerator({ ...base, makers: { ...makers, levels: 0 } })).toThrow(/whole numbers/);
    expect(() => new LoadGenerator({ ...base, makers: { ...makers, refreshMs: 0 } })).toThrow(/refreshMs > 0/);
    expect(() => new LoadGenerator({ ...base, stops: { ...stops, rangeBps: 0 } })).toThrow(/rangeBps > 0/);
    expect(() => new LoadGenerator({ ...base, stops: { ...stops, perTrader: 1.5 } })).toThrow(InternalError);
    // A recorded flow with makers still needs the grid they quote on.
    expect(
      () => new LoadGenerator({ ...base, instruments: [], replay: [{ account: 'a', symbol: 'X', side: 'buy', type: 'market', qty: '1' }], makers }),
    ).toThrow(InternalError);
  });
});
