import { statSync } from 'node:fs';
import { SnapshotError } from '../snapshot/format.js';
import { SnapshotCursor, type RawRecord } from '../snapshot/cursor.js';
import { Findings, type Finding, type IntegrityReport } from './findings.js';
import { Conservation, LedgerDelta } from './conservation.js';
import type { ScanResult } from './scan-worker.js';

export interface CheckOptions {
  limit?: number;
  /** Label for the post side in findings (the file as the user typed it, or the engine URL). */
  postLabel?: string;
  /** Label for the pre side in findings (the file as the user typed it). */
  preLabel?: string;
  /** The pre side is derived (snapshot + WAL replay): its line numbers point into a scratch file, so none are given. */
  preIsDerived?: boolean;
  explainedByWal?: number | null;
}

function parse(r: RawRecord): Record<string, unknown> {
  return JSON.parse(r.buf.toString('utf8', r.start, r.end)) as Record<string, unknown>;
}

/** Flatten nested objects (balances) to dotted fields, so a mismatch names the exact field. */
function flat(rec: Record<string, unknown>, prefix = '', out: Map<string, unknown> = new Map()): Map<string, unknown> {
  for (const [k, v] of Object.entries(rec)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) flat(v as Record<string, unknown>, key, out);
    else out.set(key, v);
  }
  return out;
}

function fieldDiffs(a: RawRecord, b: RawRecord): Finding[] {
  const fa = flat(parse(a));
  const fb = flat(parse(b));
  const out: Finding[] = [];
  const keys = new Set([...fa.keys(), ...fb.keys()]);
  for (const k of keys) {
    const va = fa.get(k);
    const vb = fb.get(k);
    if (JSON.stringify(va) !== JSON.stringify(vb)) {
      out.push({ category: 'mismatch', type: a.type, id: a.id, field: k, expected: va ?? null, actual: vb ?? null, line: b.line });
    }
  }
  return out;
}

/** A file that failed verification: one `corrupt` finding (counted even past --limit), and the check stops. */
function corrupt(findings: Findings, e: SnapshotError, file: string): void {
  findings.counts.corrupt++;
  findings.total++;
  findings.list.push({ category: 'corrupt', type: 'file', id: file, line: e.line, field: e.problem });
}

/**
 * The merge-join of two record streams in (type, id) order, one step at a time, so a synchronous file
 * and an asynchronous database cursor share it: equal lines are compared as bytes and never parsed;
 * only lines that differ are decoded, field by field. Conservation is summed over the state now as it
 * streams by, and over the pre side only where the two differ (LedgerDelta).
 */
export class MergeJoin {
  readonly findings: Findings;
  private readonly conservation = new Conservation();
  private readonly delta = new LedgerDelta();
  rule: IntegrityReport['conservationRule'] = 'zero-sum';

  constructor(
    private readonly o: CheckOptions & {
      preLabel: string;
      postLabel: string;
      postHasLines?: boolean;
      /** The state now's conservation sums are made elsewhere (scan-worker.ts) and given to finish(). */
      sumsElsewhere?: boolean;
    },
  ) {
    this.findings = new Findings(o.limit);
  }

  /** A duplicate key in one input (a cursor skips it and calls this). */
  duplicate(file: string, withLine: boolean): (r: RawRecord) => void {
    return (r) => this.findings.add({ category: 'duplicate', type: r.type, id: r.id, ...(withLine ? { line: r.line } : {}), file });
  }

  /** Judge the two current records; returns which side to advance: -1 pre, 1 the state now, 0 both. */
  step(a: RawRecord | null | undefined, b: RawRecord | null | undefined): -1 | 0 | 1 {
    const { findings, o } = this;
    const cmp = !a ? 1 : !b ? -1 : a.type === b.type ? (a.id === b.id ? 0 : a.id < b.id ? -1 : 1) : a.type < b.type ? -1 : 1;
    if (cmp < 0) {
      const ra = a as RawRecord;
      findings.add({ category: 'missing', type: ra.type, id: ra.id, ...(o.preIsDerived ? {} : { line: ra.line }), file: o.preLabel });
      if (ra.type !== 'order') this.delta.plus.add(ra.type, parse(ra));
      return -1;
    }
    const rb = b as RawRecord;
    const postLine = o.postHasLines === false ? {} : { line: rb.line };
    const sums = rb.type !== 'order';
    const parsedB = sums && !o.sumsElsewhere ? parse(rb) : undefined;
    if (parsedB) this.conservation.add(rb.type, parsedB);
    if (cmp > 0) {
      findings.add({ category: 'unexpected', type: rb.type, id: rb.id, ...postLine, file: o.postLabel });
      if (sums) this.delta.minus.add(rb.type, parsedB ?? parse(rb));
      return 1;
    }
    const ra = a as RawRecord;
    if (ra.end - ra.start !== rb.end - rb.start || ra.buf.compare(rb.buf, rb.start, rb.end, ra.start, ra.end) !== 0) {
      for (const f of fieldDiffs(ra, rb)) findings.add({ ...f, ...postLine, file: o.postLabel });
      if (sums) {
        this.delta.plus.add(ra.type, parse(ra));
        this.delta.minus.add(rb.type, parsedB ?? parse(rb));
      }
    }
    return 0;
  }

  /** After the last record: the ledger and funding judged, by the rule the two sides call for (`sums`: made elsewhere). */
  finish(sums: Conservation = this.conservation): void {
    if (this.findings.full) return;
    const judged = sums.findings(sums.totalsWith(this.delta), this.delta.preHasSystemAccounts);
    this.rule = judged.rule;
    for (const f of judged.findings) this.findings.add(f);
  }

  /** A file that failed verification: one `corrupt` finding (counted even past --limit); the check stops there. */
  corrupt(e: SnapshotError, file: string): void {
    corrupt(this.findings, e, file);
  }

  report(pre: { file: string; seq: number; records: number }, post: IntegrityReport['post'], started: number): IntegrityReport {
    return {
      clean: this.findings.total === 0,
      counts: this.findings.counts,
      findings: this.findings.list,
      pre,
      post,
      truncated: this.findings.full,
      explainedByWal: this.o.explainedByWal ?? null,
      conservationRule: this.rule,
      durationMs: Math.round(performance.now() - started),
    };
  }
}

/** Below this many bytes in all, a check hashes on its own thread: starting a worker costs more than it saves. */
export const PARALLEL_HASH_BYTES = 32 << 20;

/**
 * Compare a pre-outage snapshot with the state now, another snapshot file (docs/integrity.md). Large
 * files are hashed by a worker thread on the other core while this one scans and compares; the trailers'
 * digests are checked against the worker's at the end.
 */
export async function checkSnapshotFiles(preFile: string, postFile: string, o: CheckOptions = {}): Promise<IntegrityReport> {
  const threshold = Number(process.env.RECOVERCTL_PARALLEL_HASH_BYTES ?? PARALLEL_HASH_BYTES);
  let size = 0;
  try {
    size = statSync(preFile).size + statSync(postFile).size;
  } catch {
    // The cursor names a file it cannot read.
  }
  if (size < threshold) return checkSnapshots(preFile, postFile, o);
  const started = performance.now();
  const { Worker } = await import('node:worker_threads');
  const { Conservation } = await import('./conservation.js');
  const worker = new Worker(new URL('./scan-worker.js', import.meta.url), { workerData: { files: [preFile, postFile], conservationOf: 1 } });
  const scanned = new Promise<ScanResult>((resolve, reject) => {
    worker.once('message', (m: ScanResult) => resolve(m));
    worker.once('error', reject);
  });
  scanned.catch(() => undefined);
  const f = files(preFile, postFile, o);
  const join = new MergeJoin({ ...o, preLabel: f.preLabel, postLabel: f.postLabel, sumsElsewhere: true });
  const c: Cursors = {};
  try {
    merge(join, f, c, true);
    if (!join.findings.full) {
      // Both trailers read: the worker's digests decide them, and its sums the ledger.
      const result = await scanned;
      for (const [cursor, label, digest] of [
        [c.pre, f.preLabel, result.digests[0]],
        [c.post, f.postLabel, result.digests[1]],
      ] as const) {
        const t = cursor?.trailerDigest;
        if (t && t.sha256 !== digest)
          throw new SnapshotError(label, t.line, `sha256 mismatch: trailer says ${String(t.sha256).slice(0, 16)}…, file is ${String(digest).slice(0, 16)}…`);
      }
      join.finish(result.conservation ? Conservation.fromState(result.conservation) : undefined);
    }
  } catch (e) {
    if (!(e instanceof SnapshotError)) throw e;
    join.corrupt(e, labelOf(e.file, f));
  } finally {
    c.pre?.close();
    c.post?.close();
    await worker.terminate();
  }
  return reportOf(join, f, c, started);
}

/** Compare a pre-outage snapshot with the state now, another snapshot file, on this thread (docs/integrity.md). */
export function checkSnapshots(preFile: string, postFile: string, o: CheckOptions = {}): IntegrityReport {
  const started = performance.now();
  const f = files(preFile, postFile, o);
  const join = new MergeJoin({ ...o, preLabel: f.preLabel, postLabel: f.postLabel });
  const c: Cursors = {};
  try {
    merge(join, f, c, false);
    join.finish();
  } catch (e) {
    if (!(e instanceof SnapshotError)) throw e;
    join.corrupt(e, labelOf(e.file, f));
  } finally {
    c.pre?.close();
    c.post?.close();
  }
  return reportOf(join, f, c, started);
}

interface Files {
  preFile: string;
  postFile: string;
  preLabel: string;
  postLabel: string;
  preIsDerived: boolean;
}
interface Cursors {
  pre?: SnapshotCursor;
  post?: SnapshotCursor;
}

const files = (preFile: string, postFile: string, o: CheckOptions): Files => ({
  preFile,
  postFile,
  preLabel: o.preLabel ?? preFile,
  postLabel: o.postLabel ?? postFile,
  preIsDerived: o.preIsDerived ?? false,
});

/** A corrupt file named as the user typed it. */
const labelOf = (file: string, f: Files): string =>
  file === f.postFile || file === f.postLabel ? f.postLabel : file === f.preFile || file === f.preLabel ? f.preLabel : file;

/** Both files opened into `c` (so the caller closes what opened) and merge-joined to their ends or the limit. */
function merge(join: MergeJoin, f: Files, c: Cursors, hashElsewhere: boolean): void {
  c.pre = new SnapshotCursor(f.preFile, join.duplicate(f.preLabel, !f.preIsDerived), hashElsewhere);
  c.post = new SnapshotCursor(f.postFile, join.duplicate(f.postLabel, true), hashElsewhere);
  let a = c.pre.next();
  let b = c.post.next();
  while ((a || b) && !join.findings.full) {
    const advance = join.step(a, b);
    if (advance <= 0) a = c.pre.next();
    if (advance >= 0) b = c.post.next();
  }
}

function reportOf(join: MergeJoin, f: Files, c: Cursors, started: number): IntegrityReport {
  return join.report(
    { file: f.preLabel, seq: c.pre?.header.seq ?? -1, records: c.pre?.records ?? 0 },
    c.post ? { file: f.postLabel, seq: c.post.header.seq, records: c.post.records } : null,
    started,
  );
}
