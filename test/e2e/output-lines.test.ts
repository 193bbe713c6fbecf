import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, onlyJournal, ROOT, runCli, tempDir } from '../support/cli.js';
import { startTestEngine } from '../support/engine.js';

interface Event {
  ts: string;
  event: string;
  step: string | null;
  message?: string;
}

/** The plain progress lines of one step in stderr, as [time, text]. */
function progressLines(stderr: string, step: string): [number, string][] {
  return stderr
    .split('\n')
    .map((l) => new RegExp(`^(\\S+Z) … ${step}: (.*)$`).exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => [Date.parse(m[1] as string), m[2] as string]);
}

/** Writes each line in two pieces 30ms apart, ten lines a second, then a last line with no newline. */
const chatty = (lines: number): string =>
  `let i = 0; const t = setInterval(() => { process.stdout.write('line ' + i + ' part-a '); setTimeout(() => process.stdout.write('part-b\\\\n'), 30); if (++i >= ${lines}) { clearInterval(t); setTimeout(() => process.stdout.write('tail without newline'), 60); } }, 100);`;
const FAILING = `for (let i = 1; i <= 30; i++) console.error('err line ' + i); process.exit(3);`;

function playbook(dir: string): string {
  const file = join(dir, 'p.yaml');
  writeFileSync(
    file,
    `apiVersion: recoverctl/v1
kind: Playbook
metadata:
  name: lines
steps:
  - id: chatty
    name: Print in pieces
    uses: exec
    with: { command: [node, -e, "${chatty(30)}"] }
  - id: precheck
    name: Check the replicas
    uses: exec
    with: { command: [node, -e, "${FAILING}"] }
`,
  );
  return file;
}

describe('the output of exec steps, and step titles', () => {
  // One real run, looked at from each side: stderr, stdout, JUnit, `runs show`, the incident report.
  let dir = '';
  let run: CliResult;
  let runId = '';
  let events: Event[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'recoverctl-lines-'));
    run = await runCli(['run', playbook(dir), '--junit', 'junit.xml'], { cwd: dir });
    ({ runId, events } = onlyJournal<Event>(dir));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('progress shows whole lines of the output, never a piece of one', () => {
    expect(run.exitCode, run.stderr).toBe(1);
    const messages = events.filter((e) => e.event === 'progress' && e.step === 'chatty').map((e) => e.message);
    expect(messages.length).toBeGreaterThanOrEqual(3);
    // The command's last words (no newline at the end) are shown once it exits, whole.
    expect(messages.at(-1)).toBe('tail without newline');
    for (const m of messages.slice(0, -1)) expect(m).toMatch(/^line \d+ part-a part-b$/);
    const shown = progressLines(run.stderr, 'chatty');
    expect(shown.length).toBeGreaterThanOrEqual(2);
    for (const [, text] of shown) expect(text).toMatch(/^(line \d+ part-a part-b|tail without newline)$/);
  });

  it('a failed command: a one-line summary, then the last 20 lines of its stderr (stderr and JUnit)', () => {
    const tail = Array.from({ length: 20 }, (_, i) => `    │ err line ${i + 11}`).join('\n');
    expect(run.stderr).toMatch(/^\S+Z ✗ precheck\b.* \(\d+ms\): command exited with code 3\n/m);
    expect(run.stderr).toContain(`: command exited with code 3\n${tail}\n`);
    expect(run.stderr).not.toContain('err line 10\n');
    const junit = readFileSync(join(dir, 'junit.xml'), 'utf8');
    expect(junit).toContain(`<failure message="command exited with code 3">command exited with code 3\nerr line 11\n`);
    expect(junit).toContain('err line 30</failure>');
    // The final table has room for the summary only.
    expect(run.stdout).toMatch(/^ {2}✗ precheck .*ms {2}command exited with code 3$/m);
    expect(run.stdout).not.toContain('err line');
  });

  it('runs show prints the stdout and stderr tails of exec steps, the failed one too', async () => {
    const show = await runCli(['runs', 'show', runId], { cwd: dir });
    expect(show.exitCode).toBe(0);
    expect(show.stdout).toMatch(/^ {2}✓ chatty\b.* \([\d.]+s\)\n {6}exitCode: 0\n/m);
    expect(show.stdout).toContain('      stdout (last 20 lines):\n        │ line 11 part-a part-b\n');
    expect(show.stdout).toContain('        │ line 29 part-a part-b\n        │ tail without newline\n      stderr: (empty)\n');
    expect(show.stdout).toMatch(/^ {2}✗ precheck\b.* \(\d+ms\): command exited with code 3\n {6}exitCode: 3\n/m);
    expect(show.stdout).toContain(`      stderr (last 20 lines):\n${Array.from({ length: 20 }, (_, i) => `        │ err line ${i + 11}`).join('\n')}`);
  });

  it('a step’s title shows where it starts and ends, in the final table and in the incident report', async () => {
    expect(run.stderr).toMatch(/^\S+Z ▶ chatty — Print in pieces: run node -e /m);
    expect(run.stderr).toMatch(/^\S+Z ✓ chatty — Print in pieces \([\d.]+s\)$/m);
    expect(run.stdout).toMatch(/^ {2}✓ chatty {4}Print in pieces {7}[ \d.]+s$/m);
    const md = await runCli(['report', 'incident', runId, '--format', 'md'], { cwd: dir });
    expect(md.stdout).toMatch(/^\| chatty \| Print in pieces \| exec \|/m);
    expect(md.stdout).toMatch(/^\| precheck \| Check the replicas \| exec \| .* \| failure: command exited with code 3 \| \d+ms \|$/m);
    expect(md.stdout).toContain('### precheck — Check the replicas\n\ncommand exited with code 3\n\n```text\nerr line 11\n');
    const html = await runCli(['report', 'incident', runId, '--format', 'html'], { cwd: dir });
    expect(html.stdout).toContain('<td class="name">Check the replicas</td>');
    const show = await runCli(['runs', 'show', runId], { cwd: dir });
    expect(show.stdout).toMatch(/^ {2}✗ precheck — Check the replicas \(\d+ms\): command exited with code 3$/m);
  });
});

describe('plain output in CI', () => {
  it('prints at most one progress line a second per step, however often the step reports (CI=true)', async () => {
    const { dir: dataDir } = await startTestEngine();
    const dir = tempDir();
    const hotfix = join(ROOT, 'playbooks/hotfixes/margin-1.4.3.mjs');
    const sha = (readFileSync(join(ROOT, 'playbooks/hotfixes/SHA256SUMS'), 'utf8').split(' ')[0] ?? '').trim();
    writeFileSync(
      join(dir, 'shift.yaml'),
      `apiVersion: recoverctl/v1
kind: Playbook
metadata: { name: ci-rate }
engine: { dataDir: "${dataDir}" }
steps:
  - id: chatty
    uses: exec
    with: { command: [node, -e, "${chatty(45)}"] }
  - id: deploy
    uses: hotfix.deploy
    with: { component: margin, artifact: "${hotfix}", sha256: "${sha}" }
  - id: open
    uses: engine.resume
    with: { phases: [open], admission: 0 }
  - id: shift
    uses: traffic.shift
    with:
      stepWeights: [10, 100]
      bake: 2s
      interval: 100ms
      gates: { maxQueueDepth: 5000 }
      load: { rate: 100, accounts: 10, fund: "1000000", seed: 5 }
`,
    );
    const r = await runCli(['run', 'shift.yaml'], { cwd: dir, env: { CI: 'true' } });
    expect(r.exitCode, r.stderr).toBe(0);
    const { events } = onlyJournal<Event>(dir);
    for (const step of ['chatty', 'shift']) {
      const lines = progressLines(r.stderr, step);
      expect(lines.length, step).toBeGreaterThanOrEqual(3);
      // The journal keeps every sample; the log shows one a second at most.
      expect(events.filter((e) => e.event === 'progress' && e.step === step).length, step).toBeGreaterThan(lines.length);
      for (let i = 1; i < lines.length; i++) {
        expect((lines[i]?.[0] ?? 0) - (lines[i - 1]?.[0] ?? 0), `${step}: ${lines[i]?.[1]}`).toBeGreaterThanOrEqual(1_000);
      }
      for (const [, text] of lines) expect(text.length).toBeLessThanOrEqual(200);
    }
    // A sample reads as values, each once: `stage 2 · 100% · queueDepth 0 · errorRate 0 · p99 0.4 ms · sent 10`.
    const samples = progressLines(r.stderr, 'shift')
      .map(([, text]) => text)
      .filter((t) => t.includes('queueDepth'));
    expect(samples.length).toBeGreaterThanOrEqual(2);
    for (const s of samples)
      expect(s).toMatch(/^stage \d(?:\/2)? · \d+% · queueDepth \d+ · errorRate [\d.]+ · p99 (?:[\d.]+ ms|–) · sent \d+(?: · breaches \d+)?$/);
  });
});
