import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ROOT } from '../support/cli.js';

const sums = readFileSync(join(ROOT, 'playbooks/hotfixes/SHA256SUMS'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => l.split(/\s+/) as [string, string]);

describe('user report file names', () => {
  it('are one-to-one: ids that differ give files that differ', async () => {
    const { fileNameOf } = await import('../../src/report/users.js');
    expect(fileNameOf('a:b')).not.toBe(fileNameOf('a_b'));
    expect(fileNameOf('a:b')).toBe('a%3Ab');
    expect(fileNameOf('../x')).toBe('%2E%2E%2Fx');
  });
});

describe('hotfix artifacts', () => {
  it.each(sums)('%s is the digest of %s', (digest, file) => {
    expect(
      createHash('sha256')
        .update(readFileSync(join(ROOT, 'playbooks/hotfixes', file)))
        .digest('hex'),
    ).toBe(digest);
  });

  it.each(sums.map(([, file]) => file))('%s is the compiled module of src/engine/modules', (file) => {
    const compiled = readFileSync(join(ROOT, 'dist/engine/modules', file.replace(/\.mjs$/, '.js')), 'utf8').replace(/\n\/\/# sourceMappingURL=.*\n?$/, '\n');
    expect(readFileSync(join(ROOT, 'playbooks/hotfixes', file), 'utf8')).toBe(compiled);
  });

  it.each(['um-excess-queue-depth.yaml', 'um-blue-green.yaml', 'bad-hotfix-drill.yaml'])('%s carries the digest of the artifact it deploys', (name) => {
    const spec = parse(readFileSync(join(ROOT, 'playbooks', name), 'utf8')) as { vars: { hotfix: string; hotfixSha256: string } };
    const file = spec.vars.hotfix.split('/').pop() as string;
    expect(sums.find(([, f]) => f === file)?.[0]).toBe(spec.vars.hotfixSha256);
  });
});
