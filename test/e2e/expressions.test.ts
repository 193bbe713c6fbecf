import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hasStackTrace, onlyJournal, runCli, tempDir } from '../support/cli.js';

function playbook(dir: string, steps: string, extra = ''): string {
  const path = join(dir, 'p.yaml');
  writeFileSync(path, `apiVersion: recoverctl/v1\nkind: Playbook\nmetadata:\n  name: e2e\n${extra}steps:\n${steps}`);
  return path;
}

const marker = (text: string) => `[node, -e, "require('fs').appendFileSync('ran.txt', '${text}\\\\n')"]`;

describe('expressions in a real run', () => {
  it('runs and skips steps on comparisons of a failed step’s exit code and of text output', async () => {
    const dir = tempDir();
    const pb = playbook(
      dir,
      `  - id: probe
    uses: exec
    continueOnError: true
    with: { command: [node, -e, "process.exit(5)"] }
  - id: count
    uses: exec
    with: { command: [node, -e, "console.log(7)"] }
  - id: bad-exit
    uses: exec
    if: \${{ steps.probe.outputs.exitCode > 3 }}
    with: { command: ${marker('bad-exit')} }
  - id: mild-exit
    uses: exec
    if: \${{ steps.probe.outputs.exitCode <= 3 }}
    with: { command: ${marker('mild-exit')} }
  - id: many
    uses: exec
    if: \${{ steps.count.outputs.stdout >= 7 && contains(fromJSON('["a", "b"]'), 'b') && !startsWith(steps.count.outputs.stdout, '8') }}
    with: { command: ${marker('many')} }
  - id: few
    uses: exec
    if: \${{ steps.count.outputs.stdout < 7 || endsWith('DEPLOY', 'x') }}
    with: { command: ${marker('few')} }
  - id: report
    uses: exec
    with: { command: [node, -e, "require('fs').appendFileSync('ran.txt', process.argv[1] + '\\\\n')", "code=\${{ steps.probe.outputs.exitCode }} big=\${{ steps.probe.outputs.exitCode > 3 }} first=\${{ fromJSON('[\\"x\\"]')[0] }}"] }
`,
    );
    const r = await runCli(['run', pb, '--yes'], { cwd: dir });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readFileSync(join(dir, 'ran.txt'), 'utf8')).toBe('bad-exit\nmany\ncode=5 big=true first=x\n');
    const skipped = onlyJournal(dir)
      .events.filter((e) => e.event === 'skip')
      .map((e) => [e.step, e.reason]);
    expect(skipped).toEqual([
      ['mild-exit', 'condition'],
      ['few', 'condition'],
    ]);
  });

  it('fails a step cleanly when fromJSON() is given text that is not JSON', async () => {
    const dir = tempDir();
    const pb = playbook(
      dir,
      `  - id: say
    uses: exec
    with: { command: [node, -e, "console.log('not json')"] }
  - id: parse
    uses: exec
    with: { command: [node, -e, "", "\${{ fromJSON(steps.say.outputs.stdout).ok }}"] }
`,
    );
    const r = await runCli(['run', pb, '--yes'], { cwd: dir });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/p\.yaml:\d+:\d+: fromJSON\(\): /);
    expect(hasStackTrace(r.stdout + r.stderr)).toBe(false);
  });
});

describe('validate points at expression and spelling mistakes', () => {
  it('reports the column of a bad token in a comparison', async () => {
    const dir = tempDir();
    const pb = playbook(
      dir,
      `  - id: a
    uses: exec
    continueOnError: true
    with: { command: [node, -e, "process.exit(5)"] }
  - id: b
    uses: wait
    if: \${{ steps.a.outputs.exitCode >> 3 }}
    with: { duration: 1ms }
`,
    );
    const r = await runCli(['validate', 'p.yaml'], { cwd: dir });
    expect(r.exitCode).toBe(2);
    // Line 12, and the second '>' is column 39: `    if: ${{ steps.a.outputs.exitCode >> 3 }}`.
    expect(r.stderr.split('\n')[0]).toBe("p.yaml:12:39: steps[1].if: unexpected '>'");
    expect(hasStackTrace(r.stderr)).toBe(false);
  });

  it('suggests the key and the step kind that were meant', async () => {
    const dir = tempDir();
    playbook(
      dir,
      `  - id: a
    uses: exec
    wiht: { command: [node, --version] }
  - id: b
    uses: exce
    with: { command: [node, --version] }
`,
    );
    const r = await runCli(['validate', 'p.yaml'], { cwd: dir });
    expect(r.exitCode).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines[0]).toBe("p.yaml:8:5: unknown key 'wiht' in steps[0] (did you mean 'with'?)");
    expect(lines[1]).toMatch(/^p\.yaml:10:11: steps\[1\]\.uses: unknown step kind 'exce' \(did you mean 'exec'\?\); known kinds: exec, /);
  });

  it('suggests the step id and the var that were meant', async () => {
    const dir = tempDir();
    playbook(
      dir,
      `  - id: deploy
    uses: exec
    with: { command: [node, --version] }
  - id: tell
    uses: notify
    with: { channel: file, path: "\${{ vars.lgo }}", message: "deployed \${{ steps.deplyo.outputs.stdout }}" }
`,
      'vars:\n  log: out.log\n',
    );
    const r = await runCli(['validate', 'p.yaml'], { cwd: dir });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("p.yaml:13:39: steps[1].with.path: unknown var 'lgo' (did you mean 'log'?)");
    expect(r.stderr).toContain("p.yaml:13:76: steps[1].with.message: unknown step 'deplyo' (did you mean 'deploy'?)");
  });
});

describe('vars from files', () => {
  const TOKEN = 'tok-file-5e4d3c2b1a';

  it('redacts a secret read from a file from stdout, stderr and the journal', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'tokens'));
    writeFileSync(join(dir, 'tokens', 'api.txt'), `${TOKEN}\n`);
    const pb = playbook(
      dir,
      `  - id: use
    uses: exec
    with:
      command: [node, -e, "console.log('token=' + process.argv[1]); console.error('err ' + process.argv[1]); require('fs').writeFileSync('seen.txt', process.argv[1])", "\${{ vars.apiToken }}"]
  - id: say
    uses: notify
    with: { channel: stdout, message: "using \${{ vars.apiToken }}" }
`,
      'vars:\n  apiToken: { file: tokens/api.txt, secret: true, description: deploy API token }\n',
    );
    const r = await runCli(['run', pb, '--yes'], { cwd: dir });
    expect(r.exitCode, r.stderr).toBe(0);
    // The command got the file's text without its trailing newline.
    expect(readFileSync(join(dir, 'seen.txt'), 'utf8')).toBe(TOKEN);
    expect(r.stdout + r.stderr).not.toContain(TOKEN);
    expect(r.stdout).toContain('using ***');
    const { text } = onlyJournal(dir);
    expect(text).not.toContain(TOKEN);
    expect(text).toContain('token=***');
  });

  it('refuses to start when a var file cannot be read, naming the var, and nothing runs', async () => {
    const dir = tempDir();
    const pb = playbook(
      dir,
      `  - id: use
    uses: exec
    with: { command: ${marker('use')} }
`,
      'vars:\n  apiToken: { file: tokens/api.txt, secret: true }\n',
    );
    const r = await runCli(['run', pb, '--yes'], { cwd: dir });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/p\.yaml:6:\d+: vars\.apiToken/);
    expect(hasStackTrace(r.stderr)).toBe(false);
    expect(existsSync(join(dir, 'ran.txt'))).toBe(false);
    // --var still overrides the file.
    const given = await runCli(['run', pb, '--yes', '--var', 'apiToken=given-on-the-command-line'], { cwd: dir });
    expect(given.exitCode, given.stderr).toBe(0);
    expect(readFileSync(join(dir, 'ran.txt'), 'utf8')).toBe('use\n');
  });

  it('validate refuses value and file together at the file: key', async () => {
    const dir = tempDir();
    playbook(dir, '  - id: a\n    uses: wait\n    with: { duration: 1ms }\n', 'vars:\n  apiToken:\n    value: inline\n    file: tokens/api.txt\n');
    const r = await runCli(['validate', 'p.yaml'], { cwd: dir });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe('p.yaml:8:11: vars.apiToken.file: give value or file, not both');
  });
});
