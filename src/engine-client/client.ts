import { readFileSync } from 'node:fs';
import type {
  FundingRecomputeAnswer,
  RiskPreview,
  AccountView,
  EngineHealth,
  InstrumentsAnswer,
  InstrumentView,
  MarginBurstAnswer,
  OrderAnswer,
  OrderBatchAnswer,
  OrderBody,
} from '../contract/control-api.js';

/** The engine answered with an error status: carries the status and the engine's message. */
export class EngineHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The engine could not be reached at all (not running, wrong port, timed out). */
export class EngineUnreachable extends Error {}

// The control API's request and answer types live in the contract module both sides share.
export type {
  AccountView,
  EngineHealth,
  InstrumentsAnswer,
  InstrumentView,
  MarginBurstAnswer,
  OrderAnswer,
  OrderBatchAnswer,
  OrderBody,
} from '../contract/control-api.js';

/** A typed client of the engine's control API (SPEC section 4). */
export class EngineClient {
  constructor(
    readonly url: string,
    private readonly token: string,
    private readonly timeoutMs = 15_000,
  ) {}

  static fromTokenFile(url: string, tokenFile: string): EngineClient {
    return new EngineClient(url, readFileSync(tokenFile, 'utf8').trim());
  }

  async request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const res = await this.raw(method, path, body, signal);
    const text = await res.text();
    if (!res.ok) {
      let message = text;
      try {
        message = (JSON.parse(text) as { error?: string }).error ?? text;
      } catch {
        // not JSON: keep the text
      }
      throw new EngineHttpError(res.status, `${method} ${path}: ${res.status} ${message}`);
    }
    const type = res.headers.get('content-type') ?? '';
    return (type.includes('application/json') ? JSON.parse(text) : text) as T;
  }

  async raw(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    try {
      return await fetch(`${this.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
    } catch (e) {
      if (signal?.aborted) throw e;
      throw new EngineUnreachable(
        `engine at ${this.url} did not answer ${method} ${path}: ${(e as Error).cause instanceof Error ? ((e as Error).cause as Error).message : (e as Error).message}`,
      );
    }
  }

  health(signal?: AbortSignal): Promise<EngineHealth> {
    return this.request('GET', '/health', undefined, signal);
  }
  metrics(signal?: AbortSignal): Promise<string> {
    return this.request('GET', '/metrics', undefined, signal);
  }
  /** The engine's instruments (tick, lot, margin and fee rates as decimal strings); answered in every phase. */
  async instruments(signal?: AbortSignal): Promise<InstrumentView[]> {
    return (await this.request<InstrumentsAnswer>('GET', '/instruments', undefined, signal)).instruments;
  }
  setPhase(phase: EngineHealth['phase'], reason?: string): Promise<{ phase: string; reason: string | null }> {
    return this.request('POST', '/phase', reason === undefined ? { phase } : { phase, reason });
  }
  setAdmission(weight: number): Promise<{ admissionWeight: number }> {
    return this.request('POST', '/admission', { weight });
  }
  activate(component: string, version: string): Promise<{ changed: boolean; active: string; previous: string | null }> {
    return this.request('POST', '/modules/activate', { component, version });
  }
  rollbackModule(component: string): Promise<{ active: string; previous: string | null }> {
    return this.request('POST', '/modules/rollback', { component });
  }
  snapshot(): Promise<{ path: string; seq: number; sha256: string; records: number }> {
    return this.request('POST', '/snapshot');
  }
  fault(kind: 'margin-burst', events?: number): Promise<MarginBurstAnswer>;
  fault(kind: 'crash'): Promise<{ crashing: true }>;
  fault(kind: 'margin-burst' | 'crash', events?: number): Promise<MarginBurstAnswer | { crashing: true }> {
    return this.request('POST', '/fault', events === undefined ? { kind } : { kind, events });
  }

  /** Slow the engine down for a while: every control API answer (`control-latency`) or every WAL fsync (`wal-stall`) `ms` later, for `forMs`. */
  slowDown(kind: 'control-latency' | 'wal-stall', ms: number, forMs: number): Promise<{ kind: string; ms: number; forMs: number }> {
    return this.request('POST', '/fault', { kind, ms, forMs });
  }
  recomputeFunding(from: string, to: string): Promise<FundingRecomputeAnswer> {
    return this.request('POST', '/funding/recompute', { from, to });
  }
  /** Who would be liquidated or restricted if trading opened at the current marks. */
  riskPreview(): Promise<RiskPreview> {
    return this.request('GET', '/risk/preview');
  }
  placeOrder(order: OrderBody, signal?: AbortSignal): Promise<OrderAnswer> {
    return this.request('POST', '/orders', order, signal);
  }
  /** Up to 100 orders in one request and one WAL group, answered one by one. */
  placeOrders(orders: OrderBody[], signal?: AbortSignal): Promise<OrderBatchAnswer> {
    return this.request('POST', '/orders/batch', { orders }, signal);
  }
  cancel(id: string): Promise<OrderAnswer> {
    return this.request('DELETE', `/orders/${id}`);
  }
  /** Credit collateral; `amount` is a decimal string (money never passes through a float). */
  deposit(account: string, asset: 'USDT' | 'USDC', amount: string): Promise<AccountView> {
    return this.request('POST', `/accounts/${encodeURIComponent(account)}/deposit`, { asset, amount });
  }
  account(id: string): Promise<AccountView> {
    return this.request('GET', `/accounts/${encodeURIComponent(id)}`);
  }
  /** The state in snapshot format, as text. */
  state(): Promise<string> {
    return this.request('GET', '/state');
  }
}
