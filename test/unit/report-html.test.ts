import { appendFileSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildIncident } from '../../src/report/incident.js';
import { renderHtml, reportSections } from '../../src/report/html.js';
import { nowSection, runsSection } from '../../src/report/live.js';
import { labelWidth, placeLabels, timeTicks, valueTicks } from '../../src/report/svg.js';
import { contrast, DARK, GRAPHICS, LIGHT, TEXT_ON } from '../../src/report/theme.js';
import type { RunEvent } from '../../src/runner/events.js';
import { JournalFollower } from '../../src/runner/follow.js';
import { rng } from '../../src/util/random.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const at = (s: number): string => new Date(T0 + s * 1000).toISOString();
const base = (s: number) => ({ ts: at(s), run: 'r1' });

const runStart = (steps: string[]): RunEvent => ({
  ...base(0),
  event: 'run-start',
  step: null,
  playbook: 'pb',
  file: 'pb.yaml',
  sha256: 'x',
  pid: 1,
  resumed: false,
  fromStep: null,
  steps,
  rollbackSteps: ['undo'],
  vars: {},
  varOverrides: {},
  timeScale: 1,
  rto: '15m',
  incident: 'INC-9',
});

const start = (s: number, step: string, uses: string, phase: 'main' | 'rollback' = 'main'): RunEvent => ({
  ...base(s),
  event: 'start',
  step,
  phase,
  uses,
  name: null,
  attempt: 1,
  description: step,
});

/** A traffic-shift sample as the shift journals it: the judged measurement, then the values for the charts. */
const sample = (s: number, stage: number, depth: number, verdict: 'pass' | 'fail' = 'pass'): RunEvent[] => [
  measurement(s, stage, depth, verdict),
  {
    ...base(s),
    event: 'progress',
    step: 'shift',
    phase: 'main',
    message: 'sample',
    data: { stage, stages: 2, weight: stage === 1 ? 10 : 100, queueDepth: depth, errorRate: 0, p99LatencyMs: 1 },
  },
];

const measurement = (s: number, stage: number, depth: number, verdict: 'pass' | 'fail'): RunEvent => ({
  ...base(s),
  event: 'measurement',
  step: 'shift',
  phase: 'main',
  stage,
  stages: 2,
  weight: stage === 1 ? 10 : 100,
  verdict,
  judgements: [{ gate: 'maxQueueDepth', source: 'engine', verdict, value: depth, detail: `queue depth ${depth}`, threshold: '<= 500' }],
});

const stageStart = (s: number, stage: number): RunEvent => ({
  ...base(s),
  event: 'progress',
  step: 'shift',
  phase: 'main',
  message: `stage ${stage}/2`,
  data: { stage, stages: 2, weight: stage === 1 ? 10 : 100, bakeMs: 2000 },
});

/** A shift in two stages; the second breaches and the run rolls back. */
function failedShift(): RunEvent[] {
  return [
    runStart(['shift', 'report']),
    start(1, 'shift', 'traffic.shift'),
    stageStart(1, 1),
    ...sample(2, 1, 4),
    ...sample(3, 1, 9),
    stageStart(3, 2),
    ...sample(4, 2, 700, 'fail'),
    {
      ...base(5),
      event: 'fail',
      step: 'shift',
      phase: 'main',
      uses: 'traffic.shift',
      durationMs: 4000,
      attempts: 1,
      error: 'queue depth 700 > 500',
      continued: false,
    },
    { ...base(5), event: 'rollback', step: null, reason: 'shift failed' },
    start(5, 'undo', 'engine.halt', 'rollback'),
    { ...base(6), event: 'ok', step: 'undo', phase: 'rollback', uses: 'engine.halt', durationMs: 900, attempts: 1, outputs: {} },
    { ...base(6), event: 'rollback-end', step: null, ok: true, failedSteps: [] },
    { ...base(7), event: 'run-end', step: null, outcome: 'failed', exitCode: 1, durationMs: 7000, summary: 'failed' },
  ];
}

describe('the time and value axes', () => {
  it('puts ticks on round clock times, at most the number asked for unless that is fewer than four', () => {
    const ticks = timeTicks(Date.parse('2026-01-01T05:18:43.9Z'), Date.parse('2026-01-01T05:18:58.7Z'));
    expect(ticks.map((t) => t.label)).toEqual(['05:18:44', '05:18:46', '05:18:48', '05:18:50', '05:18:52', '05:18:54', '05:18:56', '05:18:58']);
    const long = timeTicks(T0, T0 + 47 * 60_000, 6);
    expect(long.length).toBeLessThanOrEqual(6);
    expect(long.every((t) => t.t % 600_000 === 0)).toBe(true);
    expect(timeTicks(T0, T0 + 800).map((t) => t.label)[1]).toBe('00:00:00.1');
    // 16.5 s: 2 s steps would be 9 (more than 8), 5 s steps only 3; four at least wins.
    expect(timeTicks(T0 + 500, T0 + 17_000).map((t) => t.label)).toEqual([
      '00:00:02',
      '00:00:04',
      '00:00:06',
      '00:00:08',
      '00:00:10',
      '00:00:12',
      '00:00:14',
      '00:00:16',
    ]);
    for (let span = 1_000; span < 3 * 3_600_000; span = Math.ceil(span * 1.07))
      expect(timeTicks(T0 + 1, T0 + 1 + span).length, `span ${span}`).toBeGreaterThanOrEqual(4);
  });

  it('gives a value axis round steps from 0 past the largest value', () => {
    expect(valueTicks(37)).toEqual([0, 10, 20, 30, 40]);
    expect(valueTicks(10_001)).toEqual([0, 5000, 10000, 15000]);
    expect(valueTicks(0)).toEqual([0, 0.5, 1]);
  });
});

describe('marker labels', () => {
  it('never overlap, however crowded the markers (seeded property)', () => {
    const rnd = rng(16);
    for (let trial = 0; trial < 300; trial++) {
      const n = 1 + Math.floor(rnd() * 14);
      const markers = Array.from({ length: n }, (_, i) => ({ x: 20 + rnd() * 900, text: `m${i}${'x'.repeat(Math.floor(rnd() * 16))}` }));
      const { labels, lanes } = placeLabels(markers, 4, 956);
      expect(labels).toHaveLength(n);
      for (const l of labels) {
        const start = l.anchor === 'start' ? l.textX : l.textX - l.width;
        expect(start).toBeGreaterThanOrEqual(4);
        expect(l.width).toBe(labelWidth(l.text));
        expect(l.lane).toBeLessThan(lanes);
      }
      for (let i = 0; i < n; i++)
        for (let j = i + 1; j < n; j++) {
          const a = labels[i] as (typeof labels)[number];
          const b = labels[j] as (typeof labels)[number];
          if (a.lane !== b.lane) continue;
          const [a0, b0] = [a.anchor === 'start' ? a.textX : a.textX - a.width, b.anchor === 'start' ? b.textX : b.textX - b.width];
          expect(a0 + a.width <= b0 || b0 + b.width <= a0, `${a.text} and ${b.text} in lane ${a.lane}`).toBe(true);
        }
    }
  });

  it('puts a label left of its marker near the right edge', () => {
    const { labels } = placeLabels([{ x: 950, text: 'closed +14.7s' }], 4, 956);
    expect(labels[0]?.anchor).toBe('end');
    expect(labels[0]?.textX).toBeLessThanOrEqual(950);
  });
});

describe('colours', () => {
  it('every text colour passes WCAG AA (4.5:1) on each background it is drawn on, light and dark', () => {
    for (const [name, p] of [
      ['light', LIGHT],
      ['dark', DARK],
    ] as const)
      for (const { text, on } of TEXT_ON) for (const bg of on) expect(contrast(p[text], p[bg]), `${name}: ${text} on ${bg}`).toBeGreaterThanOrEqual(4.5);
  });

  it('every chart colour stands 3:1 against the page (WCAG 1.4.11)', () => {
    for (const p of [LIGHT, DARK]) for (const g of GRAPHICS) expect(contrast(p[g], p.bg), g).toBeGreaterThanOrEqual(3);
  });

  it('computes contrast as WCAG does', () => {
    expect(contrast('#000000', '#ffffff')).toBeCloseTo(21, 5);
    expect(contrast('#777777', '#ffffff')).toBeCloseTo(4.48, 2);
  });
});

describe('the traffic shift, one row per stage', () => {
  it('folds samples into each gate’s min, max and last against its limit, with the stage’s bake and verdict', () => {
    const r = buildIncident(failedShift(), { at: at(0), reason: null }, new Date(at(8)));
    expect(r.stages).toEqual([
      {
        step: 'shift',
        stage: 1,
        stages: 2,
        weight: 10,
        bakeMs: 2000,
        startedAt: at(1),
        endedAt: at(3),
        samples: 2,
        verdict: 'pass',
        gates: [
          {
            gate: 'maxQueueDepth',
            source: 'engine',
            threshold: '<= 500',
            min: 4,
            max: 9,
            last: 9,
            pass: 2,
            fail: 0,
            inconclusive: 0,
            error: 0,
            verdict: 'pass',
            detail: 'queue depth 9',
          },
        ],
      },
      expect.objectContaining({ stage: 2, samples: 1, endedAt: at(5), verdict: 'fail' }),
    ]);
    const html = renderHtml(r);
    expect(html).toContain('<td class="verdict-pass" title="queue depth 9">min 4 · max 9 · last 9</td>');
    expect(html).toContain('maxQueueDepth<br><span class="muted">&lt;= 500</span>');
    expect(html).toContain('<details id="raw-samples"><summary>All 3 samples</summary>');
  });

  it('calls a stage still baking with nothing wrong running', () => {
    const r = buildIncident(failedShift().slice(0, 7), { at: at(0), reason: null }, new Date(at(3)), { soFar: 'running' });
    expect(r.stages.map((s) => s.verdict)).toEqual(['running']);
    expect(r.outcome).toBe('running');
    expect(r.rto.breached).toBe(false);
  });
});

describe('the report page', () => {
  it('opens a failed run with the failure and the rollback, before anything else', () => {
    const r = buildIncident(failedShift(), { at: at(0), reason: null }, new Date(at(8)));
    const ids = reportSections(r)
      .filter((s) => s.html)
      .map((s) => s.id);
    expect(ids.slice(0, 3)).toEqual(['summary', 'failure', 'rto-budget']);
    const failure = reportSections(r)[1]?.html ?? '';
    expect(failure).toContain('<strong>Step shift failed</strong> at 2026-01-01T00:00:05.000Z: queue depth 700 &gt; 500');
    expect(failure).toContain('<h2>Recovery failed</h2>');
    expect(failure).toContain('Rollback: <strong class="ok">succeeded</strong>; its steps: undo <span class="ok">success</span>');
    // A run that did not fail has no such section.
    const ok = buildIncident(failedShift().slice(0, 7), { at: at(0), reason: null }, new Date(at(8)));
    expect(reportSections(ok)[1]).toEqual({ id: 'failure', html: '' });
  });

  it('shows the report step itself done, at the report’s time', () => {
    const events = [runStart(['report']), start(1, 'report', 'report.incident')];
    const r = buildIncident(events, { at: null, reason: null }, new Date(at(2)), { self: 'report' });
    expect(r.steps[0]).toMatchObject({ id: 'report', outcome: 'success', endedAt: at(2), durationMs: 1000 });
    expect(buildIncident(events, { at: null, reason: null }, new Date(at(2))).steps[0]?.outcome).toBe('running');
  });

  it('gives every chart a title, a description and a text equivalent, and loads nothing from elsewhere', () => {
    const html = renderHtml(buildIncident(failedShift(), { at: at(0), reason: null }, new Date(at(8))));
    for (const id of ['rto-bar', 'timeline', 'traffic']) {
      expect(html).toContain(`<svg class="chart" id="${id}"`);
      expect(html).toMatch(
        new RegExp(
          `id="${id}"[^>]*role="img" aria-labelledby="${id}-title ${id}-desc"><title id="${id}-title">[^<]+</title><desc id="${id}-desc">[^<]+</desc>`,
        ),
      );
    }
    expect(html).toContain('<text class="axis-label"');
    expect(html).not.toMatch(/<script|https?:\/\//);
    expect(html).toContain('@media (prefers-color-scheme: dark)');
    expect(html).toContain('@media print');
  });
});

describe('journal text is text', () => {
  it('escapes every name, message and value from the journal, and coerces numbers that are not', () => {
    const hostile = '<script>alert(1)</script>';
    const events = failedShift().map((e): RunEvent => {
      if (e.event === 'run-start') return { ...e, playbook: hostile, incident: `<img src=x onerror=alert(2)>` };
      if (e.event === 'start') return { ...e, name: hostile };
      if (e.event === 'fail') return { ...e, error: `${hostile}\n<b>tail</b>` };
      if (e.event === 'measurement')
        return {
          ...e,
          stage: '1"><b>x</b>' as unknown as number,
          judgements: e.judgements.map((j) => ({ ...j, gate: hostile, value: '<svg onload=alert(3)>' as unknown as number, threshold: hostile })),
        };
      return e;
    });
    const r = buildIncident(events, { at: at(0), reason: hostile }, new Date(at(8)));
    const html = renderHtml(r);
    expect(html).not.toMatch(/<script|<img|<b>|<svg onload/);
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    const now = nowSection(r, { status: 'failed', records: events.length, tornBytes: 0, corruptAtLine: null, truncations: 0 }, T0).html;
    expect(now).not.toMatch(/<script|<b>|<svg onload/);
    // The report forbids script even if something slipped through.
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`);
  });
});

describe('a resumed run', () => {
  it('is judged by its latest attempt: the interrupted end of the first does not end it', () => {
    const events: RunEvent[] = [
      runStart(['a']),
      { ...base(2), event: 'run-end', step: null, outcome: 'interrupted', exitCode: 130, durationMs: 2000, summary: 'interrupted' },
      { ...runStart(['a']), ...base(600), resumed: true },
      start(601, 'a', 'wait'),
    ];
    const r = buildIncident(events, { at: at(0), reason: null }, new Date(at(700)), { soFar: 'running' });
    expect(r.outcome).toBe('running');
    expect(r.endedAt).toBe(at(700));
    expect(r.rto).toMatchObject({ actualMs: 700_000, breached: false });
    const stopped = buildIncident(events, { at: at(0), reason: null }, new Date(at(601)), { soFar: 'stopped (resumable)' });
    expect(stopped.rto.breached).toBe(true);
  });
});

describe('the dashboard’s live panel and run list', () => {
  it('shows the current step, stage, phase, weight and each gate’s last value against its limit', () => {
    const events = failedShift().slice(0, 10);
    const r = buildIncident(events, { at: at(0), reason: null }, new Date(at(4)), { soFar: 'running' });
    const html = nowSection(r, { status: 'running', records: events.length, tornBytes: 0, corruptAtLine: null, truncations: 0 }, T0 + 4500).html;
    expect(html).toContain('<dd id="now-step">shift<span class="muted"> for 3.50s</span></dd>');
    expect(html).toContain('<dd id="now-stage" data-stage="2">2/2 of shift (fail)</dd>');
    expect(html).toContain('<dd id="now-weight">100%</dd>');
    expect(html).toContain('<tr class="verdict-fail" data-gate="maxQueueDepth"><td>maxQueueDepth</td><td class="num">700</td><td>&lt;= 500</td>');
    expect(html).toContain('No approval waiting.');
  });

  it('names an approval waiting, and a torn tail once the run is no longer writing', () => {
    const events = [runStart(['approve']), start(1, 'approve', 'gate.approve')];
    const r = buildIncident(events, { at: null, reason: null }, new Date(at(2)), { soFar: 'running' });
    const waiting = nowSection(r, { status: 'running', records: 2, tornBytes: 40, corruptAtLine: null, truncations: 0 }, T0 + 2000).html;
    expect(waiting).toContain('Waiting for approval: approve');
    expect(waiting).not.toContain('torn');
    const stopped = nowSection(r, { status: 'stopped (resumable)', records: 2, tornBytes: 40, corruptAtLine: null, truncations: 0 }, T0 + 2000).html;
    expect(stopped).toContain('the journal ends in a torn record (40 bytes without their newline');
  });

  it('lists runs newest first with their RTO so far against the objective', () => {
    const item = { playbook: 'pb', status: 'success', stepsDone: 3, steps: 3, rtoMs: 20 * 60_000, objective: '15m', tornBytes: 0 };
    const html = runsSection(
      [
        { ...item, run: 'a', startedAt: at(0) },
        { ...item, run: 'b', startedAt: at(9), status: 'running', rtoMs: 1000 },
      ],
      '/s',
    ).html;
    expect(html.indexOf('data-run="b"')).toBeLessThan(html.indexOf('data-run="a"'));
    expect(html).toContain('<td class="num bad">20m00s of 15m</td>');
    expect(runsSection([], '/s').html).toContain('No runs in <code>/s</code> yet');
  });
});

describe('a journal followed as it grows', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const journal = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'follow-'));
    dirs.push(d);
    return join(d, 'journal.ndjson');
  };
  const line = (e: RunEvent): string => `${JSON.stringify(e)}\n`;

  it('takes a record once it is whole, and says how many bytes are torn meanwhile', () => {
    const file = journal();
    const f = new JournalFollower(file);
    expect(f.poll()).toBe(false);
    const first = line(runStart(['a']));
    const second = line(start(1, 'a', 'wait'));
    writeFileSync(file, first + second.slice(0, 10));
    expect(f.poll()).toBe(true);
    expect(f.current.events).toHaveLength(1);
    expect(f.current.tornBytes).toBe(10);
    expect(f.current.wholeBytes).toBe(Buffer.byteLength(first));
    // A record cut exactly before its newline parses, but is not whole yet.
    appendFileSync(file, second.slice(10, -1));
    f.poll();
    expect(f.current.events).toHaveLength(1);
    appendFileSync(file, '\n');
    expect(f.poll()).toBe(true);
    expect(f.current.events.map((e) => e.event)).toEqual(['run-start', 'start']);
    expect(f.current.tornBytes).toBe(0);
    expect(f.poll()).toBe(false);
  });

  it('stops at a whole line that does not parse, as a resume would, and starts again when the file shrinks', () => {
    const file = journal();
    writeFileSync(file, `${line(runStart(['a']))}{"not an event"\n${line(start(1, 'a', 'wait'))}`);
    const f = new JournalFollower(file);
    f.poll();
    expect(f.current.events).toHaveLength(1);
    expect(f.current.corruptAtLine).toBe(2);
    truncateSync(file, 0);
    writeFileSync(file, line(runStart([])));
    f.poll();
    expect(f.current).toMatchObject({ corruptAtLine: null, truncations: 1, tornBytes: 0 });
    expect(f.current.events).toHaveLength(1);
  });

  it('takes a record whose multi-byte character was written in two pieces, once whole', () => {
    const file = journal();
    const e: RunEvent = { ...base(1), event: 'progress', step: 'a', phase: 'main', message: 'résumé ✓' };
    const bytes = Buffer.from(line(runStart(['a'])) + line(e));
    const cut = bytes.indexOf(Buffer.from('✓')) + 1;
    writeFileSync(file, bytes.subarray(0, cut));
    const f = new JournalFollower(file);
    f.poll();
    expect(f.current.events).toHaveLength(1);
    appendFileSync(file, bytes.subarray(cut));
    f.poll();
    expect((f.current.events[1] as { message: string }).message).toBe('résumé ✓');
  });

  it('counts bytes, not characters, with non-ASCII messages', () => {
    const file = journal();
    const e: RunEvent = { ...base(1), event: 'progress', step: 'a', phase: 'main', message: 'ünïcödé → ✓' };
    writeFileSync(file, line(runStart(['a'])) + line(e));
    const f = new JournalFollower(file);
    f.poll();
    expect(f.current.events).toHaveLength(2);
    expect(f.current.wholeBytes).toBe(Buffer.byteLength(line(runStart(['a'])) + line(e)));
  });
});
