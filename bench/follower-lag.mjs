// bench/follower-lag: how far a hot-standby follower trails its primary under order load. Levels: the
// bundled playbooks' traffic-shift rate (300 orders/s), 1,000/s, then as fast as N requests in flight
// allow; the follower's /health is sampled throughout, its catch-up timed once the load stops, and the
// same levels are run on a primary with no follower to show what streaming costs the primary.
// Flag: --seconds N per level (10).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { startEngine, stopEngine } from '../dist/engine-client/supervisor.js';
import { rng } from '../dist/util/random.js';

const seconds = Number(parseArgs({ options: { seconds: { type: 'string', default: '10' } } }).values.seconds);
if (!(seconds > 0)) {
  console.log('usage: node bench/follower-lag.mjs [--seconds N]');
  process.exit(2);
}

// 300/s is `load.rate` of the bundled rehearsals (playbooks/um-excess-queue-depth.yaml); the last level is closed loop.
const IN_FLIGHT = 32;
const LEVELS = [300, 1000, null].map((rate) => ({
  rate,
  offered: rate ?? '-',
  label: rate ? `${rate.toLocaleString('en-US')}/s` : `max (${IN_FLIGHT} in flight)`,
}));
const ENGINE = { feedInterval: '100ms', fundingInterval: '1s', exitWithMe: true };
const SAMPLE_MS = 50;
/** An open-loop level that falls behind bursts to at most this many in flight, rather than burying the engine. */
const OPEN_LOOP_CAP = 64;
const CATCH_UP_LIMIT_MS = 60_000;
const SYMBOLS = ['BTCUSDT', 'ETHUSDT'];
const MAKERS = Array.from({ length: 4 }, (_, i) => `mm${i}`);
const TRADERS = Array.from({ length: 20 }, (_, i) => `t${i}`);

/** One engine over a keep-alive node:http agent: fetch would cost this process more CPU per order than the engine spends. */
function endpoint(url, tokenFile, sockets) {
  const agent = new Agent({ keepAlive: true, maxSockets: sockets });
  const authorization = `Bearer ${readFileSync(tokenFile, 'utf8').trim()}`;
  const call = (method, path, body) =>
    new Promise((resolve, reject) => {
      const text = body === undefined ? undefined : JSON.stringify(body);
      const headers = text === undefined ? { authorization } : { authorization, 'content-type': 'application/json' };
      const req = request(`${url}${path}`, { method, agent, headers, timeout: 30_000 }, (res) => {
        let out = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (out += c));
        res.on('end', () => resolve({ status: res.statusCode, text: out }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 30 s`)));
      req.on('error', (e) => reject(new Error(`${method} ${url}${path}: ${e.code ?? e.message}`)));
      req.end(text);
    });
  const json = async (method, path, body) => {
    const r = await call(method, path, body);
    if (r.status !== 200) throw new Error(`${method} ${path}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
    return JSON.parse(r.text);
  };
  return { call, json, close: () => agent.destroy() };
}

/**
 * The seeded order flow (both sessions send the same one): makers rest quotes 2-60 bps off the mark on
 * their side, traders cross it by up to 10 bps (IOC) or send market orders, so fills (and their records)
 * happen; recent quotes are cancelled so the book stays bounded. Prices follow `marks`, kept fresh by the sampler.
 */
function orderFlow(instruments, marks) {
  const draw = rng(2026);
  const resting = [];
  const int = (lo, hi) => lo + Math.floor(draw() * (hi - lo + 1));
  const pick = (xs) => xs[Math.floor(draw() * xs.length)];
  // On the instrument's step (tick or lot), printed with as many decimals as the step has.
  const onStep = (step, x) => (Math.round(x / Number(step)) * Number(step)).toFixed((step.split('.')[1] ?? '').length);
  const priced = (sym, bps) => onStep(instruments[sym].tickSize, marks[sym] * (1 + bps / 10_000));
  const qty = (sym, lots) => onStep(instruments[sym].lotSize, Number(instruments[sym].lotSize) * lots);
  const next = () => {
    const x = draw();
    const recent = resting.length - 1 - Math.floor(draw() * Math.min(resting.length, 50));
    if (x < 0.2 && resting.length) return { method: 'DELETE', path: `/orders/${resting.splice(recent, 1)[0]}` };
    const symbol = pick(SYMBOLS);
    const side = draw() < 0.5 ? 'buy' : 'sell';
    const away = side === 'buy' ? -1 : 1;
    const order = (account, fields) => ({ method: 'POST', path: '/orders', body: { account, symbol, side, ...fields } });
    if (x < 0.65) return order(pick(MAKERS), { type: 'limit', price: priced(symbol, away * int(2, 60)), qty: qty(symbol, int(1, 20)) });
    if (x < 0.85) return order(pick(TRADERS), { type: 'limit', tif: 'IOC', price: priced(symbol, -away * int(0, 10)), qty: qty(symbol, int(1, 10)) });
    return order(pick(TRADERS), { type: 'market', qty: qty(symbol, int(1, 5)) });
  };
  return { resting, next };
}

const pct = (xs, p) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)] : NaN);
const whole = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '-');
const cuts = (xs, ps) => ps.map((p) => whole(pct(xs, p))).join('/');

/** One load level on a session: throughput, lag samples and (with a follower) the catch-up after it. */
async function runLevel({ primary, probe, follower, flow, marks }, level) {
  const samples = [];
  let sampling = true;
  let failure = null;
  const fail = (e) => (failure ??= e);
  // The primary first: its /health waits behind the orders it serves, and the follower's answer follows within a
  // millisecond or two. Its seq is the applied one: records still in a group commit (not yet streamable) count.
  const sampler = (async () => {
    while (sampling) {
      const t = performance.now();
      const p = await probe.json('GET', '/health');
      const f = follower && (await follower.json('GET', '/health'));
      for (const s of SYMBOLS) marks[s] = Number(p.marks[s]);
      if (f) samples.push({ lagRecords: f.following.lagRecords, lagMs: f.following.lagMs, seqDiff: p.seq - f.seq });
      await sleep(Math.max(0, t + SAMPLE_MS - performance.now()));
    }
  })().catch(fail);
  const tally = { answered: 0, filled: 0, latencyMs: [] };
  // One order; a 4xx or a rejection is an answer too, while a 5xx or no answer means the engine failed.
  const one = async (op = flow.next()) => {
    const sent = performance.now();
    const r = await primary.call(op.method, op.path, op.body).catch(fail);
    if (!r) return;
    tally.latencyMs.push(performance.now() - sent);
    if (r.status >= 500) return fail(new Error(`${op.method} ${op.path}: HTTP ${r.status} ${r.text.slice(0, 200)}`));
    tally.answered++;
    const a = op.method === 'POST' && r.status === 200 ? JSON.parse(r.text) : {};
    if (Number(a.filled) > 0) tally.filled++;
    if (a.status === 'open' || a.status === 'partially_filled') flow.resting.push(a.id);
  };
  const seq0 = (await probe.json('GET', '/health')).seq;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  if (level.rate === null) {
    const worker = async () => {
      while (performance.now() < end && !failure) await one();
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  } else {
    // Open loop on a fixed schedule: a slow answer does not lower what is offered.
    const pending = new Set();
    for (let issued = 0; performance.now() < end && !failure; await sleep(2)) {
      const due = Math.floor(((performance.now() - t0) / 1000) * level.rate) - issued;
      for (let i = 0; i < due && pending.size < OPEN_LOOP_CAP; i++, issued++) {
        const p = one().finally(() => pending.delete(p));
        pending.add(p);
      }
    }
    await Promise.all(pending);
  }
  const t1 = performance.now();
  const seq1 = (await probe.json('GET', '/health')).seq;
  sampling = false;
  if (failure) throw failure;
  // Caught up: the follower holds every record the primary had once the last order was answered.
  let catchUpMs = null;
  while (follower && catchUpMs === null && performance.now() - t1 < CATCH_UP_LIMIT_MS) {
    const f = await follower.json('GET', '/health');
    if (f.seq >= seq1) catchUpMs = performance.now() - t1;
    else await sleep(5);
  }
  await sampler;
  if (failure) throw failure;
  const s = (t1 - t0) / 1000;
  return { level, samples, catchUpMs, ...tally, ordersPerS: tally.answered / s, recordsPerS: (seq1 - seq0) / s };
}

const scratch = mkdtempSync(join(tmpdir(), 'bench-follower-lag-'));
/** What the teardown stops, closes and removes, however the run ends. */
const dirs = [];
const endpoints = [];
const open = (...a) => (endpoints.push(endpoint(...a)), endpoints.at(-1));

/** A fresh primary (and its follower) in the scratch dir, funded and open. */
async function setup(withFollower) {
  const pDir = join(scratch, withFollower ? 'primary' : 'alone');
  dirs.push(pDir);
  const p = await startEngine(pDir, ENGINE);
  const token = join(pDir, 'control.token');
  const s = { primary: open(p.info.url, token, Math.max(IN_FLIGHT, OPEN_LOOP_CAP)), probe: open(p.info.url, token, 1), follower: null };
  if (withFollower) {
    const fDir = join(scratch, 'follower');
    dirs.push(fDir);
    const f = await startEngine(fDir, { ...ENGINE, follow: { url: p.info.url, tokenFile: token } });
    s.follower = open(f.info.url, join(fDir, 'control.token'), 1);
  }
  const instruments = Object.fromEntries((await s.probe.json('GET', '/instruments')).instruments.map((i) => [i.symbol, i]));
  const { marks } = await s.probe.json('GET', '/health');
  s.marks = Object.fromEntries(SYMBOLS.map((sym) => [sym, Number(marks[sym])]));
  s.flow = orderFlow(instruments, s.marks);
  // Deep pockets: no order of the mix is refused for margin and nobody is liquidated, whatever the walk does.
  for (const a of MAKERS) await s.primary.json('POST', `/accounts/${a}/deposit`, { asset: 'USDT', amount: '50000000' });
  for (const a of TRADERS) await s.primary.json('POST', `/accounts/${a}/deposit`, { asset: 'USDT', amount: '1000000' });
  await s.primary.json('POST', '/phase', { phase: 'open' });
  return s;
}

/** Fenced, the primary writes nothing more (its feed stops too): the follower must reach exactly its last seq, with the same state. */
async function verify({ primary, follower }) {
  const { seq } = await primary.json('POST', '/fence', {});
  const deadline = performance.now() + CATCH_UP_LIMIT_MS;
  let f = await follower.json('GET', '/health');
  while (f.seq < seq && performance.now() < deadline) f = (await sleep(20), await follower.json('GET', '/health'));
  if (f.role !== 'follower' || !f.following?.connected) return `the follower stopped following (role ${f.role}, connected ${f.following?.connected})`;
  if (f.seq !== seq) return `the follower is at seq ${f.seq}, the fenced primary at ${seq}`;
  const [a, b] = await Promise.all([primary.call('GET', '/state'), follower.call('GET', '/state')]);
  if (a.status !== 200 || b.status !== 200) return `GET /state answered ${a.status} (primary), ${b.status} (follower)`;
  return a.text === b.text ? null : `the follower diverged: GET /state differs at seq ${seq}`;
}

const load = loadavg()[0].toFixed(1);
const followed = [];
const alone = [];
let problem = null;
try {
  const withF = await setup(true);
  const without = await setup(false);
  // Each level runs with, then without the follower, back to back: drift in the machine's other load hits both.
  for (const level of LEVELS) {
    followed.push(await runLevel(withF, level));
    alone.push(await runLevel(without, level));
  }
  const stuck = followed.find((r) => r.catchUpMs === null);
  problem = stuck ? `the follower did not catch up within ${CATCH_UP_LIMIT_MS / 1000}s after ${stuck.level.label}` : await verify(withF);
} catch (e) {
  problem = `an engine failed or stopped answering: ${e.message}`;
} finally {
  for (const e of endpoints) e.close();
  for (const d of dirs.reverse()) await stopEngine(d).catch((e) => console.error(`stopping ${d}: ${e.message}`));
  rmSync(scratch, { recursive: true, force: true });
}

const widths = [18, 7, 8, 6, 9, 11, 22, 17, 20, 11, 7];
const row = (cells) => cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join(' ');
/** The columns both tables share: what was offered, what the primary did, and how long its orders took. */
const throughput = (r) => {
  const traded = `${whole((100 * r.filled) / r.answered)}%`;
  return [r.level.label, r.level.offered, whole(r.ordersPerS), traded, whole(r.recordsPerS), cuts(r.latencyMs, [50, 99])];
};
console.log(`${seconds}s per level; resting quotes, crossing IOC and market orders, cancels on ${SYMBOLS.join(', ')}; follower /health every ${SAMPLE_MS} ms`);
const lagColumns = ['lagRecords', 'lagMs', 'seq-diff'].map((k) => `${k} p50/p99/max`);
console.log(row(['level', 'offered', 'orders/s', 'traded', 'WAL rec/s', 'order ms p50/p99', ...lagColumns, 'catch-up ms', 'samples']));
for (const r of followed) {
  const lags = ['lagRecords', 'lagMs', 'seqDiff'].map((k) => r.samples.map((x) => x[k])).map((xs) => cuts(xs, [50, 99, 100]));
  console.log(row([...throughput(r), ...lags, r.catchUpMs === null ? 'never' : whole(r.catchUpMs), r.samples.length]));
}
// Below what the primary can take, both reach the offered rate: the follower's cost then shows in latency.
console.log('without a follower (a second primary, the same flow, each level run right after the one above):');
for (const [i, r] of alone.entries()) {
  console.log(`${row(throughput(r))}   orders/s with / without follower ${(followed[i].ordersPerS / r.ordersPerS).toFixed(2)}x`);
}
console.log("lagRecords: at the follower's last 250 ms heartbeat, the primary's applied seq (its group commit included) - the follower's seq;");
console.log('lagMs: how old the last record or heartbeat was when the follower got to it; WAL rec/s include the feed (10/s) and funding;');
console.log("seq-diff: primary's applied seq (group commit in flight included) - follower's seq, read just after it;");
console.log(`machine: ${cpus().length} cores, node ${process.version}, load average ${load} at start; engines, follower and this client share the cores;`);
console.log('wall-clock figures, noisy with other load (a CI run) on the machine');
if (problem) console.log(`follower-lag FAILED: ${problem}`);
process.exitCode = problem ? 1 : 0;
