import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EngineClient } from '../../src/engine-client/client.js';
import { ROOT, runCli, spawnCli, tempDir, waitFor } from '../support/cli.js';
import { startTestEngine } from '../support/engine.js';

const HOTFIX = join(ROOT, 'playbooks/hotfixes/margin-1.4.3.mjs');
const HOTFIX_SHA = (readFileSync(join(ROOT, 'playbooks/hotfixes/SHA256SUMS'), 'utf8').split('\n')[0] ?? '').split(' ')[0] as string;

function journal(stateDir: string): { step: string | null; event: string; outputs?: Record<string, unknown> }[] {
  const runs = readdirSync(join(stateDir, 'runs')).sort();
  const text = readFileSync(join(stateDir, 'runs', runs.at(-1) as string, 'journal.ndjson'), 'utf8');
  return text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { step: string | null; event: string });
}

describe('rehearse', () => {
  it('rehearses the bundled incident to success: engine open on 1.4.3, nothing lost, reports written (--json, --junit)', async () => {
    const dir = tempDir();
    const r = await runCli(
      ['rehearse', join(ROOT, 'playbooks/um-excess-queue-depth.yaml'), '--state-dir', join(dir, 'state'), '--json', '--junit', join(dir, 'junit.xml')],
      { timeoutMs: 120_000 },
    );
    expect(r.exitCode, r.stderr.slice(-2000)).toBe(0);
    expect(r.stderr).toMatch(/incident reproduced: EXCESS_QUEUE_DEPTH in margin 1\.4\.2/);
    for (const check of ['nothing lost', 'engine open after the recovery', 'the deployed hotfix is active', 'incident report written']) {
      expect(r.stderr).toMatch(new RegExp(`rehearse: ✓ ${check}`));
    }
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; step: string | null; outputs?: Record<string, unknown> });
    expect(events.at(-2)).toMatchObject({ event: 'run-end', outcome: 'success' });
    expect(events.at(-1)).toMatchObject({ event: 'rehearse-summary', ok: true, exitCode: 0, results: [{ expected: 'success', outcome: 'success', ok: true }] });
    expect(events.find((e) => e.event === 'ok' && e.step === 'deploy')?.outputs).toMatchObject({ version: '1.4.3', previous: '1.4.2' });
    expect(events.find((e) => e.event === 'ok' && e.step === 'funding')?.outputs?.intervals).toBeGreaterThan(0);
    const xml = readFileSync(join(dir, 'junit.xml'), 'utf8');
    expect(xml).toContain('name="order-matching: crossing orders fill at the maker price"');
    expect(xml).toContain('name="rehearsal-outcome: the rehearsal checks the outcome"');
    expect(xml).toMatch(/failures="0"/);
    const report = /incident report: (\S+)/.exec(r.stderr)?.[1] as string;
    const html = readFileSync(report, 'utf8');
    expect(html).toContain('id="queue-depth"');
    expect(html).toContain('EXCESS_QUEUE_DEPTH');
    // The risk preview taken before the approval, and the missed funding intervals with the holders at
    // each interval's end (the long and short traders of the pre-outage state), in the Markdown report too.
    const md = readFileSync(report.replace(/\.html$/, '.md'), 'utf8');
    expect(md).toMatch(/## Risk preview \(risk, [^)]+\)\n\n\d+ would be liquidated, \d+ reduce-only, \d+ warned, of [1-9]\d* accounts with positions\./);
    expect(md.indexOf('## Risk preview')).toBeGreaterThan(-1);
    const funding = md.slice(md.indexOf('## Missed funding settled'));
    expect(funding).toMatch(/\| BTCUSDT \| \S+ \| [-\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| trader-\d{4} -?[\d.]+ -?[\d.]+/);
    expect(html).toContain('<h2>Missed funding settled</h2>');
    expect(html).toMatch(/<h2>Risk preview \(risk, /);
  });

  it('the bad-hotfix drill: the traffic shift catches it, halted on the previous module, nothing lost: as expected, so exit 0', async () => {
    const dir = tempDir();
    const r = await runCli(['rehearse', join(ROOT, 'playbooks/bad-hotfix-drill.yaml'), '--state-dir', join(dir, 'state')], { timeoutMs: 120_000 });
    expect(r.exitCode, r.stderr.slice(-1500)).toBe(0);
    expect(r.stderr).toMatch(/rehearsal of bad-hotfix-drill: ended failed, as expected \(rehearsal\.expectOutcome\)/);
    expect(r.stdout).toMatch(/run \S+ \(bad-hotfix-drill\): failed in/);
    expect(r.stderr).toMatch(/✗ shift .*gate breached at stage \d+ \(weight \d+%\): queue depth \d+ > 500/);
    expect(r.stderr).toMatch(/rehearse: ✓ engine halted after the rollback \(halted, margin 1\.4\.2\)/);
    expect(r.stderr).toMatch(/rehearse: ✓ nothing lost/);
  });

  it('an approval gate with no TTY and no --yes is refused by preflight, before any scratch engine (exit 2)', async () => {
    const dir = tempDir();
    const state = join(dir, 'state');
    const r = await runCli(['rehearse', join(ROOT, 'playbooks/um-excess-queue-depth.yaml'), '--state-dir', state, '--no-auto-approve'], { timeoutMs: 120_000 });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(
      /um-excess-queue-depth\.yaml:\d+:\d+: step approve: gate\.approve needs an answer, but stdin is not a terminal and --yes was not given/,
    );
    expect(r.stderr).not.toMatch(/scratch engine/);
    expect(existsSync(state)).toBe(false);
  });
});

describe('rehearse --all', () => {
  it('CI=true GITHUB_ACTIONS=true rehearse --all playbooks/ --json --junit: NDJSON only on stdout, exit 0, failures="0", no ::error for the expected drill failure', async () => {
    const dir = tempDir();
    const r = await runCli(['rehearse', '--all', 'playbooks/', '--json', '--state-dir', join(dir, 'state'), '--junit', join(dir, 'out.xml')], {
      timeoutMs: 300_000,
      env: { GITHUB_ACTIONS: 'true' },
    });
    expect(r.exitCode, r.stderr.slice(-1500)).toBe(0);
    const lines = r.stdout.trim().split('\n');
    const events = lines.map(
      (l) => JSON.parse(l) as { event: string; exitCode?: number; results?: { file: string; expected: string | null; outcome: string; ok: boolean }[] },
    );
    const summary = events.at(-1);
    expect(summary).toMatchObject({ event: 'rehearse-summary', ok: true, exitCode: 0 });
    expect(summary?.results).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ file: 'playbooks/bad-hotfix-drill.yaml', expected: 'failed', outcome: 'failed', ok: true }),
        expect.objectContaining({ file: 'playbooks/um-excess-queue-depth.yaml', expected: 'success', outcome: 'success', ok: true }),
        expect.objectContaining({ file: 'playbooks/um-excess-queue-depth-gateway.yaml', expected: 'success', outcome: 'success', ok: true }),
        expect.objectContaining({ file: 'playbooks/um-blue-green.yaml', expected: 'success', outcome: 'success', ok: true, path: 'blue-green' }),
        expect.objectContaining({ file: 'playbooks/runner-drill.yaml', outcome: 'skipped (no engine)', ok: true }),
      ]),
    );
    // The human table and the annotations are on stderr; the drill's failure is a notice, not an error.
    expect(r.stderr).toMatch(/playbooks\/bad-hotfix-drill\.yaml\s+failed\s+failed\s+[\d.]+s\s+in-place\s+[\d.]+s\s+\S+\s+ok/);
    // Each path with its RTO and the time trading was closed: the comparison the exchange asked for.
    expect(r.stderr).toMatch(/playbooks\/um-excess-queue-depth\.yaml\s+success\s+success\s+[\d.]+s\s+in-place\s+[\d.]+s\s+[\d.]+s\s+ok/);
    expect(r.stderr).toMatch(/playbooks\/um-blue-green\.yaml\s+success\s+success\s+[\d.]+s\s+blue-green\s+[\d.]+s\s+[\d.]+s\s+ok/);
    // The gateway playbook rehearsed through a real HAProxy and Prometheus.
    expect(r.stderr).toMatch(/playbooks\/um-excess-queue-depth-gateway\.yaml\s+success\s+success\s+[\d.]+s\s+in-place\s+[\d.]+s\s+[\d.]+s\s+ok/);
    expect(r.stdout + r.stderr).not.toContain('::error');
    expect(r.stderr).toMatch(/^::notice file=playbooks\/bad-hotfix-drill\.yaml,line=\d+,col=\d+,title=step shift failed::/m);
    const xml = readFileSync(join(dir, 'out.xml'), 'utf8');
    expect(xml.match(/<testsuite /g)).toHaveLength(5);
    expect(xml).toMatch(/<testsuites name="recoverctl" tests="\d+" failures="0"/);
    expect(xml).toMatch(/<testcase classname="bad-hotfix-drill" name="shift"[^>]*>\s*<system-out>failed, as this rehearsal expects/);
    expect(xml).toMatch(/<testcase classname="bad-hotfix-drill\.rehearsal" name="ends failed \(rehearsal\.expectOutcome\)"/);
    // Four rehearsals one after the other, one of them behind HAProxy and Prometheus: about 50 s alone on two cores.
  }, 320_000);
});

describe('recovery steps against a running engine', () => {
  const playbook = (dir: string, dataDir: string, steps: string) => {
    const path = join(dir, 'p.yaml');
    writeFileSync(path, `apiVersion: recoverctl/v1\nkind: Playbook\nmetadata:\n  name: steps\nengine:\n  dataDir: ${dataDir}\nsteps:\n${steps}`);
    return path;
  };

  it('refuses a hotfix whose sha256 does not match, naming both digests, before installing anything', async () => {
    const { dir: dataDir } = await startTestEngine();
    const dir = tempDir();
    const wrong = '0'.repeat(64);
    const pb = playbook(dir, dataDir, `  - id: deploy\n    uses: hotfix.deploy\n    with: { component: margin, artifact: "${HOTFIX}", sha256: "${wrong}" }\n`);
    const r = await runCli(['run', pb], { cwd: dir });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`sha256 mismatch for ${HOTFIX}: expected ${wrong}, got ${HOTFIX_SHA}; nothing was installed`);
    expect(existsSync(join(dataDir, 'modules', 'margin', '1.4.3.mjs'))).toBe(false);
    expect(JSON.parse(readFileSync(join(dataDir, 'active.json'), 'utf8'))).toEqual({ margin: { active: '1.4.2', previous: null } });
  });

  it('a run killed during traffic.shift resumes and completes, without deploying twice', async () => {
    const { dir: dataDir, client } = await startTestEngine({ feedInterval: '200ms' });
    for (let i = 1; i <= 10; i++) await client.deposit(`trader-${String(i).padStart(4, '0')}`, 'USDT', '1000000');
    const dir = tempDir();
    const pb = playbook(
      dir,
      dataDir,
      `  - id: deploy
    uses: hotfix.deploy
    with: { component: margin, artifact: "${HOTFIX}", sha256: "${HOTFIX_SHA}" }
  - id: resume
    uses: engine.resume
    with: { phases: [cancel-only, open], dwell: 100ms, admission: 0 }
  - id: shift
    uses: traffic.shift
    with:
      stepWeights: [10, 50, 100]
      bake: 2s
      interval: 200ms
      gates: { maxQueueDepth: 500 }
      load: { rate: 100, accounts: 10, seed: 3 }
  - id: done
    uses: notify
    with: { channel: stdout, message: traffic fully shifted }
`,
    );
    const child = spawnCli(['run', pb], { cwd: dir });
    const journalText = () => {
      try {
        const runs = readdirSync(join(dir, '.recoverctl', 'runs'));
        return readFileSync(join(dir, '.recoverctl', 'runs', runs[0] as string, 'journal.ndjson'), 'utf8');
      } catch {
        return '';
      }
    };
    await waitFor(() => journalText().includes('"weight":50'), 30_000, 'the traffic shift to reach stage 2');
    child.kill('SIGKILL');
    await child;
    const resumed = await runCli(['run', pb, '--resume-last'], { cwd: dir, timeoutMs: 60_000 });
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    expect(resumed.stdout).toContain('traffic fully shifted');
    expect(resumed.stderr).toMatch(/shift: was running when the run stopped/);
    const events = journalText()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; step: string });
    expect(events.filter((e) => e.event === 'ok' && e.step === 'deploy')).toHaveLength(1);
    expect(events.filter((e) => e.event === 'ok' && e.step === 'shift')).toHaveLength(1);
    const h = await (client as EngineClient).health();
    expect(h).toMatchObject({ phase: 'open', admissionWeight: 100 });
    expect(h.modules.margin?.active).toBe('1.4.3');
  });

  it('hotfix.rollback run twice does not undo itself; smoke.testnet never accepts a module it could not test', async () => {
    const { dir: dataDir, client } = await startTestEngine();
    const dir = tempDir();
    const broken = join(dir, 'margin-1.4.9.mjs');
    writeFileSync(broken, readFileSync(HOTFIX, 'utf8').replaceAll("'1.4.3'", "'1.4.9'").replace("seen.join() !== 'b,a'", "seen.join() !== 'nope'"));
    const { createHash } = await import('node:crypto');
    const brokenSha = createHash('sha256').update(readFileSync(broken)).digest('hex');
    const pb = playbook(
      dir,
      dataDir,
      `  - id: deploy
    uses: hotfix.deploy
    with: { component: margin, artifact: "${HOTFIX}", sha256: "${HOTFIX_SHA}" }
  - id: back
    uses: hotfix.rollback
    with: { component: margin, from: 1.4.3 }
  - id: back-again
    uses: hotfix.rollback
    with: { component: margin, from: 1.4.3 }
  - id: smoke-broken
    uses: smoke.testnet
    continueOnError: true
    with: { component: margin, artifact: "${broken}", sha256: "${brokenSha}", accept: { failures: 5 } }
`,
    );
    const r = await runCli(['run', pb, '--json'], { cwd: dir, timeoutMs: 60_000 });
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; step: string; outputs?: Record<string, unknown>; error?: string });
    expect(events.find((e) => e.event === 'ok' && e.step === 'back')?.outputs).toMatchObject({ rolledBack: true, active: '1.4.2' });
    expect(events.find((e) => e.event === 'ok' && e.step === 'back-again')?.outputs).toMatchObject({ rolledBack: false, active: '1.4.2' });
    expect(events.find((e) => e.event === 'fail' && e.step === 'smoke-broken')?.error).toMatch(/could not test margin 1\.4\.9: .*failed its self-test/);
    expect((await client.health()).modules.margin?.active).toBe('1.4.2');
  });
});
