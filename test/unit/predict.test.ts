import { describe, expect, it } from 'vitest';
import { parsePlaybook, type LoadedPlaybook } from '../../src/playbook/load.js';
import { buildIncident, renderMarkdown } from '../../src/report/incident.js';
import { renderHtml } from '../../src/report/html.js';
import type { EventSink, RunEvent, RunOutcome } from '../../src/runner/events.js';
import { Runner } from '../../src/runner/execute.js';
import { atTimeScale, combine, historyOf, predictionLines, predictRto, type History, type JournalOfRun, type RtoPrediction } from '../../src/runner/predict.js';
import { buildRedactor, resolveVars } from '../../src/runner/scope.js';
import { REGISTRY } from '../../src/steps/registry.js';
import { approveAll, fakeEffects, VirtualClock } from '../support/fakes.js';

const S = 1_000;
const M = 60_000;

function playbook(steps: string, o: { name?: string; rto?: string; rollback?: string; head?: string } = {}): LoadedPlaybook {
  const text = `apiVersion: recoverctl/v1
kind: Playbook
metadata:
  name: ${o.name ?? 'pb'}
${o.rto ? `  rto: ${o.rto}\n` : ''}${o.head ?? ''}steps:
${steps}${o.rollback ? `rollback:\n${o.rollback}` : ''}`;
  return parsePlaybook(Buffer.from(text), '/playbooks/pb.yaml', '/playbooks/pb.yaml');
}

const exec = (id: string): string => `  - id: ${id}\n    uses: exec\n    with: { command: [node, -e, "0"] }\n`;

/** A step's end as the runner journals it. */
type End =
  | { step: string; ms: number; uses?: string; outputs?: Record<string, string | number | boolean | null>; phase?: 'main' | 'rollback'; fail?: true }
  | { step: string; skip: 'condition' | 'manual' | 'earlier-failure'; phase?: 'main' | 'rollback' };

/** A journal: run-start with the playbook's step list (or `steps`), the step ends in order, run-end. */
function journal(
  runId: string,
  pb: LoadedPlaybook,
  ends: End[],
  o: { timeScale?: number; outcome?: RunOutcome | null; steps?: string[]; vars?: Record<string, string>; name?: string } = {},
): JournalOfRun {
  const base = { ts: '2026-01-01T00:00:00.000Z', run: runId };
  const events: RunEvent[] = [
    {
      ...base,
      event: 'run-start',
      step: null,
      playbook: o.name ?? pb.spec.metadata.name,
      file: pb.path,
      sha256: pb.sha256,
      pid: 1,
      resumed: false,
      fromStep: null,
      steps: o.steps ?? pb.steps.map((s) => s.id),
      rollbackSteps: pb.rollback.map((s) => s.id),
      vars: o.vars ?? {},
      varOverrides: {},
      timeScale: o.timeScale ?? 1,
      rto: pb.spec.metadata.rto ?? null,
      incident: null,
    },
  ];
  for (const e of ends) {
    const phase = e.phase ?? 'main';
    if ('skip' in e) {
      events.push({ ...base, event: 'skip', step: e.step, phase, uses: 'exec', name: null, reason: e.skip, detail: '' });
    } else if (e.fail) {
      if (phase === 'main')
        events.push({ ...base, event: 'fail', step: e.step, phase, uses: e.uses ?? 'exec', durationMs: e.ms, attempts: 1, error: 'boom', continued: false });
      else events.push({ ...base, event: 'fail', step: e.step, phase, uses: e.uses ?? 'exec', durationMs: e.ms, attempts: 1, error: 'boom', continued: false });
      if (phase === 'main') events.push({ ...base, event: 'rollback', step: null, reason: `step ${e.step} failed` });
    } else {
      events.push({ ...base, event: 'ok', step: e.step, phase, uses: e.uses ?? 'exec', durationMs: e.ms, attempts: 1, outputs: e.outputs ?? {} });
    }
  }
  const outcome = o.outcome === undefined ? 'success' : o.outcome;
  if (outcome) events.push({ ...base, event: 'run-end', step: null, outcome, exitCode: 0, durationMs: 0, summary: '' });
  return { runId, events };
}

function predicted(p: RtoPrediction): Extract<RtoPrediction, { status: 'predicted' }> {
  if (p.status !== 'predicted') throw new Error(`expected a prediction, got ${p.reason}`);
  return p;
}

describe('the RTO prediction', () => {
  // a in {1, 2, 3}s, b in {10, 20, 40}s, c in {0, 100, 200}ms: 27 distinct totals, sorted
  // 11.0 11.1 11.2 12.0 .. 13.2 (ranks 1-9), 21.0 .. 23.2 (10-18), 41.0 .. 43.2 (19-27).
  // Nearest rank: p50 is the ceil(13.5) = 14th (22.1s), p90 the ceil(24.3) = 25th (43.0s), p99 the 27th (43.2s).
  const pb = playbook(exec('a') + exec('b') + exec('c'), { rto: '30s' });
  const runs = [
    [1 * S, 10 * S, 0],
    [2 * S, 20 * S, 100],
    [3 * S, 40 * S, 200],
  ].map(([a, b, c], i) =>
    journal(`r${i}`, pb, [
      { step: 'a', ms: a as number },
      { step: 'b', ms: b as number },
      { step: 'c', ms: c as number },
    ]),
  );

  it('enumerates every combination of the steps’ samples and takes nearest-rank percentiles', () => {
    const p = predicted(predictRto(pb, historyOf(pb, runs)));
    expect(p).toMatchObject({ exact: true, outcomes: 27, p50Ms: 22_100, p90Ms: 43_000, p99Ms: 43_200, runs: 3, ignoredRuns: 0, objectiveMs: 30 * S });
    expect(p.perStep).toEqual({
      a: { samples: 3, medianMs: 2 * S, basis: 'observed' },
      b: { samples: 3, medianMs: 20 * S, basis: 'observed' },
      c: { samples: 3, medianMs: 100, basis: 'observed' },
    });
  });

  it('is at risk when p90 exceeds the objective, naming the two steps with the largest mean in the tail', () => {
    const p = predicted(predictRto(pb, historyOf(pb, runs)));
    // At or above p90 (43s): a = 3s, b = 40s and c = 0, 100, 200ms.
    expect(p.atRisk).toBe(true);
    expect(p.tail).toEqual(['b', 'a']);
    expect(p.tailMeansMs).toEqual({ b: 40 * S, a: 3 * S });
    const relaxed = playbook(exec('a') + exec('b') + exec('c'), { rto: '45s' });
    expect(predicted(predictRto(relaxed, historyOf(relaxed, runs))).atRisk).toBe(false);
    const lines = predictionLines(p);
    expect(lines[0]).toBe('RTO prediction: p50 22.1s, p90 43s, p99 43.2s against an objective of 30s: at risk (p90 over it)');
    expect(lines[1]).toBe('  from 3 earlier runs (exact over 27 outcomes); the tail: b (mean 40s), a (mean 3s)');
  });

  it('flags fewer than five runs as few samples', () => {
    expect(predicted(predictRto(pb, historyOf(pb, runs))).fewSamples).toBe(true);
    expect(predictionLines(predictRto(pb, historyOf(pb, runs)))).toContain('  few samples (3 runs, under 5): not to be trusted');
    const five = [...runs, ...runs.slice(0, 2).map((r, i) => ({ ...r, runId: `again-${i}` }))];
    const p = predicted(predictRto(pb, historyOf(pb, five)));
    expect(p.fewSamples).toBe(false);
    expect(predictionLines(p).join('\n')).not.toContain('few samples');
  });

  it('refuses to predict when every earlier run had another step list, and says so', () => {
    const changed = playbook(exec('a') + exec('b') + exec('c') + exec('d'), { name: 'um-excess-queue-depth', rto: '15m' });
    const old = [0, 1, 2].map((i) => journal(`old-${i}`, changed, [{ step: 'a', ms: S }], { steps: ['a', 'b', 'c'] }));
    const p = predictRto(changed, historyOf(changed, old));
    expect(p).toEqual({ status: 'none', reason: 'playbook-changed', playbook: 'um-excess-queue-depth', objectiveMs: 15 * M, runs: 0, ignoredRuns: 3 });
    expect(predictionLines(p)).toEqual(['RTO prediction: none (3 earlier runs of um-excess-queue-depth have a different step list: the playbook changed)']);
    // Beside runs of the playbook as it is, the others are only counted as ignored.
    const mixed = predicted(predictRto(pb, historyOf(pb, [...runs, journal('old', pb, [{ step: 'a', ms: S }], { steps: ['a', 'c'] })])));
    expect(mixed).toMatchObject({ runs: 3, ignoredRuns: 1, p50Ms: 22_100 });
    expect(predictionLines(mixed)).toContain('  1 earlier run ignored: a different step list (the playbook changed)');
  });

  it('says there is no history when no run of the playbook was journaled', () => {
    const other = journal('x', pb, [{ step: 'a', ms: S }], { name: 'another-playbook' });
    const p = predictRto(pb, historyOf(pb, [other]));
    expect(p).toMatchObject({ status: 'none', reason: 'no-history', runs: 0, ignoredRuns: 0 });
    expect(predictionLines(p)).toEqual(['RTO prediction: none (no earlier runs or rehearsals of pb in the state dir: no history)']);
  });

  it('is reproducible with seeded draws when the combinations are too many to enumerate', () => {
    const history = historyOf(pb, runs);
    const a = predicted(predictRto(pb, history, { exactLimit: 10 }));
    const b = predicted(predictRto(pb, history, { exactLimit: 10 }));
    expect(a).toEqual(b);
    expect(a).toMatchObject({ exact: false, outcomes: 20_000, p99Ms: 43_200 });
    // The exact answer up to sampling: 22.1s is in the middle of 21.0 .. 23.2.
    expect(a.p50Ms).toBeGreaterThanOrEqual(21_000);
    expect(a.p50Ms).toBeLessThanOrEqual(23_200);
    expect(predictionLines(a)[1]).toContain('20,000 seeded Monte Carlo draws');
  });
});

describe('rehearsal durations at real time', () => {
  const pb = playbook(
    `  - id: settle
    uses: wait
    with: { duration: "\${{ vars.pause }}" }
  - id: resume
    uses: engine.resume
    with: { dwell: 30s }
  - id: shift
    uses: traffic.shift
    with: { stages: [{ weight: 50, bake: 5m }, { weight: 100, bake: 5m }] }
`,
    { head: 'engine:\n  dataDir: eng\nvars:\n  pause: 1m\n' },
  );
  // At time scale 0.01: a 6s pause (10m), two dwells of 300ms (30s each), two bakes of 3s (5m each).
  const rehearsal = journal(
    'rehearsal',
    pb,
    [
      { step: 'settle', uses: 'wait', ms: 6_040 },
      { step: 'resume', uses: 'engine.resume', ms: 800 },
      { step: 'shift', uses: 'traffic.shift', ms: 6_500 },
    ],
    { timeScale: 0.01, vars: { pause: '10m' } },
  );

  it('counts the waits the runner scaled at their configured length and the rest as observed', () => {
    const p = predicted(predictRto(pb, historyOf(pb, [rehearsal])));
    expect(p.perStep).toEqual({
      settle: { samples: 1, medianMs: 10 * M + 40, basis: 'observed' },
      resume: { samples: 1, medianMs: 60 * S + 200, basis: 'observed' },
      shift: { samples: 1, medianMs: 10 * M + 500, basis: 'observed' },
    });
    expect(p.p50Ms).toBe(21 * M + 740);
    expect(p.asRun).toBeNull();
    // Predicted for a rehearsal at the same scale too, the observations stand as they are.
    const rehearsed = predicted(predictRto(pb, historyOf(pb, [rehearsal]), { timeScale: 0.01 }));
    expect(rehearsed.p50Ms).toBe(21 * M + 740);
    expect(rehearsed.asRun).toEqual({ timeScale: 0.01, autoApproved: false, p50Ms: 13_340, p90Ms: 13_340, p99Ms: 13_340 });
    expect(predictionLines(rehearsed).at(-1)).toBe('  for this run (time scale 0.01): p50 13.3s, p90 13.3s, p99 13.3s');
  });

  it('scales only the part of the wait a step got through when it stopped early', () => {
    const [, , shift] = historyOf(pb, [rehearsal]).runs[0]?.taken ?? [];
    expect(shift).toBeDefined();
    // A shift that failed after 3.2s of its 6s of bakes: all of it waiting, 3.2s × 100.
    expect(atTimeScale({ ...shift!, observedMs: 3_200 }, 1)).toBe(320 * S);
  });

  it('matches what the runner really waits (a wait step run at time scale 0.01 on a virtual clock), which journals the prediction it started with', async () => {
    const only = playbook('  - id: settle\n    uses: wait\n    with: { duration: 10m }\n');
    const events: RunEvent[] = [];
    const sink: EventSink = { write: (e) => void events.push(e) };
    const vars = resolveVars(only, {}, {});
    const runner = new Runner({
      playbook: only,
      runId: 'virtual',
      runDir: '/state/runs/virtual',
      vars,
      varOverrides: {},
      env: {},
      redactor: buildRedactor(only, vars),
      clock: new VirtualClock(),
      approver: approveAll,
      registry: REGISTRY,
      effects: fakeEffects({}),
      scratchDir: '/tmp',
      engine: undefined,
      timeScale: 0.01,
      sink,
      interrupt: new AbortController().signal,
      rtoPrediction: predictRto(only, historyOf(only, [])),
    });
    await runner.run();
    expect(events[0]).toMatchObject({ event: 'run-start', rtoPrediction: { status: 'none', reason: 'no-history' } });
    const p = predicted(predictRto(only, historyOf(only, [{ runId: 'virtual', events }])));
    expect(p.p50Ms).toBe(10 * M);
  });
});

describe('approvals', () => {
  const pb = playbook(
    `${exec('a')}  - id: timed
    uses: gate.approve
    with: { message: "go?", expectedWait: 10m }
  - id: asked
    uses: gate.approve
    with: { message: "really?" }
`,
  );
  const rehearsed = journal(
    'rehearsed',
    pb,
    [
      { step: 'a', ms: S },
      { step: 'timed', uses: 'gate.approve', ms: 5, outputs: { approvedBy: 'rehearsal' } },
      { step: 'asked', uses: 'gate.approve', ms: 5, outputs: { approvedBy: 'rehearsal' } },
    ],
    { timeScale: 0.1 },
  );
  const real = journal('real', pb, [
    { step: 'a', ms: S },
    { step: 'timed', uses: 'gate.approve', ms: 3 * M, outputs: { approvedBy: 'tty:alice' } },
    { step: 'asked', uses: 'gate.approve', ms: 4 * M, outputs: { approvedBy: 'tty:bob' } },
  ]);

  it('count at expectedWait when it is set, whatever was observed', () => {
    const p = predicted(predictRto(pb, historyOf(pb, [rehearsed, real])));
    expect(p.perStep.timed).toEqual({ samples: 0, medianMs: 10 * M, basis: 'expectedWait' });
  });

  it('count as a person answered them in real runs, and not at all (flagged) when no person ever did', () => {
    const p = predicted(predictRto(pb, historyOf(pb, [rehearsed, real])));
    expect(p.perStep.asked).toEqual({ samples: 1, medianMs: 4 * M, basis: 'observed' });
    expect(p.p50Ms).toBe(S + 10 * M + 4 * M);
    const onlyRehearsed = predicted(predictRto(pb, historyOf(pb, [rehearsed])));
    expect(onlyRehearsed.perStep.asked).toEqual({ samples: 0, medianMs: 0, basis: 'not counted' });
    expect(onlyRehearsed.approvalsNotCounted).toEqual(['asked']);
    expect(onlyRehearsed.p50Ms).toBe(S + 10 * M);
    expect(predictionLines(onlyRehearsed)).toContain('  approvals not counted (no expectedWait, never answered by a person in a real run): asked');
  });

  it('count as 0 for a run that answers them at once (--yes, a rehearsal), beside the prediction for a real incident', () => {
    const p = predicted(predictRto(pb, historyOf(pb, [rehearsed, real]), { autoApprove: true }));
    expect(p).toMatchObject({ p50Ms: S + 10 * M + 4 * M, asRun: { timeScale: 1, autoApproved: true, p50Ms: S } });
    expect(predictionLines(p).at(-1)).toBe('  for this run (approvals answered at once): p50 1s, p90 1s, p99 1s');
  });
});

describe('runs that failed and rolled back', () => {
  const pb = playbook(exec('a') + exec('b'), { rollback: '  - id: undo\n    uses: exec\n    with: { command: [node, -e, "0"] }\n' });
  const history = (): History =>
    historyOf(pb, [
      journal('ok-1', pb, [
        { step: 'a', ms: 1 * S },
        { step: 'b', ms: 1 * S },
      ]),
      journal('ok-2', pb, [
        { step: 'a', ms: 1 * S },
        { step: 'b', ms: 3 * S },
      ]),
      journal(
        'failed',
        pb,
        [
          { step: 'a', ms: 2 * S },
          { step: 'b', ms: 500, fail: true },
          { step: 'undo', ms: 4 * S, phase: 'rollback' },
        ],
        { outcome: 'failed' },
      ),
      // Never finished: its step counts, its path does not.
      journal('crashed', pb, [{ step: 'a', ms: 1 * S }], { outcome: null }),
    ]);

  it('are a path of their own, weighted by how often runs took it; their finished steps still sample the recovery', () => {
    // Recovery: a in {1, 1, 2, 1}s, b in {1, 3}s: 8 combinations weighing 2 (the recovered runs) each;
    // the rolled-back run (a 2s + b 0.5s + undo 4s = 6.5s) weighs 8 (the combinations): a third of 24.
    // Sorted with cumulative weight: 2s 2s 2s (6), 3s (8), 4s 4s 4s (14), 5s (16), 6.5s (24).
    // p50: the first to reach 12 is 4s; p90 (21.6) and p99 (23.76): 6.5s.
    const p = predicted(predictRto(pb, history()));
    expect(p).toMatchObject({ exact: true, outcomes: 9, p50Ms: 4 * S, p90Ms: 6_500, p99Ms: 6_500, rolledBackRuns: 1, runs: 4 });
    expect(p.rolledBackShare).toBeCloseTo(1 / 3);
    expect(p.tail).toEqual(['undo', 'a']);
    expect(predictionLines(p)).toContain('  1 run failed: 33% of the outcomes, each counted as it ran (its rollback included)');
  });

  it('draw the rolled-back path with its share in the Monte Carlo', () => {
    const m = {
      steps: [{ id: 'a', values: [1 * S] }],
      rolledBack: [{ total: 10 * S, byStep: new Map([['undo', 10 * S]]) }],
      recoveredWeight: 3,
      rolledBackWeight: 1,
    };
    const out = combine(m, { exactLimit: 0 });
    expect(out).toMatchObject({ exact: false, p50Ms: 1 * S, p90Ms: 10 * S, tail: [{ step: 'undo', meanMs: 10 * S }] });
  });
});

describe('the incident report', () => {
  it('shows the prediction the run started with beside the measured RTO', () => {
    const pb = playbook(exec('a'), { rto: '15m' });
    const run = journal('now', pb, [{ step: 'a', ms: 1_000 * S }]);
    const prediction = predictRto(pb, historyOf(pb, [journal('before', pb, [{ step: 'a', ms: 17 * M }])]));
    const start = run.events[0] as Extract<RunEvent, { event: 'run-start' }>;
    const events = [{ ...start, rtoPrediction: prediction }, ...run.events.slice(1)];
    events[events.length - 1] = { ...(events.at(-1) as RunEvent), ts: '2026-01-01T00:16:40.000Z' };
    const r = buildIncident(events, { at: null, reason: null }, new Date());
    expect(r.rto.prediction).toEqual(prediction);
    expect(renderMarkdown(r)).toContain(
      '- RTO: 16m40s from detection against an objective of 15m: **BREACHED** (predicted p50 17m00s, p90 17m00s from 1 earlier run, few samples, at risk)',
    );
    expect(renderHtml(r)).toContain('(predicted p50 17m00s, p90 17m00s from 1 earlier run, few samples, at risk)</p>');
  });
});
