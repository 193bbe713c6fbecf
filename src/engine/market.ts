import type { OrderBook } from './book.js';
import { RATE_ONE } from './fixed.js';

/**
 * Market data as a USDⓈ-M exchange derives it from the index and its own book: the premium index, the
 * funding rate and the mark price. Pure functions over integers (prices in 0.01, rates in 1e-8); the
 * exchange keeps one `MarketState` per symbol and journals nothing of this: it is all derived from the
 * WAL's records, so replay rebuilds it exactly. docs/engine.md states each rule and its source.
 */

/** The interest component of funding: 0.03% a day, so 0.01% per 8h interval (rate units, 1e-8). */
export const INTEREST_PER_DAY = 30_000n;
/** The premium may move the rate at most this far from the interest rate: ±0.05% (rate units). */
export const CLAMP = 50_000n;
/** How far back the moving-average basis of the mark price looks. */
export const BASIS_WINDOW_MS = 30 * 60_000;
const DAY_MS = 86_400_000n;

/** What premium samples taken while trading is halted count as: dropped, or a premium of zero. */
export type HaltedPremiumPolicy = 'exclude' | 'interest-only';

export interface MarketState {
  /** The index price (the feed, or a testnet's `POST /testnet/index`). */
  index: number;
  /** The last traded price; null until this symbol trades. */
  lastPrice: number | null;
  /** (time, mid − index) samples of the last BASIS_WINDOW_MS, oldest first, taken while trading. */
  basis: { ts: number; basis: number }[];
  /** Time-weighted premium samples of the current funding interval: sample i has weight i. */
  premiumSum: bigint;
  premiumWeights: bigint;
  premiumSamples: number;
}

export function newMarketState(index: number): MarketState {
  return { index, lastPrice: null, basis: [], premiumSum: 0n, premiumWeights: 0n, premiumSamples: 0 };
}

/** The interest rate of one funding interval of `intervalMs` (rounded down to 1e-8). */
export function interestRate(intervalMs: number): bigint {
  return (INTEREST_PER_DAY * BigInt(intervalMs)) / DAY_MS;
}

/**
 * The average price of filling `impactNotional` (money units) against one side of the book: selling
 * into the bids gives the impact bid, buying from the asks the impact ask. Null when that side cannot
 * fill it. Rounded down (bid) or up (ask), so a thin book never looks tighter than it is.
 */
export function impactPrice(book: OrderBook, against: 'bids' | 'asks', impactNotional: bigint): number | null {
  let need = impactNotional;
  // The filled quantity as a fraction: fullQty + need / lastPrice, kept exact as (fullQty x lastPrice + rest) / lastPrice.
  let fullQty = 0n;
  for (const level of book.depth(against === 'bids' ? 'buy' : 'sell', Number.MAX_SAFE_INTEGER)) {
    const price = BigInt(level.price);
    const levelNotional = price * BigInt(level.qty);
    if (levelNotional < need) {
      need -= levelNotional;
      fullQty += BigInt(level.qty);
      continue;
    }
    // avg = impactNotional / (fullQty + need / price) = impactNotional x price / (fullQty x price + need)
    const num = impactNotional * price;
    const den = fullQty * price + need;
    return Number(against === 'bids' ? num / den : (num + den - 1n) / den);
  }
  return null;
}

/**
 * One premium index sample, rate units: (max(0, impact bid − index) − max(0, index − impact ask)) / index.
 * A side too thin to fill the impact notional contributes nothing. Rounded toward zero.
 */
export function premiumSample(index: number, impactBid: number | null, impactAsk: number | null): bigint {
  const up = impactBid !== null && impactBid > index ? impactBid - index : 0;
  const down = impactAsk !== null && impactAsk < index ? index - impactAsk : 0;
  return (BigInt(up - down) * RATE_ONE) / BigInt(index);
}

/** Add one premium sample (weight = its position in the interval, so later samples count more). */
export function addPremium(m: MarketState, sample: bigint): void {
  m.premiumSamples++;
  const w = BigInt(m.premiumSamples);
  m.premiumSum += sample * w;
  m.premiumWeights += w;
}

/** The time-weighted average premium of the interval so far (zero without samples). */
export function averagePremium(m: MarketState): bigint {
  return m.premiumWeights === 0n ? 0n : m.premiumSum / m.premiumWeights;
}

/** F = P + clamp(I − P, −0.05%, +0.05%), then capped to ±cap. */
export function fundingRateOf(avgPremium: bigint, interest: bigint, cap: bigint): bigint {
  const d = interest - avgPremium;
  const clamped = d > CLAMP ? CLAMP : d < -CLAMP ? -CLAMP : d;
  const f = avgPremium + clamped;
  return f > cap ? cap : f < -cap ? -cap : f;
}

/** Drop basis samples older than the window and add this one (only when both sides of the book exist). */
export function sampleBasis(m: MarketState, ts: number, book: OrderBook): void {
  while (m.basis.length > 0 && (m.basis[0] as { ts: number }).ts <= ts - BASIS_WINDOW_MS) m.basis.shift();
  const bid = book.bestBid();
  const ask = book.bestAsk();
  if (bid === undefined || ask === undefined) return;
  // Mid in half-cents would not be a price: the mid is rounded down to the 0.01 grid.
  m.basis.push({ ts, basis: Math.floor((bid + ask) / 2) - m.index });
}

/** The moving-average basis over the window (zero without samples), rounded toward zero. */
export function averageBasis(m: MarketState, now: number): number {
  let sum = 0;
  let n = 0;
  for (const s of m.basis) {
    if (s.ts <= now - BASIS_WINDOW_MS) continue;
    sum += s.basis;
    n++;
  }
  return n === 0 ? 0 : Math.trunc(sum / n);
}

/**
 * Mark = median(index × (1 + rate × time to funding / interval), index + moving-average basis, last
 * price), on the tick grid (the last price is the index until the symbol trades).
 */
export function markPriceOf(m: MarketState, opts: { rate: bigint; msToFunding: number; intervalMs: number; now: number; tick: number }): number {
  const p1 = m.index + Number((BigInt(m.index) * opts.rate * BigInt(opts.msToFunding)) / (RATE_ONE * BigInt(opts.intervalMs)));
  const p2 = m.index + averageBasis(m, opts.now);
  const p3 = m.lastPrice ?? m.index;
  const [, median] = [p1, p2, p3].sort((a, b) => a - b) as [number, number, number];
  const onGrid = Math.round(median / opts.tick) * opts.tick;
  return onGrid > 0 ? onGrid : opts.tick;
}
