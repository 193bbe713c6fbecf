// bench/analysis: what a Prometheus gate costs a traffic-shift sample. The baseline is the sample the
// engine gates already take (GET /metrics, parse, judge); the same sample with two Prometheus gates
// (queries to a real Prometheus scraping the same engine) is measured in the same process, interleaved.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => import(join(root, 'dist', p));
const { startEngine, stopEngine } = await dist('engine-client/supervisor.js');
const { findBinary, startRehearsalInfra } = await dist('cli/rehearsal-infra.js');
const { parseMetrics } = await dist('engine-client/load.js');
const { engineJudgements } = await dist('steps/gates.js');
const { judgePrometheusGates } = await dist('steps/prometheus.js');
const { dataDirLayout } = await dist('util/data-dir.js');

if (!findBinary('prometheus')) {
  console.log('skipped: prometheus is not installed (apt-get install prometheus)');
  process.exit(0);
}

const SAMPLES = 200;
const scratch = mkdtempSync(join(tmpdir(), 'bench-analysis-'));
const dataDir = join(scratch, 'engine');
let infra;
try {
  const { client, info } = await startEngine(dataDir, { feedInterval: '100ms', exitWithMe: true });
  await client.setPhase('open');
  infra = await startRehearsalInfra({ scratch, engineUrl: info.url, tokenFile: dataDirLayout(dataDir).token, prometheus: true });
  const conn = { address: infra.vars.prometheusUrl, timeout: '2s' };
  const gates = [
    { name: 'queue-depth', query: 'max(engine_margin_queue_depth)', max: 1000, onEmpty: 'inconclusive', onNaN: 'inconclusive' },
    { name: 'engine-up', query: 'min(up{job="engine"})', min: 1, onEmpty: 'inconclusive', onNaN: 'inconclusive' },
  ];
  const engineGates = { maxQueueDepth: 500, maxErrorRate: 0.01, p99LatencyMs: 250 };
  const engineSample = async () => {
    const m = parseMetrics(await client.metrics());
    return engineJudgements(engineGates, { halted: m.halted, queueDepth: m.queueDepth, sent: 10, errors: 0, p99LatencyMs: 1 });
  };
  const withProm = async () => {
    const [e, p] = await Promise.all([engineSample(), judgePrometheusGates(conn, gates, { fetch, signal: new AbortController().signal })]);
    if (p.gates.some((g) => g.verdict !== 'pass')) throw new Error(`a Prometheus gate did not pass: ${p.gates.map((g) => g.detail).join('; ')}`);
    return [...e, ...p.gates];
  };
  // Warm both paths (keep-alive sockets, JIT) before measuring.
  for (let i = 0; i < 20; i++) await Promise.all([engineSample(), withProm()]);
  const base = [];
  const prom = [];
  for (let i = 0; i < SAMPLES; i++) {
    let t = performance.now();
    await engineSample();
    base.push(performance.now() - t);
    t = performance.now();
    await withProm();
    prom.push(performance.now() - t);
  }
  const stat = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return { median: s[Math.floor(s.length / 2)], p90: s[Math.floor(s.length * 0.9)] };
  };
  const b = stat(base);
  const p = stat(prom);
  console.log(`traffic-shift sample, ${SAMPLES} samples each, interleaved, against a local Prometheus scraping the engine`);
  console.log(`  engine gates only (baseline)        median ${b.median.toFixed(2)} ms   p90 ${b.p90.toFixed(2)} ms`);
  console.log(`  engine gates + 2 Prometheus gates   median ${p.median.toFixed(2)} ms   p90 ${p.p90.toFixed(2)} ms`);
  console.log(
    `  ratio ${(p.median / b.median).toFixed(2)}x; added per sample ${(p.median - b.median).toFixed(2)} ms = ${((100 * (p.median - b.median)) / 1000).toFixed(2)}% of a 1 s interval`,
  );
} finally {
  await infra?.stop();
  await stopEngine(dataDir).catch(() => undefined);
  rmSync(scratch, { recursive: true, force: true });
}
