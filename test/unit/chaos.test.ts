import { describe, expect, it } from 'vitest';
import { FAULT_KINDS, formatTrial, hotfixVars, parseFaults, parseTrial, planTrials, strikePoints } from '../../src/chaos/faults.js';
import { finalNotifyKey, judge, outcomeOf, p1, p2, p4, type Observed } from '../../src/chaos/properties.js';
import { chaosJunit } from '../../src/cli/chaos.js';
import type { TrialResult } from '../../src/cli/chaos-trial.js';
import { UsageError } from '../../src/errors.js';
import { loadPlaybook } from '../../src/playbook/load.js';
import type { RunEvent } from '../../src/runner/events.js';

const bundled = await loadPlaybook('playbooks/um-excess-queue-depth.yaml');
const gateway = await loadPlaybook('playbooks/um-excess-queue-depth-gateway.yaml');
const unsafe = await loadPlaybook('test/fixtures/chaos/unsafe-no-smoke.yaml');

describe('fault catalogue: where each fault can strike', () => {
  it('places every fault that has a place in the bundled playbook, and none that needs infrastructure it lacks', () => {
    expect(strikePoints(bundled, 'engine-crash')).toEqual(bundled.steps.map((s) => s.id));
    expect(strikePoints(bundled, 'bad-hotfix')).toEqual(['smoke']);
    expect(strikePoints(bundled, 'smoke-failure')).toEqual(['smoke']);
    expect(strikePoints(bundled, 'burst-after-resume')[0]).toBe('shift');
    expect(strikePoints(bundled, 'metrics-down')).toEqual([]);
    expect(strikePoints(bundled, 'gateway-refuses')).toEqual([]);
    expect(strikePoints(gateway, 'metrics-down').length).toBeGreaterThan(0);
    expect(strikePoints(gateway, 'gateway-refuses').length).toBeGreaterThan(0);
  });

  it('finds the vars bad-hotfix swaps: artifact, digest, and the version the rollback names', () => {
    expect(hotfixVars(bundled)).toEqual({ step: 'smoke', artifact: 'hotfix', sha256: 'hotfixSha256', version: 'hotfixVersion' });
    // Without a smoke test the artifact is first read by the deploy.
    expect(hotfixVars(unsafe)?.step).toBe('deploy');
  });

  it('plans N trials from a seed: the same plan every time, each applicable fault at least once', () => {
    const a = planTrials(bundled, 14, 1, FAULT_KINDS);
    expect(planTrials(bundled, 14, 1, FAULT_KINDS)).toEqual(a);
    expect(a.skipped).toEqual(['metrics-down', 'gateway-refuses']);
    expect(new Set(a.trials.slice(0, 7).map((t) => t.fault)).size).toBe(7);
    for (const t of a.trials) expect(strikePoints(bundled, t.fault)).toContain(t.point);
    expect(new Set(a.trials.map((t) => t.seed)).size).toBe(14);
    expect(planTrials(bundled, 14, 2, FAULT_KINDS)).not.toEqual(a);
  });

  it('refuses a plan with no fault that can strike', () => {
    expect(() => planTrials(bundled, 3, 1, ['metrics-down'])).toThrow(/none of the faults \(metrics-down\) has a place to strike/);
  });

  it('parses and formats reproducers, and names what is wrong with a bad one', () => {
    const t = parseTrial('1003:engine-crash:shift', bundled);
    expect(t).toEqual({ seed: 1003, fault: 'engine-crash', point: 'shift', load: 20 });
    expect(formatTrial(t)).toBe('1003:engine-crash:shift');
    expect(formatTrial(parseTrial('7:bad-hotfix:smoke:0', bundled))).toBe('7:bad-hotfix:smoke:0');
    expect(() => parseTrial('x:engine-crash:shift', bundled)).toThrow(UsageError);
    expect(() => parseTrial('1:engine-crash', bundled)).toThrow(/expected SEED:FAULT:POINT/);
    expect(() => parseTrial('1:engine-crash:shfit', bundled)).toThrow(/cannot strike at step 'shfit' \(did you mean 'shift'\?\)/);
    expect(() => parseTrial('1:metrics-down:shift', bundled)).toThrow(/has no place to strike/);
    expect(() => parseTrial('1:engine-crahs:shift', bundled)).toThrow(/unknown fault 'engine-crahs' \(did you mean 'engine-crash'\?\)/);
    expect(() => parseFaults('wal-stall,,')).not.toThrow();
    expect(() => parseFaults(',')).toThrow(/at least one fault/);
  });
});

const start = { event: 'run-start', run: 'r1', ts: '', step: null } as unknown as RunEvent;
const ok = (step: string, phase: 'main' | 'rollback' = 'main') => ({ event: 'ok', run: 'r1', step, phase, uses: 'x', ts: '' }) as unknown as RunEvent;

/** A trial that recovered cleanly: every property holds. */
function recovered(over: Partial<Observed> = {}): Observed {
  return {
    exitCode: 0,
    lastLine: 'run r1 succeeded',
    engine: { running: true, phase: 'open', margin: '1.4.3' },
    previousMargin: '1.4.2',
    haltsUnderLoad: false,
    integrity: { clean: true, missing: 0, summary: 'clean' },
    acked: ['a', 'b'],
    inWal: new Set(['a', 'b', 'c']),
    wal: [
      { ts: 1000, phase: 'halted', reason: 'EXCESS_QUEUE_DEPTH: margin queue depth 2001' },
      { ts: 2000, margin: '1.4.3' },
      { ts: 3000, phase: 'open', reason: null },
    ],
    gateIntervalMs: 100,
    endedAt: 10_000,
    journal: [start, ok('deploy'), ok('notify-end')],
    notificationKeys: ['r1/notify-end'],
    finalKey: 'r1/notify-end',
    ...over,
  };
}

describe('safety properties, judged from what the trial left', () => {
  it('all hold for a clean recovery', () => {
    const j = judge(recovered());
    expect(j.outcome).toBe('recovered');
    expect(j.properties.map((p) => [p.id, p.ok])).toEqual([
      ['P1', true],
      ['P2', true],
      ['P3', true],
      ['P4', true],
    ]);
  });

  it('P1: open at the end on a module the burst halts again is broken, and so is exit 0 (P3)', () => {
    const o = recovered({ engine: { running: true, phase: 'open', margin: '1.4.4' }, haltsUnderLoad: true });
    expect(p1(o)).toMatchObject({ ok: false, message: "trading ended open on margin 1.4.4, which halts under the incident's load" });
    const j = judge(o);
    expect(j.properties.find((p) => p.id === 'P3')).toMatchObject({ ok: false, message: 'exit 0 with P1 broken' });
  });

  it('P1: an engine the run left down is judged as it comes back: open on a bad module after a restart is broken', () => {
    const o = recovered({ exitCode: 3, lastLine: 'a human must look', engine: { running: false, phase: 'open', margin: '1.4.4' }, haltsUnderLoad: true });
    expect(p1(o).ok).toBe(false);
    expect(p2(recovered({ acked: [] })).message).toBe(
      'no order was acknowledged during the run (trading never took the client load); nothing of the pre-outage state missing',
    );
  });

  it('P1: reopened on the module that halted under load, for longer than one gate interval', () => {
    const wal = [
      { ts: 1000, phase: 'halted', reason: 'EXCESS_QUEUE_DEPTH' },
      { ts: 2000, phase: 'open', reason: null },
      { ts: 2500, phase: 'halted', reason: 'rollback' },
    ];
    expect(p1(recovered({ wal, engine: { running: true, phase: 'halted', margin: '1.4.2' }, gateIntervalMs: 100 }))).toMatchObject({
      ok: false,
      message: 'trading stayed open 500 ms on a module that had halted under load (one gate interval: 100 ms)',
    });
    expect(p1(recovered({ wal, engine: { running: true, phase: 'halted', margin: '1.4.2' }, gateIntervalMs: 600 })).ok).toBe(true);
  });

  it('P2: an acknowledged order the WAL does not hold, or a missing pre-outage record', () => {
    expect(p2(recovered({ inWal: new Set(['a']) }))).toMatchObject({ ok: false, message: '1 of 2 acknowledged orders are not in the WAL (first: b)' });
    expect(p2(recovered({ integrity: { clean: false, missing: 3, summary: '3 missing' } })).ok).toBe(false);
  });

  it('P3: what the engine shows decides the outcome, not the exit code alone', () => {
    expect(outcomeOf(recovered({ exitCode: 1, engine: { running: true, phase: 'halted', margin: '1.4.2' } })).outcome).toBe('rolled-back');
    expect(outcomeOf(recovered({ exitCode: 0, engine: { running: true, phase: 'halted', margin: '1.4.3' } })).outcome).toBe('unsafe');
    expect(outcomeOf(recovered({ exitCode: 1, engine: { running: false, phase: 'halted', margin: '1.4.2' } })).outcome).toBe('unsafe');
    expect(outcomeOf(recovered({ exitCode: 3, lastLine: 'rollback step x failed: a human must look' })).outcome).toBe('human-needed');
    expect(outcomeOf(recovered({ exitCode: 3, lastLine: ' ' })).outcome).toBe('unsafe');
    expect(outcomeOf(recovered({ integrity: { clean: false, missing: 0, summary: '1 conservation' } })).outcome).toBe('unsafe');
  });

  it('P4: a step finished twice, a notification written twice, the final status not sent', () => {
    expect(p4(recovered({ journal: [start, ok('deploy'), start, ok('deploy')] }))).toMatchObject({
      ok: false,
      message: 'finished more than once: main/deploy ×2',
    });
    expect(p4(recovered({ notificationKeys: ['r1/notify-end', 'r1/notify-end'] })).ok).toBe(false);
    expect(p4(recovered({ notificationKeys: [] }))).toMatchObject({ ok: false, message: 'the final status notification (r1/notify-end) was sent 0 times' });
    // A run that needs a human (exit 3) owes no final status; a duplicate is still broken.
    expect(p4(recovered({ exitCode: 3, notificationKeys: [] })).ok).toBe(true);
    expect(p4(recovered({ journal: [start, ok('a'), start, ok('b')] })).message).toBe('2 steps finished once across 1 resume; final status sent once');
    // A final notification not on a file channel cannot be read back: said, not counted as missing.
    expect(p4(recovered({ finalKey: null, notificationKeys: [] }))).toMatchObject({
      ok: true,
      message: '2 steps finished once; no final notification to a file on that path to count',
    });
  });

  it('the final status notification is the last notify step on the path taken', () => {
    const key = (run: string, step: string) => `${run}/${step}`;
    const notify = { main: 'announce-resumed', rollback: 'rollback-notify' };
    expect(finalNotifyKey([start, ok('deploy')], notify, key)).toBe('r1/announce-resumed');
    expect(finalNotifyKey([start, { event: 'rollback', run: 'r1', ts: '', step: null, reason: 'x' } as RunEvent], notify, key)).toBe('r1/rollback-notify');
    expect(finalNotifyKey([], notify, key)).toBeNull();
  });
});

describe('chaos JUnit', () => {
  it('one test case per trial; a broken property is its failure', () => {
    const base = { struck: 'shift: x', exitCode: 0, rtoMs: 1000, seconds: 2, runId: 'r', kept: null, error: null };
    const results: TrialResult[] = [
      { ...base, spec: { seed: 1, fault: 'wal-stall', point: 'shift', load: 20 }, outcome: 'recovered', properties: judge(recovered()).properties },
      {
        ...base,
        spec: { seed: 2, fault: 'bad-hotfix', point: 'deploy', load: 0 },
        outcome: 'recovered',
        properties: judge(recovered({ engine: { running: true, phase: 'open', margin: '1.4.4' }, haltsUnderLoad: true })).properties,
      },
    ];
    const xml = chaosJunit('pb <1>', results);
    expect(xml.match(/<testcase /g)).toHaveLength(2);
    expect(xml).toContain('tests="2" failures="1"');
    expect(xml).toContain('name="trial 2: 2:bad-hotfix:deploy:0"');
    expect(xml).toContain('<failure message="P1: trading ended open on margin 1.4.4');
    expect(xml).toContain('pb &lt;1&gt;');
  });
});
