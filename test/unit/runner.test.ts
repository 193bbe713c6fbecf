import { describe, expect, it } from 'vitest';
import { parsePlaybook } from '../../src/playbook/load.js';
import type { EventSink, RunEvent } from '../../src/runner/events.js';
import { ABORT_GRACE_MS, Runner, RunInterrupted, type RunOptions } from '../../src/runner/execute.js';
import { foldJournal } from '../../src/runner/journal.js';
import { buildRedactor, resolveVars } from '../../src/runner/scope.js';
import { REGISTRY, type ErasedStepKind } from '../../src/steps/registry.js';
import { approveAll, fakeClient, fakeEffects, fakeEngines, health, scriptedExec, VirtualClock, type ScriptedCommand } from '../support/fakes.js';

class Memory implements EventSink {
  readonly events: RunEvent[] = [];
  constructor(private readonly onEvent: (e: RunEvent) => void = () => undefined) {}
  write(e: RunEvent): void {
    this.events.push(e);
    this.onEvent(e);
  }
  kinds(): string[] {
    return this.events.filter((e) => e.event !== 'progress').map((e) => `${e.event}${e.step ? `:${e.step}` : ''}`);
  }
}

/** A playbook from its steps (and what goes before them), run by the real runner with fake effects and virtual time. */
function setup(steps: string, o: { extra?: string; overrides?: Record<string, string>; env?: NodeJS.ProcessEnv; commands?: ScriptedCommand[] } = {}) {
  const text = `apiVersion: recoverctl/v1
kind: Playbook
metadata:
  name: unit
${o.extra ?? ''}steps:
${steps}`;
  const path = '/playbooks/p.yaml';
  const pb = parsePlaybook(Buffer.from(text), path, path);
  const overrides = o.overrides ?? {};
  const env = o.env ?? {};
  const vars = resolveVars(pb, overrides, env);
  const sink = new Memory();
  const interrupt = new AbortController();
  const clock = new VirtualClock();
  const commands = scriptedExec(o.commands ?? [{}]);
  const options = (more: Partial<RunOptions> = {}): RunOptions => ({
    playbook: pb,
    runId: 'run-1',
    runDir: '/state/runs/run-1',
    vars,
    varOverrides: overrides,
    env,
    redactor: buildRedactor(pb, vars),
    clock,
    approver: approveAll,
    registry: REGISTRY,
    effects: fakeEffects({ exec: commands.exec }),
    scratchDir: '/tmp',
    engine: undefined,
    timeScale: 1,
    sink,
    interrupt: interrupt.signal,
    random: () => 0.5,
    ...more,
  });
  return { pb, sink, interrupt, options, clock, commands };
}

describe('runner', () => {
  it('runs steps in order and hands outputs to later steps', async () => {
    const { sink, options, commands } = setup(
      `  - id: produce
    uses: exec
    with: { command: [deploy, --print-version] }
  - id: consume
    uses: notify
    with:
      channel: stdout
      message: "deployed \${{ steps.produce.outputs.stdout }} (exit \${{ steps.produce.outputs.exitCode }})"
`,
      { commands: [{ stdoutChunks: ['v1.4.3\n'] }] },
    );
    const result = await new Runner(options()).run();
    expect(result).toMatchObject({ outcome: 'success', exitCode: 0 });
    expect(commands.calls.map((c) => c.command)).toEqual([['deploy', '--print-version']]);
    expect(commands.calls[0]?.cwd).toBe('/playbooks');
    expect(sink.events.find((e) => e.event === 'output')).toMatchObject({ text: 'deployed v1.4.3 (exit 0)' });
    expect(sink.kinds()).toEqual(['run-start', 'start:produce', 'ok:produce', 'start:consume', 'output:consume', 'ok:consume', 'run-end']);
  });

  it('retries a failing step with backoff until it succeeds', async () => {
    const { sink, options, commands, clock } = setup(
      `  - id: flaky
    uses: exec
    retries: 3
    retryDelay: 10ms
    with: { command: [probe] }
`,
      { commands: [{ exitCode: 1 }, { exitCode: 1 }, { exitCode: 0 }] },
    );
    const result = await new Runner(options()).run();
    expect(result.outcome).toBe('success');
    expect(commands.calls).toHaveLength(3);
    const retries = sink.events.filter((e) => e.event === 'retry');
    expect(retries.map((e) => (e.event === 'retry' ? e.delayMs : 0))).toEqual([8, 15]);
    expect(clock.sleeps).toEqual([8, 15]);
    expect(sink.events.find((e) => e.event === 'ok')).toMatchObject({ attempts: 3 });
  });

  it('fails a step whose retries are spent, with the last error', async () => {
    const { options, commands } = setup(
      `  - id: flaky
    uses: exec
    retries: 2
    retryDelay: 1s
    with: { command: [probe] }
`,
      { commands: [{ exitCode: 1 }, { exitCode: 2 }, { exitCode: 3, stderrChunks: ['disk full\n'] }] },
    );
    const result = await new Runner(options()).run();
    expect(result).toMatchObject({ outcome: 'failed', failedStep: 'flaky', error: 'command exited with code 3\ndisk full' });
    expect(commands.calls).toHaveLength(3);
  });

  it('aborts an attempt that outlives its timeout, on the run clock', async () => {
    const { options, commands, clock } = setup(
      `  - id: slow
    uses: exec
    timeout: 300ms
    with: { command: [sleep, '20'] }
`,
      { commands: [{ hang: true }] },
    );
    const started = clock.now();
    const result = await new Runner(options()).run();
    expect(result).toMatchObject({ outcome: 'failed', exitCode: 1, failedStep: 'slow' });
    expect(result.error).toBe('timed out after 300ms');
    expect(commands.calls[0]?.signal.aborted).toBe(true);
    expect(clock.now() - started).toBe(300);
  });

  it('abandons a step that ignores its abort after the grace period', async () => {
    const deaf: ErasedStepKind = { ...(REGISTRY.get('wait') as ErasedStepKind), run: () => new Promise(() => undefined) };
    const { options, clock } = setup(`  - id: deaf
    uses: wait
    timeout: 1s
    with: { duration: 1ms }
`);
    const started = clock.now();
    const result = await new Runner(options({ registry: new Map([...REGISTRY, ['wait', deaf]]) })).run();
    expect(result.error).toBe(`timed out after 1s (and did not stop within ${ABORT_GRACE_MS / 1000}s)`);
    expect(clock.now() - started).toBe(1000 + ABORT_GRACE_MS);
  });

  it('fails a step whose kind this runner has no handler for, naming it', async () => {
    const { options } = setup(`  - id: w
    uses: wait
    with: { duration: 1ms }
`);
    const result = await new Runner(options({ registry: new Map() })).run();
    expect(result).toMatchObject({ outcome: 'failed', failedStep: 'w' });
    expect(result.error).toContain('no handler for the kind wait');
  });

  it('records a continueOnError failure without failing the run', async () => {
    const { sink, options } = setup(
      `  - id: optional
    uses: exec
    continueOnError: true
    with: { command: [optional-check] }
  - id: after
    uses: wait
    with: { duration: 1ms }
`,
      { commands: [{ exitCode: 4 }, {}] },
    );
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
    with: { command: [broken] }
  - id: skipped
    uses: wait
    with: { duration: 1ms }
  - id: report
    uses: notify
    if: always()
    with: { channel: stdout, message: "broken was \${{ steps.broken.outcome }}" }
`,
      { commands: [{ exitCode: 2 }] },
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
    const { sink, options } = setup(
      `  - id: broken
    uses: exec
    with: { command: [deploy] }
rollback:
  - id: undo-one
    uses: exec
    with: { command: [undeploy] }
  - id: undo-two
    uses: notify
    with: { channel: stdout, message: "undoing after \${{ steps.broken.outcome }}" }
`,
      { commands: [{ exitCode: 2 }, { exitCode: 1 }] },
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
    const { sink, options } = setup(
      `  - id: deploy
    uses: wait
    with: { duration: 1ms }
  - id: broken
    uses: exec
    with: { command: [broken] }
rollback:
  - id: undo-deploy
    uses: notify
    if: \${{ steps.deploy.outcome == 'success' }}
    with: { channel: stdout, message: undo }
  - id: not-needed
    uses: notify
    if: \${{ steps.deploy.outcome == 'failure' }}
    with: { channel: stdout, message: never }
`,
      { commands: [{ exitCode: 1 }] },
    );
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
      { extra: 'vars:\n  msg: default\n', overrides: { msg: '${{ env.HOME }} and ${{ broken' }, env: { HOME: '/root' } },
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
      { extra: 'vars:\n  mode: rehearsal\n' },
    );
    const result = await new Runner(options()).run();
    expect(result.outcome).toBe('success');
    expect(sink.events.find((e) => e.event === 'skip')).toMatchObject({ step: 'a', reason: 'condition' });
  });

  it('stops on interrupt with 130, and a resume from the journal finishes without re-running finished steps', async () => {
    const { options, interrupt, pb } = setup(`  - id: first
    uses: notify
    with: { channel: stdout, message: first }
  - id: pause
    uses: wait
    with: { duration: 30s }
  - id: last
    uses: notify
    with: { channel: stdout, message: last }
`);
    // Ctrl-C the moment the long wait starts.
    const journal = new Memory((e) => {
      if (e.event === 'start' && e.step === 'pause') interrupt.abort(new RunInterrupted('SIGINT'));
    });
    const result = await new Runner(options({ sink: journal })).run();
    expect(result).toMatchObject({ outcome: 'interrupted', exitCode: 130 });
    expect(journal.kinds().slice(-2)).toEqual(['interrupted:pause', 'run-end']);

    const state = foldJournal('run-1', { events: journal.events, tornAtLine: undefined });
    expect(state?.finished.has('first')).toBe(true);
    expect(state?.finished.has('pause')).toBe(false);
    const again = new Memory();
    const resumed = await new Runner({ ...options(), sink: again, playbook: pb, interrupt: new AbortController().signal, resume: state }).run();
    expect(resumed.outcome).toBe('success');
    expect(again.kinds()).toEqual([
      'run-start',
      'restored:first',
      'recheck:pause',
      'start:pause',
      'ok:pause',
      'start:last',
      'output:last',
      'ok:last',
      'run-end',
    ]);
  });

  it('redacts secret vars and env values from every event', async () => {
    const { sink, options, commands } = setup(
      `  - id: use-token
    uses: exec
    with:
      command: [curl, -H, "Authorization: \${{ vars.token }}"]
      env:
        API_TOKEN: \${{ vars.token }}
`,
      {
        extra: 'vars:\n  token:\n    value: ${{ env.SECRET_TOKEN }}\n    secret: true\n',
        env: { SECRET_TOKEN: 'hunter2-very-secret' },
        commands: [{ stdoutChunks: ['token is hunter2-very-secret\n'] }],
      },
    );
    const result = await new Runner(options()).run();
    expect(result.outcome).toBe('success');
    // The command itself gets the secret; nothing the run reports shows it.
    expect(commands.calls[0]?.env).toEqual({ API_TOKEN: 'hunter2-very-secret' });
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

describe('comms: status updates on a cadence', () => {
  it('sends a status update every interval of the run clock while steps run, and stops with the run', async () => {
    const { fetch, requests } = (await import('../support/fakes.js')).scriptedFetch(() => new Response('ok', { status: 200 }));
    const { sink, options } = setup(
      `  - id: attach
    uses: wait
    with: { duration: 1ms }
  - id: long
    name: The long part
    uses: wait
    with: { duration: 35m }
`,
      {
        extra: 'comms: { every: 10m, channel: slack, url: "https://hooks.slack.test/services/T/B/secret" }\n',
      },
    );
    const result = await new Runner(options({ effects: fakeEffects({ fetch }) })).run();
    expect(result.outcome).toBe('success');
    const comms = sink.events.filter((e) => e.event === 'comms');
    expect(comms).toHaveLength(3);
    expect(comms[0]).toMatchObject({ channel: 'slack', ok: true, message: 'unit: recovery in progress, step long (2/2), 10m00s elapsed' });
    expect(requests.map((r) => r.url)).toEqual(Array(3).fill('https://hooks.slack.test/services/T/B/secret'));
    expect(JSON.parse(String(requests[2]?.init?.body))).toMatchObject({ text: 'unit: recovery in progress, step long (2/2), 30m00s elapsed' });
    // Nothing after the run ended.
    expect(sink.events.at(-1)).toMatchObject({ event: 'run-end' });
    expect(sink.events.find((e) => e.event === 'run-start')).toMatchObject({ comms: '10m' });
  });

  it('says how much of the RTO budget is left, from the halt the run found, and when it is breached', async () => {
    const { statusText } = await import('../../src/runner/comms.js');
    const base = { playbook: 'p', incident: 'INC-1', step: 'shift', index: 3, steps: 9, failed: false, format: (ms: number) => `${ms / 60_000}m` };
    expect(statusText({ ...base, elapsedMs: 600_000, rtoMs: 900_000, sinceDetectionMs: 720_000 })).toBe(
      'INC-1: recovery in progress, step shift (3/9), 10m elapsed; RTO budget left 3m of 15m',
    );
    expect(statusText({ ...base, failed: true, elapsedMs: 600_000, rtoMs: 900_000, sinceDetectionMs: 960_000 })).toBe(
      'INC-1: recovery FAILING, rollback under way, step shift (3/9), 10m elapsed; RTO of 15m BREACHED by 1m',
    );
  });
});

describe('credentials', () => {
  it('redacts a Slack webhook URL from every event, even from a var not marked secret', async () => {
    const { fetch } = (await import('../support/fakes.js')).scriptedFetch(() => new Response('ok', { status: 200 }));
    const url = 'https://hooks.slack.test/services/T000/B000/verysecretpath';
    const { sink, options } = setup(
      `  - id: tell
    uses: notify
    with: { channel: slack, url: "\${{ vars.slack }}", message: "resumed" }
`,
      { extra: `vars:\n  slack: ${url}\n` },
    );
    const result = await new Runner(options({ effects: fakeEffects({ fetch }) })).run();
    expect(result.outcome).toBe('success');
    const all = JSON.stringify(sink.events);
    expect(all).not.toContain('verysecretpath');
    expect(sink.events[0]).toMatchObject({ event: 'run-start', vars: { slack: '***' } });
  });

  it('checks the expressions of comms: when the playbook loads', () => {
    const text = `apiVersion: recoverctl/v1\nkind: Playbook\nmetadata: { name: c }\nvars:\n  slack: x\ncomms: { every: 10m, channel: slack, url: "\${{ vars.slakc }}" }\nsteps:\n  - id: w\n    uses: wait\n    with: { duration: 1s }\n`;
    expect(() => parsePlaybook(Buffer.from(text), 'c.yaml', '/c.yaml')).toThrow(/unknown var 'slakc'.*did you mean vars\.slack|slakc/);
  });

  it('a run that reopened trading does not end success with its engine gone: it fails and rolls back', async () => {
    let phase: 'halted' | 'open' = 'halted';
    const client = fakeClient({
      health: () => Promise.resolve(health({ phase })),
      setPhase: (p) => {
        phase = p as 'open';
        return Promise.resolve({ phase: p, reason: null });
      },
    });
    const engines = fakeEngines(client);
    let alive = true;
    const attach = engines.attach;
    engines.attach = (dir) => (alive ? attach(dir) : Promise.resolve(undefined));
    const { sink, options } = setup(
      `  - id: resume
    uses: engine.resume
    with: { phases: [open] }
  - id: after
    uses: exec
    with: { command: [report] }
rollback:
  - id: undo
    uses: exec
    with: { command: [undo] }
`,
      { commands: [{}, {}] },
    );
    const effects = { ...options().effects, engines };
    const exec = effects.exec;
    effects.exec = (req) => {
      // The engine dies while a step that does not talk to it runs.
      alive = false;
      return exec(req);
    };
    const result = await new Runner(options({ effects, engine: { dataDir: '/var/engine' } })).run();
    expect(result).toMatchObject({ outcome: 'failed', failedStep: 'after' });
    expect(result.error).toBe('the engine on /var/engine stopped after trading resumed: it is not running at the end of the run');
    expect(sink.kinds()).toEqual(expect.arrayContaining(['rollback', 'ok:undo']));
    // With the engine still there, the same run succeeds.
    alive = true;
    const again = setup(
      `  - id: resume
    uses: engine.resume
    with: { phases: [open] }
`,
    );
    phase = 'halted';
    const ok = await new Runner(again.options({ effects: { ...again.options().effects, engines }, engine: { dataDir: '/var/engine' } })).run();
    expect(ok.outcome).toBe('success');
    // A playbook that stops the engine itself is not held to it.
    const stopping = setup(
      `  - id: resume
    uses: engine.resume
    with: { phases: [open] }
  - id: stop
    uses: engine.stop
`,
    );
    phase = 'halted';
    alive = false;
    const stopped = await new Runner(stopping.options({ effects: { ...stopping.options().effects, engines }, engine: { dataDir: '/var/engine' } })).run();
    expect(stopped.outcome).toBe('success');
  });
});
