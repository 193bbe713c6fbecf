// bench/rehearsal: the wall time of `npm start`'s rehearsal split into engine work, bake and dwell
// waits, and orchestration overhead (the runner, journal and rendering between steps).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const playbook = join(root, 'playbooks', 'um-excess-queue-depth.yaml');
const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const ms = (d) => {
  const m = /^(\d+)(ms|s|m|h)$/.exec(d);
  return m ? Number(m[1]) * unit[m[2]] : 0;
};
const spec = parse(spawnSync('cat', [playbook], { encoding: 'utf8' }).stdout);
const timeScale = spec.rehearsal?.timeScale ?? 1;

const state = mkdtempSync(join(tmpdir(), 'bench-rehearsal-'));
try {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [join(root, 'bin', 'recoverctl.js'), 'rehearse', playbook, '--json', '--state-dir', state], {
    encoding: 'utf8',
    env: { ...process.env, CI: 'true' },
    maxBuffer: 1 << 28,
  });
  const total = performance.now() - t0;
  if (r.status !== 0) {
    console.log(`rehearsal failed (exit ${r.status}):\n${r.stderr.slice(-2000)}`);
    process.exit(1);
  }
  const events = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const start = Date.parse(events.find((e) => e.event === 'run-start').ts);
  const end = Date.parse(events.find((e) => e.event === 'run-end').ts);
  const done = events.filter((e) => e.event === 'ok' || e.event === 'fail');
  const stepTime = done.reduce((a, e) => a + e.durationMs, 0);
  // What the playbook asks to wait, scaled as the rehearsal scales it.
  let waits = 0;
  for (const s of spec.steps) {
    const w = s.with ?? {};
    if (s.uses === 'wait') waits += ms(w.duration) * timeScale;
    if (s.uses === 'engine.resume') waits += ((w.phases ?? [1, 2, 3]).length - 1) * ms(w.dwell ?? '30s') * timeScale;
    if (s.uses === 'traffic.shift') {
      const stages = w.stages ?? (w.stepWeights ?? []).map((weight) => ({ weight, bake: w.bake }));
      for (const st of stages) waits += ms(st.bake) * timeScale;
    }
  }
  const run = end - start;
  const engineWork = stepTime - waits;
  const orchestration = run - stepTime;
  const setup = total - run;
  const pct = (x) => `${((100 * x) / total).toFixed(1)}%`;
  console.log(`rehearsal of um-excess-queue-depth (time scale ${timeScale}): ${(total / 1000).toFixed(2)} s wall`);
  console.log(`  scratch engine, seeding, burst, paging delay, outcome checks, teardown  ${(setup / 1000).toFixed(2)} s  ${pct(setup)}`);
  console.log(`  bake and dwell waits (scaled)                                        ${(waits / 1000).toFixed(2)} s  ${pct(waits)}`);
  console.log(`  engine work inside steps (requests, testnet, integrity, reports)     ${(engineWork / 1000).toFixed(2)} s  ${pct(engineWork)}`);
  console.log(
    `  orchestration between steps (runner, journal fsync, rendering)       ${(orchestration / 1000).toFixed(3)} s  ${pct(orchestration)}  (of the playbook run: ${((100 * orchestration) / run).toFixed(2)}%, aim < 5%)`,
  );
} finally {
  rmSync(state, { recursive: true, force: true });
}
