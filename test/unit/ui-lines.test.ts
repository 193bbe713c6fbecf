import { Chalk } from 'chalk';
import { describe, expect, it } from 'vitest';
import { buildIncident, renderMarkdown } from '../../src/report/incident.js';
import { renderHtml } from '../../src/report/html.js';
import type { RunEvent } from '../../src/runner/events.js';
import { displayLine, lastLines, LineSplitter } from '../../src/steps/exec.js';
import { columnsOf, cutToColumns, formatLine, progressText, valuePhrases } from '../../src/ui/lines.js';
import { RunRecorder } from '../../src/ui/recorder.js';
import { PlainRenderer } from '../../src/ui/renderers.js';
import { spinnerText } from '../../src/ui/spinner.js';
import { summaryText } from '../../src/ui/summary.js';

const c = new Chalk({ level: 0 });
const RUN = 'r1';
const at = (ms: number): string => new Date(Date.UTC(2026, 10, 25, 12, 0, 0) + ms).toISOString();

/** A recorded run: the `start` events carry the steps' titles. */
function events(): RunEvent[] {
  return [
    {
      ts: at(0),
      run: RUN,
      step: null,
      event: 'run-start',
      playbook: 'pb',
      file: 'pb.yaml',
      sha256: 'x',
      pid: 1,
      resumed: false,
      fromStep: null,
      steps: ['smoke', 'precheck', 'later'],
      rollbackSteps: [],
      vars: {},
      varOverrides: {},
      timeScale: 1,
      rto: null,
      incident: null,
    },
    {
      ts: at(10),
      run: RUN,
      step: 'smoke',
      phase: 'main',
      event: 'start',
      uses: 'exec',
      name: 'Prove the hotfix on a testnet',
      attempt: 1,
      description: 'run ./smoke.sh',
    },
    {
      ts: at(900),
      run: RUN,
      step: 'smoke',
      phase: 'main',
      event: 'ok',
      uses: 'exec',
      durationMs: 890,
      attempts: 1,
      outputs: { exitCode: 0, stdout: 'fine', stderr: '' },
    },
    { ts: at(910), run: RUN, step: 'precheck', phase: 'main', event: 'start', uses: 'exec', name: null, attempt: 1, description: 'run ./check.sh' },
    {
      ts: at(950),
      run: RUN,
      step: 'precheck',
      phase: 'main',
      event: 'fail',
      uses: 'exec',
      durationMs: 40,
      attempts: 1,
      error: 'command exited with code 3\nreplica 2 | lagging\nno quorum',
      continued: false,
      outputs: { exitCode: 3, stdout: '', stderr: 'replica 2 | lagging\nno quorum' },
    },
    { ts: at(960), run: RUN, step: 'later', phase: 'main', event: 'skip', uses: 'wait', reason: 'earlier-failure', detail: 'an earlier step failed' },
    {
      ts: at(970),
      run: RUN,
      step: null,
      event: 'run-end',
      outcome: 'failed',
      exitCode: 1,
      durationMs: 970,
      summary: 'step precheck failed: command exited with code 3\nreplica 2 | lagging\nno quorum; nothing to roll back',
    },
  ];
}

describe('the lines of a command’s output', () => {
  it('holds a line cut across chunks until its end arrives, and gives the rest at exit', () => {
    const lines: string[] = [];
    const split = new LineSplitter((l) => lines.push(l));
    const euro = Buffer.from('€', 'utf8');
    for (const chunk of [
      Buffer.from('pre'),
      Buffer.from('check: c'),
      Buffer.from('onnected\r\nprice 10'),
      euro.subarray(0, 1),
      Buffer.concat([euro.subarray(1), Buffer.from('\nlast, no newline')]),
    ]) {
      split.push(chunk);
    }
    expect(lines).toEqual(['precheck: connected', 'price 10€']);
    split.end();
    expect(lines).toEqual(['precheck: connected', 'price 10€', 'last, no newline']);
  });

  it('passes on a line without end in pieces instead of holding it without bound', () => {
    const lines: string[] = [];
    const split = new LineSplitter((l) => lines.push(l), 10);
    split.push('x'.repeat(25));
    expect(lines).toEqual(['x'.repeat(10), 'x'.repeat(10)]);
  });

  it('shows what a \\r redraw left, without escape sequences', () => {
    expect(displayLine('10%\r55%\r\u001b[32m100%\u001b[0m done\t!')).toBe('100% done  !');
    expect(displayLine('y'.repeat(400))).toHaveLength(300);
  });

  it('keeps the last n lines of an output, not the blank end', () => {
    const text = `${Array.from({ length: 30 }, (_, i) => `err ${i + 1}`).join('\n')}\n\n`;
    expect(lastLines(text, 20)).toEqual(Array.from({ length: 20 }, (_, i) => `err ${i + 11}`));
  });
});

describe('progress values', () => {
  it('formats a traffic sample once, values first: no key=value repeated after the message', () => {
    const sample = { stage: 2, weight: 25, queueDepth: 3, errorRate: 0, p99LatencyMs: 0.8, sent: 30, breaches: 0 };
    expect(progressText({ message: 'stage 2/4 weight 25%', data: sample })).toBe('stage 2 · 25% · queueDepth 3 · errorRate 0 · p99 0.8 ms · sent 30');
    expect(valuePhrases({ ...sample, stages: 4, breaches: 1 })).toEqual([
      'stage 2/4',
      '25%',
      'queueDepth 3',
      'errorRate 0',
      'p99 0.8 ms',
      'sent 30',
      'breaches 1',
    ]);
    expect(valuePhrases({ p99LatencyMs: null, bakeMs: 3000, phase: 'open', errorRate: 0.012345 })).toEqual([
      'p99 –',
      'bake 3s',
      'phase open',
      'errorRate 0.0123',
    ]);
  });

  it('shows the message of a progress event without values', () => {
    expect(progressText({ message: 'waiting 3s' })).toBe('waiting 3s');
  });
});

describe('the human lines', () => {
  it('names a step by id and title where it starts and ends; a failure’s tail hangs under its summary', () => {
    const [, start, ok, , fail, , end] = events() as [RunEvent, RunEvent, RunEvent, RunEvent, RunEvent, RunEvent, RunEvent];
    expect(formatLine(start, c)).toBe('▶ smoke — Prove the hotfix on a testnet: run ./smoke.sh');
    expect(formatLine(ok, c, 'Prove the hotfix on a testnet')).toBe('✓ smoke — Prove the hotfix on a testnet (890ms)');
    expect(formatLine(fail, c)).toBe('✗ precheck (40ms): command exited with code 3\n    │ replica 2 | lagging\n    │ no quorum');
    expect(formatLine(end, c)).toBe('✗ step precheck failed: command exited with code 3');
  });

  it('plain output: titles on the lines that end a step, and at most one progress line a second per step', () => {
    let out = '';
    const plain = new PlainRenderer({ write: (s: string) => ((out += s), true) } as unknown as NodeJS.WritableStream, c);
    const [runStart, start, ok] = events() as [RunEvent, RunEvent, RunEvent];
    plain.write(runStart);
    plain.write(start);
    // A shift samples ten times a second; a second step's progress is counted on its own.
    for (let ms = 100; ms < 3_100; ms += 100) {
      plain.write({ ts: at(ms), run: RUN, step: 'smoke', phase: 'main', event: 'progress', message: `sample ${ms}`, data: { stage: 1, weight: 5 } });
      plain.write({ ts: at(ms + 50), run: RUN, step: 'other', phase: 'rollback', event: 'progress', message: `other ${ms}` });
    }
    plain.write(ok);
    const progress = out.split('\n').filter((l) => l.includes(' … '));
    expect(progress.filter((l) => l.includes('smoke:')).map((l) => l.slice(0, 24))).toEqual([at(100), at(1100), at(2100)]);
    expect(progress.filter((l) => l.includes('other:'))).toHaveLength(3);
    expect(progress[0]).toBe(`${at(100)} … smoke: stage 1 · 5%`);
    expect(out).toContain(`${at(900)} ✓ smoke — Prove the hotfix on a testnet (890ms)\n`);
  });

  it('the spinner line: values first, then the description, never wider than the terminal', () => {
    const line = spinnerText(
      {
        step: 'shift',
        name: 'Move the traffic',
        attempt: 1,
        description: `shift traffic on ${'/very/long/path/'.repeat(20)}`,
        elapsedMs: 2_300,
        values: 'stage 2/4 · 25% · queueDepth 3 · errorRate 0 · p99 0.8 ms',
      },
      120,
      c,
    );
    expect(line).toMatch(/^shift — Move the traffic 2.30s · stage 2\/4 · 25% · queueDepth 3 · errorRate 0 · p99 0.8 ms · shift traffic on \/very/);
    expect(columnsOf(line)).toBe(117);
    expect(line.endsWith('…')).toBe(true);
    const coloured = spinnerText({ step: 'a', name: null, attempt: 2, description: 'd'.repeat(200), elapsedMs: 5, values: '' }, 40, new Chalk({ level: 1 }));
    expect(columnsOf(coloured.replace(/\u001b\[\d+m/g, ''))).toBe(37);
    expect(cutToColumns('停止取引です', 5)).toBe('停止…');
  });
});

describe('the final table and the reports', () => {
  it('the summary table has a title column and a failure’s first line only', () => {
    const r = new RunRecorder();
    for (const e of events()) r.write(e);
    expect(r.steps.map((s) => s.name)).toEqual(['Prove the hotfix on a testnet', null, null]);
    const text = summaryText(r, 'j.ndjson', c);
    expect(text).toContain('  ✓ smoke     Prove the hotfix on a testnet    890ms\n');
    expect(text).toContain('  ✗ precheck                                    40ms  command exited with code 3\n');
    expect(text).not.toContain('no quorum');
  });

  it('the incident report shows titles, and a failure’s tail apart from the table', () => {
    const report = buildIncident(events(), { at: null, reason: null }, new Date(at(1_000)));
    const md = renderMarkdown(report);
    expect(md).toContain('| step | name | kind |');
    expect(md).toMatch(/^\| smoke \| Prove the hotfix on a testnet \| exec \|/m);
    expect(md).toMatch(/^\| precheck \|  \| exec \| .* \| failure: command exited with code 3 \| 40ms \|$/m);
    expect(md).toContain('## Failures\n\n### precheck\n\ncommand exited with code 3\n\n```text\nreplica 2 | lagging\nno quorum\n```');
    const html = renderHtml(report);
    expect(html).toContain('<td class="name">Prove the hotfix on a testnet</td>');
    expect(html).toContain('<title>smoke — Prove the hotfix on a testnet: success 890ms</title>');
    expect(html).toContain('failure: command exited with code 3<pre class="tail">replica 2 | lagging\nno quorum</pre>');
  });
});
