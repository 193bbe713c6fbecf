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
      const size = fstatSync(fd).size;
      const s = this.state;
      if (size < s.wholeBytes) {
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

function parseEvent(line: string): RunEvent | null {
  try {
    const parsed = JSON.parse(line) as unknown;
    return typeof parsed === 'object' && parsed !== null && typeof (parsed as { event?: unknown }).event === 'string' ? (parsed as RunEvent) : null;
  } catch {
    return null;
  }
}
