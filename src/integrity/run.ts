import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { InputError } from '../errors.js';
import type { EngineClient } from '../engine-client/client.js';
import type { IntegrityReport } from './findings.js';

/** Where the state now comes from: another snapshot file, a running engine's GET /state, or a PostgreSQL database. */
export type IntegrityTarget =
  { against: string } | { engine: string; tokenFile: string } | { postgres: string; sourceMap: string; passwordFile?: string | undefined };

/** `--against` names a database rather than a file. */
export const isPostgresUrl = (s: string): boolean => /^postgres(ql)?:\/\//.test(s);

/** A check, typed: the command line's flags are parsed in src/cli/integrity.ts. */
export interface IntegrityOptions {
  /** The pre-outage snapshot; findings name it as given. */
  snapshot: string;
  target: IntegrityTarget;
  /** The engine's WAL: changes after the snapshot's seq that it explains are not findings. */
  wal?: string | undefined;
  /** Stop after this many findings. */
  limit?: number | undefined;
}

/** Run the check; the state now comes from a file, or from a live engine's GET /state. */
export async function runIntegrity(flags: IntegrityOptions): Promise<IntegrityReport> {
  const { checkSnapshotFiles } = await import('../integrity/check.js');
  const limit = flags.limit;
  if ('postgres' in flags.target) return checkPostgres(flags, flags.target);
  const scratch = mkdtempSync(join(tmpdir(), 'recoverctl-integrity-'));
  try {
    const target = flags.target;
    let post = 'against' in target ? resolve(target.against) : '';
    let postLabel = 'against' in target ? target.against : '';
    if ('engine' in target) {
      const { EngineClient } = await import('../engine-client/client.js');
      let token: string;
      try {
        token = readFileSync(target.tokenFile, 'utf8').trim();
      } catch (e) {
        throw new InputError(`--token-file ${target.tokenFile}: cannot read (${(e as NodeJS.ErrnoException).code ?? ''})`);
      }
      const client = new EngineClient(target.engine.replace(/\/$/, ''), token, 600_000);
      post = join(scratch, 'state.ndjson');
      postLabel = `${target.engine}/state`;
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
    return await checkSnapshotFiles(pre, post, {
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

async function checkPostgres(
  flags: IntegrityOptions,
  target: { postgres: string; sourceMap: string; passwordFile?: string | undefined },
): Promise<IntegrityReport> {
  if (flags.wal) throw new InputError('--wal: a database has no WAL seq to replay up to; compare the database with a snapshot taken at the same point instead');
  const { checkAgainstPostgres, loadSourceMap } = await import('./postgres.js');
  const map = loadSourceMap(target.sourceMap);
  let password: string | undefined;
  if (target.passwordFile !== undefined) {
    try {
      password = readFileSync(target.passwordFile, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw new InputError(`--password-file ${target.passwordFile}: cannot read (${(e as NodeJS.ErrnoException).code ?? ''})`);
    }
  }
  return checkAgainstPostgres(resolve(flags.snapshot), target.postgres, map, {
    ...(flags.limit !== undefined ? { limit: flags.limit } : {}),
    preLabel: flags.snapshot,
    password,
  });
}

async function downloadState(client: EngineClient, file: string): Promise<void> {
  const { createWriteStream } = await import('node:fs');
  const { pipeline } = await import('node:stream/promises');
  const { Readable } = await import('node:stream');
  const res = await client.raw('GET', '/state');
  if (!res.ok || !res.body) throw new InputError(`GET ${client.url}/state answered ${res.status}`);
  await pipeline(Readable.fromWeb(res.body), createWriteStream(file));
}
