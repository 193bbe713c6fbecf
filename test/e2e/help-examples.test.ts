import { execa } from 'execa';
import { chmodSync, cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/main.js';
import { BIN, ROOT, runCli, tempDir } from '../support/cli.js';

/** Every command path of the program, parents before their subcommands. */
function commandPaths(cmd: Command, prefix: string[] = []): string[][] {
  return cmd.commands.flatMap((c) => [[...prefix, c.name()], ...commandPaths(c, [...prefix, c.name()])]);
}

/** The lines under `Example:` / `Examples:` in a help text. */
export function examplesIn(help: string): string[] {
  const out: string[] = [];
  let inExamples = false;
  for (const line of help.split('\n')) {
    if (/^Examples?:\s*$/.test(line)) {
      inExamples = true;
      continue;
    }
    if (!inExamples) continue;
    if (!/^\s{2}\S/.test(line)) {
      inExamples = false;
      continue;
    }
    out.push(line.trim());
  }
  return out;
}

/**
 * The order the examples run in, in one folder, as a new user would try them: what needs a run or an
 * engine comes after what makes one; stopping the engine and the long rehearsals come last.
 */
function rank(path: string[]): number {
  const key = path.join(' ');
  const order = [
    '',
    'init',
    'validate',
    'plan',
    'schema',
    'completion',
    'run',
    'runs',
    'runs list',
    'runs show',
    'report',
    'report incident',
    'engine',
    'engine start',
  ];
  const late = ['integrity', 'integrity check', 'report users', 'engine stop', 'rehearse'];
  if (late.includes(key)) return 1000 + late.indexOf(key);
  const i = order.indexOf(key);
  return i >= 0 ? i : 500;
}

describe('every example in every --help', () => {
  it('runs as written against the bundled playbooks, exit 0', { timeout: 400_000 }, async () => {
    const sandbox = tempDir('recoverctl-examples-');
    cpSync(join(ROOT, 'playbooks'), join(sandbox, 'playbooks'), { recursive: true });
    const bin = join(sandbox, '.bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'recoverctl'), `#!/bin/sh\nexec node ${JSON.stringify(BIN)} "$@"\n`);
    chmodSync(join(bin, 'recoverctl'), 0o755);
    // fish keeps its completions here; a machine with fish has the folder.
    mkdirSync(join(sandbox, '.config/fish/completions'), { recursive: true });
    const env = { PATH: `${bin}:${process.env.PATH ?? ''}`, HOME: sandbox, CI: 'true', NO_COLOR: '1' };

    const paths = [[], ...commandPaths(buildProgram())].sort((a, b) => rank(a) - rank(b));
    const examples: { command: string; from: string }[] = [];
    for (const path of paths) {
      const help = await runCli([...path, '--help'], { cwd: sandbox });
      expect(help.exitCode, `${path.join(' ')} --help`).toBe(0);
      for (const command of examplesIn(help.stdout)) examples.push({ command, from: `recoverctl ${path.join(' ')} --help`.replace('  ', ' ') });
    }
    // Every command that does something has at least one example.
    const leaves = commandPaths(buildProgram()).filter(
      (p) => !commandPaths(buildProgram()).some((q) => q.length > p.length && q.slice(0, p.length).join(' ') === p.join(' ')),
    );
    for (const leaf of leaves)
      expect(
        examples.some((e) => e.from === `recoverctl ${leaf.join(' ')} --help`),
        `an example in recoverctl ${leaf.join(' ')} --help`,
      ).toBe(true);

    const failures: string[] = [];
    try {
      for (const e of examples) {
        // The same command is run, and every row of its table checked, by test/e2e/rehearse.test.ts
        // (`rehearse --all playbooks/ --json --junit`): five rehearsals, not worth a second minute here.
        if (e.command.startsWith('recoverctl rehearse --all playbooks/ --json --junit ')) continue;
        // A server that runs until Ctrl-C: test/e2e/dashboard.test.ts starts it the same way and stops it.
        if (e.command.startsWith('recoverctl dashboard ')) continue;
        const r = await execa('bash', ['-c', e.command], { cwd: sandbox, env, reject: false, stdin: 'ignore', timeout: 180_000 });
        if (r.exitCode !== 0)
          failures.push(`${e.from}: \`${e.command}\` exited ${String(r.exitCode)}: ${String(r.stderr).trim().split('\n').slice(-3).join(' | ')}`);
      }
    } finally {
      await execa('node', [BIN, 'engine', 'stop', '--data-dir', 'var/engine'], { cwd: sandbox, env, reject: false });
    }
    expect(failures).toEqual([]);
    expect(examples.length).toBeGreaterThan(20);
  });
});
