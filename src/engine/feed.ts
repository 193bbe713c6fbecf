import { INSTRUMENTS, type Symbol } from './instruments.js';

/** A 32-bit hash of the inputs (FNV-1a then a finaliser), the seed of every deterministic draw. */
export function hash32(...parts: (string | number)[]): number {
  let h = 0x811c9dc5;
  for (const part of parts) {
    const s = String(part);
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    h ^= 0xff;
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A uniform draw in [0, 1) determined by the inputs. */
export function unit(...parts: (string | number)[]): number {
  return hash32(...parts) / 4_294_967_296;
}

export { rng } from '../util/random.js';

/**
 * The index feed: each step moves each symbol's price by at most `maxMoveBps`, drawn from the seed, the
 * symbol and the step number, rounded to the tick. The same seed gives the same path on every machine.
 */
export function nextPrice(seed: number, symbol: Symbol, step: number, price: number, maxMoveBps = 20): number {
  const inst = INSTRUMENTS[symbol];
  const u = unit(seed, symbol, step) * 2 - 1;
  const move = Math.round((price * maxMoveBps * u) / 10_000 / inst.tickSize) * inst.tickSize;
  const next = price + move;
  const floor = Math.max(inst.tickSize, Math.round(inst.basePrice / 10 / inst.tickSize) * inst.tickSize);
  return next < floor ? floor : next;
}
