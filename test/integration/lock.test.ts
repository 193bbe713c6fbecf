import { spawn } from 'node:child_process';
import { existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LockHeldError } from '../../src/errors.js';
import { RunLock } from '../../src/runner/lock.js';
import { tempDir } from '../support/cli.js';

const children: ReturnType<typeof spawn>[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

function holder(path: string, pid: number, runId = 'other-run'): void {
  writeFileSync(path, JSON.stringify({ pid, runId, host: hostname(), playbook: '/x.yaml', since: '2026-01-01T00:00:00Z' }));
}

describe('run lock', () => {
  it('is exclusive while its holder lives and removed on release', () => {
    const path = join(tempDir(), 'data', 'recoverctl.lock');
    const lock = RunLock.acquire(path, { pid: process.pid, runId: 'r1', playbook: '/p.yaml' });
    expect(JSON.parse(readFileSync(path, 'utf8'))).toMatchObject({ pid: process.pid, runId: 'r1' });
    lock.release();
    expect(existsSync(path)).toBe(false);
  });

  it('refuses a lock held by a live process, naming its run and pid', () => {
    const path = join(tempDir(), 'recoverctl.lock');
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)']);
    children.push(child);
    holder(path, child.pid as number, 'run-abc');
    expect(() => RunLock.acquire(path, { pid: process.pid, runId: 'r2', playbook: '/p.yaml' })).toThrow(LockHeldError);
    expect(() => RunLock.acquire(path, { pid: process.pid, runId: 'r2', playbook: '/p.yaml' })).toThrow(
      new RegExp(`locked by run run-abc \\(pid ${child.pid}`),
    );
  });

  it('takes over a lock whose holder is dead, or that is unreadable', async () => {
    const dir = tempDir();
    const path = join(dir, 'recoverctl.lock');
    const child = spawn(process.execPath, ['-e', '0']);
    await new Promise((r) => child.on('exit', r));
    holder(path, child.pid as number);
    const lock = RunLock.acquire(path, { pid: process.pid, runId: 'r3', playbook: '/p.yaml' });
    expect(JSON.parse(readFileSync(path, 'utf8'))).toMatchObject({ runId: 'r3' });
    lock.release();
    writeFileSync(path, '{"pid": 12');
    // Left behind by a crash a while ago (a fresh unreadable file may be mid-write and is waited for).
    utimesSync(path, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    const again = RunLock.acquire(path, { pid: process.pid, runId: 'r4', playbook: '/p.yaml' });
    again.release();
  });

  it('does not remove a lock that another run took over', () => {
    const path = join(tempDir(), 'recoverctl.lock');
    const lock = RunLock.acquire(path, { pid: process.pid, runId: 'r5', playbook: '/p.yaml' });
    holder(path, 999_999_999, 'someone-else');
    lock.release();
    expect(existsSync(path)).toBe(true);
  });
});
