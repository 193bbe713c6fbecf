/** Counters, gauges and a latency histogram, rendered in the Prometheus text format. */
import { fmtPrice, fmtQty, formatFixed } from './fixed.js';

const LATENCY_BUCKETS_MS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000];

export class Histogram {
  readonly counts = new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);
  sum = 0;
  count = 0;
  observe(ms: number): void {
    let i = 0;
    while (i < LATENCY_BUCKETS_MS.length && ms > (LATENCY_BUCKETS_MS[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += ms;
    this.count++;
  }
  render(name: string, help: string): string[] {
    const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`];
    let cumulative = 0;
    LATENCY_BUCKETS_MS.forEach((le, i) => {
      cumulative += this.counts[i] as number;
      lines.push(`${name}_bucket{le="${le / 1000}"} ${cumulative}`);
    });
    cumulative += this.counts[LATENCY_BUCKETS_MS.length] as number;
    lines.push(`${name}_bucket{le="+Inf"} ${cumulative}`, `${name}_sum ${this.sum / 1000}`, `${name}_count ${this.count}`);
    return lines;
  }
}

export class EngineMetrics {
  ordersIn = 0;
  ordersAccepted = 0;
  readonly rejected = new Map<string, number>();
  fills = 0;
  cancels = 0;
  liquidations = 0;
  readonly matchLatency = new Histogram();

  reject(reason: string): void {
    this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + 1);
  }

  get ordersRejected(): number {
    let n = 0;
    for (const v of this.rejected.values()) n += v;
    return n;
  }

  render(g: { phase: string; queueDepth: number; admissionWeight: number; seq: number; openOrders: number; retainedOrders: number; walSyncs: number }): string {
    const phases = ['halted', 'cancel-only', 'post-only', 'open'];
    const lines: string[] = [
      '# HELP engine_margin_queue_depth Margin recalculations waiting in the margin component.',
      '# TYPE engine_margin_queue_depth gauge',
      `engine_margin_queue_depth ${g.queueDepth}`,
      '# HELP engine_orders_in_total Order requests received.',
      '# TYPE engine_orders_in_total counter',
      `engine_orders_in_total ${this.ordersIn}`,
      '# HELP engine_orders_accepted_total Orders accepted.',
      '# TYPE engine_orders_accepted_total counter',
      `engine_orders_accepted_total ${this.ordersAccepted}`,
      '# HELP engine_orders_rejected_total Orders rejected, by reason.',
      '# TYPE engine_orders_rejected_total counter',
      ...[...this.rejected].sort().map(([r, n]) => `engine_orders_rejected_total{reason="${r}"} ${n}`),
      '# HELP engine_fills_total Trades executed.',
      '# TYPE engine_fills_total counter',
      `engine_fills_total ${this.fills}`,
      '# HELP engine_cancels_total Orders canceled on request.',
      '# TYPE engine_cancels_total counter',
      `engine_cancels_total ${this.cancels}`,
      '# HELP engine_liquidations_total Liquidations.',
      '# TYPE engine_liquidations_total counter',
      `engine_liquidations_total ${this.liquidations}`,
      '# HELP engine_phase Trading phase (1 for the current one).',
      '# TYPE engine_phase gauge',
      ...phases.map((p) => `engine_phase{phase="${p}"} ${p === g.phase ? 1 : 0}`),
      '# HELP engine_admission_weight Share of order flow admitted, 0..100.',
      '# TYPE engine_admission_weight gauge',
      `engine_admission_weight ${g.admissionWeight}`,
      '# HELP engine_wal_seq Last sequence number written to the WAL.',
      '# TYPE engine_wal_seq gauge',
      `engine_wal_seq ${g.seq}`,
      '# HELP engine_wal_syncs_total WAL group commits (one write and fsync each, however many records).',
      '# TYPE engine_wal_syncs_total counter',
      `engine_wal_syncs_total ${g.walSyncs}`,
      '# HELP engine_open_orders Orders resting in the books.',
      '# TYPE engine_open_orders gauge',
      `engine_open_orders ${g.openOrders}`,
      '# HELP engine_orders_retained Orders held in memory, closed ones included (every order since the engine began: snapshots and GET /orders/ID serve them).',
      '# TYPE engine_orders_retained gauge',
      `engine_orders_retained ${g.retainedOrders}`,
      ...this.matchLatency.render('engine_match_latency_seconds', 'Time to decide and match an order.'),
    ];
    return `${lines.join('\n')}\n`;
  }
}

/** The depths `/metrics` exports for each book: the base quantity over the best 1, 5, 10 and 20 price levels of a side. */
export const BOOK_DEPTH_LEVELS = [1, 5, 10, 20] as const;

/** What book-quality gauges read of an order book (src/engine/book.ts's OrderBook): read-only. */
export interface BookQualitySource {
  bestBid(): number | undefined;
  bestAsk(): number | undefined;
  topDepth(side: 'buy' | 'sell', levels: number): number;
}

/**
 * The spread in hundredths of a basis point of the mid price, rounded half away from zero:
 * (ask - bid) / ((ask + bid) / 2) x 10^6, exact in bigint.
 */
export function spreadCentiBps(bid: number, ask: number): bigint {
  const n = BigInt(ask - bid) * 2_000_000n;
  const d = BigInt(ask + bid);
  const half = (n < 0n ? -n : n) * 2n + d;
  return (n < 0n ? -1n : 1n) * (half / (2n * d));
}

/**
 * Book-quality gauges per symbol (issue 13: liquidity after a reopen), appended to `/metrics`. A side with
 * no orders has no `engine_book_best_bid`/`_ask` series, and then there is no `engine_book_spread_bps`
 * series either (absent rather than NaN, so a PromQL `max()` over symbols is not poisoned); its depths are 0.
 */
export function renderBookQuality(books: ReadonlyMap<string, BookQualitySource>): string {
  const bids: string[] = [];
  const asks: string[] = [];
  const spread: string[] = [];
  const depth: string[] = [];
  for (const [symbol, book] of books) {
    const bid = book.bestBid();
    const ask = book.bestAsk();
    if (bid !== undefined) bids.push(`engine_book_best_bid{symbol="${symbol}"} ${fmtPrice(bid)}`);
    if (ask !== undefined) asks.push(`engine_book_best_ask{symbol="${symbol}"} ${fmtPrice(ask)}`);
    if (bid !== undefined && ask !== undefined) spread.push(`engine_book_spread_bps{symbol="${symbol}"} ${formatFixed(spreadCentiBps(bid, ask), 2)}`);
    for (const [side, label] of [
      ['buy', 'bid'],
      ['sell', 'ask'],
    ] as const) {
      for (const levels of BOOK_DEPTH_LEVELS) {
        depth.push(`engine_book_depth{symbol="${symbol}",side="${label}",levels="${levels}"} ${fmtQty(book.topDepth(side, levels))}`);
      }
    }
  }
  const lines = [
    '# HELP engine_book_best_bid Best bid price (absent while the book has no bids).',
    '# TYPE engine_book_best_bid gauge',
    ...bids,
    '# HELP engine_book_best_ask Best ask price (absent while the book has no asks).',
    '# TYPE engine_book_best_ask gauge',
    ...asks,
    '# HELP engine_book_spread_bps Best ask minus best bid, in basis points of the mid price (absent while a side is empty).',
    '# TYPE engine_book_spread_bps gauge',
    ...spread,
    '# HELP engine_book_depth Resting base quantity over the best N price levels of a side.',
    '# TYPE engine_book_depth gauge',
    ...depth,
  ];
  return `${lines.join('\n')}\n`;
}
