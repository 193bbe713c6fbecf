/**
 * Traffic providers: what moves traffic between the canary (the recovered engine) and the remainder (a
 * sorry server, the old pool) at each stage of traffic.shift. One file per gateway kind; the step asks
 * through this interface only, so the same shift drives HAProxy, nginx or a command.
 */
import type { Exec, SocketCommand } from '../effects.js';

export type ProviderType = 'engine' | 'haproxy' | 'nginx' | 'command';

/**
 * Weights as the gateway holds them. recoverctl sets the canary to W and the remainder to 100 - W, so
 * after a set they read as percentages; before the first set they are whatever the gateway was configured
 * with (HAProxy's initial weights, nginx's `weight=`, 1 when absent).
 */
export interface TrafficWeights {
  /** The canary's weight; 0 when it gets no traffic (HAProxy weight 0, nginx `down`). */
  weight: number;
  /** The remainder's weight; null when the provider has no remainder (or, for `command`, cannot read it). */
  remainderWeight: number | null;
}

export interface TrafficProvider {
  readonly type: ProviderType;
  /** What the gateway has now; asked before anything is set again on a resume. */
  current(): Promise<TrafficWeights>;
  /** Put `weight`% on the canary (and 100-weight on the remainder), verify it took, return what it reads back. Throws ProviderError with a clear one-line message on any failure. */
  set(weight: number, stage: number): Promise<TrafficWeights>;
  /** Abort: canary 0, remainder 100 (nginx: restore the previous file). */
  abort(): Promise<TrafficWeights>;
  /** The shift completed: forget what `abort` would have restored (nginx's saved file), so a later shift's abort cannot bring it back. */
  finish?(): Promise<void>;
}

/** The bundled engine's admission weight, as the engine client gives it (a ControlClient fits). */
export interface EngineAdmission {
  setAdmission(weight: number): Promise<unknown>;
  health(): Promise<{ admissionWeight: number }>;
}

/** The effects a provider may use; nothing else. */
export interface ProviderDeps {
  exec: Exec;
  socket: SocketCommand;
  /** The step's signal: when it aborts, a provider stops and rejects with its reason. */
  signal: AbortSignal;
  /** Relative paths (nginx's upstreamFile) resolve here; commands run here. */
  playbookDir: string;
  /** Needed by the `engine` provider only. */
  engine?: EngineAdmission;
}

/**
 * Why a provider failed, for callers that must tell failures apart (never parse the message):
 * - `unreachable`: the gateway could not be asked (socket refused or silent, command timed out or missing)
 * - `not-found`: no such backend, server, upstream or file
 * - `forbidden`: the gateway refuses on principle (HAProxy socket below admin level)
 * - `rejected`: the gateway refused this weight (a static algorithm, an out-of-range weight) or the config (`nginx -t`)
 * - `mismatch`: the set was accepted but the read-back differs
 * - `failed`: a command exited non-zero, or an answer recoverctl does not know
 */
export type ProviderFailure = 'unreachable' | 'not-found' | 'forbidden' | 'rejected' | 'mismatch' | 'failed';

/** A provider's failure: one line naming the provider and the gateway object, e.g. `haproxy be_orders/engine: no such server`. */
export class ProviderError extends Error {
  override readonly name = 'ProviderError';
  constructor(
    readonly provider: ProviderType,
    /** The gateway object: `be_orders/engine`, `upstream orders in /etc/nginx/conf.d/orders.conf`, a command. */
    readonly target: string,
    readonly failure: ProviderFailure,
    /** The message without the provider and target in front. */
    readonly detail: string,
  ) {
    super(`${provider} ${target}: ${detail}`);
  }
}

/** Any text as one line: lines trimmed, blank ones dropped, joined with `; `, escapes stripped, capped. */
export function oneLine(text: string, max = 400): string {
  const line = text
    // eslint-disable-next-line no-control-regex
    .replace(/\u001b\[[0-9;]*[A-Za-z]/g, '')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean)
    .join('; ');
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}
