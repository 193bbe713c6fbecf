import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SnapshotError } from '../snapshot/format.js';
import { readSnapshot } from '../snapshot/reader.js';
import { SnapshotWriter } from '../snapshot/writer.js';
import { Exchange, fundingKey, avgPriceOf } from './exchange.js';
import { nextPrice } from './feed.js';
import { interestRate, type HaltedPremiumPolicy } from './market.js';
import { fmtMoney, fmtPrice, fmtQty, fmtRate } from './fixed.js';
import { INSTRUMENTS, SYMBOLS, type Symbol } from './instruments.js';
import type { LiquidationView, RiskAccount, RiskPreview, SettledFundingInterval } from '../contract/control-api.js';
import { EngineMetrics } from './metrics.js';
import { MarketFigures } from './market-metrics.js';
import { ensureBaseline, loadMarginModule, ModuleRefused, readActive, writeActive, type ActiveModules } from './module-store.js';
import { EXCESS_QUEUE_DEPTH, type MarginModule, type MarginQueue } from './modules/api.js';
import { snapshotHeader, snapshotRecords, SnapshotLoader } from './snapshot-codec.js';
import type { Account, Command, HaltCode, OrderRequest, OrderResult, Phase } from './types.js';
import { encodeRecord, scanWal, WalWriter, type WalDamage } from './wal.js';
import { dataDirLayout } from '../util/data-dir.js';
import type { EngineHealth } from '../contract/control-api.js';

/** The funding interval of a symbol nobody configured: Binance's 8 hours. */
export const DEFAULT_FUNDING_INTERVAL_MS = 8 * 3_600_000;

/** The most feed ticks one `POST /testnet/clock` may run. */
export const MAX_CLOCK_TICKS = 200_000;

/** The most funding intervals one recompute request may cover (over 9 years at 8h). */
export const MAX_RECOMPUTE_INTERVALS = 10_000;

export interface EngineOptions {
  dataDir: string;
  testnet: boolean;
  seed: number;
  /** 0 turns the price feed off (tests that need a still state). */
  feedIntervalMs: number;
  fundingIntervalMs: number;
  queueLimit: number;
  drainIntervalMs: number;
  drainBudget: number;
  /** Take a snapshot every this many WAL records (0: only on request). */
  snapshotEvery: number;
  log: (event: Record<string, unknown>) => void;
  now?: () => number;
  /** Symbols whose funding interval is not `fundingIntervalMs`. */
  fundingIntervals?: Partial<Record<Symbol, number>>;
  /** What premium samples taken while halted count as (default: excluded, or what the data dir recorded). */
  haltedPremium?: HaltedPremiumPolicy;
  /** `--funding-interval` was given: it applies to every symbol without its own, even over what the data dir recorded. */
  fundingIntervalGiven?: boolean;
  /** Testnet: time moves only by `POST /testnet/clock`, starting here (or at the last journaled time). */
  manualClock?: { start: number };
  /** Follower mode: this engine applies the primary's WAL stream and takes no writes until promoted. */
  follow?: { url: string; tokenFile: string };
}

/** Where a follower stands against its primary (`/health.following`). */
export interface FollowStatus {
  primary: string;
  /** Records the primary has made durable that this follower has not applied yet. */
  lagRecords: number;
  /** How far behind, in the primary's time: 0 when caught up. */
  lagMs: number;
  connected: boolean;
}

export interface Recovery {
  snapshotSeq: number | null;
  skippedSnapshots: { file: string; reason: string }[];
  replayed: number;
  walDamage: WalDamage | null;
}

/** Thrown for requests the engine refuses; carries the HTTP status the server should answer with. */
/** One settled funding interval as `POST /funding/recompute` answers it (the control API's type). */
type SettledInterval = SettledFundingInterval & { symbol: Symbol };

export class EngineRefusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface LoadedMargin {
  module: MarginModule;
  queue: MarginQueue;
}

/** A halt the engine decided itself: the code for programs, the reason (what the WAL records) for people. */
interface SelfHalt {
  code: HaltCode;
  reason: string;
}

/** The reason the engine records when a margin module overflows its queue (the WAL keeps this text). */
function excessQueueDepthReason(version: string, detail: string): string {
  return `EXCESS_QUEUE_DEPTH in margin ${version}: ${detail}`;
}
const EXCESS_QUEUE_DEPTH_REASON = /^EXCESS_QUEUE_DEPTH in margin [^\s:]+: /;

/**
 * The code of a halt restored from disk. The WAL and snapshots keep only the reason text, so after a
 * restart the code is recovered from the one reason format the engine itself writes (above).
 */
function restoredHaltCode(phase: Phase, reason: string | null): HaltCode | null {
  return phase === 'halted' && reason !== null && EXCESS_QUEUE_DEPTH_REASON.test(reason) ? 'EXCESS_QUEUE_DEPTH' : null;
}

/** The engine process's state: the exchange, its WAL, the margin module and the timers that drive them. */
export class EngineRuntime {
  seq = 0;
  readonly metrics = new EngineMetrics();
  /** Volume, funding, mark/index, open interest and the insurance fund for `/metrics`. */
  readonly figures = new MarketFigures();
  private margin!: LoadedMargin;
  private previousMargin: LoadedMargin | undefined;
  private active!: ActiveModules;
  private wal!: WalWriter;

  /** WAL group commits so far (`engine_wal_syncs_total`). */
  get walSyncs(): number {
    return this.wal.syncs;
  }
  private timers: NodeJS.Timeout[] = [];
  private replaying = true;
  /** Accounts to recalculate before the first phase after a halt opens. */
  private readonly pendingRecalc = new Set<string>();
  private pendingHalt: SelfHalt | undefined;
  /** Why the engine halted itself, while it stays halted that way; null when running or halted by an operator. */
  private haltCode: HaltCode | null = null;
  private admissionCredit = 0;
  private sinceSnapshot = 0;
  private fatal: ((e: Error) => void) | undefined;
  readonly now: () => number;
  /** The manual clock's time (testnet `--manual-clock`); unused otherwise. */
  private clock = 0;
  /** `primary` takes writes (unless fenced); a `follower` only applies its primary's WAL stream. */
  role: 'primary' | 'follower' = 'primary';
  /** A follower's view of its primary, kept up to date by the stream. */
  following: FollowStatus | null = null;
  /** The seq of the last record on disk, for `GET /wal/stream` heartbeats. */
  durableSeq = 0;
  /** Listeners of durable WAL records, in seq order (`GET /wal/stream`). */
  private readonly walListeners = new Set<(seq: number, line: string) => void>();
  /** What the snapshot header says of the process beyond the exchange (seed, testnet, modules), for a follower: the primary's. */
  private followedExtra: Record<string, unknown> | undefined;

  private constructor(
    readonly opts: EngineOptions,
    public ex: Exchange,
    readonly recovery: Recovery,
  ) {
    this.now = opts.manualClock ? () => this.clock : (opts.now ?? Date.now);
  }

  get dataDir(): string {
    return this.opts.dataDir;
  }

  /** Recover from the newest valid snapshot plus the WAL after it, then load the active modules. */
  static async open(opts: EngineOptions): Promise<EngineRuntime> {
    const walDir = dataDirLayout(opts.dataDir).wal;
    const recovery: Recovery = { snapshotSeq: null, skippedSnapshots: [], replayed: 0, walDamage: null };
    const loaded = await newestSnapshot(opts, recovery);
    let ex = loaded?.ex;
    const extra = loaded?.extra;
    ex ??= new Exchange(opts.fundingIntervalMs, exchangeOptions(opts));
    const rt = new EngineRuntime(opts, ex, recovery);
    const from = recovery.snapshotSeq ?? 0;
    const scan = scanWal<Command>(walDir, from, true);
    if (scan.damage) {
      recovery.walDamage = scan.damage;
      opts.log({ level: 'error', msg: 'WAL damaged: recovered up to the last good record', ...scan.damage });
    }
    const first = scan.records[0];
    if (first && first.seq !== from + 1) {
      // Records are missing between the snapshot and the WAL: starting would silently lose them.
      throw new Error(
        `WAL in ${walDir} starts at seq ${first.seq} but the newest valid snapshot is at seq ${from}: records in between are missing; restore them or move the WAL aside to start from the snapshot`,
      );
    }
    rt.seq = from;
    if (opts.follow) {
      rt.role = 'follower';
      rt.followedExtra = extra;
      rt.following = { primary: opts.follow.url, lagRecords: 0, lagMs: 0, connected: false };
    }
    for (const r of scan.records) {
      if (r.seq !== rt.seq + 1) break;
      ex.apply(r.body, r.seq);
      rt.seq = r.seq;
      recovery.replayed++;
    }
    rt.haltCode = restoredHaltCode(ex.phase, ex.reason);
    if (opts.manualClock) rt.clock = Math.max(opts.manualClock.start, ex.lastTs);
    rt.wal = await WalWriter.open(walDir, rt.seq + 1);
    rt.durableSeq = rt.seq;
    // A follower's configuration is its primary's, from the stream; only a primary journals its own.
    if (!opts.follow) rt.journalConfig();
    if (!opts.follow) rt.fenceFromMarker();
    rt.active = ensureBaseline(opts.dataDir);
    const version = rt.active.margin?.active ?? '1.4.2';
    rt.margin = rt.instantiate(await loadMarginModule(opts.dataDir, version));
    const prev = rt.active.margin?.previous;
    if (prev) {
      try {
        rt.previousMargin = rt.instantiate(await loadMarginModule(opts.dataDir, prev));
      } catch (e) {
        opts.log({ level: 'warn', msg: 'previous margin module not loadable', version: prev, reason: (e as Error).message });
      }
    }
    rt.replaying = false;
    // A restart during a halt does not know what changed while halted: everyone with a position is rechecked before trading opens.
    if (ex.phase === 'halted' && !opts.follow) rt.deferAllWithPositions();
    ex.hooks = {
      accountTouched: (account) => rt.touch(account),
      fill: (symbol, price, qty) => {
        rt.metrics.fills++;
        rt.figures.fill(symbol, price, qty);
      },
    };
    return rt;
  }

  /**
   * Funding intervals and the halted-premium policy shape what replay rebuilds, so they live in the WAL:
   * the data dir's own (from its snapshot and records) stay unless this start's flags say otherwise,
   * and then a `config` record says so from here on.
   */
  private journalConfig(): void {
    const o = this.opts;
    const fundingIntervals = Object.fromEntries(
      SYMBOLS.map((s) => [s, o.fundingIntervals?.[s] ?? (o.fundingIntervalGiven ? o.fundingIntervalMs : this.ex.intervalOf(s))]),
    ) as Record<Symbol, number>;
    const haltedPremium = o.haltedPremium ?? this.ex.haltedPremium;
    // A fresh data dir records anything that is not the built-in default (8h, exclude): a later start
    // without flags rebuilds from the WAL alone and must come to the same configuration.
    const base =
      this.seq === 0
        ? { intervals: Object.fromEntries(SYMBOLS.map((s) => [s, DEFAULT_FUNDING_INTERVAL_MS])) as Record<Symbol, number>, haltedPremium: 'exclude' }
        : { intervals: this.ex.intervals, haltedPremium: this.ex.haltedPremium };
    const same = haltedPremium === base.haltedPremium && SYMBOLS.every((s) => fundingIntervals[s] === base.intervals[s]);
    if (same) return;
    this.commit({ op: 'config', ts: this.now(), fundingIntervals, haltedPremium });
    o.log({ level: 'info', msg: 'funding configuration changed from here on', fundingIntervals, haltedPremium });
  }

  /**
   * A forced promotion left a marker in this data dir: a newer primary exists, so this one is fenced
   * (journaled) before it serves anything, rather than when the new primary next reaches it.
   */
  private fenceFromMarker(): void {
    let marker: { epoch?: unknown; by?: unknown };
    try {
      marker = JSON.parse(readFileSync(dataDirLayout(this.opts.dataDir).fenceMarker, 'utf8')) as typeof marker;
    } catch {
      return;
    }
    const epoch = marker.epoch;
    if (typeof epoch !== 'number' || !Number.isInteger(epoch) || epoch <= this.ex.epoch || this.ex.fenced) return;
    this.commit({ op: 'fence', ts: this.now(), epoch });
    this.opts.log({ level: 'warn', msg: 'fenced at start: a standby was promoted in its place', epoch, by: marker.by });
  }

  onFatal(handler: (e: Error) => void): void {
    this.fatal = handler;
  }

  private instantiate(module: MarginModule): LoadedMargin {
    return { module, queue: module.create({ limit: this.opts.queueLimit, recalc: (a) => this.recalc(a) }) };
  }

  // ---- the commit path: apply, then log; the caller awaits durability before acknowledging ----

  /** Does this engine take writes: a primary that was not fenced. */
  get writable(): boolean {
    return this.role === 'primary' && !this.ex.fenced;
  }

  private refuseWrites(): never {
    if (this.role === 'follower')
      throw new EngineRefusal(409, `this engine is a follower of ${this.following?.primary ?? 'its primary'}: send writes to the primary, or promote it`);
    throw new EngineRefusal(409, `this engine is fenced (epoch ${this.ex.epoch}): a standby was promoted in its place; it takes no writes`);
  }

  /** Listen to durable WAL records in seq order, as their WAL lines; returns the unsubscribe. */
  onWal(listener: (seq: number, line: string) => void): () => void {
    this.walListeners.add(listener);
    return () => this.walListeners.delete(listener);
  }

  /** After a record is on disk: note it, and hand its line to the stream listeners (in seq order: flushes complete in order). */
  private published(seq: number, body: Command, durable: Promise<void>): void {
    void durable.then(
      () => {
        this.durableSeq = Math.max(this.durableSeq, seq);
        if (this.walListeners.size === 0) return;
        const line = encodeRecord(seq, body);
        for (const l of this.walListeners) l(seq, line);
      },
      () => undefined,
    );
  }

  commit(cmd: Command): { result: OrderResult | undefined; durable: Promise<void> } {
    // A promotion's epoch record is what lifts the fence the follower applied from its old primary.
    if (!this.writable && cmd.op !== 'epoch') this.refuseWrites();
    this.seq++;
    const result = this.ex.apply(cmd, this.seq);
    const durable = this.wal.append(this.seq, cmd);
    durable.catch((e: Error) => this.fatal?.(e));
    this.published(this.seq, cmd, durable);
    this.sinceSnapshot++;
    // Any phase change ends the engine's own halt; `halt` sets the code again after committing its record.
    if (cmd.op === 'phase') this.haltCode = null;
    if (this.pendingHalt !== undefined && cmd.op !== 'phase') {
      const pending = this.pendingHalt;
      this.pendingHalt = undefined;
      this.halt(pending);
    }
    if (this.opts.snapshotEvery > 0 && this.sinceSnapshot >= this.opts.snapshotEvery) {
      this.sinceSnapshot = 0;
      setImmediate(() => void this.snapshot().catch((e: Error) => this.opts.log({ level: 'error', msg: 'auto snapshot failed', reason: e.message })));
    }
    return { result, durable };
  }

  private halt({ code, reason }: SelfHalt): void {
    if (this.ex.phase === 'halted' && this.ex.reason === reason) return;
    this.commit({ op: 'phase', ts: this.now(), phase: 'halted', reason });
    this.haltCode = code;
    this.opts.log({ level: 'error', msg: 'trading halted', reason });
  }

  /**
   * Margin events: an account changed and must be recalculated. Not on replay; while halted the account is
   * kept for the recalculation that runs before the first phase opens (nothing is discarded).
   */
  private touch(account: string): void {
    // A follower decides nothing: its primary's liquidations arrive in the stream.
    if (this.replaying || this.role === 'follower' || account.startsWith('@')) return;
    if (this.ex.phase === 'halted') {
      this.pendingRecalc.add(account);
      return;
    }
    this.enqueue(account);
  }

  /** The accounts of traders (not `@` system accounts) that hold a position in any symbol. */
  private *accountsWithPositions(): Generator<Account> {
    for (const a of this.ex.accounts.values()) {
      if (!a.id.startsWith('@') && [...a.positions.values()].some((p) => p.qty !== 0)) yield a;
    }
  }

  /** Every account with a position, kept for the recalculation before the next phase opens. */
  private deferAllWithPositions(): void {
    for (const a of this.accountsWithPositions()) this.pendingRecalc.add(a.id);
  }

  /**
   * Before the first phase after a halt opens: every account touched during the halt (a price tick, a
   * module swap, a queue that overflowed) is recalculated once, in id order, and any liquidation it
   * calls for is recorded before the phase changes. Bounded by the number of accounts; no queue, so it
   * cannot overflow.
   */
  private recalcPending(): number {
    let done = 0;
    // A liquidation touches the accounts it changes again; they are rechecked in the next round. Each
    // round liquidates at least one account or ends, so the rounds are bounded by the accounts.
    for (let round = 0; this.pendingRecalc.size > 0 && round <= this.ex.accounts.size; round++) {
      const ids = [...this.pendingRecalc].sort();
      this.pendingRecalc.clear();
      for (const id of ids) this.liquidateIfBelow(id);
      done += ids.length;
    }
    return done;
  }

  private enqueue(account: string): void {
    try {
      this.margin.queue.enqueue(account);
    } catch (e) {
      if ((e as { code?: string }).code !== EXCESS_QUEUE_DEPTH) throw e;
      if (this.pendingHalt === undefined) {
        const detail = (e as Error).message.replace(/^EXCESS_QUEUE_DEPTH: /, '');
        this.pendingHalt = { code: 'EXCESS_QUEUE_DEPTH', reason: excessQueueDepthReason(this.margin.module.version, detail) };
      }
      // The overflowing queue is replaced; what it held is not dropped: everyone with a position is
      // recalculated before trading opens again.
      this.margin = this.instantiate(this.margin.module);
      this.deferAllWithPositions();
    }
  }

  private flushPendingHalt(): void {
    if (this.pendingHalt === undefined) return;
    const pending = this.pendingHalt;
    this.pendingHalt = undefined;
    this.halt(pending);
  }

  private recalc(account: string): void {
    if (this.replaying || this.role === 'follower') return;
    if (this.ex.phase === 'halted') {
      this.pendingRecalc.add(account);
      return;
    }
    this.liquidateIfBelow(account);
  }

  private liquidateIfBelow(account: string): void {
    const below = this.ex.liquidatable(account);
    if (below.cross) {
      this.metrics.liquidations++;
      this.commit({ op: 'liquidate', ts: this.now(), account, symbol: null });
    }
    for (const symbol of below.isolated) {
      this.metrics.liquidations++;
      this.commit({ op: 'liquidate', ts: this.now(), account, symbol });
    }
  }

  get queueDepth(): number {
    return this.margin.queue.depth();
  }

  // ---- timers ----

  start(): void {
    if (this.role === 'follower') return;
    // A manual clock's feed ticks as `POST /testnet/clock` moves time past each feed interval.
    if (this.opts.feedIntervalMs > 0 && !this.opts.manualClock) this.timers.push(setInterval(() => this.tickFeed(), this.opts.feedIntervalMs));
    this.timers.push(
      setInterval(() => {
        if (!this.writable) return;
        if (this.ex.phase !== 'halted') this.margin.queue.drain(this.opts.drainBudget);
        this.flushPendingHalt();
      }, this.opts.drainIntervalMs),
    );
  }

  /** One step of the index feed (seeded, from the current index); settles the funding intervals it closes. */
  tickFeed(): void {
    if (!this.writable) return;
    const step = this.ex.feedStep + 1;
    const prices: Partial<Record<Symbol, number>> = {};
    for (const s of SYMBOLS) prices[s] = nextPrice(this.opts.seed, s, step, this.ex.index(s));
    this.commitIndex(step, prices);
    this.flushPendingHalt();
  }

  /**
   * Record an index tick; each funding interval it closes is settled at once while trading (a halted
   * engine keeps it, with its rate, mark and holders, for `funding.recompute`). The first tick ever
   * closes nothing that anyone held.
   */
  private commitIndex(step: number, prices: Partial<Record<Symbol, number>>): { durable: Promise<void> } {
    const hadTicks = this.ex.lastMarksTs > 0;
    const { durable } = this.commit({ op: 'marks', ts: this.now(), step, prices });
    if (hadTicks && this.ex.phase !== 'halted') {
      for (const { symbol, intervalStart } of this.ex.crossed) this.settleSymbol(symbol, intervalStart);
    }
    return { durable };
  }

  /** Settle one symbol's interval from what its end recorded; undefined when already settled or never recorded. */
  private settleSymbol(symbol: Symbol, intervalStart: number): SettledInterval | undefined {
    if (this.ex.funding.has(fundingKey(symbol, intervalStart))) return undefined;
    const boundary = intervalStart + this.ex.intervalOf(symbol);
    const markPrice = this.ex.boundaryMarks.get(boundary)?.[symbol];
    if (markPrice === undefined) return undefined;
    // Snapshots from before the premium index have no recorded rate: those intervals pay the interest rate.
    const rate = fmtRate(this.ex.boundaryRates.get(boundary)?.[symbol] ?? interestRate(this.ex.intervalOf(symbol)));
    this.commit({ op: 'funding', ts: this.now(), symbol, intervalStart, rate, markPrice });
    const f = this.ex.funding.get(fundingKey(symbol, intervalStart));
    return {
      symbol,
      intervalStart: new Date(intervalStart).toISOString(),
      rate,
      markPrice,
      paid: fmtMoney(f?.paid ?? 0n),
      received: fmtMoney(f?.received ?? 0n),
      holders: (f?.payments ?? []).map((p) => ({ account: p.account, qty: fmtQty(p.qty), amount: fmtMoney(p.amount) })),
    };
  }

  // ---- requests ----

  /** Admission: a weight of w admits w of every 100 orders, spread evenly. */
  admit(): boolean {
    const w = this.ex.admissionWeight;
    if (w >= 100) return true;
    this.admissionCredit += w;
    if (this.admissionCredit >= 100) {
      this.admissionCredit -= 100;
      return true;
    }
    return false;
  }

  async placeOrder(req: OrderRequest): Promise<OrderResult> {
    this.metrics.ordersIn++;
    const started = performance.now();
    if (!this.admit()) {
      this.metrics.reject('RETRY_LATER');
      return { id: null, status: 'rejected', filled: 0, avgPrice: null, reason: 'RETRY_LATER', message: `admission weight is ${this.ex.admissionWeight}` };
    }
    const decision = this.ex.decideOrder(req, this.now());
    if ('reject' in decision) {
      this.metrics.reject(decision.reject);
      this.metrics.matchLatency.observe(performance.now() - started);
      return { id: null, status: 'rejected', filled: 0, avgPrice: null, reason: decision.reject, message: decision.message };
    }
    const { result, durable } = this.commit(decision.command);
    this.metrics.matchLatency.observe(performance.now() - started);
    this.metrics.ordersAccepted++;
    await durable;
    return result as OrderResult;
  }

  async cancel(id: string): Promise<OrderResult> {
    const o = this.ex.orders.get(id);
    if (!o) throw new EngineRefusal(404, `no order ${id}`);
    if (this.ex.phase === 'halted') throw new EngineRefusal(409, `trading is halted${this.ex.reason ? `: ${this.ex.reason}` : ''}`);
    if (o.status !== 'open' && o.status !== 'partially_filled') throw new EngineRefusal(409, `order ${id} is ${o.status}`);
    const { durable } = this.commit({ op: 'cancel', ts: this.now(), id });
    this.metrics.cancels++;
    await durable;
    return { id, status: o.status, filled: o.filled, avgPrice: avgPriceOf(o) };
  }

  async deposit(account: string, asset: 'USDT' | 'USDC', amount: string): Promise<void> {
    const { durable } = this.commit({ op: 'deposit', ts: this.now(), account, asset, amount });
    await durable;
  }

  async setPhase(phase: Phase, reason: string | null): Promise<void> {
    if (this.ex.phase === 'halted' && phase !== 'halted' && this.pendingRecalc.size > 0) {
      const n = this.recalcPending();
      this.opts.log({ level: 'info', msg: 'recalculated the accounts touched during the halt', accounts: n });
    }
    const { durable } = this.commit({ op: 'phase', ts: this.now(), phase, reason: phase === 'halted' ? (reason ?? 'operator') : null });
    await durable;
  }

  async setAdmission(weight: number): Promise<void> {
    this.admissionCredit = 0;
    const { durable } = this.commit({ op: 'admission', ts: this.now(), weight });
    await durable;
  }

  modules(): ActiveModules {
    return readActive(this.dataDir) ?? this.active;
  }

  /** Swap the margin module without a restart; the previous one stays loaded for an instant rollback. */
  async activate(component: string, version: string): Promise<{ changed: boolean; active: string; previous: string | null }> {
    if (component !== 'margin') throw new EngineRefusal(400, `unknown component '${component}' (known: margin)`);
    const current = this.margin.module.version;
    if (current === version) return { changed: false, active: current, previous: this.active.margin?.previous ?? null };
    let module: MarginModule;
    try {
      module = await loadMarginModule(this.dataDir, version);
    } catch (e) {
      if (e instanceof ModuleRefused) throw new EngineRefusal(422, e.message);
      throw e;
    }
    this.swap(this.instantiate(module), this.margin);
    this.active = { ...this.active, margin: { active: version, previous: current } };
    writeActive(this.dataDir, this.active);
    // A standby gets its hotfix before it is promoted: its WAL is its primary's, so the module is
    // journaled when it becomes the primary (promote), not now.
    if (this.role === 'primary') await this.commit({ op: 'module', ts: this.now(), component, version, action: 'activate' }).durable;
    return { changed: true, active: version, previous: current };
  }

  async rollback(component: string): Promise<{ active: string; previous: string | null }> {
    if (component !== 'margin') throw new EngineRefusal(400, `unknown component '${component}' (known: margin)`);
    const prevVersion = this.active.margin?.previous;
    if (!prevVersion) throw new EngineRefusal(409, 'no previous margin version to roll back to');
    const previous = this.previousMargin ?? this.instantiate(await loadMarginModule(this.dataDir, prevVersion));
    const current = this.margin.module.version;
    this.swap(this.instantiate(previous.module), this.margin);
    this.active = { ...this.active, margin: { active: prevVersion, previous: current } };
    writeActive(this.dataDir, this.active);
    if (this.role === 'primary') await this.commit({ op: 'module', ts: this.now(), component, version: prevVersion, action: 'rollback' }).durable;
    return { active: prevVersion, previous: current };
  }

  private swap(next: LoadedMargin, old: LoadedMargin): void {
    this.previousMargin = old;
    this.margin = next;
    // Recalculate every account with a position under the new module.
    for (const a of this.accountsWithPositions()) this.touch(a.id);
    this.flushPendingHalt();
  }

  /** The margin-burst fault: a flood of recalculation events, as a volatility spike produces. */
  marginBurst(events: number): { events: number; queueDepth: number; phase: Phase; reason: string | null } {
    const ids = [...this.ex.accounts.keys()].filter((id) => !id.startsWith('@'));
    if (ids.length === 0) throw new EngineRefusal(409, 'no accounts to recalculate: deposit first');
    let sent = 0;
    for (let i = 0; i < events && this.pendingHalt === undefined; i++) {
      this.enqueue(ids[i % ids.length] as string);
      sent++;
    }
    const depth = this.queueDepth;
    this.flushPendingHalt();
    return { events: sent, queueDepth: depth, phase: this.ex.phase, reason: this.ex.reason };
  }

  /** The `wal-stall` fault: every WAL fsync takes `ms` longer for the next `forMs`. */
  stallWal(ms: number, forMs: number): void {
    this.wal.stallSyncs(ms, forMs);
  }

  /** The `control-latency` fault: until this time (epoch ms), every control API answer is held `ms` first. */
  controlLatency = { ms: 0, until: 0 };

  /** Settle the funding intervals in [from, to) that were missed (while halted), from the recorded marks. */
  async recomputeFunding(
    from: number,
    to: number,
  ): Promise<{
    intervals: SettledInterval[];
    missingMarks: string[];
    totals: Record<string, { paid: string; received: string; net: string }>;
  }> {
    const intervals: SettledInterval[] = [];
    const missing = new Set<number>();
    // Nothing to settle before the first recorded mark: start there, and refuse absurd ranges.
    const shortest = Math.min(...SYMBOLS.map((s) => this.ex.intervalOf(s)));
    const earliest = Math.min(...this.ex.boundaryMarks.keys(), ...[...this.ex.funding.values()].map((f) => f.intervalStart), this.now());
    from = Math.max(from, earliest - Math.max(...SYMBOLS.map((s) => this.ex.intervalOf(s))));
    if ((to - from) / shortest > MAX_RECOMPUTE_INTERVALS) {
      throw new EngineRefusal(400, `range covers more than ${MAX_RECOMPUTE_INTERVALS} funding intervals; recompute it in parts`);
    }
    // Each symbol on its own interval grid; the answer in time order, symbols in the table's order.
    const due: { symbol: Symbol; start: number }[] = [];
    for (const symbol of SYMBOLS) {
      const interval = this.ex.intervalOf(symbol);
      for (let start = Math.ceil(from / interval) * interval; start + interval <= to && start + interval <= this.now(); start += interval) {
        if (this.ex.funding.has(fundingKey(symbol, start))) continue;
        if (this.ex.boundaryMarks.get(start + interval)?.[symbol] === undefined) missing.add(start);
        else due.push({ symbol, start });
      }
    }
    due.sort((x, y) => x.start - y.start || SYMBOLS.indexOf(x.symbol) - SYMBOLS.indexOf(y.symbol));
    for (const { symbol, start } of due) {
      const settled = this.settleSymbol(symbol, start);
      if (settled) intervals.push(settled);
    }
    const missingMarks = [...missing].sort((x, y) => x - y).map((t) => new Date(t).toISOString());
    await this.wal.drain();
    const totals: Record<string, { paid: string; received: string; net: string }> = {};
    for (const s of SYMBOLS) {
      let paid = 0n;
      let received = 0n;
      for (const f of this.ex.funding.values()) {
        if (f.symbol === s && f.intervalStart >= from && f.intervalStart < to) {
          paid += f.paid;
          received += f.received;
        }
      }
      totals[s] = { paid: fmtMoney(paid), received: fmtMoney(received), net: fmtMoney(received - paid) };
    }
    return { intervals, missingMarks, totals };
  }

  /** Write a snapshot of the state at the current seq, then start a new WAL segment. */
  async snapshot(): Promise<{ path: string; seq: number; sha256: string; records: number }> {
    const seq = this.seq;
    const path = join(dataDirLayout(this.dataDir).snapshots, `${seq}.ndjson`);
    const writer = new SnapshotWriter(path, snapshotHeader(this.ex, seq, this.headerExtra()));
    for (const r of snapshotRecords(this.ex)) writer.record(r);
    const { sha256, records } = writer.finish();
    this.sinceSnapshot = 0;
    await this.wal.rotate();
    return { path, seq, sha256, records };
  }

  /**
   * The state as snapshot lines once every record it includes is on disk: a reader that compares it
   * with the WAL (integrity.check --wal) then finds each of its records there. Nothing can commit
   * between the last check that the WAL is idle and the synchronous build of the lines.
   */
  async durableStateLines(): Promise<string[]> {
    while (!this.wal.idle) await this.wal.drain();
    return this.stateLines();
  }

  /** The state as snapshot lines, built synchronously so it is consistent at one seq. */
  stateLines(): string[] {
    const lines = [JSON.stringify(snapshotHeader(this.ex, this.seq, this.headerExtra()))];
    for (const r of snapshotRecords(this.ex)) lines.push(JSON.stringify(r));
    return lines;
  }

  private headerExtra(): Record<string, unknown> {
    if (this.followedExtra) return this.followedExtra;
    return { seed: this.opts.seed, testnet: this.opts.testnet, modules: { margin: this.margin.module.version } };
  }

  /** `GET /risk/preview`: who would be liquidated, or put in reduce-only, if trading opened at the current marks. */
  riskPreview(): RiskPreview {
    const rank = { liquidation: 0, 'reduce-only': 1, warning: 2, ok: 3 } as const;
    const all: RiskAccount[] = [];
    for (const a of this.accountsWithPositions()) {
      const r = this.ex.riskOf(a);
      all.push({
        account: a.id,
        equity: fmtMoney(r.equity),
        maintenance: fmtMoney(r.maintenance),
        uniMMR: r.uniMMR,
        band: r.band,
        wouldLiquidate: r.below.cross || r.below.isolated.length > 0,
        isolatedBelow: r.below.isolated,
      });
    }
    const shown = all
      .filter((x) => x.band !== 'ok' || x.wouldLiquidate)
      .sort((x, y) => Number(y.wouldLiquidate) - Number(x.wouldLiquidate) || rank[x.band] - rank[y.band] || (x.account < y.account ? -1 : 1));
    return {
      marks: Object.fromEntries([...this.ex.marks].map(([s, p]) => [s, fmtPrice(p)])),
      accounts: shown,
      counts: {
        accounts: all.length,
        wouldLiquidate: all.filter((x) => x.wouldLiquidate).length,
        liquidation: all.filter((x) => x.band === 'liquidation').length,
        reduceOnly: all.filter((x) => x.band === 'reduce-only').length,
        warning: all.filter((x) => x.band === 'warning').length,
      },
    };
  }

  /** Testnet only: set index prices now (journaled like a feed tick, so replay stays exact). */
  async setIndex(prices: Partial<Record<Symbol, number>>): Promise<void> {
    if (!this.opts.testnet) throw new EngineRefusal(404, 'no route POST /testnet/index (the engine was not started with --testnet)');
    const { durable } = this.commitIndex(this.ex.feedStep, prices);
    this.flushPendingHalt();
    await durable;
  }

  /**
   * Testnet `--manual-clock` only: move time forward by `ms`. The feed ticks at each feed interval passed
   * (settling the funding intervals they close), then a `clock` record keeps the new time in the WAL, so
   * a restart resumes at it and replay is exact.
   */
  async advanceClock(ms: number): Promise<{ now: string; ticks: number }> {
    if (!this.opts.testnet || !this.opts.manualClock) {
      throw new EngineRefusal(404, 'no route POST /testnet/clock (the engine was not started with --testnet --manual-clock)');
    }
    const target = this.clock + ms;
    const every = this.opts.feedIntervalMs;
    if (every > 0 && Math.floor(target / every) - Math.floor(this.clock / every) > MAX_CLOCK_TICKS) {
      throw new EngineRefusal(400, `that advance is more than ${MAX_CLOCK_TICKS} feed ticks at --feed-interval ${every}ms; advance in parts`);
    }
    let ticks = 0;
    if (every > 0) {
      for (let t = (Math.floor(this.clock / every) + 1) * every; t <= target; t += every) {
        this.clock = t;
        this.tickFeed();
        // What the margin timer would have done between two ticks in real time: drain the recalculations
        // the tick queued (and liquidate), so a long advance neither floods the queue nor skips a check.
        if (this.ex.phase !== 'halted') this.margin.queue.drain(Number.MAX_SAFE_INTEGER);
        this.flushPendingHalt();
        ticks++;
      }
    }
    this.clock = target;
    await this.commit({ op: 'clock', ts: target }).durable;
    return { now: new Date(target).toISOString(), ticks };
  }

  /** `POST /leverage`: an account's leverage for a symbol, refused above the first bracket's or if it would leave the account short of initial margin. */
  async setLeverage(account: string, symbol: Symbol, leverage: number): Promise<{ leverage: number; maxLeverage: number }> {
    const a = this.ex.accounts.get(account);
    if (!a || account.startsWith('@')) throw new EngineRefusal(404, `no account ${account}: deposit first`);
    const max = (INSTRUMENTS[symbol].brackets[0] as { maxLeverage: number }).maxLeverage;
    if (!Number.isInteger(leverage) || leverage < 1 || leverage > max) throw new EngineRefusal(400, `leverage for ${symbol} must be an integer 1..${max}`);
    if (this.ex.leverageWouldBreach(a, symbol, leverage)) throw new EngineRefusal(409, `leverage ${leverage} would leave ${account} short of initial margin`);
    await this.commit({ op: 'leverage', ts: this.now(), account, symbol, leverage }).durable;
    return { leverage, maxLeverage: max };
  }

  /**
   * A follower applies one record of its primary's stream: the same seq, the same state machine, its own
   * WAL (so it restarts where it was). A gap is refused: the caller stops rather than diverge.
   */
  applyFollowed(seq: number, body: Command): Promise<void> {
    if (this.role !== 'follower') throw new Error("only a follower applies a primary's records");
    if (seq !== this.seq + 1) throw new Error(`the primary's stream skipped from seq ${this.seq} to ${seq}`);
    this.seq = seq;
    this.ex.apply(body, seq);
    // The halt code follows the phase the stream sets, as a restart derives it from a halted state.
    if (body.op === 'phase') this.haltCode = restoredHaltCode(this.ex.phase, this.ex.reason);
    if (body.op === 'module' && this.followedExtra) {
      this.followedExtra = { ...this.followedExtra, modules: { ...(this.followedExtra.modules as object), [body.component]: body.version } };
    }
    const durable = this.wal.append(seq, body);
    durable.catch((e: Error) => this.fatal?.(e));
    this.published(seq, body, durable);
    this.sinceSnapshot++;
    if (this.opts.snapshotEvery > 0 && this.sinceSnapshot >= this.opts.snapshotEvery) {
      this.sinceSnapshot = 0;
      setImmediate(() => void this.snapshot().catch((e: Error) => this.opts.log({ level: 'error', msg: 'auto snapshot failed', reason: e.message })));
    }
    return durable;
  }

  /** `POST /fence`: this primary takes no more writes, durably (a restart stays fenced); its last seq for the standby to reach. */
  async fence(epoch: number | undefined): Promise<{ fenced: true; seq: number; epoch: number }> {
    if (this.role === 'follower') throw new EngineRefusal(409, 'a follower takes no writes already; fence its primary');
    if (epoch !== undefined && epoch < this.ex.epoch) throw new EngineRefusal(409, `epoch ${epoch} is older than this engine's ${this.ex.epoch}`);
    if (!this.ex.fenced) {
      await this.commit({ op: 'fence', ts: this.now(), epoch: epoch ?? this.ex.epoch }).durable;
      this.opts.log({ level: 'warn', msg: 'fenced: no more writes', seq: this.seq });
    }
    await this.wal.drain();
    return { fenced: true, seq: this.seq, epoch: this.ex.epoch };
  }

  /**
   * `POST /promote`: a follower becomes the primary. Unless forced, its primary must be fenced, and the
   * follower first applies every record up to the primary's last; then a new epoch is journaled and the
   * engine takes writes. A forced promotion (primary unreachable or not fenced) is journaled as such.
   */
  async promote(o: {
    force: boolean;
    primarySeq: number | null;
    timeoutMs: number;
  }): Promise<{ role: 'primary'; epoch: number; seq: number; forced: boolean }> {
    if (this.role !== 'follower') throw new EngineRefusal(409, 'this engine is already a primary');
    if (o.primarySeq !== null) {
      const deadline = Date.now() + o.timeoutMs;
      while (this.seq < o.primarySeq) {
        if (Date.now() > deadline)
          throw new EngineRefusal(504, `caught up to seq ${this.seq} of the fenced primary's ${o.primarySeq} in ${o.timeoutMs}ms; promote again`);
        await new Promise((r) => setTimeout(r, 10));
      }
      if (this.seq > o.primarySeq) throw new EngineRefusal(409, `this follower is at seq ${this.seq}, past the fenced primary's ${o.primarySeq}`);
    }
    this.stopFollowing?.();
    this.role = 'primary';
    const forced = o.primarySeq === null;
    await this.commit({ op: 'epoch', ts: this.now(), epoch: this.ex.epoch + 1, forced }).durable;
    const epochSeq = this.seq;
    // A hotfix it got while following is its own from here on: journaled, so the WAL explains the module.
    const followedMargin = (this.followedExtra?.modules as Record<string, string> | undefined)?.margin;
    const ownMargin = this.margin.module.version;
    if (followedMargin !== undefined && followedMargin !== ownMargin)
      await this.commit({ op: 'module', ts: this.now(), component: 'margin', version: ownMargin, action: 'activate' }).durable;
    this.followedExtra = undefined;
    // What its primary left unchecked while halted is rechecked under this engine's module before trading opens.
    if (this.ex.phase === 'halted') this.deferAllWithPositions();
    this.following = null;
    this.opts.log({ level: 'warn', msg: 'promoted to primary', epoch: this.ex.epoch, seq: this.seq, forced });
    this.start();
    return { role: 'primary', epoch: this.ex.epoch, seq: epochSeq, forced };
  }

  /**
   * `POST /promote {"reclaim": true}` on a primary that fenced itself for a handover that did not happen
   * (the standby was dropped before its promotion): a new epoch lifts the fence. Refused when a newer
   * primary fenced it: that one may have taken writes, and this engine can only follow it now.
   */
  async reclaim(): Promise<{ role: 'primary'; epoch: number; seq: number; forced: false; reclaimed: true }> {
    if (this.role !== 'primary') throw new EngineRefusal(409, 'this engine is a follower: promote it (without reclaim)');
    if (this.ex.fencedByNewer)
      throw new EngineRefusal(
        409,
        `this engine was fenced by the primary of epoch ${this.ex.epoch}: it can only follow that primary now (engine.demote), then be promoted from there`,
      );
    if (this.ex.fenced) {
      await this.commit({ op: 'epoch', ts: this.now(), epoch: this.ex.epoch + 1, forced: false }).durable;
      this.opts.log({ level: 'warn', msg: 'fence lifted: this primary takes writes again', epoch: this.ex.epoch, seq: this.seq });
    }
    return { role: 'primary', epoch: this.ex.epoch, seq: this.seq, forced: false, reclaimed: true };
  }

  /** Set by the follow stream: stops it (on promotion). */
  stopFollowing: (() => void) | undefined;

  /** `GET /liquidations`: the liquidations this process has seen (newest last), money as decimal strings. */
  liquidationsView(): LiquidationView[] {
    return this.ex.liquidations.map((l) => ({
      at: new Date(l.ts).toISOString(),
      account: l.account,
      symbol: l.symbol,
      qty: fmtQty(l.qty),
      bankruptcyPrice: fmtPrice(l.bankruptcyPrice),
      markPrice: fmtPrice(l.markPrice),
      book: { qty: fmtQty(l.book.qty), notional: fmtMoney(l.book.notional) },
      fee: fmtMoney(l.fee),
      insurance: { qty: fmtQty(l.insurance.qty) },
      adl: l.adl.map((x) => ({ account: x.account, qty: fmtQty(x.qty) })),
    }));
  }

  /** `GET /health`, typed by the contract the client reads it with. */
  health(): EngineHealth {
    return {
      phase: this.ex.phase,
      reason: this.ex.reason,
      haltCode: this.haltCode,
      haltedAtSeq: this.ex.haltedAtSeq,
      haltedAt: this.ex.haltedAt === null ? null : new Date(this.ex.haltedAt).toISOString(),
      haltReason: this.ex.haltReason,
      seq: this.seq,
      modules: this.modules(),
      queueDepth: this.queueDepth,
      queueLimit: this.opts.queueLimit,
      pendingRecalc: this.pendingRecalc.size,
      admissionWeight: this.ex.admissionWeight,
      marks: Object.fromEntries([...this.ex.marks].map(([s, p]) => [s, fmtPrice(p)])),
      index: Object.fromEntries(SYMBOLS.map((s) => [s, fmtPrice(this.ex.index(s))])),
      predictedFundingRates: Object.fromEntries(SYMBOLS.map((s) => [s, fmtRate(this.ex.predictedRate(s))])),
      insuranceFund: Object.fromEntries(Object.entries(this.ex.account('@insurance').balances).map(([k, v]) => [k, fmtMoney(v)])),
      insuranceDeficits: this.ex.insuranceDeficits,
      testnet: this.opts.testnet,
      role: this.role,
      epoch: this.ex.epoch,
      epochSince: this.ex.epochSince,
      fenced: this.ex.fenced,
      following: this.following,
      pid: process.pid,
      recovery: this.recovery,
      ledger: Object.fromEntries(Object.entries(this.ex.ledgerImbalance()).map(([k, v]) => [k, fmtMoney(v)])),
    };
  }

  openOrderCount(): number {
    let n = 0;
    for (const b of this.ex.books.values()) n += b.size;
    return n;
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.wal.close();
  }
}

function exchangeOptions(opts: EngineOptions): { intervals?: Partial<Record<Symbol, number>>; haltedPremium?: HaltedPremiumPolicy } {
  return { ...(opts.fundingIntervals ? { intervals: opts.fundingIntervals } : {}), ...(opts.haltedPremium ? { haltedPremium: opts.haltedPremium } : {}) };
}

/** The newest snapshot that loads (skipped ones are noted in `recovery`), with what its header says of the process. */
async function newestSnapshot(opts: EngineOptions, recovery: Recovery): Promise<{ ex: Exchange; extra: Record<string, unknown> } | undefined> {
  const snapDir = dataDirLayout(opts.dataDir).snapshots;
  mkdirSync(snapDir, { recursive: true });
  const snaps = readdirSync(snapDir)
    .filter((f) => /^\d+\.ndjson$/.test(f))
    .sort((a, b) => Number.parseInt(b, 10) - Number.parseInt(a, 10));
  for (const f of snaps) {
    const file = join(snapDir, f);
    try {
      let loader: SnapshotLoader | undefined;
      let seq = 0;
      let extra: Record<string, unknown> = {};
      for await (const r of readSnapshot(file, (h) => {
        loader = new SnapshotLoader(h, opts.fundingIntervalMs, exchangeOptions(opts));
        seq = h.seq;
        extra = { seed: h.seed, testnet: h.testnet, modules: h.modules };
      })) {
        loader?.add(r);
      }
      if (!loader) throw new SnapshotError(file, 1, 'no header');
      recovery.snapshotSeq = seq;
      return { ex: loader.finish(), extra };
    } catch (e) {
      const reason = e instanceof Error ? e.message : String(e);
      recovery.skippedSnapshots.push({ file, reason });
      opts.log({ level: 'warn', msg: 'snapshot skipped', file, reason });
    }
  }
  return undefined;
}
