import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { InputError, UsageError } from '../errors.js';
import type { EngineClient } from '../engine-client/client.js';
import type { IntegrityReport } from './findings.js';
import { dataDirLayout } from '../util/data-dir.js';

export interface IntegrityFlags {
  snapshot: string;
  against?: string | undefined;
  engine?: string | undefined;
  tokenFile?: string | undefined;
  wal?: string | undefined;
  limit?: string | undefined;
  /** A local engine's data dir: its running engine, its token and its WAL. */
  dataDir?: string | undefined;
}

/** `--data-dir D` stands for `--engine <D's url> --token-file D/control.token --wal D/wal`. */
async function fromDataDir(flags: IntegrityFlags): Promise<IntegrityFlags> {
  if (flags.dataDir === undefined) return flags;
  if (flags.engine !== undefined || flags.against !== undefined || flags.tokenFile !== undefined) {
    throw new UsageError('integrity check: --data-dir stands for --engine, --token-file and --wal; give it alone (or with --wal)');
  }
  const { attach } = await import('../engine-client/supervisor.js');
  const running = await attach(flags.dataDir);
  if (!running) throw new InputError(`--data-dir ${flags.dataDir}: no engine is running there (recoverctl engine start --data-dir ${flags.dataDir})`);
  const layout = dataDirLayout(flags.dataDir);
  return { ...flags, engine: running.info.url, tokenFile: layout.token, wal: flags.wal ?? layout.wal };
}

/** Run the check; the state now comes from a file, or from a live engine's GET /state. */
export async function runIntegrity(given: IntegrityFlags): Promise<IntegrityReport> {
  const { checkSnapshots } = await import('../integrity/check.js');
  const flags = await fromDataDir(given);
  if ((flags.against === undefined) === (flags.engine === undefined)) {
    throw new UsageError('integrity check: give exactly one of --against <post.ndjson>, --engine <url> or --data-dir <dir>');
  }
  let limit: number | undefined;
  if (flags.limit !== undefined) {
    limit = Number(flags.limit);
    if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit: expected a whole number >= 1, got '${flags.limit}'`);
  }
  const scratch = mkdtempSync(join(tmpdir(), 'recoverctl-integrity-'));
  try {
    let post = flags.against ? resolve(flags.against) : '';
    let postLabel = flags.against ?? '';
    if (flags.engine) {
      const { EngineClient } = await import('../engine-client/client.js');
      if (!flags.tokenFile) throw new UsageError('--engine needs --token-file <DIR/control.token>');
      let token: string;
      try {
        token = readFileSync(flags.tokenFile, 'utf8').trim();
      } catch (e) {
        throw new InputError(`--token-file ${flags.tokenFile}: cannot read (${(e as NodeJS.ErrnoException).code ?? ''})`);
      }
      const client = new EngineClient(flags.engine.replace(/\/$/, ''), token, 600_000);
      post = join(scratch, 'state.ndjson');
      postLabel = `${flags.engine}/state`;
      await downloadState(client, post);
    }
    let pre = resolve(flags.snapshot);
    let explained: number | null = null;
    if (flags.wal) {
      const { replayExpected, WalGap } = await import('../integrity/replay.js');
      const { SnapshotCursor } = await import('../snapshot/cursor.js');
      const { SnapshotError } = await import('../snapshot/format.js');
      try {
        const nowSeq = new SnapshotCursor(post).header.seq;
        const expectedFile = join(scratch, 'expected.ndjson');
        explained = (await replayExpected(pre, resolve(flags.wal), nowSeq, expectedFile)).applied;
        pre = expectedFile;
      } catch (e) {
        if (e instanceof WalGap) throw new InputError(`--wal ${flags.wal}: ${e.message}`);
        if (e instanceof SnapshotError) throw new InputError(e.message);
        throw e;
      }
    }
    // Findings name the files as the user typed them, never a resolved or scratch path.
    return checkSnapshots(pre, post, {
      ...(limit !== undefined ? { limit } : {}),
      postLabel,
      preLabel: flags.wal ? `${flags.snapshot} + ${flags.wal}` : flags.snapshot,
      preIsDerived: flags.wal !== undefined,
      explainedByWal: explained,
    });
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

async function downloadState(client: EngineClient, file: string): Promise<void> {
  const { createWriteStream } = await import('node:fs');
  const { pipeline } = await import('node:stream/promises');
  const { Readable } = await import('node:stream');
  const res = await client.raw('GET', '/state');
  if (!res.ok || !res.body) throw new InputError(`GET ${client.url}/state answered ${res.status}`);
  await pipeline(Readable.fromWeb(res.body), createWriteStream(file));
}
