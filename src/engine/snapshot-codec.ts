import { SNAPSHOT_FORMAT, type SnapshotHeader, type SnapshotRecord } from '../snapshot/format.js';
import { Exchange, fundingKey } from './exchange.js';
import { fmtMoney, fmtPrice, fmtQty, fmtRate, MONEY_DECIMALS, parseFixed, PRICE_DECIMALS, QTY_DECIMALS, RATE_DECIMALS } from './fixed.js';
import { isSymbol, SYMBOLS, type Symbol } from './instruments.js';
import type { HaltedPremiumPolicy } from './market.js';
import type { MarginMode, Order, OrderStatus, Phase, TimeInForce } from './types.js';

const byId = (a: { id: string }, b: { id: string }): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

export function snapshotHeader(ex: Exchange, seq: number, extra: Record<string, unknown>): SnapshotHeader {
  const marks: Record<string, string> = {};
  for (const s of SYMBOLS) marks[s] = fmtPrice(ex.mark(s));
  const boundaryMarks: Record<string, Record<string, string>> = {};
  for (const [b, prices] of [...ex.boundaryMarks].sort((x, y) => x[0] - y[0])) {
    boundaryMarks[new Date(b).toISOString()] = Object.fromEntries(Object.entries(prices).map(([s, p]) => [s, fmtPrice(p)]));
  }
  const boundaryPositions: Record<string, Record<string, [string, string][]>> = {};
  for (const [b, bySymbol] of [...ex.boundaryPositions].sort((x, y) => x[0] - y[0])) {
    boundaryPositions[new Date(b).toISOString()] = Object.fromEntries(
      Object.entries(bySymbol).map(([s, holders]) => [s, (holders ?? []).map(([id, q]): [string, string] => [id, fmtQty(q)])]),
    );
  }
  const boundaryRates: Record<string, Record<string, string>> = {};
  for (const [b, rates] of [...ex.boundaryRates].sort((x, y) => x[0] - y[0])) {
    boundaryRates[new Date(b).toISOString()] = Object.fromEntries(Object.entries(rates).map(([s, r]) => [s, fmtRate(r)]));
  }
  // What the marks and the next funding rate are derived from, per symbol (see market.ts).
  const market: Record<string, unknown> = {};
  for (const s of SYMBOLS) {
    const m = ex.marketOf(s);
    market[s] = {
      index: fmtPrice(m.index),
      lastPrice: m.lastPrice === null ? null : fmtPrice(m.lastPrice),
      basis: m.basis.map((b) => [new Date(b.ts).toISOString(), b.basis]),
      premium: { sum: fmtRate(m.premiumSum), weights: String(m.premiumWeights), samples: m.premiumSamples },
      lastRate: ex.lastRates.has(s) ? fmtRate(ex.lastRates.get(s) as bigint) : null,
      fundingIntervalMs: ex.intervalOf(s),
    };
  }
  return {
    type: 'header',
    format: SNAPSHOT_FORMAT,
    seq,
    takenAt: new Date(ex.lastTs).toISOString(),
    phase: ex.phase,
    reason: ex.reason,
    haltedAtSeq: ex.haltedAtSeq,
    haltedAt: ex.haltedAt === null ? null : new Date(ex.haltedAt).toISOString(),
    haltReason: ex.haltReason,
    admissionWeight: ex.admissionWeight,
    marks,
    feedStep: ex.feedStep,
    lastMarksAt: new Date(ex.lastMarksTs).toISOString(),
    nextOrderNum: ex.nextOrderNum,
    fundingIntervalMs: ex.fundingIntervalMs,
    boundaryMarks,
    boundaryPositions,
    boundaryRates,
    market,
    haltedPremium: ex.haltedPremium,
    epoch: ex.epoch,
    fenced: ex.fenced,
    epochSince: ex.epochSince,
    fencedByNewer: ex.fencedByNewer,
    // What explains the insurance fund's balance, and how often covering left it below zero.
    insurance: {
      fees: fmtMoney(ex.insuranceFlows.fees),
      realized: fmtMoney(ex.insuranceFlows.realized),
      funding: fmtMoney(ex.insuranceFlows.funding),
      covered: fmtMoney(ex.insuranceFlows.covered),
      deficits: ex.insuranceDeficits,
    },
    ...extra,
  };
}

/** Every record of the exchange's state, in snapshot order. */
export function* snapshotRecords(ex: Exchange): Generator<SnapshotRecord> {
  const accounts = [...ex.accounts.values()].sort(byId);
  for (const a of accounts) {
    const leverage = Object.fromEntries([...a.leverage].sort());
    yield {
      type: 'account',
      id: a.id,
      balances: { USDC: fmtMoney(a.balances.USDC), USDT: fmtMoney(a.balances.USDT) },
      ...(a.leverage.size > 0 ? { leverage } : {}),
    };
  }
  const funding = [...ex.funding.values()].map((f) => ({ f, id: fundingKey(f.symbol, f.intervalStart) })).sort(byId);
  for (const { f, id } of funding) {
    yield { type: 'funding', id, rate: fmtRate(f.rate), markPrice: fmtPrice(f.markPrice), paid: fmtMoney(f.paid), received: fmtMoney(f.received) };
  }
  for (const o of [...ex.orders.values()].sort(byId)) yield orderRecord(o);
  const positions: SnapshotRecord[] = [];
  for (const a of accounts) {
    for (const sym of SYMBOLS) {
      const p = a.positions.get(sym);
      if (!p || p.qty === 0) continue;
      // Entry price for people, rounded to the cent; `cost` is the exact figure.
      const entry = Number((p.cost * 1_000_000n) / BigInt(p.qty)) / 1_000_000;
      positions.push({
        type: 'position',
        id: `${a.id}:${sym}`,
        qty: fmtQty(p.qty),
        entryPrice: fmtPrice(Math.round(entry)),
        marginMode: p.mode,
        isolatedMargin: fmtMoney(p.isolatedMargin),
        cost: fmtMoney(p.cost),
      });
    }
  }
  yield* positions.sort(byId);
}

export function orderRecord(o: Order): SnapshotRecord {
  return {
    type: 'order',
    id: o.id,
    account: o.account,
    symbol: o.symbol,
    side: o.side,
    orderType: o.type,
    price: o.type === 'market' ? null : fmtPrice(o.price),
    qty: fmtQty(o.qty),
    filled: fmtQty(o.filled),
    status: o.status,
    ts: new Date(o.ts).toISOString(),
    tif: o.tif,
    postOnly: o.postOnly,
    reduceOnly: o.reduceOnly,
    marginMode: o.marginMode,
    clientOrderId: o.clientOrderId,
    filledNotional: fmtMoney(o.filledNotional),
  };
}

const str = (v: unknown): string => {
  if (typeof v !== 'string') throw new Error(`expected a decimal string, got ${JSON.stringify(v)}`);
  return v;
};

/** Rebuild an exchange from a snapshot's header and records (the inverse of the two functions above). */
export class SnapshotLoader {
  readonly ex: Exchange;
  private readonly resting: Order[] = [];

  constructor(
    header: SnapshotHeader,
    fallbackFundingMs: number,
    opts: { intervals?: Partial<Record<Symbol, number>>; haltedPremium?: HaltedPremiumPolicy } = {},
  ) {
    const interval = typeof header.fundingIntervalMs === 'number' ? header.fundingIntervalMs : fallbackFundingMs;
    const market = (header.market ?? {}) as Record<string, MarketJson>;
    // The intervals the snapshot was taken with, unless the engine is now started with others.
    const recorded: Partial<Record<Symbol, number>> = {};
    for (const [s, m] of Object.entries(market)) if (isSymbol(s) && typeof m.fundingIntervalMs === 'number') recorded[s] = m.fundingIntervalMs;
    const haltedPremium = header.haltedPremium === 'interest-only' || header.haltedPremium === 'exclude' ? header.haltedPremium : undefined;
    // What the snapshot recorded wins: a start with other flags journals a `config` record after replay.
    this.ex = new Exchange(interval, { intervals: { ...opts.intervals, ...recorded }, haltedPremium: haltedPremium ?? opts.haltedPremium });
    const ex = this.ex;
    ex.phase = header.phase as Phase;
    ex.reason = typeof header.reason === 'string' ? header.reason : null;
    ex.haltedAtSeq = typeof header.haltedAtSeq === 'number' ? header.haltedAtSeq : null;
    ex.haltedAt = typeof header.haltedAt === 'string' ? Date.parse(header.haltedAt) : null;
    ex.haltReason = typeof header.haltReason === 'string' ? header.haltReason : null;
    ex.admissionWeight = typeof header.admissionWeight === 'number' ? header.admissionWeight : 100;
    ex.feedStep = typeof header.feedStep === 'number' ? header.feedStep : 0;
    ex.lastMarksTs = typeof header.lastMarksAt === 'string' ? Date.parse(header.lastMarksAt) : 0;
    ex.nextOrderNum = typeof header.nextOrderNum === 'number' ? header.nextOrderNum : 1;
    ex.lastTs = Date.parse(header.takenAt);
    const marks = (header.marks ?? {}) as Record<string, string>;
    for (const [s, p] of Object.entries(marks)) if (isSymbol(s)) ex.marks.set(s, Number(parseFixed(p, PRICE_DECIMALS)));
    const bm = (header.boundaryMarks ?? {}) as Record<string, Record<string, string>>;
    for (const [iso, prices] of Object.entries(bm)) {
      const m: Partial<Record<Symbol, number>> = {};
      for (const [s, p] of Object.entries(prices)) if (isSymbol(s)) m[s] = Number(parseFixed(p, PRICE_DECIMALS));
      ex.boundaryMarks.set(Date.parse(iso), m);
    }
    const br = (header.boundaryRates ?? {}) as Record<string, Record<string, string>>;
    for (const [iso, rates] of Object.entries(br)) {
      const r: Partial<Record<Symbol, bigint>> = {};
      for (const [s, v] of Object.entries(rates)) if (isSymbol(s)) r[s] = parseFixed(v, RATE_DECIMALS);
      ex.boundaryRates.set(Date.parse(iso), r);
    }
    for (const s of SYMBOLS) loadMarket(ex, s, market[s] ?? {});
    ex.epoch = typeof header.epoch === 'number' ? header.epoch : 0;
    ex.fenced = header.fenced === true;
    ex.epochSince = typeof header.epochSince === 'number' ? header.epochSince : 0;
    ex.fencedByNewer = header.fencedByNewer === true;
    const ins = header.insurance as { fees?: string; realized?: string; funding?: string; covered?: string; deficits?: number } | undefined;
    if (ins) {
      for (const k of ['fees', 'realized', 'funding', 'covered'] as const) ex.insuranceFlows[k] = parseFixed(ins[k] ?? '0', MONEY_DECIMALS);
      ex.insuranceDeficits = typeof ins.deficits === 'number' ? ins.deficits : 0;
    }
    // Snapshots written before holders were recorded have none: those intervals settle over the positions then.
    const bp = (header.boundaryPositions ?? {}) as Record<string, Record<string, [string, string][]>>;
    for (const [iso, bySymbol] of Object.entries(bp)) {
      const h: Partial<Record<Symbol, [string, number][]>> = {};
      for (const [s, holders] of Object.entries(bySymbol)) {
        if (isSymbol(s)) h[s] = holders.map(([id, q]): [string, number] => [id, Number(parseFixed(q, QTY_DECIMALS))]);
      }
      ex.boundaryPositions.set(Date.parse(iso), h);
    }
  }

  add(r: SnapshotRecord): void {
    const ex = this.ex;
    switch (r.type) {
      case 'account': {
        const a = ex.account(r.id);
        const b = r.balances as Record<string, string>;
        a.balances.USDT = parseFixed(str(b.USDT), MONEY_DECIMALS);
        a.balances.USDC = parseFixed(str(b.USDC), MONEY_DECIMALS);
        for (const [s, lev] of Object.entries((r.leverage ?? {}) as Record<string, number>)) if (isSymbol(s) && Number.isInteger(lev)) a.leverage.set(s, lev);
        return;
      }
      case 'funding': {
        const [symbol, iso] = [r.id.slice(0, r.id.indexOf(':')), r.id.slice(r.id.indexOf(':') + 1)];
        if (!isSymbol(symbol)) throw new Error(`funding record ${r.id}: unknown symbol`);
        const intervalStart = Date.parse(iso);
        ex.funding.set(r.id, {
          symbol,
          intervalStart,
          rate: parseFixed(str(r.rate), RATE_DECIMALS),
          markPrice: Number(parseFixed(str(r.markPrice), PRICE_DECIMALS)),
          paid: parseFixed(str(r.paid), MONEY_DECIMALS),
          received: parseFixed(str(r.received ?? r.paid), MONEY_DECIMALS),
        });
        return;
      }
      case 'order': {
        const o: Order = {
          id: r.id,
          num: Number(r.id),
          account: str(r.account),
          symbol: r.symbol as Symbol,
          side: r.side as 'buy' | 'sell',
          type: r.orderType as 'limit' | 'market',
          price: r.price === null ? 0 : Number(parseFixed(str(r.price), PRICE_DECIMALS)),
          qty: Number(parseFixed(str(r.qty), QTY_DECIMALS)),
          filled: Number(parseFixed(str(r.filled), QTY_DECIMALS)),
          filledNotional: parseFixed(str(r.filledNotional ?? '0'), MONEY_DECIMALS),
          status: r.status as OrderStatus,
          ts: Date.parse(str(r.ts)),
          tif: (r.tif ?? 'GTC') as TimeInForce,
          postOnly: r.postOnly === true,
          reduceOnly: r.reduceOnly === true,
          marginMode: (r.marginMode ?? 'cross') as MarginMode,
          clientOrderId: typeof r.clientOrderId === 'string' ? r.clientOrderId : null,
          reservedMargin: 0n,
        };
        ex.orders.set(o.id, o);
        if (o.status === 'open' || o.status === 'partially_filled') this.resting.push(o);
        return;
      }
      case 'position': {
        const sep = r.id.lastIndexOf(':');
        const account = r.id.slice(0, sep);
        const symbol = r.id.slice(sep + 1);
        if (!isSymbol(symbol)) throw new Error(`position ${r.id}: unknown symbol`);
        ex.account(account).positions.set(symbol, {
          qty: Number(parseFixed(str(r.qty), QTY_DECIMALS)),
          cost: parseFixed(str(r.cost), MONEY_DECIMALS),
          mode: (r.marginMode ?? 'cross') as MarginMode,
          isolatedMargin: parseFixed(str(r.isolatedMargin ?? '0'), MONEY_DECIMALS),
        });
        return;
      }
    }
  }

  /** Put resting orders back in the books in time priority. */
  finish(): Exchange {
    for (const o of this.resting.sort((a, b) => a.num - b.num)) {
      this.ex.book(o.symbol).add({ id: o.num, account: o.account, side: o.side, price: o.price, remaining: o.qty - o.filled });
      this.ex.account(o.account).openOrders.add(o.id);
      this.ex.reserveOrderMargin(o);
    }
    return this.ex;
  }
}

interface MarketJson {
  index?: string;
  lastPrice?: string | null;
  basis?: [string, number][];
  premium?: { sum: string; weights: string; samples: number };
  lastRate?: string | null;
  fundingIntervalMs?: number;
}

/** One symbol's market state from a snapshot header (older snapshots have none: index = mark, no samples). */
function loadMarket(ex: Exchange, s: Symbol, m: MarketJson): void {
  const state = ex.marketOf(s);
  state.index = typeof m.index === 'string' ? Number(parseFixed(m.index, PRICE_DECIMALS)) : ex.mark(s);
  state.lastPrice = typeof m.lastPrice === 'string' ? Number(parseFixed(m.lastPrice, PRICE_DECIMALS)) : null;
  state.basis = (m.basis ?? []).map(([iso, basis]) => ({ ts: Date.parse(iso), basis }));
  if (m.premium) {
    state.premiumSum = parseFixed(m.premium.sum, RATE_DECIMALS);
    state.premiumWeights = BigInt(m.premium.weights);
    state.premiumSamples = m.premium.samples;
  }
  if (typeof m.lastRate === 'string') ex.lastRates.set(s, parseFixed(m.lastRate, RATE_DECIMALS));
}
