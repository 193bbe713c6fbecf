/**
 * `integrity check --against postgres://…` against a real PostgreSQL (a throw-away cluster started by
 * test/support/postgres.ts): exact findings on seeded discrepancies, what a wrong source map or a wrong
 * password gets (exit 2, one line, no password), and memory that stays flat over a million rows.
 */
import { createReadStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SNAPSHOT_FORMAT, type RecordType } from '../../src/snapshot/format.js';
import { SnapshotWriter } from '../../src/snapshot/writer.js';
import { runCli } from '../support/cli.js';
import { postgresBin, startPostgres, type TestPostgres } from '../support/postgres.js';

const RECON = { user: 'recon', password: 'recon-secret-1' };

/** The queries of the map, as an on-call engineer would write them for this schema. */
const QUERIES: Partial<Record<RecordType, string>> = {
  account: `SELECT id, json_build_object('USDC', usdc::text, 'USDT', usdt::text) AS balances FROM accounts ORDER BY id COLLATE "C"`,
  order: `SELECT id, account, symbol, side, order_type AS "orderType", price::text AS price, qty::text AS qty, filled::text AS filled, status, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS ts FROM orders ORDER BY id COLLATE "C"`,
  position: `SELECT account || ':' || symbol AS id, qty::text AS qty, entry_price::text AS "entryPrice", margin_mode AS "marginMode", isolated_margin::text AS "isolatedMargin" FROM positions ORDER BY account || ':' || symbol COLLATE "C"`,
};

const mapYaml = (queries: Partial<Record<RecordType, string>>, extra = ''): string =>
  `apiVersion: recoverctl/v1\nkind: IntegritySource\n${extra}queries:\n${Object.entries(queries)
    .map(([t, q]) => `  ${t}: ${JSON.stringify(q)}`)
    .join('\n')}\n`;

const SCHEMA = `
CREATE TABLE accounts (id text PRIMARY KEY, usdt numeric NOT NULL, usdc numeric NOT NULL);
CREATE TABLE orders (id text PRIMARY KEY, account text NOT NULL, symbol text NOT NULL, side text NOT NULL, order_type text NOT NULL,
  price numeric, qty numeric NOT NULL, filled numeric NOT NULL, status text NOT NULL, ts timestamptz NOT NULL);
CREATE TABLE positions (account text, symbol text, qty numeric NOT NULL, entry_price numeric NOT NULL, margin_mode text NOT NULL,
  isolated_margin numeric NOT NULL, PRIMARY KEY (account, symbol));
CREATE ROLE ${RECON.user} LOGIN PASSWORD '${RECON.password}';
GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${RECON.user};
`;

/** n accounts, 20 orders each, one long and one short BTCUSDT position per pair of accounts: balanced. */
const seed = (accounts: number): string => `
INSERT INTO accounts SELECT 'acct-' || lpad(i::text, 7, '0'), (1000 + i % 97)::numeric, (i % 13)::numeric FROM generate_series(1, ${accounts}) i;
INSERT INTO orders SELECT 'ord-' || lpad(i::text, 9, '0'), 'acct-' || lpad((1 + i % ${accounts})::text, 7, '0'),
  (ARRAY['BTCUSDT','ETHUSDT','BTCUSDC'])[1 + i % 3], (ARRAY['buy','sell'])[1 + i % 2], 'limit', (60000 + i % 500)::numeric + 0.5,
  (0.001 * (1 + i % 9))::numeric, 0, 'open', timestamptz '2026-01-01 00:00:00+00' + (i || ' ms')::interval
  FROM generate_series(1, ${accounts * 20}) i;
INSERT INTO positions SELECT 'acct-' || lpad(i::text, 7, '0'), 'BTCUSDT', CASE WHEN i % 2 = 1 THEN 0.5 ELSE -0.5 END, 60000, 'cross', 0
  FROM generate_series(1, ${accounts - (accounts % 2)}) i;
`;

/** The pre-outage snapshot: what the map's queries return now, written as a snapshot (header, records, trailer). */
async function snapshotOf(pg: TestPostgres, db: string, file: string, dir: string): Promise<void> {
  const w = new SnapshotWriter(file, { type: 'header', format: SNAPSHOT_FORMAT, seq: 7, takenAt: '2026-01-01T00:00:00.000Z', phase: 'halted' });
  for (const [type, query] of Object.entries(QUERIES)) {
    const dump = join(dir, `${type}.json`);
    await pg.copyOut(`SELECT row_to_json(q) FROM (${query}) q`, dump, db);
    const lines = createInterface({ input: createReadStream(dump), crlfDelay: Infinity });
    for await (const line of lines) if (line) w.record({ type: type as RecordType, ...(JSON.parse(line.replace(/\\\\/g, '\\')) as { id: string }) });
  }
  w.finish();
}

const SKIP = postgresBin() ? undefined : 'no PostgreSQL server (apt-get install postgresql; .ci/run installs it)';
if (SKIP) console.warn(`skipped: integrity against PostgreSQL: ${SKIP}`);

describe.skipIf(SKIP !== undefined)(`integrity check against a real PostgreSQL${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  let pg: TestPostgres;
  let dir: string;
  let pre: string;
  let map: string;
  const env = { PGPASSWORD: RECON.password };

  beforeAll(async () => {
    pg = await startPostgres();
    // Shared by every test here (the support's tempDir is removed after each one).
    dir = mkdtempSync(join(tmpdir(), 'recoverctl-pgcheck-'));
    await pg.sql('CREATE DATABASE exchange');
    await pg.sql(SCHEMA + seed(2_400), 'exchange');
    pre = join(dir, 'pre.ndjson');
    await snapshotOf(pg, 'exchange', pre, dir);
    map = join(dir, 'map.yaml');
    writeFileSync(map, mapYaml(QUERIES));
  }, 120_000);
  afterAll(async () => {
    await pg?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const check = (args: string[], e: Record<string, string> = env) =>
    runCli(['integrity', 'check', '--snapshot', pre, '--against', pg.url('exchange', RECON.user), '--source-map', map, ...args], {
      env: e,
      timeoutMs: 120_000,
    });

  it('is clean against the database it was taken from (52,800 rows), with PGPASSWORD', async () => {
    const r = await check(['--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { clean: boolean; post: { records: number; file: string }; pre: { records: number }; conservationRule: string };
    expect(report).toMatchObject({ clean: true, conservationRule: 'against-pre-outage' });
    expect(report.pre.records).toBe(2_400 + 48_000 + 2_400);
    expect(report.post).toEqual({ file: `postgres://recon@127.0.0.1:${pg.port}/exchange`, seq: -1, records: 52_800 });
  });

  it('finds exactly the discrepancies seeded in the database, no more, no fewer', async () => {
    // A copy of the database the snapshot was taken from, then changed as an outage might have.
    await pg.sql('CREATE DATABASE seeded TEMPLATE exchange');
    await pg.sql(
      `BEGIN;
       DELETE FROM orders WHERE id IN ('ord-000000100', 'ord-000020000', 'ord-000047999');
       INSERT INTO orders VALUES ('ord-000000100x', 'acct-0000001', 'BTCUSDT', 'buy', 'limit', 1, 1, 0, 'open', now());
       UPDATE orders SET status = 'canceled' WHERE id IN ('ord-000000007', 'ord-000031000');
       UPDATE accounts SET usdt = usdt + 25.5 WHERE id = 'acct-0000042';
       UPDATE positions SET qty = 0.4 WHERE account = 'acct-0000003';
       COMMIT;`,
      'seeded',
    );
    const r = await runCli(['integrity', 'check', '--snapshot', pre, '--against', pg.url('seeded', RECON.user), '--source-map', map, '--json'], { env });
    expect(r.exitCode, r.stderr).toBe(1);
    const found = (JSON.parse(r.stdout) as { findings: { category: string; type: string; id: string; field?: string; expected?: unknown; actual?: unknown }[] })
      .findings;
    expect(
      found.map((f) => `${f.category} ${f.type} ${f.id}${f.field ? ` ${f.field} ${JSON.stringify(f.expected)}→${JSON.stringify(f.actual)}` : ''}`).sort(),
    ).toEqual(
      [
        'missing order ord-000000100',
        'missing order ord-000020000',
        'missing order ord-000047999',
        'unexpected order ord-000000100x',
        'mismatch order ord-000000007 status "open"→"canceled"',
        'mismatch order ord-000031000 status "open"→"canceled"',
        'mismatch account acct-0000042 balances.USDT "1042"→"1067.5"',
        'mismatch position acct-0000003:BTCUSDT qty "0.5"→"0.4"',
        // The ledger against the pre-outage totals: sum(1000 + i % 97) over 2,400 accounts is 2,514,372
        // USDT (the positions' costs cancel); now 25.5 more in balances and 0.1 BTC less at 60000 of cost.
        'conservation asset USDT ledger "2514372"→"2520397.5"',
        'conservation symbol BTCUSDT openInterest "0"→"-0.1"',
      ].sort(),
    );
  });

  it('refuses a query out of snapshot order, a float column, a missing column: exit 2, one line naming the query', async () => {
    const cases: [Partial<Record<RecordType, string>>, RegExp][] = [
      [
        { ...QUERIES, order: (QUERIES.order as string).replace('ORDER BY id COLLATE "C"', 'ORDER BY id DESC') },
        /the order query returned id "ord-000047999" after "ord-000048000": rows must come in snapshot order \(ORDER BY id COLLATE "C"\)$/,
      ],
      [
        { ...QUERIES, order: (QUERIES.order as string).replace('price::text AS price', 'price::float8 AS price') },
        /the order query returns price as double precision: a binary float cannot hold money exactly; select it as numeric or text \(price::text\)$/,
      ],
      [
        { ...QUERIES, position: (QUERIES.position as string).replace(', margin_mode AS "marginMode"', '') },
        /the position query lacks the column marginMode \(alias each column to its snapshot field/,
      ],
      [{ account: QUERIES.account as string }, /the snapshot holds order records and the source map has no order query$/],
    ];
    for (const [queries, message] of cases) {
      writeFileSync(join(dir, 'bad-map.yaml'), mapYaml(queries));
      const r = await runCli(
        ['integrity', 'check', '--snapshot', pre, '--against', pg.url('exchange', RECON.user), '--source-map', join(dir, 'bad-map.yaml')],
        { env },
      );
      expect(r.exitCode, r.stderr).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n'), String(message)).toEqual([expect.stringMatching(message)]);
    }
  });

  it('a wrong password, an unreachable server, a statement timeout, a malformed map: exit 2, one line, the password never shown', async () => {
    const wrong = await check([], { PGPASSWORD: 'not-the-password-xyz' });
    expect(wrong.exitCode).toBe(2);
    expect(wrong.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(
        new RegExp(`^postgres://recon@127\\.0\\.0\\.1:${pg.port}/exchange: authentication failed \\(password authentication failed for user "recon"\\)`),
      ),
    ]);
    expect(wrong.stderr + wrong.stdout).not.toContain('not-the-password-xyz');

    const closed = await runCli(
      ['integrity', 'check', '--snapshot', pre, '--against', 'postgres://recon:hunter2-secret@127.0.0.1:1/exchange', '--source-map', map],
      { env },
    );
    expect(closed.exitCode).toBe(2);
    expect(closed.stderr.trim()).toBe('postgres://recon@127.0.0.1:1/exchange: cannot connect (ECONNREFUSED)');

    writeFileSync(
      join(dir, 'slow.yaml'),
      mapYaml({ ...QUERIES, account: `SELECT id, pg_sleep(0.01)::text AS balances FROM accounts ORDER BY id COLLATE "C"` }, 'statementTimeout: 300ms\n'),
    );
    const slow = await runCli(['integrity', 'check', '--snapshot', pre, '--against', pg.url('exchange', RECON.user), '--source-map', join(dir, 'slow.yaml')], {
      env,
    });
    expect(slow.exitCode).toBe(2);
    expect(slow.stderr.trim()).toMatch(/: the account query was cancelled by the statement timeout \(statementTimeout in the source map\)$/);

    writeFileSync(join(dir, 'typo.yaml'), 'apiVersion: recoverctl/v1\nkind: IntegritySource\nqueries:\n  orders: SELECT 1\n');
    const typo = await runCli(['integrity', 'check', '--snapshot', pre, '--against', pg.url('exchange', RECON.user), '--source-map', join(dir, 'typo.yaml')], {
      env,
    });
    expect(typo.exitCode).toBe(2);
    expect(typo.stderr.trim()).toMatch(/typo\.yaml:4:3: queries: Unrecognized key: "orders"$/);
  });

  it('takes the password from --password-file or ~/.pgpass', async () => {
    writeFileSync(join(dir, 'pw'), `${RECON.password}\n`);
    const fromFile = await check(['--password-file', join(dir, 'pw')], {});
    expect(fromFile.exitCode, fromFile.stderr).toBe(0);
    const home = join(dir, 'home');
    mkdirSync(home, { recursive: true });
    writeFileSync(join(home, '.pgpass'), `127.0.0.1:${pg.port}:exchange:${RECON.user}:${RECON.password}\n`, { mode: 0o600 });
    const fromPgpass = await check([], { HOME: home });
    expect(fromPgpass.exitCode, fromPgpass.stderr).toBe(0);
  });

  it('keeps memory flat over a million rows (server-side cursor): peak RSS about the same as for 50k', async () => {
    await pg.sql('CREATE DATABASE big');
    await pg.sql(SCHEMA.replace(/CREATE ROLE[^;]+;/, '') + seed(50_000), 'big');
    const bigPre = join(dir, 'big-pre.ndjson');
    await snapshotOf(pg, 'big', bigPre, dir);
    // Node prints its peak RSS (VmHWM) as it exits.
    const hook = join(dir, 'hwm.cjs');
    writeFileSync(
      hook,
      `process.on('exit', () => { const m = /VmHWM:\\s+(\\d+) kB/.exec(require('fs').readFileSync('/proc/self/status', 'utf8')); process.stderr.write('HWM ' + (m ? m[1] : 0) + '\\n'); });\n`,
    );
    const peak = async (snapshot: string, db: string): Promise<{ mb: number; records: number }> => {
      const r = await runCli(['integrity', 'check', '--snapshot', snapshot, '--against', pg.url(db, 'postgres'), '--source-map', map, '--json'], {
        env: { PGPASSWORD: pg.password, NODE_OPTIONS: `--require ${hook}` },
        timeoutMs: 180_000,
      });
      expect(r.exitCode, r.stderr).toBe(0);
      return { mb: Number(/HWM (\d+)/.exec(r.stderr)?.[1]) / 1024, records: (JSON.parse(r.stdout) as { post: { records: number } }).post.records };
    };
    const small = await peak(pre, 'exchange');
    const big = await peak(bigPre, 'big');
    expect(big.records).toBe(1_100_000);
    console.log(`peak RSS: ${small.mb.toFixed(0)} MB for ${small.records} rows, ${big.mb.toFixed(0)} MB for ${big.records} rows`);
    expect(big.mb).toBeLessThan(small.mb + 40);
    expect(big.mb).toBeLessThan(160);
    expect(readFileSync(bigPre).length).toBeGreaterThan(150_000_000);
  }, 300_000);
});
