import { execa } from 'execa';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isPidAlive } from '../../src/util/pid.js';
import { readEngineInfo } from '../../src/engine-client/supervisor.js';
import { BIN, cliEnv, hasStackTrace, runCli, tempDir, waitFor } from '../support/cli.js';
import { trackEngineDir } from '../support/engine.js';

const SUBCOMMANDS = ['start', 'stop', 'status', 'deposit', 'halt', 'resume', 'snapshot', 'fault'];

/** A shell line run by bash, with `recoverctl` the binary under test: pipes and "$(...)" work as for a user. */
async function sh(line: string, cwd: string): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const r = await execa('bash', ['-c', `recoverctl() { node "$RECOVERCTL_BIN" "$@"; }\n${line}`], {
    cwd,
    env: cliEnv({ RECOVERCTL_BIN: BIN }),
    reject: false,
    stdin: 'ignore',
    timeout: 60_000,
  });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** The `recoverctl ...` lines under Example(s): in a command's --help. */
function examplesOf(help: string): string[] {
  const after = help.split(/^Examples?:$/m)[1] ?? '';
  return after
    .split('\n')
    .filter((l) => l.startsWith('  recoverctl '))
    .map((l) => l.trim());
}

/** A quiet engine (no index feed) on an ephemeral port in a temp dir; stopped after the test whatever happens. */
async function startQuietEngine(): Promise<{ dir: string; url: string; pid: number }> {
  const dir = join(tempDir(), 'data');
  trackEngineDir(dir);
  const r = await runCli(['engine', 'start', '--data-dir', dir, '--port', '0', '--feed-interval', '0ms', '--json']);
  expect(r.exitCode, r.stderr).toBe(0);
  const info = JSON.parse(r.stdout) as { url: string; pid: number };
  return { dir, url: info.url, pid: info.pid };
}

describe('recoverctl engine', () => {
  it('start, status, resume, fault, snapshot, halt and stop a detached engine that outlives each command', async () => {
    const dir = join(tempDir(), 'data');
    trackEngineDir(dir);
    const start = await runCli(['engine', 'start', '--data-dir', dir, '--feed-interval', '0ms', '--json']);
    expect(start.exitCode).toBe(0);
    const info = JSON.parse(start.stdout) as { pid: number; url: string; started: boolean; phase: string };
    expect(info).toMatchObject({ started: true, phase: 'halted' });
    expect(isPidAlive(info.pid)).toBe(true);
    expect(readEngineInfo(dir)).toMatchObject({ pid: info.pid, url: info.url });
    const again = await runCli(['engine', 'start', '--data-dir', dir, '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ started: false, pid: info.pid });
    expect((await runCli(['engine', 'status', '--data-dir', dir])).stdout).toMatch(/phase halted, seq \d+, margin 1\.4\.2/);
    const resume = await runCli(['engine', 'resume', '--data-dir', dir, '--dwell', '100ms']);
    expect(resume.stdout.trim()).toBe('phase open');
    const noAccounts = await runCli(['engine', 'fault', 'margin-burst', '--data-dir', dir]);
    expect(noAccounts.exitCode).toBe(1);
    expect(noAccounts.stderr).toMatch(/no accounts to recalculate/);
    const snap = await runCli(['engine', 'snapshot', '--data-dir', dir, '--json']);
    expect(existsSync((JSON.parse(snap.stdout) as { path: string }).path)).toBe(true);
    expect((await runCli(['engine', 'halt', '--data-dir', dir, '--reason', 'drill'])).stdout.trim()).toBe('halted: drill');
    const stop = await runCli(['engine', 'stop', '--data-dir', dir]);
    expect(stop.stdout).toMatch(new RegExp(`stopped pid ${info.pid}`));
    expect(isPidAlive(info.pid)).toBe(false);
    const status = await runCli(['engine', 'status', '--data-dir', dir]);
    expect(status.exitCode).toBe(1);
    expect(status.stdout).toMatch(/not running/);
  });

  it('an engine that cannot start gives one clear error with its log, exit 2', async () => {
    const dir = tempDir();
    trackEngineDir(join(dir, 'broken'));
    writeFileSync(join(dir, 'data'), 'a file where the data dir should be');
    const r = await runCli(['engine', 'start', '--data-dir', join(dir, 'data')]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/would not start: cannot create the data dir/);
    expect(hasStackTrace(r.stderr)).toBe(false);
    // An engine that dies before it is ready: the error carries the tail of its log.
    const broken = join(dir, 'broken');
    await runCli(['engine', 'start', '--data-dir', broken, '--feed-interval', '0ms']);
    await runCli(['engine', 'stop', '--data-dir', broken]);
    writeFileSync(join(broken, 'active.json'), '{"margin": ');
    const dies = await runCli(['engine', 'start', '--data-dir', broken]);
    expect(dies.exitCode).toBe(2);
    expect(dies.stderr).toMatch(/exited with code 1 before it was ready/);
    expect(dies.stderr).toMatch(/"level":"fatal","msg":"cannot start: .*JSON/);
    expect(hasStackTrace(dies.stderr)).toBe(false);
  });

  it('each action is a subcommand with only its own options in its --help, and an example', async () => {
    const top = await runCli(['engine', '--help']);
    expect(top.exitCode).toBe(0);
    for (const sub of SUBCOMMANDS) expect(top.stdout).toMatch(new RegExp(`^  ${sub}\\b`, 'm'));
    const own: Record<string, { has: string[]; hasNot: string[] }> = {
      start: {
        has: ['--data-dir', '--port', '--testnet', '--seed', '--feed-interval', '--funding-interval', '--queue-limit', '--json'],
        hasNot: ['--reason', '--phases', '--events', '--amount'],
      },
      stop: { has: ['--data-dir', '--json'], hasNot: ['--port', '--reason', '--events'] },
      status: { has: ['--data-dir', '--json'], hasNot: ['--port', '--reason'] },
      halt: { has: ['--data-dir', '--reason', '--json'], hasNot: ['--port', '--phases'] },
      resume: { has: ['--data-dir', '--phases', '--dwell', '--json'], hasNot: ['--port', '--reason', '--events'] },
      snapshot: { has: ['--data-dir', '--json'], hasNot: ['--port', '--events'] },
      fault: { has: ['<kind>', 'margin-burst', 'crash', '--data-dir', '--events', '--json'], hasNot: ['--port', '--reason'] },
      deposit: { has: ['--data-dir', '--account', '--asset', '--amount', 'USDT', 'USDC', '--json'], hasNot: ['--port', '--events'] },
    };
    for (const sub of SUBCOMMANDS) {
      const r = await runCli(['engine', sub, '--help']);
      expect(r.exitCode, sub).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: recoverctl engine ${sub} `, 'm'));
      for (const flag of own[sub]?.has ?? []) expect(r.stdout, `${sub} --help shows ${flag}`).toContain(flag);
      for (const flag of own[sub]?.hasNot ?? []) expect(r.stdout, `${sub} --help hides ${flag}`).not.toContain(flag);
      expect(r.stdout).toMatch(/default: "var\/engine"/);
      expect(examplesOf(r.stdout).length, `${sub} has an example`).toBeGreaterThan(0);
      for (const line of examplesOf(r.stdout)) expect(line).toMatch(new RegExp(`^recoverctl engine ${sub} |^recoverctl integrity check `));
    }
  });

  it('an option of another action, an unknown action or a bad fault kind is a usage error, exit 2', async () => {
    const cwd = tempDir();
    for (const args of [
      ['engine', 'stop', '--port', '1'],
      ['engine', 'halt', '--events', '3'],
      ['engine', 'status', '--reason', 'x'],
      ['engine', 'fault'],
      ['engine', 'fault', 'meltdown'],
      ['engine', 'launch'],
      ['engine', 'start', '--port', '70000'],
      ['engine', 'resume', '--phases', 'open,closed'],
    ]) {
      const r = await runCli(args, { cwd });
      expect(r.exitCode, args.join(' ')).toBe(2);
      expect(r.stderr.trim(), args.join(' ')).not.toBe('');
      expect(hasStackTrace(r.stderr)).toBe(false);
    }
    expect((await runCli(['engine', 'stop', '--port', '1'], { cwd })).stderr).toMatch(/unknown option '--port'/);
    expect((await runCli(['engine', 'fault', 'meltdown'], { cwd })).stderr).toMatch(/margin-burst, crash/);
    expect(existsSync(join(cwd, 'var'))).toBe(false);
  });

  it("every subcommand's help example runs as written, in order, on an engine with an ephemeral port", async () => {
    const cwd = tempDir();
    trackEngineDir(join(cwd, 'var', 'engine'));
    const order = ['start', 'status', 'deposit', 'snapshot', 'halt', 'resume', 'fault', 'stop'];
    expect([...order].sort()).toEqual([...SUBCOMMANDS].sort());
    for (const sub of order) {
      const examples = examplesOf((await runCli(['engine', sub, '--help'])).stdout);
      for (const line of examples) {
        const r = await sh(line, cwd);
        expect(r.exitCode, `${line}\n${r.stderr}`).toBe(0);
        expect(hasStackTrace(r.stderr)).toBe(false);
      }
    }
    expect(readEngineInfo(join(cwd, 'var', 'engine'))).toBeUndefined();
  });

  it('engine snapshot prints the path alone, so integrity check --snapshot "$(recoverctl engine snapshot)" works', async () => {
    const { dir, url } = await startQuietEngine();
    expect((await runCli(['engine', 'deposit', '--data-dir', dir, '--account', 'alice', '--asset', 'USDT', '--amount', '500'])).exitCode).toBe(0);
    const snap = await runCli(['engine', 'snapshot', '--data-dir', dir]);
    expect(snap.exitCode, snap.stderr).toBe(0);
    // One line, the path and nothing else (the runner strips the final newline).
    expect(snap.stdout).toMatch(/^\/\S+\/snapshots\/\d+\.ndjson$/);
    const path = snap.stdout;
    expect(existsSync(path)).toBe(true);
    expect(snap.stderr).toMatch(/seq \d+, \d+ records, sha256 [0-9a-f]{64}/);
    const json = JSON.parse((await runCli(['engine', 'snapshot', '--data-dir', dir, '--json'])).stdout) as Record<string, unknown>;
    expect(json).toMatchObject({
      path: expect.stringMatching(/\.ndjson$/),
      seq: expect.any(Number),
      records: expect.any(Number),
      sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    // Through a real shell, as an operator types it: a deposit after the snapshot is explained by the WAL.
    await runCli(['engine', 'deposit', '--data-dir', dir, '--account', 'bob', '--asset', 'USDC', '--amount', '10']);
    const check = await sh(
      `recoverctl integrity check --snapshot "$(recoverctl engine snapshot --data-dir '${dir}')" --engine ${url} --token-file '${join(dir, 'control.token')}' --wal '${join(dir, 'wal')}' --json`,
      dir,
    );
    expect(check.exitCode, check.stderr).toBe(0);
    expect(JSON.parse(check.stdout)).toMatchObject({ clean: true, pre: { file: expect.stringMatching(/^\/\S+\/snapshots\/\d+\.ndjson\b/) } });
    const pre = await runCli([
      'integrity',
      'check',
      '--snapshot',
      snap.stdout.trim(),
      '--engine',
      url,
      '--token-file',
      join(dir, 'control.token'),
      '--wal',
      join(dir, 'wal'),
    ]);
    expect(pre.exitCode, pre.stderr).toBe(0);
    expect(pre.stdout).toMatch(/1 WAL records? applied/);
    expect(pre.stdout).toMatch(/clean/);
  });

  it('engine fault prints one human line, --json the object; crash leaves no engine running', async () => {
    const { dir, pid } = await startQuietEngine();
    await runCli(['engine', 'deposit', '--data-dir', dir, '--account', 'alice', '--asset', 'USDT', '--amount', '1000']);
    await runCli(['engine', 'resume', '--data-dir', dir]);
    const burst = await runCli(['engine', 'fault', 'margin-burst', '--events', '5', '--data-dir', dir]);
    expect(burst.exitCode, burst.stderr).toBe(0);
    expect(burst.stdout).not.toMatch(/[{}"]/);
    expect(burst.stdout).toMatch(/^margin-burst: 5 events sent, queue depth \d+; engine open$/);
    const json = await runCli(['engine', 'fault', 'margin-burst', '--events', '3', '--data-dir', dir, '--json']);
    expect(JSON.parse(json.stdout)).toEqual({ events: 3, queueDepth: expect.any(Number), phase: 'open', reason: null });
    // A burst past the queue limit: the engine halts itself, and the line says why.
    const halts = await runCli(['engine', 'fault', 'margin-burst', '--data-dir', dir]);
    expect(halts.stdout).toMatch(/^margin-burst: \d+ events sent, queue depth \d+; engine halted: EXCESS_QUEUE_DEPTH in margin 1\.4\.2/);
    const tooMany = await runCli(['engine', 'fault', 'margin-burst', '--events', '0', '--data-dir', dir]);
    expect(tooMany.exitCode).toBe(2);
    const crash = await runCli(['engine', 'fault', 'crash', '--data-dir', dir]);
    expect(crash.exitCode, crash.stderr).toBe(0);
    expect(crash.stdout.trim()).toBe(`crash: engine pid ${pid} killed itself without flushing`);
    await waitFor(() => !isPidAlive(pid), 10_000, 'the crashed engine to be gone');
    expect((await runCli(['engine', 'status', '--data-dir', dir])).exitCode).toBe(1);
  });

  it('engine deposit credits an exact decimal amount and prints the new balance; a bad amount is exit 2', async () => {
    const { dir } = await startQuietEngine();
    const first = await runCli(['engine', 'deposit', '--data-dir', dir, '--account', 'alice', '--asset', 'USDT', '--amount', '1000']);
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stdout.trim()).toBe('deposited 1000 USDT to alice: balance 1000 USDT');
    // 17 significant digits: a binary float would round them.
    const exact = await runCli(['engine', 'deposit', '--data-dir', dir, '--account', 'alice', '--asset', 'USDC', '--amount', '123456789.12345678', '--json']);
    expect(exact.exitCode, exact.stderr).toBe(0);
    expect(JSON.parse(exact.stdout)).toMatchObject({
      id: 'alice',
      deposited: { asset: 'USDC', amount: '123456789.12345678' },
      balances: { USDT: '1000', USDC: '123456789.12345678' },
    });
    for (const amount of ['0', '0.00', '-5', '1e3', '1,000', '0x10', 'NaN', 'Infinity', '.5', '5.', ' 5', '1.000000001', '']) {
      const r = await runCli(['engine', 'deposit', '--data-dir', dir, '--account', 'alice', '--asset', 'USDT', '--amount', amount]);
      expect(r.exitCode, `--amount '${amount}'`).toBe(2);
      expect(r.stderr, `--amount '${amount}'`).toMatch(/--amount/);
      expect(hasStackTrace(r.stderr)).toBe(false);
    }
    for (const args of [
      ['--account', 'alice', '--asset', 'EUR', '--amount', '1'],
      ['--account', 'alice', '--asset', 'USDT'],
      ['--asset', 'USDT', '--amount', '1'],
      ['--account', '@external', '--asset', 'USDT', '--amount', '1'],
      ['--account', 'alice', '--asset', 'USDT', '--amount', '1000000000001'],
    ]) {
      const r = await runCli(['engine', 'deposit', '--data-dir', dir, ...args]);
      expect(r.exitCode, args.join(' ')).toBe(2);
      expect(hasStackTrace(r.stderr)).toBe(false);
    }
    // Nothing refused was credited.
    const last = await runCli(['engine', 'deposit', '--data-dir', dir, '--account', 'alice', '--asset', 'USDT', '--amount', '0.5', '--json']);
    expect((JSON.parse(last.stdout) as { balances: Record<string, string> }).balances.USDT).toBe('1000.5');
    const stopped = join(tempDir(), 'none');
    const none = await runCli(['engine', 'deposit', '--data-dir', stopped, '--account', 'alice', '--asset', 'USDT', '--amount', '1']);
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toMatch(/no engine is running/);
  });

  it("completion bash offers the engine subcommands and each one's own options", async () => {
    const dir = tempDir();
    const script = await runCli(['completion', 'bash']);
    expect(script.exitCode).toBe(0);
    writeFileSync(join(dir, 'completion.bash'), script.stdout);
    const complete = async (words: string[]) => {
      const r = await execa(
        'bash',
        [
          '-c',
          `source completion.bash; COMP_WORDS=(${words.map((w) => JSON.stringify(w)).join(' ')}); COMP_CWORD=${words.length - 1}; _recoverctl; echo "\${COMPREPLY[*]}"`,
        ],
        { cwd: dir },
      );
      return r.stdout.trim().split(/\s+/);
    };
    expect(await complete(['recoverctl', 'engine', ''])).toEqual(SUBCOMMANDS);
    expect(await complete(['recoverctl', 'engine', 'de'])).toEqual(['deposit']);
    expect(await complete(['recoverctl', 'engine', 'deposit', '--a'])).toEqual(['--account', '--asset', '--amount']);
    expect(await complete(['recoverctl', 'engine', 'stop', '--'])).toEqual(['--data-dir', '--json', '--help']);
    const fish = await runCli(['completion', 'fish']);
    expect(fish.stdout).toContain("__fish_seen_subcommand_from engine' -a 'deposit'");
  });

  it('a playbook drives the engine: start, snapshot, halt, verify, integrity, resume, stop', async () => {
    const dir = tempDir();
    trackEngineDir(join(dir, 'engine'));
    writeFileSync(
      join(dir, 'engine-drill.yaml'),
      `apiVersion: recoverctl/v1
kind: Playbook
metadata:
  name: engine-drill
engine:
  dataDir: ./engine
steps:
  - id: start
    uses: engine.start
    with: { phase: open, feedInterval: 0ms }
  - id: pre-outage
    uses: snapshot.take
  - id: halt
    uses: engine.halt
    with: { reason: drill }
  - id: verify
    uses: snapshot.verify
    with: { path: "\${{ steps.pre-outage.outputs.path }}" }
  - id: integrity
    uses: integrity.check
    with: { snapshot: "\${{ steps.pre-outage.outputs.path }}" }
  - id: resume
    uses: engine.resume
    with: { phases: [cancel-only, post-only, open], dwell: 100ms }
  - id: stop
    uses: engine.stop
`,
    );
    const plan = await runCli(['plan', 'engine-drill.yaml'], { cwd: dir });
    expect(plan.stdout).toMatch(/start the engine on .*engine \(or attach to it\), phase open/);
    const r = await runCli(['run', 'engine-drill.yaml', '--json'], { cwd: dir });
    expect(r.exitCode, r.stderr).toBe(0);
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; step: string; outputs?: Record<string, unknown> });
    const ok = (id: string) => events.find((e) => e.event === 'ok' && e.step === id)?.outputs;
    expect(ok('start')).toMatchObject({ started: true, phase: 'open', margin: '1.4.2' });
    expect(ok('verify')).toMatchObject({ precedesHalt: true });
    expect(ok('integrity')).toMatchObject({ clean: true, missing: 0, explainedByWal: 1 });
    expect(ok('resume')).toMatchObject({ phase: 'open' });
    expect(ok('stop')).toMatchObject({ wasRunning: true });
    expect(readFileSync(join(dir, 'engine', 'engine.log'), 'utf8')).toMatch(/stopping/);
  });
});
