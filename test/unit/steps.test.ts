import { describe, expect, it } from 'vitest';
import { EngineHttpError } from '../../src/engine-client/client.js';
import { engineHaltStep, engineResumeStep, engineStartStep, engineStopStep } from '../../src/steps/engine-steps.js';
import { execStep } from '../../src/steps/exec.js';
import { hotfixRollbackStep } from '../../src/steps/hotfix.js';
import { httpStep } from '../../src/steps/http.js';
import { notifyStep } from '../../src/steps/notify.js';
import { reportIncidentStep } from '../../src/steps/reports.js';
import { riskPreviewStep } from '../../src/steps/risk-preview.js';
import { trafficShiftStep, trafficShiftWith } from '../../src/steps/traffic-shift.js';
import { waitStep } from '../../src/steps/wait.js';
import type { EnginePhase } from '../../src/contract/control-api.js';
import type { ReportWriter } from '../../src/steps/effects.js';
import { admissionEngine, fakeClient, fakeEngines, fakeLoad, health, scriptedExec, scriptedFetch, stepContext, VirtualClock } from '../support/fakes.js';

const parse = <T>(schema: { parse(v: unknown): T }, v: unknown): T => schema.parse(v);

describe('exec step (fake exec, virtual clock)', () => {
  it('passes argv, cwd and env to exec, and succeeds on exit 0 with the outputs', async () => {
    const { exec, calls } = scriptedExec([{ stdoutChunks: ['v1.4.3\n'] }]);
    const ctx = stepContext({ exec });
    const r = await execStep.run(parse(execStep.with, { command: ['deploy', '--v'], cwd: 'tools', env: { A: '1' } }), ctx);
    expect(r).toMatchObject({ ok: true, outputs: { exitCode: 0, signal: null, stdout: 'v1.4.3', stderr: '' } });
    expect(calls[0]).toMatchObject({ command: ['deploy', '--v'], shell: false, cwd: '/playbooks/tools', env: { A: '1' } });
  });

  it('turns chunks into whole lines for progress, at most one each 500 ms of the clock, and flushes the last', async () => {
    const { exec } = scriptedExec([{ stdoutChunks: ['one\ntw', 'o\nthr', 'ee\n', 'fo', 'ur'] }]);
    const ctx = stepContext({ exec });
    await execStep.run(parse(execStep.with, { command: ['chatty'] }), ctx);
    // "one" goes at once; "two" and "three" arrive within 500 ms of it, so only the newest waits; "four" (no newline) ends the output.
    expect(ctx.progressLog.map((p) => p.message)).toEqual(['one', 'four']);
  });

  it('fails with the exit code and the last lines of stderr, escapes stripped', async () => {
    const { exec } = scriptedExec([{ exitCode: 2, stderrChunks: ['warming up\n', '\u001b[31mfatal: disk full\u001b[0m\n'] }]);
    const r = await execStep.run(parse(execStep.with, { command: ['deploy'] }), stepContext({ exec }));
    expect(r).toMatchObject({ ok: false, error: 'command exited with code 2\nwarming up\nfatal: disk full' });
  });

  it('says when the command was killed by a signal, could not start, or was canceled', async () => {
    const killed = await execStep.run(
      parse(execStep.with, { command: ['x'] }),
      stepContext({ exec: scriptedExec([{ exitCode: null, signal: 'SIGKILL' }]).exec }),
    );
    expect(killed).toMatchObject({ ok: false, error: 'command killed by SIGKILL' });
    const missing = await execStep.run(
      parse(execStep.with, { command: ['x'] }),
      stepContext({ exec: scriptedExec([{ exitCode: null, error: 'spawn x ENOENT' }]).exec }),
    );
    expect(missing).toMatchObject({ ok: false, error: 'command failed: spawn x ENOENT' });
    const canceled = await execStep.run(
      parse(execStep.with, { command: ['x'] }),
      stepContext({ exec: scriptedExec([{ canceled: true, exitCode: null }]).exec }),
    );
    expect(canceled).toMatchObject({ ok: false, error: 'command canceled' });
  });

  it('refuses a single-string command unless shell is set, and passes shell command lines as they are', async () => {
    expect(execStep.with.safeParse({ command: 'echo hi' }).success).toBe(false);
    const { exec, calls } = scriptedExec([{}]);
    await execStep.run(parse(execStep.with, { command: 'echo hi | wc -c', shell: true }), stepContext({ exec }));
    expect(calls[0]).toMatchObject({ command: 'echo hi | wc -c', shell: true });
  });
});

describe('wait step', () => {
  it('sleeps the duration scaled by the time scale, on the clock', async () => {
    const clock = new VirtualClock();
    const r = await waitStep.run(parse(waitStep.with, { duration: '2m' }), stepContext({ clock, timeScale: 0.01 }));
    expect(r).toEqual({ ok: true, outputs: { waitedMs: 1200 } });
    expect(clock.sleeps).toEqual([1200]);
  });
});

describe('notify and http steps (fake fetch)', () => {
  it('posts a webhook once per run and step, with an idempotency key', async () => {
    const { fetch, requests } = scriptedFetch(() => new Response(null, { status: 204 }));
    const r = await notifyStep.run(
      parse(notifyStep.with, { channel: 'webhook', url: 'http://hooks.example/x', message: 'resumed' }),
      stepContext({ fetch, stepId: 'tell' }),
    );
    expect(r).toMatchObject({ ok: true, outputs: { channel: 'webhook', status: 204 } });
    expect(requests).toHaveLength(1);
    const init = requests[0]?.init;
    expect(init?.method).toBe('POST');
    expect((init?.headers as Record<string, string>)['idempotency-key']).toBe('run-1/tell');
    expect(JSON.parse(String(init?.body))).toMatchObject({ run: 'run-1', playbook: 'unit', step: 'tell', message: 'resumed' });
  });

  it('fails a webhook that answers non-2xx or cannot be reached', async () => {
    const w = parse(notifyStep.with, { channel: 'webhook', url: 'http://hooks.example/x', message: 'm' });
    const refused = await notifyStep.run(w, stepContext({ fetch: scriptedFetch(() => new Response('no', { status: 503 })).fetch }));
    expect(refused).toMatchObject({ ok: false, error: 'webhook http://hooks.example/x answered 503' });
    const down = await notifyStep.run(
      w,
      stepContext({
        fetch: scriptedFetch(() => {
          throw new TypeError('fetch failed');
        }).fetch,
      }),
    );
    expect(down).toMatchObject({ ok: false, error: 'webhook http://hooks.example/x failed: fetch failed' });
  });

  it('http sends an object body as JSON and checks the expected status', async () => {
    const { fetch, requests } = scriptedFetch(() => new Response('{"ok":true}', { status: 202 }));
    const ok = await httpStep.run(
      parse(httpStep.with, { method: 'POST', url: 'http://x/drain', body: { now: true }, expectStatus: 202 }),
      stepContext({ fetch }),
    );
    expect(ok).toMatchObject({ ok: true, outputs: { status: 202, body: '{"ok":true}' } });
    expect((requests[0]?.init?.headers as Record<string, string>)['content-type']).toBe('application/json');
    const wrong = await httpStep.run(parse(httpStep.with, { url: 'http://x/health', expectStatus: [200, 204] }), stepContext({ fetch }));
    expect(wrong).toMatchObject({ ok: false, error: 'GET http://x/health answered 202, expected 200 or 204' });
    const scheme = await httpStep.run(parse(httpStep.with, { url: 'file:///etc/passwd' }), stepContext({ fetch }));
    expect(scheme).toMatchObject({ ok: false, error: 'unsupported URL scheme file: (http or https)' });
  });
});

describe('engine steps (fake engine)', () => {
  it('engine.start starts the data dir engine and moves a new one to the asked phase', async () => {
    const phases: string[] = [];
    let phase: EnginePhase = 'halted';
    const client = fakeClient({
      health: () => Promise.resolve(health({ phase })),
      setPhase: (p) => {
        phases.push(p);
        phase = p;
        return Promise.resolve({ phase: p, reason: null });
      },
    });
    const engines = fakeEngines(client);
    const r = await engineStartStep.run(parse(engineStartStep.with, { phase: 'open' }), stepContext({ engines, engine: { dataDir: '/var/engine' } }));
    expect(r).toMatchObject({ ok: true, outputs: { started: true, phase: 'open', margin: '1.4.2' } });
    expect(engines.calls).toEqual(['start /var/engine']);
    expect(phases).toEqual(['open']);
  });

  it('engine.start and engine.stop refuse an engine named by URL', async () => {
    const ctx = stepContext({ engine: { url: 'http://127.0.0.1:9', tokenFile: '/t' } });
    expect(await engineStartStep.run(parse(engineStartStep.with, {}), ctx)).toMatchObject({ ok: false, error: expect.stringContaining('local dataDir') });
    expect(await engineStopStep.run(parse(engineStopStep.with, {}), ctx)).toMatchObject({ ok: false, error: expect.stringContaining('local dataDir') });
  });

  it('engine.halt leaves an engine that is already halted alone', async () => {
    const client = fakeClient({ health: () => Promise.resolve(health({ phase: 'halted', reason: 'EXCESS_QUEUE_DEPTH' })) });
    const r = await engineHaltStep.run(parse(engineHaltStep.with, {}), stepContext({ engines: fakeEngines(client) }));
    expect(r).toMatchObject({ ok: true, outputs: { phase: 'halted', wasPhase: 'halted' } });
  });

  it('engine.resume continues from the phase the engine is in, dwelling on the clock', async () => {
    let phase: EnginePhase = 'post-only';
    const set: string[] = [];
    const client = fakeClient({
      health: () => Promise.resolve(health({ phase })),
      setPhase: (p) => {
        set.push(p);
        phase = p;
        return Promise.resolve({ phase: p, reason: null });
      },
    });
    const clock = new VirtualClock();
    const started = clock.now();
    const r = await engineResumeStep.run(parse(engineResumeStep.with, { dwell: '1s' }), stepContext({ engines: fakeEngines(client), clock }));
    expect(r).toMatchObject({ ok: true, outputs: { phase: 'open', dwellMs: 1000 } });
    expect(set).toEqual(['open']);
    expect(clock.now() - started).toBe(1000);
  });

  it('engine.resume fails when the engine leaves a phase during the dwell', async () => {
    let calls = 0;
    const client = fakeClient({
      health: () => Promise.resolve(health(++calls > 2 ? { phase: 'halted', reason: 'EXCESS_QUEUE_DEPTH' } : { phase: 'cancel-only' })),
      setPhase: (p) => Promise.resolve({ phase: p, reason: null }),
      setAdmission: (weight) => Promise.resolve({ admissionWeight: weight }),
    });
    const r = await engineResumeStep.run(parse(engineResumeStep.with, { dwell: '1s' }), stepContext({ engines: fakeEngines(client) }));
    expect(r).toMatchObject({ ok: false, error: 'engine left cancel-only during the dwell: now halted (EXCESS_QUEUE_DEPTH)' });
  });

  it('hotfix.rollback does nothing unless `from` is active, and treats "no previous version" as done', async () => {
    const active = (v: string) => fakeClient({ health: () => Promise.resolve(health({ modules: { margin: { active: v, previous: null } } })) });
    const w = parse(hotfixRollbackStep.with, { component: 'margin', from: '1.4.3' });
    expect(await hotfixRollbackStep.run(w, stepContext({ engines: fakeEngines(active('1.4.2')) }))).toMatchObject({ ok: true, outputs: { rolledBack: false } });
    const noPrevious = fakeClient({
      health: () => Promise.resolve(health({ modules: { margin: { active: '1.4.3', previous: null } } })),
      rollbackModule: () => Promise.reject(new EngineHttpError(409, 'no previous version')),
    });
    expect(await hotfixRollbackStep.run(w, stepContext({ engines: fakeEngines(noPrevious) }))).toMatchObject({
      ok: true,
      outputs: { rolledBack: false, note: 'no previous version' },
    });
  });
});

/** The engine's /metrics with a queue depth and the halted flag. */
const metrics = (queueDepth: number, halted = false) =>
  `engine_margin_queue_depth ${queueDepth}\nengine_phase{phase="halted"} ${halted ? 1 : 0}\nengine_match_latency_seconds_bucket{le="+Inf"} 0\n`;

describe('traffic.shift (fake engine and load)', () => {
  it('walks every stage under load and stops the load at the end', async () => {
    const weights: number[] = [];
    const client = fakeClient({
      health: () => Promise.resolve(health({ phase: 'open', admissionWeight: weights.at(-1) ?? 0 })),
      metrics: () => Promise.resolve(metrics(3)),
      setAdmission: (weight) => Promise.resolve({ admissionWeight: void weights.push(weight) ?? weight }),
    });
    const load = fakeLoad({ sent: 0 });
    const w = parse(trafficShiftWith, { stepWeights: [25, 100], bake: '1s', interval: '250ms', gates: { maxQueueDepth: 10 } });
    const r = await trafficShiftStep.run(w, stepContext({ engines: fakeEngines(client, load) }));
    expect(r).toMatchObject({ ok: true, outputs: { weight: 100, stages: 2, samples: 8, maxQueueDepth: 3 } });
    expect(weights).toEqual([25, 100]);
    expect(load).toMatchObject({ started: true, stopped: true });
  });

  it('aborts at the first breach past failureLimit: admission to 0, the stage named', async () => {
    const weights: number[] = [];
    let samples = 0;
    const client = fakeClient({
      health: () => Promise.resolve(health({ phase: 'open', admissionWeight: weights.at(-1) ?? 0 })),
      // The first read is the stage's baseline; the queue grows from the third sample on.
      metrics: () => Promise.resolve(metrics(samples++ >= 3 ? 900 : 5)),
      setAdmission: (weight) => Promise.resolve({ admissionWeight: void weights.push(weight) ?? weight }),
    });
    const w = parse(trafficShiftWith, { stepWeights: [10, 50], bake: '1s', interval: '250ms', gates: { maxQueueDepth: 500 }, failureLimit: 1 });
    const r = await trafficShiftStep.run(w, stepContext({ engines: fakeEngines(client) }));
    expect(r).toMatchObject({ ok: false, outputs: { failedStage: 1, weight: 0 } });
    if (r.ok) throw new Error('expected a failure');
    expect(r.error).toBe('gate breached at stage 1 (weight 10%): queue depth 900 > 500 (maxQueueDepth failed 2 times (failureLimit 1)); admission set to 0');
    expect(weights).toEqual([10, 0]);
  });

  it('refuses to shift traffic onto a halted engine', async () => {
    const client = fakeClient({ health: () => Promise.resolve(health({ phase: 'halted', reason: 'EXCESS_QUEUE_DEPTH' })) });
    const w = parse(trafficShiftWith, { stepWeights: [100], bake: '1s' });
    expect(await trafficShiftStep.run(w, stepContext({ engines: fakeEngines(client) }))).toMatchObject({
      ok: false,
      error: 'traffic.shift: the engine is halted (EXCESS_QUEUE_DEPTH); resume it first',
    });
  });
});

describe('report.incident (fake report writer)', () => {
  it('writes to the run folder by default, with the halt the engine still remembers', async () => {
    const asked: Parameters<ReportWriter['incident']>[0][] = [];
    const reports: ReportWriter = {
      incident: (o) => {
        asked.push(o);
        return Promise.resolve({ files: { md: `${o.out}/incident.md` }, steps: 4, rtoMs: 60_000, rtoBreached: false });
      },
      users: () => Promise.reject(new Error('not used')),
    };
    const client = fakeClient({
      health: () => Promise.resolve(health({ haltedAt: '2026-01-01T00:00:00.000Z', haltReason: 'EXCESS_QUEUE_DEPTH: 10001 > 10000' })),
    });
    const r = await reportIncidentStep.run(parse(reportIncidentStep.with, { formats: ['md'] }), stepContext({ reports, engines: fakeEngines(client) }));
    expect(r).toEqual({ ok: true, outputs: { dir: '/state/runs/run-1', steps: 4, rtoMs: 60_000, rtoBreached: false, md: '/state/runs/run-1/incident.md' } });
    expect(asked[0]).toMatchObject({
      runDir: '/state/runs/run-1',
      formats: ['md'],
      fallback: { at: '2026-01-01T00:00:00.000Z', reason: 'EXCESS_QUEUE_DEPTH: 10001 > 10000' },
    });
  });

  it('still writes the report when the engine is down', async () => {
    const reports: ReportWriter = {
      incident: (o) => Promise.resolve({ files: {}, steps: 0, rtoMs: null, rtoBreached: o.fallback.at === null ? null : true }),
      users: () => Promise.reject(new Error('not used')),
    };
    const down = fakeClient({ health: () => Promise.reject(new Error('engine at http://127.0.0.1:1 did not answer')) });
    const r = await reportIncidentStep.run(parse(reportIncidentStep.with, { out: 'reports' }), stepContext({ reports, engines: fakeEngines(down) }));
    expect(r).toMatchObject({ ok: true, outputs: { dir: '/playbooks/reports', rtoBreached: null } });
  });
});

describe('traffic.shift analysis (fake engine, fake Prometheus)', () => {
  /** An engine whose admission weight reads back what was set, and whose /metrics the test scripts. */
  function engine(queueDepth: () => number = () => 3) {
    const weights: number[] = [];
    const client = fakeClient({
      health: () => Promise.resolve(health({ phase: 'open', admissionWeight: weights.at(-1) ?? 0 })),
      metrics: () => Promise.resolve(metrics(queueDepth())),
      setAdmission: (weight) => Promise.resolve({ admissionWeight: void weights.push(weight) ?? weight }),
    });
    return { client, weights };
  }
  const vector = (v: string) =>
    new Response(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: v ? [{ metric: {}, value: [1, v] }] : [] } }));
  const withProm = (gate: Record<string, unknown>, more: Record<string, unknown> = {}) =>
    parse(trafficShiftWith, {
      stepWeights: [50, 100],
      bake: '1s',
      interval: '250ms',
      prometheus: { address: 'http://prom:9090' },
      gates: { prometheus: [{ name: 'depth', query: 'max(engine_margin_queue_depth)', max: 100, ...gate }] },
      ...more,
    });

  it('journals every sample as a measurement with each gate judged', async () => {
    const { client } = engine();
    const { fetch, requests } = scriptedFetch(() => vector('7'));
    const ctx = stepContext({ engines: fakeEngines(client), fetch });
    const r = await trafficShiftStep.run(withProm({}, { gates: { maxQueueDepth: 10, prometheus: [{ name: 'depth', query: 'q', max: 100 }] } }), ctx);
    expect(r.ok).toBe(true);
    expect(ctx.measurements).toHaveLength(8);
    expect(ctx.measurements[0]).toMatchObject({ stage: 1, stages: 2, weight: 50, verdict: 'pass' });
    expect(ctx.measurements[0]?.judgements.map((m) => [m.gate, m.source, m.verdict, m.value])).toEqual([
      ['maxQueueDepth', 'engine', 'pass', 3],
      ['depth', 'prometheus', 'pass', 7],
    ]);
    expect(requests).toHaveLength(8);
    expect(r.checks?.map((c) => `${c.name}: ${c.message ?? ''}`)).toEqual([
      'stage 1 (weight 50%) maxQueueDepth: 4 pass',
      'stage 1 (weight 50%) depth: 4 pass',
      'stage 2 (weight 100%) maxQueueDepth: 4 pass',
      'stage 2 (weight 100%) depth: 4 pass',
    ]);
  });

  it('pauses on an empty result past inconclusiveLimit and continues when a human promotes', async () => {
    const { client, weights } = engine();
    const asked: string[] = [];
    const approver = { approve: (m: string) => Promise.resolve(void asked.push(m) ?? { approved: true, by: 'tty:sre' }) };
    const ctx = stepContext({ engines: fakeEngines(client), fetch: scriptedFetch(() => vector('')).fetch, approver });
    const r = await trafficShiftStep.run(withProm({}, { inconclusiveLimit: 3 }), ctx);
    expect(r.ok).toBe(true);
    // 8 inconclusive samples: asked after the 4th and the 8th, each promotion forgiving the ones before it.
    expect(asked).toHaveLength(2);
    expect(asked[0]).toContain('depth inconclusive 4 times (inconclusiveLimit 3)');
    expect(ctx.progressLog.map((p) => p.message)).toContain('stage 1/2: promoted past depth by tty:sre');
    expect(weights).toEqual([50, 100]);
  });

  it('aborts when nobody can answer the pause: no TTY and no --yes', async () => {
    const { client, weights } = engine();
    const approver = { approve: () => Promise.resolve({ approved: false, by: 'none', unavailable: 'stdin is not a terminal and --yes was not given' }) };
    const ctx = stepContext({ engines: fakeEngines(client), fetch: scriptedFetch(() => vector('')).fetch, approver });
    const r = await trafficShiftStep.run(withProm({}), ctx);
    expect(r).toMatchObject({ ok: false, outputs: { failedStage: 1, weight: 0 } });
    if (r.ok) throw new Error('expected a failure');
    expect(r.error).toBe(
      'analysis inconclusive at stage 1 (weight 50%): depth inconclusive once (inconclusiveLimit 0); stdin is not a terminal and --yes was not given; admission set to 0',
    );
    expect(weights).toEqual([50, 0]);
  });

  it('aborts when Prometheus cannot be measured more than consecutiveErrorLimit times in a row', async () => {
    const { client, weights } = engine();
    const ctx = stepContext({ engines: fakeEngines(client), fetch: scriptedFetch(() => new Response('<html>bad gateway</html>', { status: 502 })).fetch });
    const r = await trafficShiftStep.run(withProm({}, { consecutiveErrorLimit: 2 }), ctx);
    if (r.ok) throw new Error('expected a failure');
    expect(r.error).toMatch(
      /^gates could not measure at stage 1 \(weight 50%\): depth could not be measured 3 times in a row \(consecutiveErrorLimit 2\); admission set to 0$/,
    );
    expect(ctx.measurements.map((m) => m.verdict)).toEqual(['error', 'error', 'error']);
    expect(weights).toEqual([50, 0]);
  });

  it('a resumed shift asks the gateway first and continues from the stage it had reached', async () => {
    const { client, weights } = engine();
    weights.push(50);
    const w = parse(trafficShiftWith, { stepWeights: [10, 50, 100], bake: '1s', interval: '250ms', gates: { maxQueueDepth: 10 } });
    const ctx = stepContext({ engines: fakeEngines(client), resumed: true });
    const r = await trafficShiftStep.run(w, ctx);
    expect(r).toMatchObject({ ok: true, outputs: { weight: 100, provider: 'engine' } });
    expect(weights).toEqual([50, 50, 100]);
    expect(ctx.progressLog.map((p) => p.message)).toContain('resumed: engine has the canary at 50%; continuing at stage 2/3');
  });
});

describe('traffic.shift when things go wrong mid-shift', () => {
  const engineWith = admissionEngine;
  const w = () => parse(trafficShiftWith, { stepWeights: [50, 100], bake: '1s', interval: '250ms', gates: { maxQueueDepth: 10 } });

  it('takes the traffic back when the step runs out of time, but not when the run is interrupted', async () => {
    for (const interrupted of [false, true]) {
      const step = new AbortController();
      const run = new AbortController();
      let reads = 0;
      const { client, weights } = engineWith(() => {
        if (++reads === 3) {
          if (interrupted) run.abort(new Error('SIGINT'));
          step.abort(new Error(interrupted ? 'SIGINT' : 'timed out'));
        }
        return Promise.resolve(metrics(1));
      });
      const ctx = stepContext({ engines: fakeEngines(client), signal: step.signal, interrupt: run.signal });
      await expect(trafficShiftStep.run(w(), ctx)).rejects.toThrow();
      expect(weights).toEqual(interrupted ? [50] : [50, 0]);
    }
  });

  it('counts an engine /metrics read that fails as an unmeasurable sample, not the end of the shift', async () => {
    let reads = 0;
    const { client } = engineWith(() => (++reads === 2 ? Promise.reject(new Error('engine did not answer GET /metrics')) : Promise.resolve(metrics(1))));
    const ctx = stepContext({ engines: fakeEngines(client) });
    const r = await trafficShiftStep.run(w(), ctx);
    expect(r).toMatchObject({ ok: true, outputs: { maxQueueDepth: 1 } });
    expect(ctx.measurements[0]).toMatchObject({ verdict: 'error', judgements: [{ gate: 'maxQueueDepth', verdict: 'error', value: null }] });
  });

  it('refuses an https:// load.url: the load generator speaks plain HTTP and would send the token in the clear', () => {
    const bad = trafficShiftWith.safeParse({ stepWeights: [100], bake: '1s', load: { url: 'https://gw.example/engine' } });
    expect(bad.success).toBe(false);
    expect(trafficShiftWith.safeParse({ stepWeights: [100], bake: '1s', load: { url: 'http://127.0.0.1:8080/engine' } }).success).toBe(true);
  });
});

describe('risk.preview', () => {
  const preview = (wouldLiquidate: number) =>
    fakeClient({
      riskPreview: () =>
        Promise.resolve({
          marks: { BTCUSDT: '57000' },
          accounts: [
            {
              account: 'trader',
              equity: '70',
              maintenance: '1425',
              uniMMR: '0.0491',
              band: 'liquidation' as const,
              wouldLiquidate: wouldLiquidate > 0,
              isolatedBelow: [],
            },
          ],
          counts: { accounts: 3, wouldLiquidate, liquidation: wouldLiquidate, reduceOnly: 0, warning: 0 },
        }),
    });
  it('fails above maxLiquidations, naming the accounts, so the approval never sees a blind question', async () => {
    const r = await riskPreviewStep.run(parse(riskPreviewStep.with, { maxLiquidations: 0 }), stepContext({ engines: fakeEngines(preview(1)) }));
    expect(r).toMatchObject({
      ok: false,
      error: '1 accounts would be liquidated if trading opened now (maxLiquidations 0): trader',
      outputs: { wouldLiquidate: 1 },
    });
  });
  it('reports the counts as outputs, and each account as progress', async () => {
    const ctx = stepContext({ engines: fakeEngines(preview(0)) });
    const r = await riskPreviewStep.run(parse(riskPreviewStep.with, {}), ctx);
    expect(r).toMatchObject({ ok: true, outputs: { accounts: 3, wouldLiquidate: 0, liquidationBand: 0 } });
    expect(ctx.progressLog[0]?.message).toBe('trader: liquidation, uniMMR 0.0491 (equity 70, maintenance 1425)');
  });
});
