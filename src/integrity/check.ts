import { SnapshotError } from '../snapshot/format.js';
import { SnapshotCursor, type RawRecord } from '../snapshot/cursor.js';
import { Findings, type Finding, type IntegrityReport } from './findings.js';
import { Conservation, LedgerDelta } from './conservation.js';

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
 * Compare a pre-outage snapshot with the state now (another snapshot file), as a streaming merge-join
 * over their (type, id) order: equal lines are compared as bytes and never parsed; only lines that
 * differ are decoded, field by field. Conservation is summed over the state now as it streams by.
 */
export function checkSnapshots(preFile: string, postFile: string, o: CheckOptions = {}): IntegrityReport {
  const started = performance.now();
  const findings = new Findings(o.limit);
  const postLabel = o.postLabel ?? postFile;
  const preLabel = o.preLabel ?? preFile;
  const preLine = (line: number): { line?: number } => (o.preIsDerived ? {} : { line });
  const dupe = (file: string, derived: boolean) => (r: RawRecord) =>
    findings.add({ category: 'duplicate', type: r.type, id: r.id, ...(derived ? {} : { line: r.line }), file });
  let pre: SnapshotCursor | undefined;
  let post: SnapshotCursor | undefined;
  const conservation = new Conservation();
  const delta = new LedgerDelta();
  let rule: IntegrityReport['conservationRule'] = 'zero-sum';
  try {
    pre = new SnapshotCursor(preFile, dupe(preLabel, o.preIsDerived ?? false));
    post = new SnapshotCursor(postFile, dupe(postLabel, false));
    let a = pre.next();
    let b = post.next();
    while ((a || b) && !findings.full) {
      let cmp: number;
      if (!a) cmp = 1;
      else if (!b) cmp = -1;
      else cmp = a.type === b.type ? (a.id === b.id ? 0 : a.id < b.id ? -1 : 1) : a.type < b.type ? -1 : 1;
      if (cmp < 0) {
        const ra = a as RawRecord;
        findings.add({ category: 'missing', type: ra.type, id: ra.id, ...preLine(ra.line), file: preLabel });
        if (ra.type !== 'order') delta.plus.add(ra.type, parse(ra));
        a = pre.next();
        continue;
      }
      const rb = b as RawRecord;
      const parsedB = rb.type !== 'order' ? parse(rb) : undefined;
      if (parsedB) conservation.add(rb.type, parsedB);
      if (cmp > 0) {
        findings.add({ category: 'unexpected', type: rb.type, id: rb.id, line: rb.line, file: postLabel });
        if (parsedB) delta.minus.add(rb.type, parsedB);
      } else {
        const ra = a as RawRecord;
        if (ra.end - ra.start !== rb.end - rb.start || ra.buf.compare(rb.buf, rb.start, rb.end, ra.start, ra.end) !== 0) {
          for (const f of fieldDiffs(ra, rb)) findings.add({ ...f, file: postLabel });
          if (parsedB) {
            delta.plus.add(ra.type, parse(ra));
            delta.minus.add(rb.type, parsedB);
          }
        }
        a = pre.next();
      }
      b = post.next();
    }
    if (!findings.full) {
      const judged = conservation.findings(conservation.totalsWith(delta), delta.preHasSystemAccounts);
      rule = judged.rule;
      for (const f of judged.findings) findings.add(f);
    }
  } catch (e) {
    if (!(e instanceof SnapshotError)) throw e;
    corrupt(findings, e, e.file === postFile ? postLabel : e.file === preFile ? preLabel : e.file);
  } finally {
    pre?.close();
    post?.close();
  }
  return {
    clean: findings.total === 0,
    counts: findings.counts,
    findings: findings.list,
    pre: { file: preLabel, seq: pre?.header.seq ?? -1, records: pre?.records ?? 0 },
    post: post ? { file: postLabel, seq: post.header.seq, records: post.records } : null,
    truncated: findings.full,
    explainedByWal: o.explainedByWal ?? null,
    conservationRule: rule,
    durationMs: Math.round(performance.now() - started),
  };
}
