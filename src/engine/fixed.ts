/**
 * Fixed-point amounts. Prices are integers of 0.01, quantities integers of 0.000001, money (collateral,
 * fees, PnL) bigints of 0.00000001, so price x quantity is money exactly. Decimal strings only at the edges.
 */
export const PRICE_DECIMALS = 2;
export const QTY_DECIMALS = 6;
export const MONEY_DECIMALS = 8;
/** Funding rates are integers of 1e-8. */
export const RATE_DECIMALS = 8;
export const RATE_ONE = 100_000_000n;

export class DecimalError extends Error {}

const decimalRe = /^(-)?(\d+)(?:\.(\d+))?$/;

/** Parse a decimal string exactly; more fractional digits than `decimals` is an error, not a rounding. */
export function parseFixed(text: string, decimals: number): bigint {
  if (typeof text !== 'string' || text.length > 40) throw new DecimalError('expected a decimal string');
  const m = decimalRe.exec(text);
  if (!m) throw new DecimalError(`'${text}' is not a decimal number`);
  const frac = m[3] ?? '';
  if (frac.length > decimals) {
    if (/[1-9]/.test(frac.slice(decimals))) throw new DecimalError(`'${text}' has more than ${decimals} decimals`);
  }
  const digits = `${m[2]}${frac.slice(0, decimals).padEnd(decimals, '0')}`;
  const v = BigInt(digits);
  return m[1] ? -v : v;
}

export function formatFixed(v: bigint | number, decimals: number): string {
  let n = typeof v === 'bigint' ? v : BigInt(v);
  const neg = n < 0n;
  if (neg) n = -n;
  const s = n.toString().padStart(decimals + 1, '0');
  const int = s.slice(0, s.length - decimals);
  let frac = decimals ? s.slice(s.length - decimals) : '';
  frac = frac.replace(/0+$/, '');
  return `${neg ? '-' : ''}${int}${frac ? `.${frac}` : ''}`;
}

/** A non-negative safe integer from a decimal string (prices, quantities). */
export function parseUnits(text: string, decimals: number): number {
  const v = parseFixed(text, decimals);
  if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) throw new DecimalError(`'${text}' is out of range`);
  return Number(v);
}

export const fmtPrice = (p: number): string => formatFixed(p, PRICE_DECIMALS);
export const fmtQty = (q: number): string => formatFixed(q, QTY_DECIMALS);
export const fmtMoney = (m: bigint): string => formatFixed(m, MONEY_DECIMALS);
export const fmtRate = (r: bigint): string => formatFixed(r, RATE_DECIMALS);

/** price x qty in money units (exact). */
export function notional(price: number, qty: number): bigint {
  return BigInt(price) * BigInt(qty);
}

/** a * bps / 10000, rounded toward +infinity (fees and margins are never understated). */
export function bpsOf(amount: bigint, bps: number): bigint {
  const n = amount * BigInt(bps);
  return n >= 0n ? (n + 9_999n) / 10_000n : n / 10_000n;
}

export const abs = (v: bigint): bigint => (v < 0n ? -v : v);
