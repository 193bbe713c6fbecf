// Shared helpers for the drills: seeded randomness, temp dirs, the built CLI and engine.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = join(ROOT, 'bin', 'recoverctl.js');
export const dist = (p) => join(ROOT, 'dist', p);

/** The product's own seeded generator, so drills and engine draw the same way. */
export { rng } from '../../dist/util/random.js';

export async function withTempDir(fn) {
  const dir = mkdtempSync(join(tmpdir(), 'recoverctl-drill-'));
  try {
    return await fn(dir);
  } finally {
    // DRILL_KEEP=1 keeps each trial's folder (journal, engine logs) to look at a failure.
    if (process.env.DRILL_KEEP) process.stderr.write(`kept ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  }
}

/** A stack trace line, as a user must never see one. */
export const STACK = /^\s+at .+(:\d+:\d+\)?|native)$/m;

/**
 * `recoverctl ARGS` to its end without blocking this process (not spawnSync): a trial running beside this
 * one must be able to strike on time. Its exit status and stderr; SIGKILLed after two minutes.
 */
export function runCli(args, cwd, env) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stderr });
    });
  });
}
