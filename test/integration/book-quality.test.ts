/**
 * Liquidity after a reopen (issue 13), against a real engine child process: its `engine_book_*` gauges,
 * the load generator's makers coming back over a ramp (spreads narrowing, more makers, replaced quotes
 * canceled), and the cluster of client-side stops that triggers at the reopen. The ramp runs on a clock the
 * test moves by hand, so nothing here depends on how fast the machine is; the waits only wait.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { EngineClient } from '../../src/engine-client/client.js';
import {
  gapReference,
  LoadGenerator,
  parseMetrics,
  placeStops,
  priceGrid,
  stopTriggered,
  ticksOf,
  traderAccounts,
  type BookMetrics,
} from '../../src/engine-client/load.js';
import { dataDirLayout } from '../../src/util/data-dir.js';
import { waitFor } from '../support/cli.js';
import { startTestEngine } from '../support/engine.js';

const MAKERS = { count: 4, rampMs: 60_000, startSpreadBps: 200, endSpreadBps: 10, levels: 2, lots: 5, refreshMs: 1_000 };

async function openEngine(): Promise<{ client: EngineClient; token: string; accounts: string[] }> {
  // No price feed: the marks stay where they start, so the quotes the test waits for are the ones it expects.
  const { dir, client } = await startTestEngine({ feedInterval: '0ms' });
  const accounts = traderAccounts(8);
  for (const a of accounts) await client.deposit(a, 'USDT', '10000000');
  await client.setPhase('open');
  return { client, token: readFileSync(dataDirLayout(dir).token, 'utf8').trim(), accounts };
}

async function book(client: EngineClient, symbol: string): Promise<BookMetrics | undefined> {
  return parseMetrics(await client.metrics()).books[symbol];
}

/** Every request the generator sent has its answer counted once. */
function settled(gen: LoadGenerator): boolean {
  const s = gen.stats();
  return s.sent === s.accepted + s.retryLater + s.rejected + s.errors;
}

describe('book quality after a reopen', () => {
  it('serves each book’s best prices, spread and depth in /metrics: no spread while a side is empty', async () => {
    const { client } = await openEngine();
    const empty = await client.metrics();
    expect(empty).toContain('engine_book_depth{symbol="BTCUSDT",side="bid",levels="5"} 0\n');
    expect(empty).not.toMatch(/engine_book_spread_bps\{/);
    expect(empty).not.toMatch(/engine_book_best_(bid|ask)\{/);
    await client.deposit('mm', 'USDT', '1000000');
    await client.placeOrder({ account: 'mm', symbol: 'BTCUSDT', side: 'buy', type: 'limit', price: '59990', qty: '0.25' });
    await client.placeOrder({ account: 'mm', symbol: 'BTCUSDT', side: 'buy', type: 'limit', price: '59980', qty: '0.5' });
    expect(await book(client, 'BTCUSDT')).toMatchObject({ bestBid: '59990', bestAsk: null, spreadBps: null, depth: { bid: { '1': '0.25', '5': '0.75' } } });
    await client.placeOrder({ account: 'mm', symbol: 'BTCUSDT', side: 'sell', type: 'limit', price: '60010', qty: '0.125' });
    // 20 over a mid of 60000: 3.33 bps.
    expect(await book(client, 'BTCUSDT')).toEqual({
      bestBid: '59990',
      bestAsk: '60010',
      spreadBps: 3.33,
      depth: { bid: { '1': '0.25', '5': '0.75', '10': '0.75', '20': '0.75' }, ask: { '1': '0.125', '5': '0.125', '10': '0.125', '20': '0.125' } },
    });
  });

  it('narrows the spread as the makers come back over the ramp, more of them quoting deeper, old quotes canceled', async () => {
    const { client, token, accounts } = await openEngine();
    let now = 0;
    const gen = new LoadGenerator({
      url: client.url,
      token,
      rate: 0,
      accounts,
      seed: 11,
      instruments: await client.instruments(),
      makers: MAKERS,
      now: () => now,
    });
    gen.start();
    try {
      // The reopen: one maker, quoting wide.
      await waitFor(async () => (await book(client, 'BTCUSDT'))?.spreadBps != null, 20_000, 'the first maker’s quotes');
      const atReopen = (await book(client, 'BTCUSDT')) as BookMetrics;
      expect(gen.stats().makersPresent).toBe(1);
      expect(atReopen.spreadBps).toBeGreaterThanOrEqual(MAKERS.startSpreadBps);
      expect(atReopen.depth.bid['20']).toBe('0.01');

      // Halfway: more makers, a narrower spread.
      now = 30_000;
      await waitFor(async () => ((await book(client, 'BTCUSDT'))?.spreadBps ?? Infinity) < (atReopen.spreadBps as number), 20_000, 'a narrower spread');
      const halfway = gen.stats().makersPresent as number;
      expect(halfway).toBeGreaterThan(1);
      expect(halfway).toBeLessThan(MAKERS.count);

      // The end of the ramp: every maker back, the spread near its narrowest, each quote replaced (not added to).
      now = 60_000;
      const allIn = MAKERS.count * MAKERS.levels * 0.005;
      await waitFor(
        async () => {
          const b = await book(client, 'BTCUSDT');
          return (b?.spreadBps ?? Infinity) <= MAKERS.endSpreadBps * 1.5 && Number(b?.depth.bid['20']) === allIn && Number(b?.depth.ask['20']) === allIn;
        },
        20_000,
        'every maker quoting at the narrowest spread',
      );
      expect(gen.stats().makersPresent).toBe(MAKERS.count);
      const narrow = (await book(client, 'BTCUSDT')) as BookMetrics;
      expect(narrow.spreadBps).toBeLessThan(atReopen.spreadBps as number);
      expect(narrow.spreadBps).toBeGreaterThanOrEqual(MAKERS.endSpreadBps);
      // The other symbols' books came back too.
      expect((await book(client, 'ETHUSDT'))?.spreadBps).toBeLessThanOrEqual(MAKERS.endSpreadBps * 1.5);
    } finally {
      await gen.stop();
    }
    expect(settled(gen)).toBe(true);
    expect(gen.stats()).toMatchObject({ errors: 0, rejected: 0, retryLater: 0 });
  });

  it('sends the cluster of stops the reopen’s mark has crossed, each once, as market orders', async () => {
    const { client, token, accounts } = await openEngine();
    const instruments = await client.instruments();
    const stops = { perTrader: 2, rangeBps: 100, gapBps: 50 };
    const gen = new LoadGenerator({ url: client.url, token, rate: 0, accounts, seed: 5, instruments, stops });
    // The same levels, worked out from the marks the generator reads.
    const marks = (await client.health()).marks;
    let expected = 0;
    for (const inst of instruments) {
      const grid = priceGrid(inst);
      const mark = ticksOf(marks[inst.symbol] as string, grid) as bigint;
      const referenceTicks = gapReference(mark, stops.gapBps, 5, inst.symbol);
      expected += placeStops({ accounts, symbol: inst.symbol, referenceTicks, perTrader: 2, rangeBps: 100, seed: 5 }).filter((s) =>
        stopTriggered(s, mark),
      ).length;
    }
    expect(expected).toBeGreaterThan(0);
    gen.start();
    try {
      await waitFor(() => gen.stats().stopsTriggered === expected && gen.stats().sent === expected && settled(gen), 20_000, 'the stop cluster answered');
    } finally {
      await gen.stop();
    }
    // Market orders into an empty book: taken (nothing to fill), or refused when reduce-only with nothing to reduce; never errors.
    expect(gen.stats()).toMatchObject({ sent: expected, errors: 0, retryLater: 0, stopsTriggered: expected });
    const metrics = await client.metrics();
    expect(metrics).toContain(`engine_orders_in_total ${expected}\n`);
    expect(metrics).not.toMatch(/engine_orders_rejected_total\{reason="(INVALID|PHASE_[A-Z_]+)"\}/);
  });
});
