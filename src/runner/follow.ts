/**
 * A journal followed as it grows, for watchers beside a run (the dashboard): each read takes the new
 * whole records only, by the same rule as readJournal (a line ending in a newline that parses as an
 * event; reading stops at the first line that does not). A torn tail is left for the next read, so a
 * record written in two pieces is taken once it is whole; a file that shrank is read again from the start.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { RunEvent } from './events.js';

export interface FollowState {
  events: RunEvent[];
  /** Bytes of whole records read. */
  wholeBytes: number;
  /** Bytes after the last whole record (a record being written, or one a crash cut short); 0 when none. */
  tornBytes: number;
  /** The line of a whole record that does not parse: reading stops there, as it does for a resume. */
  corruptAtLine: number | null;
  /** How many times the file was found shorter than what had been read (rewritten or truncated). */
  truncations: number;
}

export class JournalFollower {
  private readonly state: FollowState = { events: [], wholeBytes: 0, tornBytes: 0, corruptAtLine: null, truncations: 0 };
  private lines = 0;
  /** The file read so far: a journal replaced by another file is read again from the start. */
  private ino: number | null = null;

  constructor(readonly path: string) {}

  get current(): Readonly<FollowState> {
    return this.state;
  }

  /** Read what was appended since the last read; true when anything the caller shows changed. Never throws for a missing file. */
  poll(): boolean {
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch {
      return false;
    }
    try {
      const st = fstatSync(fd);
      const size = st.size;
      const s = this.state;
      const replaced = this.ino !== null && st.ino !== this.ino;
      this.ino = st.ino;
      if (size < s.wholeBytes || replaced) {
        // Rewritten under us: what was read may no longer be the file's. Start again.
        Object.assign(s, { events: [], wholeBytes: 0, tornBytes: 0, corruptAtLine: null, truncations: s.truncations + 1 });
        this.lines = 0;
        return this.readFrom(fd, size) || true;
      }
      return this.readFrom(fd, size);
    } finally {
      closeSync(fd);
    }
  }

  private readFrom(fd: number, size: number): boolean {
    const s = this.state;
    const torn = size - s.wholeBytes;
    if (s.corruptAtLine !== null || torn === 0) {
      const changed = s.tornBytes !== torn && s.corruptAtLine === null;
      s.tornBytes = s.corruptAtLine === null ? torn : s.tornBytes;
      return changed;
    }
    const buf = Buffer.alloc(torn);
    const n = readSync(fd, buf, 0, torn, s.wholeBytes);
    const lastNewline = buf.subarray(0, n).lastIndexOf(10);
    const before = s.events.length;
    let at = 0;
    while (lastNewline !== -1 && at <= lastNewline) {
      const end = buf.indexOf(10, at);
      const line = buf.toString('utf8', at, end);
      this.lines++;
      if (line !== '') {
        const event = parseEvent(line);
        if (!event) {
          s.corruptAtLine = this.lines;
          break;
        }
        s.events.push(event);
      }
      s.wholeBytes += end + 1 - at;
      at = end + 1;
    }
    const tornBefore = s.tornBytes;
    s.tornBytes = s.corruptAtLine === null ? size - s.wholeBytes : 0;
    return s.events.length !== before || s.tornBytes !== tornBefore || s.corruptAtLine !== null;
  }
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

function parseEvent(line: string): RunEvent | null {
  try {
    const parsed = JSON.parse(line) as unknown;
    return isObject(parsed) && wellFormed(parsed) ? (parsed as unknown as RunEvent) : null;
  } catch {
    return null;
  }
}
