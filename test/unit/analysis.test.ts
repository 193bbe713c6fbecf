import { describe, expect, it } from 'vitest';
import { countsText, decide, promote, record, worstVerdict, type GateJudgement, type Tally } from '../../src/steps/analysis.js';
import { engineJudgements } from '../../src/steps/gates.js';
import { protectTemplates, restoreTemplates } from '../../src/playbook/expressions.js';
import { parsePlaybook } from '../../src/playbook/load.js';
import { PlaybookError } from '../../src/errors.js';
import { rng } from '../../src/util/random.js';

const j = (gate: string, verdict: GateJudgement['verdict']): GateJudgement => ({ gate, source: 'engine', verdict, value: null, detail: verdict });
const limits = { failureLimit: 1, inconclusiveLimit: 2, consecutiveErrorLimit: 3 };
const feed = (samples: GateJudgement[][], t: Tally = new Map()): Tally => samples.reduce((acc, s) => record(acc, s), t);

describe('analysis: counts and limits per gate, as Argo Rollouts', () => {
  it('continues while every count is within its limit', () => {
    const t = feed([[j('q', 'pass')], [j('q', 'fail')], [j('q', 'inconclusive'), j('p', 'error')], [j('q', 'inconclusive')]]);
    expect(decide(t, limits)).toEqual({ action: 'continue' });
    expect(countsText(t.get('q') as never)).toBe('1 pass, 1 fail, 2 inconclusive');
  });

  it('aborts one failure past failureLimit, naming the gate and the limit', () => {
    const t = feed([[j('queue-depth', 'fail')], [j('queue-depth', 'pass')], [j('queue-depth', 'fail')]]);
    expect(decide(t, limits)).toEqual({ action: 'abort', reason: 'queue-depth failed 2 times (failureLimit 1)' });
  });

  it('aborts on errors in a row past consecutiveErrorLimit; a measurement in between resets the streak', () => {
    const broken = feed([[j('prom', 'error')], [j('prom', 'error')], [j('prom', 'error')], [j('prom', 'pass')], [j('prom', 'error')]]);
    expect(decide(broken, limits)).toEqual({ action: 'continue' });
    const down = feed([[j('prom', 'error')], [j('prom', 'error')], [j('prom', 'error')], [j('prom', 'error')]]);
    expect(decide(down, limits)).toMatchObject({ action: 'abort', reason: expect.stringContaining('prom could not be measured 4 times in a row') });
  });

  it('asks a human past inconclusiveLimit, and a promotion forgives what came before it only', () => {
    let t = feed([[j('p99', 'inconclusive')], [j('p99', 'inconclusive')], [j('p99', 'inconclusive')]]);
    expect(decide(t, limits)).toEqual({ action: 'ask', reason: 'p99 inconclusive 3 times (inconclusiveLimit 2)', gates: ['p99'] });
    t = promote(t, ['p99']);
    expect(decide(t, limits)).toEqual({ action: 'continue' });
    expect(t.get('p99')?.inconclusive).toBe(3);
    t = feed([[j('p99', 'inconclusive')], [j('p99', 'inconclusive')], [j('p99', 'inconclusive')]], t);
    expect(decide(t, limits).action).toBe('ask');
  });

  it('ranks a failure over an error streak over a pause', () => {
    const t = feed([
      [j('a', 'fail'), j('b', 'error'), j('c', 'inconclusive')],
      [j('a', 'fail'), j('b', 'error'), j('c', 'inconclusive')],
      [j('a', 'pass'), j('b', 'error'), j('c', 'inconclusive')],
      [j('a', 'pass'), j('b', 'error'), j('c', 'inconclusive')],
    ]);
    expect(decide(t, limits)).toMatchObject({ action: 'abort', reason: 'a failed 2 times (failureLimit 1)' });
    expect(worstVerdict([j('a', 'inconclusive'), j('b', 'error')])).toBe('error');
    expect(worstVerdict([])).toBe('pass');
  });

  it('never continues once a gate has failed more often than failureLimit (seeded property)', () => {
    const r = rng(12);
    const verdicts = ['pass', 'fail', 'inconclusive', 'error'] as const;
    for (let trial = 0; trial < 200; trial++) {
      let t: Tally = new Map();
      let fails = 0;
      for (let i = 0; i < 30; i++) {
        const v = verdicts[Math.floor(r() * 4)] as GateJudgement['verdict'];
        if (v === 'fail') fails++;
        t = record(t, [j('g', v)]);
        const d = decide(t, limits);
        if (fails > limits.failureLimit) expect(d.action).toBe('abort');
        if (d.action === 'ask') t = promote(t, d.gates);
      }
    }
  });
});

describe('engine gates judged one by one', () => {
  it('judges each set gate on its own, with its value and the limit in words', () => {
    const out = engineJudgements(
      { maxQueueDepth: 500, maxErrorRate: 0.01, p99LatencyMs: 250 },
      { halted: false, queueDepth: 900, sent: 0, errors: 0, p99LatencyMs: 12 },
    );
    expect(out).toEqual([
      { gate: 'maxQueueDepth', source: 'engine', verdict: 'fail', value: 900, detail: 'queue depth 900 > 500', threshold: '<= 500' },
      { gate: 'maxErrorRate', source: 'engine', verdict: 'inconclusive', value: null, detail: 'no orders sent in the window', threshold: '<= 0.01' },
      { gate: 'p99LatencyMs', source: 'engine', verdict: 'pass', value: 12, detail: 'p99 12ms <= 250ms', threshold: '<= 250ms' },
    ]);
  });

  it('adds a failed engine judgement when the engine halted, whatever the gates', () => {
    expect(engineJudgements({}, { halted: true, queueDepth: 0, sent: 0, errors: 0, p99LatencyMs: null })).toEqual([
      { gate: 'engine', source: 'engine', verdict: 'fail', value: null, detail: 'the engine halted itself' },
    ]);
  });
});

describe('step templates: placeholders a step fills itself', () => {
  const templates = { paths: [['provider', 'set']], names: ['weight', 'remainder'] };

  it('survive playbook interpolation under their paths only', () => {
    const w = { provider: { set: [['kubectl', 'patch', '--weight=${{ weight }}/${{remainder}}']] }, other: '${{ weight }}' };
    const marked = protectTemplates(w, templates) as typeof w;
    expect(JSON.stringify(marked.provider)).not.toContain('${{');
    expect(marked.other).toBe('${{ weight }}');
    expect(restoreTemplates(marked)).toEqual({ provider: { set: [['kubectl', 'patch', '--weight=${{ weight }}/${{ remainder }}']] }, other: '${{ weight }}' });
  });

  it('let a traffic.shift command provider validate, and are still errors anywhere else', () => {
    const head = 'apiVersion: recoverctl/v1\nkind: Playbook\nmetadata: { name: t }\nengine: { dataDir: e }\nsteps:\n';
    const shift = `  - id: shift
    uses: traffic.shift
    with:
      stepWeights: [50, 100]
      bake: 1s
      provider: { type: command, set: [[kubectl, patch, route, "--weight=\${{ weight }}", "--stage=\${{ stage }}"]], verify: [sh-free-check, "\${{ weight }}"] }
`;
    expect(() => parsePlaybook(Buffer.from(head + shift), 'p.yaml', '/p.yaml')).not.toThrow();
    const exec = `  - id: x\n    uses: exec\n    with: { command: [echo, "\${{ weight }}"] }\n`;
    expect(() => parsePlaybook(Buffer.from(head + exec), 'p.yaml', '/p.yaml')).toThrow(PlaybookError);
  });
});
