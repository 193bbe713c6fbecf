/**
 * The side effects a step may have, as narrow interfaces the runner hands it through `StepContext`: the
 * CLI passes the real ones (src/cli/effects.ts), rehearsals the same against a scratch engine, and unit
 * tests fakes. Types only: a step never imports the code behind them.
 */
import type { EngineClient } from '../engine-client/client.js';
import type { LoadOptions, LoadStats } from '../engine-client/load.js';
import type { EngineInfo, StartOptions } from '../engine-client/supervisor.js';

/** The engine a playbook drives: a local data dir (started and found through engine.json) or a URL. */
export type EngineTarget = { dataDir: string } | { url: string; tokenFile: string };

/** One command to run: an argv array, or a shell command line when `shell` is set. */
export interface ExecRequest {
  command: readonly string[] | string;
  shell: boolean;
  cwd: string;
  /** Added to this process's environment. */
  env: Readonly<Record<string, string>>;
  /** Aborting it ends the command (SIGTERM, then SIGKILL after a grace period). */
  signal: AbortSignal;
  /** Output as it arrives, in chunks that may split lines and characters. */
  onStdout(chunk: Buffer): void;
  onStderr(chunk: Buffer): void;
}

/** How a command ended, with its whole output (the caller keeps what it needs). */
export interface ExecOutcome {
  exitCode: number | null;
  /** The signal that ended it, e.g. `SIGKILL`; null when it exited. */
  signal: string | null;
  stdout: string;
  stderr: string;
  /** Ended because the request's signal aborted. */
  canceled: boolean;
  /** Why it failed when neither an exit code nor a signal says (it could not be started, output too large). */
  error: string | null;
}

export type Exec = (request: ExecRequest) => Promise<ExecOutcome>;

/** The control API as a step uses it (a subset of EngineClient's methods, so a fake can stand in). */
export type ControlClient = Pick<
  EngineClient,
  | 'url'
  | 'request'
  | 'health'
  | 'metrics'
  | 'setPhase'
  | 'setAdmission'
  | 'activate'
  | 'rollbackModule'
  | 'snapshot'
  | 'fault'
  | 'recomputeFunding'
  | 'placeOrder'
  | 'cancel'
  | 'deposit'
  | 'account'
  | 'riskPreview'
>;

/** Synthetic or replayed order flow against an engine, running until stopped. */
export interface LoadRun {
  start(): void;
  stop(): Promise<void>;
  stats(): LoadStats;
}

/** An engine this step started for itself (a testnet): it never outlives this process, and `stop` removes nothing but the process. */
export interface ScratchEngine {
  client: ControlClient;
  info: EngineInfo;
  stop(): Promise<void>;
}

/** Starting, finding and stopping engines, and putting load on them. */
export interface EngineSupervisor {
  /** A client for the playbook's engine; throws when a local one is not running. */
  connect(target: EngineTarget): Promise<ControlClient>;
  /** The engine running on a data dir, or undefined. */
  attach(dataDir: string): Promise<{ info: EngineInfo; client: ControlClient } | undefined>;
  /** Start an engine on a data dir (detached, it outlives the run), or attach to the one running there. */
  start(dataDir: string, options?: StartOptions): Promise<{ info: EngineInfo; client: ControlClient; started: boolean }>;
  /** SIGTERM, SIGKILL after `timeoutMs`; only a process that is provably the engine. */
  stop(dataDir: string, timeoutMs?: number): Promise<{ wasRunning: boolean; forced: boolean; pid: number | null }>;
  /** A throwaway engine on a data dir, stopped with this process however it ends. */
  scratch(dataDir: string, options: Omit<StartOptions, 'exitWithMe'>): Promise<ScratchEngine>;
  /** A load generator against the target (its URL and token found the way `connect` finds them). */
  load(target: EngineTarget, options: Omit<LoadOptions, 'url' | 'token' | 'instruments'>): Promise<LoadRun>;
}

export type ReportFormat = 'md' | 'json' | 'html';

/** The reports a run writes; they read the run's journal and snapshots, which steps do not parse themselves. */
export interface ReportWriter {
  /** The incident timeline of the run in `runDir`, written to `out` in each format. */
  incident(o: {
    runDir: string;
    out: string;
    formats: readonly ReportFormat[];
    /** When the engine halted, if it can still say: used when the journal does not show the detection. */
    fallback: { at: string | null; reason: string | null };
    now: Date;
    /** The step writing the report, shown done in it. */
    self?: string;
  }): Promise<{ files: Partial<Record<ReportFormat, string>>; steps: number; rtoMs: number | null; rtoBreached: boolean | null }>;
  /** One JSON and one CSV file per affected account of a snapshot. */
  users(snapshot: string, out: string): Promise<{ accounts: number; files: number; seq: number; openOrders: number }>;
}

/**
 * One command line to a line-oriented admin socket (HAProxy's runtime API): `unix:///path` or
 * `tcp://host:port`. Resolves to everything the server wrote before it closed the connection; rejects when
 * the socket cannot be reached, or nothing is answered within `timeoutMs`.
 */
export type SocketCommand = (address: string, line: string, o: { signal: AbortSignal; timeoutMs: number }) => Promise<string>;

/** Every effect a step can have besides the files its `with` names. */
export interface Effects {
  exec: Exec;
  fetch: typeof globalThis.fetch;
  socket: SocketCommand;
  engines: EngineSupervisor;
  reports: ReportWriter;
}
