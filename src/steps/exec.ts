import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { stringMap } from '../playbook/fields.js';
import { defineStep, errorMessage, type StepResult } from './types.js';

const TAIL_BYTES = 4_096;

export const execWith = z
  .strictObject({
    command: z.union([z.array(z.string()).min(1), z.string().min(1)]).describe(
      'argv array; a single string only with `shell: true`',
    ),
    shell: z.boolean().optional().describe('run through /bin/sh (off by default: no shell parsing)'),
    cwd: z.string().optional().describe('working directory, relative to the playbook'),
    env: stringMap.optional().describe('extra environment variables; their values are redacted from all output'),
  })
  .refine((w) => w.shell === true || Array.isArray(w.command), {
    error: 'command must be an argv array unless shell: true',
    path: ['command'],
  })
  .meta({ examples: [{ command: ['./scripts/drain.sh', '--dry'] }] });

export type ExecWith = z.output<typeof execWith>;

function tail(text: string): string {
  return text.length > TAIL_BYTES ? text.slice(-TAIL_BYTES) : text;
}

function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

export const execStep = defineStep({
  uses: 'exec',
  with: execWith,
  describe: (w) => {
    const cmd = Array.isArray(w.command) ? w.command.map(quote).join(' ') : `sh -c ${quote(w.command)}`;
    return `run ${cmd}${w.cwd ? ` in ${w.cwd}` : ''}`;
  },
  async run(w, ctx): Promise<StepResult> {
    const { execa } = await import('execa');
    const cwd = w.cwd === undefined ? ctx.playbookDir : isAbsolute(w.cwd) ? w.cwd : resolve(ctx.playbookDir, w.cwd);
    const started = ctx.clock.now();
    const options = {
      cwd,
      env: { ...w.env },
      extendEnv: true,
      stdin: 'ignore' as const,
      all: true,
      reject: false,
      cancelSignal: ctx.signal,
      forceKillAfterDelay: 5_000,
      maxBuffer: 16 * 1024 * 1024,
    };
    let lastProgress = 0;
    try {
      const child = Array.isArray(w.command)
        ? execa(w.command[0] as string, w.command.slice(1), options)
        : execa(w.command, { ...options, shell: true });
      child.all?.on('data', (chunk: Buffer) => {
        const now = ctx.clock.now();
        if (now - lastProgress < 500) return;
        lastProgress = now;
        const line = chunk.toString('utf8').trimEnd().split('\n').pop() ?? '';
        if (line) ctx.progress(line.slice(0, 200));
      });
      const result = await child;
      const outputs = {
        exitCode: result.exitCode ?? null,
        signal: result.signal ?? null,
        durationMs: Math.round(ctx.clock.now() - started),
        stdout: tail(String(result.stdout ?? '')),
        stderr: tail(String(result.stderr ?? '')),
      };
      if (result.isCanceled) return { ok: false, error: 'command canceled', outputs };
      if (result.failed) {
        const why =
          result.signal !== undefined
            ? `command killed by ${result.signal}`
            : result.exitCode !== undefined
              ? `command exited with code ${result.exitCode}`
              : `command failed: ${result.shortMessage ?? 'unknown error'}`;
        const lastErr = outputs.stderr.trimEnd().split('\n').pop();
        return { ok: false, error: lastErr ? `${why}: ${lastErr.slice(0, 300)}` : why, outputs };
      }
      return { ok: true, outputs };
    } catch (e) {
      return { ok: false, error: `could not run the command: ${errorMessage(e)}` };
    }
  },
});
