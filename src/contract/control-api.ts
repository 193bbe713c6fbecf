/**
 * The engine's control API (SPEC section 4, docs/engine.md) as types: what `GET /health`, order entry,
 * accounts and faults answer. The engine implements it (src/engine/runtime.ts returns `EngineHealth`) and
 * the client imports it; types (and the one limit both sides enforce), so neither side imports the other's code.
 */

/** The most orders one `POST /orders/batch` takes. */
export const ORDER_BATCH_MAX = 100;

export type EnginePhase = 'halted' | 'cancel-only' | 'post-only' | 'open';

/** Why the engine halted itself; null when it is not halted, or an operator halted it. */
export type EngineHaltCode = 'EXCESS_QUEUE_DEPTH';

export interface EngineHealth {
  phase: EnginePhase;
  reason: string | null;
  /** Set while the engine is halted by its own decision (e.g. `EXCESS_QUEUE_DEPTH`); null otherwise. */
  haltCode: EngineHaltCode | null;
  seq: number;
  modules: Record<string, { active: string; previous: string | null }>;
  queueDepth: number;
  queueLimit: number;
  /** Accounts touched during a halt, recalculated (and liquidated if they must be) before the next phase opens. */
  pendingRecalc: number;
  admissionWeight: number;
  testnet: boolean;
  pid: number;
  haltedAtSeq: number | null;
  haltedAt: string | null;
  haltReason: string | null;
  marks: Record<string, string>;
  /** Index prices per symbol (the mark is derived from them, the book and the last trade). */
  index?: Record<string, string>;
  /** Predicted funding rate of the current interval per symbol, e.g. `"0.0001"`. */
  predictedFundingRates?: Record<string, string>;
  /** Insurance fund balance per asset, and how many liquidations left it below zero. */
  insuranceFund?: Record<string, string>;
  insuranceDeficits?: number;
  /** `primary` takes writes unless `fenced`; a `follower` applies its primary's WAL stream (issue 14). */
  role?: 'primary' | 'follower';
  epoch?: number;
  /** The seq of the record that began this epoch (0 for the first). */
  epochSince?: number;
  fenced?: boolean;
  following?: { primary: string; lagRecords: number; lagMs: number; connected: boolean } | null;
  recovery: { snapshotSeq: number | null; replayed: number; walDamage: { file: string; line: number; reason: string } | null };
  ledger: Record<string, string>;
}

export interface OrderAnswer {
  id: string | null;
  status: 'open' | 'partially_filled' | 'filled' | 'canceled' | 'rejected';
  filled: string;
  avgPrice: string | null;
  reason?: string;
  message?: string;
}

/** `POST /orders/batch`: one entry per order sent, in order; a malformed order is `{ error }`. */
export interface OrderBatchAnswer {
  results: (OrderAnswer | { error: string })[];
}

export interface OrderBody {
  account: string;
  symbol: string;
  side: 'buy' | 'sell';
  type: 'limit' | 'market';
  price?: string;
  qty: string;
  /** GTC rests; IOC fills what it can; FOK fills entirely or is rejected; GTX is a post-only GTC. */
  tif?: 'GTC' | 'IOC' | 'FOK' | 'GTX';
  /** Self-trade prevention, by the taker's mode; default `expire-maker`. */
  stp?: 'none' | 'expire-taker' | 'expire-maker' | 'expire-both';
  postOnly?: boolean;
  reduceOnly?: boolean;
  marginMode?: 'cross' | 'isolated';
  clientOrderId?: string;
}

/** One liquidated position in `GET /liquidations`: quantities signed as the position was (long > 0). */
export interface LiquidationView {
  at: string;
  account: string;
  symbol: string;
  qty: string;
  bankruptcyPrice: string;
  markPrice: string;
  /** What the IOC liquidation order filled in the book, and its notional. */
  book: { qty: string; notional: string };
  /** The liquidation fee paid to the insurance fund. */
  fee: string;
  /** What the insurance fund took over at the bankruptcy price. */
  insurance: { qty: string };
  /** Positions auto-deleveraged at the bankruptcy price, in ranking order (each counterparty's closed quantity, signed). */
  adl: { account: string; qty: string }[];
}

/** `GET /accounts/:id`, and the answer to a deposit: money as decimal strings. */
export interface AccountView {
  id: string;
  balances: { USDT: string; USDC: string };
  positions: { symbol: string; qty: string; cost: string; marginMode: 'cross' | 'isolated'; isolatedMargin: string }[];
  openOrders: string[];
  equity: string;
  maintenanceMargin: string;
  available: string;
  /**
   * Binance's account margin ratio: maintenance margin / margin balance, four places (`"0.2500"` is 25%;
   * 1 or more is liquidation territory); null without maintenance. Numbers before issue 13 were the inverse.
   */
  marginRatio: string | null;
  /** uniMMR = equity / maintenance, four places; null without maintenance. Liquidation at or below 1.05. */
  uniMMR: string | null;
  /** Chosen leverage per symbol (symbols left at the default are not listed). */
  leverage: Record<string, number>;
}

/** The answer to `POST /fault {kind: "margin-burst"}`: the phase after it (the engine may have halted itself). */
export interface MarginBurstAnswer {
  events: number;
  queueDepth: number;
  phase: EngineHealth['phase'];
  reason: string | null;
}

/**
 * One instrument's contract terms as `GET /instruments` serves them: the engine's table, the one source
 * the client side reads (the load generator prices its orders on this tick and lot). Sizes and rates are
 * exact decimal strings, never binary floats. Rates are fractions of notional: `"0.05"` is 5% (500 bps).
 */
export interface InstrumentView {
  symbol: string;
  settleAsset: 'USDT' | 'USDC';
  /** The price grid: every order price is a positive multiple of it, e.g. `"0.1"`. */
  tickSize: string;
  /** The quantity grid: every order quantity is a positive multiple of it, e.g. `"0.001"`. */
  lotSize: string;
  /** Initial margin as a fraction of notional, e.g. `"0.05"`. */
  initialMarginRate: string;
  /** Maintenance margin as a fraction of notional, e.g. `"0.025"`; below it, liquidation. */
  maintenanceMarginRate: string;
  /** Fee of the order that takes liquidity, a fraction of notional, e.g. `"0.0005"`. */
  takerFeeRate: string;
  /** Fee of the resting order that is filled, a fraction of notional, e.g. `"0.0002"`. */
  makerFeeRate: string;
  /** Leverage of an account that has not chosen one (`POST /leverage`). */
  defaultLeverage?: number;
  /** Maintenance brackets by notional: rate, amount deducted and the highest leverage allowed below the cap. */
  brackets?: { notionalCap: string | null; maxLeverage: number; maintenanceMarginRate: string; maintenanceAmount: string }[];
  /** The funding interval, e.g. `"8h"`, and the cap of the funding rate either way, e.g. `"0.0075"`. */
  fundingInterval?: string;
  fundingRateCap?: string;
}

/** The answer to `GET /instruments` (read-only, answered in every phase): every instrument the engine lists. */
export interface InstrumentsAnswer {
  instruments: InstrumentView[];
}

/**
 * Binance portfolio-margin bands of uniMMR (adjusted equity / maintenance): at or below 1.05 liquidation,
 * to 1.2 reduce-only, to 1.5 a warning. The engine's own rule (below maintenance: equity < maintenance)
 * is `wouldLiquidate`.
 */
export type RiskBand = 'liquidation' | 'reduce-only' | 'warning' | 'ok';

/** One account in `GET /risk/preview`. */
export interface RiskAccount {
  account: string;
  /** Cross equity and maintenance margin at the current marks, decimal strings. */
  equity: string;
  maintenance: string;
  /** equity / maintenance to 4 places; null without cross positions. */
  uniMMR: string | null;
  band: RiskBand;
  /** The engine would liquidate it (cross, or one of its isolated positions) if trading opened now. */
  wouldLiquidate: boolean;
  isolatedBelow: string[];
}

/** `GET /risk/preview`: who would be liquidated or restricted at the current marks, before trading opens. */
export interface RiskPreview {
  marks: Record<string, string>;
  /** Accounts with positions that are not `ok` (worst first), and every one the engine would liquidate. */
  accounts: RiskAccount[];
  counts: { accounts: number; wouldLiquidate: number; liquidation: number; reduceOnly: number; warning: number };
}

/** One funding interval settled by `POST /funding/recompute`: the holders at its end, and what each paid or got. */
export interface SettledFundingInterval {
  symbol: string;
  intervalStart: string;
  /** Decimal fraction per interval; longs pay when positive. */
  rate: string;
  /** Price units (0.01) of the mark recorded at the interval's end. */
  markPrice: number;
  paid: string;
  received: string;
  /** Each holder at the funding time: signed quantity, and the amount (negative: paid). */
  holders: { account: string; qty: string; amount: string }[];
}

/** The answer to `POST /funding/recompute {from, to}`. */
export interface FundingRecomputeAnswer {
  intervals: SettledFundingInterval[];
  /** Interval starts without a recorded mark at their end: they cannot be settled. */
  missingMarks: string[];
  totals: Record<string, { paid: string; received: string; net: string }>;
}
