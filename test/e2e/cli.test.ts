import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hasStackTrace, onlyJournal, ROOT, runCli, spawnCli, tempDir, waitFor } from '../support/cli.js';

const BAD = join(ROOT, 'test/fixtures/bad-playbooks');

function playbook(dir: string, steps: string, extra = '', name = 'p.yaml'): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    `apiVersion: recoverctl/v1
kind: Playbook
metadata:
  name: e2e
${extra}steps:
${steps}`,
  );
  return path;
}

/** A command killed with its CLI leaves an orphan; this makes it exit once its parent is gone. */
const ORPHAN_GUARD = 'const parent = process.ppid; setInterval(() => { if (process.ppid !== parent) process.exit(0); }, 100).unref();';

const marker = (file: string, text: string) => `[node, -e, "require('fs').appendFileSync('${file}', '${text}\\\\n')"]`;

describe('bad input', () => {
  const files = readdirSync(BAD).filter((f) => f.endsWith('.yaml'));
  it.each(files)('validate %s: exit 2, the diagnostics of its golden, no stack trace', async (name) => {
    // Not as a GitHub Actions step, whose annotation lines would come between the diagnostics.
    const r = await runCli(['validate', join('test/fixtures/bad-playbooks', name)], { env: { GITHUB_ACTIONS: 'false' } });
    expect(r.exitCode).toBe(2);
    const first = r.stderr.split('\n')[0] ?? '';
    expect(first).toMatch(new RegExp(`^test/fixtures/bad-playbooks/${name.replace('.', '\\.')}:\\d+:\\d+: \\S`));
    // The binary prints what the loader reports (test/unit/bad-playbooks-golden.test.ts), then the count.
    const golden = readFileSync(join(BAD, name.replace(/\.yaml$/, '.expected')), 'utf8');
    expect(r.stderr).toBe(`${golden}1 of 1 playbook invalid`);
    expect(hasStackTrace(r.stderr)).toBe(false);
  });

  it('run refuses a bad playbook the same way, before any side effect', async () => {
    const dir = tempDir();
    const r = await runCli(['run', join(BAD, 'unknown-step-kind.yaml'), '--yes'], { cwd: dir });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/unknown-step-kind\.yaml:7:11: steps\[0\]\.uses: unknown step kind/);
    expect(existsSync(join(dir, '.recoverctl'))).toBe(false);
  });

  it('usage errors exit 2 with one line', async () => {
    const dir = tempDir();
    const pb = playbook(dir, '  - id: a\n    uses: wait\n    with: { duration: 1ms }\n');
    for (const args of [
      ['run', pb, '--from-step', 'nope'],
      ['run', pb, '--var', 'undeclared=1'],
      ['run', pb, '--resume', 'no-such-run'],
      ['run', 'missing.yaml'],
      ['bogus-command'],
    ]) {
      const r = await runCli(args, { cwd: dir });
      expect(r.exitCode, args.join(' ')).toBe(2);
      expect(hasStackTrace(r.stderr)).toBe(false);
    }
  });
});

describe('plan', () => {
  it('prints resolved values and changes nothing', async () => {
    const dir = tempDir();
    const pb = playbook(
      dir,
      `  - id: hello
    uses: notify
    with: { channel: file, path: "\${{ vars.out }}", message: "hi \${{ vars.who }}" }
`,
      'vars:\n  out: notes.log\n  who: world\n',
    );
    const r = await runCli(['plan', pb, '--var', 'who=sre'], { cwd: dir });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('append "hi sre" to notes.log');
    const dry = await runCli(['run', pb, '--dry-run', '--json'], { cwd: dir });
    expect(JSON.parse(dry.stdout)).toMatchObject({ event: 'plan', plan: { steps: [{ id: 'hello', status: 'pending' }] } });
    expect(existsSync(join(dir, '.recoverctl'))).toBe(false);
    expect(existsSync(join(dir, 'notes.log'))).toBe(false);
  });
  // Every command's examples are run as written by test/e2e/help-examples.test.ts.
});

describe('run', () => {
  it('--json prints one event per line; --junit writes one test case per step', async () => {
    const dir = tempDir();
    const pb = playbook(
      dir,
      `  - id: one
    uses: exec
    with: { command: [node, -e, "console.log(42)"] }
  - id: two
    uses: wait
    if: \${{ steps.one.outputs.stdout == '42' }}
    with: { duration: 5ms }
  - id: three
    uses: wait
    if: \${{ steps.one.outputs.exitCode != 0 }}
    with: { duration: 5ms }
`,
    );
    const r = await runCli(['run', pb, '--json', '--junit', 'out/junit.xml'], { cwd: dir });
    expect(r.exitCode).toBe(0);
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; step: string | null; run: string; ts: string });
    expect(events[0]?.event).toBe('run-start');
    expect(events.at(-1)).toMatchObject({ event: 'run-end', outcome: 'success', exitCode: 0 });
    for (const e of events) {
      expect(e).toHaveProperty('ts');
      expect(e).toHaveProperty('run');
      expect(e).toHaveProperty('step');
    }
    expect(events.filter((e) => e.event === 'ok').map((e) => e.step)).toEqual(['one', 'two']);
    expect(events.find((e) => e.event === 'skip')).toMatchObject({ step: 'three' });
    const xml = readFileSync(join(dir, 'out/junit.xml'), 'utf8');
    expect(xml.match(/<testcase /g)).toHaveLength(3);
    expect(xml).toContain('tests="3" failures="0" errors="0" skipped="1"');
    // Progress went to stderr as plain timestamped lines (CI is set: no spinner).
    expect(r.stderr).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z .*one/m);
    expect(r.stderr).not.toMatch(/\u001b\[/);
  });

  it('a gate with no TTY and no --yes is refused by preflight: exit 2, no step and no rollback runs', async () => {
    const dir = tempDir();
    const pb = playbook(
      dir,
      `  - id: gate
    uses: gate.approve
    with: { message: Resume trading? }
  - id: irreversible
    uses: exec
    with: { command: ${marker('side-effect.txt', 'done')} }
`,
      '',
    );
    writeFileSync(pb, `${readFileSync(pb, 'utf8')}rollback:\n  - uses: exec\n    with: { command: ${marker('rollback.txt', 'undone')} }\n`);
    const r = await runCli(['run', pb], { cwd: dir });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/p\.yaml:\d+:\d+: step gate: gate\.approve needs an answer, but stdin is not a terminal and --yes was not given/);
    expect(r.stderr).toMatch(/^preflight: 1 problem; nothing was done$/m);
    expect(existsSync(join(dir, 'side-effect.txt'))).toBe(false);
    expect(existsSync(join(dir, 'rollback.txt'))).toBe(false);
    expect(existsSync(join(dir, '.recoverctl'))).toBe(false);
    const ok = await runCli(['run', pb, '--yes'], { cwd: dir });
    expect(ok.exitCode).toBe(0);
    expect(readFileSync(join(dir, 'side-effect.txt'), 'utf8')).toBe('done\n');
  });

  it('exits 3 when the rollback itself fails', async () => {
    const dir = tempDir();
    const pb = playbook(
      dir,
      `  - id: broken
    uses: exec
    with: { command: [node, -e, "process.exit(1)"] }
rollback:
  - uses: exec
    with: { command: [node, -e, "process.exit(1)"] }
`,
    );
    const r = await runCli(['run', pb], { cwd: dir });
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/a human must look/);
  });

  it('calls http endpoints and posts webhooks to a local server', async () => {
    const received: { url: string; body: string; key: string | undefined }[] = [];
    const server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push({ url: req.url ?? '', body, key: req.headers['idempotency-key'] as string | undefined });
        res.writeHead(req.url === '/health' ? 200 : 202, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ phase: 'halted' }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const dir = tempDir();
      const pb = playbook(
        dir,
        `  - id: health
    uses: http
    with: { url: "${base}/health", expectStatus: 200 }
  - id: tell
    uses: notify
    with: { channel: webhook, url: "${base}/hook", message: "engine is \${{ steps.health.outputs.body }}" }
  - id: wrong-status
    uses: http
    continueOnError: true
    with: { url: "${base}/health", expectStatus: [201, 204] }
`,
      );
      const r = await runCli(['run', pb], { cwd: dir });
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toMatch(/answered 200, expected 201 or 204/);
      const hook = received.find((x) => x.url === '/hook');
      expect(JSON.parse(hook?.body ?? '{}')).toMatchObject({ playbook: 'e2e', step: 'tell', message: 'engine is {"phase":"halted"}' });
      expect(hook?.key).toMatch(/\/tell$/);
    } finally {
      server.close();
    }
  });

  it('keeps secrets out of stdout, stderr, --json and the journal', async () => {
    const dir = tempDir();
    const pb = playbook(
      dir,
      `  - id: leak-attempt
    uses: exec
    with:
      command: [node, -e, "console.log('token=' + process.env.TOKEN); console.error(process.env.TOKEN)"]
      env: { TOKEN: "\${{ vars.token }}" }
  - id: say
    uses: notify
    with: { channel: stdout, message: "using \${{ vars.token }}" }
`,
      'vars:\n  token: { value: "${{ env.DEPLOY_TOKEN }}", secret: true }\n',
    );
    for (const json of [false, true]) {
      const r = await runCli(['run', pb, ...(json ? ['--json'] : [])], { cwd: dir, env: { DEPLOY_TOKEN: 'tok-9f8e7d6c5b4a' } });
      expect(r.exitCode).toBe(0);
      expect(r.stdout + r.stderr).not.toContain('tok-9f8e7d6c5b4a');
      expect(r.stdout).toContain('using ***');
    }
    expect(statSync(join(dir, '.recoverctl')).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, '.recoverctl/runs')).mode & 0o777).toBe(0o700);
    for (const run of readdirSync(join(dir, '.recoverctl/runs'))) {
      expect(statSync(join(dir, '.recoverctl/runs', run, 'journal.ndjson')).mode & 0o777).toBe(0o600);
      const journal = readFileSync(join(dir, '.recoverctl/runs', run, 'journal.ndjson'), 'utf8');
      expect(journal).not.toContain('tok-9f8e7d6c5b4a');
      expect(journal).toContain('token=***');
    }
  });

  it('--from-step starts a fresh run and journals the earlier steps as done by hand', async () => {
    const dir = tempDir();
    const pb = playbook(
      dir,
      `  - id: drain
    uses: exec
    with: { command: ${marker('log.txt', 'drain')} }
  - id: deploy
    uses: exec
    with: { command: ${marker('log.txt', 'deploy')} }
`,
    );
    const r = await runCli(['run', pb, '--from-step', 'deploy'], { cwd: dir });
    expect(r.exitCode).toBe(0);
    expect(readFileSync(join(dir, 'log.txt'), 'utf8')).toBe('deploy\n');
    const { events } = onlyJournal(dir);
    expect(events[0]).toMatchObject({ event: 'run-start', fromStep: 'deploy' });
    expect(events.find((e) => e.event === 'skip')).toMatchObject({ step: 'drain', reason: 'manual' });
  });
});

describe('interruption, resume and locking', () => {
  const longRun = (dir: string) =>
    playbook(
      dir,
      `  - id: before
    uses: exec
    with: { command: ${marker('log.txt', 'before')} }
  - id: long
    uses: exec
    with: { command: [node, -e, "\${{ vars.orphanGuard }} require('fs').appendFileSync('log.txt', 'long-start\\\\n'); setTimeout(() => require('fs').appendFileSync('log.txt', 'long-end\\\\n'), \${{ vars.ms }})"] }
  - id: after
    uses: exec
    with: { command: ${marker('log.txt', 'after')} }
`,
      `vars:\n  ms: 60000\n  orphanGuard: "${ORPHAN_GUARD}"\n`,
    );
  const log = (dir: string) => (existsSync(join(dir, 'log.txt')) ? readFileSync(join(dir, 'log.txt'), 'utf8').trim().split('\n') : []);

  it('SIGKILL in the middle of a step, then --resume-last finishes without re-running finished steps', async () => {
    const dir = tempDir();
    const pb = longRun(dir);
    const child = spawnCli(['run', pb], { cwd: dir });
    await waitFor(() => log(dir).includes('long-start'), 20_000, 'the long step to start');
    child.kill('SIGKILL');
    await child;
    const listed = await runCli(['runs', 'list'], { cwd: dir });
    expect(listed.stdout).toMatch(/stopped \(resumable\)/);
    const r = await runCli(['run', pb, '--resume-last', '--var', 'ms=10'], { cwd: dir });
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/long: was running when the run stopped/);
    const lines = log(dir);
    expect(lines.filter((l) => l === 'before')).toHaveLength(1);
    expect(lines.filter((l) => l === 'long-start')).toHaveLength(2);
    expect(lines.filter((l) => l === 'after')).toHaveLength(1);
    const { events } = onlyJournal(dir);
    expect(events.filter((e) => e.event === 'run-start')).toHaveLength(2);
    expect(events.filter((e) => e.event === 'ok' && e.step === 'before')).toHaveLength(1);
    expect(events.at(-1)).toMatchObject({ event: 'run-end', outcome: 'success' });
  });

  it('SIGTERM stops the current step cleanly, exits 130, and --resume continues', async () => {
    const dir = tempDir();
    const pb = longRun(dir);
    const child = spawnCli(['run', pb], { cwd: dir });
    await waitFor(() => log(dir).includes('long-start'), 20_000, 'the long step to start');
    child.kill('SIGTERM');
    const res = await child;
    expect(res.exitCode).toBe(130);
    expect(String(res.stderr)).toMatch(/interrupted by SIGTERM during long; journal saved/);
    const { runId, events } = onlyJournal(dir);
    expect(events.at(-1)).toMatchObject({ event: 'run-end', outcome: 'interrupted', exitCode: 130 });
    const again = await runCli(['run', pb, '--resume', runId, '--var', 'ms=10'], { cwd: dir });
    expect(again.exitCode).toBe(0);
    expect(log(dir).filter((l) => l === 'before')).toHaveLength(1);
    const done = await runCli(['run', pb, '--resume', runId], { cwd: dir });
    expect(done.exitCode).toBe(2);
    expect(done.stderr).toMatch(/already ended \(success\)/);
  });

  it('refuses to resume a changed playbook unless --force', async () => {
    const dir = tempDir();
    const pb = longRun(dir);
    const child = spawnCli(['run', pb], { cwd: dir });
    await waitFor(() => log(dir).includes('long-start'), 20_000, 'the long step to start');
    child.kill('SIGKILL');
    await child;
    writeFileSync(pb, readFileSync(pb, 'utf8').replace('ms: 60000', 'ms: 10'));
    const refused = await runCli(['run', pb, '--resume-last'], { cwd: dir });
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toMatch(/changed since run .* started .* pass --force/);
    const forced = await runCli(['run', pb, '--resume-last', '--force'], { cwd: dir });
    expect(forced.exitCode).toBe(0);
  });

  it('a second run on the same engine data dir is refused, naming the holder; a stale lock is taken over', async () => {
    const dir = tempDir();
    const extra = `engine:\n  dataDir: ./engine-data\nvars:\n  ms: 60000\n  orphanGuard: "${ORPHAN_GUARD}"\n`;
    const pb = playbook(
      dir,
      `  - id: long
    uses: exec
    with: { command: [node, -e, "\${{ vars.orphanGuard }} require('fs').appendFileSync('log.txt', 'long-start\\\\n'); setTimeout(() => {}, \${{ vars.ms }})"] }
`,
      extra,
    );
    const other = playbook(dir, '  - id: quick\n    uses: wait\n    with: { duration: 1ms }\n', 'engine:\n  dataDir: ./engine-data\n', 'other.yaml');
    const child = spawnCli(['run', pb], { cwd: dir });
    await waitFor(() => log(dir).includes('long-start'), 20_000, 'the first run to start');
    const second = await runCli(['run', other], { cwd: dir });
    expect(second.exitCode).toBe(2);
    expect(second.stderr).toMatch(new RegExp(`locked by run \\S+ \\(pid ${child.pid}`));
    child.kill('SIGKILL');
    await child;
    // The holder is dead now: its lock is stale and the next run takes it over.
    const third = await runCli(['run', other], { cwd: dir });
    expect(third.exitCode).toBe(0);
    expect(existsSync(join(dir, 'engine-data', 'recoverctl.lock'))).toBe(false);
  });
});

describe('GitHub Actions', () => {
  it('prints validation errors and failed steps as workflow annotations when GITHUB_ACTIONS=true', async () => {
    const bad = await runCli(['validate', 'test/fixtures/bad-playbooks/unknown-step-kind.yaml'], { env: { GITHUB_ACTIONS: 'true' } });
    expect(bad.exitCode).toBe(2);
    expect(bad.stdout).not.toContain('::error');
    expect(bad.stderr).toMatch(
      /^::error file=test\/fixtures\/bad-playbooks\/unknown-step-kind\.yaml,line=7,col=11::steps\[0\]\.uses: unknown step kind 'hotfix\.teleport'/m,
    );
    const dir = tempDir();
    const pb = playbook(
      dir,
      `  - id: fine\n    uses: wait\n    with: { duration: 1ms }\n  - id: broken\n    uses: exec\n    with: { command: [node, -e, "process.exit(3)"] }\n`,
    );
    const r = await runCli(['run', pb], { cwd: dir, env: { GITHUB_ACTIONS: 'true' } });
    expect(r.exitCode).toBe(1);
    expect(r.stdout).not.toContain('::error');
    expect(r.stderr).toContain(`::error file=${pb},line=9,col=5,title=step broken failed::command exited with code 3`);
    const plain = await runCli(['run', pb], { cwd: dir });
    expect(plain.stdout + plain.stderr).not.toContain('::error');
  });
});

describe('authoring', () => {
  it('init writes a playbook that validates, with the $schema line, and will not overwrite one', async () => {
    const dir = tempDir();
    const r = await runCli(['init', 'db-failover', '--dir', 'pb'], { cwd: dir });
    expect(r.exitCode).toBe(0);
    const text = readFileSync(join(dir, 'pb', 'db-failover.yaml'), 'utf8');
    expect(text.split('\n')[0]).toMatch(/^# yaml-language-server: \$schema=.*docs\/playbook\.schema\.json$/);
    expect((await runCli(['validate', 'pb/db-failover.yaml'], { cwd: dir })).exitCode).toBe(0);
    const again = await runCli(['init', 'db-failover', '--dir', 'pb'], { cwd: dir });
    expect(again.exitCode).toBe(2);
    expect(again.stderr).toMatch(/already exists; pass --force/);
  });

  it("completion completes commands, options, subcommands and --from-step with the playbook's step ids", async () => {
    const dir = tempDir();
    await runCli(['init', 'drill', '--dir', '.'], { cwd: dir });
    const script = (await runCli(['completion', 'bash'])).stdout;
    writeFileSync(join(dir, 'completion.bash'), script);
    const { execa } = await import('execa');
    const complete = async (words: string[]) => {
      const r = await execa(
        'bash',
        [
          '-c',
          `source completion.bash; recoverctl() { node ${JSON.stringify(join(ROOT, 'bin/recoverctl.js'))} "$@"; }; COMP_WORDS=(${words.map((w) => JSON.stringify(w)).join(' ')}); COMP_CWORD=${words.length - 1}; _recoverctl; echo "\${COMPREPLY[*]}"`,
        ],
        { cwd: dir },
      );
      return r.stdout.trim().split(/\s+/);
    };
    expect(await complete(['recoverctl', 're'])).toEqual(['rehearse', 'report']);
    expect(await complete(['recoverctl', 'run', '--re'])).toEqual(['--resume', '--resume-last']);
    expect(await complete(['recoverctl', 'engine', 'st'])).toEqual(['start', 'stop', 'status']);
    expect(await complete(['recoverctl', 'run', 'drill.yaml', '--from-step', 'ap'])).toEqual(['approve']);
    expect(await complete(['recoverctl', 'validate', 'dri'])).toEqual(['drill.yaml']);
    for (const shell of ['zsh', 'fish']) {
      const r = await runCli(['completion', shell]);
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toContain('rehearse');
    }
    expect((await runCli(['completion', 'tcsh'])).exitCode).toBe(2);
  });
});
