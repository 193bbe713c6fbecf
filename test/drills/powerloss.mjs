// Power-loss drills: cut the engine's WAL and a run's journal at random byte offsets (bytes, not
// characters: both files hold non-ASCII text). Recovery must stop at the last whole record, say so, and
// keep going from there. test/integration/power-cuts.test.ts cuts small ones at every offset.
import { copyFileSync, cpSync, readdirSync, readFileSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { dist, rng, withTempDir } from './lib.mjs';

/** Whole lines (newlines) in the first `end` bytes. */
function newlines(bytes, end = bytes.length) {
  let n = 0;
  for (let i = bytes.indexOf(10); i >= 0 && i < end; i = bytes.indexOf(10, i + 1)) n++;
  return n;
}

export const walPowerLoss = {
  name: 'power loss: WAL cut at random offsets',
  trials: (long) => (long ? 200 : 40),
  async run(trials, seed) {
    const { startEngine, stopEngine } = await import(dist('engine-client/supervisor.js'));
    const { EngineRuntime } = await import(dist('engine/runtime.js'));
    return withTempDir(async (dir) => {
      const base = join(dir, 'base');
      const { client } = await startEngine(base, { feedInterval: '0ms', snapshotEvery: 0, exitWithMe: true });
      for (let i = 0; i < 20; i++) await client.deposit(`a${i}`, 'USDT', '1000');
      await client.setPhase('halted', 'maintenance in Zürich — ✓');
      await client.setPhase('open');
      for (let i = 0; i < 40; i++)
        await client.placeOrder({
          account: `a${i % 20}`,
          symbol: 'ETHUSDT',
          side: i % 2 ? 'buy' : 'sell',
          type: 'limit',
          price: String(3000 + (i % 7) - 3),
          qty: '0.01',
        });
      await stopEngine(base);
      const seg = readdirSync(join(base, 'wal'))
        .filter((f) => f.endsWith('.log'))
        .sort()[0];
      const bytes = readFileSync(join(base, 'wal', seg));
      const size = bytes.length;
      const r = rng(seed);
      const failures = [];
      for (let t = 0; t < trials; t++) {
        const copy = join(dir, `t${t}`);
        cpSync(base, copy, { recursive: true });
        const offset = Math.floor(r() * size);
        truncateSync(join(copy, 'wal', seg), offset);
        const whole = newlines(bytes, offset);
        const cutMid = offset > 0 && bytes[offset - 1] !== 10;
        const rt = await EngineRuntime.open({
          dataDir: copy,
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
        try {
          if (rt.seq !== whole) failures.push(`trial ${t}: cut at ${offset}: recovered seq ${rt.seq}, ${whole} whole records`);
          if (cutMid && !rt.recovery.walDamage) failures.push(`trial ${t}: a torn record was not reported`);
          const ledger = Object.values(rt.ex.ledgerImbalance()).every((v) => v === 0n);
          if (!ledger) failures.push(`trial ${t}: ledger unbalanced after recovery`);
        } finally {
          await rt.close();
        }
      }
      return { trials, passed: trials - failures.length, lost: 0, detail: `cut anywhere in ${size} bytes: recovery stops at the last whole record`, failures };
    });
  },
};

export const journalPowerLoss = {
  name: 'power loss: journal cut at random offsets',
  trials: (long) => (long ? 500 : 100),
  async run(trials, seed) {
    const { readJournal, foldJournal, JournalWriter } = await import(dist('runner/journal.js'));
    const { spawnSync } = await import('node:child_process');
    const { BIN, ROOT } = await import('./lib.mjs');
    return withTempDir(async (dir) => {
      copyFileSync(join(ROOT, 'playbooks', 'runner-drill.yaml'), join(dir, 'drill.yaml'));
      const r0 = spawnSync(process.execPath, [BIN, 'run', 'drill.yaml', '--yes', '--time-scale', '0.01', '--var', 'label=Zürich 東京 ✓'], {
        cwd: dir,
        env: { ...process.env, CI: 'true' },
        encoding: 'utf8',
      });
      if (r0.status !== 0) return { trials: 0, passed: 0, lost: 0, detail: 'setup run failed', failures: [r0.stderr] };
      const runId = readdirSync(join(dir, '.recoverctl', 'runs'))[0];
      const file = join(dir, '.recoverctl', 'runs', runId, 'journal.ndjson');
      const bytes = readFileSync(file);
      const r = rng(seed);
      const failures = [];
      for (let t = 0; t < trials; t++) {
        const copy = join(dir, `j${t}.ndjson`);
        copyFileSync(file, copy);
        const offset = Math.floor(r() * bytes.length);
        truncateSync(copy, offset);
        const whole = newlines(bytes, offset);
        const read = readJournal(copy);
        if (read.events.length !== whole) failures.push(`trial ${t}: read ${read.events.length} events, ${whole} whole records`);
        if (offset > 0 && bytes[offset - 1] !== 10 && read.tornAtLine === undefined) failures.push(`trial ${t}: torn record not reported`);
        if (whole > 0 && !foldJournal(runId, read)) failures.push(`trial ${t}: journal not foldable`);
        // Reopening for the resume cuts the torn tail, so the next record starts on its own line.
        new JournalWriter(copy).close();
        if (newlines(readFileSync(copy)) !== whole) failures.push(`trial ${t}: torn tail not cut on reopen`);
      }
      return { trials, passed: trials - failures.length, lost: 0, detail: 'every cut leaves exactly the whole records, the torn one reported', failures };
    });
  },
};
