/**
 * Fakes for the effects a step or the runner has (src/steps/effects.ts): virtual time, scripted
 * commands, a scripted fetch, an in-memory engine. For unit tests only: integration and end-to-end tests
 * use the real engine and real processes.
 */
import type { EngineHealth, InstrumentView } from '../../src/contract/control-api.js';
import type { ControlClient, Effects, EngineSupervisor, ExecOutcome, ExecRequest, LoadRun, ReportWriter } from '../../src/steps/effects.js';
import type { Approver, OutputValue, StepContext } from '../../src/steps/types.js';
import type { Measurement } from '../../src/steps/analysis.js';
import type { Clock } from '../../src/util/clock.js';

interface Timer {
  at: number;
  seq: number;
  fire: () => void;
}

/**
 * Virtual time: `sleep` never waits for real. When nothing else is left to run (a macrotask later), the
 * earliest sleeper wakes and the clock jumps to its time; sleepers wake in time order, ties in the
 * order they slept. Code that awaits only fakes therefore runs to completion instantly and in a
 * deterministic order.
 */
export class VirtualClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly timers: Timer[] = [];
  private scheduled = false;
  /** Every sleep asked for, in ms, in order (what a test asserts instead of elapsed wall time). */
  readonly sleeps: number[] = [];

  constructor(start = Date.parse('2026-01-01T00:00:00Z')) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.sleeps.push(ms);
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const timer: Timer = {
        at: this.t + Math.max(0, ms),
        seq: this.seq++,
        fire: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = (): void => {
        const i = this.timers.indexOf(timer);
        if (i >= 0) this.timers.splice(i, 1);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.timers.push(timer);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.timers.shift();
      if (!next) return;
      this.t = Math.max(this.t, next.at);
      next.fire();
      if (this.timers.length) this.schedule();
    });
  }
}

/** A command's scripted answer; `hang` waits for the request's signal, as a command that never ends would. */
export type ScriptedCommand = Partial<ExecOutcome> & { stdoutChunks?: string[]; stderrChunks?: string[]; hang?: boolean };

/** An exec that answers from a script (one entry per call, the last one repeated) and records every request. */
export function scriptedExec(script: ScriptedCommand[]): { exec: Effects['exec']; calls: ExecRequest[] } {
  const calls: ExecRequest[] = [];
  const exec: Effects['exec'] = async (req) => {
    const entry = script[Math.min(calls.length, script.length - 1)] ?? {};
    calls.push(req);
    for (const c of entry.stdoutChunks ?? []) req.onStdout(Buffer.from(c));
    for (const c of entry.stderrChunks ?? []) req.onStderr(Buffer.from(c));
    if (entry.hang) {
      await new Promise<void>((resolve) => {
        if (req.signal.aborted) resolve();
        req.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      return { exitCode: null, signal: 'SIGTERM', stdout: '', stderr: '', canceled: true, error: null };
    }
    return {
      exitCode: entry.exitCode === undefined ? 0 : entry.exitCode,
      signal: entry.signal ?? null,
      stdout: entry.stdout ?? (entry.stdoutChunks ?? []).join('').replace(/\n$/, ''),
      stderr: entry.stderr ?? (entry.stderrChunks ?? []).join('').replace(/\n$/, ''),
      canceled: entry.canceled ?? false,
      error: entry.error ?? null,
    };
  };
  return { exec, calls };
}

/** A fetch that answers every request with `answer(url, init)` and records the requests. */
export function scriptedFetch(answer: (url: string, init: RequestInit | undefined) => Response | Promise<Response>): {
  fetch: typeof globalThis.fetch;
  requests: { url: string; init: RequestInit | undefined }[];
} {
  const requests: { url: string; init: RequestInit | undefined }[] = [];
  const fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    requests.push({ url, init });
    if (init?.signal?.aborted) throw init.signal.reason;
    return answer(url, init);
  };
  return { fetch, requests };
}

/** Health as a fresh, halted engine answers it; override what a test needs. */
export function health(over: Partial<EngineHealth> = {}): EngineHealth {
  return {
    phase: 'halted',
    reason: null,
    haltCode: null,
    seq: 0,
    modules: { margin: { active: '1.4.2', previous: null } },
    queueDepth: 0,
    queueLimit: 10_000,
    admissionWeight: 100,
    testnet: false,
    pid: 4242,
    haltedAtSeq: null,
    haltedAt: null,
    haltReason: null,
    marks: {},
    recovery: { snapshotSeq: null, replayed: 0, walDamage: null },
    ledger: { USDT: '0', USDC: '0' },
    ...over,
  };
}

const unimplemented = (what: string) => (): never => {
  throw new Error(`fake engine: ${what} is not scripted in this test`);
};

/** An engine client whose methods a test scripts; any other call fails loudly. */
export function fakeClient(methods: Partial<ControlClient>): ControlClient {
  return {
    url: 'http://127.0.0.1:1',
    request: unimplemented('request'),
    health: unimplemented('health'),
    metrics: unimplemented('metrics'),
    setPhase: unimplemented('setPhase'),
    setAdmission: unimplemented('setAdmission'),
    activate: unimplemented('activate'),
    rollbackModule: unimplemented('rollbackModule'),
    snapshot: unimplemented('snapshot'),
    fault: unimplemented('fault'),
    recomputeFunding: unimplemented('recomputeFunding'),
    placeOrder: unimplemented('placeOrder'),
    cancel: unimplemented('cancel'),
    deposit: unimplemented('deposit'),
    account: unimplemented('account'),
    riskPreview: unimplemented('riskPreview'),
    ...methods,
  } as ControlClient;
}

/** Load that sends nothing; its counters are the test's to set. */
export function fakeLoad(stats: Partial<ReturnType<LoadRun['stats']>> = {}): LoadRun & { started: boolean; stopped: boolean } {
  const run = {
    started: false,
    stopped: false,
    start() {
      run.started = true;
    },
    stop() {
      run.stopped = true;
      return Promise.resolve();
    },
    stats: () => ({ sent: 0, accepted: 0, retryLater: 0, rejected: 0, errors: 0, lastError: null, ...stats }),
  };
  return run;
}

/** A supervisor whose every engine is `client`; starting, stopping and load are recorded, not done. */
export function fakeEngines(client: ControlClient, load: LoadRun = fakeLoad()): EngineSupervisor & { calls: string[] } {
  const calls: string[] = [];
  const info = { pid: 4242, url: client.url, startedAt: '2026-01-01T00:00:00.000Z', version: '0.0.0', dataDir: '/fake', testnet: false };
  return {
    calls,
    connect: (target) => {
      calls.push(`connect ${'dataDir' in target ? target.dataDir : target.url}`);
      return Promise.resolve(client);
    },
    attach: (dataDir) => {
      calls.push(`attach ${dataDir}`);
      return Promise.resolve({ info, client });
    },
    start: (dataDir) => {
      calls.push(`start ${dataDir}`);
      return Promise.resolve({ info, client, started: true });
    },
    stop: (dataDir) => {
      calls.push(`stop ${dataDir}`);
      return Promise.resolve({ wasRunning: true, forced: false, pid: info.pid });
    },
    scratch: (dataDir) => {
      calls.push(`scratch ${dataDir}`);
      return Promise.resolve({ client, info, stop: () => Promise.resolve(void calls.push(`scratch-stop ${dataDir}`)) });
    },
    load: (target) => {
      calls.push(`load ${'dataDir' in target ? target.dataDir : target.url}`);
      return Promise.resolve(load);
    },
  };
}

const noReports: ReportWriter = {
  incident: unimplemented('reports.incident'),
  users: unimplemented('reports.users'),
};

/** Every effect a fake: nothing runs, nothing is fetched, no engine is touched unless the test scripts it. */
export function fakeEffects(over: Partial<Effects> = {}): Effects {
  return {
    exec: scriptedExec([{}]).exec,
    fetch: unimplemented('fetch') as unknown as typeof globalThis.fetch,
    socket: unimplemented('socket'),
    engines: fakeEngines(fakeClient({})),
    reports: noReports,
    ...over,
  };
}

export const approveAll: Approver = { approve: () => Promise.resolve({ approved: true, by: 'test' }) };

/** A StepContext for calling one step's `run` directly, with its progress recorded. */
export function stepContext(
  over: Partial<StepContext> = {},
): StepContext & { progressLog: { message: string; data?: Record<string, OutputValue> }[]; results: string[]; measurements: Measurement[] } {
  const measurements: Measurement[] = [];
  const progressLog: { message: string; data?: Record<string, OutputValue> }[] = [];
  const results: string[] = [];
  const effects = fakeEffects();
  return {
    runId: 'run-1',
    playbookName: 'unit',
    stepId: 'step',
    attempt: 1,
    signal: new AbortController().signal,
    interrupt: new AbortController().signal,
    clock: new VirtualClock(),
    timeScale: 1,
    playbookDir: '/playbooks',
    runDir: '/state/runs/run-1',
    scratchDir: '/tmp',
    approver: approveAll,
    engine: { dataDir: '/engine' },
    playbookEngine: { dataDir: '/engine' },
    ...effects,
    resumed: false,
    measure: (m) => measurements.push(m),
    progress: (message, data) => progressLog.push(data ? { message, data } : { message }),
    notice: (message) => progressLog.push({ message }),
    emitResult: (text) => results.push(text),
    ...over,
    progressLog,
    results,
    measurements,
  };
}

/** An instrument as `GET /instruments` shows it, with the given grid (margin and fee rates of BTC). */
export function instrumentView(symbol: string, tickSize: string, lotSize: string): InstrumentView {
  return {
    symbol,
    settleAsset: 'USDT',
    tickSize,
    lotSize,
    initialMarginRate: '0.05',
    maintenanceMarginRate: '0.025',
    takerFeeRate: '0.0005',
    makerFeeRate: '0.0002',
  };
}

/** A fake engine for traffic.shift: open, its admission weight the last one set (recorded), `/metrics` as given. */
export function admissionEngine(metrics: () => Promise<string>): { client: ControlClient; weights: number[] } {
  const weights: number[] = [];
  const client = fakeClient({
    health: () => Promise.resolve(health({ phase: 'open', admissionWeight: weights.at(-1) ?? 0 })),
    metrics,
    setAdmission: (weight) => Promise.resolve({ admissionWeight: void weights.push(weight) ?? weight }),
  });
  return { client, weights };
}
