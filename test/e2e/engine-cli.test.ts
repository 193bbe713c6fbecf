import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isPidAlive } from '../../src/util/pid.js';
import { readEngineInfo } from '../../src/engine-client/supervisor.js';
import { hasStackTrace, runCli, tempDir } from '../support/cli.js';
import { trackEngineDir } from '../support/engine.js';

describe('recoverctl engine', () => {
  it('start, status, resume, fault, snapshot, halt and stop a detached engine that outlives each command', async () => {
    const dir = join(tempDir(), 'data');
    trackEngineDir(dir);
    const start = await runCli(['engine', 'start', '--data-dir', dir, '--feed-interval', '0ms', '--json']);
    expect(start.exitCode).toBe(0);
    const info = JSON.parse(start.stdout) as { pid: number; url: string; started: boolean; phase: string };
    expect(info).toMatchObject({ started: true, phase: 'halted' });
    expect(isPidAlive(info.pid)).toBe(true);
    expect(readEngineInfo(dir)).toMatchObject({ pid: info.pid, url: info.url });
    const again = await runCli(['engine', 'start', '--data-dir', dir, '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ started: false, pid: info.pid });
    expect((await runCli(['engine', 'status', '--data-dir', dir])).stdout).toMatch(/phase halted, seq \d+, margin 1\.4\.2/);
    const resume = await runCli(['engine', 'resume', '--data-dir', dir, '--dwell', '100ms']);
    expect(resume.stdout.trim()).toBe('phase open');
    const noAccounts = await runCli(['engine', 'fault', 'margin-burst', '--data-dir', dir]);
    expect(noAccounts.exitCode).toBe(1);
    expect(noAccounts.stderr).toMatch(/no accounts to recalculate/);
    const snap = await runCli(['engine', 'snapshot', '--data-dir', dir, '--json']);
    expect(existsSync((JSON.parse(snap.stdout) as { path: string }).path)).toBe(true);
    expect((await runCli(['engine', 'halt', '--data-dir', dir, '--reason', 'drill'])).stdout.trim()).toBe('halted: drill');
    const stop = await runCli(['engine', 'stop', '--data-dir', dir]);
    expect(stop.stdout).toMatch(new RegExp(`stopped pid ${info.pid}`));
    expect(isPidAlive(info.pid)).toBe(false);
    const status = await runCli(['engine', 'status', '--data-dir', dir]);
    expect(status.exitCode).toBe(1);
    expect(status.stdout).toMatch(/not running/);
  });

  it('an engine that cannot start gives one clear error with its log, exit 2', async () => {
    const dir = tempDir();
    trackEngineDir(join(dir, 'broken'));
    writeFileSync(join(dir, 'data'), 'a file where the data dir should be');
    const r = await runCli(['engine', 'start', '--data-dir', join(dir, 'data')]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/would not start: cannot create the data dir/);
    expect(hasStackTrace(r.stderr)).toBe(false);
    // An engine that dies before it is ready: the error carries the tail of its log.
    const broken = join(dir, 'broken');
    await runCli(['engine', 'start', '--data-dir', broken, '--feed-interval', '0ms']);
    await runCli(['engine', 'stop', '--data-dir', broken]);
    writeFileSync(join(broken, 'active.json'), '{"margin": ');
    const dies = await runCli(['engine', 'start', '--data-dir', broken]);
    expect(dies.exitCode).toBe(2);
    expect(dies.stderr).toMatch(/exited with code 1 before it was ready/);
    expect(dies.stderr).toMatch(/"level":"fatal","msg":"cannot start: .*JSON/);
    expect(hasStackTrace(dies.stderr)).toBe(false);
  });

  it('a playbook drives the engine: start, snapshot, halt, verify, integrity, resume, stop', async () => {
    const dir = tempDir();
    trackEngineDir(join(dir, 'engine'));
    writeFileSync(
      join(dir, 'engine-drill.yaml'),
      `apiVersion: recoverctl/v1
kind: Playbook
metadata:
  name: engine-drill
engine:
  dataDir: ./engine
steps:
  - id: start
    uses: engine.start
    with: { phase: open, feedInterval: 0ms }
  - id: pre-outage
    uses: snapshot.take
  - id: halt
    uses: engine.halt
    with: { reason: drill }
  - id: verify
    uses: snapshot.verify
    with: { path: "\${{ steps.pre-outage.outputs.path }}" }
  - id: integrity
    uses: integrity.check
    with: { snapshot: "\${{ steps.pre-outage.outputs.path }}" }
  - id: resume
    uses: engine.resume
    with: { phases: [cancel-only, post-only, open], dwell: 100ms }
  - id: stop
    uses: engine.stop
`,
    );
    const plan = await runCli(['plan', 'engine-drill.yaml'], { cwd: dir });
    expect(plan.stdout).toMatch(/start the engine on .*engine \(or attach to it\), phase open/);
    const r = await runCli(['run', 'engine-drill.yaml', '--json'], { cwd: dir });
    expect(r.exitCode, r.stderr).toBe(0);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; step: string; outputs?: Record<string, unknown> });
    const ok = (id: string) => events.find((e) => e.event === 'ok' && e.step === id)?.outputs;
    expect(ok('start')).toMatchObject({ started: true, phase: 'open', margin: '1.4.2' });
    expect(ok('verify')).toMatchObject({ precedesHalt: true });
    expect(ok('integrity')).toMatchObject({ clean: true, missing: 0, explainedByWal: 1 });
    expect(ok('resume')).toMatchObject({ phase: 'open' });
    expect(ok('stop')).toMatchObject({ wasRunning: true });
    expect(readFileSync(join(dir, 'engine', 'engine.log'), 'utf8')).toMatch(/stopping/);
  });
});
