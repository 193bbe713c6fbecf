export const CATEGORIES = ['missing', 'unexpected', 'mismatch', 'duplicate', 'conservation', 'corrupt'] as const;
export type Category = (typeof CATEGORIES)[number];

/** One finding (SPEC section 5): the record type and id involved, and for a mismatch, the field. */
export interface Finding {
  category: Category;
  type: string;
  id: string;
  field?: string;
  expected?: unknown;
  actual?: unknown;
  line?: number;
  file?: string;
}

export interface IntegrityReport {
  clean: boolean;
  counts: Record<Category, number>;
  findings: Finding[];
  /** Not in the SPEC's shape, but what an operator needs to read the verdict. */
  pre: { file: string; seq: number; records: number };
  post: { file: string; seq: number; records: number } | null;
  truncated: boolean;
  explainedByWal: number | null;
  /** How the ledger was judged: zero-sum (system accounts present) or against the pre-outage totals (docs/integrity.md). */
  conservationRule: 'zero-sum' | 'against-pre-outage';
  durationMs: number;
}

/** Counts every finding; keeps them up to a limit (`--limit` stops the check there). */
export class Findings {
  readonly counts: Record<Category, number> = { missing: 0, unexpected: 0, mismatch: 0, duplicate: 0, conservation: 0, corrupt: 0 };
  readonly list: Finding[] = [];
  total = 0;
  constructor(readonly limit: number = Infinity) {}

  get full(): boolean {
    return this.total >= this.limit;
  }

  add(f: Finding): void {
    if (this.full) return;
    this.counts[f.category]++;
    this.total++;
    this.list.push(f);
  }
}
