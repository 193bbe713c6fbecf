// Chaos drills (issue 15): `recoverctl rehearse PLAYBOOK --chaos N --seed 1` on the bundled playbooks, as
// an SRE would type it. Every trial must keep P1-P4 (docs/chaos.md) and every fault kind that has a place
// in the playbook must strike at least once. `npm run drills`: 30 trials of um-excess-queue-depth.yaml;
// --long adds the gateway and blue-green playbooks (HAProxy and Prometheus faults included).
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { BIN, ROOT, withTempDir } from './lib.mjs';

// --long spreads its trials over the three playbooks and stays inside the 10 minutes it has on 2 cores
// (8 to 11 s a trial two at a time; the bundled playbook's 30 of `npm run drills` alone take 4 to 6 minutes).
const PLAN = (long) =>
  long
    ? [
        ['um-excess-queue-depth.yaml', 10],
        ['um-excess-queue-depth-gateway.yaml', 3],
        ['um-blue-green.yaml', 3],
      ]
    : [['um-excess-queue-depth.yaml', 30]];

/** `recoverctl rehearse FILE --chaos N --seed 1 --json`: its exit code, trial events and stderr. */
function chaos(file, n, state) {
  return new Promise((resolve) => {
    const args = [BIN, 'rehearse', join(ROOT, 'playbooks', file), '--chaos', String(n), '--seed', '1', '--json', '--state-dir', state];
    const child = spawn(process.execPath, args, { env: { ...process.env, CI: 'true', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (code) => {
      const events = stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l));
      resolve({ code, trials: events.filter((e) => e.event === 'chaos-trial'), stderr });
    });
  });
}

export const chaosTrials = {
  name: 'chaos: rehearse --chaos, P1-P4 on every trial',
  trials: (long) => PLAN(long).reduce((a, [, n]) => a + n, 0),
  async run(_trials, _seed, long = process.argv.includes('--long')) {
    const failures = [];
    const details = [];
    let passed = 0;
    let total = 0;
    for (const [file, n] of PLAN(long)) {
      const started = performance.now();
      const r = await withTempDir((dir) => chaos(file, n, join(dir, 'state')));
      total += n;
      for (const t of r.trials) {
        const broken = t.error ? [`error: ${t.error}`] : t.properties.filter((p) => !p.ok).map((p) => `${p.id}: ${p.message}`);
        if (broken.length === 0 && t.properties.length === 4) passed++;
        else failures.push(`${file} ${t.reproducer}: ${broken.join('; ')}`);
      }
      if (r.trials.length !== n)
        failures.push(`${file}: ${r.trials.length} of ${n} trials reported (exit ${r.code}): ${r.stderr.split('\n').slice(-3).join(' | ')}`);
      const struck = new Set(r.trials.filter((t) => t.struck !== null).map((t) => t.spec.fault));
      const tried = new Set(r.trials.map((t) => t.spec.fault));
      for (const f of tried) if (!struck.has(f)) failures.push(`${file}: ${f} never struck`);
      const outcomes = {};
      for (const t of r.trials) outcomes[t.outcome] = (outcomes[t.outcome] ?? 0) + 1;
      details.push(`${file}: ${struck.size} fault kinds struck, ${JSON.stringify(outcomes)}, ${((performance.now() - started) / 1000).toFixed(0)}s`);
    }
    return { trials: total, passed, lost: 0, detail: details.join('; '), failures };
  },
};
