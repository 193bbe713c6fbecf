/**
 * The one rule for what a whole record is, in every file written a record a line (run journals, the
 * engine's WAL, snapshots): **a line that ends in `\n` and that the file's own parser accepts.** Reading
 * stops at the first line that is not one: bytes without their newline are a torn tail (a crash cut the
 * write short), a line that does not parse is corrupt. Everything before is whole, and a writer that
 * reopens the file cuts it exactly there (docs/durability.md), so what a reader saw is what survives.
 * Blank lines are whole and hold no record.
 */

export interface RecordScan<T> {
  records: T[];
  /** Bytes, from where the scan began, of the whole records (and blank lines) before the stop. */
  wholeBytes: number;
  /** Lines read as whole, blank ones included. */
  wholeLines: number;
  /** Why reading stopped before the end: `torn` (no newline) or `corrupt` (a line the parser refused). */
  stop: 'torn' | 'corrupt' | undefined;
  /** Bytes from the stop to the end of the buffer. */
  tailBytes: number;
}

/**
 * The whole records of `buf` from byte `from`, by the rule above. `parse` gets each line's text (without its
 * newline) and returns the record, or undefined when the line is not one.
 */
export function scanRecords<T>(buf: Buffer, parse: (line: string) => T | undefined, from = 0): RecordScan<T> {
  const records: T[] = [];
  let at = from;
  let wholeLines = 0;
  let stop: RecordScan<T>['stop'];
  while (at < buf.length) {
    const nl = buf.indexOf(10, at);
    if (nl < 0) {
      stop = 'torn';
      break;
    }
    if (nl > at) {
      const record = parse(buf.toString('utf8', at, nl));
      if (record === undefined) {
        stop = 'corrupt';
        break;
      }
      records.push(record);
    }
    wholeLines++;
    at = nl + 1;
  }
  return { records, wholeBytes: at - from, wholeLines, stop, tailBytes: buf.length - at };
}
