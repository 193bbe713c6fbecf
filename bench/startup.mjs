// Startup time of `recoverctl --help` as a ratio to bare `node -e 0`, measured in the same run.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(root, 'bin', 'recoverctl.js');
const runs = Number(process.env.BENCH_RUNS ?? 30);

function timeOnce(args) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { stdio: 'ignore' });
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
const bare = [];
const help = [];
const validate = [];
for (let i = 0; i < runs; i++) {
  bare.push(timeOnce(['-e', '0']));
  help.push(timeOnce([bin, '--help']));
  validate.push(timeOnce([bin, 'validate', join(root, 'playbooks', 'runner-drill.yaml')]));
}
const b = median(bare);
const h = median(help);
const v = median(validate);
console.log(`startup (median of ${runs} runs)`);
console.log(`  node -e 0                 ${b.toFixed(1)} ms`);
console.log(`  recoverctl --help         ${h.toFixed(1)} ms   ratio ${(h / b).toFixed(2)} (aim <= 1.5)`);
console.log(`  recoverctl validate <pb>  ${v.toFixed(1)} ms   ratio ${(v / b).toFixed(2)}`);
