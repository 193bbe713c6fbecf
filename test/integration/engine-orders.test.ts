/**
 * Order rules of a USDⓈ-M exchange, through the control API of a real engine child process (issue 13):
 * a closing order needs no new margin, self-trade prevention, FOK and GTX.
 */
import { describe, expect, it } from 'vitest';
import type { EngineClient } from '../../src/engine-client/client.js';
import { installModule, startTestEngine } from '../support/engine.js';
import { waitFor } from '../support/cli.js';
import { ratioText, uniMMROf } from '../../src/engine/exchange.js';
import { fmtMoney, parseFixed } from '../../src/engine/fixed.js';

async function openEngine(): Promise<EngineClient> {
  const { client } = await startTestEngine();
  await client.setPhase('open');
  return client;
}

const btc = { symbol: 'BTCUSDT' } as const;

describe('orders as a USDⓈ-M exchange takes them', () => {
  it('fills a plain market order that only closes a position, even with no margin to spare', async () => {
    const client = await openEngine();
    await client.deposit('maker', 'USDT', '1000000');
    // 1 BTC at 60000 needs 3000 initial margin and a 30 taker fee: 3100 leaves 70 to spare.
    await client.deposit('trader', 'USDT', '3100');
    await client.placeOrder({ ...btc, account: 'maker', side: 'sell', type: 'limit', price: '60000', qty: '1' });
    expect(await client.placeOrder({ ...btc, account: 'trader', side: 'buy', type: 'market', qty: '1' })).toMatchObject({ status: 'filled', filled: '1' });
    expect(Number((await client.account('trader')).available)).toBeLessThan(100);
    await client.placeOrder({ ...btc, account: 'maker', side: 'buy', type: 'limit', price: '59990', qty: '1' });
    // Not reduceOnly: a plain sell that shrinks the long to zero.
    const close = await client.placeOrder({ ...btc, account: 'trader', side: 'sell', type: 'market', qty: '1' });
    expect(close).toMatchObject({ status: 'filled', filled: '1', avgPrice: '59990' });
    expect((await client.account('trader')).positions).toEqual([]);
    // One that opens exposure again is still held to initial margin.
    await client.placeOrder({ ...btc, account: 'maker', side: 'sell', type: 'limit', price: '60000', qty: '2' });
    expect(await client.placeOrder({ ...btc, account: 'trader', side: 'buy', type: 'market', qty: '2' })).toMatchObject({
      status: 'rejected',
      reason: 'INSUFFICIENT_MARGIN',
    });
  });

  it('never lets an account trade with itself by default (expire-maker): no fill, no fee, the resting order expires', async () => {
    const client = await openEngine();
    await client.deposit('self', 'USDT', '1000000');
    const ask = await client.placeOrder({ ...btc, account: 'self', side: 'sell', type: 'limit', price: '60010', qty: '1' });
    const bid = await client.placeOrder({ ...btc, account: 'self', side: 'buy', type: 'limit', price: '60010', qty: '1' });
    expect(bid).toMatchObject({ status: 'open', filled: '0' });
    const acct = await client.account('self');
    expect(acct.balances.USDT).toBe('1000000');
    expect(acct.positions).toEqual([]);
    expect(acct.openOrders).toEqual([bid.id]);
    expect((await client.request<{ status: string }>('GET', `/orders/${ask.id as string}`)).status).toBe('canceled');
  });

  it('expire-taker keeps the resting order, expire-both cancels both, none trades (and pays both fees)', async () => {
    const client = await openEngine();
    await client.deposit('self', 'USDT', '1000000');
    const ask = await client.placeOrder({ ...btc, account: 'self', side: 'sell', type: 'limit', price: '60010', qty: '0.5' });
    const taker = await client.placeOrder({ ...btc, account: 'self', side: 'buy', type: 'limit', price: '60010', qty: '0.5', stp: 'expire-taker' });
    expect(taker).toMatchObject({ status: 'canceled', filled: '0' });
    expect((await client.account('self')).openOrders).toEqual([ask.id]);
    const both = await client.placeOrder({ ...btc, account: 'self', side: 'buy', type: 'limit', price: '60010', qty: '0.5', stp: 'expire-both' });
    expect(both).toMatchObject({ status: 'canceled', filled: '0' });
    expect((await client.account('self')).openOrders).toEqual([]);
    await client.placeOrder({ ...btc, account: 'self', side: 'sell', type: 'limit', price: '60010', qty: '0.5' });
    const crossed = await client.placeOrder({ ...btc, account: 'self', side: 'buy', type: 'limit', price: '60010', qty: '0.5', stp: 'none' });
    expect(crossed).toMatchObject({ status: 'filled', filled: '0.5' });
    // 0.5 BTC at 60010 = 30005: taker 5 bps 15.0025, maker 2 bps 6.001.
    expect((await client.account('self')).balances.USDT).toBe('999978.9965');
  });

  it('FOK fills entirely or not at all; GTX never takes', async () => {
    const client = await openEngine();
    await client.deposit('maker', 'USDT', '1000000');
    await client.deposit('taker', 'USDT', '1000000');
    await client.placeOrder({ ...btc, account: 'maker', side: 'sell', type: 'limit', price: '60000', qty: '0.01' });
    expect(await client.placeOrder({ ...btc, account: 'taker', side: 'buy', type: 'limit', price: '60000', qty: '0.02', tif: 'FOK' })).toMatchObject({
      status: 'rejected',
      reason: 'FOK_WOULD_NOT_FILL',
    });
    expect(await client.placeOrder({ ...btc, account: 'taker', side: 'buy', type: 'limit', price: '60010', qty: '0.01', tif: 'GTX' })).toMatchObject({
      status: 'rejected',
      reason: 'POST_ONLY_WOULD_TAKE',
    });
    expect(await client.placeOrder({ ...btc, account: 'taker', side: 'buy', type: 'limit', price: '60000', qty: '0.01', tif: 'FOK' })).toMatchObject({
      status: 'filled',
      filled: '0.01',
    });
  });
});

describe('funding after a halt, as a USDⓈ-M exchange owes it', () => {
  it('charges a missed interval to who held the position at its end, not to who holds it when it is settled', async () => {
    // A manual clock from 00:00 with 8h intervals and a feed tick a minute: the test decides what time it is.
    const { client } = await startTestEngine({ testnet: true, manualClock: true, feedInterval: '1m', fundingInterval: '8h' });
    const advance = (ms: number) => client.request('POST', '/testnet/clock', { advanceMs: ms });
    for (const a of ['long', 'short', 'buyer']) await client.deposit(a, 'USDT', '1000000');
    await client.setPhase('open');
    await advance(60 * 60_000);
    await client.placeOrder({ ...btc, account: 'short', side: 'sell', type: 'limit', price: '60000', qty: '0.5' });
    await client.placeOrder({ ...btc, account: 'long', side: 'buy', type: 'market', qty: '0.5' });
    await advance(6 * 60 * 60_000);
    // 07:00: the halt. 08:00 passes while halted: the holders then are recorded, nothing is settled.
    await client.setPhase('halted', 'test outage');
    await advance(2 * 60 * 60_000);
    const header = JSON.parse((await client.state()).split('\n')[0] as string) as { boundaryPositions: Record<string, Record<string, [string, string][]>> };
    expect(header.boundaryPositions['2026-01-01T08:00:00.000Z']?.BTCUSDT).toEqual([
      ['long', '0.5'],
      ['short', '-0.5'],
    ]);
    // 09:00, after the resume: the long sells its position to someone else before funding is recomputed.
    await client.setPhase('open');
    await client.placeOrder({ ...btc, account: 'buyer', side: 'buy', type: 'limit', price: '60000', qty: '0.5' });
    expect(await client.placeOrder({ ...btc, account: 'long', side: 'sell', type: 'market', qty: '0.5' })).toMatchObject({ status: 'filled' });
    await client.setPhase('halted', 'settle the missed funding');
    const r = await client.recomputeFunding('2026-01-01T00:00:00Z', '2026-01-01T09:00:00Z');
    const missed = r.intervals.find((i) => i.symbol === 'BTCUSDT');
    // No book to price a premium: the rate is the interest rate, 0.01% per 8h, paid by the long at the 08:00 mark.
    expect(missed).toMatchObject({ intervalStart: '2026-01-01T00:00:00.000Z', rate: '0.0001' });
    const owed = (BigInt(missed?.markPrice ?? 0) * 500_000n * 10_000n + 99_999_999n) / 100_000_000n;
    expect(missed?.holders).toEqual([
      { account: 'long', qty: '0.5', amount: fmtMoney(-owed) },
      { account: 'short', qty: '-0.5', amount: fmtMoney(owed) },
    ]);
    expect(missed?.paid).toBe(missed?.received);
    expect((await client.health()).ledger).toEqual({ USDT: '0', USDC: '0' });
  });
});

describe('the margin check across a halt', () => {
  it('a module swap during the halt is recalculated, and its liquidations recorded, before the first phase opens', async () => {
    const { dir, client } = await startTestEngine({ testnet: true });
    await client.deposit('maker', 'USDT', '1000000');
    await client.deposit('trader', 'USDT', '3100');
    await client.setPhase('open');
    await client.placeOrder({ ...btc, account: 'maker', side: 'sell', type: 'limit', price: '60000', qty: '1' });
    await client.placeOrder({ ...btc, account: 'trader', side: 'buy', type: 'market', qty: '1' });
    await client.setPhase('halted', 'EXCESS_QUEUE_DEPTH drill');
    // While halted the index falls 5%: the trader is now far below maintenance, but nothing may act yet.
    await client.request('POST', '/testnet/index', { prices: { BTCUSDT: '57000' } });
    expect((await client.account('trader')).positions).toHaveLength(1);
    expect((await client.health()).pendingRecalc).toBe(2); // both holders: the long trader and the short maker
    installModule(dir, '1.4.3');
    await client.activate('margin', '1.4.3');
    // The first phase after the halt opens only once everyone touched during it has been recalculated.
    await client.setPhase('cancel-only');
    expect((await client.account('trader')).positions).toEqual([]);
    const h = await client.health();
    expect(h).toMatchObject({ phase: 'cancel-only', pendingRecalc: 0 });
    expect(h.ledger).toEqual({ USDT: '0', USDC: '0' });
  });

  it('refuses the testnet controls (404) on an engine not started with --testnet', async () => {
    const client = await openEngine();
    const r = await client.raw('POST', '/testnet/index', { prices: { BTCUSDT: '57000' } });
    expect(r.status).toBe(404);
  });
});

describe('risk preview before trading opens', () => {
  it('GET /risk/preview names who would be liquidated at the current marks, with uniMMR and its band', async () => {
    const { client } = await startTestEngine({ testnet: true });
    await client.deposit('maker', 'USDT', '1000000');
    await client.deposit('trader', 'USDT', '3100');
    await client.deposit('careful', 'USDT', '5000');
    await client.setPhase('open');
    await client.placeOrder({ ...btc, account: 'maker', side: 'sell', type: 'limit', price: '60000', qty: '1.1' });
    await client.placeOrder({ ...btc, account: 'trader', side: 'buy', type: 'market', qty: '1' });
    await client.placeOrder({ ...btc, account: 'careful', side: 'buy', type: 'market', qty: '0.1' });
    await client.setPhase('halted', 'drill');
    expect((await client.riskPreview()).counts).toMatchObject({ accounts: 3, wouldLiquidate: 0 });
    await client.request('POST', '/testnet/index', { prices: { BTCUSDT: '57000' } });
    const r = await client.riskPreview();
    // The mark is the median of index x (1 + rate x time to funding), index + basis and the last price
    // (60000): with an empty book that is the index plus at most one interval's interest (0.01%).
    const mark = parseFixed(r.marks.BTCUSDT as string, 2);
    expect(mark >= 5_700_000n && mark <= 5_700_570n).toBe(true);
    expect(r.counts).toMatchObject({ accounts: 3, wouldLiquidate: 1, liquidation: 1 });
    // trader: 3100 - 30 fee - (60000 - mark) loss, against 2.5% of the mark in maintenance.
    const equity = (mark - 5_693_000n) * 1_000_000n;
    const maintenance = (mark * 1_000_000n * 250n + 9_999n) / 10_000n;
    expect(r.accounts[0]).toEqual({
      account: 'trader',
      equity: fmtMoney(equity),
      maintenance: fmtMoney(maintenance),
      uniMMR: ratioText(uniMMROf(equity, maintenance) as bigint),
      band: 'liquidation',
      wouldLiquidate: true,
      isolatedBelow: [],
    });
    expect(r.accounts.map((a) => a.account)).not.toContain('careful');
  });
});

describe('market orders are protected by a band around the mark', () => {
  it('a market buy sweeps no further than 20% above the mark; the rest is canceled, not filled at any price', async () => {
    const { client } = await startTestEngine({ testnet: true });
    await client.deposit('maker', 'USDT', '1000000');
    await client.deposit('taker', 'USDT', '1000000');
    await client.setPhase('open');
    await client.placeOrder({ ...btc, account: 'maker', side: 'sell', type: 'limit', price: '60000', qty: '0.01' });
    await client.placeOrder({ ...btc, account: 'maker', side: 'sell', type: 'limit', price: '71000', qty: '0.01' });
    // The index falls to 55000: 71000 is now 29% above the mark, past the band (55000 x 1.2 = 66000).
    await client.request('POST', '/testnet/index', { prices: { BTCUSDT: '55000' } });
    const r = await client.placeOrder({ ...btc, account: 'taker', side: 'buy', type: 'market', qty: '0.02' });
    expect(r).toMatchObject({ status: 'canceled', filled: '0.01', avgPrice: '60000' });
  });
});

describe('POST /orders/batch', () => {
  const syncs = async (client: EngineClient): Promise<number> => Number(/^engine_wal_syncs_total (\d+)$/m.exec(await client.metrics())?.[1]);

  it('answers each order in the order sent, a malformed one as an error entry, and writes the batch as one WAL group', async () => {
    const client = await openEngine();
    await client.deposit('maker', 'USDT', '1000000');
    await client.deposit('taker', 'USDT', '1000000');
    const before = await syncs(client);
    const orders = Array.from({ length: 98 }, (_, i) => ({
      ...btc,
      account: 'maker',
      side: 'sell' as const,
      type: 'limit' as const,
      price: String(60_000 + i),
      qty: '0.01',
    }));
    const r = await client.placeOrders([
      ...orders,
      { ...btc, account: 'taker', side: 'buy', type: 'limit', price: '60000', qty: '0.01' },
      { ...btc, account: 'taker', side: 'buy', type: 'limit', price: 'sixty', qty: '1' },
    ]);
    expect(r.results).toHaveLength(100);
    expect(r.results.slice(0, 98).every((a) => 'status' in a && a.status === 'open')).toBe(true);
    // The taker's buy, decided after the 98 sells, meets the cheapest of them.
    expect(r.results[98]).toMatchObject({ status: 'filled', filled: '0.01', avgPrice: '60000' });
    expect(r.results[99]).toEqual({ error: expect.stringMatching(/price/) });
    // 99 records, one write and one fsync.
    expect((await syncs(client)) - before).toBe(1);
    const first = await client.raw('GET', `/orders/${(r.results[0] as { id: string }).id}`);
    expect(((await first.json()) as { status: string }).status).toBe('filled');
  });

  it('refuses a body over 1 MiB with 413 and goes on answering', async () => {
    const client = await openEngine();
    const one = { ...btc, account: 'nobody', side: 'buy' as const, type: 'limit' as const, price: '1', qty: '1', note: 'x'.repeat(12_000) };
    const res = await client.raw('POST', '/orders/batch', { orders: Array.from({ length: 100 }, () => one) });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: string }).error).toBe('request body over 1 MiB');
    expect((await client.raw('GET', '/health')).status).toBe(200);
  });

  it('refuses an empty batch, more than 100 orders, or no array: 400, nothing decided', async () => {
    const client = await openEngine();
    const one = { ...btc, account: 'nobody', side: 'buy' as const, type: 'limit' as const, price: '1', qty: '1' };
    for (const body of [{ orders: [] }, { orders: Array.from({ length: 101 }, () => one) }, { orders: 'x' }]) {
      const res = await client.raw('POST', '/orders/batch', body);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toBe('orders: an array of 1 to 100 orders');
    }
  });
});
