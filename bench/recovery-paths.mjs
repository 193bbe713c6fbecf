// bench/recovery-paths: the two bundled recovery paths on the same seeded incident, alternated so that
// drift hits both: in place (um-excess-queue-depth) and blue-green (um-blue-green, needs HAProxy). Per
// run, the rehearsal's RTO and time closed, and what an order client saw while it recovered: refused
// while halted is the engine's PHASE_HALTED; unreachable is no answer or no writable primary at all.
// Flags: --rounds N (3), --seed N (2026), --rate N orders/s (50).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startOrderClient } from './lib/order-client.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const { values: flags } = parseArgs({
  options: { rounds: { type: 'string', default: '3' }, seed: { type: 'string', default: '2026' }, rate: { type: 'string', default: '50' } },
});
const rounds = Number(flags.rounds);
const rate = Number(flags.rate);
if (!(rounds >= 1 && rate > 0)) {
  console.log('usage: node bench/recovery-paths.mjs [--rounds N] [--seed N] [--rate ORDERS_PER_S]');
  process.exit(2);
}

const PATHS = [
  { name: 'in-place', playbook: 'playbooks/um-excess-queue-depth.yaml' },
  { name: 'blue-green', playbook: 'playbooks/um-blue-green.yaml' },
];
const onPath = (cmd) => (process.env.PATH ?? '').split(delimiter).some((d) => d && existsSync(join(d, cmd)));
const paths = onPath('haproxy') ? PATHS : PATHS.slice(0, 1);
if (paths.length < PATHS.length) console.log('haproxy is not on PATH (Debian: apt-get install haproxy): blue-green skipped, in-place only');

/** Processes whose command line names the scratch folder: what the rehearsal should have stopped. */
function leftoversIn(scratch) {
  const ps = spawnSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' }).stdout;
  return ps
    .split('\n')
    .map((l) => /^\s*(\d+)\s+(.*)$/.exec(l))
    .filter((m) => m && Number(m[1]) !== process.pid && m[2].includes(`${scratch}/`))
    .map((m) => ({ pid: Number(m[1]), args: m[2] }));
}

async function rehearse(path) {
  const state = mkdtempSync(join(tmpdir(), 'bench-recovery-paths-'));
  const args = [join(root, 'bin', 'recoverctl.js'), 'rehearse', path.playbook, '--json', '--keep', '--seed', flags.seed, '--state-dir', state];
  const child = spawn(process.execPath, args, { cwd: root, env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise((res) => child.on('close', (code, signal) => res({ code, signal })));
  const stderrTail = [];
  let scratch = null;
  const scratchReady = new Promise((res) => {
    void exited.then(() => res(null));
    createInterface({ input: child.stderr }).on('line', (line) => {
      stderrTail.push(line);
      if (stderrTail.length > 40) stderrTail.shift();
      const m = / rehearse: scratch engine in (.+)\/engine \(seed /.exec(line);
      if (m && !scratch) res((scratch = m[1]));
    });
  });
  const client = startOrderClient(scratchReady, { intervalMs: 1000 / rate, log: (l) => console.log(`  ${path.name}: ${l}`) });
  // The client stops when the playbook run ends: after it the rehearsal only judges and tears the
  // engines down, and orders then would count the teardown as unavailability.
  const events = [];
  let runEnded;
  const runEnd = new Promise((res) => {
    runEnded = res;
    void exited.then(res);
  });
  const stdoutDone = new Promise((res) => {
    createInterface({ input: child.stdout })
      .on('line', (line) => {
        try {
          const e = JSON.parse(line);
          events.push(e);
          if (e.event === 'run-end') runEnded();
        } catch {
          // A line that is not an event is not ours to judge; the summary decides.
        }
      })
      .on('close', res);
  });
  const stopAtRunEnd = runEnd.then(() => client.stop());
  const [{ code, signal }, orders] = await Promise.all([exited, stopAtRunEnd, stdoutDone]);

  const summary = events.find((e) => e.event === 'rehearse-summary')?.results?.[0];
  const failure = !summary
    ? `no rehearse-summary (exit ${code ?? signal}):\n${stderrTail.join('\n')}`
    : !summary.ok
      ? `${summary.outcome}: ${summary.reason ?? `exit ${code ?? signal}`}`
      : null;
  const leaked = scratch ? leftoversIn(scratch) : [];
  for (const p of leaked) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // Already gone between ps and kill.
    }
  }
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  rmSync(state, { recursive: true, force: true });
  return { path: path.name, rto: summary?.rtoSeconds ?? NaN, closed: summary?.closedSeconds ?? NaN, orders, failure, leaked };
}

const runs = [];
let failed = false;
outer: for (let round = 1; round <= rounds; round++) {
  for (const path of paths) {
    const run = await rehearse(path);
    runs.push(run);
    if (run.failure) console.log(`round ${round} ${path.name}: rehearsal FAILED: ${run.failure}`);
    for (const p of run.leaked) console.log(`round ${round} ${path.name}: LEAKED process ${p.pid} killed: ${p.args}`);
    if (run.orders.twoWriters) console.log(`round ${round} ${path.name}: two writable primaries seen at once in ${run.orders.twoWriters} health polls`);
    if (!run.failure && !run.orders.sent) console.log(`round ${round} ${path.name}: the client never saw the engine halt itself, so sent nothing`);
    else if (!run.failure && !run.orders.funded) console.log(`round ${round} ${path.name}: the client's account was never funded`);
    if (run.failure || run.leaked.length) {
      failed = true;
      break outer;
    }
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const cols = ['path', 'RTO s', 'closed s', 'sent', 'accepted', 'refused halted', 'refused other', 'unreachable'];
const widths = [17, 7, 8, 6, 8, 14, 13, 11];
const row = (cells) => cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ');
const fmt = (x) => (Number.isFinite(x) ? (Number.isInteger(x) ? String(x) : x.toFixed(1)) : '-');
console.log(`\n${rounds} round(s), seed ${flags.seed}, client ${rate} post-only bids/s from the halt to the end of the run`);
console.log(row(cols));
for (const r of runs) {
  const o = r.orders;
  console.log(row([r.path, fmt(r.rto), fmt(r.closed), o.sent, o.accepted, o.refusedHalted, o.refusedOther, o.unreachable]));
}
const medians = {};
for (const path of paths) {
  const mine = runs.filter((r) => r.path === path.name);
  if (!mine.length) continue;
  const m = (f) => median(mine.map(f));
  medians[path.name] = { rto: m((r) => r.rto), closed: m((r) => r.closed), halted: m((r) => r.orders.refusedHalted) };
  console.log(
    row([
      `median ${path.name}`,
      fmt(medians[path.name].rto),
      fmt(medians[path.name].closed),
      ...['sent', 'accepted', 'refusedHalted', 'refusedOther', 'unreachable'].map((k) => fmt(m((r) => r.orders[k]))),
    ]),
  );
  const categories = {};
  for (const r of mine) for (const [k, n] of Object.entries(r.orders.categories)) categories[k] = (categories[k] ?? 0) + n;
  const list = Object.entries(categories).sort((a, b) => b[1] - a[1]);
  console.log(`  ${path.name} other answers (phase at the last poll), all runs: ${list.length ? list.map(([k, n]) => `${k} ${n}`).join(', ') : 'none'}`);
}
if (medians['in-place'] && medians['blue-green']) {
  const ratio = (k) => (medians['in-place'][k] ? (medians['blue-green'][k] / medians['in-place'][k]).toFixed(2) : '-');
  console.log(`blue-green / in-place (medians): RTO ${ratio('rto')}x, closed ${ratio('closed')}x, refused while halted ${ratio('halted')}x`);
}
console.log(`machine: ${cpus().length} cores, node ${process.version}; wall-clock figures, noisy with other load (a CI run) on the machine`);
process.exitCode = failed ? 1 : 0;
