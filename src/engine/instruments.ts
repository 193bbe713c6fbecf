import type { InstrumentView } from '../contract/control-api.js';
import { formatFixed, MONEY_DECIMALS, PRICE_DECIMALS, QTY_DECIMALS, RATE_DECIMALS } from './fixed.js';

export type Asset = 'USDT' | 'USDC';
export const ASSETS: readonly Asset[] = ['USDT', 'USDC'];
export type Symbol = 'BTCUSDT' | 'ETHUSDT' | 'BTCUSDC' | 'ETHUSDC';

/**
 * One maintenance margin bracket: positions with notional below `notionalCap` (money units; the last
 * bracket has none) are held to `mmBps` of notional less `maintenanceAmount`, and may use at most
 * `maxLeverage`. The maintenance amount keeps the margin continuous where brackets meet.
 */
export interface Bracket {
  notionalCap: bigint | null;
  maxLeverage: number;
  mmBps: number;
  maintenanceAmount: bigint;
}

export interface Instrument {
  symbol: Symbol;
  settleAsset: Asset;
  /** In price units (0.01). */
  tickSize: number;
  /** In quantity units (0.000001). */
  lotSize: number;
  /** Leverage of an account that has not chosen one; its initial margin rate is 1 / leverage. */
  defaultLeverage: number;
  /** Basis points of notional at the default leverage (10000 / defaultLeverage). */
  initialMarginBps: number;
  /** The first bracket's maintenance rate, basis points. */
  maintenanceMarginBps: number;
  brackets: readonly Bracket[];
  /** The impact margin notional (money units): 200 units of the settle asset / initial margin rate at the highest leverage. */
  impactNotional: bigint;
  /** The funding rate is capped to ±this (rate units, 1e-8). */
  fundingCap: bigint;
  /** Starting index price, price units. */
  basePrice: number;
}

const MONEY = 100_000_000n;

/** Brackets from (cap in whole units of the settle asset, max leverage, maintenance bps); amounts derived. */
function brackets(rows: [number | null, number, number][]): Bracket[] {
  const out: Bracket[] = [];
  let amount = 0n;
  let prev: [number | null, number, number] | undefined;
  for (const row of rows) {
    // amount_i = amount_(i-1) + cap_(i-1) x (mm_i − mm_(i-1)): the margin is the same either side of a cap.
    if (prev) amount += (BigInt(prev[0] as number) * MONEY * BigInt(row[2] - prev[2])) / 10_000n;
    out.push({ notionalCap: row[0] === null ? null : BigInt(row[0]) * MONEY, maxLeverage: row[1], mmBps: row[2], maintenanceAmount: amount });
    prev = row;
  }
  return out;
}

const BTC_BRACKETS = brackets([
  [250_000, 20, 250],
  [1_000_000, 10, 500],
  [5_000_000, 5, 1_000],
  [null, 2, 2_500],
]);
const ETH_BRACKETS = brackets([
  [100_000, 10, 500],
  [500_000, 5, 1_000],
  [null, 2, 2_500],
]);

function instrument(
  symbol: Symbol,
  settleAsset: Asset,
  tickSize: number,
  lotSize: number,
  basePrice: number,
  table: Bracket[],
  fundingCapBps: number,
): Instrument {
  const first = table[0] as Bracket;
  return {
    symbol,
    settleAsset,
    tickSize,
    lotSize,
    defaultLeverage: first.maxLeverage,
    initialMarginBps: 10_000 / first.maxLeverage,
    maintenanceMarginBps: first.mmBps,
    brackets: table,
    impactNotional: 200n * MONEY * BigInt(first.maxLeverage),
    fundingCap: BigInt(fundingCapBps) * 10_000n,
    basePrice,
  };
}

/**
 * Perpetual contracts: BTC and ETH, settled in USDT and in USDC. The brackets follow the shape of the
 * published USDⓈ-M tables (maintenance rising with notional, leverage falling) at lower leverage than
 * production's 125x, so a rehearsal's small deposits can be liquidated (docs/engine.md).
 */
export const INSTRUMENTS: Readonly<Record<Symbol, Instrument>> = {
  BTCUSDT: instrument('BTCUSDT', 'USDT', 10, 1_000, 6_000_000, BTC_BRACKETS, 75),
  ETHUSDT: instrument('ETHUSDT', 'USDT', 1, 10_000, 300_000, ETH_BRACKETS, 75),
  BTCUSDC: instrument('BTCUSDC', 'USDC', 10, 1_000, 6_000_000, BTC_BRACKETS, 75),
  ETHUSDC: instrument('ETHUSDC', 'USDC', 1, 10_000, 300_000, ETH_BRACKETS, 75),
};

/** The bracket a position of this notional (money units, non-negative) falls in. */
export function bracketOf(inst: Instrument, notional: bigint): Bracket {
  for (const b of inst.brackets) if (b.notionalCap === null || notional < b.notionalCap) return b;
  return inst.brackets[inst.brackets.length - 1] as Bracket;
}

/** Maintenance margin of a position of this notional: notional x rate (rounded up) − the bracket's amount. */
export function maintenanceOf(inst: Instrument, notional: bigint): bigint {
  const b = bracketOf(inst, notional);
  const n = notional * BigInt(b.mmBps);
  return (n + 9_999n) / 10_000n - b.maintenanceAmount;
}

/** Initial margin at a leverage, never below what the notional's bracket allows: notional / min(leverage, bracket max), rounded up. */
export function initialOf(inst: Instrument, notional: bigint, leverage: number): bigint {
  const lev = BigInt(Math.min(leverage, bracketOf(inst, notional).maxLeverage));
  return (notional + lev - 1n) / lev;
}

export const SYMBOLS = Object.keys(INSTRUMENTS) as Symbol[];

export function isSymbol(s: unknown): s is Symbol {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(INSTRUMENTS, s);
}
export function isAsset(s: unknown): s is Asset {
  return s === 'USDT' || s === 'USDC';
}

/** Taker and maker fees, basis points of notional. */
export const TAKER_FEE_BPS = 5;
export const MAKER_FEE_BPS = 2;

/** Basis points as a fraction: 1 bp is 0.0001. */
const BPS_DECIMALS = 4;

/** One instrument as the control API shows it: integer units turned into exact decimal strings. */
export function instrumentView(inst: Instrument, fundingIntervalMs?: number): InstrumentView {
  return {
    symbol: inst.symbol,
    settleAsset: inst.settleAsset,
    tickSize: formatFixed(inst.tickSize, PRICE_DECIMALS),
    lotSize: formatFixed(inst.lotSize, QTY_DECIMALS),
    initialMarginRate: formatFixed(inst.initialMarginBps, BPS_DECIMALS),
    maintenanceMarginRate: formatFixed(inst.maintenanceMarginBps, BPS_DECIMALS),
    takerFeeRate: formatFixed(TAKER_FEE_BPS, BPS_DECIMALS),
    makerFeeRate: formatFixed(MAKER_FEE_BPS, BPS_DECIMALS),
    defaultLeverage: inst.defaultLeverage,
    brackets: inst.brackets.map((b) => ({
      notionalCap: b.notionalCap === null ? null : formatFixed(b.notionalCap, MONEY_DECIMALS),
      maxLeverage: b.maxLeverage,
      maintenanceMarginRate: formatFixed(b.mmBps, BPS_DECIMALS),
      maintenanceAmount: formatFixed(b.maintenanceAmount, MONEY_DECIMALS),
    })),
    ...(fundingIntervalMs === undefined ? {} : { fundingInterval: durationText(fundingIntervalMs) }),
    fundingRateCap: formatFixed(inst.fundingCap, RATE_DECIMALS),
  };
}

/** A duration as the engine's flags write it: 8h, 30m, 15s or 500ms. */
export function durationText(ms: number): string {
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const)
    if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

/** `GET /instruments`: every instrument, in the table's order. */
export function instrumentViews(intervalOf?: (s: Symbol) => number): InstrumentView[] {
  return SYMBOLS.map((symbol) => instrumentView(INSTRUMENTS[symbol], intervalOf?.(symbol)));
}
