import { OrderBook, type RestingOrder, type SelfTrade, type Side } from './book.js';
import { abs, bpsOf, MONEY_DECIMALS, notional, parseFixed, RATE_ONE } from './fixed.js';
import { INSTRUMENTS, SYMBOLS, MAKER_FEE_BPS, TAKER_FEE_BPS, type Asset, type Symbol } from './instruments.js';
import type { Account, Command, MarginMode, Order, OrderRequest, OrderRequestJson, OrderResult, Phase, RejectReason } from './types.js';

/** System accounts: where deposits come from, where fees go, and the liquidation backstop. */
export const EXTERNAL = '@external';
export const FEES = '@fees';
export const INSURANCE = '@insurance';
export const SYSTEM_ACCOUNTS = [EXTERNAL, FEES, INSURANCE] as const;

/** Limit prices further than this from the mark are refused (a fat-finger band), basis points. */
export const PRICE_BAND_BPS = 2_000;

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
  hooks: ExchangeHooks = {};

  constructor(readonly fundingIntervalMs: number) {
    for (const s of SYMBOLS) {
      this.books.set(s, new OrderBook());
      this.marks.set(s, INSTRUMENTS[s].basePrice);
    }
    for (const id of SYSTEM_ACCOUNTS) this.account(id);
  }

  account(id: string): Account {
    let a = this.accounts.get(id);
    if (!a) {
      a = { id, balances: { USDT: 0n, USDC: 0n }, positions: new Map(), openOrders: new Set(), reduceOnlyOrders: new Set(), orderMargin: 0n };
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

  crossMaintenance(a: Account): bigint {
    let mm = 0n;
    for (const [sym, p] of a.positions) {
      if (p.mode === 'cross' && p.qty !== 0) mm += bpsOf(notional(this.mark(sym), Math.abs(p.qty)), INSTRUMENTS[sym].maintenanceMarginBps);
    }
    return mm;
  }

  /** Initial margin held by cross positions and by every open order. */
  initialMarginUsed(a: Account): bigint {
    let im = 0n;
    for (const [sym, p] of a.positions) {
      if (p.mode === 'cross' && p.qty !== 0) im += bpsOf(notional(this.mark(sym), Math.abs(p.qty)), INSTRUMENTS[sym].initialMarginBps);
    }
    return im + a.orderMargin;
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
    const below = this.belowMaintenance(a.id);
    // Ratio in units of 1/10000, rounded down (never flattering the account).
    const ratio = maintenance > 0n ? (equity * 10_000n) / maintenance : null;
    const band = ratio === null ? 'ok' : ratio <= 10_500n ? 'liquidation' : ratio <= 12_000n ? 'reduce-only' : ratio <= 15_000n ? 'warning' : 'ok';
    const uniMMR =
      ratio === null
        ? null
        : `${ratio < 0n ? '-' : ''}${(ratio < 0n ? -ratio : ratio) / 10_000n}.${String((ratio < 0n ? -ratio : ratio) % 10_000n).padStart(4, '0')}`;
    return { equity, maintenance, uniMMR, band, below };
  }

  /** Is the account (cross) or one of its isolated positions below maintenance margin? */
  belowMaintenance(accountId: string): { cross: boolean; isolated: Symbol[] } {
    const a = this.accounts.get(accountId);
    const out = { cross: false, isolated: [] as Symbol[] };
    if (!a || accountId.startsWith('@')) return out;
    const mm = this.crossMaintenance(a);
    out.cross = mm > 0n && this.crossEquity(a) < mm;
    for (const [sym, p] of a.positions) {
      if (p.mode !== 'isolated' || p.qty === 0) continue;
      const eq = p.isolatedMargin + BigInt(p.qty) * BigInt(this.mark(sym)) - p.cost;
      if (eq < bpsOf(notional(this.mark(sym), Math.abs(p.qty)), INSTRUMENTS[sym].maintenanceMarginBps)) out.isolated.push(sym);
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
      // Margin at the prices the order would really trade at, plus the loss against the mark it would
      // take on at once, plus what it leaves resting at its limit. What only closes the position needs
      // none of that now; only a remainder left resting is held to initial margin.
      const markValue = notional(mark, taken.qty);
      const immediateLoss = req.side === 'buy' ? taken.notional - markValue : markValue - taken.notional;
      const restingQty = req.type === 'limit' && req.tif === 'GTC' ? req.qty - taken.qty : 0;
      const resting = notional(req.price ?? mark, restingQty);
      const required = closesOnly
        ? bpsOf(resting, inst.initialMarginBps)
        : bpsOf(taken.notional + resting, inst.initialMarginBps) + bpsOf(taken.notional, TAKER_FEE_BPS) + (immediateLoss > 0n ? immediateLoss : 0n);
      if (required > 0n && this.available(a) < required) return reject('INSUFFICIENT_MARGIN', 'the order would breach initial margin');
    }
    const json: OrderRequestJson = { ...req, price: req.price ?? null, ...(bandPrice === undefined ? {} : { bandPrice }) };
    return { command: { op: 'order', ts, num: this.nextOrderNum, req: json } };
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
        this.feedStep = c.step;
        this.lastMarksTs = c.ts;
        for (const s of SYMBOLS) {
          const p = c.prices[s];
          if (p !== undefined) this.marks.set(s, p);
        }
        const boundary = Math.floor(c.ts / this.fundingIntervalMs) * this.fundingIntervalMs;
        if (!this.boundaryMarks.has(boundary)) {
          this.boundaryMarks.set(boundary, Object.fromEntries(this.marks));
          this.boundaryPositions.set(boundary, this.holders());
        }
        if (this.hooks.accountTouched) {
          for (const a of this.accounts.values()) {
            for (const [sym, p] of a.positions) if (p.qty !== 0 && c.prices[sym] !== undefined && !a.id.startsWith('@')) this.hooks.accountTouched(a.id);
          }
        }
        return undefined;
      }
      case 'liquidate':
        this.liquidate(c.account, c.symbol);
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

  private fill(taker: Order, maker: RestingOrder, qty: number, price: number): void {
    const makerOrder = this.orders.get(orderIdOf(maker.id)) as Order;
    const inst = INSTRUMENTS[taker.symbol];
    const size = notional(price, qty);
    for (const [o, feeBps] of [
      [taker, TAKER_FEE_BPS],
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
      open = q - closeQty;
      if (pos.qty === 0 && pos.mode === 'isolated') {
        // An isolated position's losses stop at its margin: a shortfall is the insurance fund's.
        if (pos.isolatedMargin >= 0n || acct.id.startsWith('@')) acct.balances[inst.settleAsset] += pos.isolatedMargin;
        else this.account(INSURANCE).balances[inst.settleAsset] += pos.isolatedMargin;
        pos.isolatedMargin = 0n;
      }
    }
    if (open !== 0) {
      if (pos.qty === 0) pos.mode = mode;
      pos.qty += open;
      pos.cost += BigInt(open) * BigInt(price);
      if (pos.mode === 'isolated' && !acct.id.startsWith('@')) {
        const im = bpsOf(notional(price, Math.abs(open)), inst.initialMarginBps);
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
    const next = resting && !o.reduceOnly ? bpsOf(notional(o.price, o.qty - o.filled), INSTRUMENTS[o.symbol].initialMarginBps) : 0n;
    this.account(o.account).orderMargin += next - o.reservedMargin;
    o.reservedMargin = next;
  }

  /**
   * Hand an account's cross positions (or one isolated position) to the insurance fund at the mark, after
   * cancelling its open orders; the fund covers a negative balance so no account is left in debt.
   */
  private liquidate(accountId: string, symbol: Symbol | null): void {
    const a = this.accounts.get(accountId);
    if (!a) return;
    const fund = this.account(INSURANCE);
    for (const id of [...a.openOrders]) {
      const o = this.orders.get(id) as Order;
      if (symbol === null || o.symbol === symbol) this.cancelOrder(id);
    }
    for (const [sym, p] of a.positions) {
      if (p.qty === 0) continue;
      if (symbol === null ? p.mode !== 'cross' : sym !== symbol) continue;
      const q = p.qty;
      const mark = this.mark(sym);
      this.trade(a, sym, -q, mark, p.mode);
      this.trade(fund, sym, q, mark, 'cross');
    }
    for (const asset of ['USDT', 'USDC'] as Asset[]) {
      // Unified margin: a deficit in one stablecoin is first met by the other, swapped at par with the
      // fund (so each asset's ledger still balances), then covered by the fund.
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
        a.balances[asset] = 0n;
      }
    }
    this.hooks.accountTouched?.(accountId);
  }

  /** Every account's non-zero position per symbol, by account id. */
  private holders(): Partial<Record<Symbol, [string, number][]>> {
    // Every symbol has its entry, empty when nobody holds it: an empty list is a fact, not a missing one.
    const out: Partial<Record<Symbol, [string, number][]>> = Object.fromEntries(SYMBOLS.map((s) => [s, []]));
    for (const a of [...this.accounts.values()].sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0))) {
      for (const [sym, p] of a.positions) if (p.qty !== 0) (out[sym] ??= []).push([a.id, p.qty]);
    }
    return out;
  }

  /**
   * Settle one funding interval for a symbol against the holders at its end (recorded at the boundary;
   * the positions now only for a boundary recorded before holders were); payments net to exactly zero.
   */
  private settleFunding(symbol: Symbol, intervalStart: number, rate: bigint, markPrice: number): void {
    const key = fundingKey(symbol, intervalStart);
    if (this.funding.has(key)) return;
    const inst = INSTRUMENTS[symbol];
    const boundary = intervalStart + this.fundingIntervalMs;
    const recorded = this.boundaryPositions.get(boundary);
    const holders = (recorded ?? this.holders())[symbol] ?? [];
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
        a.balances[inst.settleAsset] -= amount;
        paid += amount;
        payments.push({ account: a.id, qty, amount: -amount });
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
        s.r.a.balances[inst.settleAsset] += s.base;
        received += s.base;
        payments.push({ account: s.r.a.id, qty: s.r.qty, amount: s.base });
      }
    }
    this.funding.set(key, { symbol, intervalStart, rate, markPrice, paid, received, payments });
    this.boundaryMarks.delete(boundary);
    if (recorded) {
      delete recorded[symbol];
      if (Object.keys(recorded).length === 0) this.boundaryPositions.delete(boundary);
    }
    for (const { a } of [...payers, ...receivers]) this.hooks.accountTouched?.(a.id);
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
