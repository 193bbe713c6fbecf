import { isAbsolute, resolve } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { z } from 'zod';
import { stringMap } from './fields.js';
import { defineStep, errorMessage, type StepContext, type StepResult } from './types.js';

const TAIL_BYTES = 4_096;
/** How many of the last stderr lines a failed step's error carries. */
export const ERROR_TAIL_LINES = 20;
const LINE_CHARS = 300;
/** Progress from a chatty command: at most one line this often (the latest one wins). */
const PROGRESS_EVERY_MS = 500;

export const execWith = z
  .strictObject({
    command: z.union([z.array(z.string()).min(1), z.string().min(1)]).describe('argv array; a single string only with `shell: true`'),
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

/** The last TAIL_BYTES of an output, from the start of a line so that no fragment leads it. */
function tail(text: string): string {
  if (text.length <= TAIL_BYTES) return text;
  const cut = text.slice(-TAIL_BYTES);
  const nl = cut.indexOf('\n');
  return nl === -1 ? cut : cut.slice(nl + 1);
}

// CSI and OSC sequences, and the two-character escapes: colour and cursor moves are not text.
// eslint-disable-next-line no-control-regex -- matching control characters is the point: they are stripped
const ESCAPES = /\u001b(?:\[[0-?]*[ -/]*[@-~]|\][^\u0007\u001b]*(?:\u0007|\u001b\\)?|[@-_])/g;
// eslint-disable-next-line no-control-regex -- as above
const CONTROL = /[\u0000-\u0008\u000B-\u001F\u007F]/g;

/** A line of a child's output as a human sees it: what a `\r` redraw left, no escapes, at most LINE_CHARS. */
export function displayLine(raw: string): string {
  const shown = raw
    .slice(raw.lastIndexOf('\r') + 1)
    .replace(ESCAPES, '')
    .replace(/\t/g, '  ')
    .replace(CONTROL, '')
    .trimEnd();
  return shown.length > LINE_CHARS ? `${shown.slice(0, LINE_CHARS - 1)}…` : shown;
}

/** The last `n` non-blank lines of an output, for a failed step's error. */
export function lastLines(text: string, n: number): string[] {
  const lines = text.split('\n').map(displayLine);
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines.slice(-n);
}

/** Cuts a stream of chunks into whole lines: a line split across chunks (or a UTF-8 character) waits for its end. */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';
  constructor(
    private readonly onLine: (line: string) => void,
    /** A line longer than this is passed on in pieces rather than held without bound. */
    private readonly maxLine = 64 * 1024,
  ) {}

  push(chunk: Buffer | string): void {
    const lines = (this.partial + (typeof chunk === 'string' ? chunk : this.decoder.write(chunk))).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) this.onLine(line.endsWith('\r') ? line.slice(0, -1) : line);
    while (this.partial.length > this.maxLine) {
      this.onLine(this.partial.slice(0, this.maxLine));
      this.partial = this.partial.slice(this.maxLine);
    }
  }

  /** At exit: the last line, when the output did not end with a newline. */
  end(): void {
    const rest = this.partial + this.decoder.end();
    this.partial = '';
    if (rest !== '') this.onLine(rest.endsWith('\r') ? rest.slice(0, -1) : rest);
  }
}

function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * Progress from a command's output: the newest whole line, at most every PROGRESS_EVERY_MS; one that
 * arrives sooner waits its turn (on the step's clock), and `flush` sends the last one at once.
 */
function throttledProgress(ctx: StepContext): { line: (raw: string) => void; flush: () => void; stop: () => void } {
  let lastProgressAt = -Infinity;
  let pending: string | undefined;
  let waiting = false;
  const stopped = new AbortController();
  const flush = (): void => {
    waiting = false;
    if (pending === undefined || stopped.signal.aborted) return;
    lastProgressAt = ctx.clock.now();
    ctx.progress(pending);
    pending = undefined;
  };
  const line = (raw: string): void => {
    const shown = displayLine(raw);
    if (shown === '') return;
    pending = shown;
    if (waiting) return;
    const wait = lastProgressAt + PROGRESS_EVERY_MS - ctx.clock.now();
    if (wait <= 0) {
      flush();
      return;
    }
    waiting = true;
    void ctx.clock.sleep(wait, stopped.signal).then(flush, () => undefined);
  };
  return { line, flush, stop: () => stopped.abort() };
}

export const execStep = defineStep({
  uses: 'exec',
  with: execWith,
  needs: (w, ctx) => {
    const cwd = w.cwd === undefined ? ctx.playbookDir : resolve(ctx.playbookDir, w.cwd);
    const dir = w.cwd === undefined ? [] : [{ need: 'dir' as const, field: 'cwd', path: cwd }];
    // A shell command line is the shell's to parse; an argv command can be looked up.
    if (!Array.isArray(w.command)) return dir;
    return [...dir, { need: 'command' as const, field: 'command', command: w.command[0] as string, cwd, path: w.env?.PATH }];
  },
  describe: (w) => {
    const cmd = Array.isArray(w.command) ? w.command.map(quote).join(' ') : `sh -c ${quote(w.command)}`;
    return `run ${cmd}${w.cwd ? ` in ${w.cwd}` : ''}`;
  },
  async run(w, ctx): Promise<StepResult> {
    const cwd = w.cwd === undefined ? ctx.playbookDir : isAbsolute(w.cwd) ? w.cwd : resolve(ctx.playbookDir, w.cwd);
    const started = ctx.clock.now();
    const progress = throttledProgress(ctx);
    const stdoutLines = new LineSplitter(progress.line);
    const stderrLines = new LineSplitter(progress.line);
    try {
      const result = await ctx.exec({
        command: w.command,
        shell: w.shell === true,
        cwd,
        env: { ...w.env },
        signal: ctx.signal,
        onStdout: (chunk) => stdoutLines.push(chunk),
        onStderr: (chunk) => stderrLines.push(chunk),
      });
      stdoutLines.end();
      stderrLines.end();
      // The last line out is the one a person wants to see: it does not wait for its turn.
      progress.flush();
      const outputs = {
        exitCode: result.exitCode,
        signal: result.signal,
        durationMs: Math.round(ctx.clock.now() - started),
        stdout: tail(result.stdout),
        stderr: tail(result.stderr),
      };
      if (result.canceled) return { ok: false, error: 'command canceled', outputs };
      if (result.exitCode === 0 && result.signal === null && result.error === null) return { ok: true, outputs };
      const why =
        result.signal !== null
          ? `command killed by ${result.signal}`
          : result.exitCode !== null
            ? `command exited with code ${result.exitCode}`
            : `command failed: ${result.error ?? 'unknown error'}`;
      // The first line says what happened; the lines after it are the end of stderr, which usually says why.
      const lines = lastLines(result.stderr, ERROR_TAIL_LINES);
      return { ok: false, error: [why, ...lines].join('\n'), outputs };
    } catch (e) {
      return { ok: false, error: `could not run the command: ${errorMessage(e)}` };
    } finally {
      progress.stop();
    }
  },
});
