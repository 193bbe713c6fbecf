/**
 * The engine's market side as a USDⓈ-M exchange runs it (issue 13), through the control API of a real
 * engine child process on a manual clock: the premium index and funding rate, the mark price, brackets
 * and leverage, liquidation through the book, per-symbol funding intervals and the testnet clock.
 */
import { describe, expect, it } from 'vitest';
import type { EngineClient } from '../../src/engine-client/client.js';
import type { LiquidationView } from '../../src/contract/control-api.js';
import { startTestEngine } from '../support/engine.js';
import { waitFor } from '../support/cli.js';

const btc = { symbol: 'BTCUSDT' } as const;
const eth = { symbol: 'ETHUSDT' } as const;
const HOUR = 3_600_000;

type Options = Parameters<typeof startTestEngine>[0];

async function manualEngine(o: Options = {}): Promise<{ client: EngineClient; dir: string }> {
  const { client, dir } = await startTestEngine({ testnet: true, manualClock: true, feedInterval: '0ms', fundingInterval: '8h', ...o });
  return { client, dir };
}

const advance = (client: EngineClient, ms: number) => client.request<{ now: string; ticks: number }>('POST', '/testnet/clock', { advanceMs: ms });
const setIndex = (client: EngineClient, prices: Record<string, string>) => client.request('POST', '/testnet/index', { prices });

/** The settled funding records in `GET /state`, by id (`SYMBOL:interval start`). */
async function fundingRecords(client: EngineClient): Promise<Record<string, { rate: string; paid: string; received: string }>> {
  const out: Record<string, { rate: string; paid: string; received: string }> = {};
  for (const line of (await client.state()).trim().split('\n').slice(1)) {
    const r = JSON.parse(line) as { type: string; id: string; rate: string; paid: string; received: string };
    if (r.type === 'funding') out[r.id] = r;
  }
  return out;
}

/** Resting quotes: a BTC bid 0.5% over a 60000 index (deep enough for the 4000 USDT impact notional) and an ask above it. */
async function premiumBook(client: EngineClient): Promise<void> {
  await client.deposit('mm', 'USDT', '1000000');
  await client.placeOrder({ ...btc, account: 'mm', side: 'buy', type: 'limit', price: '60300', qty: '0.1', stp: 'none' });
  await client.placeOrder({ ...btc, account: 'mm', side: 'sell', type: 'limit', price: '60400', qty: '0.1', stp: 'none' });
}

describe('funding from the premium index', () => {
  it('F = P + clamp(0.01% − P, ±0.05%), capped per symbol, from the impact bid and ask against the index', async () => {
    const { client } = await manualEngine();
    await client.setPhase('open');
    await premiumBook(client);
    // ETH: a bid 10% over the index, far past the cap.
    await client.placeOrder({ ...eth, account: 'mm', side: 'buy', type: 'limit', price: '3300', qty: '1', stp: 'none' });
    await client.placeOrder({ ...eth, account: 'mm', side: 'sell', type: 'limit', price: '3400', qty: '1', stp: 'none' });
    await setIndex(client, { BTCUSDT: '60000', ETHUSDT: '3000' });
    // The predicted rate: P = (60300 − 60000) / 60000 = 0.5%; 0.01% − 0.5% clamps to −0.05%: F = 0.45%.
    expect((await client.health()).predictedFundingRates).toMatchObject({ BTCUSDT: '0.0045', ETHUSDT: '0.0075' });
    await advance(client, 8 * HOUR);
    await setIndex(client, { BTCUSDT: '60000', ETHUSDT: '3000' });
    const f = await fundingRecords(client);
    expect(f['BTCUSDT:2026-01-01T00:00:00.000Z']?.rate).toBe('0.0045');
    expect(f['ETHUSDT:2026-01-01T00:00:00.000Z']?.rate).toBe('0.0075');
    // No book at all: the interest rate alone.
    expect(f['BTCUSDC:2026-01-01T00:00:00.000Z']?.rate).toBe('0.0001');
  });

  it.each([
    ['exclude', '0.0045'],
    // Samples while halted count as a zero premium: (0.5% x 1 + 0 x 2 + 0 x 3) / 6 = 0.0833%, clamped to 0.0333%.
    ['interest-only', '0.00033333'],
  ] as const)('premium samples taken while halted: %s gives %s', async (policy, rate) => {
    const { client } = await manualEngine({ haltedPremium: policy });
    await client.setPhase('open');
    await premiumBook(client);
    await setIndex(client, { BTCUSDT: '60000' });
    await client.setPhase('halted', 'outage');
    await setIndex(client, { BTCUSDT: '60000' });
    await setIndex(client, { BTCUSDT: '60000' });
    await advance(client, 8 * HOUR);
    await setIndex(client, { BTCUSDT: '60000' });
    const r = await client.recomputeFunding('2026-01-01T00:00:00Z', '2026-01-01T08:00:00Z');
    expect(r.intervals.find((i) => i.symbol === 'BTCUSDT')?.rate).toBe(rate);
  });

  it('settles each symbol on its own interval: ETHUSDT every 4h, the rest every 8h', async () => {
    const { client } = await manualEngine({ feedInterval: '1h', fundingIntervals: { ETHUSDT: '4h' } });
    await client.setPhase('open');
    expect((await client.instruments()).find((i) => i.symbol === 'ETHUSDT')?.fundingInterval).toBe('4h');
    await advance(client, 16 * HOUR);
    const ids = Object.keys(await fundingRecords(client));
    expect(ids.filter((id) => id.startsWith('ETHUSDT:')).sort()).toEqual([
      'ETHUSDT:2026-01-01T00:00:00.000Z',
      'ETHUSDT:2026-01-01T04:00:00.000Z',
      'ETHUSDT:2026-01-01T08:00:00.000Z',
      'ETHUSDT:2026-01-01T12:00:00.000Z',
    ]);
    expect(ids.filter((id) => id.startsWith('BTCUSDT:')).sort()).toEqual(['BTCUSDT:2026-01-01T00:00:00.000Z', 'BTCUSDT:2026-01-01T08:00:00.000Z']);
  });
});

describe('the mark price', () => {
  it('is the median of the funding-adjusted index, index + moving-average basis, and the last price: a stale book moves it', async () => {
    const { client } = await manualEngine();
    await client.setPhase('open');
    await client.deposit('mm', 'USDT', '1000000');
    await client.deposit('t', 'USDT', '1000000');
    // The book reopens 1.7% above where the index now is, and trades there.
    await setIndex(client, { BTCUSDT: '61000' });
    await client.placeOrder({ ...btc, account: 'mm', side: 'buy', type: 'limit', price: '61000', qty: '0.2' });
    await client.placeOrder({ ...btc, account: 'mm', side: 'sell', type: 'limit', price: '61100', qty: '0.2' });
    await client.placeOrder({ ...btc, account: 't', side: 'sell', type: 'market', qty: '0.1' });
    await setIndex(client, { BTCUSDT: '60000' });
    const h = await client.health();
    expect(h.index?.BTCUSDT).toBe('60000');
    // median(60000 x (1 + F x 8h/8h) ≤ 60450, 60000 + basis ≥ 60525, last 61000) = the last price's neighbour.
    const mark = Number(h.marks.BTCUSDT);
    expect(mark).toBeGreaterThan(60_450);
    expect(mark).toBeLessThanOrEqual(61_000);
  });
});

describe('risk: brackets, leverage and uniMMR', () => {
  it('reports marginRatio as Binance defines it (maintenance / margin balance) and uniMMR as its inverse', async () => {
    const { client } = await manualEngine();
    await client.setPhase('open');
    await client.deposit('mm', 'USDT', '1000000');
    await client.deposit('u', 'USDT', '10000');
    await client.placeOrder({ ...btc, account: 'mm', side: 'sell', type: 'limit', price: '60000', qty: '1' });
    await client.placeOrder({ ...btc, account: 'u', side: 'buy', type: 'market', qty: '1' });
    const a = await client.account('u');
    // Equity 10000 − 30 fee = 9970 at the 60000 mark; maintenance 2.5% = 1500.
    expect(a).toMatchObject({ equity: '9970', maintenanceMargin: '1500', marginRatio: '0.1505', uniMMR: '6.6466' });
  });

  it('holds orders to the chosen leverage, refuses leverage above the first bracket, and one that would leave the account short', async () => {
    const { client } = await manualEngine();
    await client.setPhase('open');
    await client.deposit('u', 'USDT', '3500');
    const tooHigh = await client.raw('POST', '/leverage', { account: 'u', symbol: 'BTCUSDT', leverage: 50 });
    expect(tooHigh.status).toBe(400);
    expect(await client.request('POST', '/leverage', { account: 'u', symbol: 'BTCUSDT', leverage: 5 })).toMatchObject({ leverage: 5, maxLeverage: 20 });
    // 1 BTC at 60000 at 5x needs 12000 of initial margin: 3500 is not enough (at 20x it was).
    const r = await client.placeOrder({ ...btc, account: 'u', side: 'buy', type: 'limit', price: '60000', qty: '1' });
    expect(r).toMatchObject({ status: 'rejected', reason: 'INSUFFICIENT_MARGIN' });
    await client.request('POST', '/leverage', { account: 'u', symbol: 'BTCUSDT', leverage: 20 });
    expect(await client.placeOrder({ ...btc, account: 'u', side: 'buy', type: 'limit', price: '60000', qty: '1' })).toMatchObject({ status: 'open' });
    // With the order resting at 20x, going back to 5x would need more margin than the account has.
    expect((await client.raw('POST', '/leverage', { account: 'u', symbol: 'BTCUSDT', leverage: 5 })).status).toBe(409);
    expect((await client.account('u')).leverage).toEqual({ BTCUSDT: 20 });
  });

  it('puts a unified account at uniMMR 1.2 or below in reduce-only: orders that add exposure are refused', async () => {
    const { client } = await manualEngine();
    await client.setPhase('open');
    await client.deposit('mm', 'USDT', '1000000');
    await client.deposit('u', 'USDT', '3200');
    await client.placeOrder({ ...btc, account: 'mm', side: 'sell', type: 'limit', price: '60000', qty: '1' });
    await client.placeOrder({ ...btc, account: 'u', side: 'buy', type: 'market', qty: '1' });
    // Equity 3170 at 60000; at an index of 58510 it is about 1686 against 1463 of maintenance: uniMMR 1.15.
    await setIndex(client, { BTCUSDT: '58510' });
    const a = await client.account('u');
    expect(Number(a.uniMMR)).toBeGreaterThan(1.05);
    expect(Number(a.uniMMR)).toBeLessThanOrEqual(1.2);
    expect(a.positions).toHaveLength(1);
    const more = await client.placeOrder({ ...btc, account: 'u', side: 'buy', type: 'limit', price: '58000', qty: '0.01' });
    expect(more).toMatchObject({ status: 'rejected', reason: 'ACCOUNT_REDUCE_ONLY' });
    const less = await client.placeOrder({ ...btc, account: 'u', side: 'sell', type: 'limit', price: '59000', qty: '0.01', reduceOnly: true });
    expect(less).toMatchObject({ status: 'open' });
  });

  it('liquidates through the book: an IOC sale no lower than the bankruptcy price, 1% to the insurance fund', async () => {
    const { client } = await manualEngine();
    await client.setPhase('open');
    await client.deposit('mm', 'USDT', '1000000');
    await client.deposit('lev', 'USDT', '3200');
    await client.placeOrder({ ...btc, account: 'mm', side: 'sell', type: 'limit', price: '60000', qty: '1' });
    await client.placeOrder({ ...btc, account: 'lev', side: 'buy', type: 'market', qty: '1' });
    await client.placeOrder({ ...btc, account: 'mm', side: 'buy', type: 'limit', price: '57900', qty: '1' });
    await setIndex(client, { BTCUSDT: '58000' });
    const liquidations = async () => (await client.request<{ liquidations: LiquidationView[] }>('GET', '/liquidations')).liquidations;
    await waitFor(async () => (await liquidations()).length > 0, 10_000, 'the liquidation');
    const [l] = await liquidations();
    expect(l).toMatchObject({
      account: 'lev',
      symbol: 'BTCUSDT',
      qty: '1',
      book: { qty: '1', notional: '57900' },
      fee: '579',
      insurance: { qty: '0' },
      adl: [],
    });
    expect(Number(l?.bankruptcyPrice)).toBeLessThan(57_900);
    expect((await client.account('lev')).balances.USDT).toBe('491');
    const h = await client.health();
    expect(h.insuranceFund).toEqual({ USDT: '579', USDC: '0' });
    expect(h.ledger).toEqual({ USDT: '0', USDC: '0' });
  });
});

describe('the testnet clock', () => {
  it('a long advance keeps the margin checks between ticks: no flooded queue, no halt; one too long is refused', async () => {
    const { client } = await manualEngine({ feedInterval: '1s', queueLimit: 1000 });
    await client.setPhase('open');
    await client.deposit('mm', 'USDT', '1000000');
    await client.deposit('t', 'USDT', '1000000');
    await client.placeOrder({ ...btc, account: 'mm', side: 'sell', type: 'limit', price: '60000', qty: '0.1' });
    await client.placeOrder({ ...btc, account: 't', side: 'buy', type: 'market', qty: '0.1' });
    // 8h at a 1s feed: 28800 ticks, each touching both holders, against a queue of 1000.
    expect(await advance(client, 8 * HOUR)).toMatchObject({ ticks: 28_800 });
    const h = await client.health();
    expect(h).toMatchObject({ phase: 'open', haltCode: null });
    expect(Object.keys(await fundingRecords(client))).toContain('BTCUSDT:2026-01-01T00:00:00.000Z');
    expect((await client.raw('POST', '/testnet/clock', { advanceMs: 300 * 24 * HOUR })).status).toBe(400);
  });

  it('keeps the data dir’s funding configuration across a restart without flags, and journals a change', async () => {
    const { client, dir } = await manualEngine({ haltedPremium: 'interest-only', fundingIntervals: { ETHUSDT: '4h' } });
    const header = async (c: EngineClient) =>
      JSON.parse((await c.state()).split('\n')[0] as string) as { haltedPremium: string; market: Record<string, { fundingIntervalMs: number }> };
    expect((await header(client)).haltedPremium).toBe('interest-only');
    const { stopEngine } = await import('../../src/engine-client/supervisor.js');
    await stopEngine(dir, 5_000);
    // No policy or per-symbol flags this time: what the data dir recorded stays.
    const again = await startTestEngine({ dataDir: dir, testnet: true, manualClock: true, feedInterval: '0ms' });
    const h = await header(again.client);
    expect(h.haltedPremium).toBe('interest-only');
    expect(h.market.ETHUSDT?.fundingIntervalMs).toBe(4 * HOUR);
    await stopEngine(dir, 5_000);
    // A flag that differs is journaled as a config record, so replay rebuilds it exactly.
    const third = await startTestEngine({ dataDir: dir, testnet: true, manualClock: true, feedInterval: '0ms', haltedPremium: 'exclude' });
    expect((await header(third.client)).haltedPremium).toBe('exclude');
    const seq = (await third.client.health()).seq;
    await stopEngine(dir, 5_000);
    const fourth = await startTestEngine({ dataDir: dir, testnet: true, manualClock: true, feedInterval: '0ms' });
    expect((await header(fourth.client)).haltedPremium).toBe('exclude');
    expect((await fourth.client.health()).seq).toBe(seq);
  });

  it('is refused (404) without --manual-clock, and a restart resumes at the journaled time', async () => {
    const plain = await startTestEngine({ testnet: true });
    expect((await plain.client.raw('POST', '/testnet/clock', { advanceMs: 1000 })).status).toBe(404);
    const { client, dir } = await manualEngine({ feedInterval: '1h' });
    expect(await advance(client, 5 * HOUR + 30 * 60_000)).toEqual({ now: '2026-01-01T05:30:00.000Z', ticks: 5 });
    await client.request('POST', '/testnet/clock', { advanceMs: 0 });
    const before = await client.state();
    const { stopEngine } = await import('../../src/engine-client/supervisor.js');
    await stopEngine(dir, 5_000);
    const again = await startTestEngine({ dataDir: dir, testnet: true, manualClock: true, feedInterval: '1h', fundingInterval: '8h' });
    // Replay is exact and the clock goes on from 05:30: the next tick is 06:00.
    expect(await again.client.state()).toBe(before);
    expect(await advance(again.client, 30 * 60_000)).toEqual({ now: '2026-01-01T06:00:00.000Z', ticks: 1 });
  });
});

describe('the dashboards figures in /metrics', () => {
  it('exports traded volume, mark and index, funding rates, open interest and the insurance fund per symbol', async () => {
    const { client } = await manualEngine();
    await client.setPhase('open');
    await client.deposit('mm', 'USDT', '1000000');
    await client.deposit('t', 'USDT', '1000000');
    await client.placeOrder({ ...btc, account: 'mm', side: 'sell', type: 'limit', price: '60000', qty: '0.25' });
    await client.placeOrder({ ...btc, account: 't', side: 'buy', type: 'market', qty: '0.25' });
    await setIndex(client, { BTCUSDT: '59000' });
    await advance(client, 8 * HOUR);
    await setIndex(client, { BTCUSDT: '59000' });
    const text = await (await client.raw('GET', '/metrics')).text();
    const value = (series: string): string | undefined => new RegExp(`^${series.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1];
    expect(value('engine_traded_volume_base_total{symbol="BTCUSDT"}')).toBe('0.25');
    expect(value('engine_traded_volume_notional_total{symbol="BTCUSDT"}')).toBe('15000');
    expect(value('engine_traded_volume_base_total{symbol="ETHUSDT"}')).toBe('0');
    expect(value('engine_index_price{symbol="BTCUSDT"}')).toBe('59000');
    expect(value('engine_mark_price{symbol="BTCUSDT"}')).toBe((await client.health()).marks.BTCUSDT);
    expect(value('engine_open_interest{symbol="BTCUSDT"}')).toBe('0.25');
    expect(value('engine_funding_rate{symbol="BTCUSDT"}')).toBe('0.0001');
    expect(value('engine_funding_rate_predicted{symbol="BTCUSDT"}')).toBe('0.0001');
    expect(value('engine_funding_interval_seconds{symbol="BTCUSDT"}')).toBe('28800');
    expect(value('engine_insurance_fund_balance{asset="USDT"}')).toBe('0');
    expect(value('engine_insurance_deficits_total')).toBe('0');
  });
});
