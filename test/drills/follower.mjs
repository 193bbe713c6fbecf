// The hot standby at issue 14's full size: test/integration/follower-100k.test.ts with 100,000 mixed
// operations (`npm test` runs it with 20,000): liquidations and funding on the primary, its follower
// killed with SIGKILL halfway and restarted on its data dir. Every trial must end byte-identical.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './lib.mjs';

const OPS = 100_000;
const SUMMARY = /follower-100k: (\{.*\})/;

/** One run of the integration test in its own vitest (its own reporter: CI's results file is left alone). */
function trial(seed) {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', 'test/integration/follower-100k.test.ts', '--reporter=default'],
      {
        cwd: ROOT,
        env: { ...process.env, FOLLOWER_OPS: String(OPS), FOLLOWER_SEED: String(seed), CI: 'true', NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    child.on('exit', (code, signal) => {
      const m = SUMMARY.exec(out);
      resolve({ code, signal, summary: m ? JSON.parse(m[1]) : undefined, tail: out.trimEnd().split('\n').slice(-25).join('\n') });
    });
  });
}

export const followerUnderLoad = {
  name: 'follower after 100k operations',
  // One in both: 40 s of 100k operations; --long has no room for a second in its 10 minutes on 2 cores.
  trials: () => 1,
  async run(trials, seed) {
    const results = [];
    for (let i = 0; i < trials; i++) results.push(await trial(seed * 100 + i));
    const failures = results.flatMap((r, i) =>
      r.code === 0 && r.summary?.identical ? [] : [`seed ${seed * 100 + i}: vitest exited ${r.code ?? r.signal}\n${r.tail}`],
    );
    const s = results.map((r) => r.summary).filter(Boolean);
    return {
      trials,
      passed: trials - failures.length,
      lost: 0,
      detail: s.length
        ? `${OPS} ops in ${s.map((x) => x.drive.split(' ')[0]).join('/')}; liquidations ${s.map((x) => x.liquidations.liquidationOrders).join('/')}, ` +
          `funding settled ${s.map((x) => x.funding.settled).join('/')}; follower killed at seq ${s.map((x) => x.follower.killedAtSeq).join('/')}`
        : 'no run finished',
      failures,
    };
  },
};
