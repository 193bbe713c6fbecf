// Startup time of `recoverctl --help`, `validate` and `plan` as ratios to bare `node -e 0`, measured in the
// same run, and what importing each fixed dependency alone adds to node (the floor under the targets).
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(root, 'bin', 'recoverctl.js');
const runs = Number(process.env.BENCH_RUNS ?? 30);

function timeOnce(args) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { stdio: 'ignore', cwd: root });
  if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}`);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

// Warm the file cache, then interleave so drift hits both equally.
timeOnce(['-e', '0']);
timeOnce([bin, '--help']);
const bundled = join(root, 'playbooks', 'um-excess-queue-depth.yaml');
const bare = [];
const help = [];
const validate = [];
const plan = [];
// What the fixed dependencies cost before recoverctl does anything: node plus only importing each.
const imports = ['commander', 'yaml', 'zod'];
const imported = imports.map(() => []);
const importOnly = (m) => ['--input-type=module', '-e', `import '${m}'`];
for (let i = 0; i < runs; i++) {
  bare.push(timeOnce(['-e', '0']));
  imports.forEach((m, j) => imported[j].push(timeOnce(importOnly(m))));
  help.push(timeOnce([bin, '--help']));
  validate.push(timeOnce([bin, 'validate', bundled]));
  plan.push(timeOnce([bin, 'plan', bundled, '--state-dir', join(root, 'node_modules', '.bench-startup-state')]));
}
const b = median(bare);
const row = (label, xs, target) => {
  const m = median(xs);
  const ratio = m / b;
  console.log(`  ${label.padEnd(34)} ${m.toFixed(1)} ms   ratio ${ratio.toFixed(2)} (target <= ${target}: ${ratio <= target ? 'met' : 'missed'})`);
};
console.log(`startup (median of ${runs} interleaved runs)`);
console.log(`  ${'node -e 0'.padEnd(34)} ${b.toFixed(1)} ms`);
console.log('  the floor: node and one import, nothing run');
imports.forEach((m, j) => {
  const x = median(imported[j]);
  console.log(`    ${`import '${m}'`.padEnd(32)} ${x.toFixed(1)} ms   +${(x - b).toFixed(1)} ms (${((x - b) / b).toFixed(2)} of node -e 0)`);
});
row('recoverctl --help', help, 1.3);
row('recoverctl validate <bundled>', validate, 1.6);
row('recoverctl plan <bundled>', plan, 1.6);
