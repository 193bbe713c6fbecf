// Crash drills: SIGKILL `recoverctl run` of the bundled playbook at seeded moments, then --resume-last.
// Every trial must end with the engine open on the hotfix, integrity clean, no finished step run again,
// and a journal that tells what happened.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, dist, ROOT, rng, runCli, withTempDir } from './lib.mjs';

const TIME_SCALE = '0.005';

/** A halted engine like the incident's: accounts, positions, orders, a pre-outage snapshot, then the burst. */
export async function incident(dataDir, seed) {
  const { startEngine } = await import(dist('engine-client/supervisor.js'));
  const { client } = await startEngine(dataDir, { seed, feedInterval: '200ms', fundingInterval: '1s', exitWithMe: true });
  const { traderAccounts } = await import(dist('engine-client/load.js'));
  const traders = traderAccounts(40);
  for (const a of traders) await client.deposit(a, 'USDT', '1000000');
  await client.setPhase('open');
  for (let i = 0; i + 1 < 10; i += 2) {
    await client.placeOrder({ account: traders[i], symbol: 'BTCUSDT', side: 'sell', type: 'limit', price: '60000', qty: '0.01' });
    await client.placeOrder({ account: traders[i + 1], symbol: 'BTCUSDT', side: 'buy', type: 'limit', price: '60010', qty: '0.01' });
  }
  const snap = await client.snapshot();
  await client.fault('margin-burst');
  return { client, snapshot: snap.path };
}

export function playbookFor(dir, dataDir) {
  const text = readFileSync(join(ROOT, 'playbooks', 'um-excess-queue-depth.yaml'), 'utf8')
    .replace('dataDir: ../var/engine', `dataDir: "${dataDir}"`)
    .replace('hotfix: hotfixes/margin-1.4.3.mjs', `hotfix: "${join(ROOT, 'playbooks', 'hotfixes', 'margin-1.4.3.mjs')}"`)
    .replace('outDir: ../var/recovery', `outDir: "${join(dir, 'out')}"`);
  const file = join(dir, 'recovery.yaml');
  writeFileSync(file, text);
  return file;
}

export function journal(dir) {
  let runs;
  try {
    runs = readdirSync(join(dir, '.recoverctl', 'runs'));
  } catch {
    return [];
  }
  if (runs.length === 0) return [];
  let text;
  try {
    text = readFileSync(join(dir, '.recoverctl', 'runs', runs[0], 'journal.ndjson'), 'utf8');
  } catch {
    return []; // the run made its folder but not yet its journal
  }
  return text.split('\n').flatMap((l) => {
    // The run may be writing its next record as we read: a partial last line is not an event yet.
    try {
      return l ? [JSON.parse(l)] : [];
    } catch {
      return [];
    }
  });
}

const STEPS = [
  'attach',
  'hold-halt',
  'verify-snapshot',
  'halt-snapshot',
  'integrity-at-halt',
  'smoke',
  'deploy',
  'announce-deploy',
  'risk',
  'approve',
  'resume',
  'shift',
  'integrity-after',
  'funding',
  'user-reports',
  'announce-resumed',
  'incident-report',
];

/** Kill the run `delayMs` after it journals the start of `step` (or as soon as it is past it). */
async function killAt(child, dir, step, delayMs, exited) {
  let done = false;
  void exited.then(() => (done = true));
  const index = STEPS.indexOf(step);
  while (!done) {
    const events = journal(dir);
    const reached = events.some((e) => e.event === 'start' && STEPS.indexOf(e.step) >= index);
    if (reached) {
      await new Promise((r) => setTimeout(r, delayMs));
      child.kill('SIGKILL');
      return;
    }
    await new Promise((r) => setTimeout(r, 3));
  }
}

async function trial(seed, step, delayMs) {
  const { stopEngine } = await import(dist('engine-client/supervisor.js'));
  const { runIntegrity } = await import(dist('integrity/run.js'));
  return withTempDir(async (dir) => {
    const dataDir = join(dir, 'engine');
    const env = { ...process.env, CI: 'true', NO_COLOR: '1' };
    try {
      const { client, snapshot } = await incident(dataDir, seed);
      const pb = playbookFor(dir, dataDir);
      const args = ['run', pb, '--yes', '--time-scale', TIME_SCALE, '--var', `preOutageSnapshot=${snapshot}`];
      const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, env, stdio: 'ignore' });
      const exited = new Promise((res) => child.on('exit', res));
      await killAt(child, dir, step, delayMs, exited);
      await exited;
      const killedDuring = (() => {
        const events = journal(dir);
        if (events.length === 0) return '(before the run started)';
        const open = new Map();
        for (const e of events) {
          if (e.event === 'start') open.set(e.step, true);
          if (e.event === 'ok' || e.event === 'fail' || e.event === 'skip') open.delete(e.step);
        }
        return [...open.keys()].at(-1) ?? (events.some((e) => e.event === 'run-end') ? '(finished)' : '(between steps)');
      })();
      // Killed before its journal existed: nothing to resume, the operator starts it again.
      const again = killedDuring === '(before the run started)' ? args : ['run', pb, '--resume-last', '--yes', '--time-scale', TIME_SCALE];
      const resumed = await runCli(again, dir, env);
      const failures = [];
      const finishedBefore = killedDuring === '(finished)';
      if (!finishedBefore && resumed.status !== 0) failures.push(`resume exited ${resumed.status}: ${resumed.stderr.split('\n').slice(-3).join(' | ')}`);
      const events = journal(dir);
      const oks = new Map();
      for (const e of events) if (e.event === 'ok' && e.phase === 'main') oks.set(e.step, (oks.get(e.step) ?? 0) + 1);
      for (const [step, n] of oks) if (n > 1) failures.push(`step ${step} finished ${n} times`);
      if (events.at(-1)?.event !== 'run-end' || events.at(-1)?.outcome !== 'success')
        failures.push(`journal does not end in success: ${JSON.stringify(events.at(-1)).slice(0, 120)}`);
      if (!finishedBefore && !killedDuring.startsWith('(') && !events.some((e) => e.event === 'recheck' && e.step === killedDuring))
        failures.push(`no recheck journaled for ${killedDuring}`);
      const h = await client.health();
      if (h.phase !== 'open' || h.modules.margin?.active !== '1.4.3') failures.push(`engine ${h.phase} on margin ${h.modules.margin?.active}`);
      const integrity = await runIntegrity({ snapshot, target: { engine: client.url, tokenFile: join(dataDir, 'control.token') }, wal: join(dataDir, 'wal') });
      if (!integrity.clean) failures.push(`integrity: ${JSON.stringify(integrity.counts)}`);
      const lost = integrity.counts.missing;
      return { killedDuring, failures, lost };
    } finally {
      await stopEngine(dataDir).catch(() => undefined);
    }
  });
}

export const crashResume = {
  name: 'crash: SIGKILL run, then --resume-last',
  // In npm test, a kill every other step of the playbook (each at a seeded delay; rehearse --chaos kills
  // the runner at seeded steps too); --long 24, kill points over every step (4 to 5 s a trial).
  trials: (long) => (long ? 24 : Math.ceil(STEPS.length / 2)),
  async run(trials, seed, parallel = 2) {
    const r = rng(seed);
    // Kill points spread over the steps of the playbook (all of them from 17 trials): just after one starts, at a seeded delay.
    const points = Array.from({ length: trials }, (_, i) => ({
      step: STEPS[Math.floor((i * STEPS.length) / Math.min(trials, STEPS.length)) % STEPS.length],
      delayMs: Math.floor(r() * 4),
    }));
    const results = [];
    let next = 0;
    const worker = async () => {
      while (next < points.length) {
        const i = next++;
        results[i] = await trial(seed * 1000 + i, points[i].step, points[i].delayMs);
      }
    };
    await Promise.all(Array.from({ length: parallel }, worker));
    const failures = results.flatMap((x, i) => x.failures.map((f) => `kill ${points[i].delayMs} ms into ${points[i].step} (during ${x.killedDuring}): ${f}`));
    const steps = new Set(results.map((x) => x.killedDuring));
    return {
      trials,
      passed: results.filter((x) => x.failures.length === 0).length,
      lost: results.reduce((a, x) => a + x.lost, 0),
      detail: `killed during ${steps.size} different steps: ${[...steps].join(', ')}`,
      failures,
    };
  },
};
