import { join } from 'node:path';
import { SnapshotLoader, snapshotHeader, snapshotRecords } from '../engine/snapshot-codec.js';
import type { Command } from '../engine/types.js';
import { scanWal } from '../engine/wal.js';
import { SnapshotError } from '../snapshot/format.js';
import { readSnapshot } from '../snapshot/reader.js';
import { SnapshotWriter } from '../snapshot/writer.js';

/** The WAL could not explain the gap between the two states. */
export class WalGap extends Error {}

/**
 * Apply the WAL records after the pre-outage snapshot's seq (up to `toSeq`) to that snapshot, with the
 * engine's own state machine, and write the expected state as a snapshot. What the WAL explains (fills,
 * cancels, new orders, funding, liquidations) then compares equal; only what it does not is reported.
 * The state is held in memory for this (a streaming check without --wal stays flat).
 */
export async function replayExpected(preFile: string, walDir: string, toSeq: number, outFile: string): Promise<{ applied: number }> {
  let loader: SnapshotLoader | undefined;
  let fromSeq = 0;
  for await (const r of readSnapshot(preFile, (h) => {
    loader = new SnapshotLoader(h, typeof h.fundingIntervalMs === 'number' ? h.fundingIntervalMs : 8 * 3_600_000);
    fromSeq = h.seq;
  })) {
    loader?.add(r);
  }
  if (!loader) throw new SnapshotError(preFile, 1, 'no header');
  const ex = loader.finish();
  if (toSeq < fromSeq) throw new WalGap(`the state now (seq ${toSeq}) is older than the pre-outage snapshot (seq ${fromSeq})`);
  const scan = scanWal<Command>(walDir, fromSeq, false);
  let seq = fromSeq;
  let applied = 0;
  for (const r of scan.records) {
    if (r.seq > toSeq) break;
    if (r.seq !== seq + 1) throw new WalGap(`${walDir} does not follow on from seq ${seq} (next record is seq ${r.seq})`);
    ex.apply(r.body, r.seq);
    seq = r.seq;
    applied++;
  }
  if (seq < toSeq) {
    const why = scan.damage ? `: ${scan.damage.reason} at ${scan.damage.file}:${scan.damage.line}` : '';
    throw new WalGap(`${join(walDir)} explains up to seq ${seq}, the state now is at seq ${toSeq}${why}`);
  }
  const w = new SnapshotWriter(outFile, snapshotHeader(ex, seq, {}));
  for (const r of snapshotRecords(ex)) w.record(r);
  w.finish();
  return { applied };
}
