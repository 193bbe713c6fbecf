import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { libpqPassword, loadSourceMap, redactUrl } from '../../src/integrity/postgres.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const dir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'pgsrc-'));
  dirs.push(d);
  return d;
};

describe('the password, as libpq finds it', () => {
  const url = 'postgres://recon@db.internal:6432/exchange';
  const pgpass = (text: string, mode = 0o600): string => {
    const f = join(dir(), 'pgpass');
    writeFileSync(f, text, { mode });
    return f;
  };

  it('takes PGPASSWORD first, then the first matching line of the pass file', () => {
    const f = pgpass('# comment\nother:6432:exchange:recon:no\ndb.internal:6432:exchange:recon:first\n*:*:*:*:second\n');
    expect(libpqPassword(url, { PGPASSWORD: 'env', PGPASSFILE: f })).toBe('env');
    expect(libpqPassword(url, { PGPASSFILE: f })).toBe('first');
    expect(libpqPassword('postgres://someone@elsewhere/db', { PGPASSFILE: f })).toBe('second');
  });

  it('reads escaped colons and backslashes, defaults the port to 5432 and the database to the user', () => {
    const f = pgpass('db.internal:5432:recon:recon:pa\\:ss\\\\word\n');
    expect(libpqPassword('postgres://recon@db.internal', { PGPASSFILE: f })).toBe('pa:ss\\word');
  });

  it('ignores a pass file others can read, as libpq does, and ~/.pgpass when no PGPASSFILE', () => {
    expect(libpqPassword(url, { PGPASSFILE: pgpass('*:*:*:*:open\n', 0o644) })).toBeUndefined();
    const home = dir();
    writeFileSync(join(home, '.pgpass'), '*:*:*:recon:from-home\n', { mode: 0o600 });
    expect(libpqPassword(url, { HOME: home })).toBe('from-home');
    expect(libpqPassword(url, {})).toBeUndefined();
  });
});

describe('a database URL in messages', () => {
  it('never shows its password', () => {
    expect(redactUrl('postgres://recon:hunter2@127.0.0.1:5432/exchange?sslmode=require')).toBe('postgres://recon@127.0.0.1:5432/exchange?sslmode=require');
    expect(redactUrl('not a url with hunter2')).toBe('postgres://…');
  });
});

describe('the source map', () => {
  const map = (text: string): string => {
    const f = join(dir(), 'map.yaml');
    writeFileSync(f, text);
    return f;
  };

  it('loads one with a query per type and an optional statement timeout', () => {
    const m = loadSourceMap(
      map('apiVersion: recoverctl/v1\nkind: IntegritySource\nstatementTimeout: 30s\nqueries:\n  order: SELECT id FROM orders ORDER BY id\n'),
    );
    expect(m).toEqual({
      apiVersion: 'recoverctl/v1',
      kind: 'IntegritySource',
      statementTimeout: '30s',
      queries: { order: 'SELECT id FROM orders ORDER BY id' },
    });
  });

  it('names the file, line and column of what is wrong', () => {
    const cases: [string, RegExp][] = [
      ['apiVersion: recoverctl/v1\nkind: Playbook\nqueries:\n  order: SELECT 1\n', /map\.yaml:2:7: kind: Invalid input: expected "IntegritySource"$/],
      ['apiVersion: recoverctl/v1\nkind: IntegritySource\nqueries: {}\n', /map\.yaml:3:10: queries: give at least one query$/],
      ['apiVersion: recoverctl/v1\nkind: IntegritySource\nqueries:\n  order: [unclosed\n', /map\.yaml:\d+:\d+: /],
      [
        'apiVersion: recoverctl/v1\nkind: IntegritySource\nstatementTimeout: soon\nqueries:\n  order: SELECT 1\n',
        /map\.yaml: statementTimeout: 'soon' is not a duration/,
      ],
    ];
    for (const [text, message] of cases) expect(() => loadSourceMap(map(text)), text).toThrow(message);
    expect(() => loadSourceMap(join(dir(), 'missing.yaml'))).toThrow(/--source-map .*missing\.yaml: cannot read \(ENOENT\)$/);
  });
});
