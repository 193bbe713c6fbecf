import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import { ROOT, runCli } from '../support/cli.js';

/** The rows of the table under `## Exit codes` in docs/cli.md: code and name. */
function documentedExitCodes(): { code: number; name: string }[] {
  const doc = readFileSync(join(ROOT, 'docs/cli.md'), 'utf8');
  const section = doc.split(/^## Exit codes$/m)[1]?.split(/^## /m)[0] ?? '';
  return section
    .split('\n')
    .map((l) => /^\| (\d+) \| `(\w+)` \|/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ code: Number(m[1]), name: m[2] as string }));
}

describe('docs/cli.md', () => {
  it('its exit-code table is the code: every ExitCode, with its name, and nothing else', () => {
    const rows = documentedExitCodes();
    expect(rows.map((r) => [r.name, r.code]).sort()).toEqual(Object.entries(ExitCode).sort());
  });

  it('recoverctl --help names the same exit codes', async () => {
    const r = await runCli(['--help']);
    const line = r.stdout.slice(r.stdout.indexOf('Exit codes:'));
    for (const code of Object.values(ExitCode)) expect(line).toMatch(new RegExp(`\\b${code} `));
  });
});
