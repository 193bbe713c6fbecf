/**
 * The engine's control API (SPEC section 4, docs/engine.md) as types: what `GET /health`, order entry,
 * accounts and faults answer. The engine implements it (src/engine/runtime.ts returns `EngineHealth`) and
 * the client imports it; types only, so neither side imports the other's code.
 */

export type EnginePhase = 'halted' | 'cancel-only' | 'post-only' | 'open';

/** Why the engine halted itself; null when it is not halted, or an operator halted it. */
export type EngineHaltCode = 'EXCESS_QUEUE_DEPTH';

export interface EngineHealth {
  phase: EnginePhase;
  reason: string | null;
  /** Set while the engine is halted by its own decision (e.g. `EXCESS_QUEUE_DEPTH`); null otherwise. */
  haltCode: EngineHaltCode | null;
  seq: number;
  modules: Record<string, { active: string; previous: string | null }>;
  queueDepth: number;
  queueLimit: number;
  admissionWeight: number;
  testnet: boolean;
  pid: number;
  haltedAtSeq: number | null;
  haltedAt: string | null;
  haltReason: string | null;
  marks: Record<string, string>;
  recovery: { snapshotSeq: number | null; replayed: number; walDamage: { file: string; line: number; reason: string } | null };
  ledger: Record<string, string>;
}

export interface OrderAnswer {
  id: string | null;
  status: 'open' | 'partially_filled' | 'filled' | 'canceled' | 'rejected';
  filled: string;
  avgPrice: string | null;
  reason?: string;
  message?: string;
}

export interface OrderBody {
  account: string;
  symbol: string;
  side: 'buy' | 'sell';
  type: 'limit' | 'market';
  price?: string;
  qty: string;
  tif?: 'GTC' | 'IOC';
  postOnly?: boolean;
  reduceOnly?: boolean;
  marginMode?: 'cross' | 'isolated';
  clientOrderId?: string;
}

/** `GET /accounts/:id`, and the answer to a deposit: money as decimal strings. */
export interface AccountView {
  id: string;
  balances: { USDT: string; USDC: string };
  positions: { symbol: string; qty: string; cost: string; marginMode: 'cross' | 'isolated'; isolatedMargin: string }[];
  openOrders: string[];
  equity: string;
  maintenanceMargin: string;
  available: string;
  marginRatio: number | null;
}

/** The answer to `POST /fault {kind: "margin-burst"}`: the phase after it (the engine may have halted itself). */
export interface MarginBurstAnswer {
  events: number;
  queueDepth: number;
  phase: EngineHealth['phase'];
  reason: string | null;
}
