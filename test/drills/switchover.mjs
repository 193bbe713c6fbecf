// Switchover drills (issue 14): the blue-green playbook killed around its promotion. Either the run is
// killed (SIGKILL recoverctl, then --resume-last as an operator would), or an engine is (the standby or
// the old primary, while `engine.promote` runs, then --resume-last). Every trial must end with exactly one
// engine taking writes and nothing it acknowledged lost, or with none taking writes, exit 3 and a message
// that says what a human must look at. Never two writers, never exit 0 with none.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { incident, journal } from './crash.mjs';
import { BIN, dist, ROOT, rng, runCli, withTempDir } from './lib.mjs';

const TIME_SCALE = '0.005';
const RUNNER_STEPS = ['standby', 'deploy', 'approve', 'promote', 'resume', 'shift', 'demote', 'integrity-after'];
const ENGINE_VICTIMS = ['standby', 'primary'];

/** um-blue-green.yaml without the gateway (the engine provider moves the admission weight instead). */
function playbookFor(dir, dataDir) {
  const text = readFileSync(join(ROOT, 'playbooks', 'um-blue-green.yaml'), 'utf8')
    .replace('dataDir: ../var/engine', `dataDir: "${dataDir}"`)
    .replace('hotfix: hotfixes/margin-1.4.3.mjs', `hotfix: "${join(ROOT, 'playbooks', 'hotfixes', 'margin-1.4.3.mjs')}"`)
    .replace('outDir: ../var/recovery', `outDir: "${join(dir, 'out')}"`)
    .replace(/gateway: &gateway \{.*\}$/m, 'gateway: &gateway { type: engine }')
    .replace(/, url: "\$\{\{ vars\.gatewayUrl \}\}"/, '');
  const file = join(dir, 'blue-green.yaml');
  writeFileSync(file, text);
  return file;
}

/** Wait until the run journals the start of `step` (or ends); false when it ended first. */
async function reached(dir, step, exited) {
  let done = false;
  void exited.then(() => (done = true));
  while (!done) {
    if (journal(dir).some((e) => e.event === 'start' && e.step === step)) return true;
    await new Promise((r) => setTimeout(r, 3));
  }
  return false;
}

/** The engines of the trial and which of them take writes (a primary, not fenced). */
async function writers(dirs) {
  const { connect } = await import(dist('engine-client/supervisor.js'));
  const seen = [];
  const writing = [];
  for (const d of dirs) {
    const client = await connect({ dataDir: d }).catch(() => undefined);
    const h = client ? await client.health().catch(() => undefined) : undefined;
    if (!h) {
      seen.push(`${d.split('/').at(-1)}: down`);
      continue;
    }
    seen.push(`${d.split('/').at(-1)}: ${h.role}${h.fenced ? ' fenced' : ''} ${h.phase}`);
    if (h.role === 'primary' && !h.fenced) writing.push({ dir: d, client });
  }
  return { seen: seen.join(', '), writing };
}

export async function trial(seed, point) {
  const { stopEngine, readEngineInfo } = await import(dist('engine-client/supervisor.js'));
  const { runIntegrity } = await import(dist('integrity/run.js'));
  return withTempDir(async (dir) => {
    const dataDir = join(dir, 'engine');
    const standbyDir = `${dataDir}-standby`;
    const env = { ...process.env, CI: 'true', NO_COLOR: '1' };
    try {
      const { snapshot } = await incident(dataDir, seed);
      const pb = playbookFor(dir, dataDir);
      const args = ['run', pb, '--yes', '--time-scale', TIME_SCALE, '--var', `preOutageSnapshot=${snapshot}`];
      const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
      let firstStderr = '';
      child.stderr.on('data', (c) => (firstStderr += c));
      const exited = new Promise((res) => child.on('close', (code) => res(code)));
      const failures = [];
      if (await reached(dir, point.step, exited)) {
        await new Promise((r) => setTimeout(r, point.delayMs));
        if (point.victim === 'runner') child.kill('SIGKILL');
        else {
          const pid = readEngineInfo(point.victim === 'standby' ? standbyDir : dataDir)?.pid;
          if (pid) process.kill(pid, 'SIGKILL');
        }
      }
      const first = await exited;
      // Whatever the first run did, the operator resumes it (a finished run is left alone).
      const ended = journal(dir).some((e) => e.event === 'run-end');
      const resumed = ended
        ? { status: first, stderr: firstStderr }
        : await runCli(['run', pb, '--resume-last', '--yes', '--time-scale', TIME_SCALE], dir, env);
      const code = resumed.status;
      const { seen, writing } = await writers([dataDir, standbyDir]);
      if (writing.length > 1) failures.push(`two engines take writes: ${seen}`);
      if (writing.length === 0 && code !== 3) failures.push(`no engine takes writes (${seen}) but the run exited ${code}, not 3`);
      if (writing.length === 0 && code === 3 && !/human|must|cannot be told|look/.test(resumed.stderr ?? ''))
        failures.push(`exit 3 without a message saying what to look at: ${(resumed.stderr ?? '').split('\n').slice(-3).join(' | ')}`);
      // A killed runner resumes to a recovery on the standby; a killed engine may fail the run (1: rolled back, 3: a human).
      if (point.victim === 'runner' && (code !== 0 || writing[0]?.dir !== standbyDir))
        failures.push(`a resumed run must recover on the standby: exit ${code}, ${seen}`);
      if (![0, 1, 3].includes(code)) failures.push(`exit ${code}: ${(resumed.stderr ?? '').split('\n').slice(-3).join(' | ')}`);
      const events = journal(dir);
      const oks = new Map();
      for (const e of events) if (e.event === 'ok' && e.phase === 'main') oks.set(e.step, (oks.get(e.step) ?? 0) + 1);
      for (const [step, n] of oks) if (n > 1) failures.push(`step ${step} finished ${n} times`);
      let lost = 0;
      if (writing.length === 1) {
        const w = writing[0];
        const integrity = await runIntegrity({ snapshot, target: { engine: w.client.url, tokenFile: join(w.dir, 'control.token') }, wal: join(w.dir, 'wal') });
        if (!integrity.clean) failures.push(`integrity on ${w.dir.split('/').at(-1)}: ${JSON.stringify(integrity.counts)}`);
        lost = integrity.counts.missing ?? 0;
      }
      // What the journal says happened, for a failure's reader: each step's ends (r: after a resume).
      if (failures.length > 0)
        failures.push(
          `journal: ${events
            .filter((e) => ['ok', 'fail', 'recheck', 'run-start'].includes(e.event))
            .map((e) => (e.event === 'run-start' ? '|' : `${e.step} ${e.event}${e.event === 'fail' ? ` (${String(e.error).slice(0, 80)})` : ''}`))
            .join(', ')}`,
        );
      return { failures, lost, end: `exit ${code}, ${seen}` };
    } finally {
      await stopEngine(standbyDir).catch(() => undefined);
      await stopEngine(dataDir).catch(() => undefined);
    }
  });
}

export const switchover = {
  name: 'switchover: kill the run or an engine around a promotion, then --resume-last',
  trials: (long) => (long ? 12 : 6),
  async run(trials, seed, parallel = 2) {
    const r = rng(seed);
    // Runner kills cover the steps around the promotion; engine kills strike while engine.promote runs.
    const points = Array.from({ length: trials }, (_, i) =>
      i % 3 === 2
        ? { victim: ENGINE_VICTIMS[Math.floor(i / 3) % ENGINE_VICTIMS.length], step: 'promote', delayMs: Math.floor(r() * 30) }
        : { victim: 'runner', step: RUNNER_STEPS[i % RUNNER_STEPS.length], delayMs: Math.floor(r() * 20) },
    );
    const results = [];
    let next = 0;
    const worker = async () => {
      while (next < points.length) {
        const i = next++;
        results[i] = await trial(seed * 1000 + i, points[i]);
      }
    };
    await Promise.all(Array.from({ length: parallel }, worker));
    const label = (p) => `kill the ${p.victim} ${p.delayMs} ms into ${p.step}`;
    const failures = results.flatMap((x, i) => x.failures.map((f) => `${label(points[i])} (${x.end}): ${f}`));
    const ends = new Map();
    for (const x of results) {
      const k = x.end.replace(/engine(-standby)?: /g, '');
      ends.set(k, (ends.get(k) ?? 0) + 1);
    }
    return {
      trials,
      passed: results.filter((x) => x.failures.length === 0).length,
      lost: results.reduce((a, x) => a + x.lost, 0),
      detail: `ends: ${[...ends].map(([k, n]) => `${n}× ${k}`).join('; ')}`,
      failures,
    };
  },
};
