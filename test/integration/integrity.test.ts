import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkSnapshots } from '../../src/integrity/check.js';
import { SNAPSHOT_FORMAT } from '../../src/snapshot/format.js';
import { SnapshotWriter } from '../../src/snapshot/writer.js';
import type { Finding } from '../../src/integrity/findings.js';
import { hasStackTrace, runCli, tempDir } from '../support/cli.js';
import { startTestEngine } from '../support/engine.js';
// @ts-expect-error plain JavaScript shared with bench/integrity
import { breakSnapshot, writeCorpus } from '../support/snapshot-corpus.mjs';

type Expected = { category: string; type: string; id: string; field?: string };
const key = (f: Expected | Finding): string => [f.category, f.type, f.id, f.field ?? ''].join(' ');

describe('integrity check over generated snapshot pairs', () => {
  const sizes = [300, 5_000, 60_000];
  it.each(sizes.flatMap((n) => [1, 2].map((seed) => [n, seed] as const)))('finds exactly the planted discrepancies (%i records, seed %i)', (records, seed) => {
    const dir = tempDir();
    const pre = join(dir, 'pre.ndjson');
    const post = join(dir, 'post.ndjson');
    const k = Math.max(1, Math.floor(records / 100));
    const { expected } = writeCorpus({
      pre,
      post,
      records,
      seed,
      discrepancies: { missing: k, unexpected: k, mismatch: k, duplicate: k, conservation: 2 },
    }) as { expected: Expected[] };
    const report = checkSnapshots(pre, post);
    expect(report.findings.map(key).sort()).toEqual(expected.map(key).sort());
    expect(report.counts).toEqual({ missing: k, unexpected: k, mismatch: k, duplicate: k, conservation: 2, corrupt: 0 });
    const mismatch = report.findings.find((f) => f.category === 'mismatch');
    expect(mismatch).toMatchObject({ field: 'status', expected: expect.any(String), actual: expect.any(String), line: expect.any(Number) });
  });

  it('reports nothing for identical snapshots', () => {
    const dir = tempDir();
    const pre = join(dir, 'pre.ndjson');
    writeCorpus({ pre, post: join(dir, 'post.ndjson'), records: 20_000, seed: 9 });
    const report = checkSnapshots(pre, join(dir, 'post.ndjson'));
    expect(report.clean).toBe(true);
    expect(report.findings).toEqual([]);
  });

  it('stops after --limit findings', () => {
    const dir = tempDir();
    writeCorpus({ pre: join(dir, 'a'), post: join(dir, 'b'), records: 5_000, seed: 3, discrepancies: { missing: 30 } });
    const report = checkSnapshots(join(dir, 'a'), join(dir, 'b'), { limit: 5 });
    expect(report.findings).toHaveLength(5);
    expect(report.truncated).toBe(true);
  });

  it.each(['truncated', 'no-trailer', 'reordered', 'checksum', 'corrupt-line'])('names the line of a %s snapshot', (how) => {
    const dir = tempDir();
    const pre = join(dir, 'pre.ndjson');
    writeCorpus({ pre, post: join(dir, 'post.ndjson'), records: 2_000, seed: 4 });
    const broken = join(dir, 'broken.ndjson');
    const want = breakSnapshot(join(dir, 'post.ndjson'), broken, how) as { line: number; problem: RegExp };
    const report = checkSnapshots(pre, broken);
    const corrupt = report.findings.find((f) => f.category === 'corrupt');
    expect(corrupt).toMatchObject({ id: broken, line: want.line });
    expect(corrupt?.field).toMatch(want.problem);
  });
});

describe('hashing on the second core (large inputs)', () => {
  const parallel = { RECOVERCTL_PARALLEL_HASH_BYTES: '0' };
  const inline = { RECOVERCTL_PARALLEL_HASH_BYTES: String(2 ** 50) };
  const findingsOf = (stdout: string) => {
    const r = JSON.parse(stdout) as { findings: unknown[]; counts: unknown; clean: boolean };
    return { findings: r.findings, counts: r.counts, clean: r.clean };
  };

  it('finds the same as a check on one thread', async () => {
    const dir = tempDir();
    const pre = join(dir, 'pre.ndjson');
    const post = join(dir, 'post.ndjson');
    writeCorpus({ pre, post, records: 20_000, seed: 5, discrepancies: { missing: 9, unexpected: 9, mismatch: 9, duplicate: 3, conservation: 2 } });
    const args = ['integrity', 'check', '--snapshot', pre, '--against', post, '--json'];
    const a = await runCli(args, { env: parallel });
    const b = await runCli(args, { env: inline });
    expect(a.exitCode).toBe(1);
    expect(findingsOf(a.stdout)).toEqual(findingsOf(b.stdout));
  });

  it.each(['checksum', 'truncated', 'reordered'])('still catches a %s file, naming its line (exit 2)', async (how) => {
    const dir = tempDir();
    const pre = join(dir, 'pre.ndjson');
    writeCorpus({ pre, post: join(dir, 'post.ndjson'), records: 5_000, seed: 6 });
    const broken = join(dir, 'broken.ndjson');
    const want = breakSnapshot(join(dir, 'post.ndjson'), broken, how) as { line: number; problem: RegExp };
    for (const [side, args] of [
      ['state now', ['--snapshot', pre, '--against', broken]],
      ['pre-outage', ['--snapshot', broken, '--against', pre]],
    ] as const) {
      const r = await runCli(['integrity', 'check', ...args, '--json'], { env: parallel });
      expect(r.exitCode, side).toBe(2);
      const corrupt = (JSON.parse(r.stdout) as { findings: Finding[] }).findings.find((f) => f.category === 'corrupt');
      expect(corrupt, side).toMatchObject({ id: broken, line: want.line });
      expect(corrupt?.field, side).toMatch(want.problem);
    }
  });
});

describe('recoverctl integrity check', () => {
  it('exit 0 clean, 1 findings (human and --json), 2 unreadable, never a stack trace', async () => {
    const dir = tempDir();
    writeCorpus({ pre: join(dir, 'pre.ndjson'), post: join(dir, 'same.ndjson'), records: 3_000, seed: 5 });
    writeCorpus({ pre: join(dir, 'pre2.ndjson'), post: join(dir, 'post.ndjson'), records: 3_000, seed: 5, discrepancies: { missing: 2, mismatch: 1 } });
    const clean = await runCli(['integrity', 'check', '--snapshot', 'pre.ndjson', '--against', 'same.ndjson'], { cwd: dir });
    expect(clean.exitCode).toBe(0);
    expect(clean.stdout).toMatch(/missing 0, unexpected 0, mismatch 0, duplicate 0, conservation 0, corrupt 0\n {2}clean/);
    const found = await runCli(['integrity', 'check', '--snapshot', 'pre.ndjson', '--against', 'post.ndjson', '--json'], { cwd: dir });
    expect(found.exitCode).toBe(1);
    const json = JSON.parse(found.stdout) as { clean: boolean; counts: Record<string, number>; findings: Finding[] };
    expect(json.clean).toBe(false);
    expect(json.counts).toMatchObject({ missing: 2, mismatch: 1 });
    expect(json.findings.every((f) => typeof f.type === 'string' && typeof f.id === 'string')).toBe(true);
    const missingFile = await runCli(['integrity', 'check', '--snapshot', 'nope.ndjson', '--against', 'post.ndjson'], { cwd: dir });
    expect(missingFile.exitCode).toBe(2);
    expect(missingFile.stderr).toMatch(/nope\.ndjson:0: cannot read \(ENOENT\)/);
    breakSnapshot(join(dir, 'post.ndjson'), join(dir, 'torn.ndjson'), 'truncated');
    const torn = await runCli(['integrity', 'check', '--snapshot', 'pre.ndjson', '--against', 'torn.ndjson'], { cwd: dir });
    expect(torn.exitCode).toBe(2);
    expect(torn.stderr).toMatch(/torn\.ndjson:\d+: truncated/);
    for (const r of [clean, found, missingFile, torn]) expect(hasStackTrace(r.stderr)).toBe(false);
    const usage = await runCli(['integrity', 'check', '--snapshot', 'pre.ndjson'], { cwd: dir });
    expect(usage.exitCode).toBe(2);
  });

  it('against a live engine: the WAL explains what changed after the snapshot; what it does not explain is found', async () => {
    const { dir, client } = await startTestEngine();
    for (const a of ['a', 'b', 'c']) await client.deposit(a, 'USDT', '100000');
    await client.setPhase('open');
    for (let i = 0; i < 10; i++)
      await client.placeOrder({
        account: i % 2 ? 'a' : 'b',
        symbol: 'BTCUSDT',
        side: i % 2 ? 'buy' : 'sell',
        type: 'limit',
        price: String(60000 + (i % 3) * 10),
        qty: '0.01',
      });
    const snap = await client.snapshot();
    // Work after the snapshot: new orders, fills and a cancel, all in the WAL.
    const o = await client.placeOrder({ account: 'c', symbol: 'ETHUSDT', side: 'buy', type: 'limit', price: '3000', qty: '1' });
    await client.placeOrder({ account: 'a', symbol: 'BTCUSDT', side: 'sell', type: 'market', qty: '0.02' });
    await client.cancel(o.id as string);
    await client.setPhase('halted', 'drill');
    const token = join(dir, 'control.token');
    const base = ['integrity', 'check', '--snapshot', snap.path, '--engine', client.url, '--token-file', token];
    const explained = await runCli([...base, '--wal', join(dir, 'wal')]);
    expect(explained.stdout).toMatch(/WAL records applied/);
    expect(explained.exitCode, explained.stdout).toBe(0);
    const unexplained = await runCli([...base, '--json']);
    expect(unexplained.exitCode).toBe(1);
    expect((JSON.parse(unexplained.stdout) as { counts: Record<string, number> }).counts.unexpected).toBeGreaterThan(0);
    // An order that vanished: the state now without one of the orders the WAL says exists.
    const state = await client.state();
    const lines = state.trimEnd().split('\n');
    const body = lines.slice(1, -1).filter((l) => !l.includes(`"id":"${o.id as string}"`));
    const text = `${[lines[0], ...body].join('\n')}\n`;
    const post = join(dir, 'tampered.ndjson');
    writeFileSync(post, `${text}${JSON.stringify({ type: 'trailer', records: body.length, sha256: createHash('sha256').update(text).digest('hex') })}\n`);
    const lost = await runCli(['integrity', 'check', '--snapshot', snap.path, '--against', post, '--wal', join(dir, 'wal'), '--json']);
    expect(lost.exitCode).toBe(1);
    const report = JSON.parse(lost.stdout) as { findings: Finding[] };
    expect(report.findings).toContainEqual(expect.objectContaining({ category: 'missing', type: 'order', id: o.id }));
    expect(readFileSync(snap.path, 'utf8').length).toBeGreaterThan(0);
  });
});

describe('conservation for a snapshot from any writer (no system accounts)', () => {
  /** A snapshot as another exchange's export would be: accounts and positions, no `@external`. */
  const snapshot = (file: string, balances: Record<string, [string, string]>, positions: [string, string, string][]): void => {
    const w = new SnapshotWriter(file, { type: 'header', format: SNAPSHOT_FORMAT, seq: 1, takenAt: '2026-01-01T00:00:00.000Z', phase: 'halted' });
    for (const [id, [usdt, usdc]] of Object.entries(balances).sort()) w.record({ type: 'account', id, balances: { USDC: usdc, USDT: usdt } });
    for (const [id, qty, entryPrice] of positions.sort()) w.record({ type: 'position', id, qty, entryPrice, marginMode: 'cross', isolatedMargin: '0' });
    w.finish();
  };
  const positions: [string, string, string][] = [
    ['alice:BTCUSDT', '0.5', '60000'],
    ['bob:BTCUSDT', '-0.5', '60000'],
  ];

  it('is clean when each asset’s total is what it was before the outage, and says which rule applied', () => {
    const dir = tempDir();
    snapshot(join(dir, 'pre.ndjson'), { alice: ['1000', '50'], bob: ['2000', '0'] }, positions);
    // A transfer between accounts: both balances differ, the totals do not.
    snapshot(join(dir, 'post.ndjson'), { alice: ['900', '50'], bob: ['2100', '0'] }, positions);
    const r = checkSnapshots(join(dir, 'pre.ndjson'), join(dir, 'post.ndjson'));
    expect(r.conservationRule).toBe('against-pre-outage');
    expect(r.counts).toMatchObject({ mismatch: 2, conservation: 0 });
  });

  it('finds an asset whose total changed, and open interest that does not net to zero, whatever the rule', async () => {
    const dir = tempDir();
    snapshot(join(dir, 'pre.ndjson'), { alice: ['1000', '50'], bob: ['2000', '0'] }, positions);
    snapshot(join(dir, 'post.ndjson'), { alice: ['1000', '50'], bob: ['2005.5', '0'] }, [
      ['alice:BTCUSDT', '0.5', '60000'],
      ['bob:BTCUSDT', '-0.4', '60000'],
    ]);
    const r = checkSnapshots(join(dir, 'pre.ndjson'), join(dir, 'post.ndjson'));
    expect(r.findings.filter((f) => f.category === 'conservation')).toEqual([
      // USDT before: 3000 (the two positions' costs cancel); now: 3005.5 in balances - 6000 of costs (0.5 and -0.4 at 60000).
      { category: 'conservation', type: 'asset', id: 'USDT', field: 'ledger', expected: '3000', actual: '-2994.5' },
      { category: 'conservation', type: 'symbol', id: 'BTCUSDT', field: 'openInterest', expected: '0', actual: '0.1' },
    ]);
    const cli = await runCli(['integrity', 'check', '--snapshot', join(dir, 'pre.ndjson'), '--against', join(dir, 'post.ndjson')]);
    expect(cli.exitCode).toBe(1);
    expect(cli.stdout).toContain("conservation: each asset's total against the pre-outage snapshot (no system accounts); open interest nets to zero");
  });

  it('keeps judging a closed ledger by zero-sum when the snapshots have system accounts', () => {
    const dir = tempDir();
    writeCorpus({ pre: join(dir, 'pre.ndjson'), post: join(dir, 'post.ndjson'), records: 500, seed: 3 });
    expect(checkSnapshots(join(dir, 'pre.ndjson'), join(dir, 'post.ndjson')).conservationRule).toBe('zero-sum');
  });
});

describe('record ids beyond plain ASCII', () => {
  // Sorted as JavaScript compares strings: the cursor reads ASCII ids by bytes, others through JSON.
  const ids = ['a-1', 'b"quoted', 'c\\slash', 'zürich', '東京', '😀-last'].sort();
  const write = (file: string, keep: (id: string) => boolean, balance: (id: string) => string): void => {
    const w = new SnapshotWriter(file, { type: 'header', format: SNAPSHOT_FORMAT, seq: 1, takenAt: '2026-01-01T00:00:00.000Z', phase: 'halted' });
    for (const id of ids.filter(keep)) w.record({ type: 'account', id, balances: { USDT: balance(id) } });
    w.finish();
  };

  it.each([
    ['one thread', String(2 ** 50)],
    ['the second core', '0'],
  ])('names each exactly, whether read by bytes or parsed (%s)', async (_label, threshold) => {
    const dir = tempDir();
    const pre = join(dir, 'pre.ndjson');
    const post = join(dir, 'post.ndjson');
    write(
      pre,
      (id) => id !== 'zürich',
      () => '10',
    );
    write(
      post,
      (id) => id !== '東京',
      (id) => (id === 'b"quoted' ? '11' : id === 'a-1' ? '9' : '10'),
    );
    const r = await runCli(['integrity', 'check', '--snapshot', pre, '--against', post, '--json'], { env: { RECOVERCTL_PARALLEL_HASH_BYTES: threshold } });
    expect(r.exitCode).toBe(1);
    const { findings } = JSON.parse(r.stdout) as { findings: Finding[] };
    // A transfer between two accounts and one account renamed: the totals hold, so no conservation finding.
    expect(findings.map(key).sort()).toEqual([
      'mismatch account a-1 balances.USDT',
      'mismatch account b"quoted balances.USDT',
      'missing account 東京 ',
      'unexpected account zürich ',
    ]);
  });
});
