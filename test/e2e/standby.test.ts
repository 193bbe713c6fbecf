/**
 * The hot-standby steps end to end (issue 14): a playbook starts its engine, a standby that follows it,
 * fences the primary and promotes the standby; spawned as `recoverctl run`, with real engine processes.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EngineClient } from '../../src/engine-client/client.js';
import { readEngineInfo, stopEngine } from '../../src/engine-client/supervisor.js';
import { dataDirLayout } from '../../src/util/data-dir.js';
import { onlyJournal, runCli, spawnCli, tempDir, waitFor } from '../support/cli.js';
import { trackEngineDir } from '../support/engine.js';

/** A playbook that starts its engine open, then a standby (`standbyWith`: the step's with, if any). */
function withStandby(name: string, standbyWith = ''): string {
  return `apiVersion: recoverctl/v1
kind: Playbook
metadata:
  name: ${name}
engine:
  dataDir: ./primary
steps:
  - id: start
    uses: engine.start
    with: { phase: open, feedInterval: 50ms }
  - id: standby
    uses: engine.standby
${standbyWith}`;
}

const PLAYBOOK = `${withStandby('standby-switchover', '    with: { dataDir: ./standby }\n')}  - id: promote
    uses: engine.promote
    with: { standby: ./standby }
`;

/** A client of the engine on `dir/d`, found the way the supervisor finds it. */
function clientOf(dir: string, d: string): EngineClient {
  const info = readEngineInfo(join(dir, d));
  return new EngineClient(info?.url as string, readFileSync(dataDirLayout(join(dir, d)).token, 'utf8').trim());
}

/** A playbook that starts its engine and a standby, runs `middle`, then fails; its rollback is engine.failback. */
function failingAfter(name: string, middle: string): string {
  return `${withStandby(name)}${middle}  - id: breaks
    uses: exec
    with: { command: [sh, -c, "exit 4"] }
rollback:
  - id: failback
    uses: engine.failback
`;
}

/** `recoverctl run pb.yaml --yes` in a fresh folder whose engines are stopped after the test. */
async function runIn(text: string): Promise<{ dir: string; r: Awaited<ReturnType<typeof runCli>> }> {
  const dir = tempDir();
  trackEngineDir(join(dir, 'primary'));
  trackEngineDir(join(dir, 'primary-standby'));
  writeFileSync(join(dir, 'pb.yaml'), text);
  return { dir, r: await runCli(['run', 'pb.yaml', '--yes'], { cwd: dir, timeoutMs: 90_000 }) };
}

describe('engine.standby and engine.promote', () => {
  it('start a follower of the playbook engine, fence the primary, promote the follower: exit 0, one primary', async () => {
    const dir = tempDir();
    trackEngineDir(join(dir, 'primary'));
    trackEngineDir(join(dir, 'standby'));
    writeFileSync(join(dir, 'pb.yaml'), PLAYBOOK);
    const r = await runCli(['run', 'pb.yaml', '--yes'], { cwd: dir, timeoutMs: 60_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    const { events } = onlyJournal<{ event: string; step: string; outputs?: Record<string, unknown> }>(dir);
    const standby = events.find((e) => e.event === 'ok' && e.step === 'standby');
    // The feed ticks every 50 ms: at most a tick in the primary's group commit is not applied yet.
    expect(standby?.outputs?.lagRecords).toBeLessThanOrEqual(2);
    const promoted = events.find((e) => e.event === 'ok' && e.step === 'promote');
    expect(promoted?.outputs).toMatchObject({ epoch: 1, forced: false });
    expect(await clientOf(dir, 'primary').health()).toMatchObject({ role: 'primary', fenced: true });
    const h = await clientOf(dir, 'standby').health();
    expect(h).toMatchObject({ role: 'primary', fenced: false, epoch: 1 });
    expect(h.seq).toBe(promoted?.outputs?.seq);
  }, 90_000);

  it('after a promotion and a demotion, a failing step switches back: the old primary takes writes again, the standby is fenced', async () => {
    const { dir, r } = await runIn(
      failingAfter(
        'switch-back',
        `  - id: promote
    uses: engine.promote
  - id: on-new
    uses: engine.halt
    with: { reason: written by the new primary }
  - id: demote
    uses: engine.demote
`,
      ),
    );
    expect(r.exitCode, r.stderr).toBe(1);
    expect(r.stderr).toContain('switched back');
    const { events } = onlyJournal<{ event: string; step: string; outputs?: Record<string, unknown> }>(dir);
    expect(events.find((e) => e.event === 'ok' && e.step === 'demote')?.outputs?.lagRecords).toBeLessThanOrEqual(2);
    expect(events.find((e) => e.event === 'ok' && e.step === 'failback')?.outputs).toMatchObject({ action: 'switched-back', alreadyDone: false });
    const old = await clientOf(dir, 'primary').health();
    // The halt the new primary wrote came back with the switch: nothing it acknowledged is lost.
    expect(old).toMatchObject({ role: 'primary', fenced: false, epoch: 2, phase: 'halted', reason: 'written by the new primary' });
    expect(await clientOf(dir, 'primary-standby').health()).toMatchObject({ role: 'primary', fenced: true });
  }, 120_000);

  it('before a promotion, the rollback drops the standby and lifts the fence a failed promotion left', async () => {
    const { dir, r } = await runIn(
      failingAfter(
        'drop-standby',
        `  - id: fence
    name: A promotion that stopped after fencing the primary
    uses: exec
    with:
      command:
        - node
        - -e
        - "fetch(process.argv[1] + '/fence', { method: 'POST', headers: { authorization: 'Bearer ' + require('fs').readFileSync('primary/control.token', 'utf8').trim() }, body: '{}' }).then((r) => process.exit(r.ok ? 0 : 1))"
        - "\${{ steps.start.outputs.url }}"
`,
      ),
    );
    expect(r.exitCode, r.stderr).toBe(1);
    const { events } = onlyJournal<{ event: string; step: string; outputs?: Record<string, unknown> }>(dir);
    expect(events.find((e) => e.event === 'ok' && e.step === 'failback')?.outputs).toMatchObject({ action: 'dropped', reclaimed: true });
    expect(readEngineInfo(join(dir, 'primary-standby'))).toBeUndefined();
    const h = await clientOf(dir, 'primary').health();
    expect(h).toMatchObject({ role: 'primary', fenced: false, epoch: 1 });
  }, 120_000);

  it('a forced promotion over a stopped primary leaves a fence marker: the old primary starts fenced, whatever port it comes back on', async () => {
    const { dir, r } = await runIn(
      `${withStandby('forced')}  - id: primary-down
    uses: engine.stop
  - id: promote
    uses: engine.promote
    with: { force: true }
`,
    );
    expect(r.exitCode, r.stderr).toBe(0);
    const { events } = onlyJournal<{ event: string; step: string; outputs?: Record<string, unknown> }>(dir);
    expect(events.find((e) => e.event === 'ok' && e.step === 'promote')?.outputs).toMatchObject({ forced: true, epoch: 1 });
    expect(JSON.parse(readFileSync(dataDirLayout(join(dir, 'primary')).fenceMarker, 'utf8'))).toMatchObject({ epoch: 1 });
    const back = await runCli(['engine', 'start', '--data-dir', 'primary', '--json'], { cwd: dir, timeoutMs: 30_000 });
    expect(back.exitCode, back.stderr).toBe(0);
    expect(await clientOf(dir, 'primary').health()).toMatchObject({ role: 'primary', fenced: true, epoch: 1 });
    expect(await clientOf(dir, 'primary-standby').health()).toMatchObject({ role: 'primary', fenced: false, epoch: 1 });
  }, 120_000);

  it('a run killed after the promotion resumes on the new primary, though the old one is down: demote starts it as a follower', async () => {
    const dir = tempDir();
    trackEngineDir(join(dir, 'primary'));
    trackEngineDir(join(dir, 'primary-standby'));
    writeFileSync(
      join(dir, 'pb.yaml'),
      `${withStandby('killed-after-promotion')}  - id: promote
    uses: engine.promote
  - id: hold
    uses: exec
    with: { command: [sh, -c, "test -f go || sleep 60"] }
  - id: demote
    uses: engine.demote
`,
    );
    const first = spawnCli(['run', 'pb.yaml', '--yes'], { cwd: dir });
    const holding = (): boolean => {
      try {
        return onlyJournal<{ event: string; step: string }>(dir).events.some((e) => e.event === 'start' && e.step === 'hold');
      } catch {
        return false; // no journal yet
      }
    };
    await waitFor(async () => holding(), 60_000, 'the hold step');
    first.kill('SIGKILL');
    await first;
    // The old primary goes down too (the laptop and the old engine's host died together).
    await stopEngine(join(dir, 'primary'), 5_000);
    writeFileSync(join(dir, 'go'), '');
    const r = await runCli(['run', 'pb.yaml', '--resume-last', '--yes'], { cwd: dir, timeoutMs: 60_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(await clientOf(dir, 'primary').health()).toMatchObject({ role: 'follower' });
    expect(await clientOf(dir, 'primary-standby').health()).toMatchObject({ role: 'primary', fenced: false });
  }, 120_000);
});
