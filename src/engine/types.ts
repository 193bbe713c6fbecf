import type { EngineHaltCode, EnginePhase } from '../contract/control-api.js';
import type { Asset, Symbol } from './instruments.js';
import type { Side } from './book.js';

/** Trading phases and halt codes are part of the control API's contract: defined there, once. */
export type Phase = EnginePhase;
export const PHASES: readonly Phase[] = ['halted', 'cancel-only', 'post-only', 'open'];
/** Why the engine halted itself, for programs (the human `reason` says it in words). */
export type HaltCode = EngineHaltCode;
export type OrderStatus = 'open' | 'partially_filled' | 'filled' | 'canceled' | 'rejected';
export type MarginMode = 'cross' | 'isolated';
export type OrderType = 'limit' | 'market';
/** GTC rests, IOC fills what it can now, FOK fills entirely now or not at all. (GTX is GTC + post-only.) */
export type TimeInForce = 'GTC' | 'IOC' | 'FOK';
/** Self-trade prevention, decided by the taker's mode: `expire-maker` (the default) never lets an account trade with itself. */
export type SelfTradePrevention = 'none' | 'expire-taker' | 'expire-maker' | 'expire-both';

export type RejectReason =
  | 'INSUFFICIENT_MARGIN'
  | 'PHASE_HALTED'
  | 'PHASE_CANCEL_ONLY'
  | 'PHASE_POST_ONLY'
  | 'RETRY_LATER'
  | 'POST_ONLY_WOULD_TAKE'
  | 'REDUCE_ONLY_WOULD_INCREASE'
  | 'MARGIN_MODE_CONFLICT'
  | 'FOK_WOULD_NOT_FILL'
  | 'ACCOUNT_REDUCE_ONLY'
  | 'UNKNOWN_ACCOUNT'
  | 'INVALID';

/** An order as the engine keeps it (integers inside). */
export interface Order {
  id: string;
  num: number;
  account: string;
  symbol: Symbol;
  side: Side;
  type: OrderType;
  /** 0 for a market order. */
  price: number;
  qty: number;
  filled: number;
  /** Sum of fill price x fill qty, money units: the exact average price is filledNotional / filled. */
  filledNotional: bigint;
  status: OrderStatus;
  ts: number;
  tif: TimeInForce;
  postOnly: boolean;
  reduceOnly: boolean;
  marginMode: MarginMode;
  clientOrderId: string | null;
  /** Initial margin this order holds while it rests (kept in step with Account.orderMargin). */
  reservedMargin: bigint;
}

export interface Position {
  /** Signed quantity units: long > 0. */
  qty: number;
  /** Signed money: sum of qty x price of the open quantity (long > 0). Entry price = cost / qty. */
  cost: bigint;
  mode: MarginMode;
  isolatedMargin: bigint;
}

export interface Account {
  id: string;
  balances: Record<Asset, bigint>;
  positions: Map<Symbol, Position>;
  openOrders: Set<string>;
  /** The resting reduce-only orders among them (few), so trimming them does not walk every order. */
  reduceOnlyOrders: Set<string>;
  /** Sum of the open orders' reserved initial margin, so a margin check does not walk every order. */
  orderMargin: bigint;
  /** The leverage chosen per symbol (`POST /leverage`); the instrument's default where none was. */
  leverage: Map<Symbol, number>;
}

/** What an order request looks like once parsed from its JSON (integers, validated shapes). */
export interface OrderRequest {
  account: string;
  symbol: Symbol;
  side: Side;
  type: OrderType;
  price: number | undefined;
  qty: number;
  tif: TimeInForce;
  postOnly: boolean;
  reduceOnly: boolean;
  marginMode: MarginMode;
  clientOrderId: string | null;
  stp: SelfTradePrevention;
}

/** The write-ahead log's records: every input and every decision, so replay is exact. */
export type Command =
  | { op: 'deposit'; ts: number; account: string; asset: Asset; amount: string }
  | { op: 'order'; ts: number; num: number; req: OrderRequestJson }
  | { op: 'cancel'; ts: number; id: string }
  | { op: 'marks'; ts: number; step: number; prices: Partial<Record<Symbol, number>> }
  | { op: 'liquidate'; ts: number; account: string; symbol: Symbol | null }
  | { op: 'funding'; ts: number; symbol: Symbol; intervalStart: number; rate: string; markPrice: number }
  | { op: 'phase'; ts: number; phase: Phase; reason: string | null }
  | { op: 'admission'; ts: number; weight: number }
  | { op: 'leverage'; ts: number; account: string; symbol: Symbol; leverage: number }
  /** A testnet's manual clock advanced to `ts` (`POST /testnet/clock`): nothing else changes. */
  | { op: 'clock'; ts: number }
  /** This engine stops taking writes, durably (a standby is about to be promoted). */
  | { op: 'fence'; ts: number; epoch: number }
  /** A promoted standby starts a new epoch as the primary; `forced` when the old primary was not fenced first. */
  | { op: 'epoch'; ts: number; epoch: number; forced: boolean }
  /** The funding intervals and halted-premium policy from here on (journaled when a start changes them). */
  | { op: 'config'; ts: number; fundingIntervals: Record<Symbol, number>; haltedPremium: 'exclude' | 'interest-only' }
  | { op: 'module'; ts: number; component: string; version: string; action: 'activate' | 'rollback' };

/**
 * An order request as stored in the WAL: plain JSON (no undefined: a market order's price is null). WALs
 * written before self-trade prevention have no `stp`: they replay as `none`, as they ran.
 */
export type OrderRequestJson = Omit<OrderRequest, 'price' | 'stp'> & {
  price: number | null;
  stp?: SelfTradePrevention;
  /** A market order's price protection: it trades no further from the mark than this (decided at entry). */
  bandPrice?: number;
};

export interface OrderResult {
  id: string | null;
  status: OrderStatus;
  filled: number;
  avgPrice: number | null;
  reason?: RejectReason;
  message?: string;
}
