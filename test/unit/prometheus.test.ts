import { describe, expect, it } from 'vitest';
import {
  checkQuery,
  judgePrometheus,
  judgePrometheusGates,
  prometheusConnection,
  prometheusGate,
  prometheusGates,
  queryPrometheus,
  worstVerdict,
  type PromAnswer,
  type PrometheusConnection,
  type PrometheusGate,
} from '../../src/steps/prometheus.js';
import { scriptedFetch } from '../support/fakes.js';

const gate = (over: Record<string, unknown> = {}): PrometheusGate =>
  prometheusGate.parse({ name: 'queue-depth', query: 'max(engine_margin_queue_depth)', max: 1000, ...over });
const conn = (over: Record<string, unknown> = {}): PrometheusConnection => prometheusConnection.parse({ address: 'http://127.0.0.1:9090', ...over });

const TS = 1767225600.123;
const series = (value: string, labels: Record<string, string> = {}): unknown => ({ metric: labels, value: [TS, value] });
const vector = (...values: string[]): PromAnswer => ({
  kind: 'ok',
  body: { status: 'success', data: { resultType: 'vector', result: values.map((v, i) => series(v, { shard: String(i) })) } },
});
const scalar = (value: string): PromAnswer => ({ kind: 'ok', body: { status: 'success', data: { resultType: 'scalar', result: [TS, value] } } });
const json = (status: number, body: unknown): Response => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
const never = new AbortController().signal;

describe('prometheus schemas', () => {
  it('fills the defaults: timeout 10s, onEmpty and onNaN inconclusive, no reduce', () => {
    expect(conn()).toEqual({ address: 'http://127.0.0.1:9090', timeout: '10s' });
    expect(gate()).toEqual({ name: 'queue-depth', query: 'max(engine_margin_queue_depth)', max: 1000, onEmpty: 'inconclusive', onNaN: 'inconclusive' });
  });

  it.each([
    [{ max: undefined }, 'needs max, min or both'],
    [{ min: 10, max: 5 }, 'min is above max'],
    [{ reduce: 'median' }, 'reduce'],
    [{ onEmpty: 'skip' }, 'onEmpty'],
    [{ name: 'Queue Depth' }, 'lowercase'],
    [{ query: '  ' }, 'query'],
    [{ extra: 1 }, 'extra'],
  ])('rejects a gate with %j', (over, message) => {
    const r = prometheusGate.safeParse({ name: 'queue-depth', query: 'q', max: 1000, ...over });
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toContain(message);
  });

  it('accepts a gate with only min, and min equal to max', () => {
    expect(prometheusGate.safeParse({ name: 'up', query: 'up', min: 1 }).success).toBe(true);
    expect(prometheusGate.safeParse({ name: 'up', query: 'up', min: 1, max: 1 }).success).toBe(true);
  });

  it('rejects two gates with one name, an address that is not http(s), a timeout that is not a duration', () => {
    expect(prometheusGates.safeParse([gate(), gate()]).success).toBe(false);
    expect(prometheusConnection.safeParse({ address: 'ftp://prom' }).success).toBe(false);
    expect(prometheusConnection.safeParse({ address: 'prom:9090x' }).success).toBe(false);
    expect(prometheusConnection.safeParse({ address: 'http://p', timeout: 10 }).success).toBe(false);
    expect(prometheusConnection.safeParse({ address: '${{ vars.promUrl }}', headers: { Authorization: 'Bearer ${{ vars.promToken }}' } }).success).toBe(true);
  });
});

describe('judgePrometheus: every answer shape', () => {
  const cases: [string, Record<string, unknown>, PromAnswer, { verdict: string; value: number | null; detail: string }][] = [
    ['one series under max', {}, vector('7'), { verdict: 'pass', value: 7, detail: 'queue-depth 7 <= 1000' }],
    ['one series at max', {}, vector('1000'), { verdict: 'pass', value: 1000, detail: 'queue-depth 1000 <= 1000' }],
    ['one series over max', {}, vector('1200'), { verdict: 'fail', value: 1200, detail: 'queue-depth 1200 > 1000' }],
    ['under min', { max: undefined, min: 5 }, vector('3'), { verdict: 'fail', value: 3, detail: 'queue-depth 3 < 5' }],
    ['within min and max', { min: 5 }, vector('5.5'), { verdict: 'pass', value: 5.5, detail: 'queue-depth 5.5 in [5, 1000]' }],
    ['a scalar', {}, scalar('1.5'), { verdict: 'pass', value: 1.5, detail: 'queue-depth 1.5 <= 1000' }],
    ['a scalar in exponent form', {}, scalar('1e+06'), { verdict: 'fail', value: 1e6, detail: 'queue-depth 1000000 > 1000' }],
    ['+Inf against max', {}, scalar('+Inf'), { verdict: 'fail', value: Infinity, detail: 'queue-depth +Inf > 1000' }],
    ['-Inf against max', {}, vector('-Inf'), { verdict: 'pass', value: -Infinity, detail: 'queue-depth -Inf <= 1000' }],
    ['-Inf against min', { min: 0 }, vector('-Inf'), { verdict: 'fail', value: -Infinity, detail: 'queue-depth -Inf < 0' }],
    ['an empty vector', {}, vector(), { verdict: 'inconclusive', value: null, detail: 'queue-depth: no series (onEmpty: inconclusive)' }],
    ['a NaN scalar', {}, scalar('NaN'), { verdict: 'inconclusive', value: null, detail: 'queue-depth is NaN (onNaN: inconclusive)' }],
    ['a NaN series', {}, vector('NaN'), { verdict: 'inconclusive', value: null, detail: 'queue-depth is NaN (onNaN: inconclusive)' }],
    [
      'several series without reduce',
      {},
      vector('1', '2', '3'),
      { verdict: 'error', value: null, detail: 'queue-depth: 3 series; set reduce (max, min, sum or avg) or aggregate in the query' },
    ],
    [
      'a matrix',
      {},
      { kind: 'ok', body: { status: 'success', data: { resultType: 'matrix', result: [{ metric: {}, values: [[TS, '1']] }] } } },
      { verdict: 'error', value: null, detail: 'queue-depth: query returns a matrix (a range vector); use an instant vector' },
    ],
    [
      'a string',
      {},
      { kind: 'ok', body: { status: 'success', data: { resultType: 'string', result: [TS, 's'] } } },
      { verdict: 'error', value: null, detail: 'queue-depth: query returns a string; use an instant vector or a scalar' },
    ],
    [
      'a native histogram',
      {},
      { kind: 'ok', body: { status: 'success', data: { resultType: 'vector', result: [{ metric: {}, histogram: [TS, { count: '1' }] }] } } },
      {
        verdict: 'error',
        value: null,
        detail: 'queue-depth: a series is a native histogram; use histogram_quantile() or another function that gives a number',
      },
    ],
    [
      'a value that is not a number',
      {},
      vector('many'),
      { verdict: 'error', value: null, detail: 'queue-depth: malformed series: {"metric":{"shard":"0"},"value":[1767225600.123,"many"]}' },
    ],
    [
      'a value sent as a JSON number',
      {},
      { kind: 'ok', body: { status: 'success', data: { resultType: 'scalar', result: [TS, 7] } } },
      { verdict: 'error', value: null, detail: 'queue-depth: malformed scalar: [1767225600.123,7]' },
    ],
    [
      'status error in a 2xx body',
      {},
      { kind: 'ok', body: { status: 'error', errorType: 'execution', error: 'query processing would load too many samples' } },
      { verdict: 'error', value: null, detail: 'queue-depth: Prometheus error (execution): query processing would load too many samples' },
    ],
    [
      'JSON that is not a Prometheus answer',
      {},
      { kind: 'ok', body: { hello: 'world' } },
      { verdict: 'error', value: null, detail: 'queue-depth: not a Prometheus answer: {"hello":"world"}' },
    ],
    [
      'HTTP 400 bad_data',
      {},
      {
        kind: 'http',
        status: 400,
        bodyText: '{"status":"error","errorType":"bad_data","error":"invalid parameter \\"query\\": 1:5: parse error: unclosed left parenthesis"}',
      },
      {
        verdict: 'error',
        value: null,
        detail: 'queue-depth: Prometheus answered HTTP 400 (bad_data): invalid parameter "query": 1:5: parse error: unclosed left parenthesis',
      },
    ],
    [
      'HTTP 422 execution',
      {},
      { kind: 'http', status: 422, bodyText: '{"status":"error","errorType":"execution","error":"invalid regular expression in label_replace(): ("}' },
      { verdict: 'error', value: null, detail: 'queue-depth: Prometheus answered HTTP 422 (execution): invalid regular expression in label_replace(): (' },
    ],
    [
      'HTTP 503 timeout',
      {},
      { kind: 'http', status: 503, bodyText: '{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}' },
      { verdict: 'error', value: null, detail: 'queue-depth: Prometheus answered HTTP 503 (timeout): query timed out in expression evaluation' },
    ],
    [
      "a proxy's HTML 502",
      {},
      { kind: 'http', status: 502, bodyText: '<html>\n<head><title>502 Bad Gateway</title></head>\n<body>nginx</body>\n</html>' },
      {
        verdict: 'error',
        value: null,
        detail: 'queue-depth: HTTP 502, not a Prometheus answer: <html> <head><title>502 Bad Gateway</title></head> <body>nginx</body> </html>',
      },
    ],
    [
      'a 200 login page',
      {},
      { kind: 'http', status: 200, bodyText: `<html>${'x'.repeat(300)}</html>` },
      { verdict: 'error', value: null, detail: `queue-depth: HTTP 200, not a Prometheus answer: <html>${'x'.repeat(194)}…` },
    ],
    [
      'an empty 500',
      {},
      { kind: 'http', status: 500, bodyText: '' },
      { verdict: 'error', value: null, detail: 'queue-depth: HTTP 500, not a Prometheus answer: (empty body)' },
    ],
    [
      'a timeout',
      {},
      { kind: 'timeout', timeoutMs: 10_000 },
      { verdict: 'error', value: null, detail: 'queue-depth: no answer from Prometheus within 10000ms' },
    ],
    [
      'a network error',
      {},
      { kind: 'network', message: 'fetch failed: connect ECONNREFUSED 127.0.0.1:9' },
      { verdict: 'error', value: null, detail: 'queue-depth: Prometheus unreachable: fetch failed: connect ECONNREFUSED 127.0.0.1:9' },
    ],
  ];

  it.each(cases)('%s', (_shape, over, answer, expected) => {
    expect(judgePrometheus(gate(over), answer)).toEqual(expected);
  });

  it('keeps Prometheus warnings in the detail, once each, whatever the verdict', () => {
    const body = { status: 'success', data: { resultType: 'vector', result: [series('1200')] }, warnings: ['remote read failed', 'partial data'] };
    expect(judgePrometheus(gate(), { kind: 'ok', body, warnings: ['remote read failed'] })).toEqual({
      verdict: 'fail',
      value: 1200,
      detail: 'queue-depth 1200 > 1000 (warnings: remote read failed; partial data)',
    });
  });

  it('never throws, and never passes, on bodies of any odd shape', () => {
    const odd: unknown[] = [
      null,
      7,
      'text',
      [],
      {},
      { status: 'success' },
      { status: 'success', data: null },
      { status: 'success', data: { resultType: 'vector' } },
    ];
    odd.push(
      { status: 'success', data: { resultType: 'vector', result: [null, 1, { value: 'x' }] } },
      { status: 'success', data: { resultType: 'scalar', result: null } },
    );
    for (const body of odd) expect(judgePrometheus(gate(), { kind: 'ok', body }).verdict, JSON.stringify(body)).toBe('error');
  });
});

describe('judgePrometheus: reduce, limits and the onEmpty/onNaN policies', () => {
  it.each([
    ['max', 12, 'queue-depth 12 (max of 3 series) <= 1000'],
    ['min', 3, 'queue-depth 3 (min of 3 series) <= 1000'],
    ['sum', 22, 'queue-depth 22 (sum of 3 series) <= 1000'],
    ['avg', 22 / 3, `queue-depth ${22 / 3} (avg of 3 series) <= 1000`],
  ])('reduce %s gives the %s of the series', (reduce, value, detail) => {
    expect(judgePrometheus(gate({ reduce }), vector('3', '12', '7'))).toEqual({ verdict: 'pass', value, detail });
  });

  it('judges the reduced value against the limits', () => {
    expect(judgePrometheus(gate({ reduce: 'sum', max: 20 }), vector('3', '12', '7'))).toMatchObject({ verdict: 'fail', value: 22 });
    expect(judgePrometheus(gate({ reduce: 'min', max: undefined, min: 5 }), vector('3', '12'))).toEqual({
      verdict: 'fail',
      value: 3,
      detail: 'queue-depth 3 (min of 2 series) < 5',
    });
  });

  it('a single series needs no reduce, and reduce changes nothing about it', () => {
    expect(judgePrometheus(gate({ reduce: 'avg' }), vector('7'))).toEqual(judgePrometheus(gate(), vector('7')));
  });

  it('leaves NaN series out of the reduction: a breach by the others still fails, otherwise onNaN decides', () => {
    expect(judgePrometheus(gate({ reduce: 'max' }), vector('1200', 'NaN'))).toEqual({
      verdict: 'fail',
      value: 1200,
      detail: 'queue-depth 1200 (max of 1 series) > 1000',
    });
    expect(judgePrometheus(gate({ reduce: 'max' }), vector('7', 'NaN', '9'))).toEqual({
      verdict: 'inconclusive',
      value: 9,
      detail: 'queue-depth 9 (max of 2 series) <= 1000, but 1 of 3 series are NaN (onNaN: inconclusive)',
    });
    expect(judgePrometheus(gate({ reduce: 'avg' }), vector('NaN', 'NaN'))).toEqual({
      verdict: 'inconclusive',
      value: null,
      detail: 'queue-depth: all 2 series are NaN (onNaN: inconclusive)',
    });
  });

  it('a sum of +Inf and -Inf is NaN, judged by onNaN', () => {
    expect(judgePrometheus(gate({ reduce: 'sum', onNaN: 'fail' }), vector('+Inf', '-Inf'))).toMatchObject({ verdict: 'fail', value: null });
  });

  const policies = ['fail', 'pass', 'inconclusive'] as const;
  const combos = policies.flatMap((onEmpty) => policies.map((onNaN) => [onEmpty, onNaN] as const));
  it.each(combos)('onEmpty %s, onNaN %s: each policy decides its own gap only', (onEmpty, onNaN) => {
    const g = gate({ onEmpty, onNaN, reduce: 'max' });
    expect(judgePrometheus(g, vector())).toEqual({ verdict: onEmpty, value: null, detail: `queue-depth: no series (onEmpty: ${onEmpty})` });
    expect(judgePrometheus(g, scalar('NaN'))).toEqual({ verdict: onNaN, value: null, detail: `queue-depth is NaN (onNaN: ${onNaN})` });
    expect(judgePrometheus(g, vector('7', 'NaN')).verdict).toBe(onNaN);
    // Neither policy reaches a measured value, a breach or an error.
    expect(judgePrometheus(g, vector('7')).verdict).toBe('pass');
    expect(judgePrometheus(g, vector('1200', 'NaN')).verdict).toBe('fail');
    expect(judgePrometheus(g, { kind: 'timeout' }).verdict).toBe('error');
  });
});

describe('queryPrometheus (scripted fetch)', () => {
  const ok = json(200, { status: 'success', data: { resultType: 'vector', result: [] } });

  it('POSTs the query form-encoded to <address>/api/v1/query with the headers', async () => {
    const { fetch, requests } = scriptedFetch(() => ok.clone());
    const c = conn({ address: 'http://prom.internal:9090/prefix/', headers: { Authorization: 'Bearer t0k3n', 'Content-Type': 'text/plain' } });
    const answer = await queryPrometheus(c, 'sum(rate(x{job="a b"}[1m])) > 0', { fetch, signal: never });
    expect(answer).toEqual({ kind: 'ok', body: { status: 'success', data: { resultType: 'vector', result: [] } } });
    expect(requests).toHaveLength(1);
    expect(requests[0]?.url).toBe('http://prom.internal:9090/prefix/api/v1/query');
    expect(requests[0]?.init).toMatchObject({
      method: 'POST',
      headers: { Authorization: 'Bearer t0k3n', 'content-type': 'application/x-www-form-urlencoded' },
      body: 'query=sum%28rate%28x%7Bjob%3D%22a+b%22%7D%5B1m%5D%29%29+%3E+0',
    });
    expect(Object.keys(requests[0]?.init?.headers ?? {})).not.toContain('Content-Type');
    expect(new URLSearchParams(String(requests[0]?.init?.body)).get('query')).toBe('sum(rate(x{job="a b"}[1m])) > 0');
  });

  it('sends time in seconds when given one, and nothing else', async () => {
    const { fetch, requests } = scriptedFetch(() => ok.clone());
    await queryPrometheus(conn(), 'up', { fetch, signal: never, time: 1767225600123 });
    expect(requests[0]?.init?.body).toBe('query=up&time=1767225600.123');
  });

  it('lifts warnings, and hands back non-2xx and non-JSON answers as http with the body', async () => {
    const warned = scriptedFetch(() => json(200, { status: 'success', data: { resultType: 'scalar', result: [TS, '1'] }, warnings: ['w1'] }));
    expect(await queryPrometheus(conn(), 'up', { fetch: warned.fetch, signal: never })).toMatchObject({ kind: 'ok', warnings: ['w1'] });
    const bad = scriptedFetch(() => json(400, { status: 'error', errorType: 'bad_data', error: 'parse error' }));
    expect(await queryPrometheus(conn(), 'max(', { fetch: bad.fetch, signal: never })).toEqual({
      kind: 'http',
      status: 400,
      bodyText: '{"status":"error","errorType":"bad_data","error":"parse error"}',
    });
    const html = scriptedFetch(() => new Response('<html>login</html>', { status: 200 }));
    expect(await queryPrometheus(conn(), 'up', { fetch: html.fetch, signal: never })).toEqual({ kind: 'http', status: 200, bodyText: '<html>login</html>' });
  });

  it('turns a refused connection into a network answer that keeps the cause', async () => {
    const { fetch } = scriptedFetch(() => {
      throw new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:9') });
    });
    expect(await queryPrometheus(conn(), 'up', { fetch, signal: never })).toEqual({
      kind: 'network',
      message: 'fetch failed: connect ECONNREFUSED 127.0.0.1:9',
    });
  });

  /** A Prometheus that never answers: the request ends only when its signal aborts. */
  const hanging = () =>
    scriptedFetch(
      (_url, init) =>
        new Promise<Response>((_resolve, reject) => {
          const signal = init?.signal as AbortSignal;
          signal.addEventListener('abort', () => reject(signal.reason), { once: true });
        }),
    );

  it('gives up after the timeout with a timeout answer', async () => {
    const { fetch } = hanging();
    expect(await queryPrometheus(conn(), 'up', { fetch, signal: never, timeoutMs: 20 })).toEqual({ kind: 'timeout', timeoutMs: 20 });
  });

  it("rejects with the step's abort reason, never a timeout answer, when the step aborts mid-query or before", async () => {
    const { fetch } = hanging();
    const step = new AbortController();
    const reason = new Error('step aborted');
    const pending = queryPrometheus(conn(), 'up', { fetch, signal: step.signal, timeoutMs: 60_000 });
    step.abort(reason);
    await expect(pending).rejects.toBe(reason);
    await expect(queryPrometheus(conn(), 'up', { fetch, signal: step.signal })).rejects.toBe(reason);
  });
});

describe('checkQuery (scripted fetch)', () => {
  const check = (res: () => Response) => checkQuery(conn(), 'q', { fetch: scriptedFetch(res).fetch, signal: never });

  it('accepts a query that evaluates to a vector (empty too) or a scalar', async () => {
    expect(await check(() => json(200, { status: 'success', data: { resultType: 'vector', result: [] } }))).toEqual({
      ok: true,
      resultType: 'vector',
      series: 0,
    });
    expect(await check(() => json(200, { status: 'success', data: { resultType: 'scalar', result: [TS, 'NaN'] } }))).toEqual({
      ok: true,
      resultType: 'scalar',
      series: 1,
    });
  });

  it("rejects a malformed or unexecutable query with Prometheus's message, and a range vector", async () => {
    expect(await check(() => json(400, { status: 'error', errorType: 'bad_data', error: '1:5: parse error: unclosed left parenthesis' }))).toEqual({
      ok: false,
      problem: 'rejected',
      message: 'Prometheus rejected the query (bad_data): 1:5: parse error: unclosed left parenthesis',
    });
    expect(await check(() => json(422, { status: 'error', errorType: 'execution', error: 'invalid label name' }))).toMatchObject({
      ok: false,
      problem: 'rejected',
    });
    expect(await check(() => json(200, { status: 'success', data: { resultType: 'matrix', result: [] } }))).toMatchObject({ ok: false, problem: 'rejected' });
  });

  it('tells an unreachable or odd server apart from a bad query', async () => {
    const refused = scriptedFetch(() => {
      throw new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:9090') });
    });
    expect(await checkQuery(conn(), 'up', { fetch: refused.fetch, signal: never })).toEqual({
      ok: false,
      problem: 'unreachable',
      message: 'http://127.0.0.1:9090: Prometheus unreachable: fetch failed: connect ECONNREFUSED 127.0.0.1:9090',
    });
    expect(await check(() => new Response('Unauthorized', { status: 401 }))).toEqual({
      ok: false,
      problem: 'unexpected',
      message: 'http://127.0.0.1:9090: HTTP 401, not a Prometheus answer: Unauthorized',
    });
    expect(await check(() => json(503, { status: 'error', errorType: 'timeout', error: 'query timed out' }))).toMatchObject({
      ok: false,
      problem: 'unexpected',
    });
  });
});

describe('judgePrometheusGates', () => {
  it('queries every gate at once, measures each latency and ranks the verdicts like judgeSample', async () => {
    const answers: Record<string, unknown> = {
      a: { status: 'success', data: { resultType: 'scalar', result: [TS, '7'] } },
      b: { status: 'success', data: { resultType: 'scalar', result: [TS, '1200'] } },
      c: { status: 'success', data: { resultType: 'vector', result: [] } },
    };
    let inFlight = 0;
    let maxInFlight = 0;
    const { fetch } = scriptedFetch(async (_url, init) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setImmediate(r));
      inFlight--;
      return json(200, answers[new URLSearchParams(String(init?.body)).get('query') ?? '']);
    });
    let t = 0;
    const gates = [gate({ name: 'a', query: 'a' }), gate({ name: 'b', query: 'b' }), gate({ name: 'c', query: 'c' })];
    const j = await judgePrometheusGates(conn(), gates, { fetch, signal: never, now: () => (t += 5) });
    expect(maxInFlight).toBe(3);
    expect(j.verdict).toBe('fail');
    expect(j.breaches).toEqual(['b 1200 > 1000']);
    expect(j.gates.map((g) => [g.name, g.verdict, g.value])).toEqual([
      ['a', 'pass', 7],
      ['b', 'fail', 1200],
      ['c', 'inconclusive', null],
    ]);
    for (const g of j.gates) expect(g.latencyMs).toBeGreaterThan(0);
  });

  it('ranks fail over error over inconclusive over pass; no gates pass', () => {
    expect(worstVerdict([])).toBe('pass');
    expect(worstVerdict(['pass', 'inconclusive'])).toBe('inconclusive');
    expect(worstVerdict(['inconclusive', 'error', 'pass'])).toBe('error');
    expect(worstVerdict(['error', 'fail', 'inconclusive'])).toBe('fail');
  });

  it('rejects when the step aborts', async () => {
    const step = new AbortController();
    step.abort(new Error('stop'));
    const { fetch } = scriptedFetch(() => json(200, {}));
    await expect(judgePrometheusGates(conn(), [gate()], { fetch, signal: step.signal })).rejects.toThrow('stop');
  });
});
