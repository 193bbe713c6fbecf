/**
 * Any gateway, through commands: argv templates filled with the stage's weight, run without a shell,
 * optionally verified by a command that prints the weight in place.
 */
import { parseDuration } from '../../util/duration.js';
import { argvText, exitText, runBounded } from './run.js';
import type { CommandProviderConfig } from './schema.js';
import { ProviderError, oneLine, type ProviderDeps, type TrafficProvider, type TrafficWeights } from './types.js';

export interface TemplateValues {
  weight: number;
  remainder: number;
  stage: number;
}

/** Fill `${{ weight }}`, `${{ remainder }}` and `${{ stage }}` inside each argv element; nothing else is touched, nothing is split. */
export function fillArgv(argv: readonly string[], v: TemplateValues): string[] {
  return argv.map((a) => a.replace(/\$\{\{\s*(weight|remainder|stage)\s*\}\}/g, (_m, name: keyof TemplateValues) => String(v[name])));
}

export class CommandProvider implements TrafficProvider {
  readonly type = 'command';
  private readonly timeoutMs: number;

  constructor(
    private readonly config: CommandProviderConfig,
    private readonly deps: Pick<ProviderDeps, 'exec' | 'signal' | 'playbookDir'>,
  ) {
    this.timeoutMs = parseDuration(config.timeout) ?? 30_000;
  }

  async current(): Promise<TrafficWeights> {
    const { current, verify } = this.config;
    // verify can stand in only when it needs no weight to be filled in.
    const argv = current ?? (verify && !verify.some((a) => a.includes('${{')) ? verify : undefined);
    if (!argv)
      throw new ProviderError(
        'command',
        'current',
        'failed',
        'no `current` command (and `verify` uses ${{ }}): cannot read the weight in place; add current: [argv] that prints it',
      );
    return { weight: await this.readWeight(argv), remainderWeight: null };
  }

  async set(weight: number, stage: number): Promise<TrafficWeights> {
    const values = { weight, remainder: 100 - weight, stage };
    await this.runAll(this.config.set, values);
    return this.verify(values);
  }

  /** The abort commands (default: the set commands) with weight 0, remainder 100, stage 0. */
  async abort(): Promise<TrafficWeights> {
    const values = { weight: 0, remainder: 100, stage: 0 };
    await this.runAll(this.config.abort ?? this.config.set, values);
    return this.verify(values);
  }

  private async runAll(commands: readonly (readonly string[])[], values: TemplateValues): Promise<void> {
    for (const template of commands) {
      const argv = fillArgv(template, values);
      const target = `\`${argvText(argv)}\``;
      const r = await runBounded(argv, this.deps, this.timeoutMs, { provider: 'command', target });
      if (r.exitCode !== 0) throw new ProviderError('command', target, 'failed', exitText(r));
    }
  }

  /** Without a verify command the weight is reported as set: nothing can read it back. */
  private async verify(values: TemplateValues): Promise<TrafficWeights> {
    if (!this.config.verify) return { weight: values.weight, remainderWeight: null };
    const argv = fillArgv(this.config.verify, values);
    const got = await this.readWeight(argv);
    if (got !== values.weight) throw new ProviderError('command', `\`${argvText(argv)}\``, 'mismatch', `weight set to ${values.weight}, verify prints ${got}`);
    return { weight: got, remainderWeight: null };
  }

  /** Run `argv`; its stdout, trimmed, must be a whole number. */
  private async readWeight(argv: readonly string[]): Promise<number> {
    const target = `\`${argvText(argv)}\``;
    const r = await runBounded(argv, this.deps, this.timeoutMs, { provider: 'command', target });
    if (r.exitCode !== 0) throw new ProviderError('command', target, 'failed', exitText(r));
    const out = r.stdout.trim();
    if (!/^\d+$/.test(out))
      throw new ProviderError('command', target, 'failed', `printed ${JSON.stringify(oneLine(out, 80))}, expected the weight as a whole number`);
    return Number(out);
  }
}
