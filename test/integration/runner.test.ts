import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsePlaybook } from '../../src/playbook/load.js';
import type { EventSink, RunEvent } from '../../src/runner/events.js';
import { Runner, RunInterrupted, type RunOptions } from '../../src/runner/execute.js';
import { foldJournal, JournalWriter, readJournal } from '../../src/runner/journal.js';
import { buildRedactor, resolveVars } from '../../src/runner/scope.js';
import type { Approver } from '../../src/steps/types.js';
import { systemClock } from '../../src/util/clock.js';
import { tempDir } from '../support/cli.js';

class Memory implements EventSink {
  readonly events: RunEvent[] = [];
  write(e: RunEvent): void {
    this.events.push(e);
  }
  kinds(): string[] {
    return this.events.filter((e) => e.event !== 'progress').map((e) => `${e.event}${e.step ? `:${e.step}` : ''}`);
  }
}

const yes: Approver = { approve: () => Promise.resolve({ approved: true, by: 'test' }) };

function setup(steps: string, extra = '', overrides: Record<string, string> = {}, env: NodeJS.ProcessEnv = {}) {
  const dir = tempDir();
  const text = `apiVersion: recoverctl/v1
kind: Playbook
metadata:
  name: unit
${extra}steps:
${steps}`;
  const path = join(dir, 'p.yaml');
  writeFileSync(path, text);
  const pb = parsePlaybook(Buffer.from(text), path, path);
  const vars = resolveVars(pb, overrides, env);
  const sink = new Memory();
  const interrupt = new AbortController();
  const options = (more: Partial<RunOptions> = {}): RunOptions => ({
    playbook: pb,
    runId: 'run-1',
    runDir: dir,
    vars,
    varOverrides: overrides,
    env,
    redactor: buildRedactor(pb, vars),
    clock: systemClock,
    approver: yes,
    engine: undefined,
    timeScale: 1,
    sink,
    interrupt: interrupt.signal,
    random: () => 0.5,
    ...more,
  });
  return { dir, pb, sink, interrupt, options };
}

const node = (code: string) => `[node, -e, ${JSON.stringify(code)}]`;

describe('runner', () => {
  it('runs steps in order and hands outputs to later steps', async () => {
    const { sink, options } = setup(`  - id: produce
    uses: exec
    with: { command: ${node("process.stdout.write('v1.4.3')")} }
  - id: consume
    uses: notify
    with:
      channel: stdout
      message: "deployed \${{ steps.produce.outputs.stdout }} (exit \${{ steps.produce.outputs.exitCode }})"
`);
    const result = await new Runner(options()).run();
    expect(result).toMatchObject({ outcome: 'success', exitCode: 0 });
    expect(sink.events.find((e) => e.event === 'output')).toMatchObject({ text: 'deployed v1.4.3 (exit 0)' });
    expect(sink.kinds()).toEqual(['run-start', 'start:produce', 'ok:produce', 'start:consume', 'output:consume', 'ok:consume', 'run-end']);
  });

  it('retries a failing step with backoff until it succeeds', async () => {
    const { sink, options, dir } = setup(`  - id: flaky
    uses: exec
    retries: 3
    retryDelay: 10ms
    with:
      command: [node, -e, ${JSON.stringify("const f='count.txt';const fs=require('fs');const n=fs.existsSync(f)?+fs.readFileSync(f,'utf8'):0;fs.writeFileSync(f,String(n+1));process.exit(n<2?1:0)")}]
`);
    const result = await new Runner(options()).run();
    expect(result.outcome).toBe('success');
    expect(readFileSync(join(dir, 'count.txt'), 'utf8')).toBe('3');
    const retries = sink.events.filter((e) => e.event === 'retry');
    expect(retries.map((e) => (e.event === 'retry' ? e.delayMs : 0))).toEqual([8, 15]);
    expect(sink.events.find((e) => e.event === 'ok')).toMatchObject({ attempts: 3 });
  });

  it('aborts an attempt that outlives its timeout', async () => {
    const { options } = setup(`  - id: slow
    uses: exec
    timeout: 300ms
    with: { command: ${node('setTimeout(() => {}, 20000)')} }
`);
    const started = Date.now();
    const result = await new Runner(options()).run();
    expect(result).toMatchObject({ outcome: 'failed', exitCode: 1, failedStep: 'slow' });
    expect(result.error).toBe('timed out after 300ms');
    expect(Date.now() - started).toBeLessThan(8_000);
  });

  it('records a continueOnError failure without failing the run', async () => {
    const { sink, options } = setup(`  - id: optional
    uses: exec
    continueOnError: true
    with: { command: ${node('process.exit(4)')} }
  - id: after
    uses: wait
    with: { duration: 1ms }
`);
    const result = await new Runner(options()).run();
    expect(result.outcome).toBe('success');
    expect(sink.events.find((e) => e.event === 'fail')).toMatchObject({ continued: true, error: 'command exited with code 4' });
    expect(sink.kinds()).toContain('ok:after');
  });

  it('with no rollback list, skips later steps after a failure but still runs always() steps', async () => {
    const { sink, options } = setup(
      `  - id: ok
    uses: wait
    with: { duration: 1ms }
  - id: broken
    uses: exec
    with: { command: ${node('process.exit(2)')} }
  - id: skipped
    uses: wait
    with: { duration: 1ms }
  - id: report
    uses: notify
    if: always()
    with: { channel: stdout, message: "broken was \${{ steps.broken.outcome }}" }
`,
      '',
    );
    const result = await new Runner(options()).run();
    expect(result).toMatchObject({ outcome: 'failed', exitCode: 1, failedStep: 'broken' });
    expect(sink.kinds()).toEqual([
      'run-start',
      'start:ok',
      'ok:ok',
      'start:broken',
      'fail:broken',
      'skip:skipped',
      'start:report',
      'output:report',
      'ok:report',
      'run-end',
    ]);
    expect(sink.events.find((e) => e.event === 'output')).toMatchObject({ text: 'broken was failure' });
  });

  it('runs the rollback list right after the failing step, and exits 3 when it fails', async () => {
    const rollback = `rollback:
  - id: undo-one
    uses: exec
    with: { command: ${node('process.exit(1)')} }
  - id: undo-two
    uses: notify
    with: { channel: stdout, message: "undoing after \${{ steps.broken.outcome }}" }
`;
    const { sink, options } = setup(
      `  - id: broken
    uses: exec
    with: { command: ${node('process.exit(2)')} }
${rollback}`,
    );
    const result = await new Runner(options()).run();
    expect(result).toMatchObject({ outcome: 'rollback-failed', exitCode: 3, rollbackFailedSteps: ['undo-one'] });
    expect(sink.kinds()).toEqual([
      'run-start',
      'start:broken',
      'fail:broken',
      'rollback',
      'start:undo-one',
      'fail:undo-one',
      'start:undo-two',
      'output:undo-two',
      'ok:undo-two',
      'rollback-end',
      'run-end',
    ]);
  });

  it('runs a rollback step whose if: has no status function when it holds', async () => {
    const { sink, options } = setup(`  - id: deploy
    uses: wait
    with: { duration: 1ms }
  - id: broken
    uses: exec
    with: { command: ${node('process.exit(1)')} }
rollback:
  - id: undo-deploy
    uses: notify
    if: \${{ steps.deploy.outcome == 'success' }}
    with: { channel: stdout, message: undo }
  - id: not-needed
    uses: notify
    if: \${{ steps.deploy.outcome == 'failure' }}
    with: { channel: stdout, message: never }
`);
    const result = await new Runner(options()).run();
    expect(result.outcome).toBe('failed');
    expect(sink.kinds()).toContain('ok:undo-deploy');
    expect(sink.kinds()).toContain('skip:not-needed');
  });

  it('takes --var values literally, without interpolating them', async () => {
    const { sink, options } = setup(
      `  - id: say
    uses: notify
    with: { channel: stdout, message: "\${{ vars.msg }}" }
`,
      'vars:\n  msg: default\n',
      { msg: '${{ env.HOME }} and ${{ broken' },
      { HOME: '/root' },
    );
    const result = await new Runner(options()).run();
    expect(result.outcome).toBe('success');
    expect(sink.events.find((e) => e.event === 'output')).toMatchObject({ text: '${{ env.HOME }} and ${{ broken' });
  });

  it('skips a step whose if: is false', async () => {
    const { sink, options } = setup(
      `  - id: a
    uses: wait
    if: \${{ vars.mode == 'live' }}
    with: { duration: 1ms }
`,
      'vars:\n  mode: rehearsal\n',
    );
    const result = await new Runner(options()).run();
    expect(result.outcome).toBe('success');
    expect(sink.events.find((e) => e.event === 'skip')).toMatchObject({ step: 'a', reason: 'condition' });
  });

  it('stops on interrupt with 130, and a resume from the journal finishes without re-running finished steps', async () => {
    const { dir, options, interrupt, pb } = setup(`  - id: first
    uses: notify
    with: { channel: file, path: log.txt, message: first }
  - id: pause
    uses: wait
    with: { duration: 30s }
  - id: last
    uses: notify
    with: { channel: file, path: log.txt, message: last }
`);
    const journalPath = join(dir, 'journal.ndjson');
    const journal = new JournalWriter(journalPath);
    const mem = new Memory();
    const fan: EventSink = { write: (e) => (journal.write(e), mem.write(e)) };
    const running = new Runner(options({ sink: fan })).run();
    const deadline = Date.now() + 5000;
    while (!mem.events.some((e) => e.event === 'start' && e.step === 'pause') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    interrupt.abort(new RunInterrupted('SIGINT'));
    const result = await running;
    journal.close();
    expect(result).toMatchObject({ outcome: 'interrupted', exitCode: 130 });

    const state = foldJournal('run-1', readJournal(journalPath));
    expect(state?.finished.has('first')).toBe(true);
    expect(state?.finished.has('pause')).toBe(false);
    const shortened = { ...pb, steps: pb.steps.map((s) => (s.id === 'pause' ? { ...s, with: { duration: '1ms' } } : s)) };
    const resumed = await new Runner({ ...options(), playbook: shortened, interrupt: new AbortController().signal, resume: state }).run();
    expect(resumed.outcome).toBe('success');
    const log = readFileSync(join(dir, 'log.txt'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split('\t')[2]);
    expect(log).toEqual(['first', 'last']);
  });

  it('redacts secret vars and env values from every event', async () => {
    const { sink, options } = setup(
      `  - id: use-token
    uses: exec
    with:
      command: ${node('console.log("token is " + process.env.API_TOKEN)')}
      env:
        API_TOKEN: \${{ vars.token }}
`,
      'vars:\n  token:\n    value: ${{ env.SECRET_TOKEN }}\n    secret: true\n',
      {},
      { SECRET_TOKEN: 'hunter2-very-secret' },
    );
    const result = await new Runner(options()).run();
    expect(result.outcome).toBe('success');
    const all = JSON.stringify(sink.events);
    expect(all).not.toContain('hunter2-very-secret');
    expect(all).toContain('token is ***');
  });

  it('fails a step whose reference has no value at run time, naming the file position', async () => {
    const { options } = setup(`  - id: a
    uses: notify
    with:
      channel: stdout
      message: "\${{ env.SURELY_NOT_SET_ANYWHERE }}"
`);
    const result = await new Runner(options()).run();
    expect(result.outcome).toBe('failed');
    expect(result.error).toMatch(/p\.yaml:\d+:\d+: env\.SURELY_NOT_SET_ANYWHERE is not set/);
  });
});

describe('journal', () => {
  it('ignores a torn last record and reports where', () => {
    const dir = tempDir();
    const path = join(dir, 'j.ndjson');
    writeFileSync(
      path,
      `${JSON.stringify({ ts: 't', run: 'r', step: null, event: 'run-start', steps: ['a'], file: 'f', sha256: 'x' })}\n{"ts":"t","run":"r","step":"a","eve`,
    );
    const read = readJournal(path);
    expect(read.events).toHaveLength(1);
    expect(read.tornAtLine).toBe(2);
    // Reopening for append cuts the torn tail so new records start on a fresh line.
    const w = new JournalWriter(path);
    w.close();
    expect(readFileSync(path, 'utf8').endsWith('}\n')).toBe(true);
  });
});
