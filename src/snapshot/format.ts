/** The snapshot format (SPEC section 5): NDJSON, header, records sorted by (type, id), trailer. */
export const SNAPSHOT_FORMAT = 'recoverctl-snapshot/1';
export const RECORD_TYPES = ['account', 'funding', 'order', 'position'] as const;
export type RecordType = (typeof RECORD_TYPES)[number];

export interface SnapshotHeader {
  type: 'header';
  format: typeof SNAPSHOT_FORMAT;
  seq: number;
  takenAt: string;
  phase: string;
  [extra: string]: unknown;
}

export interface SnapshotRecord {
  type: RecordType;
  id: string;
  [field: string]: unknown;
}

export interface SnapshotTrailer {
  type: 'trailer';
  records: number;
  sha256: string;
}

/** Record order: by type, then id, comparing strings by UTF-16 code units (JavaScript's `<`). */
export function compareKey(typeA: string, idA: string, typeB: string, idB: string): number {
  if (typeA !== typeB) return typeA < typeB ? -1 : 1;
  if (idA !== idB) return idA < idB ? -1 : 1;
  return 0;
}

/** A snapshot that cannot be trusted: names the file and the 1-based line. */
export class SnapshotError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly problem: string,
  ) {
    super(`${file}:${line}: ${problem}`);
  }
}
