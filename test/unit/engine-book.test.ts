import { describe, expect, it } from 'vitest';
import { OrderBook, type Side } from '../../src/engine/book.js';
import { rng } from '../../src/engine/feed.js';

/** The obvious, slow model of a price-time book, to check the fast one against. */
class ReferenceBook {
  orders: { id: number; side: Side; price: number; remaining: number }[] = [];
  match(side: Side, limit: number | undefined, qty: number): { id: number; qty: number; price: number }[] {
    const fills: { id: number; qty: number; price: number }[] = [];
    const opposite = this.orders
      .filter((o) => o.side !== side && o.remaining > 0)
      .sort((a, b) => (side === 'buy' ? a.price - b.price : b.price - a.price) || a.id - b.id);
    let left = qty;
    for (const o of opposite) {
      if (left === 0) break;
      if (limit !== undefined && (side === 'buy' ? o.price > limit : o.price < limit)) break;
      const q = Math.min(left, o.remaining);
      o.remaining -= q;
      left -= q;
      fills.push({ id: o.id, qty: q, price: o.price });
    }
    return fills;
  }
}

describe('order book', () => {
  it('fills best price first, then oldest first, and rests the remainder', () => {
    const book = new OrderBook();
    book.add({ id: 1, account: 'a', side: 'sell', price: 101, remaining: 5 });
    book.add({ id: 2, account: 'b', side: 'sell', price: 100, remaining: 5 });
    book.add({ id: 3, account: 'c', side: 'sell', price: 100, remaining: 5 });
    const fills: [number, number, number][] = [];
    const left = book.match('buy', 101, 12, (m, q, p) => fills.push([m.id, q, p]));
    expect(fills).toEqual([
      [2, 5, 100],
      [3, 5, 100],
      [1, 2, 101],
    ]);
    expect(left).toBe(0);
    expect(book.depth('sell')).toEqual([{ price: 101, qty: 3, orders: 1 }]);
  });

  it('never trades through a limit, and cancels take an order out of the queue', () => {
    const book = new OrderBook();
    book.add({ id: 1, account: 'a', side: 'buy', price: 99, remaining: 5 });
    book.add({ id: 2, account: 'a', side: 'buy', price: 98, remaining: 5 });
    expect(book.cancel(1)?.remaining).toBe(5);
    expect(book.cancel(1)).toBeUndefined();
    const fills: number[] = [];
    expect(book.match('sell', 99, 3, (m) => fills.push(m.id))).toBe(3);
    expect(fills).toEqual([]);
    expect(book.bestBid()).toBe(98);
  });

  it.each([1, 2, 3, 4, 5])('matches exactly like the reference model on seeded random flow (seed %i)', (seed) => {
    const r = rng(seed);
    const book = new OrderBook();
    const ref = new ReferenceBook();
    let id = 0;
    for (let i = 0; i < 4_000; i++) {
      const side: Side = r() < 0.5 ? 'buy' : 'sell';
      const price = 1000 + Math.floor(r() * 40) - 20;
      const qty = 1 + Math.floor(r() * 10);
      const action = r();
      if (action < 0.15 && id > 0) {
        const victim = 1 + Math.floor(r() * id);
        const a = book.cancel(victim);
        const refOrder = ref.orders.find((o) => o.id === victim && o.remaining > 0);
        expect(a?.remaining ?? 0).toBe(refOrder?.remaining ?? 0);
        if (refOrder) refOrder.remaining = 0;
        continue;
      }
      id++;
      const limit = action < 0.25 ? undefined : price;
      const got: { id: number; qty: number; price: number }[] = [];
      const left = book.match(side, limit, qty, (m, q, p) => got.push({ id: m.id, qty: q, price: p }));
      const want = ref.match(side, limit, qty);
      expect(got).toEqual(want);
      if (limit !== undefined && left > 0) {
        book.add({ id, account: 'x', side, price, remaining: left });
        ref.orders.push({ id, side, price, remaining: left });
      }
      const bestBid = Math.max(...ref.orders.filter((o) => o.side === 'buy' && o.remaining > 0).map((o) => o.price));
      expect(book.bestBid() ?? -Infinity).toBe(bestBid);
    }
  });
});
