import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatDiagnostic, PlaybookError } from '../../src/errors.js';
import { loadPlaybook } from '../../src/playbook/load.js';
import { ROOT } from '../support/cli.js';

/**
 * Every broken playbook in test/fixtures/bad-playbooks has a `<name>.expected` golden: the exact
 * `file:line:col: message` lines that `recoverctl validate <fixture>` prints on stderr (without the
 * closing `1 of 1 playbook invalid`). The library is checked here, so this stays in the fast unit project;
 * `UPDATE_GOLDEN=1` rewrites the goldens from the current loader, to be reviewed in the diff.
 */
const DIR = 'test/fixtures/bad-playbooks';
const update = process.env.UPDATE_GOLDEN === '1';

async function diagnosticLines(file: string): Promise<string[]> {
  try {
    await loadPlaybook(file);
  } catch (e) {
    if (e instanceof PlaybookError) return e.diagnostics.map(formatDiagnostic);
    throw e;
  }
  throw new Error(`${file} loaded without error: a bad-playbook fixture must be refused`);
}

describe('bad-playbook goldens', () => {
  const entries = readdirSync(join(ROOT, DIR));
  const fixtures = entries.filter((f) => f.endsWith('.yaml'));

  it('runs from the repository root, where the paths in the goldens are relative to', () => {
    expect(relative(ROOT, process.cwd()), 'run vitest from the repository root').toBe('');
  });

  it('has no golden without its fixture', () => {
    const orphans = entries.filter((f) => f.endsWith('.expected') && !fixtures.includes(f.replace(/\.expected$/, '.yaml')));
    expect(orphans).toEqual([]);
  });

  it.each(fixtures)('%s: the loader reports exactly the diagnostics of its golden', async (name) => {
    // The same relative path the binary is given, so the lines match its stderr byte for byte.
    const file = `${DIR}/${name}`;
    const golden = join(ROOT, DIR, name.replace(/\.yaml$/, '.expected'));
    const actual = await diagnosticLines(file);
    if (update) writeFileSync(golden, `${actual.join('\n')}\n`);
    if (!existsSync(golden)) {
      expect.fail(
        `no golden ${relative(ROOT, golden)}: create it with \`UPDATE_GOLDEN=1 npx vitest run --project unit ` +
          `test/unit/bad-playbooks-golden.test.ts\`, then check it against \`node bin/recoverctl.js validate ${file}\``,
      );
    }
    const expected = readFileSync(golden, 'utf8').replace(/\n$/, '').split('\n');
    expect(actual).toEqual(expected);
  });
});
