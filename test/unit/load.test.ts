import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PlaybookError } from '../../src/errors.js';
import { loadPlaybook, parsePlaybook } from '../../src/playbook/load.js';
import { playbookJsonSchema } from '../../src/playbook/schema.js';
import { ROOT } from '../support/cli.js';

const BAD = join(ROOT, 'test/fixtures/bad-playbooks');

async function diagnosticsOf(file: string) {
  try {
    await loadPlaybook(file);
  } catch (e) {
    if (e instanceof PlaybookError) return e.diagnostics;
    throw e;
  }
  throw new Error(`${file} loaded without error`);
}

const good = (steps: string, extra = '') => `apiVersion: recoverctl/v1
kind: Playbook
metadata:
  name: good
${extra}steps:
${steps}`;

describe('playbook loader', () => {
  const files = readdirSync(BAD).filter((f) => f.endsWith('.yaml'));

  it('has at least 25 broken playbooks to refuse', () => {
    expect(files.length).toBeGreaterThanOrEqual(25);
  });

  it.each(files)('refuses %s with file:line:col diagnostics', async (name) => {
    const file = join(BAD, name);
    const ds = await diagnosticsOf(file);
    expect(ds.length).toBeGreaterThan(0);
    for (const d of ds) {
      expect(d.file).toBe(file);
      expect(d.line).toBeGreaterThanOrEqual(1);
      expect(d.col).toBeGreaterThanOrEqual(1);
      expect(d.message).not.toMatch(/\n/);
    }
  });

  it('points at the exact key or value at fault', async () => {
    const at = async (name: string) => (await diagnosticsOf(join(BAD, name))).map((d) => `${d.line}:${d.col} ${d.message}`);
    expect(await at('unknown-step-key.yaml')).toEqual(["8:5 unknown key 'timout' in steps[0]"]);
    expect(await at('duplicate-step-id.yaml')).toEqual(["9:9 duplicate step id 'a' (first used at line 6)"]);
    expect((await at('expr-unknown-var.yaml'))[0]).toMatch(/^12:17 .*unknown var 'lgo'/);
    expect((await at('expr-syntax-error.yaml'))[0]).toMatch(/^11:29 /);
    expect((await at('bad-duration.yaml'))[0]).toMatch(/^8:14 steps\[0\]\.timeout: expected a duration/);
    expect((await at('unknown-step-kind.yaml'))[0]).toMatch(/unknown step kind 'hotfix.teleport'/);
  });

  it('reports several problems at once', () => {
    const text = good(`  - id: a
    uses: wait
    bogus: 1
    with: { duration: soon }
  - id: a
    uses: wait
    with: { duration: 1s }
`);
    try {
      parsePlaybook(Buffer.from(text), 'p.yaml', '/tmp/p.yaml');
      expect.unreachable();
    } catch (e) {
      const lines = (e as PlaybookError).lines();
      expect(lines).toEqual([
        "p.yaml:8:5: unknown key 'bogus' in steps[0]",
        'p.yaml:9:23: steps[0].with.duration: expected a duration like 500ms, 30s, 2m or 1h (or a ${{ }} expression)',
      ]);
    }
  });

  it('refuses a rollback id that collides with the default id of an unnamed rollback step', () => {
    const text = good(`  - id: a
    uses: wait
    with: { duration: 1ms }
rollback:
  - uses: wait
    with: { duration: 1ms }
  - id: rollback-1
    uses: wait
    with: { duration: 1ms }
`);
    expect(() => parsePlaybook(Buffer.from(text), 'p.yaml', '/tmp/p.yaml')).toThrow(/p\.yaml:12:9: duplicate step id 'rollback-1'/);
  });

  it('loads a valid playbook into runtime steps', () => {
    const pb = parsePlaybook(
      Buffer.from(
        good(
          `  - id: a
    uses: exec
    timeout: 2m
    retries: 2
    with: { command: [echo, hi] }
  - id: b
    uses: wait
    if: \${{ steps.a.outcome == 'success' }}
    with:
      duration: \${{ vars.pause }}
rollback:
  - uses: notify
    with: { channel: stdout, message: undone }
`,
          'vars:\n  pause: 1s\n',
        ),
      ),
      'p.yaml',
      '/tmp/p.yaml',
    );
    expect(pb.steps.map((s) => [s.id, s.uses, s.timeoutMs, s.retries])).toEqual([
      ['a', 'exec', 120_000, 2],
      ['b', 'wait', undefined, 0],
    ]);
    expect(pb.steps[1]?.condition).toMatchObject({ type: 'binary' });
    expect(pb.rollback[0]?.id).toBe('rollback-1');
    expect(pb.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('accepts every bundled playbook', async () => {
    for (const f of readdirSync(join(ROOT, 'playbooks')).filter((f) => f.endsWith('.yaml'))) {
      await expect(loadPlaybook(join(ROOT, 'playbooks', f))).resolves.toBeDefined();
    }
  });

  it('keeps docs/playbook-reference.md in step with the zod schemas', async () => {
    const { renderReference } = await import('../../src/playbook/reference.js');
    const checkedIn = readFileSync(join(ROOT, 'docs/playbook-reference.md'), 'utf8');
    expect(checkedIn, 'run: npm run docs').toBe(renderReference());
    for (const kind of ['exec', 'traffic.shift', 'hotfix.deploy', 'integrity.check', 'report.incident']) expect(checkedIn).toContain(`### \`${kind}\``);
  });

  it('keeps docs/playbook.schema.json in step with the zod schema', () => {
    const checkedIn = JSON.parse(readFileSync(join(ROOT, 'docs/playbook.schema.json'), 'utf8')) as unknown;
    expect(checkedIn, 'run: node bin/recoverctl.js schema > docs/playbook.schema.json').toEqual(playbookJsonSchema());
  });
});
