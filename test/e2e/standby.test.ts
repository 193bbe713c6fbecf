/**
 * The hot-standby steps end to end (issue 14): a playbook starts its engine, a standby that follows it,
 * fences the primary and promotes the standby; spawned as `recoverctl run`, with real engine processes.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EngineClient } from '../../src/engine-client/client.js';
import { readEngineInfo } from '../../src/engine-client/supervisor.js';
import { dataDirLayout } from '../../src/util/data-dir.js';
import { onlyJournal, runCli, tempDir } from '../support/cli.js';
import { trackEngineDir } from '../support/engine.js';

const PLAYBOOK = `apiVersion: recoverctl/v1
kind: Playbook
metadata:
  name: standby-switchover
engine:
  dataDir: ./primary
steps:
  - id: start
    uses: engine.start
    with: { phase: open, feedInterval: 50ms }
  - id: standby
    uses: engine.standby
    with: { dataDir: ./standby }
  - id: promote
    uses: engine.promote
    with: { standby: ./standby }
`;

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
    const client = (d: string): EngineClient => {
      const info = readEngineInfo(join(dir, d));
      return new EngineClient(info?.url as string, readFileSync(dataDirLayout(join(dir, d)).token, 'utf8').trim());
    };
    expect(await client('primary').health()).toMatchObject({ role: 'primary', fenced: true });
    const h = await client('standby').health();
    expect(h).toMatchObject({ role: 'primary', fenced: false, epoch: 1 });
    expect(h.seq).toBe(promoted?.outputs?.seq);
  }, 90_000);

  it('after a promotion and a demotion, a failing step switches back: the old primary takes writes again, the standby is fenced', async () => {
    const dir = tempDir();
    trackEngineDir(join(dir, 'primary'));
    trackEngineDir(join(dir, 'primary-standby'));
    writeFileSync(
      join(dir, 'pb.yaml'),
      `apiVersion: recoverctl/v1
kind: Playbook
metadata:
  name: switch-back
engine:
  dataDir: ./primary
steps:
  - id: start
    uses: engine.start
    with: { phase: open, feedInterval: 50ms }
  - id: standby
    uses: engine.standby
  - id: promote
    uses: engine.promote
  - id: on-new
    uses: engine.halt
    with: { reason: written by the new primary }
  - id: demote
    uses: engine.demote
  - id: breaks
    uses: exec
    with: { command: [sh, -c, "exit 4"] }
rollback:
  - id: failback
    uses: engine.failback
`,
    );
    const r = await runCli(['run', 'pb.yaml', '--yes'], { cwd: dir, timeoutMs: 90_000 });
    expect(r.exitCode, r.stderr).toBe(1);
    expect(r.stderr).toContain('switched back');
    const { events } = onlyJournal<{ event: string; step: string; outputs?: Record<string, unknown> }>(dir);
    expect(events.find((e) => e.event === 'ok' && e.step === 'demote')?.outputs?.lagRecords).toBeLessThanOrEqual(2);
    expect(events.find((e) => e.event === 'ok' && e.step === 'failback')?.outputs).toMatchObject({ action: 'switched-back', alreadyDone: false });
    const client = (d: string): EngineClient => {
      const info = readEngineInfo(join(dir, d));
      return new EngineClient(info?.url as string, readFileSync(dataDirLayout(join(dir, d)).token, 'utf8').trim());
    };
    const old = await client('primary').health();
    // The halt the new primary wrote came back with the switch: nothing it acknowledged is lost.
    expect(old).toMatchObject({ role: 'primary', fenced: false, epoch: 2, phase: 'halted', reason: 'written by the new primary' });
    expect(await client('primary-standby').health()).toMatchObject({ role: 'primary', fenced: true });
  }, 120_000);

  it('before a promotion, the rollback drops the standby and lifts the fence a failed promotion left', async () => {
    const dir = tempDir();
    trackEngineDir(join(dir, 'primary'));
    trackEngineDir(join(dir, 'primary-standby'));
    writeFileSync(
      join(dir, 'pb.yaml'),
      `apiVersion: recoverctl/v1
kind: Playbook
metadata:
  name: drop-standby
engine:
  dataDir: ./primary
steps:
  - id: start
    uses: engine.start
    with: { phase: open, feedInterval: 50ms }
  - id: standby
    uses: engine.standby
  - id: fence
    name: A promotion that stopped after fencing the primary
    uses: exec
    with:
      command:
        - node
        - -e
        - "fetch(process.argv[1] + '/fence', { method: 'POST', headers: { authorization: 'Bearer ' + require('fs').readFileSync('primary/control.token', 'utf8').trim() }, body: '{}' }).then((r) => process.exit(r.ok ? 0 : 1))"
        - "\${{ steps.start.outputs.url }}"
  - id: breaks
    uses: exec
    with: { command: [sh, -c, "exit 4"] }
rollback:
  - id: failback
    uses: engine.failback
`,
    );
    const r = await runCli(['run', 'pb.yaml', '--yes'], { cwd: dir, timeoutMs: 90_000 });
    expect(r.exitCode, r.stderr).toBe(1);
    const { events } = onlyJournal<{ event: string; step: string; outputs?: Record<string, unknown> }>(dir);
    expect(events.find((e) => e.event === 'ok' && e.step === 'failback')?.outputs).toMatchObject({ action: 'dropped', reclaimed: true });
    expect(readEngineInfo(join(dir, 'primary-standby'))).toBeUndefined();
    const info = readEngineInfo(join(dir, 'primary'));
    const h = await new EngineClient(info?.url as string, readFileSync(dataDirLayout(join(dir, 'primary')).token, 'utf8').trim()).health();
    expect(h).toMatchObject({ role: 'primary', fenced: false, epoch: 1 });
  }, 120_000);
});
