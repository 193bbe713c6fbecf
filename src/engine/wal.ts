import { closeSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { scanRecords } from '../util/records.js';

/**
 * The write-ahead log: one JSON record a line, `{"seq":N,"crc":"8 hex","body":{...}}`, the CRC32 taken
 * over the exact bytes of the body. Appends are group-committed: records that arrive while a write and
 * fsync are in flight go out together in the next one, and each append resolves once it is durable.
 */

export interface WalRecord<T> {
  seq: number;
  body: T;
}

export interface WalDamage {
  file: string;
  line: number;
  byteOffset: number;
  reason: string;
}

export function segmentName(firstSeq: number): string {
  return `${String(firstSeq).padStart(20, '0')}.log`;
}

export function encodeRecord(seq: number, body: unknown): string {
  const json = JSON.stringify(body);
  const crc = crc32(json).toString(16).padStart(8, '0');
  return `{"seq":${seq},"crc":"${crc}","body":${json}}\n`;
}

const prefixRe = /^\{"seq":(\d+),"crc":"([0-9a-f]{8})","body":/;

/** Decode one line; undefined when it is torn or corrupt. */
export function decodeRecord<T>(line: string): { seq: number; body: T } | { error: string } {
  const m = prefixRe.exec(line);
  if (!m || !line.endsWith('}')) return { error: 'malformed record' };
  const json = line.slice(m[0].length, -1);
  const crc = crc32(json).toString(16).padStart(8, '0');
  if (crc !== m[2]) return { error: `CRC mismatch (stored ${m[2]}, computed ${crc})` };
  try {
    return { seq: Number(m[1]), body: JSON.parse(json) as T };
  } catch {
    return { error: 'body is not JSON' };
  }
}

export interface WalScan<T> {
  records: WalRecord<T>[];
  lastSeq: number;
  damage: WalDamage | undefined;
}

/**
 * Read every segment in order, stopping at the first torn or corrupt record (or a gap in seq). With
 * `repair`, the damaged segment is cut at the last good record and later segments are set aside.
 */
export function scanWal<T>(dir: string, afterSeq: number, repair: boolean): WalScan<T> {
  mkdirSync(dir, { recursive: true });
  const files = readdirSync(dir)
    .filter((f) => /^\d{20}\.log$/.test(f))
    .sort();
  const records: WalRecord<T>[] = [];
  let lastSeq = 0;
  let damage: WalDamage | undefined;
  for (let fi = 0; fi < files.length; fi++) {
    // A segment whose successor starts at or before afterSeq + 1 is wholly covered by the snapshot.
    const next = files[fi + 1];
    if (next !== undefined && Number.parseInt(next, 10) <= afterSeq + 1) continue;
    const file = join(dir, files[fi] as string);
    const buf = readFileSync(file);
    let offset = 0;
    let lineNo = 0;
    for (;;) {
      // The one whole-record rule (src/util/records.ts), with the WAL's parser: the CRC, and seq following on.
      let reason = '';
      const scan = scanRecords(
        buf,
        (line) => {
          const decoded = decodeRecord<T>(line);
          if ('error' in decoded) {
            reason = decoded.error;
            return undefined;
          }
          if (decoded.seq > afterSeq && lastSeq >= afterSeq && lastSeq !== 0 && decoded.seq !== lastSeq + 1) {
            reason = `seq ${decoded.seq} follows ${lastSeq}`;
            return undefined;
          }
          lastSeq = decoded.seq;
          return decoded;
        },
        offset,
      );
      for (const r of scan.records) if (r.seq > afterSeq) records.push(r);
      offset += scan.wholeBytes;
      lineNo += scan.wholeLines;
      if (!scan.stop) break;
      // Damage in what the snapshot already covers does not matter: look for the records after it.
      if (scan.stop === 'corrupt' && lastSeq < afterSeq) {
        offset = buf.indexOf(10, offset) + 1;
        lineNo++;
        continue;
      }
      damage = { file, line: lineNo + 1, byteOffset: offset, reason: scan.stop === 'torn' ? 'torn record (no newline)' : reason };
      break;
    }
    if (damage) {
      if (repair) {
        // Cut the log at the last good record, keeping what was cut off beside it for a human.
        writeFileSync(`${file}.damaged-tail`, buf.subarray(damage.byteOffset));
        const fd = openSync(file, 'r+');
        ftruncateSync(fd, damage.byteOffset);
        fsyncSync(fd);
        closeSync(fd);
        // Records after the damage cannot be trusted to follow on; keep them for a human, out of the log.
        for (const later of files.slice(fi + 1)) renameSync(join(dir, later), join(dir, `${later}.after-damage`));
      }
      break;
    }
  }
  return { records, lastSeq, damage };
}

function openGroup(): { durable: Promise<void>; resolve: () => void; reject: (e: Error) => void } {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const durable = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { durable, resolve, reject };
}

export class WalWriter {
  private fh: FileHandle | undefined;
  private buffer: string[] = [];
  /** The records buffered share one promise, settled when their write and fsync are done: one allocation a group, not one a record. */
  private group: { durable: Promise<void>; resolve: () => void; reject: (e: Error) => void } | undefined;
  private flushing: Promise<void> | undefined;
  private scheduled = false;
  private rotating = false;
  private rotation: Promise<void> | undefined;
  private failed: Error | undefined;
  /** Seq of the last record appended, and of the last one handed to a write on the current segment. */
  private appendedSeq = 0;
  private writtenSeq = 0;
  appended = 0;
  syncs = 0;
  /** The `wal-stall` fault: every sync waits this much longer until `stallUntil` (epoch ms). */
  private stall = { ms: 0, until: 0 };

  private constructor(
    readonly dir: string,
    readonly file: string,
  ) {}

  /** Start a segment named after `nextSeq`: new records never follow a cut or foreign tail. */
  static async open(dir: string, nextSeq: number): Promise<WalWriter> {
    mkdirSync(dir, { recursive: true });
    const file = join(dir, segmentName(nextSeq));
    const w = new WalWriter(dir, file);
    w.appendedSeq = nextSeq - 1;
    w.writtenSeq = nextSeq - 1;
    w.fh = await open(file, 'a', 0o644);
    return w;
  }

  /** Queue a record; the promise resolves when it is on disk. */
  append(seq: number, body: unknown): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    this.buffer.push(encodeRecord(seq, body));
    this.appendedSeq = seq;
    this.appended++;
    this.group ??= openGroup();
    this.schedule();
    return this.group.durable;
  }

  private schedule(): void {
    if (this.scheduled || this.flushing) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.flushing || this.rotating || this.buffer.length === 0 || !this.fh) return;
    const lines = this.buffer.join('');
    this.writtenSeq = this.appendedSeq;
    const group = this.group as NonNullable<typeof this.group>;
    this.buffer = [];
    this.group = undefined;
    const fh = this.fh;
    this.flushing = (async () => {
      try {
        await fh.write(lines);
        if (Date.now() < this.stall.until) await new Promise((r) => setTimeout(r, this.stall.ms));
        await fh.datasync();
        this.syncs++;
        group.resolve();
      } catch (e) {
        this.failed = e as Error;
        group.reject(e as Error);
      }
    })();
    await this.flushing;
    this.flushing = undefined;
    if (this.buffer.length > 0) this.schedule();
  }

  /** Make every fsync stall `ms` longer for the next `forMs` (the chaos fault `wal-stall`): appends are acknowledged that much later. */
  stallSyncs(ms: number, forMs: number): void {
    this.stall = { ms, until: Date.now() + forMs };
  }

  /** Is every record appended so far on disk (nothing buffered, no write or rotation in flight)? */
  get idle(): boolean {
    return this.buffer.length === 0 && !this.flushing && !this.rotation;
  }

  /** Wait until everything appended so far is durable. */
  async drain(): Promise<void> {
    for (;;) {
      if (this.rotation) await this.rotation;
      else if (this.flushing) await this.flushing;
      else if (this.buffer.length > 0) await this.flush();
      else return;
    }
  }

  /** Start a new segment (after a snapshot): later records go there. */
  async rotate(): Promise<void> {
    while (this.rotation) await this.rotation;
    await this.drain();
    // Hold writes while the segments change, so the new segment's name is exactly its first seq.
    this.rotating = true;
    this.rotation = (async () => {
      try {
        if (this.flushing) await this.flushing;
        const file = join(this.dir, segmentName(this.writtenSeq + 1));
        const next = await open(file, 'a', 0o644);
        const old = this.fh;
        this.fh = next;
        (this as { file: string }).file = file;
        await old?.close();
      } finally {
        this.rotating = false;
        this.rotation = undefined;
        if (this.buffer.length > 0) this.schedule();
      }
    })();
    await this.rotation;
  }

  async close(): Promise<void> {
    await this.drain();
    await this.fh?.close();
    this.fh = undefined;
  }
}
