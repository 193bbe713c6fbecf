/**
 * The state now, from the exchange's system of record: a PostgreSQL database read through one
 * server-side cursor per record type (pg-cursor), inside one read-only repeatable-read transaction (every
 * type from the same instant), merge-joined with the pre-outage snapshot as the rows arrive. Memory is
 * one batch of rows, however large the tables.
 */
import { readFileSync, statSync } from 'node:fs';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { InputError } from '../errors.js';
import { RECORD_TYPES, SnapshotError, type RecordType } from '../snapshot/format.js';
import type { RawRecord } from '../snapshot/cursor.js';
import { SnapshotCursor } from '../snapshot/cursor.js';
import { parseDuration } from '../util/duration.js';
import { MergeJoin, type CheckOptions } from './check.js';
import type { IntegrityReport } from './findings.js';

const sourceMapSchema = z.strictObject({
  apiVersion: z.literal('recoverctl/v1'),
  kind: z.literal('IntegritySource'),
  /** Per record type, the SQL returning that type's snapshot fields, in snapshot order, ordered by id (COLLATE "C"). */
  queries: z
    .strictObject(Object.fromEntries(RECORD_TYPES.map((t) => [t, z.string().min(1).optional()])) as Record<RecordType, z.ZodOptional<z.ZodString>>)
    .refine((q) => Object.values(q).some((v) => v !== undefined), 'give at least one query'),
  /** How long one query may run (`5m`); the server cancels it after that. */
  statementTimeout: z.string().optional(),
});
export type SourceMap = z.infer<typeof sourceMapSchema>;

/** A source map from its YAML file: every problem at `file:line:col`, exit 2. */
export function loadSourceMap(file: string): SourceMap {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new InputError(`--source-map ${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  const at = (offset: number): string => {
    const p = lines.linePos(offset);
    return `${file}:${p.line}:${p.col}`;
  };
  if (doc.errors.length) throw new InputError(`${at(doc.errors[0]?.pos[0] ?? 0)}: ${doc.errors[0]?.message.split('\n')[0] ?? 'not YAML'}`);
  const parsed = sourceMapSchema.safeParse(doc.toJS());
  if (!parsed.success) {
    const issue = parsed.error.issues[0] as z.core.$ZodIssue;
    const node = doc.getIn(issue.path as (string | number)[], true) as { range?: [number, number, number] } | undefined;
    throw new InputError(`${at(node?.range?.[0] ?? 0)}: ${issue.path.join('.') || 'document'}: ${issue.message}`);
  }
  if (parsed.data.statementTimeout !== undefined && parseDuration(parsed.data.statementTimeout) === undefined)
    throw new InputError(`${file}: statementTimeout: '${parsed.data.statementTimeout}' is not a duration (30s, 5m)`);
  return parsed.data;
}

/** A connection URL without its password, for every message and label. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return 'postgres://…';
  }
}

/**
 * The password for a connection as libpq finds it: `PGPASSWORD`, else the first matching line of
 * `PGPASSFILE` or `~/.pgpass` (`host:port:db:user:password`, `*` for any, a colon or backslash escaped with a backslash),
 * read only when the file is not readable by others. Undefined when none matches.
 */
export function libpqPassword(url: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.PGPASSWORD !== undefined) return env.PGPASSWORD;
  const file = env.PGPASSFILE ?? (env.HOME ? `${env.HOME}/.pgpass` : undefined);
  if (!file) return undefined;
  let text: string;
  try {
    if ((statSync(file).mode & 0o077) !== 0) return undefined;
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const u = new URL(url);
  const want = [
    u.hostname || 'localhost',
    u.port || '5432',
    decodeURIComponent(u.pathname.slice(1)) || decodeURIComponent(u.username),
    decodeURIComponent(u.username),
  ];
  for (const line of text.split(/\r?\n/)) {
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/(?<!\\):/).map((f) => f.replace(/\\([:\\])/g, '$1'));
    if (fields.length < 5) continue;
    if (want.every((w, i) => fields[i] === '*' || fields[i] === w)) return fields.slice(4).join(':');
  }
  return undefined;
}

/**
 * Host, port, database, user and TLS from a `postgres://` URL. (node-postgres, given a connection string,
 * lets the URL's absent password override the one it is given, so the parts are passed one by one.)
 */
function connectionOf(url: string): { host: string; port: number; database: string; user: string; ssl?: { rejectUnauthorized: boolean } } {
  const u = new URL(url);
  const sslmode = u.searchParams.get('sslmode') ?? 'disable';
  return {
    host: u.searchParams.get('host') ?? (u.hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost'),
    port: Number(u.port || 5432),
    database: decodeURIComponent(u.pathname.slice(1)) || decodeURIComponent(u.username),
    user: decodeURIComponent(u.username),
    ...(sslmode === 'require' || sslmode.startsWith('verify') ? { ssl: { rejectUnauthorized: sslmode.startsWith('verify') } } : {}),
  };
}

/** PostgreSQL's binary floats: money in one is already rounded, so the check refuses it. */
const FLOAT_TYPES = new Map([
  [700, 'real'],
  [701, 'double precision'],
]);

interface PgError {
  code?: string;
  message: string;
}

/** A database failure as one line: what happened and what to do, never the password. */
function failure(e: unknown, label: string, what: string): InputError {
  const err = e as PgError;
  const code = err.code ?? '';
  if (code === '28P01' || code === '28000')
    return new InputError(`${label}: authentication failed (${err.message}); the password comes from --password-file, PGPASSWORD or ~/.pgpass`);
  if (code === '57014') return new InputError(`${label}: ${what} was cancelled by the statement timeout (statementTimeout in the source map)`);
  if (code === '3D000') return new InputError(`${label}: ${err.message}`);
  if (/^(ECONNREFUSED|ENOTFOUND|ETIMEDOUT|EHOSTUNREACH|ECONNRESET)$/.test(code)) return new InputError(`${label}: cannot connect (${code})`);
  return new InputError(`${label}: ${what} failed: ${err.message.split('\n')[0] ?? ''}${code ? ` (SQLSTATE ${code})` : ''}`);
}

interface FieldDef {
  name: string;
  dataTypeID: number;
}

/** The rows of one database, type after type, as snapshot records in snapshot order. */
export class PostgresSource {
  readonly label: string;
  /** The columns each type's query returned (known once its query ran). */
  readonly fields = new Map<string, string[]>();
  records = 0;
  private client: import('pg').Client | undefined;
  private types: RecordType[];
  private cursor: import('pg-cursor') | undefined;
  private type: RecordType | undefined;
  private lastId: string | undefined;
  private row = 0;
  /** The rows the query's first read brought with its column list. */
  private firstRows: Record<string, unknown>[] | null = null;

  constructor(
    private readonly url: string,
    readonly map: SourceMap,
    private readonly o: { password?: string | undefined; batch?: number; onDuplicate: (r: RawRecord) => void },
  ) {
    this.label = redactUrl(url);
    this.types = RECORD_TYPES.filter((t) => map.queries[t] !== undefined);
  }

  async open(): Promise<void> {
    const { default: pg } = await import('pg');
    const timeout = this.map.statementTimeout === undefined ? undefined : parseDuration(this.map.statementTimeout);
    // --password-file, else what libpq would use; node-postgres itself reads PGPASSWORD but not ~/.pgpass
    // once the URL names a user.
    const urlPassword = new URL(this.url).password;
    const password = this.o.password ?? (urlPassword ? decodeURIComponent(urlPassword) : libpqPassword(this.url));
    this.client = new pg.Client({
      ...connectionOf(this.url),
      ...(password !== undefined ? { password } : {}),
      ...(timeout !== undefined ? { statement_timeout: timeout } : {}),
      application_name: 'recoverctl integrity',
      connectionTimeoutMillis: 15_000,
    });
    // A connection the server drops mid-check surfaces through the next read; this only keeps it from crashing the process.
    this.client.on('error', () => undefined);
    try {
      await this.client.connect();
      // Every type read at one instant, and nothing written by a check.
      await this.client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    } catch (e) {
      await this.close();
      throw failure(e, this.label, 'connecting');
    }
  }

  /** The next rows, as records; null when every query is done. Throws InputError for what the map got wrong. */
  async next(): Promise<RawRecord[] | null> {
    for (;;) {
      if (!this.cursor && !(await this.startNext())) return null;
      const type = this.type as RecordType;
      let rows = this.firstRows;
      this.firstRows = null;
      if (rows === null) {
        try {
          rows = (await (this.cursor as import('pg-cursor')).read(this.batch)) as Record<string, unknown>[];
        } catch (e) {
          throw failure(e, this.label, `the ${type} query`);
        }
      }
      if (rows.length === 0) {
        await this.cursor?.close().catch(() => undefined);
        this.cursor = undefined;
        continue;
      }
      const out: RawRecord[] = [];
      for (const r of rows) {
        const rec = this.recordOf(type, r);
        if (rec) out.push(rec);
      }
      if (out.length) return out;
    }
  }

  private get batch(): number {
    return this.o.batch ?? 2000;
  }

  private async startNext(): Promise<boolean> {
    const type = this.types.shift();
    if (!type) return false;
    // A CommonJS module (`export =`): Node hands it to ESM as the default export.
    const Cursor = ((await import('pg-cursor')) as unknown as { default: typeof import('pg-cursor') }).default;
    this.type = type;
    this.lastId = undefined;
    this.row = 0;
    const cursor = (this.client as import('pg').Client).query(new Cursor(this.map.queries[type] as string));
    this.cursor = cursor;
    // The first batch also describes the columns, checked before any row is trusted. (Never read(0): in
    // the protocol, a limit of 0 rows means all of them.)
    let first: { rows: Record<string, unknown>[]; fields: FieldDef[] };
    try {
      first = await new Promise((resolve, reject) =>
        cursor.read(this.batch, (err: Error | undefined, rows: Record<string, unknown>[], result: unknown) =>
          err ? reject(err) : resolve({ rows, fields: (result as { fields: FieldDef[] }).fields }),
        ),
      );
    } catch (e) {
      throw failure(e, this.label, `the ${type} query`);
    }
    const float = first.fields.find((f) => FLOAT_TYPES.has(f.dataTypeID));
    if (float)
      throw new InputError(
        `${this.label}: the ${type} query returns ${float.name} as ${FLOAT_TYPES.get(float.dataTypeID)}: a binary float cannot hold money exactly; select it as numeric or text (${float.name}::text)`,
      );
    const names = first.fields.map((f) => f.name);
    if (names[0] !== 'id') throw new InputError(`${this.label}: the ${type} query's first column must be id, not ${names[0] ?? 'nothing'}`);
    this.fields.set(type, names.slice(1));
    this.firstRows = first.rows;
    return true;
  }

  /** One row as the snapshot line it stands for; its id must come after the last one (snapshot order). */
  private recordOf(type: RecordType, row: Record<string, unknown>): RawRecord | null {
    const id = String(row.id);
    this.row++;
    const line = JSON.stringify({ type, ...row, id });
    const buf = Buffer.from(line);
    const rec: RawRecord = { type, id, line: this.row, buf, start: 0, end: buf.length };
    if (this.lastId !== undefined && id <= this.lastId) {
      if (id === this.lastId) {
        this.o.onDuplicate(rec);
        return null;
      }
      throw new InputError(
        `${this.label}: the ${type} query returned id ${JSON.stringify(id)} after ${JSON.stringify(this.lastId)}: rows must come in snapshot order (ORDER BY id COLLATE "C")`,
      );
    }
    this.lastId = id;
    this.records++;
    return rec;
  }

  /** Ends the connection, which ends the read-only transaction with it (a ROLLBACK would queue behind an open cursor). */
  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    this.cursor = undefined;
    if (!c) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([c.end().catch(() => undefined), new Promise((r) => (timer = setTimeout(r, 2_000)))]);
    clearTimeout(timer);
  }
}

/** The snapshot's fields for a type (its first record's, in order) against the columns the query returned. */
function checkColumns(a: RawRecord, columns: string[], label: string): void {
  const fields = Object.keys(JSON.parse(a.buf.toString('utf8', a.start, a.end)) as object).filter((k) => k !== 'type' && k !== 'id');
  const missing = fields.filter((f) => !columns.includes(f));
  const extra = columns.filter((c) => !fields.includes(c));
  if (missing.length || extra.length)
    throw new InputError(
      `${label}: the ${a.type} query ${missing.length ? `lacks the column${missing.length > 1 ? 's' : ''} ${missing.join(', ')}` : ''}${missing.length && extra.length ? ' and ' : ''}${extra.length ? `returns ${extra.join(', ')}, not a field of the snapshot's ${a.type} records` : ''} (alias each column to its snapshot field: order_type AS "orderType")`,
    );
}

/** Compare a pre-outage snapshot with the state a database holds now (docs/integrity.md). */
export async function checkAgainstPostgres(
  preFile: string,
  url: string,
  map: SourceMap,
  o: CheckOptions & { password?: string | undefined; batch?: number },
): Promise<IntegrityReport> {
  const started = performance.now();
  const preLabel = o.preLabel ?? preFile;
  const join = new MergeJoin({ ...o, preLabel, postLabel: redactUrl(url), postHasLines: false });
  const source = new PostgresSource(url, map, { password: o.password, batch: o.batch ?? 2000, onDuplicate: join.duplicate(redactUrl(url), false) });
  let pre: SnapshotCursor | undefined;
  const unchecked = new Set<string>(RECORD_TYPES);
  try {
    pre = new SnapshotCursor(preFile, join.duplicate(preLabel, !(o.preIsDerived ?? false)));
    await source.open();
    let a = pre.next();
    let batch = (await source.next()) ?? [];
    let i = 0;
    while ((a || i < batch.length) && !join.findings.full) {
      if (a && unchecked.has(a.type)) {
        if (map.queries[a.type as RecordType] === undefined)
          throw new InputError(`${source.label}: the snapshot holds ${a.type} records and the source map has no ${a.type} query`);
        const columns = source.fields.get(a.type);
        if (columns) {
          checkColumns(a, columns, source.label);
          unchecked.delete(a.type);
        }
      }
      const advance = join.step(a, batch[i]);
      if (advance <= 0) a = pre.next();
      if (advance >= 0 && ++i >= batch.length) {
        batch = (await source.next()) ?? [];
        i = 0;
      }
    }
    join.finish();
  } catch (e) {
    if (!(e instanceof SnapshotError)) throw e;
    join.corrupt(e, preLabel);
  } finally {
    pre?.close();
    await source.close();
  }
  return join.report(
    { file: preLabel, seq: pre?.header.seq ?? -1, records: pre?.records ?? 0 },
    { file: source.label, seq: -1, records: source.records },
    started,
  );
}
