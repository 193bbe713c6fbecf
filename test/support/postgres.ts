/**
 * A throw-away PostgreSQL cluster for tests: Debian's server binaries, `initdb` and `pg_ctl` run as the
 * `postgres` user when the tests run as root (initdb refuses root), on a free 127.0.0.1 port with its
 * socket in the cluster's temp dir, password (scram) authentication. Always stopped by `stop()`.
 */
import { execa } from 'execa';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The newest installed server's bin folder, or null. */
export function postgresBin(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], 'bin') : null;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface TestPostgres {
  port: number;
  /** The superuser's password (user `postgres`). */
  password: string;
  /** A URL for `user` on `db`, without a password (tests pass it the way users do). */
  url(db?: string, user?: string): string;
  /** Run SQL as the superuser on `db` (psql, stop at the first error); returns stdout. */
  sql(sql: string, db?: string): Promise<string>;
  /** A query's rows, one text value a line, streamed into `file` (COPY … TO STDOUT). */
  copyOut(query: string, file: string, db?: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startPostgres(): Promise<TestPostgres> {
  const bin = postgresBin();
  if (!bin) throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql');
  const root = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'recoverctl-pg-'));
  const password = `pw-${process.pid}-${Date.now()}`;
  writeFileSync(join(dir, 'pwfile'), `${password}\n`);
  const asPostgres = (cmd: string, args: string[]) =>
    root ? execa('runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args], { cwd: dir }) : execa(join(bin, cmd), args, { cwd: dir });
  if (root) {
    const { uid, gid } = await execa('id', ['-u', 'postgres']).then(async (u) => ({
      uid: Number(u.stdout),
      gid: Number((await execa('id', ['-g', 'postgres'])).stdout),
    }));
    chownSync(dir, uid, gid);
    chownSync(join(dir, 'pwfile'), uid, gid);
  }
  chmodSync(dir, 0o700);
  const port = await freePort();
  const data = join(dir, 'data');
  let started = false;
  const stop = async (): Promise<void> => {
    if (started) await asPostgres('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
    started = false;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await asPostgres('initdb', ['-D', data, '-U', 'postgres', `--pwfile=${join(dir, 'pwfile')}`, '--auth=scram-sha-256', '-E', 'UTF8', '--no-locale']);
    started = true;
    await asPostgres('pg_ctl', [
      '-D',
      data,
      '-l',
      join(dir, 'log'),
      '-w',
      '-o',
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off`,
      'start',
    ]);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    port,
    password,
    url: (db = 'postgres', user = 'postgres') => `postgres://${user}@127.0.0.1:${port}/${db}`,
    sql: async (sql, db = 'postgres') =>
      (
        await execa('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', db, '-At', '-c', sql], {
          env: { PGPASSWORD: password },
        })
      ).stdout,
    copyOut: async (query, file, db = 'postgres') => {
      // -o: psql writes COPY's rows to the file itself; nothing passes through this process.
      await execa(
        'psql',
        ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', db, '-o', file, '-c', `COPY (${query}) TO STDOUT`],
        { env: { PGPASSWORD: password } },
      );
    },
    stop,
  };
}
