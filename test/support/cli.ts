import { execa, type ResultPromise } from 'execa';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect } from 'vitest';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = join(ROOT, 'bin', 'recoverctl.js');

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Environment for the CLI under test: no colour, no CI spinner decisions left to the host. */
export function cliEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { NO_COLOR: '1', CI: 'true', ...extra };
}

export async function runCli(args: string[], opts: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  const r = await execa('node', [BIN, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: cliEnv(opts.env),
    reject: false,
    stdin: 'ignore',
    timeout: opts.timeoutMs ?? 60_000,
  });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Start the CLI without waiting; the test kills it. Tracked so a failing test still cleans up. */
const live = new Set<ResultPromise>();
export function spawnCli(args: string[], opts: { cwd: string; env?: Record<string, string> }): ResultPromise {
  const child = execa('node', [BIN, ...args], { cwd: opts.cwd, env: cliEnv(opts.env), reject: false, stdin: 'ignore' });
  live.add(child);
  void child.finally(() => live.delete(child));
  return child;
}

/** The first line a started CLI prints on stdout (a server's URL), within 15 s. */
export async function firstStdoutLine(child: ResultPromise): Promise<string> {
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  const deadline = Date.now() + 15_000;
  while (!out.includes('\n')) {
    if (Date.now() > deadline) throw new Error('no line on stdout within 15 s');
    await new Promise((r) => setTimeout(r, 25));
  }
  return out.split('\n')[0] as string;
}

const dirs: string[] = [];
export function tempDir(prefix = 'recoverctl-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

afterEach(() => {
  for (const c of live) c.kill('SIGKILL');
  live.clear();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Poll until `check` returns (or resolves to) true, or the deadline passes. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 20_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** No stack trace: no line that looks like `    at fn (file:1:2)`. */
export function hasStackTrace(text: string): boolean {
  return /^\s+at .+(:\d+:\d+\)?|native)$/m.test(text);
}

/** The journal of the one run in `<dir>/.recoverctl` (a test that ran the CLI once there): id, text, events. */
export function onlyJournal<E = Record<string, unknown>>(dir: string): { runId: string; text: string; events: E[] } {
  const runs = readdirSync(join(dir, '.recoverctl', 'runs'));
  expect(runs).toHaveLength(1);
  const runId = runs[0] as string;
  const text = readFileSync(join(dir, '.recoverctl', 'runs', runId, 'journal.ndjson'), 'utf8');
  return {
    runId,
    text,
    events: text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as E),
  };
}
