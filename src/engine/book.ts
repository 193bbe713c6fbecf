/** A price-time-priority limit order book for one symbol. Pure: no I/O, integer prices and quantities. */

export type Side = 'buy' | 'sell';

export interface RestingOrder {
  readonly id: number;
  readonly account: string;
  readonly side: Side;
  readonly price: number;
  remaining: number;
}

interface Level {
  readonly price: number;
  orders: RestingOrder[];
  head: number;
  /** Orders still resting at this level. */
  live: number;
  qty: number;
}

class BookSide {
  /** Best first: descending for bids, ascending for asks. */
  readonly prices: number[] = [];
  readonly levels = new Map<number, Level>();
  constructor(private readonly descending: boolean) {}

  private better(a: number, b: number): boolean {
    return this.descending ? a > b : a < b;
  }

  /** Index where `price` is or would be inserted. */
  private indexOf(price: number): number {
    let lo = 0;
    let hi = this.prices.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.better(this.prices[mid] as number, price)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  level(price: number): Level {
    let l = this.levels.get(price);
    if (!l) {
      l = { price, orders: [], head: 0, live: 0, qty: 0 };
      this.levels.set(price, l);
      this.prices.splice(this.indexOf(price), 0, price);
    }
    return l;
  }

  removeLevel(price: number): void {
    this.levels.delete(price);
    const i = this.indexOf(price);
    if (this.prices[i] === price) this.prices.splice(i, 1);
  }

  best(): Level | undefined {
    const p = this.prices[0];
    return p === undefined ? undefined : this.levels.get(p);
  }
}

/** Self-trade prevention for one incoming order: its account and its mode (Binance's STP modes). */
export interface SelfTrade {
  account: string;
  mode: 'expire-taker' | 'expire-maker' | 'expire-both';
  /** A resting order of the same account taken out of the book unfilled. */
  onExpire(maker: RestingOrder): void;
  /** Set when the taker must stop here: its remainder is expired, not rested. */
  takerExpired?: boolean;
}

export class OrderBook {
  private readonly bids = new BookSide(true);
  private readonly asks = new BookSide(false);
  private readonly byId = new Map<number, RestingOrder>();

  get size(): number {
    return this.byId.size;
  }

  bestBid(): number | undefined {
    return this.bids.prices[0];
  }

  bestAsk(): number | undefined {
    return this.asks.prices[0];
  }

  get(id: number): RestingOrder | undefined {
    return this.byId.get(id);
  }

  /** Would an order on `side` at `price` trade immediately? */
  crosses(side: Side, price: number): boolean {
    const best = side === 'buy' ? this.bestAsk() : this.bestBid();
    return best !== undefined && (side === 'buy' ? price >= best : price <= best);
  }

  /** Rest an order at the back of its price level. The caller has matched it first. */
  add(order: RestingOrder): void {
    if (order.remaining <= 0) return;
    const level = (order.side === 'buy' ? this.bids : this.asks).level(order.price);
    level.orders.push(order);
    level.live++;
    level.qty += order.remaining;
    this.byId.set(order.id, order);
  }

  /**
   * Match an incoming order against the opposite side, best price first, oldest first within a price.
   * `limit` undefined means a market order. Returns the quantity left unfilled. With `self`, a resting
   * order of the taker's own account is never traded against: by the taker's mode the maker is expired
   * (taken out of the book, `onExpire`), the taker stops (`self.takerExpired`), or both.
   */
  match(side: Side, limit: number | undefined, qty: number, onFill: (maker: RestingOrder, qty: number, price: number) => void, self?: SelfTrade): number {
    const opposite = side === 'buy' ? this.asks : this.bids;
    let left = qty;
    while (left > 0 && !self?.takerExpired) {
      const level = opposite.best();
      if (!level) break;
      if (limit !== undefined && (side === 'buy' ? level.price > limit : level.price < limit)) break;
      while (left > 0 && level.head < level.orders.length) {
        const maker = level.orders[level.head] as RestingOrder;
        if (maker.remaining === 0) {
          level.head++;
          continue;
        }
        if (self && maker.account === self.account) {
          if (self.mode !== 'expire-maker') self.takerExpired = true;
          if (self.mode !== 'expire-taker') {
            level.qty -= maker.remaining;
            maker.remaining = 0;
            level.head++;
            level.live--;
            this.byId.delete(maker.id);
            self.onExpire(maker);
          }
          if (self.takerExpired) break;
          continue;
        }
        const q = maker.remaining < left ? maker.remaining : left;
        maker.remaining -= q;
        level.qty -= q;
        left -= q;
        if (maker.remaining === 0) {
          level.head++;
          level.live--;
          this.byId.delete(maker.id);
        }
        onFill(maker, q, level.price);
      }
      if (level.live === 0) opposite.removeLevel(level.price);
      else if (level.head > 64 && level.head * 2 > level.orders.length) {
        level.orders = level.orders.slice(level.head);
        level.head = 0;
      }
    }
    return left;
  }

  /**
   * What an incoming order would fill without changing the book: the quantity and the notional (price x
   * qty, as a bigint) it would take from the opposite side up to `limit` (undefined: no limit).
   */
  sweep(side: Side, limit: number | undefined, qty: number, self?: Pick<SelfTrade, 'account' | 'mode'>): { qty: number; notional: bigint } {
    const opposite = side === 'buy' ? this.asks : this.bids;
    let left = qty;
    let notional = 0n;
    for (const price of opposite.prices) {
      if (left === 0) break;
      if (limit !== undefined && (side === 'buy' ? price > limit : price < limit)) break;
      const level = opposite.levels.get(price) as Level;
      // With self-trade prevention the taker's own orders are passed over (expire-maker) or end the sweep.
      const own = self ? this.ownAt(level, self.account) : 0;
      if (own > 0 && self?.mode !== 'expire-maker') {
        const before = this.beforeOwn(level, self?.account ?? '');
        const q = before < left ? before : left;
        notional += BigInt(price) * BigInt(q);
        left -= q;
        break;
      }
      const available = level.qty - own;
      const q = available < left ? available : left;
      notional += BigInt(price) * BigInt(q);
      left -= q;
    }
    return { qty: qty - left, notional };
  }

  /** Quantity an account rests at a level. */
  private ownAt(level: Level, account: string): number {
    let n = 0;
    for (let i = level.head; i < level.orders.length; i++) {
      const o = level.orders[i] as RestingOrder;
      if (o.account === account) n += o.remaining;
    }
    return n;
  }

  /** Quantity of other accounts ahead of the account's first order at a level. */
  private beforeOwn(level: Level, account: string): number {
    let n = 0;
    for (let i = level.head; i < level.orders.length; i++) {
      const o = level.orders[i] as RestingOrder;
      if (o.account === account) break;
      n += o.remaining;
    }
    return n;
  }

  /** Remove a resting order; returns it (with what was left) or undefined when it is not resting. */
  cancel(id: number): RestingOrder | undefined {
    const order = this.byId.get(id);
    if (!order) return undefined;
    this.byId.delete(id);
    const side = order.side === 'buy' ? this.bids : this.asks;
    const level = side.levels.get(order.price);
    if (level) {
      level.qty -= order.remaining;
      level.live--;
      if (level.live === 0) side.removeLevel(order.price);
    }
    const removed = { ...order };
    order.remaining = 0;
    return removed;
  }

  /** Aggregated depth, best first. */
  depth(side: Side, levels = 10): { price: number; qty: number; orders: number }[] {
    const s = side === 'buy' ? this.bids : this.asks;
    return s.prices.slice(0, levels).map((p) => {
      const l = s.levels.get(p) as Level;
      return { price: p, qty: l.qty, orders: l.live };
    });
  }

  /** Resting quantity on one side over its best `levels` price levels (book-quality metrics). Read-only. */
  topDepth(side: Side, levels: number): number {
    const s = side === 'buy' ? this.bids : this.asks;
    let qty = 0;
    for (let i = 0; i < levels && i < s.prices.length; i++) qty += (s.levels.get(s.prices[i] as number) as Level).qty;
    return qty;
  }

  /** Every resting order in priority order per side (for snapshots and checks). */
  *resting(side: Side): Generator<RestingOrder> {
    const s = side === 'buy' ? this.bids : this.asks;
    for (const p of s.prices) {
      const l = s.levels.get(p) as Level;
      for (let i = l.head; i < l.orders.length; i++) {
        const o = l.orders[i] as RestingOrder;
        if (o.remaining > 0) yield o;
      }
    }
  }
}
