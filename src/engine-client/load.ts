import { Agent, request } from 'node:http';
import { InternalError } from '../errors.js';
import { rng } from '../util/random.js';
import type { InstrumentView, OrderBody } from './client.js';

/**
 * The seeded traders' account ids, trader-0001 .. trader-N: the same accounts in a rehearsal's scratch
 * engine, in traffic.shift's load and in the drills, so their load and their checks line up.
 */
export function traderAccounts(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `trader-${String(i + 1).padStart(4, '0')}`);
}

export interface LoadStats {
  sent: number;
  accepted: number;
  retryLater: number;
  rejected: number;
  /** Transport failures, 5xx answers, and orders refused because the engine halted. */
  errors: number;
  lastError: string | null;
}

export interface LoadOptions {
  /** The engine's control API: marks are read here. */
  url: string;
  /** Where orders are sent when not to `url`: a gateway (HAProxy, nginx) in front of the engine. */
  orderUrl?: string;
  token: string;
  /** Orders per second to offer (the engine's admission weight decides how many it takes). */
  rate: number;
  accounts: string[];
  seed: number;
  /** The engine's instruments (`await client.instruments()`): the tick and lot the orders are priced on. */
  instruments: InstrumentView[];
  /** The symbols to trade; every one of `instruments` by default. */
  symbols?: string[];
  /** A recorded order flow to replay instead of the synthetic one (cycled). */
  replay?: OrderBody[];
  maxInFlight?: number;
}

/**
 * One instrument's price grid: prices are integers of 10^-scale (scale: the tick's decimal places), so a
 * price a few ticks from the mark is integer arithmetic and prints exactly; the lot is the engine's string.
 */
export interface PriceGrid {
  scale: number;
  /** The tick in units of 10^-scale (1n for "0.1" and for "0.01", 5n for "0.05"). */
  tick: bigint;
  lot: string;
}

const DECIMAL = /^(\d+)(?:\.(\d+))?$/;

/** The grid of an instrument from its decimal strings; a tick that is not a positive decimal is the engine's bug. */
export function priceGrid(inst: InstrumentView): PriceGrid {
  const m = DECIMAL.exec(inst.tickSize);
  const tick = m ? BigInt(`${m[1]}${m[2] ?? ''}`) : 0n;
  if (!m || tick <= 0n || !DECIMAL.test(inst.lotSize) || !/[1-9]/.test(inst.lotSize)) {
    throw new InternalError(
      `instrument ${inst.symbol}: tick ${JSON.stringify(inst.tickSize)} or lot ${JSON.stringify(inst.lotSize)} is not a positive decimal`,
    );
  }
  return { scale: (m[2] ?? '').length, tick, lot: inst.lotSize };
}

/** A non-negative decimal price (a mark) as a whole number of ticks, the nearest one (half up); null if not a decimal. */
export function ticksOf(price: string, g: PriceGrid): bigint | null {
  const m = DECIMAL.exec(price);
  if (!m) return null;
  const frac = m[2] ?? '';
  const scale = Math.max(frac.length, g.scale);
  const units = BigInt(`${m[1]}${frac.padEnd(scale, '0')}`);
  const tick = g.tick * 10n ** BigInt(scale - g.scale);
  return (2n * units + tick) / (2n * tick);
}

/** A whole number of ticks as a decimal price with the tick's decimal places ("60000.1", "3000.00"). */
export function priceOf(ticks: bigint, g: PriceGrid): string {
  const units = ticks * g.tick;
  const digits = (units < 0n ? -units : units).toString().padStart(g.scale + 1, '0');
  const int = digits.slice(0, digits.length - g.scale);
  return `${units < 0n ? '-' : ''}${int}${g.scale > 0 ? `.${digits.slice(digits.length - g.scale)}` : ''}`;
}

/** Where the synthetic flow prices a symbol before the first `/health` answers. */
const FALLBACK_MARK = (symbol: string): string => (symbol.startsWith('BTC') ? '60000' : '3000');

/**
 * The built-in load generator: seeded synthetic makers (post-only limits near the mark), takers (IOC
 * orders through the mark) and cancels, at a target rate over keep-alive HTTP; or a recorded flow.
 * Bounded: at most `maxInFlight` requests at once, and it stops when told to.
 */
export class LoadGenerator {
  private readonly agent: Agent;
  private readonly r: () => number;
  private readonly stats_: LoadStats = { sent: 0, accepted: 0, retryLater: 0, rejected: 0, errors: 0, lastError: null };
  private timer: NodeJS.Timeout | undefined;
  private markTimer: NodeJS.Timeout | undefined;
  private inFlight = 0;
  private started = 0;
  private offered = 0;
  /** The last marks seen, in whole ticks of each symbol's grid. */
  private marks: Record<string, bigint> = {};
  private readonly open: string[] = [];
  private readonly pending = new Set<Promise<void>>();
  private readonly u: URL;
  /** Where orders go: the engine, or a gateway in front of it. */
  private readonly orders: URL;
  private readonly grids = new Map<string, PriceGrid>();
  private readonly symbols: string[];

  constructor(private readonly o: LoadOptions) {
    this.agent = new Agent({ keepAlive: true, maxSockets: o.maxInFlight ?? 64 });
    this.r = rng(o.seed);
    this.u = new URL(o.url);
    this.orders = new URL(o.orderUrl ?? o.url);
    for (const inst of o.instruments) this.grids.set(inst.symbol, priceGrid(inst));
    this.symbols = o.symbols ?? o.instruments.map((i) => i.symbol);
    if (!o.replay?.length) {
      const unknown = this.symbols.filter((s) => !this.grids.has(s));
      if (this.symbols.length === 0 || unknown.length > 0) {
        throw new InternalError(`the load generator has no instrument for ${unknown.length > 0 ? unknown.join(', ') : 'any symbol'}`);
      }
    }
  }

  stats(): LoadStats {
    return { ...this.stats_ };
  }

  private call(
    method: string,
    path: string,
    body?: unknown,
    to: URL = this.u,
  ): Promise<{ status: number; json: Record<string, unknown>; retryAfter: boolean }> {
    return new Promise((resolve, reject) => {
      const text = body === undefined ? '' : JSON.stringify(body);
      const req = request(
        {
          host: to.hostname,
          port: to.port,
          // A gateway URL with a path prefix (http://lb/engine) keeps it: /engine/orders.
          path: `${to.pathname.replace(/\/$/, '')}${path}`,
          method,
          agent: this.agent,
          headers: { authorization: `Bearer ${this.o.token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
        },
        (res) => {
          let out = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (out += c));
          res.on('end', () => {
            const retryAfter = res.headers['retry-after'] !== undefined;
            try {
              resolve({ status: res.statusCode ?? 0, json: out ? (JSON.parse(out) as Record<string, unknown>) : {}, retryAfter });
            } catch {
              resolve({ status: res.statusCode ?? 0, json: {}, retryAfter });
            }
          });
        },
      );
      req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
      req.on('error', reject);
      req.end(text);
    });
  }

  private async refreshMarks(): Promise<void> {
    try {
      const h = await this.call('GET', '/health');
      const marks = h.json.marks as Record<string, string> | undefined;
      if (!marks) return;
      for (const [symbol, price] of Object.entries(marks)) {
        const grid = this.grids.get(symbol);
        const ticks = grid ? ticksOf(price, grid) : null;
        if (ticks !== null) this.marks[symbol] = ticks;
      }
    } catch {
      // the next refresh tries again; order errors are counted where they happen
    }
  }

  private nextOrder(): { method: 'POST'; body: OrderBody } | { method: 'DELETE'; id: string } {
    const n = this.stats_.sent;
    if (this.o.replay?.length) return { method: 'POST', body: this.o.replay[n % this.o.replay.length] as OrderBody };
    const x = this.r();
    if (x < 0.1 && this.open.length > 0) {
      const i = Math.floor(this.r() * this.open.length);
      const id = this.open[i] as string;
      this.open[i] = this.open[this.open.length - 1] as string;
      this.open.pop();
      return { method: 'DELETE', id };
    }
    const symbol = this.symbols[Math.floor(this.r() * this.symbols.length)] as string;
    const grid = this.grids.get(symbol) as PriceGrid; // the constructor checked every symbol has one
    const mark = this.marks[symbol] ?? (ticksOf(FALLBACK_MARK(symbol), grid) as bigint);
    const account = this.o.accounts[Math.floor(this.r() * this.o.accounts.length)] as string;
    const side = this.r() < 0.5 ? 'buy' : 'sell';
    if (x < 0.7) {
      // A maker rests 1..20 ticks away from the mark, on its own side.
      const away = BigInt(1 + Math.floor(this.r() * 20));
      const price = priceOf(side === 'buy' ? mark - away : mark + away, grid);
      return { method: 'POST', body: { account, symbol, side, type: 'limit', price, qty: grid.lot, postOnly: true } };
    }
    // A taker reaches 5 ticks through the mark.
    const price = priceOf(side === 'buy' ? mark + 5n : mark - 5n, grid);
    return { method: 'POST', body: { account, symbol, side, type: 'limit', tif: 'IOC', price, qty: grid.lot } };
  }

  private fire(): void {
    const op = this.nextOrder();
    this.stats_.sent++;
    this.inFlight++;
    const p = (op.method === 'POST' ? this.call('POST', '/orders', op.body, this.orders) : this.call('DELETE', `/orders/${op.id}`, undefined, this.orders))
      .then(({ status, json, retryAfter }) => {
        // A gateway's sorry server (503 with Retry-After) turns the order away as the engine's admission does.
        if (status === 503 && retryAfter) {
          this.stats_.retryLater++;
        } else if (status >= 500) {
          this.stats_.errors++;
          this.stats_.lastError = `HTTP ${status}`;
        } else if (op.method === 'DELETE') {
          this.stats_.accepted++;
        } else if (json.status === 'rejected') {
          if (json.reason === 'RETRY_LATER') this.stats_.retryLater++;
          else if (json.reason === 'PHASE_HALTED') {
            this.stats_.errors++;
            this.stats_.lastError = `PHASE_HALTED: ${String(json.message ?? '')}`;
          } else this.stats_.rejected++;
        } else {
          this.stats_.accepted++;
          if (json.status === 'open' && typeof json.id === 'string' && this.open.length < 10_000) this.open.push(json.id);
        }
      })
      .catch((e: Error) => {
        this.stats_.errors++;
        this.stats_.lastError = e.message;
      })
      .finally(() => {
        this.inFlight--;
        this.pending.delete(p);
      });
    this.pending.add(p);
  }

  start(): void {
    this.started = performance.now();
    void this.refreshMarks();
    this.markTimer = setInterval(() => void this.refreshMarks(), 1_000);
    this.timer = setInterval(() => {
      const due = Math.floor(((performance.now() - this.started) / 1000) * this.o.rate);
      const max = this.o.maxInFlight ?? 64;
      while (this.offered < due && this.inFlight < max) {
        this.offered++;
        this.fire();
      }
      // Offers the engine could not take in time are dropped, not queued: the rate is an upper bound.
      if (this.offered < due) this.offered = due;
    }, 10);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.markTimer) clearInterval(this.markTimer);
    this.timer = undefined;
    this.markTimer = undefined;
    await Promise.allSettled([...this.pending]);
    this.agent.destroy();
  }
}

export type ParsedMetrics = ReturnType<typeof parseMetrics>;

/** Read the Prometheus text the engine serves into the few numbers the gates need. */
export function parseMetrics(text: string): { queueDepth: number; halted: boolean; latencyBuckets: [number, number][]; latencyCount: number } {
  let queueDepth = 0;
  let halted = false;
  let latencyCount = 0;
  const latencyBuckets: [number, number][] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('engine_margin_queue_depth ')) queueDepth = Number(line.split(' ')[1]);
    else if (line.startsWith('engine_phase{phase="halted"} ')) halted = line.endsWith(' 1');
    else if (line.startsWith('engine_match_latency_seconds_bucket{le="')) {
      const le = line.slice(40, line.indexOf('"', 40));
      latencyBuckets.push([le === '+Inf' ? Infinity : Number(le) * 1000, Number(line.slice(line.lastIndexOf(' ') + 1))]);
    } else if (line.startsWith('engine_match_latency_seconds_count ')) latencyCount = Number(line.split(' ')[1]);
  }
  return { queueDepth, halted, latencyBuckets, latencyCount };
}

/** p99 in ms of the observations between two cumulative histograms (the bucket's upper bound). */
export function p99Between(before: [number, number][], after: [number, number][]): number | null {
  const total = (after.at(-1)?.[1] ?? 0) - (before.at(-1)?.[1] ?? 0);
  if (total <= 0) return null;
  const target = Math.ceil(total * 0.99);
  for (let i = 0; i < after.length; i++) {
    const [le, count] = after[i] as [number, number];
    const delta = count - (before[i]?.[1] ?? 0);
    if (delta >= target) return le === Infinity ? (after[i - 1]?.[0] ?? 0) * 2 : le;
  }
  return null;
}
