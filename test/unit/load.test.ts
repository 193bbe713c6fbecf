import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PlaybookError, UsageError } from '../../src/errors.js';
import { loadPlaybook, parsePlaybook } from '../../src/playbook/load.js';
import { playbookJsonSchema } from '../../src/playbook/schema.js';
import { buildRedactor, resolveVars } from '../../src/runner/scope.js';
import { ROOT, tempDir } from '../support/cli.js';

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
    expect(await at('unknown-step-key.yaml')).toEqual(["8:5 unknown key 'timout' in steps[0] (did you mean 'timeout'?)"]);
    expect(await at('duplicate-step-id.yaml')).toEqual(["9:9 duplicate step id 'a' (first used at line 6)"]);
    expect((await at('expr-unknown-var.yaml'))[0]).toMatch(/^12:17 .*unknown var 'lgo'/);
    expect((await at('expr-syntax-error.yaml'))[0]).toMatch(/^11:29 /);
    expect((await at('bad-duration.yaml'))[0]).toMatch(/^8:14 steps\[0\]\.timeout: expected a duration/);
    expect((await at('unknown-step-kind.yaml'))[0]).toMatch(/unknown step kind 'hotfix.teleport'; known kinds: exec, /);
    expect(await at('expr-comparison-syntax.yaml')).toEqual(["12:39 steps[1].if: unexpected '>'"]);
    expect(await at('expr-function-arity.yaml')).toEqual(['11:13 steps[1].if: contains() takes 2 arguments (search, item), not 1']);
    expect(await at('expr-status-in-with.yaml')).toEqual(['10:25 steps[0].with.message: success() can only be used in if:']);
    expect(await at('var-value-and-file.yaml')).toEqual(['8:11 vars.apiToken.file: give value or file, not both']);
  });

  it('suggests what a misspelt key, step kind, step id or var was meant to be', async () => {
    const at = async (name: string) => (await diagnosticsOf(join(BAD, name))).map((d) => `${d.line}:${d.col} ${d.message}`);
    // Reported once: not also as a missing `with`.
    expect(await at('unknown-key-typo.yaml')).toEqual(["8:5 unknown key 'wiht' in steps[0] (did you mean 'with'?)"]);
    expect((await at('unknown-step-kind-typo.yaml'))[0]).toMatch(/^7:11 steps\[0\]\.uses: unknown step kind 'exce' \(did you mean 'exec'\?\); known kinds: /);
    expect(await at('expr-step-typo.yaml')).toEqual(["13:30 steps[1].with.message: unknown step 'deplyo' (did you mean 'deploy'?)"]);
    expect(await at('expr-unknown-var.yaml')).toEqual(["12:17 steps[0].with.path: unknown var 'lgo' (did you mean 'log'?)"]);
    expect(await at('expr-unknown-step.yaml')).toEqual(["8:13 steps[0].if: unknown step 'deploy'"]);
    const lines = (text: string) => {
      try {
        parsePlaybook(Buffer.from(text), 'p.yaml', '/tmp/p.yaml');
      } catch (e) {
        if (e instanceof PlaybookError) return e.lines();
        throw e;
      }
      return [];
    };
    // Keys of a step's with: block are those of its kind (and of the variant a discriminator picks).
    expect(
      lines(
        good(
          `  - id: a
    uses: wait
    with: { duraton: 1s }
  - id: b
    uses: notify
    with: { channel: file, path: x.log, mesage: hi }
`,
          'vars:\n  token: { valeu: x, secret: true }\n',
        ),
      ),
    ).toEqual([
      "p.yaml:6:12: unknown key 'valeu' in vars.token (did you mean 'value'?)",
      "p.yaml:10:13: unknown key 'duraton' in steps[0].with (did you mean 'duration'?)",
      "p.yaml:13:41: unknown key 'mesage' in steps[1].with (did you mean 'message'?)",
    ]);
    expect(lines(good(`  - id: a\n    uses: wait\n    with: { duration: 1s }\n    contineOnError: true\n`))).toEqual([
      "p.yaml:9:5: unknown key 'contineOnError' in steps[0] (did you mean 'continueOnError'?)",
    ]);
  });

  it('accepts the comparison operators and functions in if: and with:', () => {
    const pb = parsePlaybook(
      Buffer.from(
        good(`  - id: a
    uses: exec
    continueOnError: true
    with: { command: [node, -e, "process.exit(5)"] }
  - id: b
    uses: notify
    if: \${{ steps.a.outputs.exitCode >= 3 && !contains(steps.a.outputs.stderr, 'fatal') }}
    with: { channel: stdout, message: "code \${{ steps.a.outputs.exitCode > 3 }} \${{ fromJSON('[1]')[0] }}" }
`),
      ),
      'p.yaml',
      '/tmp/p.yaml',
    );
    expect(pb.steps[1]?.condition).toMatchObject({ type: 'binary', op: '&&', left: { op: '>=' } });
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

  describe('vars from files', () => {
    const withFile = (vars: string, steps = '  - id: a\n    uses: wait\n    with: { duration: 1ms }\n') => {
      const dir = tempDir();
      mkdirSync(join(dir, 'tokens'));
      const path = join(dir, 'p.yaml');
      writeFileSync(path, good(steps, `vars:\n${vars}`));
      return { dir, pb: parsePlaybook(readFileSync(path), 'p.yaml', path) };
    };

    it('reads the file relative to the playbook, less one trailing newline, and redacts it when secret', () => {
      const { dir, pb } = withFile('  apiToken: { file: tokens/api.txt, secret: true, description: deploy API }\n  motd: { file: motd.txt }\n');
      writeFileSync(join(dir, 'tokens', 'api.txt'), 's3cr3t-token\n');
      writeFileSync(join(dir, 'motd.txt'), 'two\nlines\n\n');
      const vars = resolveVars(pb, {}, {});
      expect(vars.values).toEqual({ apiToken: 's3cr3t-token', motd: 'two\nlines\n' });
      expect([...vars.secretNames]).toEqual(['apiToken']);
      expect(buildRedactor(pb, vars).text('Bearer s3cr3t-token')).toBe('Bearer ***');
      // --var still wins, and the file is then not read at all.
      expect(resolveVars(pb, { apiToken: 'given' }, {}).values.apiToken).toBe('given');
    });

    it('hides each line of a multi-line secret file too', () => {
      const { dir, pb } = withFile('  key: { file: key.pem, secret: true }\n');
      writeFileSync(join(dir, 'key.pem'), '-----BEGIN KEY-----\r\nAAAABBBBCCCC\r\nDDDDEEEE\r\n-----END KEY-----\r\n');
      const redactor = buildRedactor(pb, resolveVars(pb, {}, {}));
      expect(redactor.text('line 2 is DDDDEEEE')).toBe('line 2 is ***');
    });

    it('takes ${{ env.X }} in the file path', () => {
      const { dir, pb } = withFile('  token: { file: "${{ env.CREDS }}/api.txt", secret: true }\n');
      writeFileSync(join(dir, 'tokens', 'api.txt'), 'from-creds');
      expect(resolveVars(pb, {}, { CREDS: join(dir, 'tokens') }).values.token).toBe('from-creds');
      expect(() => resolveVars(pb, {}, {})).toThrow('p.yaml:6:18: vars.token.file: env.CREDS is not set');
    });

    it("refuses a run whose var file cannot be read, at the var's file: line and column", () => {
      const { pb } = withFile('  apiToken:\n    file: tokens/api.txt\n    secret: true\n');
      try {
        resolveVars(pb, {}, {});
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(PlaybookError);
        expect((e as PlaybookError).lines()).toEqual(['p.yaml:7:11: vars.apiToken.file: cannot read tokens/api.txt (no such file)']);
      }
      // A plan goes on without it, and says why.
      const planned = resolveVars(pb, {}, {}, { allowMissing: true });
      expect(planned.values.apiToken).toBeUndefined();
      expect(planned.missing?.get('apiToken')).toEqual({
        file: 'p.yaml',
        line: 7,
        col: 11,
        message: 'vars.apiToken.file: cannot read tokens/api.txt (no such file)',
      });
    });

    it('names the closest declared var when --var names an undeclared one', () => {
      const { pb } = withFile('  apiToken: { value: x }\n');
      expect(() => resolveVars(pb, { apiTokn: 'y' }, {})).toThrow(UsageError);
      expect(() => resolveVars(pb, { apiTokn: 'y' }, {})).toThrow("declares no var 'apiTokn' (did you mean 'apiToken'?)");
    });
  });
});
