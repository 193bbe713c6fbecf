/**
 * Power cuts at every byte offset (issue 18), exhaustively, of a small run journal, a small WAL and a
 * small snapshot, each made by the real writer: what a reader reads from a cut file is exactly what
 * survives the writer's reopen, the torn record is reported, a resume after the cut neither forgets a
 * finished step nor repeats one (even after a second crash), and the engine recovers every record whole
 * before the cut. Offsets are bytes; each file holds non-ASCII text, so a character count would disagree.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RunEvent } from '../../src/runner/events.js';
import { foldJournal, JournalWriter, readJournal } from '../../src/runner/journal.js';
import { scanWal, segmentName, WalWriter } from '../../src/engine/wal.js';
import { readSnapshot } from '../../src/snapshot/reader.js';
import { SnapshotCursor } from '../../src/snapshot/cursor.js';
import { SNAPSHOT_FORMAT, SnapshotError } from '../../src/snapshot/format.js';
import { SnapshotWriter } from '../../src/snapshot/writer.js';
import { BIN, ROOT, tempDir } from '../support/cli.js';
import { startTestEngine } from '../support/engine.js';
import { stopEngine } from '../../src/engine-client/supervisor.js';

/** The byte offsets just after each newline: where a cut leaves only whole records. */
const boundaries = (bytes: Buffer): Set<number> => {
  const out = new Set<number>([0]);
  for (let i = bytes.indexOf(10); i >= 0; i = bytes.indexOf(10, i + 1)) out.add(i + 1);
  return out;
};
const wholeBefore = (bytes: Buffer, offset: number): number => {
  let n = 0;
  for (let i = bytes.indexOf(10); i >= 0 && i < offset; i = bytes.indexOf(10, i + 1)) n++;
  return n;
};
const finishedSteps = (events: RunEvent[]): string[] => [...(foldJournal('r', { events, tornAtLine: undefined })?.finished.keys() ?? [])].sort();

describe('a run journal cut at every byte offset', () => {
  it('reads exactly what survives the reopen, reports the torn record, and a resume neither forgets nor repeats a finished step', () => {
    const dir = tempDir();
    copyFileSync(join(ROOT, 'playbooks', 'runner-drill.yaml'), join(dir, 'drill.yaml'));
    const r = spawnSync(process.execPath, [BIN, 'run', 'drill.yaml', '--yes', '--time-scale', '0.01', '--var', 'label=Zürich 東京 ✓'], {
      cwd: dir,
      env: { ...process.env, CI: 'true' },
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    const runId = readdirSync(join(dir, '.recoverctl', 'runs'))[0] as string;
    const bytes = readFileSync(join(dir, '.recoverctl', 'runs', runId, 'journal.ndjson'));
    expect(bytes.length).toBeGreaterThan(bytes.toString('utf8').length); // multi-byte characters in it
    const all = readJournal(join(dir, '.recoverctl', 'runs', runId, 'journal.ndjson')).events;
    const whole = boundaries(bytes);
    const file = join(dir, 'cut.ndjson');
    const problems: string[] = [];
    for (let offset = 0; offset <= bytes.length; offset++) {
      rmSync(`${file}.cut`, { force: true });
      writeFileSync(file, bytes.subarray(0, offset));
      const read = readJournal(file);
      const n = wholeBefore(bytes, offset);
      if (read.events.length !== n) problems.push(`${offset}: read ${read.events.length} events, ${n} whole records`);
      if (whole.has(offset) !== (read.tornAtLine === undefined)) problems.push(`${offset}: torn ${String(read.tornAtLine)}`);
      const finished = finishedSteps(read.events);
      // The resume: reopen (cutting the torn tail), then run the first step the journal has not finished.
      const w = new JournalWriter(file);
      const after = readFileSync(file);
      const kept = whole.has(offset) ? offset : Math.max(...[...whole].filter((b) => b < offset));
      if (after.length !== kept) problems.push(`${offset}: reopen kept ${after.length} bytes, the reader saw ${kept}`);
      const cut = offset - kept;
      if (cut > 0 && readFileSync(`${file}.cut`).length !== cut) problems.push(`${offset}: the ${cut} bytes cut were not kept aside`);
      const next = (all.find((e) => e.event === 'start' && e.phase === 'main' && !finished.includes(e.step ?? '')) as RunEvent | undefined)?.step;
      const resumed: RunEvent[] = next
        ? [
            { ts: new Date().toISOString(), run: runId, step: next, event: 'start', phase: 'main', uses: 'exec', attempt: 1 } as unknown as RunEvent,
            {
              ts: new Date().toISOString(),
              run: runId,
              step: next,
              event: 'ok',
              phase: 'main',
              uses: 'exec',
              outputs: { note: 'ü' },
              durationMs: 1,
            } as unknown as RunEvent,
          ]
        : [];
      for (const e of resumed) w.write(e);
      w.close();
      const again = readJournal(file);
      if (again.tornAtLine !== undefined || again.events.length !== n + resumed.length)
        problems.push(`${offset}: after the resume read ${again.events.length}, torn ${again.tornAtLine}`);
      const later = finishedSteps(again.events);
      if (finished.some((s) => !later.includes(s))) problems.push(`${offset}: a finished step was forgotten after the resume`);
      if (next && finished.includes(next)) problems.push(`${offset}: the resume repeated ${next}`);
      // A second crash, halfway through the resume's last record: what the first read saw is still there.
      if (resumed.length > 0) {
        const bytes2 = readFileSync(file);
        writeFileSync(file, bytes2.subarray(0, bytes2.length - 20));
        const third = finishedSteps(readJournal(file).events);
        if (finished.some((s) => !third.includes(s))) problems.push(`${offset}: a second crash forgot a step finished before the first`);
      }
    }
    expect(problems.slice(0, 10)).toEqual([]);
  });
});

describe('a WAL cut at every byte offset', () => {
  /** Twenty-odd real records, written by the engine's own WAL writer (deposits and orders, one with non-ASCII in its id). */
  async function smallWal(dir: string): Promise<Buffer> {
    const w = await WalWriter.open(dir, 1);
    const bodies = [
      ...Array.from({ length: 8 }, (_, i) => ({ op: 'deposit', ts: 1_700_000_000_000 + i, account: `a${i}`, asset: 'USDT', amount: '1000' })),
      { op: 'deposit', ts: 1_700_000_000_100, account: 'zürich-東京', asset: 'USDC', amount: '5' },
      ...Array.from({ length: 12 }, (_, i) => ({ op: 'note', ts: 1_700_000_001_000 + i, text: `order ${i} — ✓` })),
    ];
    await Promise.all(bodies.map((b, i) => w.append(i + 1, b)));
    await w.close();
    return readFileSync(join(dir, segmentName(1)));
  }

  it('recovers exactly the whole records, reports the torn one, and the next record follows on from them', async () => {
    const source = tempDir();
    const bytes = await smallWal(source);
    expect(bytes.length).toBeGreaterThan(bytes.toString('utf8').length);
    const whole = boundaries(bytes);
    const problems: string[] = [];
    for (let offset = 0; offset <= bytes.length; offset++) {
      const dir = join(tempDir(), 'wal');
      mkdirSync(dir);
      writeFileSync(join(dir, segmentName(1)), bytes.subarray(0, offset));
      const n = wholeBefore(bytes, offset);
      const scan = scanWal(dir, 0, true);
      if (scan.records.length !== n) problems.push(`${offset}: recovered ${scan.records.length}, ${n} whole`);
      if (whole.has(offset) === Boolean(scan.damage)) problems.push(`${offset}: damage ${JSON.stringify(scan.damage)}`);
      // What the repair kept is what was read: reopening and appending continues right after it.
      const w = await WalWriter.open(dir, scan.lastSeq + 1);
      await w.append(scan.lastSeq + 1, { op: 'note', ts: 1, text: 'after the cut' });
      await w.close();
      const again = scanWal(dir, 0, false);
      if (again.damage || again.records.length !== n + 1 || again.records.some((rec, i) => rec.seq !== i + 1)) {
        problems.push(`${offset}: after the reopen ${again.records.length} records, damage ${JSON.stringify(again.damage)}`);
      }
      rmSync(dir, { recursive: true, force: true });
    }
    expect(problems.slice(0, 10)).toEqual([]);
  });

  it('the engine recovers every acknowledged order whole before the cut, at each record boundary and a byte either side', async () => {
    // The compiled engine: it loads its built-in modules from beside itself.
    const { EngineRuntime } = (await import(join(ROOT, 'dist/engine/runtime.js'))) as typeof import('../../src/engine/runtime.js');
    const opts = (dataDir: string) => ({
      dataDir,
      testnet: false,
      seed: 1,
      feedIntervalMs: 0,
      fundingIntervalMs: 8 * 3_600_000,
      queueLimit: 10_000,
      drainIntervalMs: 5,
      drainBudget: 2_000,
      snapshotEvery: 0,
      log: () => undefined,
    });
    // The WAL of a real engine child process: every order below was acknowledged after its fsync.
    const { dir: base, client } = await startTestEngine({ snapshotEvery: 0 });
    for (let i = 0; i < 4; i++) await client.deposit(`trader-${i}`, 'USDT', '100000');
    // The halt's reason is the non-ASCII text in this WAL (account ids are ASCII).
    await client.setPhase('halted', 'maintenance in Zürich — ✓');
    await client.setPhase('open');
    const acknowledged: string[] = [];
    for (let i = 0; i < 10; i++) {
      const a = await client.placeOrder({
        account: `trader-${i % 4}`,
        symbol: 'ETHUSDT',
        side: i % 2 ? 'buy' : 'sell',
        type: 'limit',
        price: String(3000 + (i % 5)),
        qty: '0.01',
      });
      if (a.id) acknowledged.push(a.id);
    }
    await stopEngine(base);
    const walDir = join(base, 'wal');
    const seg = readdirSync(walDir).filter((f) => f.endsWith('.log'))[0] as string;
    const bytes = readFileSync(join(walDir, seg));
    expect(bytes.length).toBeGreaterThan(bytes.toString('utf8').length);
    const offsets = new Set<number>();
    for (const b of boundaries(bytes)) for (const o of [b - 1, b, b + 1]) if (o >= 0 && o <= bytes.length) offsets.add(o);
    const problems: string[] = [];
    for (const offset of offsets) {
      const copy = tempDir();
      mkdirSync(join(copy, 'wal'), { recursive: true });
      writeFileSync(join(copy, 'wal', seg), bytes.subarray(0, offset));
      const n = wholeBefore(bytes, offset);
      const again = await EngineRuntime.open(opts(copy));
      try {
        if (again.seq !== n) problems.push(`${offset}: recovered seq ${again.seq}, ${n} whole records`);
        const orderRecords = bytes
          .subarray(0, offset)
          .toString('utf8')
          .split('\n')
          .slice(0, n)
          .filter((l) => l.includes('"op":"order"')).length;
        const recovered = acknowledged.filter((id) => again.ex.orders.has(id)).length;
        if (recovered !== orderRecords) problems.push(`${offset}: ${recovered} orders recovered, ${orderRecords} whole in the WAL`);
      } finally {
        await again.close();
      }
    }
    expect(acknowledged.length).toBe(10);
    expect(problems.slice(0, 10)).toEqual([]);
  });
});

describe('a snapshot cut at every byte offset', () => {
  it('is refused by both readers, naming a line, at every offset but its full length', async () => {
    const dir = tempDir();
    const file = join(dir, 'snap.ndjson');
    const w = new SnapshotWriter(file, { type: 'header', format: SNAPSHOT_FORMAT, seq: 7, takenAt: '2026-01-01T00:00:00.000Z', phase: 'halted' });
    for (const id of ['a1', 'a2', 'zürich-東京']) w.record({ type: 'account', id, balances: { USDT: '10.5' } });
    for (const id of ['a1:BTCUSDT', 'a2:BTCUSDT'])
      w.record({ type: 'position', id, qty: id.startsWith('a1') ? '0.5' : '-0.5', entryPrice: '60000', marginMode: 'cross', isolatedMargin: '0' });
    w.finish();
    const bytes = readFileSync(file);
    expect(bytes.length).toBeGreaterThan(bytes.toString('utf8').length);
    const cut = join(dir, 'cut.ndjson');
    const problems: string[] = [];
    for (let offset = 0; offset <= bytes.length; offset++) {
      writeFileSync(cut, bytes.subarray(0, offset));
      let streamed: unknown = null;
      try {
        for await (const _ of readSnapshot(cut, () => undefined)) void _;
      } catch (e) {
        streamed = e;
      }
      let cursor: unknown = null;
      try {
        const c = new SnapshotCursor(cut);
        try {
          while (c.next()) {
            // every record
          }
        } finally {
          c.close();
        }
      } catch (e) {
        cursor = e;
      }
      const full = offset === bytes.length;
      for (const [reader, e] of [
        ['readSnapshot', streamed],
        ['SnapshotCursor', cursor],
      ] as const) {
        if (full && e) problems.push(`${offset}: ${reader} refused the whole file: ${String(e)}`);
        if (!full && !(e instanceof SnapshotError)) problems.push(`${offset}: ${reader} accepted a cut file (${String(e)})`);
      }
    }
    expect(problems.slice(0, 10)).toEqual([]);
  });
});
