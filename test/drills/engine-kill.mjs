// The engine dies in the middle of a run: the runner must notice within a second, the playbook's rollback
// starts the engine again from its WAL, and every acknowledged record is still there.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { incident, journal, playbookFor } from './crash.mjs';
import { BIN, dist, withTempDir } from './lib.mjs';

async function trial(seed, step) {
  const { stopEngine, readEngineInfo } = await import(dist('engine-client/supervisor.js'));
  const { runIntegrity } = await import(dist('integrity/run.js'));
  const { EngineClient } = await import(dist('engine-client/client.js'));
  return withTempDir(async (dir) => {
    const dataDir = join(dir, 'engine');
    try {
      const { snapshot } = await incident(dataDir, seed);
      const pb = playbookFor(dir, dataDir);
      const child = spawn(process.execPath, [BIN, 'run', pb, '--yes', '--time-scale', '0.02', '--var', `preOutageSnapshot=${snapshot}`], {
        cwd: dir,
        env: { ...process.env, CI: 'true' },
        stdio: 'ignore',
      });
      const exited = new Promise((res) => child.on('exit', (code) => res(code)));
      // Kill the engine once the target step has started.
      const failures = [];
      let killedAt = 0;
      for (;;) {
        const events = journal(dir);
        if (events.some((e) => e.event === 'start' && e.step === step)) break;
        if (events.some((e) => e.event === 'run-end')) {
          failures.push(`the run ended before ${step} started`);
          break;
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      const pid = readEngineInfo(dataDir)?.pid;
      if (pid) {
        process.kill(pid, 'SIGKILL');
        killedAt = Date.now();
      }
      const code = await exited;
      const events = journal(dir);
      const fail = events.find((e) => e.event === 'fail' && e.phase === 'main');
      const noticedMs = fail ? Date.parse(fail.ts) - killedAt : Infinity;
      if (!(noticedMs <= 1_000)) failures.push(`the failure was journaled ${noticedMs} ms after the engine died`);
      if (code !== 1) failures.push(`run exited ${code}, expected 1 (rollback done)`);
      if (!events.some((e) => e.event === 'ok' && e.step === 'rollback-engine' && e.outputs?.started === true))
        failures.push('the rollback did not restart the engine');
      const info = readEngineInfo(dataDir);
      const client = EngineClient.fromTokenFile(info.url, join(dataDir, 'control.token'));
      const h = await client.health();
      if (h.phase !== 'halted') failures.push(`engine ${h.phase} after the rollback`);
      const integrity = await runIntegrity({ snapshot, target: { engine: info.url, tokenFile: join(dataDir, 'control.token') }, wal: join(dataDir, 'wal') });
      if (!integrity.clean) failures.push(`integrity after restart: ${JSON.stringify(integrity.counts)}`);
      return { failures, lost: integrity.counts.missing, noticedMs };
    } finally {
      await stopEngine(dataDir).catch(() => undefined);
    }
  });
}

export const engineKill = {
  name: 'engine killed mid-run',
  trials: (long) => (long ? 6 : 3),
  async run(trials, seed) {
    const steps = ['shift', 'resume', 'shift', 'resume', 'shift', 'resume'];
    const results = [];
    for (let i = 0; i < trials; i++) results.push(await trial(seed * 100 + i, steps[i % steps.length]));
    const failures = results.flatMap((r, i) => r.failures.map((f) => `kill during ${steps[i % steps.length]}: ${f}`));
    return {
      trials,
      passed: results.filter((r) => r.failures.length === 0).length,
      lost: results.reduce((a, r) => a + r.lost, 0),
      detail: `noticed within ${Math.max(...results.map((r) => r.noticedMs))} ms; rollback restarted the engine from its WAL`,
      failures,
    };
  },
};
