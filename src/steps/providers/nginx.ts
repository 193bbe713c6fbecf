/**
 * Open-source nginx cannot change weights at run time: the upstream file is rewritten whole (temp file,
 * fsync, rename), checked with `test`, then `reload`ed. The file as it was before the first set is kept
 * beside it as `<file>.recoverctl-previous`, the way back that abort restores.
 */
import { basename, dirname, resolve as resolvePath } from 'node:path';
import { parseDuration } from '../../util/duration.js';
import { errorMessage } from '../types.js';
import { argvText, exitText, runBounded, type Blame } from './run.js';
import type { NginxProviderConfig } from './schema.js';
import { ProviderError, type ProviderDeps, type ProviderFailure, type TrafficProvider, type TrafficWeights } from './types.js';

export const PREVIOUS_SUFFIX = '.recoverctl-previous';

type UpstreamShape = Pick<NginxProviderConfig, 'upstream' | 'canary' | 'remainder' | 'directives'>;

/** `server ADDR weight=W;`, or `down` for 0 (nginx refuses weight=0). */
function serverLine(address: string, weight: number): string {
  return `    server ${address} ${weight === 0 ? 'down' : `weight=${weight}`};\n`;
}

/** The whole upstream file for a canary weight: the canary at W, the remainder at 100 - W, then the extra directives. */
export function renderUpstream(c: UpstreamShape, weight: number): string {
  const remainder = c.remainder === undefined ? '' : `, remainder ${c.remainder} weight ${100 - weight}`;
  return (
    `# Written by recoverctl traffic.shift: canary ${c.canary} weight ${weight}${remainder}.\n` +
    `upstream ${c.upstream} {\n` +
    serverLine(c.canary, weight) +
    (c.remainder === undefined ? '' : serverLine(c.remainder, 100 - weight)) +
    (c.directives ?? []).map((d) => `    ${d.trim()};\n`).join('') +
    '}\n'
  );
}

/**
 * The weights an upstream file gives the canary and the remainder: `down` is 0, no `weight=` is nginx's
 * default 1, a server not in the block is 0. Null when the file has no `upstream NAME { }` block.
 */
export function parseUpstream(text: string, c: UpstreamShape): TrafficWeights | null {
  const body = text.replace(/#[^\n]*/g, '');
  const name = c.upstream.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const block = new RegExp(`(?:^|[\\s;}])upstream\\s+${name}\\s*\\{([^}]*)\\}`).exec(body);
  if (!block) return null;
  const weights = new Map<string, number>();
  for (const statement of (block[1] ?? '').split(';')) {
    const [keyword, address, ...params] = statement.trim().split(/\s+/);
    if (keyword !== 'server' || address === undefined) continue;
    const weight = params.includes('down') ? 0 : Number(/^weight=(\d+)$/.exec(params.find((p) => p.startsWith('weight=')) ?? '')?.[1] ?? 1);
    weights.set(address, weight);
  }
  return { weight: weights.get(c.canary) ?? 0, remainderWeight: c.remainder === undefined ? null : (weights.get(c.remainder) ?? 0) };
}

/** nginx's log prefix (`2026/01/01 00:00:00 [emerg] 12#12: `) down to the level. */
function withoutLogPrefix(text: string): string {
  return text.replace(/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d (\[\w+\]) \d+#\d+: /gm, '$1 ');
}

async function readIfThere(path: string): Promise<string | null> {
  const { readFile } = await import('node:fs/promises');
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** Replace `path` by `text` atomically: a temp file beside it (with the mode of `modeOf`), fsync'd, renamed, the folder fsync'd. */
export async function writeAtomic(path: string, text: string, modeOf = path): Promise<void> {
  const { open, rename, rm, stat } = await import('node:fs/promises');
  const keep = await stat(modeOf).then(
    (s) => s.mode & 0o777,
    () => 0o644,
  );
  // Not `*.conf`, so an `include conf.d/*.conf` never picks up a half-written file.
  const tmp = `${dirname(path)}/.${basename(path)}.recoverctl-tmp-${process.pid}`;
  try {
    const fh = await open(tmp, 'w', keep);
    try {
      await fh.writeFile(text, 'utf8');
      await fh.chmod(keep);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  try {
    const dir = await open(dirname(path), 'r');
    await dir.sync().finally(() => dir.close());
  } catch {
    // some filesystems cannot fsync a directory; the rename is still atomic
  }
}

export class NginxProvider implements TrafficProvider {
  readonly type = 'nginx';
  private readonly file: string;
  private readonly previousFile: string;
  private readonly blame: Blame;
  private readonly timeoutMs: number;

  constructor(
    private readonly config: NginxProviderConfig,
    private readonly deps: Pick<ProviderDeps, 'exec' | 'signal' | 'playbookDir'>,
  ) {
    this.file = resolvePath(deps.playbookDir, config.upstreamFile);
    this.previousFile = `${this.file}${PREVIOUS_SUFFIX}`;
    this.blame = { provider: 'nginx', target: `upstream ${config.upstream} in ${this.file}` };
    this.timeoutMs = parseDuration(config.timeout) ?? 30_000;
  }

  async current(): Promise<TrafficWeights> {
    const weights = parseUpstream(await this.existing(), this.config);
    if (!weights) throw this.error('not-found', `the file has no \`upstream ${this.config.upstream} { }\` block`);
    return weights;
  }

  async set(weight: number): Promise<TrafficWeights> {
    const before = await this.existing();
    // Only the first set of a shift keeps the way back: a resumed shift must not save its own half-way file over it.
    if ((await this.read(this.previousFile)) === null)
      await this.guard(() => writeAtomic(this.previousFile, before, this.file), `cannot keep ${this.previousFile}`);
    await this.apply(renderUpstream(this.config, weight), before);
    return this.current();
  }

  async abort(): Promise<TrafficWeights> {
    const previous = await this.read(this.previousFile);
    // Nothing of a shift is in place (none was set, or an abort already finished): leave the file alone.
    if (previous === null) return this.current();
    const now = (await this.read(this.file)) ?? previous;
    await this.apply(previous, now);
    await this.guard(async () => (await import('node:fs/promises')).rm(this.previousFile, { force: true }), `cannot remove ${this.previousFile}`);
    return parseUpstream(previous, this.config) ?? { weight: 0, remainderWeight: this.config.remainder === undefined ? null : 0 };
  }

  /** The shift completed: the saved file is no way back any more, and a later shift's abort must not restore it. */
  async finish(): Promise<void> {
    await this.guard(async () => (await import('node:fs/promises')).rm(this.previousFile, { force: true }), `cannot remove ${this.previousFile}`);
  }

  /** Write `text`, then test and reload; when either fails, put `fallback` back (nginx still runs what it had) and throw. */
  private async apply(text: string, fallback: string): Promise<void> {
    await this.guard(() => writeAtomic(this.file, text), `cannot write the file`);
    let problem: { failure: ProviderFailure; detail: string } | null;
    try {
      problem = await this.testAndReload();
    } catch (e) {
      if (!(e instanceof ProviderError)) {
        await writeAtomic(this.file, fallback).catch(() => undefined);
        throw e;
      }
      problem = e;
    }
    if (!problem) return;
    const back = await writeAtomic(this.file, fallback).then(
      () => 'the file was put back as it was',
      (e: unknown) => `and putting the file back failed too: ${errorMessage(e)}`,
    );
    throw this.error(problem.failure, `${problem.detail}; ${back}`);
  }

  private async testAndReload(): Promise<{ failure: ProviderFailure; detail: string } | null> {
    const test = await runBounded(this.config.test, this.deps, this.timeoutMs, this.blame);
    if (test.exitCode !== 0) return { failure: 'rejected', detail: `\`${argvText(this.config.test)}\` ${exitText(test, withoutLogPrefix)}` };
    const reload = await runBounded(this.config.reload, this.deps, this.timeoutMs, this.blame);
    if (reload.exitCode !== 0) return { failure: 'failed', detail: `\`${argvText(this.config.reload)}\` ${exitText(reload, withoutLogPrefix)}` };
    return null;
  }

  /** The upstream file as it is; there must be one (it is what nginx serves before the shift). */
  private async existing(): Promise<string> {
    const text = await this.read(this.file);
    if (text === null) throw this.error('not-found', 'the file does not exist: write the upstream block nginx serves before the shift first');
    return text;
  }

  private read(path: string): Promise<string | null> {
    return this.guard(() => readIfThere(path), `cannot read ${path}`);
  }

  private async guard<T>(f: () => Promise<T>, what: string): Promise<T> {
    try {
      return await f();
    } catch (e) {
      throw this.error('failed', `${what}: ${errorMessage(e)}`);
    }
  }

  private error(failure: ProviderFailure, detail: string): ProviderError {
    return new ProviderError(this.blame.provider, this.blame.target, failure, detail);
  }
}
