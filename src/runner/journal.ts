import { appendFileSync, closeSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, readdirSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { scanRecords } from '../util/records.js';
import type { EventSink, RunEvent, StepOutcome } from './events.js';

export const JOURNAL_FILE = 'journal.ndjson';

export function runsDir(stateDir: string): string {
  return join(stateDir, 'runs');
}

export function runDir(stateDir: string, runId: string): string {
  return join(runsDir(stateDir), runId);
}

/** Create the state dir 0700: journals may hold outputs an operator would not share. */
export function ensureStateDir(stateDir: string): void {
  mkdirSync(runsDir(stateDir), { recursive: true, mode: 0o700 });
}

/**
 * The append-only run journal: one JSON event a line, fsync'd after each, so a run killed at any
 * moment leaves every finished record on disk. A torn last line (power loss) is cut on reopen.
 */
export class JournalWriter implements EventSink {
  private fd: number | undefined;

  constructor(readonly path: string) {
    mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 });
    this.fd = openSync(path, 'a+', 0o600);
    const size = statSync(path).size;
    if (size > 0) {
      // Cut where readJournal stops (the one whole-record rule, src/util/records.ts), so the resume and every
      // later reader agree on what the run did; the bytes cut go to `<journal>.cut`, appended, for a human.
      const bytes = readFileSync(path);
      const { wholeBytes } = scanRecords(bytes, parseJournalLine);
      if (wholeBytes < bytes.length) {
        appendFileSync(`${path}.cut`, bytes.subarray(wholeBytes), { mode: 0o600 });
        ftruncateSync(this.fd, wholeBytes);
        fsyncSync(this.fd);
      }
    }
  }

  write(event: RunEvent): void {
    if (this.fd === undefined || event.event === 'restored') return;
    writeSync(this.fd, `${JSON.stringify(event)}\n`);
    fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

export interface JournalRead {
  events: RunEvent[];
  /** Line number of a torn or unparsable record where reading stopped, if any. */
  tornAtLine: number | undefined;
}

/**
 * Read a journal up to its last whole record: a line ending in a newline that parses as an event of the
 * right shape (src/util/records.ts). What follows (a torn tail, a corrupt line) is not read, and is cut when
 * the journal is reopened for a resume.
 */
export function readJournal(path: string): JournalRead {
  const scan = scanRecords(readFileSync(path), parseJournalLine);
  return { events: scan.records, tornAtLine: scan.stop ? scan.wholeLines + 1 : undefined };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The fields a reader of the event relies on are there, of their type: a record that parses but is not
 * an event the runner could have written (a hand-edited or damaged journal) is corrupt, not a crash later.
 */
function wellFormed(e: Record<string, unknown>): boolean {
  if (typeof e.ts !== 'string' || Number.isNaN(Date.parse(e.ts))) return false;
  const step = typeof e.step === 'string';
  switch (e.event) {
    case 'run-start':
      return typeof e.playbook === 'string' && Array.isArray(e.steps) && typeof e.pid === 'number';
    case 'start':
    case 'skip':
      return step && typeof e.uses === 'string';
    case 'ok':
      return step && typeof e.uses === 'string' && isObject(e.outputs);
    case 'fail':
      return step && typeof e.uses === 'string' && typeof e.error === 'string';
    case 'measurement':
      return step && Array.isArray(e.judgements) && e.judgements.every(isObject);
    case 'progress':
      return step && (e.data === undefined || isObject(e.data));
    default:
      return typeof e.event === 'string';
  }
}

/** One journal line as an event, or undefined when it is not one the runner could have written. */
export function parseJournalLine(line: string): RunEvent | undefined {
  try {
    const parsed = JSON.parse(line) as unknown;
    return isObject(parsed) && wellFormed(parsed) ? (parsed as unknown as RunEvent) : undefined;
  } catch {
    return undefined;
  }
}

export interface StepRecord {
  outcome: StepOutcome;
  outputs: Record<string, string | number | boolean | null>;
}

/** What a journal says about a run: enough to resume it or to report on it. */
export interface RunState {
  runId: string;
  start: Extract<RunEvent, { event: 'run-start' }>;
  /** The latest run-start (a resumed run appends another). */
  lastStart: Extract<RunEvent, { event: 'run-start' }>;
  finished: Map<string, StepRecord>;
  /** Steps that started but never ended: the run died inside them. */
  inFlight: Set<string>;
  failed: boolean;
  rollbackStarted: boolean;
  rollbackFinished: Map<string, StepRecord>;
  rollbackFailed: boolean;
  end: Extract<RunEvent, { event: 'run-end' }> | undefined;
  tornAtLine: number | undefined;
  events: RunEvent[];
}

export function foldJournal(runId: string, read: JournalRead): RunState | undefined {
  const first = read.events[0];
  if (!first || first.event !== 'run-start') return undefined;
  const state: RunState = {
    runId,
    start: first,
    lastStart: first,
    finished: new Map(),
    inFlight: new Set(),
    failed: false,
    rollbackStarted: false,
    rollbackFinished: new Map(),
    rollbackFailed: false,
    end: undefined,
    tornAtLine: read.tornAtLine,
    events: read.events,
  };
  for (const e of read.events) {
    switch (e.event) {
      case 'run-start':
        state.lastStart = e;
        state.end = undefined;
        break;
      case 'start':
        state.inFlight.add(`${e.phase}:${e.step}`);
        break;
      case 'ok':
      case 'fail':
      case 'skip': {
        state.inFlight.delete(`${e.phase}:${e.step}`);
        const outcome: StepOutcome = e.event === 'ok' ? 'success' : e.event === 'fail' ? 'failure' : 'skipped';
        const record = { outcome, outputs: e.event === 'skip' ? {} : (e.outputs ?? {}) };
        (e.phase === 'main' ? state.finished : state.rollbackFinished).set(e.step, record);
        if (e.event === 'fail' && !e.continued) {
          if (e.phase === 'main') state.failed = true;
          else state.rollbackFailed = true;
        }
        break;
      }
      case 'rollback':
        state.rollbackStarted = true;
        break;
      case 'run-end':
        state.end = e;
        break;
      default:
        break;
    }
  }
  return state;
}

export function loadRun(stateDir: string, runId: string): RunState | undefined {
  const path = join(runDir(stateDir, runId), JOURNAL_FILE);
  let read: JournalRead;
  try {
    read = readJournal(path);
  } catch {
    return undefined;
  }
  return foldJournal(runId, read);
}

/** Every run in the state dir, oldest first. */
export function listRuns(stateDir: string): RunState[] {
  let ids: string[];
  try {
    ids = readdirSync(runsDir(stateDir));
  } catch {
    return [];
  }
  return ids
    .map((id) => loadRun(stateDir, id))
    .filter((r): r is RunState => r !== undefined)
    .sort((a, b) => a.start.ts.localeCompare(b.start.ts) || a.runId.localeCompare(b.runId));
}

/** Whether `--resume` can continue the run: it never ended, or ended interrupted. */
export function isResumable(state: RunState): boolean {
  return state.end === undefined || state.end.outcome === 'interrupted';
}

/** A run id names a folder under runs/: letters, digits, dot, dash, underscore, and no `..`. */
export function isRunId(id: string): boolean {
  return /^[\w][\w.-]*$/.test(id) && !id.includes('..');
}

/** A run named on the command line: a run id, or `last` for the newest run in the state dir. */
export function resolveRunRef(stateDir: string, ref: string): string | { problem: string } {
  if (ref === 'last') {
    const newest = listRuns(stateDir).at(-1);
    return newest ? newest.runId : { problem: `last: no runs in ${runsDir(stateDir)}` };
  }
  return isRunId(ref) ? ref : { problem: `${ref}: not a run id (a run id from 'recoverctl runs list', or last)` };
}
