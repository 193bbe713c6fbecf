/**
 * The integrity check's second core: a worker thread that reads both snapshot files beside the main
 * thread's merge-join and does the work that needs no comparison. For each file, the sha256 its trailer
 * must carry (of every byte before the last line); for the state now, the conservation sums over every
 * account, funding and position record. The main thread compares meanwhile (docs/integrity.md).
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { Conservation, type ConservationState } from './conservation.js';

const CHUNK = 8 << 20;
const NL = 10;
/** Record lines of orders start so in every snapshot the engine and the corpus write: skipped unparsed. */
const ORDER_PREFIX = Buffer.from('{"type":"order"');

export interface ScanResult {
  /** Per file, the hex sha256 of the bytes before its last line; null when it cannot be read. */
  digests: (string | null)[];
  /** The conservation sums of the file at `conservationOf`. */
  conservation: ConservationState | null;
}

/** Byte by byte: for 900k order lines in a million, a native `compare` call per line cost more than the sums. */
function startsWithOrderPrefix(buf: Buffer, start: number, end: number): boolean {
  if (end - start < ORDER_PREFIX.length) return false;
  for (let i = ORDER_PREFIX.length - 1; i >= 0; i--) if (buf[start + i] !== ORDER_PREFIX[i]) return false;
  return true;
}

/** Sums one record line into `c`, unless it is an order, the header, the trailer, or the key before it again. */
class LineSums {
  readonly c = new Conservation();
  private lastKey = '';

  add(buf: Buffer, start: number, end: number): void {
    if (startsWithOrderPrefix(buf, start, end)) return;
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(buf.toString('utf8', start, end)) as Record<string, unknown>;
    } catch {
      return; // the main thread's cursor reports the line
    }
    const type = rec.type;
    if (typeof type !== 'string' || type === 'header' || type === 'trailer' || type === 'order') return;
    // A duplicate key is reported and skipped by the cursor: skipped here too.
    const key = `${type}\u0000${String(rec.id)}`;
    if (key === this.lastKey) return;
    this.lastKey = key;
    this.c.add(type, rec);
  }
}

/** Reads `file` once: its digest, and with `sums`, each whole record line but the last added to them. */
export function scanFile(file: string, sums?: LineSums): string | null {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const hash = createHash('sha256');
    let buf = Buffer.allocUnsafe(CHUNK);
    // Bytes read but not hashed yet: they may turn out to be the last line.
    let held = 0;
    for (;;) {
      if (held === buf.length) {
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger, 0, 0, held);
        buf = bigger;
      }
      const n = readSync(fd, buf, held, buf.length - held, null);
      if (n === 0) break;
      const end = held + n;
      // Everything before the last line seen so far is hashed (and summed) now; that line is kept, since
      // it may be the trailer.
      const lastNl = buf.lastIndexOf(NL, end - 2);
      const keepFrom = lastNl === -1 ? 0 : lastNl + 1;
      if (keepFrom > 0) {
        hash.update(buf.subarray(0, keepFrom));
        if (sums) for (let at = 0, nl = buf.indexOf(NL, 0); nl !== -1 && nl < keepFrom; at = nl + 1, nl = buf.indexOf(NL, at)) sums.add(buf, at, nl);
      }
      buf.copyWithin(0, keepFrom, end);
      held = end - keepFrom;
    }
    return hash.digest('hex');
  } finally {
    closeSync(fd);
  }
}

if (parentPort && Array.isArray((workerData as { files?: unknown } | null)?.files)) {
  const { files, conservationOf } = workerData as { files: string[]; conservationOf: number };
  const sums = new LineSums();
  const digests = files.map((f, i) => scanFile(f, i === conservationOf ? sums : undefined));
  const result: ScanResult = { digests, conservation: sums.c.state() };
  parentPort.postMessage(result);
}
