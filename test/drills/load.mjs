// Overload: the load generator pushes the engine as hard as it can while traffic.shift runs. The gates
// must trip before the engine falls over, shed orders must get RETRY_LATER (not a dropped connection),
// and the engine's memory must stay bounded.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, dist, ROOT, withTempDir } from './lib.mjs';

function rssMb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

export const overload = {
  name: 'overload during traffic.shift',
  trials: () => 1,
  async run(_trials, seed) {
    const { startEngine, stopEngine } = await import(dist('engine-client/supervisor.js'));
    return withTempDir(async (dir) => {
      const dataDir = join(dir, 'engine');
      const { client, info } = await startEngine(dataDir, { feedInterval: '200ms', exitWithMe: true });
      try {
        const hotfix = join(ROOT, 'playbooks', 'hotfixes', 'margin-1.4.3.mjs');
        const sum = readFileSync(join(ROOT, 'playbooks', 'hotfixes', 'SHA256SUMS'), 'utf8').split(' ')[0];
        const pb = join(dir, 'load.yaml');
        // The p99 limit is a bucket under what an overloaded engine shows: since the load generator sends
        // batches (issue 17) the engine's own p99 under this load is 0.25 to 0.5 ms, and a 0.25 ms limit
        // tripped only when it was past that bucket.
        writeFileSync(
          pb,
          `apiVersion: recoverctl/v1
kind: Playbook
metadata: { name: overload }
engine: { dataDir: "${dataDir}" }
steps:
  - id: deploy
    uses: hotfix.deploy
    with: { component: margin, artifact: "${hotfix}", sha256: "${sum}" }
  - id: open
    uses: engine.resume
    with: { phases: [open], admission: 0 }
  - id: shift
    uses: traffic.shift
    with:
      stepWeights: [10, 100]
      bake: 3s
      interval: 250ms
      gates: { p99LatencyMs: 0.1, maxErrorRate: 0.01 }
      load: { rate: 50000, accounts: 50, fund: "100000000", seed: ${seed % 1000} }
`,
        );
        const before = rssMb(info.pid);
        const r = spawnSync(process.execPath, [BIN, 'run', pb, '--json'], {
          cwd: dir,
          env: { ...process.env, CI: 'true' },
          encoding: 'utf8',
          timeout: 120_000,
        });
        const events = r.stdout
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l));
        const shift = events.find((e) => e.step === 'shift' && (e.event === 'fail' || e.event === 'ok'));
        const failures = [];
        if (shift?.event !== 'fail' || !/gate breached/.test(shift.error)) failures.push(`the gates did not trip: ${shift?.event} ${shift?.error ?? ''}`);
        const out = shift?.outputs ?? {};
        if (!(out.retryLater > 0)) failures.push('no order was shed with RETRY_LATER');
        if (out.errors !== 0) failures.push(`${out.errors} transport errors or 5xx: ${out.lastError}`);
        const h = await client.health();
        if (h.admissionWeight !== 0) failures.push(`admission left at ${h.admissionWeight} after the breach`);
        const after = rssMb(info.pid);
        if (!(after < 512)) failures.push(`engine RSS ${after.toFixed(0)} MB`);
        return {
          trials: 1,
          passed: failures.length ? 0 : 1,
          lost: 0,
          detail:
            `sent ${out.sent}, ${out.retryLater} RETRY_LATER, ${out.errors} errors; engine RSS ${before.toFixed(0)} -> ${after.toFixed(0)} MB; ${shift?.error ?? ''}`.slice(
              0,
              160,
            ),
          failures,
        };
      } finally {
        await stopEngine(dataDir);
      }
    });
  },
};
