import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import margin142 from '../../src/engine/modules/margin-1.4.2.js';
import margin143 from '../../src/engine/modules/margin-1.4.3.js';
import { decodeRecord, encodeRecord, scanWal, segmentName, WalWriter } from '../../src/engine/wal.js';
import { tempDir } from '../support/cli.js';

describe('margin modules', () => {
  it('1.4.2 queues one recalculation per event and raises EXCESS_QUEUE_DEPTH past its limit', () => {
    const q = margin142.create({ limit: 100, recalc: () => undefined });
    for (let i = 0; i < 100; i++) q.enqueue(`a${i % 3}`);
    expect(q.depth()).toBe(100);
    expect(() => q.enqueue('a0')).toThrow(/EXCESS_QUEUE_DEPTH/);
  });

  it('1.4.3 coalesces per account and stays bounded under the same burst', () => {
    const done: string[] = [];
    const q = margin143.create({ limit: 100, recalc: (a) => done.push(a) });
    for (let i = 0; i < 100_000; i++) q.enqueue(`a${i % 3}`);
    expect(q.depth()).toBe(3);
    expect(q.drain(10)).toBe(3);
    expect(done).toEqual(['a0', 'a1', 'a2']);
  });

  it('both pass their self-tests', () => {
    expect(() => margin142.selfTest()).not.toThrow();
    expect(() => margin143.selfTest()).not.toThrow();
  });
});

describe('write-ahead log', () => {
  it('encodes a CRC over the body and detects corruption', () => {
    const line = encodeRecord(7, { op: 'cancel', ts: 1, id: '000000000001' }).trimEnd();
    expect(decodeRecord(line)).toEqual({ seq: 7, body: { op: 'cancel', ts: 1, id: '000000000001' } });
    expect(decodeRecord(line.replace('"cancel"', '"cancal"'))).toMatchObject({ error: expect.stringMatching(/CRC mismatch/) });
    expect(decodeRecord(line.slice(0, -5))).toMatchObject({ error: 'malformed record' });
  });

  it('group-commits appends and reads them back in order', async () => {
    const dir = tempDir();
    const w = await WalWriter.open(dir, 1);
    await Promise.all(Array.from({ length: 500 }, (_, i) => w.append(i + 1, { n: i })));
    await w.close();
    expect(w.syncs).toBeLessThan(500);
    const scan = scanWal<{ n: number }>(dir, 0, false);
    expect(scan.records.map((r) => r.body.n)).toEqual(Array.from({ length: 500 }, (_, i) => i));
    expect(scan.damage).toBeUndefined();
  });

  it('stops at a torn or corrupt record, says where, and cuts the log there on repair', () => {
    const dir = tempDir();
    const file = join(dir, segmentName(1));
    writeFileSync(file, encodeRecord(1, { a: 1 }) + encodeRecord(2, { a: 2 }) + encodeRecord(3, { a: 3 }).replace('"a":3', '"a":4'));
    appendFileSync(file, encodeRecord(4, { a: 4 }));
    const scan = scanWal<{ a: number }>(dir, 0, true);
    expect(scan.records.map((r) => r.seq)).toEqual([1, 2]);
    expect(scan.damage).toMatchObject({ line: 3, reason: expect.stringMatching(/CRC mismatch/) });
    expect(readFileSync(file, 'utf8')).toBe(encodeRecord(1, { a: 1 }) + encodeRecord(2, { a: 2 }));
    writeFileSync(file, encodeRecord(1, { a: 1 }) + encodeRecord(2, { a: 2 }).slice(0, 10));
    expect(scanWal(dir, 0, false).damage).toMatchObject({ line: 2, reason: 'torn record (no newline)' });
  });
});
