import { Agent, request } from 'node:http';
import { InternalError } from '../errors.js';
import { rng } from '../util/random.js';
import { ORDER_BATCH_MAX } from '../contract/control-api.js';
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
  /** Transport failures, 5xx answers, orders refused as requests (4xx), and orders refused because the engine halted. */
  errors: number;
  lastError: string | null;
  /** With `makers`: how many of the market makers are back (quoting) so far. */
  makersPresent?: number;
  /** With `stops`: how many stop levels the mark has crossed so far (each counted once). */
  stopsTriggered?: number;
}

/**
 * Market makers that come back gradually after a reopen (issue 13). Every field is given: the defaults
 * a playbook sees are traffic.shift's (`load.makers`), with the ramp scaled in a rehearsal.
 */
export interface MakerOptions {
  /** How many makers there are once all are back. */
  count: number;
  /** From the start of the load (the reopen) until the last maker is back and spreads are at their narrowest. */
  rampMs: number;
  /** The market's spread at the reopen and at the end of the ramp, basis points of the mark. */
  startSpreadBps: number;
  endSpreadBps: number;
  /** Price levels each maker quotes on each side. */
  levels: number;
  /** Size of each quote, in lots of the instrument. */
  lots: number;
  /** How often each maker quotes again around the mark. */
  refreshMs: number;
}

/**
 * Stop orders traders hold (issue 13). Client side: the engine has no stop orders of its own, so the
 * generator keeps the levels and sends a market order when the mark crosses one.
 */
export interface StopOptions {
  /** Stop levels each trader holds on each symbol. */
  perTrader: number;
  /** Levels sit up to this far from the reference (sell stops below it, buy stops above), basis points. */
  rangeBps: number;
  /**
   * Without `reference`: how far the mark moved while trading was halted, basis points. The stops were set
   * around the first mark seen moved back by it (the direction seeded per symbol), so the levels between
   * that and the reopen's mark trigger at once: the cluster at the reopen.
   */
  gapBps: number;
  /** The marks the stops were set around (e.g. those at the halt), decimal strings by symbol. */
  reference?: Record<string, string>;
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
  /**
   * Orders due together go as one `POST /orders/batch` (up to 100, answered one by one): 5 to 7 times the
   * orders a second of one request each (bench/engine). Default true; an endpoint that has no batch route
   * (404, 405: an older engine, a gateway that routes only /orders) turns it off for the rest of the run.
   */
  batch?: boolean;
  /** Market makers returning after the reopen; without it, none (the synthetic flow only). */
  makers?: MakerOptions;
  /** Traders' stop levels, triggered as market orders; without it, none. */
  stops?: StopOptions;
  /** Milliseconds on a monotonic clock: the rate, the makers' ramp and their quoting are timed on it (default performance.now). */
  now?: () => number;
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

/** An HTTP answer: its status, its JSON body ({} when there is none), and whether it said when to retry. */
interface Answer {
  status: number;
  json: Record<string, unknown>;
  retryAfter: boolean;
}

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

/** `lots` lots of the grid's lot size as an exact decimal quantity ("0.005" for 5 x "0.001"). */
export function lotsOf(lots: number, g: PriceGrid): string {
  const m = DECIMAL.exec(g.lot);
  const frac = m?.[2] ?? '';
  const digits = (BigInt(`${m?.[1] ?? '0'}${frac}`) * BigInt(lots)).toString().padStart(frac.length + 1, '0');
  return frac ? `${digits.slice(0, digits.length - frac.length)}.${digits.slice(digits.length - frac.length)}` : digits;
}

/** A seed of its own for one part of the flow (FNV-1a over the names), so turning one part on leaves the others' draws alone. */
function streamSeed(seed: number, ...names: string[]): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (const c of names.join('/')) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}

/** Basis points of a price in whole ticks, to 1/100 bp, rounded down. */
function bpsInTicks(ticks: bigint, bps: number): bigint {
  return (ticks * BigInt(Math.round(bps * 100))) / 1_000_000n;
}

/** One market maker: the account it quotes from, when it comes back, and how much wider than the market it quotes. */
export interface MakerPlan {
  account: string;
  /** Milliseconds after the reopen when it quotes first. */
  returnsAtMs: number;
  /** Its spread over the market's spread, 1 to 1.5. */
  width: number;
}

/**
 * The makers of a seed. The first is back at the reopen (the book has a quote to measure at once); each
 * other one at a seeded moment in its own slice of the ramp, so their number grows across it. Maker i
 * quotes from `accounts[i]` (cycled), which must hold the margin for its quotes.
 */
export function makerPlans(o: Pick<MakerOptions, 'count' | 'rampMs'>, accounts: readonly string[], seed: number): MakerPlan[] {
  const r = rng(streamSeed(seed, 'makers'));
  return Array.from({ length: o.count }, (_, i) => {
    const slot = r();
    const width = 1 + r() / 2;
    const returnsAtMs = i === 0 ? 0 : Math.floor((Math.max(0, o.rampMs) * (i - 1 + slot)) / (o.count - 1));
    return { account: accounts[i % accounts.length] as string, returnsAtMs, width };
  });
}

/** How many makers quote `elapsedMs` after the reopen. */
export function makersPresent(plans: readonly MakerPlan[], elapsedMs: number): number {
  return plans.filter((p) => p.returnsAtMs <= elapsedMs).length;
}

/**
 * The market's spread `elapsedMs` after the reopen, basis points: from `startSpreadBps` down to
 * `endSpreadBps` geometrically over the ramp (halfway, the geometric mean), then flat.
 */
export function rampSpreadBps(o: Pick<MakerOptions, 'rampMs' | 'startSpreadBps' | 'endSpreadBps'>, elapsedMs: number): number {
  const progress = o.rampMs > 0 ? Math.min(1, Math.max(0, elapsedMs / o.rampMs)) : 1;
  return o.startSpreadBps * (o.endSpreadBps / o.startSpreadBps) ** progress;
}

/** Half a spread of `spreadBps` around a mark, in whole ticks, rounded up and at least one tick. */
export function halfSpreadTicks(markTicks: bigint, spreadBps: number): bigint {
  const half = (markTicks * BigInt(Math.round(spreadBps * 100)) + 1_999_999n) / 2_000_000n;
  return half < 1n ? 1n : half;
}

/**
 * A maker's quotes around the mark, best first: `levels` bids below it and asks above it, the best half
 * the spread away, each further level `1/levels` of that further out (at least a tick).
 */
export function makerLadder(markTicks: bigint, spreadBps: number, levels: number): { bids: bigint[]; asks: bigint[] } {
  const half = halfSpreadTicks(markTicks, spreadBps);
  const bids: bigint[] = [];
  const asks: bigint[] = [];
  let away = 0n;
  for (let k = 0; k < levels; k++) {
    const next = half + (half * BigInt(k)) / BigInt(levels);
    away = next > away ? next : away + 1n;
    if (markTicks - away > 0n) bids.push(markTicks - away);
    asks.push(markTicks + away);
  }
  return { bids, asks };
}

/** A stop a trader holds on the client side: the engine has no stop orders. */
export interface StopLevel {
  account: string;
  symbol: string;
  /** A sell stop sits below the price it was set at and triggers at or below its level; a buy stop the other way. */
  side: 'buy' | 'sell';
  /** A stop-loss closes a position (its market order is reduce-only); a stop-entry opens one. */
  kind: 'stop-loss' | 'stop-entry';
  triggerTicks: bigint;
  lots: number;
}

/**
 * Where a symbol's stops were set when no reference is given: the first mark seen moved back by `gapBps`,
 * up or down by the seed. The mark moved that far while trading was halted.
 */
export function gapReference(markTicks: bigint, gapBps: number, seed: number, symbol: string): bigint {
  const gap = bpsInTicks(markTicks, gapBps);
  return rng(streamSeed(seed, 'gap', symbol))() < 0.5 ? markTicks - gap : markTicks + gap;
}

/**
 * The stops of one symbol, set when the mark was at `referenceTicks`: `perTrader` per account, each a
 * seeded side, kind, size (1-3 lots) and distance (up to `rangeBps`, at least a tick) from the reference,
 * sell stops below it and buy stops above it, so none is triggered at the reference itself.
 */
export function placeStops(o: {
  accounts: readonly string[];
  symbol: string;
  referenceTicks: bigint;
  perTrader: number;
  rangeBps: number;
  seed: number;
}): StopLevel[] {
  const r = rng(streamSeed(o.seed, 'stops', o.symbol));
  const stops: StopLevel[] = [];
  for (const account of o.accounts) {
    for (let k = 0; k < o.perTrader; k++) {
      const side = r() < 0.5 ? 'buy' : 'sell';
      const kind = r() < 0.5 ? 'stop-loss' : 'stop-entry';
      const away = bpsInTicks(o.referenceTicks, r() * o.rangeBps);
      const distance = away < 1n ? 1n : away;
      const triggerTicks = side === 'sell' ? o.referenceTicks - distance : o.referenceTicks + distance;
      stops.push({ account, symbol: o.symbol, side, kind, triggerTicks, lots: 1 + Math.floor(r() * 3) });
    }
  }
  return stops;
}

/** Has the mark crossed the stop's level: at or below a sell stop, at or above a buy stop. */
export function stopTriggered(stop: Pick<StopLevel, 'side' | 'triggerTicks'>, markTicks: bigint): boolean {
  return stop.side === 'sell' ? markTicks <= stop.triggerTicks : markTicks >= stop.triggerTicks;
}

/** The market order a triggered stop sends. */
export function stopOrder(stop: StopLevel, g: PriceGrid): OrderBody {
  const body: OrderBody = { account: stop.account, symbol: stop.symbol, side: stop.side, type: 'market', qty: lotsOf(stop.lots, g) };
  return stop.kind === 'stop-loss' ? { ...body, reduceOnly: true } : body;
}

/** What is wrong with the makers' or stops' options, or null: caught at construction, not in a timer. */
export function liquidityProblem(o: Pick<LoadOptions, 'makers' | 'stops'>): string | null {
  const whole = (v: number, min: number): boolean => Number.isInteger(v) && v >= min;
  const m = o.makers;
  if (m) {
    if (!whole(m.count, 1) || !whole(m.levels, 1) || !whole(m.lots, 1)) return 'makers: count, levels and lots must be whole numbers of at least 1';
    if (!(Number.isFinite(m.rampMs) && m.rampMs >= 0 && Number.isFinite(m.refreshMs) && m.refreshMs > 0))
      return 'makers: rampMs must be >= 0 and refreshMs > 0';
    if (!(m.endSpreadBps > 0 && m.startSpreadBps >= m.endSpreadBps && Number.isFinite(m.startSpreadBps)))
      return 'makers: need 0 < endSpreadBps <= startSpreadBps';
  }
  const st = o.stops;
  if (st && !(whole(st.perTrader, 1) && st.rangeBps > 0 && Number.isFinite(st.rangeBps) && st.gapBps >= 0 && Number.isFinite(st.gapBps))) {
    return 'stops: need a whole perTrader of at least 1, rangeBps > 0 and gapBps >= 0';
  }
  return null;
}

/** Where the synthetic flow prices a symbol before the first `/health` answers. */
const FALLBACK_MARK = (symbol: string): string => (symbol.startsWith('BTC') ? '60000' : '3000');

/** A maker's quote is sent again at an unchanged price after this many refreshes (it may have been filled meanwhile). */
const STALE_REFRESHES = 10;

/** How the engine took one request, as the counters count it. */
type Outcome = 'accepted' | 'retry' | 'rejected' | 'error';

/** One request to send: an order or a cancel, and what to do with the engine's answer. */
type Op = ({ method: 'POST'; body: OrderBody } | { method: 'DELETE'; id: string }) & {
  then?: (outcome: Outcome, json: Record<string, unknown>) => void;
};

/** One price level a maker quotes: its resting order, and whether a replacement is on its way. */
interface QuoteSlot {
  id: string | null;
  price: bigint | null;
  at: number;
  pending: boolean;
}

/** A stop level and where it is: waiting for the mark, its market order on its way, or done. */
interface HeldStop {
  stop: StopLevel;
  state: 'armed' | 'sent' | 'done';
  triggered: boolean;
}

/**
 * The built-in load generator: seeded synthetic makers (post-only limits near the mark), takers (IOC
 * orders through the mark) and cancels, at a target rate over keep-alive HTTP; or a recorded flow.
 * With `makers`, market makers that come back over a ramp after the reopen, quoting both sides around
 * the mark ever tighter; with `stops`, traders' stop levels that send market orders when the mark crosses
 * them. Bounded: at most `maxInFlight` requests at once, and it stops when told to.
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
  private replayed = 0;
  /** The last marks seen, in whole ticks of each symbol's grid. */
  private marks: Record<string, bigint> = {};
  private readonly open: string[] = [];
  private readonly pending = new Set<Promise<void>>();
  private readonly u: URL;
  /** Where orders go: the engine, or a gateway in front of it. */
  private readonly orders: URL;
  private readonly grids = new Map<string, PriceGrid>();
  private readonly symbols: string[];
  private readonly clock: () => number;
  /** Makers' quotes and stops' market orders, sent ahead of the synthetic flow. */
  private readonly queue: Op[] = [];
  private readonly makerPlans: MakerPlan[];
  private readonly nextQuoteAt: number[];
  private readonly slots = new Map<string, QuoteSlot>();
  private readonly stopBook = new Map<string, HeldStop[]>();
  private batching: boolean;

  constructor(private readonly o: LoadOptions) {
    this.agent = new Agent({ keepAlive: true, maxSockets: o.maxInFlight ?? 64 });
    this.batching = o.batch ?? true;
    this.r = rng(o.seed);
    this.clock = o.now ?? (() => performance.now());
    this.u = new URL(o.url);
    this.orders = new URL(o.orderUrl ?? o.url);
    for (const inst of o.instruments) this.grids.set(inst.symbol, priceGrid(inst));
    this.symbols = o.symbols ?? o.instruments.map((i) => i.symbol);
    if (!o.replay?.length || o.makers || o.stops) {
      const unknown = this.symbols.filter((s) => !this.grids.has(s));
      if (this.symbols.length === 0 || unknown.length > 0) {
        throw new InternalError(`the load generator has no instrument for ${unknown.length > 0 ? unknown.join(', ') : 'any symbol'}`);
      }
    }
    if ((o.makers || o.stops) && o.accounts.length === 0) throw new InternalError('the load generator has no accounts for its makers and stops');
    const problem = liquidityProblem(o);
    if (problem) throw new InternalError(`the load generator's ${problem}`);
    for (const [symbol, price] of Object.entries(o.stops?.reference ?? {})) {
      const grid = this.grids.get(symbol);
      if (!grid || ticksOf(price, grid) === null)
        throw new InternalError(`stop reference ${symbol} ${JSON.stringify(price)} is not a price of a traded symbol`);
    }
    this.makerPlans = o.makers ? makerPlans(o.makers, o.accounts, o.seed) : [];
    this.nextQuoteAt = this.makerPlans.map((p) => p.returnsAtMs);
    if (o.makers) this.stats_.makersPresent = 0;
    if (o.stops) this.stats_.stopsTriggered = 0;
  }

  stats(): LoadStats {
    return { ...this.stats_ };
  }

  private call(method: string, path: string, body?: unknown, to: URL = this.u): Promise<Answer> {
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
        if (ticks === null) continue;
        this.marks[symbol] = ticks;
        this.checkStops(symbol, ticks);
      }
    } catch {
      // the next refresh tries again; order errors are counted where they happen
    }
  }

  /**
   * The stops of a symbol against a new mark: placed at its first mark, then every armed stop the mark
   * has crossed sends its market order. One the engine turned away (retry later, a transport error) is
   * armed again, so it goes again at the next mark that is still through it.
   */
  private checkStops(symbol: string, mark: bigint): void {
    const o = this.o.stops;
    const grid = this.grids.get(symbol);
    if (!o || !grid || !this.symbols.includes(symbol)) return;
    let held = this.stopBook.get(symbol);
    if (!held) {
      const given = o.reference?.[symbol];
      const referenceTicks = (given === undefined ? null : ticksOf(given, grid)) ?? gapReference(mark, o.gapBps, this.o.seed, symbol);
      const stops = placeStops({ accounts: this.o.accounts, symbol, referenceTicks, perTrader: o.perTrader, rangeBps: o.rangeBps, seed: this.o.seed });
      held = stops.map((stop) => ({ stop, state: 'armed', triggered: false }));
      this.stopBook.set(symbol, held);
    }
    for (const h of held) {
      if (h.state !== 'armed' || !stopTriggered(h.stop, mark)) continue;
      if (!h.triggered) this.stats_.stopsTriggered = (this.stats_.stopsTriggered ?? 0) + 1;
      h.triggered = true;
      h.state = 'sent';
      this.queue.push({
        method: 'POST',
        body: stopOrder(h.stop, grid),
        then: (outcome) => (h.state = outcome === 'retry' || outcome === 'error' ? 'armed' : 'done'),
      });
    }
  }

  /** Every maker that is back and due quotes again around the current marks, at the ramp's spread by now. */
  private quoteMakers(now: number): void {
    const m = this.o.makers;
    if (!m) return;
    const elapsed = now - this.started;
    const spread = rampSpreadBps(m, elapsed);
    this.stats_.makersPresent = makersPresent(this.makerPlans, elapsed);
    this.makerPlans.forEach((plan, i) => {
      if (plan.returnsAtMs > elapsed || (this.nextQuoteAt[i] as number) > elapsed) return;
      let quoted = false;
      for (const symbol of this.symbols) {
        const mark = this.marks[symbol];
        if (mark === undefined) continue;
        this.quote(i, plan, symbol, makerLadder(mark, spread * plan.width, m.levels), now);
        quoted = true;
      }
      // Until the first marks are read there is nothing to quote around: try again at the next tick.
      if (quoted) this.nextQuoteAt[i] = elapsed + m.refreshMs;
    });
  }

  /** Replace a maker's quotes whose price moved (or that are stale): the new one first, the old one canceled once the new rests. */
  private quote(maker: number, plan: MakerPlan, symbol: string, ladder: { bids: bigint[]; asks: bigint[] }, now: number): void {
    const m = this.o.makers as MakerOptions;
    const grid = this.grids.get(symbol) as PriceGrid;
    for (const [side, prices] of [
      ['buy', ladder.bids],
      ['sell', ladder.asks],
    ] as const) {
      prices.forEach((ticks, level) => {
        const key = `${maker}/${symbol}/${side}/${level}`;
        const slot = this.slots.get(key) ?? { id: null, price: null, at: -Infinity, pending: false };
        this.slots.set(key, slot);
        if (slot.pending || (slot.price === ticks && now - slot.at < STALE_REFRESHES * m.refreshMs)) return;
        slot.pending = true;
        const body: OrderBody = { account: plan.account, symbol, side, type: 'limit', price: priceOf(ticks, grid), qty: lotsOf(m.lots, grid), postOnly: true };
        this.queue.push({
          method: 'POST',
          body,
          then: (outcome, json) => {
            slot.pending = false;
            // Turned away (admission, a post-only that would cross): the old quote stays where it was.
            if (outcome !== 'accepted' || json.status !== 'open' || typeof json.id !== 'string') return;
            if (slot.id !== null) this.queue.push({ method: 'DELETE', id: slot.id });
            slot.id = json.id;
            slot.price = ticks;
            slot.at = now;
          },
        });
      });
    }
  }

  private nextOrder(): Op {
    if (this.o.replay?.length) return { method: 'POST', body: this.o.replay[this.replayed++ % this.o.replay.length] as OrderBody };
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
    // With makers, the flow trades around their quotes: limits rest behind them, takers reach through them.
    const reach = this.o.makers ? halfSpreadTicks(mark, rampSpreadBps(this.o.makers, this.clock() - this.started)) : 0n;
    const remember = (outcome: Outcome, json: Record<string, unknown>): void => {
      if (outcome === 'accepted' && json.status === 'open' && typeof json.id === 'string' && this.open.length < 10_000) this.open.push(json.id);
    };
    if (x < 0.7) {
      // A maker rests 1..20 ticks away from the mark, on its own side.
      const away = reach + BigInt(1 + Math.floor(this.r() * 20));
      const price = priceOf(side === 'buy' ? mark - away : mark + away, grid);
      return { method: 'POST', body: { account, symbol, side, type: 'limit', price, qty: grid.lot, postOnly: true }, then: remember };
    }
    // A taker reaches 5 ticks through the mark.
    const price = priceOf(side === 'buy' ? mark + reach + 5n : mark - reach - 5n, grid);
    return { method: 'POST', body: { account, symbol, side, type: 'limit', tif: 'IOC', price, qty: grid.lot }, then: remember };
  }

  /** Count an answer the way the stats say. */
  private count(op: Op, { status, json, retryAfter }: Answer): Outcome {
    // A gateway's sorry server (503 with Retry-After) turns the order away as the engine's admission does.
    if (status === 503 && retryAfter) {
      this.stats_.retryLater++;
      return 'retry';
    }
    // An order refused as a request (a wrong token, no such route): the engine decided nothing. A cancel's
    // 404 or 409 is a race with a fill, not an error.
    if (status >= 500 || (op.method === 'POST' && status >= 400)) {
      this.stats_.errors++;
      this.stats_.lastError = `HTTP ${status}`;
      return 'error';
    }
    if (op.method === 'POST' && json.status === 'rejected') {
      if (json.reason === 'RETRY_LATER') {
        this.stats_.retryLater++;
        return 'retry';
      }
      if (json.reason === 'PHASE_HALTED') {
        this.stats_.errors++;
        this.stats_.lastError = `PHASE_HALTED: ${String(json.message ?? '')}`;
        return 'error';
      }
      this.stats_.rejected++;
      return 'rejected';
    }
    this.stats_.accepted++;
    return 'accepted';
  }

  /** One request in flight until `answer` settles, its answers handed out by `settle`. */
  private track(answer: Promise<Answer>, settle: (a: Answer) => void, fail: (e: Error) => void): void {
    this.inFlight++;
    const p = answer.then(settle, fail).finally(() => {
      this.inFlight--;
      this.pending.delete(p);
    });
    this.pending.add(p);
  }

  private failed(ops: readonly Op[]): (e: Error) => void {
    return (e) => {
      for (const op of ops) {
        this.stats_.errors++;
        this.stats_.lastError = e.message;
        op.then?.('error', {});
      }
    };
  }

  private send(op: Op): void {
    this.stats_.sent++;
    const answer = op.method === 'POST' ? this.call('POST', '/orders', op.body, this.orders) : this.call('DELETE', `/orders/${op.id}`, undefined, this.orders);
    this.track(
      answer,
      (a) => {
        // Counted whether or not anyone waits for the answer (`then?.(count())` would skip the count).
        const outcome = this.count(op, a);
        op.then?.(outcome, a.json);
      },
      this.failed([op]),
    );
  }

  /**
   * Orders in one `POST /orders/batch`, each answer counted as if it had come alone. A whole-batch 503 (a
   * gateway's sorry server) or 5xx counts for every order in it; no batch route sends them again one by one.
   */
  private sendBatch(ops: (Op & { method: 'POST' })[]): void {
    this.stats_.sent += ops.length;
    const answer = this.call('POST', '/orders/batch', { orders: ops.map((op) => op.body) }, this.orders);
    this.track(
      answer,
      (a) => {
        if (a.status === 404 || a.status === 405) {
          this.batching = false;
          this.stats_.sent -= ops.length;
          for (const op of ops) this.send(op);
          return;
        }
        const results = a.status === 200 && Array.isArray(a.json.results) ? (a.json.results as Record<string, unknown>[]) : undefined;
        ops.forEach((op, i) => {
          const json = results?.[i];
          // A malformed order is an `error` entry; the load generator's own orders never are, so it is a rejection.
          const one: Answer = results ? { status: json && typeof json.error !== 'string' ? 200 : 400, json: json ?? {}, retryAfter: false } : a;
          if (one.status === 400) {
            this.stats_.rejected++;
            op.then?.('rejected', one.json);
          } else {
            const outcome = this.count(op, one);
            op.then?.(outcome, one.json);
          }
        });
      },
      this.failed(ops),
    );
  }

  /**
   * One beat: makers that are due quote, queued makers' and stops' requests go first, then the synthetic
   * flow up to its rate. Orders of one beat share batches; at most `maxInFlight` requests are out at once.
   */
  private tick(): void {
    const now = this.clock();
    this.quoteMakers(now);
    const free = (this.o.maxInFlight ?? 64) - this.inFlight;
    const perRequest = this.batching ? ORDER_BATCH_MAX : 1;
    const posts: (Op & { method: 'POST' })[] = [];
    const deletes: Op[] = [];
    // Room for one more order of either kind: a cancel is a request of its own, an order may open a batch.
    const room = (): boolean => deletes.length + Math.ceil(posts.length / perRequest) + 1 <= free;
    const take = (op: Op): void => {
      if (op.method === 'POST') posts.push(op);
      else deletes.push(op);
    };
    while (this.queue.length > 0 && room()) take(this.queue.shift() as Op);
    const due = Math.floor(((now - this.started) / 1000) * this.o.rate);
    while (this.offered < due && room()) {
      this.offered++;
      take(this.nextOrder());
    }
    // Offers the engine could not take in time are dropped, not queued: the rate is an upper bound.
    if (this.offered < due) this.offered = due;
    for (const op of deletes) this.send(op);
    for (let i = 0; i < posts.length; i += perRequest) {
      const chunk = posts.slice(i, i + perRequest);
      if (chunk.length === 1) this.send(chunk[0] as Op);
      else this.sendBatch(chunk);
    }
  }

  start(): void {
    this.started = this.clock();
    void this.refreshMarks();
    this.markTimer = setInterval(() => void this.refreshMarks(), 1_000);
    this.timer = setInterval(() => this.tick(), 10);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.markTimer) clearInterval(this.markTimer);
    this.timer = undefined;
    this.markTimer = undefined;
    this.queue.length = 0;
    await Promise.allSettled([...this.pending]);
    this.agent.destroy();
  }
}

export type ParsedMetrics = ReturnType<typeof parseMetrics>;

/** One book's quality as the engine's `/metrics` serves it (issue 13): prices and depths as the decimal text served. */
export interface BookMetrics {
  /** null: no series, the side is empty. */
  bestBid: string | null;
  bestAsk: string | null;
  /** Basis points of the mid price; null: no series (a side is empty). */
  spreadBps: number | null;
  /** Base quantity over the best N price levels, by side and N ("1", "5", "10", "20"). */
  depth: { bid: Record<string, string>; ask: Record<string, string> };
}

const BOOK_LINE = /^engine_book_(best_bid|best_ask|spread_bps|depth)\{([^}]*)\} (\S+)$/;

/** Read one `engine_book_*` line into `books`. */
function readBookLine(books: Record<string, BookMetrics>, line: string): void {
  const m = BOOK_LINE.exec(line);
  if (!m) return;
  const labels = Object.fromEntries([...(m[2] as string).matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1] as string, l[2] as string]));
  const symbol = labels.symbol;
  if (symbol === undefined) return;
  const book = (books[symbol] ??= { bestBid: null, bestAsk: null, spreadBps: null, depth: { bid: {}, ask: {} } });
  const value = m[3] as string;
  if (m[1] === 'best_bid') book.bestBid = value;
  else if (m[1] === 'best_ask') book.bestAsk = value;
  else if (m[1] === 'spread_bps') book.spreadBps = Number(value);
  else if ((labels.side === 'bid' || labels.side === 'ask') && labels.levels !== undefined) book.depth[labels.side][labels.levels] = value;
}

/** Read the Prometheus text the engine serves into the few numbers the gates need. */
export function parseMetrics(text: string): {
  queueDepth: number;
  halted: boolean;
  latencyBuckets: [number, number][];
  latencyCount: number;
  /** Book quality by symbol; a symbol the engine exports no `engine_book_*` series for is absent. */
  books: Record<string, BookMetrics>;
} {
  let queueDepth = 0;
  let halted = false;
  let latencyCount = 0;
  const latencyBuckets: [number, number][] = [];
  const books: Record<string, BookMetrics> = {};
  for (const line of text.split('\n')) {
    if (line.startsWith('engine_margin_queue_depth ')) queueDepth = Number(line.split(' ')[1]);
    else if (line.startsWith('engine_phase{phase="halted"} ')) halted = line.endsWith(' 1');
    else if (line.startsWith('engine_match_latency_seconds_bucket{le="')) {
      const le = line.slice(40, line.indexOf('"', 40));
      latencyBuckets.push([le === '+Inf' ? Infinity : Number(le) * 1000, Number(line.slice(line.lastIndexOf(' ') + 1))]);
    } else if (line.startsWith('engine_match_latency_seconds_count ')) latencyCount = Number(line.split(' ')[1]);
    else if (line.startsWith('engine_book_')) readBookLine(books, line);
  }
  return { queueDepth, halted, latencyBuckets, latencyCount, books };
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
