/** Running a provider's commands: argv only, bounded in time, with the step's abort passed through. */
import { errorMessage } from '../types.js';
import { ProviderError, oneLine, type ProviderDeps, type ProviderType } from './types.js';
import type { ExecOutcome } from '../effects.js';

/** How a command reads in a message: its argv, an element with spaces quoted. */
export function argvText(argv: readonly string[]): string {
  return argv.map((a) => (a === '' || /[\s"'\\]/.test(a) ? JSON.stringify(a) : a)).join(' ');
}

/** Where a provider's failures are reported: its type and the gateway object. */
export interface Blame {
  provider: ProviderType;
  target: string;
}

/** A command that exited (any exit code); stdout and stderr whole. */
export interface Exited {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * Run `argv` (never through a shell) in the playbook's folder, for at most `timeoutMs`. Resolves once it
 * exited, whatever the code; throws ProviderError when it could not start, was killed or ran out of time,
 * and the step's abort reason when the step was aborted.
 */
export async function runBounded(
  argv: readonly string[],
  deps: Pick<ProviderDeps, 'exec' | 'signal' | 'playbookDir'>,
  timeoutMs: number,
  blame: Blame,
): Promise<Exited> {
  deps.signal.throwIfAborted();
  const timer = new AbortController();
  const timeout = setTimeout(() => timer.abort(new Error(`no exit within ${timeoutMs}ms`)), timeoutMs);
  const cmd = `\`${argvText(argv)}\``;
  try {
    let r: ExecOutcome;
    try {
      r = await deps.exec({
        command: argv,
        shell: false,
        cwd: deps.playbookDir,
        env: {},
        signal: AbortSignal.any([deps.signal, timer.signal]),
        onStdout: () => undefined,
        onStderr: () => undefined,
      });
    } catch (e) {
      if (deps.signal.aborted) throw deps.signal.reason;
      throw new ProviderError(blame.provider, blame.target, 'unreachable', `${cmd} could not run: ${oneLine(errorMessage(e))}`);
    }
    if (deps.signal.aborted) throw deps.signal.reason;
    if (timer.signal.aborted || r.canceled) throw new ProviderError(blame.provider, blame.target, 'unreachable', `${cmd} did not finish within ${timeoutMs}ms`);
    if (r.error !== null) throw new ProviderError(blame.provider, blame.target, 'unreachable', `${cmd} could not run: ${oneLine(r.error)}`);
    if (r.exitCode === null) throw new ProviderError(blame.provider, blame.target, 'failed', `${cmd} killed by ${r.signal ?? 'a signal'}`);
    return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
  } finally {
    clearTimeout(timeout);
  }
}

/** `exited with code 1: <stderr, or stdout when stderr is empty, as one line>`. */
export function exitText(r: Exited, clean: (text: string) => string = (t) => t): string {
  const out = oneLine(clean(r.stderr.trim() ? r.stderr : r.stdout));
  return `exited with code ${r.exitCode}${out ? `: ${out}` : ''}`;
}
