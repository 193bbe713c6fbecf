import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeExec } from '../../src/cli/effects.js';
import { JournalWriter, readJournal } from '../../src/runner/journal.js';
import type { ExecRequest } from '../../src/steps/effects.js';
import { tempDir } from '../support/cli.js';

/** A request for the real exec, its output collected chunk by chunk as the exec step sees it. */
function request(command: ExecRequest['command'], more: Partial<ExecRequest> = {}): ExecRequest & { chunks: { out: string; err: string } } {
  const chunks = { out: '', err: '' };
  return {
    command,
    shell: false,
    cwd: tempDir(),
    env: {},
    signal: new AbortController().signal,
    onStdout: (c) => (chunks.out += c.toString()),
    onStderr: (c) => (chunks.err += c.toString()),
    ...more,
    chunks,
  };
}

describe('nodeExec: commands as real child processes', () => {
  it('reports the exit code and both outputs, streamed and whole', async () => {
    const req = request([process.execPath, '-e', "console.log('out'); console.error('err'); process.exit(3)"]);
    const r = await nodeExec(req);
    expect(r).toMatchObject({ exitCode: 3, signal: null, stdout: 'out', stderr: 'err', canceled: false, error: null });
    expect(req.chunks).toEqual({ out: 'out\n', err: 'err\n' });
  });

  it('runs in the given folder with the extra environment on top of this process', async () => {
    const req = request([process.execPath, '-e', 'console.log(process.cwd() + " " + process.env.EXTRA + " " + (process.env.PATH ? "path" : "nopath"))'], {
      env: { EXTRA: 'yes' },
    });
    const r = await nodeExec(req);
    expect(r.stdout).toBe(`${req.cwd} yes path`);
  });

  it('ends the command when the signal aborts, and says it was canceled', async () => {
    const controller = new AbortController();
    const req = request([process.execPath, '-e', 'setInterval(() => {}, 1000)'], { signal: controller.signal });
    const running = nodeExec(req);
    controller.abort(new Error('timed out'));
    const r = await running;
    expect(r.canceled).toBe(true);
    expect(r.exitCode).toBeNull();
  });

  it('says why when a command cannot be started at all', async () => {
    const r = await nodeExec(request(['surely-no-such-command-here']));
    expect(r.exitCode).toBeNull();
    expect(r.signal).toBeNull();
    expect(r.error).toMatch(/ENOENT/);
  });

  it('runs a command line through the shell only when asked', async () => {
    const r = await nodeExec(request('echo $((2 + 3)) | sed s/5/five/', { shell: true }));
    expect(r).toMatchObject({ exitCode: 0, stdout: 'five' });
  });
});

describe('journal', () => {
  it('ignores a torn last record and reports where', () => {
    const dir = tempDir();
    const path = join(dir, 'j.ndjson');
    writeFileSync(
      path,
      `${JSON.stringify({ ts: '2026-01-01T00:00:00.000Z', run: 'r', step: null, event: 'run-start', playbook: 'p', steps: ['a'], pid: 1, file: 'f', sha256: 'x' })}\n{"ts":"2026-01-01T00:00:01.000Z","run":"r","step":"a","eve`,
    );
    const read = readJournal(path);
    expect(read.events).toHaveLength(1);
    expect(read.tornAtLine).toBe(2);
    // Reopening for append cuts the torn tail so new records start on a fresh line.
    const w = new JournalWriter(path);
    w.close();
    expect(readFileSync(path, 'utf8').endsWith('}\n')).toBe(true);
  });

  it('cuts a corrupt line and what follows it on reopen, where readers stop, keeping those bytes in journal.cut', () => {
    const dir = tempDir();
    const path = join(dir, 'j.ndjson');
    const record = (step: string) => `${JSON.stringify({ ts: '2026-01-01T00:00:00.000Z', run: 'r', step, event: 'recheck', phase: 'main', note: 'n' })}\n`;
    const damaged = `{"ts":"2026-01-01T00:00:00.000Z","event":"ok","step":"b"}\n`; // JSON, but an `ok` without uses and outputs
    writeFileSync(path, record('a') + damaged + record('c'));
    expect(readJournal(path)).toMatchObject({ events: [{ step: 'a' }], tornAtLine: 2 });
    new JournalWriter(path).close();
    expect(readFileSync(path, 'utf8')).toBe(record('a'));
    expect(readFileSync(`${path}.cut`, 'utf8')).toBe(damaged + record('c'));
  });

  it('treats a last record without its newline as torn, however whole its JSON', () => {
    const dir = tempDir();
    const path = join(dir, 'j.ndjson');
    const record = (step: string) => JSON.stringify({ ts: '2026-01-01T00:00:00.000Z', run: 'r', step, event: 'recheck', phase: 'main', note: 'n' });
    writeFileSync(path, `${record('a')}\n${record('b')}`);
    const read = readJournal(path);
    expect(read.events).toHaveLength(1);
    expect(read.tornAtLine).toBe(2);
  });
});
