/**
 * Prometheus gates against the real Prometheus (Debian's binary): it scrapes a tiny exporter this test
 * controls every second, and the gates query it over HTTP the way traffic.shift will.
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkQuery,
  judgePrometheus,
  judgePrometheusGates,
  prometheusConnection,
  prometheusGate,
  queryPrometheus,
  type PrometheusConnection,
  type PrometheusGate,
} from '../../src/steps/prometheus.js';
import { freePort, PROMETHEUS_BIN, startPrometheus, type TestPrometheus } from '../support/prometheus.js';

const realFetch: typeof globalThis.fetch = (input, init) => fetch(input, init);
const never = new AbortController().signal;
const deps = { fetch: realFetch, signal: never };
const gate = (over: Record<string, unknown>): PrometheusGate => prometheusGate.parse({ name: 'queue-depth', max: 1000, ...over });

/** The exporter's gauges; the test sets them, Prometheus sees them at its next scrape. */
const gauges = { queueDepth: 7, shards: { a: 3, b: 12 } };

function metricsText(): string {
  return [
    '# HELP engine_margin_queue_depth Orders waiting for a margin check.',
    '# TYPE engine_margin_queue_depth gauge',
    `engine_margin_queue_depth ${gauges.queueDepth}`,
    '# HELP engine_shard_queue_depth Orders waiting, per shard.',
    '# TYPE engine_shard_queue_depth gauge',
    ...Object.entries(gauges.shards).map(([shard, v]) => `engine_shard_queue_depth{shard="${shard}"} ${v}`),
    '',
  ].join('\n');
}

/** Poll a query until its answer satisfies `done` (Prometheus scrapes every second), bounded. */
async function waitForAnswer(conn: PrometheusConnection, query: string, done: (values: string[]) => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const a = await queryPrometheus(conn, query, deps);
    const result = a.kind === 'ok' ? (a.body as { data?: { result?: { value: [number, string] }[] } }).data?.result : undefined;
    if (Array.isArray(result) && done(result.map((s) => s.value[1]))) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${query}: last answer ${JSON.stringify(a)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
};
const percentile = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] as number;

if (!PROMETHEUS_BIN) console.warn("test/integration/prometheus.test.ts: skipped, Debian's prometheus binary is not installed (apt-get install prometheus)");

describe.skipIf(!PROMETHEUS_BIN)(`prometheus gates against the real Prometheus${PROMETHEUS_BIN ? '' : ' (skipped: prometheus is not installed)'}`, () => {
  let exporter: Server;
  let prom: TestPrometheus;
  let conn: PrometheusConnection;

  beforeAll(async () => {
    exporter = createServer((req, res) => {
      if (req.url !== '/metrics') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(metricsText());
    });
    await new Promise<void>((resolve) => exporter.listen(0, '127.0.0.1', resolve));
    const address = exporter.address() as { port: number };
    prom = await startPrometheus({ scrapeTargets: [`127.0.0.1:${address.port}`], scrapeInterval: '1s' });
    conn = prometheusConnection.parse({ address: prom.url, timeout: '5s' });
    await waitForAnswer(conn, 'engine_shard_queue_depth', (values) => values.length === 2);
  });

  afterAll(async () => {
    await prom?.stop();
    await new Promise((resolve) => (exporter ? exporter.close(resolve) : resolve(undefined)));
  });

  it('passes a vector query under max and fails it once the gauge goes over', async () => {
    expect(judgePrometheus(gate({ query: 'engine_margin_queue_depth' }), await queryPrometheus(conn, 'engine_margin_queue_depth', deps))).toEqual({
      verdict: 'pass',
      value: 7,
      detail: 'queue-depth 7 <= 1000',
    });
    gauges.queueDepth = 1200;
    try {
      await waitForAnswer(conn, 'engine_margin_queue_depth', (values) => values[0] === '1200');
      const q = 'max(engine_margin_queue_depth)';
      expect(judgePrometheus(gate({ query: q }), await queryPrometheus(conn, q, deps))).toEqual({
        verdict: 'fail',
        value: 1200,
        detail: 'queue-depth 1200 > 1000',
      });
      expect(judgePrometheus(gate({ query: q, max: undefined, min: 1300 }), await queryPrometheus(conn, q, deps))).toMatchObject({
        verdict: 'fail',
        value: 1200,
      });
    } finally {
      gauges.queueDepth = 7;
      await waitForAnswer(conn, 'engine_margin_queue_depth', (values) => values[0] === '7');
    }
  });

  it('calls several series an error without reduce, and takes their max with reduce: max', async () => {
    const q = 'engine_shard_queue_depth';
    const answer = await queryPrometheus(conn, q, deps);
    expect(judgePrometheus(gate({ query: q }), answer)).toMatchObject({
      verdict: 'error',
      value: null,
      detail: expect.stringContaining('2 series; set reduce'),
    });
    expect(judgePrometheus(gate({ query: q, reduce: 'max' }), answer)).toEqual({
      verdict: 'pass',
      value: 12,
      detail: 'queue-depth 12 (max of 2 series) <= 1000',
    });
    expect(judgePrometheus(gate({ query: q, reduce: 'sum', max: 10 }), answer)).toMatchObject({ verdict: 'fail', value: 15 });
  });

  it('judges an empty result and a NaN inconclusive by default, a scalar by its value', async () => {
    expect(judgePrometheus(gate({ query: 'absent_metric_xyz' }), await queryPrometheus(conn, 'absent_metric_xyz', deps))).toEqual({
      verdict: 'inconclusive',
      value: null,
      detail: 'queue-depth: no series (onEmpty: inconclusive)',
    });
    expect(judgePrometheus(gate({ query: '0/0' }), await queryPrometheus(conn, '0/0', deps))).toEqual({
      verdict: 'inconclusive',
      value: null,
      detail: 'queue-depth is NaN (onNaN: inconclusive)',
    });
    expect(judgePrometheus(gate({ query: '1/0' }), await queryPrometheus(conn, '1/0', deps))).toMatchObject({ verdict: 'fail', value: Infinity });
    expect(
      judgePrometheus(gate({ query: 'scalar(engine_margin_queue_depth)' }), await queryPrometheus(conn, 'scalar(engine_margin_queue_depth)', deps)),
    ).toMatchObject({ verdict: 'pass', value: 7 });
  });

  it('errors on a range vector and on a query Prometheus cannot run', async () => {
    expect(judgePrometheus(gate({ query: 'engine_margin_queue_depth[1m]' }), await queryPrometheus(conn, 'engine_margin_queue_depth[1m]', deps))).toMatchObject(
      {
        verdict: 'error',
        detail: 'queue-depth: query returns a matrix (a range vector); use an instant vector',
      },
    );
    expect(judgePrometheus(gate({ query: 'max(' }), await queryPrometheus(conn, 'max(', deps))).toEqual({
      verdict: 'error',
      value: null,
      detail: 'queue-depth: Prometheus answered HTTP 400 (bad_data): invalid parameter "query": 1:5: parse error: unclosed left parenthesis',
    });
  });

  it("checkQuery: accepts a good query, rejects a malformed one with Prometheus's message", async () => {
    expect(await checkQuery(conn, 'max(engine_margin_queue_depth)', deps)).toEqual({ ok: true, resultType: 'vector', series: 1 });
    expect(await checkQuery(conn, 'absent_metric_xyz', deps)).toEqual({ ok: true, resultType: 'vector', series: 0 });
    expect(await checkQuery(conn, 'max(', deps)).toEqual({
      ok: false,
      problem: 'rejected',
      message: 'Prometheus rejected the query (bad_data): invalid parameter "query": 1:5: parse error: unclosed left parenthesis',
    });
    expect(await checkQuery(conn, 'label_replace(vector(1), "a", "b", "c", "(")', deps)).toEqual({
      ok: false,
      problem: 'rejected',
      message: 'Prometheus rejected the query (execution): invalid regular expression in label_replace(): (',
    });
    expect(await checkQuery(conn, 'engine_margin_queue_depth[1m]', deps)).toMatchObject({ ok: false, problem: 'rejected' });
  });

  it('an unreachable address is a network error verdict, and unreachable for checkQuery', async () => {
    const down = prometheusConnection.parse({ address: `http://127.0.0.1:${await freePort()}`, timeout: '2s' });
    const j = judgePrometheus(gate({ query: 'up' }), await queryPrometheus(down, 'up', deps));
    expect(j).toMatchObject({ verdict: 'error', value: null });
    expect(j.detail).toMatch(/^queue-depth: Prometheus unreachable: fetch failed: .*ECONNREFUSED/);
    expect(await checkQuery(down, 'up', deps)).toMatchObject({ ok: false, problem: 'unreachable', message: expect.stringContaining('ECONNREFUSED') });
  });

  it('measures the overhead of one gate query (median of 50), and of a sample of three gates in parallel', async () => {
    const one = [gate({ query: 'max(engine_margin_queue_depth)', reduce: 'max' })];
    const three = [...one, gate({ name: 'shards', query: 'engine_shard_queue_depth', reduce: 'max' }), gate({ name: 'nan', query: '0/0', onNaN: 'pass' })];
    await judgePrometheusGates(conn, three, deps); // warm the connection
    const single: number[] = [];
    const sample: number[] = [];
    for (let i = 0; i < 50; i++) {
      const r = await judgePrometheusGates(conn, one, deps);
      expect(r.verdict).toBe('pass');
      single.push(r.gates[0]?.latencyMs as number);
      const start = performance.now();
      const s = await judgePrometheusGates(conn, three, deps);
      sample.push(performance.now() - start);
      expect(s.verdict).toBe('pass');
    }
    console.log(
      `prometheus gate overhead (Prometheus ${PROMETHEUS_BIN}, 50 queries): one gate median ${median(single).toFixed(2)}ms, p90 ${percentile(single, 0.9).toFixed(2)}ms; ` +
        `three gates in parallel median ${median(sample).toFixed(2)}ms, p90 ${percentile(sample, 0.9).toFixed(2)}ms`,
    );
  });
});
