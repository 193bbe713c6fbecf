import { describe, expect, it } from 'vitest';
import { buildIncident, renderMarkdown } from '../../src/report/incident.js';
import { renderHtml } from '../../src/report/html.js';
import type { RunEvent } from '../../src/runner/events.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const at = (min: number): string => new Date(T0 + min * 60_000).toISOString();
const base = (min: number) => ({ ts: at(min), run: 'r1' });

/** A recovery: detected at 0, run from 2, notified at 3, hotfix at 10, trading open at 20, shift judged, ended at 30. */
function events(o: { comms?: string; commsAt?: number[] } = {}): RunEvent[] {
  return [
    {
      ...base(2),
      event: 'run-start',
      step: null,
      playbook: 'pb',
      file: 'pb.yaml',
      sha256: 'x',
      pid: 1,
      resumed: false,
      fromStep: null,
      steps: ['attach', 'tell', 'deploy', 'resume', 'shift'],
      rollbackSteps: [],
      vars: {},
      varOverrides: {},
      timeScale: 1,
      rto: '45m',
      incident: 'INC-1',
      comms: o.comms ?? null,
    },
    {
      ...base(2),
      event: 'ok',
      step: 'attach',
      phase: 'main',
      uses: 'engine.start',
      durationMs: 1,
      attempts: 1,
      outputs: { haltedAt: at(0), reason: 'EXCESS_QUEUE_DEPTH' },
    },
    { ...base(3), event: 'ok', step: 'tell', phase: 'main', uses: 'notify', durationMs: 1, attempts: 1, outputs: { channel: 'slack', sentAt: at(3) } },
    ...(o.commsAt ?? []).map((m): RunEvent => ({ ...base(m), event: 'comms', step: null, channel: 'slack', ok: true, message: 'status', error: null })),
    { ...base(10), event: 'ok', step: 'deploy', phase: 'main', uses: 'hotfix.deploy', durationMs: 1, attempts: 1, outputs: { version: '1.4.3' } },
    { ...base(20), event: 'progress', step: 'resume', phase: 'main', message: 'phase open', data: { phase: 'open' } },
    ...[1, 1, 2].map((stage, i): RunEvent => ({
      ...base(21 + i),
      event: 'measurement',
      step: 'shift',
      phase: 'main',
      stage,
      stages: 2,
      weight: stage === 1 ? 50 : 100,
      verdict: i === 1 ? 'inconclusive' : 'pass',
      judgements: [
        {
          gate: 'queue-depth',
          source: 'prometheus',
          verdict: i === 1 ? 'inconclusive' : 'pass',
          value: i === 1 ? null : 3,
          detail: i === 1 ? 'no series' : '3 <= 1000',
        },
      ],
    })),
    { ...base(30), event: 'run-end', step: null, outcome: 'success', exitCode: 0, durationMs: 28 * 60_000, summary: 'ok' },
  ];
}

describe('incident report: milestones, communications, analysis', () => {
  it('times each milestone from detection', () => {
    const r = buildIncident(events(), { at: at(0), reason: 'EXCESS_QUEUE_DEPTH' }, new Date(at(31)));
    expect(r.milestones.map((m) => [m.name, m.at, m.sinceDetectionMs === null ? null : m.sinceDetectionMs / 60_000, m.by])).toEqual([
      ['detected', at(0), 0, null],
      ['first notification', at(3), 3, 'tell'],
      ['mitigated', at(10), 10, 'deploy'],
      ['resumed', at(20), 20, 'resume'],
      ['closed', at(30), 30, null],
    ]);
  });

  it('flags every silence longer than the comms cadence, and none when updates kept up', () => {
    const kept = buildIncident(events({ comms: '5m', commsAt: [7, 12, 17, 22, 27] }), { at: at(0), reason: null }, new Date(at(31)));
    expect(kept.comms).toEqual({ every: '5m', gaps: [] });
    const silent = buildIncident(events({ comms: '5m', commsAt: [7, 20] }), { at: at(0), reason: null }, new Date(at(31)));
    expect(silent.comms.gaps.map((g) => [g.from, g.to, g.gapMs / 60_000])).toEqual([
      [at(7), at(20), 13],
      [at(20), at(30), 10],
    ]);
    const md = renderMarkdown(silent);
    expect(md).toContain('Status updates every 5m; **2 gap(s) longer than that**.');
    expect(md).toContain(`- **gap** ${at(7)} → ${at(20)}: 13m00s without a notification`);
    expect(renderHtml(silent)).toContain('<span class="breached">2 gap(s) longer than that</span>');
  });

  it('shows one analysis row per stage and gate with the count of each verdict', () => {
    const r = buildIncident(events(), { at: at(0), reason: null }, new Date(at(31)));
    expect(r.analysis).toEqual([
      {
        step: 'shift',
        stage: 1,
        weight: 50,
        gate: 'queue-depth',
        source: 'prometheus',
        pass: 1,
        fail: 0,
        inconclusive: 1,
        error: 0,
        verdict: 'inconclusive',
        detail: 'no series',
      },
      {
        step: 'shift',
        stage: 2,
        weight: 100,
        gate: 'queue-depth',
        source: 'prometheus',
        pass: 1,
        fail: 0,
        inconclusive: 0,
        error: 0,
        verdict: 'pass',
        detail: '3 <= 1000',
      },
    ]);
    expect(renderMarkdown(r)).toContain('| shift | 1 | 50% | queue-depth | **inconclusive** | 1 | 0 | 1 | 0 | no series |');
    // The page has one row per stage (the gate's counts in its cell), not one per gate and stage.
    const html = renderHtml(r);
    expect(html.match(/<tr class="verdict-[a-z]+" data-stage="\d+">/g)).toHaveLength(r.stages.length);
    expect(html).toContain('<table id="stages">');
  });
});

describe('incident report: the risk preview and the missed funding', () => {
  const withMoney = (): RunEvent[] => {
    const evs = events();
    const end = evs.pop() as RunEvent;
    evs.push(
      {
        ...base(8),
        event: 'progress',
        step: 'risk',
        phase: 'main',
        message: 'lev: WOULD BE LIQUIDATED',
        data: { riskAccount: 'lev', band: 'liquidation', uniMMR: '0.8123', equity: '70', maintenance: '1425', wouldLiquidate: true },
      },
      {
        ...base(8),
        event: 'ok',
        step: 'risk',
        phase: 'main',
        uses: 'risk.preview',
        durationMs: 1,
        attempts: 1,
        outputs: { accounts: 3, wouldLiquidate: 1, liquidationBand: 1, reduceOnly: 0, warning: 1 },
      },
      {
        ...base(25),
        event: 'progress',
        step: 'funding',
        phase: 'main',
        message: 'BTCUSDT interval',
        data: {
          fundingInterval: '2026-01-01T00:00:00.000Z',
          symbol: 'BTCUSDT',
          rate: '0.0001',
          markPrice: '60000.00',
          paid: '3',
          received: '3',
          holders: 'long 0.5 -3; short -0.5 3',
        },
      },
      end,
    );
    return evs;
  };

  it('lists who the preview would liquidate, and each missed interval with its holders and what each paid', () => {
    const r = buildIncident(withMoney(), { at: at(0), reason: 'EXCESS_QUEUE_DEPTH' }, new Date(at(40)));
    expect(r.riskPreviews).toEqual([
      {
        step: 'risk',
        at: at(8),
        accounts: [{ account: 'lev', band: 'liquidation', uniMMR: '0.8123', equity: '70', maintenance: '1425', wouldLiquidate: true }],
        counts: { accounts: 3, wouldLiquidate: 1, liquidationBand: 1, reduceOnly: 0, warning: 1 },
      },
    ]);
    expect(r.funding[0]?.holders).toEqual([
      { account: 'long', qty: '0.5', amount: '-3' },
      { account: 'short', qty: '-0.5', amount: '3' },
    ]);
    const md = renderMarkdown(r);
    expect(md).toContain('1 would be liquidated, 0 reduce-only, 1 warned, of 3 accounts with positions.');
    expect(md).toContain('| lev | liquidation | 0.8123 | 70 | 1425 | **yes** |');
    expect(md).toContain('| BTCUSDT | 2026-01-01T00:00:00.000Z | 0.0001 | 60000.00 | 3 | 3 | long 0.5 -3; short -0.5 3 |');
    const html = renderHtml(r);
    expect(html).toContain('<td>long 0.5 -3<br>short -0.5 3</td>');
    expect(html).toContain('<tr class="failure"><td>lev</td>');
  });

  it('has neither section when the run took no preview and settled no funding', () => {
    const md = renderMarkdown(buildIncident(events(), { at: at(0), reason: null }, new Date(at(40))));
    expect(md).not.toContain('## Risk preview');
    expect(md).not.toContain('## Missed funding');
  });
});
