import { OrderBook, type RestingOrder, type SelfTrade, type Side } from './book.js';
import { abs, bpsOf, MONEY_DECIMALS, notional, parseFixed, RATE_ONE } from './fixed.js';
import { bracketOf, initialOf, INSTRUMENTS, maintenanceOf, SYMBOLS, MAKER_FEE_BPS, TAKER_FEE_BPS, type Asset, type Symbol } from './instruments.js';
import {
  addPremium,
  averagePremium,
  fundingRateOf,
  impactPrice,
  interestRate,
  markPriceOf,
  newMarketState,
  premiumSample,
  sampleBasis,
  type HaltedPremiumPolicy,
  type MarketState,
} from './market.js';
import type { Account, Command, MarginMode, Order, OrderRequest, OrderRequestJson, OrderResult, Phase, Position, RejectReason } from './types.js';

/** System accounts: where deposits come from, where fees go, and the liquidation backstop. */
export const EXTERNAL = '@external';
export const FEES = '@fees';
export const INSURANCE = '@insurance';
export const SYSTEM_ACCOUNTS = [EXTERNAL, FEES, INSURANCE] as const;

/** Limit prices further than this from the mark are refused (a fat-finger band), basis points. */
export const PRICE_BAND_BPS = 2_000;
/** What a liquidation pays the insurance fund, basis points of the notional the book takes (capped at what is left). */
export const LIQUIDATION_FEE_BPS = 100;
/**
 * uniMMR bands, in units of 1/10000: at or below 1.05 the account is liquidated, to 1.2 it may only
 * reduce, to 1.5 it is warned.
 */
export const UNIMMR_LIQUIDATION = 10_500n;
export const UNIMMR_REDUCE_ONLY = 12_000n;
export const UNIMMR_WARNING = 15_000n;
/** How many liquidations the exchange remembers for `GET /liquidations` (not kept in snapshots). */
const LIQUIDATION_LOG = 1_000;

/** One liquidated position: what the book took, what the insurance fund took over and who was deleveraged. */
export interface LiquidationRecord {
  ts: number;
  account: string;
  symbol: Symbol;
  /** The position closed, signed (long > 0). */
  qty: number;
  bankruptcyPrice: number;
  markPrice: number;
  book: { qty: number; notional: bigint };
  fee: bigint;
  insurance: { qty: number };
  adl: { account: string; qty: number }[];
}

export function orderIdOf(num: number): string {
  return String(num).padStart(12, '0');
}

export interface FundingRecord {
  symbol: Symbol;
  intervalStart: number;
  rate: bigint;
  markPrice: number;
  /** Paid by longs (rate > 0) or by shorts (rate < 0). */
  paid: bigint;
  /** Received by the other side; equal to `paid` to the unit. */
  received: bigint;
  /**
   * Who held what at the funding time and what each paid (negative) or received, when this process
   * settled it (not kept in snapshots: a restarted engine lists the intervals it settles itself).
   */
  payments?: { account: string; qty: number; amount: bigint }[];
}

/** Hooks the runtime uses to learn what changed (margin recalculation, metrics). */
export interface ExchangeHooks {
  accountTouched?(account: string): void;
  fill?(symbol: Symbol, price: number, qty: number): void;
}

/**
 * The exchange as a deterministic state machine: `apply(command)` is the only way state changes, so
 * replaying the WAL rebuilds it exactly. `decideOrder` checks an order against the current state and
 * gives the command to log, or the rejection.
 */
export class Exchange {
  phase: Phase = 'halted';
  reason: string | null = null;
  /** The WAL seq and time of the last change to `halted`: a pre-outage snapshot has a lower seq. */
  haltedAtSeq: number | null = null;
  haltedAt: number | null = null;
  /** Why it last halted; kept after trading resumes, for the incident report. */
  haltReason: string | null = null;
  admissionWeight = 100;
  /** The primary's epoch (a promotion starts the next), and whether this engine was fenced: it then takes no writes. */
  epoch = 0;
  fenced = false;
  /** The seq of the record that began this epoch (0 for the first): a follower past it on an older epoch has diverged. */
  epochSince = 0;
  /** Fenced by a newer primary's epoch (not by a handover of its own): such an engine can never take writes again. */
  fencedByNewer = false;
  readonly accounts = new Map<string, Account>();
  readonly orders = new Map<string, Order>();
  readonly books = new Map<Symbol, OrderBook>();
  readonly marks = new Map<Symbol, number>();
  feedStep = 0;
  nextOrderNum = 1;
  lastTs = 0;
  /** Time of the last marks record: funding boundaries are crossed between two of them. */
  lastMarksTs = 0;
  readonly funding = new Map<string, FundingRecord>();
  /** Mark prices recorded at each funding boundary not yet settled, for recomputing missed intervals. */
  readonly boundaryMarks = new Map<number, Partial<Record<Symbol, number>>>();
  /**
   * Who held each symbol at each funding boundary not yet settled (accounts with a position, by id, with
   * the signed quantity), taken when the first price tick at or after the boundary is applied: funding
   * for an interval is owed by the holders at its end, whoever holds the position when it is settled.
   */
  readonly boundaryPositions = new Map<number, Partial<Record<Symbol, [string, number][]>>>();
  /** The funding rate each symbol's interval ended with (from its premium samples), until settled. */
  readonly boundaryRates = new Map<number, Partial<Record<Symbol, bigint>>>();
  /** Index, last price, basis and premium samples per symbol: what the mark and the funding rate come from. */
  readonly market = new Map<Symbol, MarketState>();
  /** The rate each symbol's last settled interval paid. */
  readonly lastRates = new Map<Symbol, bigint>();
  /** The funding intervals the last index tick closed, per symbol: the runtime settles them. */
  crossed: { symbol: Symbol; intervalStart: number }[] = [];
  readonly liquidations: LiquidationRecord[] = [];
  /** How many times covering a liquidated account left the insurance fund below zero in an asset. */
  insuranceDeficits = 0;
  /**
   * Everything that moved the insurance fund's balances (both assets together): liquidation fees in, PnL
   * realized on positions it took over, funding on those positions, and what it paid to cover accounts
   * left below zero. The fund's balance is exactly fees + realized + funding − covered (par swaps between
   * the stablecoins net to zero).
   */
  readonly insuranceFlows = { fees: 0n, realized: 0n, funding: 0n, covered: 0n };
  hooks: ExchangeHooks = {};
  /** Per-symbol funding intervals and the halted-premium policy: set at construction, changed only by `config` records. */
  intervals: Readonly<Record<Symbol, number>>;
  haltedPremium: HaltedPremiumPolicy;

  constructor(
    readonly fundingIntervalMs: number,
    opts: { intervals?: Partial<Record<Symbol, number>>; haltedPremium?: HaltedPremiumPolicy } = {},
  ) {
    this.intervals = Object.fromEntries(SYMBOLS.map((s) => [s, opts.intervals?.[s] ?? fundingIntervalMs])) as Record<Symbol, number>;
    this.haltedPremium = opts.haltedPremium ?? 'exclude';
    for (const s of SYMBOLS) {
      this.books.set(s, new OrderBook());
      this.marks.set(s, INSTRUMENTS[s].basePrice);
      this.market.set(s, newMarketState(INSTRUMENTS[s].basePrice));
    }
    for (const id of SYSTEM_ACCOUNTS) this.account(id);
  }

  intervalOf(symbol: Symbol): number {
    return this.intervals[symbol];
  }

  marketOf(symbol: Symbol): MarketState {
    return this.market.get(symbol) as MarketState;
  }

  index(symbol: Symbol): number {
    return this.marketOf(symbol).index;
  }

  /** The funding rate the current interval would pay if it ended now (rate units). */
  predictedRate(symbol: Symbol): bigint {
    const interval = this.intervalOf(symbol);
    return fundingRateOf(averagePremium(this.marketOf(symbol)), interestRate(interval), INSTRUMENTS[symbol].fundingCap);
  }

  /** Choose a leverage (undefined: back to the default); the open orders in that symbol are held to it at once. */
  setLeverage(a: Account, symbol: Symbol, leverage: number | undefined): void {
    if (leverage === undefined) a.leverage.delete(symbol);
    else a.leverage.set(symbol, leverage);
    for (const id of a.openOrders) {
      const o = this.orders.get(id) as Order;
      if (o.symbol === symbol) this.reserveOrderMargin(o);
    }
  }

  /** Would this leverage leave the account short of initial margin (positions and open orders)? Changes nothing. */
  leverageWouldBreach(a: Account, symbol: Symbol, leverage: number): boolean {
    const previous = a.leverage.get(symbol);
    this.setLeverage(a, symbol, leverage);
    const short = this.available(a) < 0n;
    this.setLeverage(a, symbol, previous);
    return short;
  }

  /** The leverage an account uses for a symbol: its choice, or the instrument's default. */
  leverageOf(a: Account, symbol: Symbol): number {
    return a.leverage?.get(symbol) ?? INSTRUMENTS[symbol].defaultLeverage;
  }

  account(id: string): Account {
    let a = this.accounts.get(id);
    if (!a) {
      a = {
        id,
        balances: { USDT: 0n, USDC: 0n },
        positions: new Map(),
        openOrders: new Set(),
        reduceOnlyOrders: new Set(),
        orderMargin: 0n,
        leverage: new Map(),
      };
      this.accounts.set(id, a);
    }
    return a;
  }

  book(symbol: Symbol): OrderBook {
    return this.books.get(symbol) as OrderBook;
  }

  mark(symbol: Symbol): number {
    return this.marks.get(symbol) as number;
  }

  // ---- margin arithmetic (pure reads) ----

  /** Unified cross equity: both stablecoins at par plus the unrealized PnL of cross positions. */
  crossEquity(a: Account): bigint {
    let eq = a.balances.USDT + a.balances.USDC;
    for (const [sym, p] of a.positions) if (p.mode === 'cross' && p.qty !== 0) eq += BigInt(p.qty) * BigInt(this.mark(sym)) - p.cost;
    return eq;
  }

  /** Cross equity, maintenance and initial margin used in one walk of the positions (the order path's hot loop). */
  crossFigures(a: Account): { equity: bigint; maintenance: bigint; initial: bigint } {
    let equity = a.balances.USDT + a.balances.USDC;
    let maintenance = 0n;
    let initial = a.orderMargin;
    for (const [sym, p] of a.positions) {
      if (p.mode !== 'cross' || p.qty === 0) continue;
      const mark = this.mark(sym);
      const inst = INSTRUMENTS[sym];
      const value = notional(mark, Math.abs(p.qty));
      equity += BigInt(p.qty) * BigInt(mark) - p.cost;
      maintenance += maintenanceOf(inst, value);
      initial += initialOf(inst, value, this.leverageOf(a, sym));
    }
    return { equity, maintenance, initial };
  }

  /** Maintenance margin of the cross positions: each position's bracket at the mark. */
  crossMaintenance(a: Account): bigint {
    let mm = 0n;
    for (const [sym, p] of a.positions) {
      if (p.mode === 'cross' && p.qty !== 0) mm += maintenanceOf(INSTRUMENTS[sym], notional(this.mark(sym), Math.abs(p.qty)));
    }
    return mm;
  }

  /** Initial margin held by cross positions (at the account's leverage, capped by the bracket) and by every open order. */
  initialMarginUsed(a: Account): bigint {
    let im = 0n;
    for (const [sym, p] of a.positions) {
      if (p.mode === 'cross' && p.qty !== 0) im += initialOf(INSTRUMENTS[sym], notional(this.mark(sym), Math.abs(p.qty)), this.leverageOf(a, sym));
    }
    return im + a.orderMargin;
  }

  /** An isolated position's equity (its margin plus unrealized PnL) and maintenance at the mark. */
  isolatedRisk(sym: Symbol, p: Position): { equity: bigint; maintenance: bigint } {
    const mark = this.mark(sym);
    return {
      equity: p.isolatedMargin + BigInt(p.qty) * BigInt(mark) - p.cost,
      maintenance: maintenanceOf(INSTRUMENTS[sym], notional(mark, Math.abs(p.qty))),
    };
  }

  available(a: Account): bigint {
    return this.crossEquity(a) - this.initialMarginUsed(a);
  }

  /**
   * Every account with a position judged at the current marks: uniMMR (equity / maintenance, 4 places)
   * with Binance's bands, and whether this engine would liquidate it now. Pure read.
   */
  riskOf(a: Account): {
    equity: bigint;
    maintenance: bigint;
    uniMMR: string | null;
    band: 'liquidation' | 'reduce-only' | 'warning' | 'ok';
    below: { cross: boolean; isolated: Symbol[] };
  } {
    const equity = this.crossEquity(a);
    const maintenance = this.crossMaintenance(a);
    const below = this.liquidatable(a.id);
    const ratio = uniMMROf(equity, maintenance);
    const band = bandOf(ratio);
    const uniMMR = ratio === null ? null : ratioText(ratio);
    return { equity, maintenance, uniMMR, band, below };
  }

  /**
   * What a liquidation would close now: the unified (cross) account when its uniMMR is at or below 1.05,
   * and each isolated position whose equity is at or below its maintenance margin.
   */
  liquidatable(accountId: string): { cross: boolean; isolated: Symbol[] } {
    const a = this.accounts.get(accountId);
    const out = { cross: false, isolated: [] as Symbol[] };
    if (!a || accountId.startsWith('@')) return out;
    const mm = this.crossMaintenance(a);
    out.cross = mm > 0n && this.crossEquity(a) * 10_000n <= mm * UNIMMR_LIQUIDATION;
    for (const [sym, p] of a.positions) {
      if (p.mode !== 'isolated' || p.qty === 0) continue;
      const r = this.isolatedRisk(sym, p);
      if (r.equity <= r.maintenance) out.isolated.push(sym);
    }
    return out;
  }

  // ---- decisions (read state, return a command or a rejection) ----

  decideOrder(req: OrderRequest, ts: number): { command: Command } | { reject: RejectReason; message: string } {
    const inst = INSTRUMENTS[req.symbol];
    const reject = (reason: RejectReason, message: string) => ({ reject: reason, message });
    if (this.phase === 'halted') return reject('PHASE_HALTED', `trading is halted${this.reason ? `: ${this.reason}` : ''}`);
    if (this.phase === 'cancel-only') return reject('PHASE_CANCEL_ONLY', 'only cancels are accepted');
    if (this.phase === 'post-only' && !(req.type === 'limit' && req.postOnly)) return reject('PHASE_POST_ONLY', 'only post-only limit orders are accepted');
    const a = this.accounts.get(req.account);
    if (!a || req.account.startsWith('@')) return reject('UNKNOWN_ACCOUNT', `no account ${req.account}: deposit first`);
    if (req.qty <= 0 || req.qty % inst.lotSize !== 0) return reject('INVALID', `qty must be a positive multiple of the lot size`);
    if (req.type === 'limit') {
      if (req.price === undefined || req.price <= 0 || req.price % inst.tickSize !== 0)
        return reject('INVALID', 'price must be a positive multiple of the tick size');
    } else if (req.price !== undefined) {
      return reject('INVALID', 'a market order has no price');
    } else if (req.postOnly) {
      return reject('INVALID', 'a market order cannot be post-only');
    }
    const pos = a.positions.get(req.symbol);
    if (pos && pos.qty !== 0 && pos.mode !== req.marginMode) return reject('MARGIN_MODE_CONFLICT', `the ${req.symbol} position is ${pos.mode}`);
    const signed = req.side === 'buy' ? req.qty : -req.qty;
    const mark = this.mark(req.symbol);
    if (req.price !== undefined && Math.abs(req.price - mark) * 10_000 > mark * PRICE_BAND_BPS) {
      return reject('INVALID', `price is more than ${PRICE_BAND_BPS / 100}% from the mark`);
    }
    const held = pos?.qty ?? 0;
    // An order that can only shrink the position (opposite side, no larger than it) takes on no new exposure.
    const closesOnly = held !== 0 && Math.sign(held) !== Math.sign(signed) && req.qty <= Math.abs(held);
    if (req.reduceOnly) {
      const q = pos?.qty ?? 0;
      // Resting reduce-only orders on the same side count too: together they may only close the position.
      let resting = 0;
      for (const id of a.reduceOnlyOrders) {
        const o = this.orders.get(id) as Order;
        if (o.symbol === req.symbol && o.side === req.side) resting += o.qty - o.filled;
      }
      if (q === 0 || Math.sign(q) === Math.sign(signed) || Math.abs(signed) + resting > Math.abs(q))
        return reject('REDUCE_ONLY_WOULD_INCREASE', 'a reduce-only order must shrink the position');
    }
    // A unified account at or below uniMMR 1.2 may only reduce: anything that adds exposure is refused.
    // The cross positions are walked once per order: the band check and the margin check share it.
    let figures: { equity: bigint; maintenance: bigint; initial: bigint } | undefined;
    if (!closesOnly && !req.reduceOnly) {
      figures = this.crossFigures(a);
      const band = bandOf(uniMMROf(figures.equity, figures.maintenance));
      if (band === 'reduce-only' || band === 'liquidation')
        return reject(
          'ACCOUNT_REDUCE_ONLY',
          'the account is in the uniMMR reduce-only band (at or below 1.2): only orders that reduce a position are accepted',
        );
    }
    const book = this.book(req.symbol);
    if (req.postOnly && req.price !== undefined && book.crosses(req.side, req.price))
      return reject('POST_ONLY_WOULD_TAKE', 'the order would trade immediately');
    const stp = req.stp ?? 'none';
    const self = stp === 'none' ? undefined : { account: req.account, mode: stp };
    // A market order is protected by the same band around the mark as a limit price: it never sweeps
    // the book further than PRICE_BAND_BPS from the mark (a thin book after a reopen cannot gouge it).
    const bandPrice = req.type === 'market' ? marketBand(req.side, mark, inst.tickSize) : undefined;
    const taken = book.sweep(req.side, req.price ?? bandPrice, req.qty, self);
    if (req.tif === 'FOK' && taken.qty < req.qty) return reject('FOK_WOULD_NOT_FILL', `only ${taken.qty} of ${req.qty} could fill now`);
    if (!req.reduceOnly) {
      const required = this.marginRequired(a, req, { mark, held, closesOnly, taken });
      const f = figures ?? this.crossFigures(a);
      if (required > 0n && f.equity - f.initial < required) return reject('INSUFFICIENT_MARGIN', 'the order would breach initial margin');
    }
    const json: OrderRequestJson = { ...req, price: req.price ?? null, ...(bandPrice === undefined ? {} : { bandPrice }) };
    return { command: { op: 'order', ts, num: this.nextOrderNum, req: json } };
  }

  /**
   * Margin an order needs: at the prices it would really trade at, plus the loss against the mark it
   * would take on at once, plus what it leaves resting at its limit. What only closes the position needs
   * none of that now; only a remainder left resting is held to initial margin.
   */
  private marginRequired(
    a: Account,
    req: OrderRequest,
    o: { mark: number; held: number; closesOnly: boolean; taken: { qty: number; notional: bigint } },
  ): bigint {
    const inst = INSTRUMENTS[req.symbol];
    const { mark, held, taken } = o;
    const markValue = notional(mark, taken.qty);
    const immediateLoss = req.side === 'buy' ? taken.notional - markValue : markValue - taken.notional;
    const restingQty = req.type === 'limit' && req.tif === 'GTC' ? req.qty - taken.qty : 0;
    const resting = notional(req.price ?? mark, restingQty);
    // The leverage is the account's, capped by the bracket of the position the order could lead to.
    const own = this.leverageOf(a, req.symbol);
    const lev = Math.min(own, bracketOf(inst, notional(mark, Math.abs(held) + req.qty)).maxLeverage);
    if (o.closesOnly) return initialOf(inst, resting, lev);
    // A position pushed into a higher bracket is margined at that bracket as a whole, not only its new part.
    const heldValue = held !== 0 && lev < own ? notional(mark, Math.abs(held)) : 0n;
    const stepUp = heldValue > 0n ? initialOf(inst, heldValue, lev) - initialOf(inst, heldValue, own) : 0n;
    return initialOf(inst, taken.notional + resting, lev) + stepUp + bpsOf(taken.notional, TAKER_FEE_BPS) + (immediateLoss > 0n ? immediateLoss : 0n);
  }

  // ---- the state machine ----

  apply(c: Command, seq = 0): OrderResult | undefined {
    this.lastTs = Math.max(this.lastTs, c.ts);
    switch (c.op) {
      case 'deposit': {
        const amount = parseFixed(c.amount, MONEY_DECIMALS);
        this.account(EXTERNAL).balances[c.asset] -= amount;
        this.account(c.account).balances[c.asset] += amount;
        this.hooks.accountTouched?.(c.account);
        return undefined;
      }
      case 'order':
        return this.applyOrder(c.num, c.req, c.ts);
      case 'cancel': {
        this.cancelOrder(c.id);
        return undefined;
      }
      case 'marks': {
        this.applyIndex(c.ts, c.step, c.prices);
        if (this.hooks.accountTouched) {
          for (const a of this.accounts.values()) {
            for (const [sym, p] of a.positions) if (p.qty !== 0 && c.prices[sym] !== undefined && !a.id.startsWith('@')) this.hooks.accountTouched(a.id);
          }
        }
        return undefined;
      }
      case 'liquidate':
        this.liquidate(c.account, c.symbol, c.ts);
        return undefined;
      case 'leverage':
        this.setLeverage(this.account(c.account), c.symbol, c.leverage);
        this.hooks.accountTouched?.(c.account);
        return undefined;
      case 'clock':
        return undefined;
      case 'fence':
        // Fenced by a newer primary's epoch, this engine learns it: it is that epoch's old primary.
        this.fencedByNewer = this.fencedByNewer || c.epoch > this.epoch;
        this.fenced = true;
        this.epoch = Math.max(this.epoch, c.epoch);
        return undefined;
      case 'epoch':
        this.epoch = c.epoch;
        this.fenced = false;
        this.fencedByNewer = false;
        this.epochSince = seq;
        return undefined;
      case 'config':
        this.intervals = { ...this.intervals, ...c.fundingIntervals };
        this.haltedPremium = c.haltedPremium;
        return undefined;
      case 'funding':
        this.settleFunding(c.symbol, c.intervalStart, parseFixed(c.rate, 8), c.markPrice);
        return undefined;
      case 'phase':
        if (c.phase === 'halted' && this.phase !== 'halted') {
          this.haltedAtSeq = seq;
          this.haltedAt = c.ts;
          this.haltReason = c.reason;
        }
        this.phase = c.phase;
        this.reason = c.reason;
        return undefined;
      case 'admission':
        this.admissionWeight = c.weight;
        return undefined;
      case 'module':
        return undefined;
    }
  }

  /**
   * An index tick: new index prices, one premium and basis sample per symbol, the marks recomputed, and for
   * each symbol whose funding interval ended since the previous tick, that interval's rate, mark and
   * holders recorded (`crossed` lists them for the runtime to settle).
   */
  private applyIndex(ts: number, step: number, prices: Partial<Record<Symbol, number>>): void {
    const prevTs = this.lastMarksTs;
    this.feedStep = step;
    this.lastMarksTs = ts;
    this.crossed = [];
    const halted = this.phase === 'halted';
    for (const s of SYMBOLS) {
      const m = this.marketOf(s);
      const p = prices[s];
      if (p !== undefined) m.index = p;
      const interval = this.intervalOf(s);
      // The first tick ever closes nothing: no interval was running before it.
      if (prevTs > 0 && Math.floor(ts / interval) > Math.floor(prevTs / interval)) this.closeFundingInterval(s, Math.floor(ts / interval) * interval);
      const book = this.book(s);
      const inst = INSTRUMENTS[s];
      if (!halted) {
        addPremium(m, premiumSample(m.index, impactPrice(book, 'bids', inst.impactNotional), impactPrice(book, 'asks', inst.impactNotional)));
        sampleBasis(m, ts, book);
      } else if (this.haltedPremium === 'interest-only') {
        addPremium(m, 0n);
      }
      const boundary = Math.floor(ts / interval) * interval;
      this.marks.set(
        s,
        markPriceOf(m, { rate: this.predictedRate(s), msToFunding: boundary + interval - ts, intervalMs: interval, now: ts, tick: inst.tickSize }),
      );
      // The interval's funding is paid at the mark of this first tick at or after its end.
      if (this.crossed.some((x) => x.symbol === s)) (this.boundaryMarks.get(boundary) as Partial<Record<Symbol, number>>)[s] = this.mark(s);
    }
  }

  /** A symbol's funding interval ended at `boundary`: fix its rate and who holds the symbol now; start the next. */
  private closeFundingInterval(symbol: Symbol, boundary: number): void {
    const m = this.marketOf(symbol);
    const rate = this.predictedRate(symbol);
    m.premiumSum = 0n;
    m.premiumWeights = 0n;
    m.premiumSamples = 0;
    const at = <T>(map: Map<number, Partial<Record<Symbol, T>>>): Partial<Record<Symbol, T>> => {
      let entry = map.get(boundary);
      if (!entry) map.set(boundary, (entry = {}));
      return entry;
    };
    at(this.boundaryRates)[symbol] = rate;
    at(this.boundaryMarks)[symbol] = this.mark(symbol);
    at(this.boundaryPositions)[symbol] = this.holders(symbol);
    this.crossed.push({ symbol, intervalStart: boundary - this.intervalOf(symbol) });
  }

  private applyOrder(num: number, req: OrderRequestJson, ts: number): OrderResult {
    const id = orderIdOf(num);
    this.nextOrderNum = Math.max(this.nextOrderNum, num + 1);
    const order: Order = {
      id,
      num,
      account: req.account,
      symbol: req.symbol,
      side: req.side,
      type: req.type,
      price: req.price ?? 0,
      qty: req.qty,
      filled: 0,
      filledNotional: 0n,
      status: 'open',
      ts,
      tif: req.tif,
      postOnly: req.postOnly,
      reduceOnly: req.reduceOnly,
      marginMode: req.marginMode,
      clientOrderId: req.clientOrderId,
      reservedMargin: 0n,
    };
    this.orders.set(id, order);
    const book = this.book(req.symbol);
    const touched = new Set<string>();
    const stp = req.stp ?? 'none';
    const self: SelfTrade | undefined =
      stp === 'none'
        ? undefined
        : {
            account: req.account,
            mode: stp,
            onExpire: (maker) => this.expireMaker(orderIdOf(maker.id)),
          };
    const left = book.match(
      req.side,
      // WAL records from before the band have none: they replay as they ran, unbounded.
      req.type === 'market' ? req.bandPrice : order.price,
      order.qty,
      (maker, qty, price) => {
        this.fill(order, maker, qty, price);
        touched.add(maker.account);
      },
      self,
    );
    touched.add(order.account);
    if (left > 0 && req.type === 'limit' && req.tif === 'GTC' && !self?.takerExpired) {
      book.add({ id: num, account: order.account, side: order.side, price: order.price, remaining: left });
      this.account(order.account).openOrders.add(id);
      order.status = order.filled > 0 ? 'partially_filled' : 'open';
      this.reserveOrderMargin(order);
    } else {
      order.status = left === 0 ? 'filled' : 'canceled';
    }
    for (const acct of touched) this.trimReduceOnly(acct, order.symbol);
    this.hooks.accountTouched?.(order.account);
    return { id, status: order.status, filled: order.filled, avgPrice: avgPriceOf(order) };
  }

  private fill(taker: Order, maker: RestingOrder, qty: number, price: number, takerFeeBps = TAKER_FEE_BPS): void {
    const makerOrder = this.orders.get(orderIdOf(maker.id)) as Order;
    const inst = INSTRUMENTS[taker.symbol];
    const size = notional(price, qty);
    for (const [o, feeBps] of [
      [taker, takerFeeBps],
      [makerOrder, MAKER_FEE_BPS],
    ] as const) {
      o.filled += qty;
      o.filledNotional += size;
      const acct = this.account(o.account);
      const fee = bpsOf(size, feeBps);
      acct.balances[inst.settleAsset] -= fee;
      this.account(FEES).balances[inst.settleAsset] += fee;
      this.trade(acct, taker.symbol, o.side === 'buy' ? qty : -qty, price, o.marginMode);
    }
    if (maker.remaining === 0) {
      makerOrder.status = 'filled';
      this.account(makerOrder.account).openOrders.delete(makerOrder.id);
    } else {
      makerOrder.status = 'partially_filled';
    }
    this.reserveOrderMargin(makerOrder);
    this.marketOf(taker.symbol).lastPrice = price;
    this.hooks.accountTouched?.(makerOrder.account);
    this.hooks.fill?.(taker.symbol, price, qty);
  }

  /** Move `q` (signed) at `price` into an account's position, realizing PnL on the part that closes. */
  trade(acct: Account, symbol: Symbol, q: number, price: number, mode: MarginMode): void {
    const inst = INSTRUMENTS[symbol];
    let pos = acct.positions.get(symbol);
    if (!pos) {
      pos = { qty: 0, cost: 0n, mode, isolatedMargin: 0n };
      acct.positions.set(symbol, pos);
    }
    if (pos.qty === 0) pos.mode = mode;
    const settle = (amount: bigint): void => {
      if (pos.mode === 'isolated') pos.isolatedMargin += amount;
      else acct.balances[inst.settleAsset] += amount;
    };
    let open = q;
    if (pos.qty !== 0 && Math.sign(pos.qty) !== Math.sign(q)) {
      const closeQty = Math.abs(q) < Math.abs(pos.qty) ? q : -pos.qty;
      // The closed share of the cost, exactly consistent with pos.cost so the ledger balances to the unit.
      const removed = (pos.cost * BigInt(Math.abs(closeQty))) / BigInt(Math.abs(pos.qty));
      const realized = -(BigInt(closeQty) * BigInt(price)) - removed;
      pos.qty += closeQty;
      pos.cost -= removed;
      settle(realized);
      if (acct.id === INSURANCE) this.insuranceFlows.realized += realized;
      open = q - closeQty;
      if (pos.qty === 0 && pos.mode === 'isolated') {
        // An isolated position's losses stop at its margin: a shortfall is the insurance fund's.
        if (pos.isolatedMargin >= 0n || acct.id.startsWith('@')) acct.balances[inst.settleAsset] += pos.isolatedMargin;
        else {
          this.account(INSURANCE).balances[inst.settleAsset] += pos.isolatedMargin;
          this.insuranceFlows.covered -= pos.isolatedMargin;
        }
        pos.isolatedMargin = 0n;
      }
    }
    if (open !== 0) {
      if (pos.qty === 0) pos.mode = mode;
      const before = Math.abs(pos.qty);
      pos.qty += open;
      pos.cost += BigInt(open) * BigInt(price);
      if (pos.mode === 'isolated' && !acct.id.startsWith('@')) {
        // The whole position's initial margin at its bracket, less what the smaller position needed: a
        // position built in small fills is margined like one built at once.
        const lev = this.leverageOf(acct, symbol);
        const im = initialOf(inst, notional(price, Math.abs(pos.qty)), lev) - initialOf(inst, notional(price, before), lev);
        acct.balances[inst.settleAsset] -= im;
        pos.isolatedMargin += im;
      }
    }
  }

  /**
   * Resting reduce-only orders may only close the position: after a trade shrinks it, those that would
   * now open or flip it are cancelled (newest first), as exchanges do.
   */
  private trimReduceOnly(accountId: string, symbol: Symbol): void {
    const a = this.accounts.get(accountId);
    if (!a || a.reduceOnlyOrders.size === 0) return;
    const pos = a.positions.get(symbol)?.qty ?? 0;
    const closing = pos > 0 ? 'sell' : 'buy';
    const orders = [...a.reduceOnlyOrders]
      .map((id) => this.orders.get(id) as Order)
      .filter((o) => o.symbol === symbol)
      .sort((x, y) => x.num - y.num);
    let room = Math.abs(pos);
    for (const o of orders) {
      const remaining = o.qty - o.filled;
      if (pos === 0 || o.side !== closing || remaining > room) this.cancelOrder(o.id);
      else room -= remaining;
    }
  }

  /** A resting order taken out of the book by self-trade prevention: it ends canceled, its margin released. */
  private expireMaker(id: string): void {
    const o = this.orders.get(id);
    if (!o) return;
    o.status = 'canceled';
    this.account(o.account).openOrders.delete(id);
    this.reserveOrderMargin(o);
  }

  cancelOrder(id: string): boolean {
    const o = this.orders.get(id);
    if (!o || (o.status !== 'open' && o.status !== 'partially_filled')) return false;
    this.book(o.symbol).cancel(o.num);
    o.status = 'canceled';
    this.account(o.account).openOrders.delete(id);
    this.reserveOrderMargin(o);
    return true;
  }

  /** Set an order's reserved initial margin to what its resting remainder needs (none once it is done). */
  reserveOrderMargin(o: Order): void {
    const resting = o.status === 'open' || o.status === 'partially_filled';
    if (o.reduceOnly) {
      const set = this.account(o.account).reduceOnlyOrders;
      if (resting) set.add(o.id);
      else set.delete(o.id);
    }
    const acct = this.account(o.account);
    const next = resting && !o.reduceOnly ? initialOf(INSTRUMENTS[o.symbol], notional(o.price, o.qty - o.filled), this.leverageOf(acct, o.symbol)) : 0n;
    acct.orderMargin += next - o.reservedMargin;
    o.reservedMargin = next;
  }

  /**
   * Liquidate an account's cross positions (or one isolated position) as a USDⓈ-M exchange does: cancel
   * its open orders in scope, then per position (largest notional first) an IOC order into the book that
   * trades no worse than the bankruptcy price, a liquidation fee on what the book took to the insurance
   * fund (never more than is left), then the insurance fund takes over the rest at the bankruptcy price
   * if it can bear the loss at the mark, and otherwise the most profitable, most leveraged opposite
   * positions are auto-deleveraged at that price. A negative balance left (rounding, a fund that could
   * not cover) is the fund's; a fund that goes negative is logged (`insuranceDeficit`).
   */
  private liquidate(accountId: string, symbol: Symbol | null, ts: number): void {
    const a = this.accounts.get(accountId);
    if (!a) return;
    for (const id of [...a.openOrders]) {
      const o = this.orders.get(id) as Order;
      if (symbol === null || o.symbol === symbol) this.cancelOrder(id);
    }
    const scope = [...a.positions]
      .filter(([sym, p]) => p.qty !== 0 && (symbol === null ? p.mode === 'cross' : sym === symbol))
      .map(([sym, p]) => ({ sym, size: notional(this.mark(sym), Math.abs(p.qty)) }))
      .sort((x, y) => (x.size === y.size ? (x.sym < y.sym ? -1 : 1) : x.size > y.size ? -1 : 1));
    for (const { sym } of scope) this.liquidatePosition(a, sym, ts);
    // An isolated position's shortfall was the fund's as it closed (trade()); the account's own balance
    // is its unified margin's business, covered only when that margin was liquidated.
    if (symbol === null) this.coverDeficit(a);
    this.hooks.accountTouched?.(accountId);
  }

  /** The price at which closing this position leaves its margin (the account's, or the isolated position's) at zero, on the tick grid. */
  bankruptcyPrice(a: Account, sym: Symbol, p: Position): number {
    const mark = this.mark(sym);
    const tick = INSTRUMENTS[sym].tickSize;
    const equity = p.mode === 'isolated' ? this.isolatedRisk(sym, p).equity : this.crossEquity(a);
    // Closing q at x instead of the mark moves equity by q(x − mark): zero at x = mark − equity / q. A
    // long's sell is rounded up and a short's buy down, so the account never ends below zero by rounding.
    const q = BigInt(p.qty);
    const num = BigInt(mark) * q - equity;
    const exact = p.qty > 0 ? ceilDiv(num, q) : num / q;
    const t = BigInt(tick);
    const onGrid = p.qty > 0 ? ceilDiv(exact, t) * t : (exact / t) * t;
    // A short whose account owes more than the short is worth has no positive bankruptcy price: it is
    // closed at the mark, and what the account still owes is covered by the fund afterwards.
    return onGrid < t ? mark : Number(onGrid);
  }

  /** The IOC order a liquidation sends to the book (recorded like any order, `clientOrderId: liquidation`). */
  private liquidationOrder(a: Account, sym: Symbol, side: Side, qty: number, price: number, mode: MarginMode, ts: number): Order {
    const num = this.nextOrderNum++;
    return {
      id: orderIdOf(num),
      num,
      account: a.id,
      symbol: sym,
      side,
      type: 'limit',
      price,
      qty,
      filled: 0,
      filledNotional: 0n,
      status: 'open',
      ts,
      tif: 'IOC',
      postOnly: false,
      reduceOnly: true,
      marginMode: mode,
      clientOrderId: 'liquidation',
      reservedMargin: 0n,
    };
  }

  private liquidatePosition(a: Account, sym: Symbol, ts: number): void {
    const inst = INSTRUMENTS[sym];
    const p = a.positions.get(sym) as Position;
    const q = p.qty;
    const mode = p.mode;
    const bp = this.bankruptcyPrice(a, sym, p);
    const record: LiquidationRecord = {
      ts,
      account: a.id,
      symbol: sym,
      qty: q,
      bankruptcyPrice: bp,
      markPrice: this.mark(sym),
      book: { qty: 0, notional: 0n },
      fee: 0n,
      insurance: { qty: 0 },
      adl: [],
    };
    const side: Side = q > 0 ? 'sell' : 'buy';
    const balanceBefore = a.balances[inst.settleAsset];
    // 1. Into the book, IOC, limited to the bankruptcy price. The account pays the liquidation fee, not the taker fee.
    const order = this.liquidationOrder(a, sym, side, Math.abs(q), bp, mode, ts);
    this.orders.set(order.id, order);
    const touched = new Set<string>();
    // While halted the book is frozen (its makers cannot cancel): a liquidation decided before trading
    // opens goes straight to the fund or ADL at the bankruptcy price.
    const left =
      this.phase === 'halted'
        ? order.qty
        : this.book(sym).match(side, bp, order.qty, (maker, qty, price) => {
            this.fill(order, maker, qty, price, 0);
            touched.add(maker.account);
          });
    order.status = left === 0 ? 'filled' : 'canceled';
    record.book = { qty: order.filled, notional: order.filledNotional };
    // 2. What the book could not take: the insurance fund at the bankruptcy price, or auto-deleveraging.
    const rest = q > 0 ? left : -left;
    if (rest !== 0) {
      const fund = this.account(INSURANCE);
      if (this.fundEquity(inst.settleAsset) + BigInt(rest) * BigInt(this.mark(sym) - bp) >= 0n) {
        this.trade(fund, sym, rest, bp, 'cross');
        this.trade(a, sym, -rest, bp, mode);
        record.insurance.qty = rest;
      } else {
        record.adl = this.autoDeleverage(a, sym, rest, bp, mode);
        for (const x of record.adl) touched.add(x.account);
      }
    }
    // 3. The liquidation fee on what the book took, from what the closed margin has left (never below zero).
    // An isolated position's room is the margin it released when it closed; a unified account's, its equity.
    const room = mode === 'isolated' ? a.balances[inst.settleAsset] - balanceBefore : this.crossEquity(a);
    const fee = minBig(bpsOf(record.book.notional, LIQUIDATION_FEE_BPS), room > 0n ? room : 0n);
    if (fee > 0n) {
      a.balances[inst.settleAsset] -= fee;
      this.account(INSURANCE).balances[inst.settleAsset] += fee;
      this.insuranceFlows.fees += fee;
    }
    record.fee = fee;
    for (const acct of touched) this.trimReduceOnly(acct, sym);
    this.liquidations.push(record);
    if (this.liquidations.length > LIQUIDATION_LOG) this.liquidations.shift();
  }
  /** The insurance fund's equity in one asset: its balance plus the unrealized PnL of positions it took over. */
  fundEquity(asset: Asset): bigint {
    const fund = this.account(INSURANCE);
    let eq = fund.balances[asset];
    for (const [sym, p] of fund.positions) if (p.qty !== 0 && INSTRUMENTS[sym].settleAsset === asset) eq += BigInt(p.qty) * BigInt(this.mark(sym)) - p.cost;
    return eq;
  }

  /**
   * Auto-deleveraging: close `rest` (signed, the liquidated side) against opposite positions at the
   * bankruptcy price, highest ranking first: profit ratio x effective leverage for a profitable position,
   * profit ratio / leverage for a losing one (so losers come last), ties by account id.
   */
  private autoDeleverage(a: Account, sym: Symbol, rest: number, price: number, mode: MarginMode): { account: string; qty: number }[] {
    const candidates: { acct: Account; qty: number; score: bigint }[] = [];
    let fundSide: { acct: Account; qty: number; score: bigint } | undefined;
    for (const c of this.accounts.values()) {
      const p = c.positions.get(sym);
      if (c === a || !p || p.qty === 0 || Math.sign(p.qty) === Math.sign(rest)) continue;
      // A position the fund took over earlier is closed last, after every trader's.
      if (c.id === INSURANCE) fundSide = { acct: c, qty: p.qty, score: 0n };
      else candidates.push({ acct: c, qty: p.qty, score: this.adlScore(c, sym, p) });
    }
    candidates.sort((x, y) => (x.score === y.score ? (x.acct.id < y.acct.id ? -1 : 1) : x.score > y.score ? -1 : 1));
    if (fundSide) candidates.push(fundSide);
    const out: { account: string; qty: number }[] = [];
    let left = rest;
    for (const c of candidates) {
      if (left === 0) break;
      const take = Math.min(Math.abs(left), Math.abs(c.qty)) * Math.sign(left);
      // The counterparty closes `take` of its opposite position at the bankruptcy price.
      this.trade(c.acct, sym, take, price, c.acct.positions.get(sym)?.mode ?? 'cross');
      this.trade(a, sym, -take, price, mode);
      out.push({ account: c.acct.id, qty: -take });
      left -= take;
      this.hooks.accountTouched?.(c.acct.id);
    }
    return out;
  }

  /** The ADL ranking score of one position, scaled by 10^8. */
  private adlScore(c: Account, sym: Symbol, p: Position): bigint {
    const SCALE = 100_000_000n;
    const value = notional(this.mark(sym), Math.abs(p.qty));
    const pnl = BigInt(p.qty) * BigInt(this.mark(sym)) - p.cost;
    const cost = abs(p.cost) > 0n ? abs(p.cost) : 1n;
    const eqRaw = p.mode === 'isolated' ? this.isolatedRisk(sym, p).equity : this.crossEquity(c);
    const equity = eqRaw > 0n ? eqRaw : 1n;
    return pnl > 0n ? (pnl * value * SCALE) / (cost * equity) : (pnl * equity * SCALE) / (cost * (value > 0n ? value : 1n));
  }

  /**
   * After a liquidation: a deficit in one stablecoin is first met by the other (swapped at par with the
   * fund, so each asset's ledger still balances), then covered by the fund. A fund driven below zero is
   * counted, never hidden.
   */
  private coverDeficit(a: Account): void {
    const fund = this.account(INSURANCE);
    for (const asset of ['USDT', 'USDC'] as Asset[]) {
      const other: Asset = asset === 'USDT' ? 'USDC' : 'USDT';
      if (a.balances[asset] < 0n && a.balances[other] > 0n) {
        const move = a.balances[other] < -a.balances[asset] ? a.balances[other] : -a.balances[asset];
        a.balances[other] -= move;
        fund.balances[other] += move;
        fund.balances[asset] -= move;
        a.balances[asset] += move;
      }
      if (a.balances[asset] < 0n) {
        fund.balances[asset] += a.balances[asset];
        this.insuranceFlows.covered -= a.balances[asset];
        a.balances[asset] = 0n;
        if (fund.balances[asset] < 0n) this.insuranceDeficits++;
      }
    }
  }

  /** Every account's non-zero position in a symbol, by account id (an empty list is a fact, not a missing one). */
  private holders(symbol: Symbol): [string, number][] {
    const out: [string, number][] = [];
    for (const a of this.accounts.values()) {
      const q = a.positions.get(symbol)?.qty ?? 0;
      if (q !== 0) out.push([a.id, q]);
    }
    return out.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  }

  /**
   * Settle one funding interval for a symbol against the holders at its end (recorded at the boundary;
   * the positions now only for a boundary recorded before holders were); payments net to exactly zero.
   */
  private settleFunding(symbol: Symbol, intervalStart: number, rate: bigint, markPrice: number): void {
    const key = fundingKey(symbol, intervalStart);
    if (this.funding.has(key)) return;
    const boundary = intervalStart + this.intervalOf(symbol);
    const recorded = this.boundaryPositions.get(boundary);
    const holders = recorded?.[symbol] ?? this.holders(symbol);
    const payers: { a: Account; weight: bigint; qty: number }[] = [];
    const receivers: { a: Account; weight: bigint; qty: number }[] = [];
    for (const [id, qty] of holders) {
      const longPays = rate > 0n;
      const isPayer = longPays ? qty > 0 : qty < 0;
      (isPayer ? payers : receivers).push({ a: this.account(id), weight: BigInt(Math.abs(qty)), qty });
    }
    let paid = 0n;
    let received = 0n;
    const payments: NonNullable<FundingRecord['payments']> = [];
    if (rate !== 0n && payers.length > 0 && receivers.length > 0) {
      const absRate = abs(rate);
      // Each holder's exact amount is mark x size x rate, in units of 1 / RATE_ONE of the money unit.
      // A payer pays it rounded UP to the unit (never in the payer's favour); a receiver gets it rounded
      // down, and what the payers' rounding added goes to the receivers with the largest fractions first,
      // so what is paid is exactly what is received.
      for (const { a, weight, qty } of payers) {
        const exact = notional(markPrice, Number(weight)) * absRate;
        const amount = (exact + RATE_ONE - 1n) / RATE_ONE;
        this.creditFunding(a, symbol, -amount);
        paid += amount;
        payments.push({ account: a.id, qty, amount: -amount });
        if (a.id === INSURANCE) this.insuranceFlows.funding -= amount;
      }
      let given = 0n;
      const shares = receivers.map((r) => {
        const exact = notional(markPrice, Number(r.weight)) * absRate;
        const base = exact / RATE_ONE;
        given += base;
        return { r, base, rem: exact % RATE_ONE };
      });
      shares.sort((x, y) => (x.rem === y.rem ? (x.r.a.id < y.r.a.id ? -1 : 1) : x.rem > y.rem ? -1 : 1));
      // Open interest is balanced (every fill has two sides), so the residue is below one unit per holder;
      // spread it one unit at a time, round after round.
      let left = paid - given;
      while (left > 0n) {
        for (const s of shares) {
          if (left === 0n) break;
          s.base += 1n;
          left -= 1n;
        }
      }
      for (const s of shares) {
        this.creditFunding(s.r.a, symbol, s.base);
        received += s.base;
        payments.push({ account: s.r.a.id, qty: s.r.qty, amount: s.base });
        if (s.r.a.id === INSURANCE) this.insuranceFlows.funding += s.base;
      }
    }
    // Nothing changed hands (a zero rate, or one side empty): every holder is still listed, owing nothing.
    if (payments.length === 0) for (const [id, qty] of holders) payments.push({ account: id, qty, amount: 0n });
    this.funding.set(key, { symbol, intervalStart, rate, markPrice, paid, received, payments });
    this.lastRates.set(symbol, rate);
    for (const map of [this.boundaryMarks, this.boundaryPositions, this.boundaryRates] as Map<number, Partial<Record<Symbol, unknown>>>[]) {
      const entry = map.get(boundary);
      if (!entry) continue;
      delete entry[symbol];
      if (Object.keys(entry).length === 0) map.delete(boundary);
    }
    for (const { a } of [...payers, ...receivers]) this.hooks.accountTouched?.(a.id);
  }

  /** Funding of an isolated position moves its margin (as Binance does); anything else, the unified balance. */
  private creditFunding(a: Account, symbol: Symbol, amount: bigint): void {
    const p = a.positions.get(symbol);
    if (p && p.qty !== 0 && p.mode === 'isolated' && !a.id.startsWith('@')) p.isolatedMargin += amount;
    else a.balances[INSTRUMENTS[symbol].settleAsset] += amount;
  }

  /** Per asset: balances + isolated margins - position costs over every account; zero when nothing leaked. */
  ledgerImbalance(): Record<Asset, bigint> {
    const out: Record<Asset, bigint> = { USDT: 0n, USDC: 0n };
    for (const a of this.accounts.values()) {
      out.USDT += a.balances.USDT;
      out.USDC += a.balances.USDC;
      for (const [sym, p] of a.positions) out[INSTRUMENTS[sym].settleAsset] += p.isolatedMargin - p.cost;
    }
    return out;
  }

  openInterestImbalance(symbol: Symbol): number {
    let q = 0;
    for (const a of this.accounts.values()) q += a.positions.get(symbol)?.qty ?? 0;
    return q;
  }
}

/** The furthest a market order may trade from the mark, on the tick grid, inside the band. */
export function marketBand(side: Side, mark: number, tick: number): number {
  const edge = (mark * (10_000 + (side === 'buy' ? PRICE_BAND_BPS : -PRICE_BAND_BPS))) / 10_000;
  return side === 'buy' ? Math.floor(edge / tick) * tick : Math.ceil(edge / tick) * tick;
}

export function fundingKey(symbol: Symbol, intervalStart: number): string {
  return `${symbol}:${new Date(intervalStart).toISOString()}`;
}

export function avgPriceOf(o: Order): number | null {
  if (o.filled === 0) return null;
  return Number(o.filledNotional / BigInt(o.filled));
}

export type { Side };

function ceilDiv(n: bigint, d: bigint): bigint {
  const q = n / d;
  return n % d !== 0n && n < 0n === d < 0n ? q + 1n : q;
}

function minBig(x: bigint, y: bigint): bigint {
  return x < y ? x : y;
}

/** uniMMR = equity / maintenance in units of 1/10000, rounded down (never flattering); null without maintenance. */
export function uniMMROf(equity: bigint, maintenance: bigint): bigint | null {
  if (maintenance <= 0n) return null;
  const n = equity * 10_000n;
  const q = n / maintenance;
  return n < 0n && n % maintenance !== 0n ? q - 1n : q;
}

export function bandOf(ratio: bigint | null): 'liquidation' | 'reduce-only' | 'warning' | 'ok' {
  if (ratio === null) return 'ok';
  return ratio <= UNIMMR_LIQUIDATION ? 'liquidation' : ratio <= UNIMMR_REDUCE_ONLY ? 'reduce-only' : ratio <= UNIMMR_WARNING ? 'warning' : 'ok';
}

/** A ratio in units of 1/10000 as a decimal string with four places. */
export function ratioText(ratio: bigint): string {
  const neg = ratio < 0n;
  const r = neg ? -ratio : ratio;
  return `${neg ? '-' : ''}${r / 10_000n}.${String(r % 10_000n).padStart(4, '0')}`;
}
