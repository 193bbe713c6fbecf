import type { Finding } from './findings.js';

const SETTLE: Record<string, string> = { USDT: 'USDT', USDC: 'USDC' };

/** Parse a decimal string into units of 1e-8 (the engine's money unit); undefined when it is not one. */
export function money(v: unknown): bigint | undefined {
  if (typeof v !== 'string') return undefined;
  const m = /^(-)?(\d+)(?:\.(\d{1,8}))?$/.exec(v);
  if (!m) return undefined;
  const n = BigInt(`${m[2]}${(m[3] ?? '').padEnd(8, '0')}`);
  return m[1] ? -n : n;
}

function fmt(v: bigint): string {
  const neg = v < 0n;
  const s = (neg ? -v : v).toString().padStart(9, '0');
  const frac = s.slice(-8).replace(/0+$/, '');
  return `${neg ? '-' : ''}${s.slice(0, -8)}${frac ? `.${frac}` : ''}`;
}

/** The settlement asset of a symbol: its quote currency (BTCUSDT settles in USDT). */
function settleAssetOf(symbol: string): string | undefined {
  for (const asset of Object.keys(SETTLE)) if (symbol.endsWith(asset)) return asset;
  return undefined;
}

/**
 * How the ledger was judged. `zero-sum`: the state has system accounts (our engine's `@external`, `@fees`,
 * `@insurance`), so every asset's balances, isolated margins and position costs sum to zero.
 * `against-pre-outage`: it has none (a snapshot from another writer, a database), so each asset's total
 * now must equal its total in the pre-outage snapshot (plus what the WAL explains, when one was replayed).
 */
export type ConservationRule = 'zero-sum' | 'against-pre-outage';

export interface ConservationState {
  assets: Map<string, bigint>;
  systemAccounts: boolean;
  openInterest: Map<string, bigint>;
  fundingPaid: Map<string, bigint>;
  fundingReceived: Map<string, bigint>;
  malformed: Finding[];
}

/**
 * The ledger and funding invariants over a state: per asset, balances (system accounts included) plus
 * isolated margins minus position costs sum to zero; per symbol, open interest nets to zero and every
 * funding interval's payments equal its receipts.
 */
export class Conservation {
  readonly assets = new Map<string, bigint>();
  /** An account whose id starts with `@` was seen: the ledger is a closed system. */
  systemAccounts = false;
  private readonly openInterest = new Map<string, bigint>();
  private readonly fundingPaid = new Map<string, bigint>();
  private readonly fundingReceived = new Map<string, bigint>();
  private readonly malformed: Finding[] = [];

  /** Everything summed, as plain data a worker thread can post (structured clone keeps Maps and bigints). */
  state(): ConservationState {
    return {
      assets: this.assets,
      systemAccounts: this.systemAccounts,
      openInterest: this.openInterest,
      fundingPaid: this.fundingPaid,
      fundingReceived: this.fundingReceived,
      malformed: this.malformed,
    };
  }

  /** The sums another thread made, to judge here. */
  static fromState(s: ConservationState): Conservation {
    const c = new Conservation();
    for (const [k, v] of s.assets) c.assets.set(k, v);
    for (const [k, v] of s.openInterest) c.openInterest.set(k, v);
    for (const [k, v] of s.fundingPaid) c.fundingPaid.set(k, v);
    for (const [k, v] of s.fundingReceived) c.fundingReceived.set(k, v);
    c.malformed.push(...s.malformed);
    c.systemAccounts = s.systemAccounts;
    return c;
  }

  add(type: string, rec: Record<string, unknown>): void {
    const id = String(rec.id);
    if (type === 'account') {
      if (id.startsWith('@')) this.systemAccounts = true;
      const balances = (rec.balances ?? {}) as Record<string, unknown>;
      for (const [asset, v] of Object.entries(balances)) {
        const m = money(v);
        if (m === undefined) this.malformed.push({ category: 'conservation', type: 'account', id, field: `balances.${asset}`, actual: v });
        else this.assets.set(asset, (this.assets.get(asset) ?? 0n) + m);
      }
    } else if (type === 'position') {
      const symbol = id.slice(id.lastIndexOf(':') + 1);
      const asset = settleAssetOf(symbol);
      const qty = money(rec.qty);
      const isolated = money(rec.isolatedMargin ?? '0');
      // `cost` is exact; without it, qty x entryPrice is the best the record says.
      let cost = money(rec.cost);
      if (cost === undefined && qty !== undefined) {
        const entry = money(rec.entryPrice);
        if (entry !== undefined) cost = (qty * entry) / 100_000_000n;
      }
      if (!asset || qty === undefined || cost === undefined || isolated === undefined) {
        this.malformed.push({ category: 'conservation', type: 'position', id, field: 'qty/cost', actual: { qty: rec.qty, cost: rec.cost } });
        return;
      }
      this.assets.set(asset, (this.assets.get(asset) ?? 0n) + isolated - cost);
      this.openInterest.set(symbol, (this.openInterest.get(symbol) ?? 0n) + qty);
    } else if (type === 'funding') {
      const symbol = id.slice(0, id.indexOf(':'));
      const paid = money(rec.paid);
      const received = money(rec.received);
      if (paid === undefined || received === undefined) return;
      this.fundingPaid.set(symbol, (this.fundingPaid.get(symbol) ?? 0n) + paid);
      this.fundingReceived.set(symbol, (this.fundingReceived.get(symbol) ?? 0n) + received);
    }
  }

  /**
   * The findings, and the rule the ledger was judged by. `before`: each asset's total in the pre-outage
   * state; used when neither side has system accounts.
   */
  findings(before?: ReadonlyMap<string, bigint>, beforeHasSystemAccounts = false): { findings: Finding[]; rule: ConservationRule } {
    const out = [...this.malformed];
    const rule: ConservationRule = before && !this.systemAccounts && !beforeHasSystemAccounts ? 'against-pre-outage' : 'zero-sum';
    for (const asset of [...new Set([...this.assets.keys(), ...(rule === 'against-pre-outage' ? (before?.keys() ?? []) : [])])].sort()) {
      const sum = this.assets.get(asset) ?? 0n;
      const expected = rule === 'against-pre-outage' ? (before?.get(asset) ?? 0n) : 0n;
      if (sum !== expected) out.push({ category: 'conservation', type: 'asset', id: asset, field: 'ledger', expected: fmt(expected), actual: fmt(sum) });
    }
    for (const [symbol, q] of [...this.openInterest].sort()) {
      if (q !== 0n) out.push({ category: 'conservation', type: 'symbol', id: symbol, field: 'openInterest', expected: '0', actual: fmt(q) });
    }
    for (const [symbol, paid] of [...this.fundingPaid].sort()) {
      const received = this.fundingReceived.get(symbol) ?? 0n;
      if (paid !== received) out.push({ category: 'conservation', type: 'symbol', id: symbol, field: 'funding', expected: fmt(paid), actual: fmt(received) });
    }
    return { findings: out, rule };
  }

  /** Totals of another state, from this one's and the records only either side holds (`LedgerDelta`). */
  totalsWith(delta: LedgerDelta): Map<string, bigint> {
    const out = new Map(this.assets);
    for (const [asset, d] of delta.plus.assets) out.set(asset, (out.get(asset) ?? 0n) + d);
    for (const [asset, d] of delta.minus.assets) out.set(asset, (out.get(asset) ?? 0n) - d);
    return out;
  }
}

/**
 * The pre-outage ledger without parsing what both sides share: records equal byte for byte add the same
 * to both totals, so the pre side's total is the state now's plus the records only pre holds (or holds
 * differently) minus those only the state now holds (or holds differently).
 */
export class LedgerDelta {
  readonly plus = new Conservation();
  readonly minus = new Conservation();

  get preHasSystemAccounts(): boolean {
    return this.plus.systemAccounts;
  }
}
