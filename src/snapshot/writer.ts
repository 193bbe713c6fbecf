import { createHash, type Hash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { compareKey, type SnapshotHeader, type SnapshotRecord } from './format.js';

const FLUSH_BYTES = 1 << 20;

/**
 * Writes a snapshot: to a temporary file, fsync'd, then renamed into place, so a reader sees either
 * the whole snapshot or none. Records must come in (type, id) order; the writer checks.
 */
export class SnapshotWriter {
  private readonly tmp: string;
  private readonly fd: number;
  private readonly hash: Hash = createHash('sha256');
  private chunks: string[] = [];
  private pending = 0;
  private count = 0;
  private lastType = '';
  private lastId = '';

  constructor(
    readonly path: string,
    header: SnapshotHeader,
  ) {
    this.tmp = `${path}.tmp-${process.pid}`;
    this.fd = openSync(this.tmp, 'w', 0o644);
    this.push(`${JSON.stringify(header)}\n`);
  }

  private push(line: string): void {
    this.chunks.push(line);
    this.pending += line.length;
    if (this.pending >= FLUSH_BYTES) this.flush();
  }

  private flush(): void {
    if (this.chunks.length === 0) return;
    const buf = Buffer.from(this.chunks.join(''), 'utf8');
    this.hash.update(buf);
    writeSync(this.fd, buf);
    this.chunks = [];
    this.pending = 0;
  }

  record(r: SnapshotRecord): void {
    if (this.count > 0 && compareKey(this.lastType, this.lastId, r.type, r.id) >= 0) {
      throw new Error(`snapshot records out of order: ${r.type}/${r.id} after ${this.lastType}/${this.lastId}`);
    }
    this.lastType = r.type;
    this.lastId = r.id;
    this.count++;
    this.push(`${JSON.stringify(r)}\n`);
  }

  /** Write the trailer, fsync, and move the file into place. Returns the sha256 and record count. */
  finish(): { sha256: string; records: number } {
    this.flush();
    const sha256 = this.hash.digest('hex');
    writeSync(this.fd, `${JSON.stringify({ type: 'trailer', records: this.count, sha256 })}\n`);
    fsyncSync(this.fd);
    closeSync(this.fd);
    renameSync(this.tmp, this.path);
    try {
      const dirFd = openSync(dirname(this.path), 'r');
      fsyncSync(dirFd);
      closeSync(dirFd);
    } catch {
      // some filesystems cannot fsync a directory; the rename is still atomic
    }
    return { sha256, records: this.count };
  }
}
