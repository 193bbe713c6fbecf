import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, runCli, tempDir } from '../support/cli.js';

/** Issue 10: every output contract of docs/cli.md, through the real binary. */

const ENGINE_PLAYBOOK = (name: string, expect: string) => `apiVersion: recoverctl/v1
kind: Playbook
metadata:
  name: ${name}
engine:
  dataDir: ../var/engine
rehearsal:
  expectOutcome: ${expect}
steps:
  - id: attach
    name: Attach to the halted engine
    uses: engine.start
`;

const INVALID_A = `apiVersion: recoverctl/v1
kind: Playbook
metadata:
  name: broken-a
steps:
  - id: one
    uses: exec
    wiht: { command: [true] }
`;

const INVALID_B = `apiVersion: recoverctl/v1
kind: Playbook
metadata:
  name: broken-b
steps:
  - id: one
    uses: hotfix.teleport
`;

function jsonLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('rehearse --all: invalid playbooks, mismatches, and one verdict for exit code, table, JUnit and annotations', () => {
  it('reports every invalid file, still rehearses the valid ones, and exits 2', async () => {
    const dir = tempDir();
    const pbs = join(dir, 'pbs');
    mkdirSync(pbs);
    writeFileSync(join(pbs, 'a-invalid.yaml'), INVALID_A);
    writeFileSync(join(pbs, 'b-wrong-expectation.yaml'), ENGINE_PLAYBOOK('b-wrong-expectation', 'failed'));
    writeFileSync(join(pbs, 'c-invalid.yaml'), INVALID_B);
    writeFileSync(join(pbs, 'd-fine.yaml'), ENGINE_PLAYBOOK('d-fine', 'success'));
    const r = await runCli(['rehearse', '--all', 'pbs', '--accounts', '4', '--json', '--junit', 'out.xml', '--state-dir', 'state'], {
      cwd: dir,
      timeoutMs: 120_000,
      env: { GITHUB_ACTIONS: 'true' },
    });
    expect(r.exitCode, r.stderr.slice(-2000)).toBe(2);
    // Every invalid file reported, each problem at file:line:col.
    expect(r.stderr).toMatch(/^pbs\/a-invalid\.yaml:8:5: unknown key 'wiht'/m);
    expect(r.stderr).toMatch(/^pbs\/c-invalid\.yaml:7:11: steps\[0\]\.uses: unknown step kind 'hotfix\.teleport'/m);
    // Both valid ones rehearsed, after the invalid ones were found.
    const summary = jsonLines(r.stdout).at(-1) as { event: string; exitCode: number; results: { file: string; outcome: string; ok: boolean }[] };
    expect(summary).toMatchObject({ event: 'rehearse-summary', ok: false, exitCode: 2 });
    expect(summary.results.map((x) => [x.file, x.outcome, x.ok])).toEqual([
      ['pbs/a-invalid.yaml', 'invalid', false],
      ['pbs/c-invalid.yaml', 'invalid', false],
      ['pbs/b-wrong-expectation.yaml', 'success', false],
      ['pbs/d-fine.yaml', 'success', true],
    ]);
    // The table (stderr under --json) has all four; the JUnit file fails the same three.
    for (const f of ['a-invalid', 'b-wrong-expectation', 'c-invalid', 'd-fine']) expect(r.stderr).toContain(`pbs/${f}.yaml`);
    expect(r.stderr).toMatch(/pbs\/b-wrong-expectation\.yaml\s+failed\s+success\s+[\d.]+s\s+in-place\s+\S+\s+\S+\s+FAILED: expected failed, got success/);
    const xml = readFileSync(join(dir, 'out.xml'), 'utf8');
    expect(xml).toMatch(/<testsuites name="recoverctl" tests="\d+" failures="3"/);
    expect(xml).toMatch(/<testsuite name="pbs\/a-invalid\.yaml" tests="1" failures="1"/);
    expect(xml).toMatch(
      /<testcase classname="b-wrong-expectation\.rehearsal" name="ends failed \(rehearsal\.expectOutcome\)"[^>]*>\s*<failure message="expected failed, got success"/,
    );
    expect(xml).toMatch(/<testcase classname="d-fine" name="attach: Attach to the halted engine"/);
    // Annotations: the invalid files and the mismatch, on stderr; stdout is NDJSON only.
    expect(r.stdout).not.toContain('::');
    expect(r.stderr).toMatch(/^::error file=pbs\/a-invalid\.yaml,line=8,col=5::/m);
    expect(r.stderr).toMatch(
      /^::error file=pbs\/b-wrong-expectation\.yaml,line=\d+,col=\d+,title=rehearsal of b-wrong-expectation::expected failed, got success/m,
    );
    expect(r.stderr).not.toMatch(/::error file=pbs\/d-fine\.yaml/);
  });

  it('a mismatch alone exits 1, and the exit code, table, JUnit and annotations agree', async () => {
    const dir = tempDir();
    const pbs = join(dir, 'pbs');
    mkdirSync(pbs);
    writeFileSync(join(pbs, 'b-wrong-expectation.yaml'), ENGINE_PLAYBOOK('b-wrong-expectation', 'failed'));
    const r = await runCli(['rehearse', '--all', 'pbs', '--accounts', '4', '--junit', 'out.xml', '--state-dir', 'state'], {
      cwd: dir,
      timeoutMs: 120_000,
      env: { GITHUB_ACTIONS: 'true' },
    });
    expect(r.exitCode, r.stderr.slice(-2000)).toBe(1);
    expect(r.stdout).toMatch(/pbs\/b-wrong-expectation\.yaml\s+failed\s+success\s+[\d.]+s\s+in-place\s+\S+\s+\S+\s+FAILED: expected failed, got success/);
    expect(readFileSync(join(dir, 'out.xml'), 'utf8')).toMatch(/<testsuites name="recoverctl" tests="\d+" failures="1"/);
    expect(r.stderr.match(/^::error /gm)).toHaveLength(1);
  });

  it('validate DIR takes a folder as rehearse --all does, and reports every invalid file', async () => {
    const dir = tempDir();
    const pbs = join(dir, 'pbs');
    mkdirSync(pbs);
    writeFileSync(join(pbs, 'a-invalid.yaml'), INVALID_A);
    writeFileSync(join(pbs, 'c-invalid.yaml'), INVALID_B);
    writeFileSync(join(pbs, 'd-fine.yaml'), ENGINE_PLAYBOOK('d-fine', 'success'));
    const r = await runCli(['validate', 'pbs'], { cwd: dir });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/^pbs\/a-invalid\.yaml:8:5: /m);
    expect(r.stderr).toMatch(/^pbs\/c-invalid\.yaml:7:11: /m);
    expect(r.stdout).toContain('pbs/d-fine.yaml: ok');
    const ok = await runCli(['validate', 'playbooks/']);
    expect(ok.exitCode).toBe(0);
    expect(ok.stdout.trim().split('\n')).toHaveLength(readdirSync(join(ROOT, 'playbooks')).filter((f) => f.endsWith('.yaml')).length);
  });
});

describe('stdout under --json is NDJSON and nothing else', () => {
  it('validate --json and run --json under GitHub Actions: annotations on stderr only', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'bad.yaml'), INVALID_B);
    const v = await runCli(['validate', 'bad.yaml', '--json'], { cwd: dir, env: { GITHUB_ACTIONS: 'true' } });
    expect(v.exitCode).toBe(2);
    expect(jsonLines(v.stdout)).toHaveLength(1);
    expect(v.stderr).toMatch(/^::error file=bad\.yaml,line=7,col=11::/m);
    writeFileSync(
      join(dir, 'fails.yaml'),
      `apiVersion: recoverctl/v1\nkind: Playbook\nmetadata:\n  name: fails\nsteps:\n  - id: broken\n    name: Break on purpose\n    uses: exec\n    with: { command: [node, -e, "process.exit(3)"] }\n`,
    );
    const r = await runCli(['run', 'fails.yaml', '--json'], { cwd: dir, env: { GITHUB_ACTIONS: 'true' } });
    expect(r.exitCode).toBe(1);
    const events = jsonLines(r.stdout);
    expect(events.at(-1)).toMatchObject({ event: 'run-end', outcome: 'failed' });
    expect(r.stderr).toMatch(/^::error file=fails\.yaml,line=6,col=5,title=step broken failed::command exited with code 3/m);
    // Under --json the end-of-run lines (next step) are for people: stderr.
    expect(r.stderr).toMatch(/^next: inspect with: recoverctl runs show \S+$/m);
  });
});

/** A copy of the bundled incident playbook, with its engine data dir in the test's temp dir. */
function incidentCopy(dir: string): string {
  cpSync(join(ROOT, 'playbooks'), join(dir, 'playbooks'), { recursive: true });
  return join(dir, 'playbooks', 'um-excess-queue-depth.yaml');
}

describe('preflight: run checks what it will need before its first step', () => {
  it('a --var file that does not exist and a gate that cannot be answered: exit 2, every problem listed, no side effect', async () => {
    const dir = tempDir();
    incidentCopy(dir);
    const r = await runCli(['run', 'playbooks/um-excess-queue-depth.yaml', '--var', 'preOutageSnapshot=missing/pre.ndjson'], { cwd: dir });
    expect(r.exitCode).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toEqual([
      expect.stringMatching(/^playbooks\/um-excess-queue-depth\.yaml:35:19: step verify-snapshot: path playbooks\/missing\/pre\.ndjson: no such file$/),
      expect.stringMatching(/^playbooks\/um-excess-queue-depth\.yaml:72:11: step approve: gate\.approve needs an answer/),
      'preflight: 2 problems; nothing was done',
    ]);
    // Nothing at all: no state dir, no engine data dir (so no engine was started), no lock.
    expect(existsSync(join(dir, '.recoverctl'))).toBe(false);
    expect(existsSync(join(dir, 'var'))).toBe(false);
  });

  it('plan shows the same checks, and every var without a value', async () => {
    const dir = tempDir();
    incidentCopy(dir);
    const r = await runCli(['plan', 'playbooks/um-excess-queue-depth.yaml'], { cwd: dir });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/preflight \(what run checks before its first step\): 2 problems/);
    expect(r.stdout).toMatch(/✗ vars\s+vars\.preOutageSnapshot has no value: pass --var preOutageSnapshot=VALUE/);
    expect(r.stdout).toMatch(/✗ approval\s+step approve: gate\.approve needs an answer/);
    expect(r.stdout).toMatch(/✓ file\s+playbooks\/hotfixes\/margin-1\.4\.3\.mjs readable/);
    expect(r.stdout).toMatch(/✓ engine\s+not running on var\/engine; a step starts it/);
    // Step names in the plan.
    expect(r.stdout).toMatch(/smoke\s+smoke\.testnet\s+Prove the hotfix on a testnet — start a testnet engine/);
    // Relative paths in with: resolve against the playbook's folder, --var values included.
    const yes = await runCli(
      ['plan', 'playbooks/um-excess-queue-depth.yaml', '--yes', '--var', `preOutageSnapshot=${join(dir, 'playbooks/hotfixes/SHA256SUMS')}`, '--json'],
      { cwd: dir },
    );
    const plan = jsonLines(yes.stdout)[0] as { preflight: { check: string; ok: boolean }[] };
    expect(plan.preflight.filter((k) => !k.ok)).toEqual([]);
    expect(existsSync(join(dir, '.recoverctl'))).toBe(false);
  });

  it('a running engine that no step starts must be reachable; a held lock is named', async () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'p.yaml'),
      `apiVersion: recoverctl/v1\nkind: Playbook\nmetadata:\n  name: needs-engine\nengine:\n  dataDir: eng\nsteps:\n  - id: halt\n    uses: engine.halt\n  - id: cmd\n    uses: exec\n    with: { command: [no-such-command-xyz] }\n`,
    );
    mkdirSync(join(dir, 'eng'));
    writeFileSync(
      join(dir, 'eng', 'recoverctl.lock'),
      JSON.stringify({ pid: process.pid, runId: 'other-run', host: (await import('node:os')).hostname(), since: 'now' }),
    );
    const r = await runCli(['run', 'p.yaml'], { cwd: dir });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/^p\.yaml:6:12: no engine is running on eng and no step starts one/m);
    expect(r.stderr).toMatch(/^p\.yaml:12:\d+: step cmd: command no-such-command-xyz not found on PATH$/m);
    expect(r.stderr).toMatch(/locked by run other-run \(pid \d+/);
    expect(r.stderr).toMatch(/^preflight: 3 problems; nothing was done$/m);
  });
});

describe('preflight: an engine named by URL', () => {
  it('cannot be started or patched from here, and its token file must be readable', async () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'p.yaml'),
      `apiVersion: recoverctl/v1\nkind: Playbook\nmetadata:\n  name: remote\nengine:\n  url: http://127.0.0.1:9\n  tokenFile: missing.token\nsteps:\n  - id: attach\n    uses: engine.start\n`,
    );
    const r = await runCli(['run', 'p.yaml'], { cwd: dir });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/^p\.yaml:10:11: step attach: engine\.start needs engine\.dataDir \(a local engine\); this playbook names engine\.url$/m);
    expect(r.stderr).toMatch(/^p\.yaml:7:14: engine\.tokenFile missing\.token: no such file$/m);
    expect(r.stderr).toMatch(/^preflight: 2 problems; nothing was done$/m);
  });
});

describe('the end of a run says where the report is, what is still running, and what to do next', () => {
  it('names the report and the engine it left running; after a failure, how to inspect the run', async () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'p.yaml'),
      `apiVersion: recoverctl/v1\nkind: Playbook\nmetadata:\n  name: trailer\nengine:\n  dataDir: eng\nvars:\n  fail: "no"\nsteps:\n  - id: attach\n    uses: engine.start\n  - id: maybe-fail\n    uses: exec\n    with: { command: [node, -e, "process.exit('\${{ vars.fail }}' === 'yes' ? 4 : 0)"] }\n  - id: report\n    uses: report.incident\n    if: always()\n    with: { out: reports }\n`,
    );
    try {
      const ok = await runCli(['run', 'p.yaml', '--junit', 'j.xml'], { cwd: dir });
      expect(ok.exitCode, ok.stderr).toBe(0);
      expect(ok.stdout).toMatch(/^report: reports\/\S+\.html$/m);
      expect(ok.stdout).toMatch(
        /^engine: started by this run, still running on eng \(pid \d+ at http:\/\/127\.0\.0\.1:\d+\); stop it with: recoverctl engine stop --data-dir eng$/m,
      );
      expect(ok.stdout).not.toMatch(/^next:/m);
      const again = await runCli(['run', 'p.yaml', '--var', 'fail=yes'], { cwd: dir });
      expect(again.exitCode).toBe(1);
      expect(again.stdout).toMatch(/^engine: still running on eng/m);
      const runId = /run (\S+) \(trailer\): failed/.exec(again.stdout)?.[1];
      expect(again.stdout).toContain(`next: inspect with: recoverctl runs show ${runId}`);
    } finally {
      await runCli(['engine', 'stop', '--data-dir', 'eng'], { cwd: dir });
    }
  });
});

describe('preflight is exact, and keeps secrets', () => {
  it('checks a literal path only when no earlier exec step could make it; never prints a secret', async () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'p.yaml'),
      `apiVersion: recoverctl/v1
kind: Playbook
metadata:
  name: makes-its-tool
vars:
  tool: { value: sekrit-tool-name-123, secret: true }
steps:
  - id: build
    uses: exec
    with: { command: [node, -e, "require('fs').mkdirSync('out'); require('fs').writeFileSync('out/tool.sh', '#!/bin/sh\\\\necho built'); require('fs').chmodSync('out/tool.sh', 0o755)"] }
  - id: use
    uses: exec
    with: { command: [./tool.sh], cwd: out }
  - id: secret
    uses: exec
    with: { command: ["\${{ vars.tool }}"] }
`,
    );
    const r = await runCli(['run', 'p.yaml', '--json'], { cwd: dir });
    expect(r.exitCode).toBe(2);
    // The tool the first step makes is not a problem; the secret command is, and is never shown.
    expect(r.stderr).toMatch(/^p\.yaml:\d+:\d+: step secret: command \*\*\* not found on PATH$/m);
    expect(r.stderr).toMatch(/^preflight: 1 problem; nothing was done$/m);
    expect(r.stdout + r.stderr).not.toContain('sekrit-tool-name-123');
    expect(jsonLines(r.stdout)).toEqual([expect.objectContaining({ event: 'preflight', ok: false })]);
    expect(existsSync(join(dir, 'out'))).toBe(false);
  });

  it('rehearse --json ends with its summary also when preflight refuses it', async () => {
    const dir = tempDir();
    const r = await runCli(['rehearse', join(ROOT, 'playbooks/um-excess-queue-depth.yaml'), '--no-auto-approve', '--json', '--state-dir', join(dir, 's')], {
      cwd: dir,
    });
    expect(r.exitCode).toBe(2);
    expect(jsonLines(r.stdout)).toEqual([
      expect.objectContaining({ event: 'rehearse-summary', ok: false, exitCode: 2, results: [expect.objectContaining({ outcome: 'error', ok: false })] }),
    ]);
  });
});

describe('if: that cannot be evaluated', () => {
  it('fails the step (and the run rolls back) rather than skipping it', async () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'p.yaml'),
      `apiVersion: recoverctl/v1
kind: Playbook
metadata:
  name: bad-json
steps:
  - id: probe
    uses: exec
    with: { command: [node, -e, "console.log('not json')"] }
  - id: guarded
    uses: exec
    if: \${{ fromJSON(steps.probe.outputs.stdout).ready }}
    with: { command: [node, -e, "0"] }
rollback:
  - id: undo
    uses: exec
    with: { command: [node, -e, "0"] }
`,
    );
    const r = await runCli(['run', 'p.yaml'], { cwd: dir });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/✗ guarded .*p\.yaml:11:9: if: .*JSON/);
    expect(r.stderr).toMatch(/✓ undo/);
  });
});

describe('integrity findings name files as they were typed', () => {
  it('relative paths stay relative in the human report and in --json, for both sides and for a corrupt file', async () => {
    const { writeCorpus, breakSnapshot } = (await import('../support/snapshot-corpus.mjs')) as {
      writeCorpus: (o: { pre: string; post: string; records: number; seed: number; discrepancies: Record<string, number> }) => void;
      breakSnapshot: (src: string, dest: string, how: string) => void;
    };
    const dir = tempDir();
    mkdirSync(join(dir, 'snaps'));
    writeCorpus({
      pre: join(dir, 'snaps/pre.ndjson'),
      post: join(dir, 'snaps/post.ndjson'),
      records: 800,
      seed: 3,
      discrepancies: { missing: 1, unexpected: 1, mismatch: 1 },
    });
    const r = await runCli(['integrity', 'check', '--snapshot', 'snaps/pre.ndjson', '--against', './snaps/post.ndjson', '--json'], { cwd: dir });
    expect(r.exitCode).toBe(1);
    const report = JSON.parse(r.stdout) as { pre: { file: string }; post: { file: string }; findings: { category: string; file?: string }[] };
    expect(report.pre.file).toBe('snaps/pre.ndjson');
    expect(report.post.file).toBe('./snaps/post.ndjson');
    expect(new Set(report.findings.map((f) => `${f.category}:${f.file ?? ''}`))).toEqual(
      new Set(['missing:snaps/pre.ndjson', 'unexpected:./snaps/post.ndjson', 'mismatch:./snaps/post.ndjson']),
    );
    expect(r.stdout).not.toContain(dir);
    const human = await runCli(['integrity', 'check', '--snapshot', 'snaps/pre.ndjson', '--against', './snaps/post.ndjson'], { cwd: dir });
    expect(human.stdout).toMatch(/missing \S+ \S+ \(snaps\/pre\.ndjson:\d+\)/);
    expect(human.stdout + human.stderr).not.toContain(dir);
    breakSnapshot(join(dir, 'snaps/post.ndjson'), join(dir, 'snaps/torn.ndjson'), 'truncated');
    const torn = await runCli(['integrity', 'check', '--snapshot', 'snaps/pre.ndjson', '--against', 'snaps/torn.ndjson'], { cwd: dir });
    expect(torn.exitCode).toBe(2);
    expect(torn.stderr).toMatch(/^snaps\/torn\.ndjson:\d+: truncated/m);
    expect(torn.stdout + torn.stderr).not.toContain(dir);
  });
});
