import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../support/cli.js';

const PLAYBOOK = `apiVersion: recoverctl/v1
kind: Playbook
metadata:
  name: e2e-rto
  rto: 90s
steps:
  - id: check
    uses: exec
    with: { command: [node, -e, "0"] }
  - id: settle
    uses: wait
    with: { duration: 1m }
  - id: approve
    uses: gate.approve
    with: { message: "Go on?", expectedWait: 30s }
  - id: finish
    uses: exec
    with: { command: [node, -e, "0"] }
`;

type Ends = [step: string, uses: string, ms: number, outputs?: Record<string, string>][];

/** A journal as the runner writes it: run-start, each step's start and end, run-end. */
function writeJournal(dir: string, runId: string, o: { steps?: string[]; timeScale?: number; ends: Ends; failLast?: boolean }): void {
  const base = { ts: '2026-01-01T00:00:00.000Z', run: runId };
  const events: object[] = [
    {
      ...base,
      event: 'run-start',
      step: null,
      playbook: 'e2e-rto',
      file: join(dir, 'rto.yaml'),
      sha256: 'earlier',
      pid: 1,
      resumed: false,
      fromStep: null,
      steps: o.steps ?? ['check', 'settle', 'approve', 'finish'],
      rollbackSteps: [],
      vars: {},
      varOverrides: {},
      timeScale: o.timeScale ?? 1,
      rto: '90s',
      incident: null,
    },
  ];
  o.ends.forEach(([step, uses, ms, outputs], i) => {
    const phase = 'main';
    events.push({ ...base, event: 'start', step, phase, uses, name: null, attempt: 1, description: uses });
    const failed = o.failLast === true && i === o.ends.length - 1;
    if (failed) events.push({ ...base, event: 'fail', step, phase, uses, durationMs: ms, attempts: 1, error: 'command exited with code 1', continued: false });
    else events.push({ ...base, event: 'ok', step, phase, uses, durationMs: ms, attempts: 1, outputs: outputs ?? {} });
  });
  const outcome = o.failLast ? 'failed' : 'success';
  events.push({ ...base, event: 'run-end', step: null, outcome, exitCode: o.failLast ? 1 : 0, durationMs: 0, summary: '' });
  const runDir = join(dir, '.recoverctl', 'runs', runId);
  mkdirSync(runDir, { recursive: true });
  writeFileSync(join(runDir, 'journal.ndjson'), events.map((e) => `${JSON.stringify(e)}\n`).join(''));
}

const EARLIER = ['20260101T000000Z-aaaaaa', '20260102T000000Z-bbbbbb', '20260103T000000Z-cccccc', '20260104T000000Z-dddddd', '20251201T000000Z-eeeeee'];

/** Two real runs, a rehearsal at time scale 0.1 (its 1m wait took 6s), a run that failed, and a run of an older step list. */
function history(dir: string): void {
  writeFileSync(join(dir, 'rto.yaml'), PLAYBOOK);
  writeJournal(dir, '20260101T000000Z-aaaaaa', {
    ends: [
      ['check', 'exec', 2_000],
      ['settle', 'wait', 60_000],
      ['approve', 'gate.approve', 95_000, { approvedBy: 'tty:alice' }],
      ['finish', 'exec', 1_000],
    ],
  });
  writeJournal(dir, '20260102T000000Z-bbbbbb', {
    timeScale: 0.1,
    ends: [
      ['check', 'exec', 3_000],
      ['settle', 'wait', 6_200],
      ['approve', 'gate.approve', 4, { approvedBy: 'rehearsal' }],
      ['finish', 'exec', 1_500],
    ],
  });
  writeJournal(dir, '20260103T000000Z-cccccc', {
    ends: [
      ['check', 'exec', 2_500],
      ['settle', 'wait', 60_500],
      ['approve', 'gate.approve', 40_000, { approvedBy: 'tty:bob' }],
      ['finish', 'exec', 1_200],
    ],
  });
  writeJournal(dir, '20260104T000000Z-dddddd', {
    failLast: true,
    ends: [
      ['check', 'exec', 2_000],
      ['settle', 'wait', 60_000],
      ['approve', 'gate.approve', 50_000, { approvedBy: 'tty:carol' }],
      ['finish', 'exec', 10_000],
    ],
  });
  writeJournal(dir, '20251201T000000Z-eeeeee', { steps: ['check', 'finish'], ends: [['check', 'exec', 1_000]] });
}

describe('plan with earlier runs in the state dir', () => {
  it('--json has the RTO prediction; the plain plan ends with it', async () => {
    const dir = tempDir();
    history(dir);
    const json = await runCli(['plan', 'rto.yaml', '--json'], { cwd: dir });
    expect(json.exitCode).toBe(0);
    const event = JSON.parse(json.stdout) as { event: string; rtoPrediction: Record<string, unknown> };
    expect(event.event).toBe('plan');
    // Recovery: check {2, 3, 2.5, 2}s, settle {60, 60.2, 60.5, 60}s (the rehearsal's 6.2s less its 6s wait,
    // plus 1m), approve at its expectedWait 30s, finish {1, 1.5, 1.2}s (the failed run's finish is its own
    // path): 48 combinations from 93s to 95s weighing 3 (the recovered runs) each, and the failed run
    // (2 + 60 + 30 + 10 = 102s) weighing 48, a quarter. p50: the first to reach half of 192 is the 32nd
    // combination, 94s; p90 and p99 are past every combination: the failed run.
    expect(event.rtoPrediction).toMatchObject({
      status: 'predicted',
      playbook: 'e2e-rto',
      objectiveMs: 90_000,
      runs: 4,
      ignoredRuns: 1,
      exact: true,
      outcomes: 49,
      p50Ms: 94_000,
      p90Ms: 102_000,
      p99Ms: 102_000,
      atRisk: true,
      tail: ['settle', 'approve'],
      fewSamples: true,
      rolledBackRuns: 1,
      rolledBackShare: 0.25,
      approvalsNotCounted: [],
      perStep: {
        check: { samples: 4, medianMs: 2_000, basis: 'observed' },
        settle: { samples: 4, medianMs: 60_000, basis: 'observed' },
        approve: { samples: 0, medianMs: 30_000, basis: 'expectedWait' },
        finish: { samples: 3, medianMs: 1_200, basis: 'observed' },
      },
    });

    const plain = await runCli(['plan', 'rto.yaml'], { cwd: dir });
    expect(plain.exitCode).toBe(0);
    const lines = plain.stdout.split('\n');
    const at = lines.findIndex((l) => l.startsWith('RTO prediction:'));
    expect(lines.slice(at, at + 5)).toEqual([
      'RTO prediction: p50 1m34s, p90 1m42s, p99 1m42s against an objective of 1m30s: at risk (p90 over it)',
      '  from 4 earlier runs (exact over 49 outcomes); the tail: settle (mean 1m00s), approve (mean 30s)',
      '  few samples (4 runs, under 5): not to be trusted',
      '  1 run failed: 25% of the outcomes, each counted as it ran (its rollback included)',
      '  1 earlier run ignored: a different step list (the playbook changed)',
    ]);
  });

  it('says so when there is no history, or only runs of an older step list', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'rto.yaml'), PLAYBOOK);
    const none = await runCli(['plan', 'rto.yaml'], { cwd: dir });
    expect(none.stdout).toContain('RTO prediction: none (no earlier runs or rehearsals of e2e-rto in the state dir: no history)');
    writeJournal(dir, 'old-1', { steps: ['check', 'finish'], ends: [['check', 'exec', 1_000]] });
    writeJournal(dir, 'old-2', { steps: ['check', 'finish'], ends: [['check', 'exec', 1_000]] });
    const changed = await runCli(['plan', 'rto.yaml', '--json'], { cwd: dir });
    expect(JSON.parse(changed.stdout)).toMatchObject({ rtoPrediction: { status: 'none', reason: 'playbook-changed', ignoredRuns: 2 } });
    const plain = await runCli(['plan', 'rto.yaml'], { cwd: dir });
    expect(plain.stdout).toContain('RTO prediction: none (2 earlier runs of e2e-rto have a different step list: the playbook changed)');
  });

  it('a run journals the prediction it starts with, and its incident report shows it beside the measured RTO', async () => {
    const dir = tempDir();
    history(dir);
    const r = await runCli(['run', 'rto.yaml', '--yes', '--time-scale', '0.001'], { cwd: dir });
    expect(r.exitCode).toBe(0);
    const newest = readdirSync(join(dir, '.recoverctl', 'runs')).find((id) => !EARLIER.includes(id));
    expect(newest).toBeDefined();
    const start = JSON.parse(readFileSync(join(dir, '.recoverctl', 'runs', newest as string, 'journal.ndjson'), 'utf8').split('\n')[0] as string) as {
      rtoPrediction: Record<string, unknown>;
    };
    // For a real incident as plan says, and for this run: its 1m wait at 60ms, the approval answered by --yes.
    // Recovery: check {2, 3, 2.5, 2}s + settle {60, 260, 560, 60}ms + finish {1, 1.5, 1.2}s (p50 4.06s);
    // the failed run: 2s + 60ms + 10s.
    expect(start.rtoPrediction).toMatchObject({
      status: 'predicted',
      p50Ms: 94_000,
      p90Ms: 102_000,
      runs: 4,
      asRun: { timeScale: 0.001, autoApproved: true, p50Ms: 4_060, p90Ms: 12_060, p99Ms: 12_060 },
    });
    const report = await runCli(['report', 'incident', newest as string, '--format', 'md'], { cwd: dir });
    expect(report.stdout).toMatch(
      /^- RTO: \S+ from detection against an objective of 90s: met \(predicted for this run, time scale 0\.001, approvals answered at once: p50 4\.06s, p90 12\.1s; for a real incident p50 1m34s, p90 1m42s, at risk; from 4 earlier runs, few samples\)$/m,
    );
  });
});
