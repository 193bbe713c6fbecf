import type { InstrumentView } from '../contract/control-api.js';
import { formatFixed, PRICE_DECIMALS, QTY_DECIMALS } from './fixed.js';

export type Asset = 'USDT' | 'USDC';
export const ASSETS: readonly Asset[] = ['USDT', 'USDC'];
export type Symbol = 'BTCUSDT' | 'ETHUSDT' | 'BTCUSDC' | 'ETHUSDC';

export interface Instrument {
  symbol: Symbol;
  settleAsset: Asset;
  /** In price units (0.01). */
  tickSize: number;
  /** In quantity units (0.000001). */
  lotSize: number;
  /** Basis points of notional. */
  initialMarginBps: number;
  maintenanceMarginBps: number;
  /** Starting index price, price units. */
  basePrice: number;
}

/** Perpetual contracts: BTC and ETH, settled in USDT and in USDC. */
export const INSTRUMENTS: Readonly<Record<Symbol, Instrument>> = {
  BTCUSDT: { symbol: 'BTCUSDT', settleAsset: 'USDT', tickSize: 10, lotSize: 1_000, initialMarginBps: 500, maintenanceMarginBps: 250, basePrice: 6_000_000 },
  ETHUSDT: { symbol: 'ETHUSDT', settleAsset: 'USDT', tickSize: 1, lotSize: 10_000, initialMarginBps: 1_000, maintenanceMarginBps: 500, basePrice: 300_000 },
  BTCUSDC: { symbol: 'BTCUSDC', settleAsset: 'USDC', tickSize: 10, lotSize: 1_000, initialMarginBps: 500, maintenanceMarginBps: 250, basePrice: 6_000_000 },
  ETHUSDC: { symbol: 'ETHUSDC', settleAsset: 'USDC', tickSize: 1, lotSize: 10_000, initialMarginBps: 1_000, maintenanceMarginBps: 500, basePrice: 300_000 },
};
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
export function instrumentView(inst: Instrument): InstrumentView {
  return {
    symbol: inst.symbol,
    settleAsset: inst.settleAsset,
    tickSize: formatFixed(inst.tickSize, PRICE_DECIMALS),
    lotSize: formatFixed(inst.lotSize, QTY_DECIMALS),
    initialMarginRate: formatFixed(inst.initialMarginBps, BPS_DECIMALS),
    maintenanceMarginRate: formatFixed(inst.maintenanceMarginBps, BPS_DECIMALS),
    takerFeeRate: formatFixed(TAKER_FEE_BPS, BPS_DECIMALS),
    makerFeeRate: formatFixed(MAKER_FEE_BPS, BPS_DECIMALS),
  };
}

/** `GET /instruments`: every instrument, in the table's order. */
export function instrumentViews(): InstrumentView[] {
  return SYMBOLS.map((symbol) => instrumentView(INSTRUMENTS[symbol]));
}
