/**
 * A journal followed as it grows, for watchers beside a run (the dashboard): each read takes the new
 * whole records only, by the same rule as readJournal (a line ending in a newline that parses as an
 * event; reading stops at the first line that does not). A torn tail is left for the next read, so a
 * record written in two pieces is taken once it is whole; a file that shrank is read again from the start.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { scanRecords } from '../util/records.js';
import type { RunEvent } from './events.js';
import { parseJournalLine } from './journal.js';

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
    const before = s.events.length;
    const scan = scanRecords(buf.subarray(0, n), parseJournalLine);
    for (const e of scan.records) s.events.push(e);
    s.wholeBytes += scan.wholeBytes;
    if (scan.stop === 'corrupt') s.corruptAtLine = this.lines + scan.wholeLines + 1;
    this.lines += scan.wholeLines;
    const tornBefore = s.tornBytes;
    s.tornBytes = s.corruptAtLine === null ? size - s.wholeBytes : 0;
    return s.events.length !== before || s.tornBytes !== tornBefore || s.corruptAtLine !== null;
  }
}
