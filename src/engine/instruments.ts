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
