// bench/engine: matching throughput and latency in process (vs nodejs-order-book on the same flow),
// WAL append with group-committed fsync, and order entry over loopback HTTP with keep-alive.
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OrderBook as ReferenceBook } from 'nodejs-order-book';
import { OrderBook } from '../dist/engine/book.js';
import { Exchange } from '../dist/engine/exchange.js';
import { rng } from '../dist/engine/feed.js';
import { WalWriter } from '../dist/engine/wal.js';
import { startEngine, stopEngine } from '../dist/engine-client/supervisor.js';
import { load, percentile, postRequest } from './lib/load.mjs';

const here = dirname(fileURLToPath(import.meta.url));

const OPS = Number(process.env.BENCH_OPS ?? 1_000_000);
const RESTING = 5_000;
const fmt = (n) => Math.round(n).toLocaleString('en-US');

/** One seeded flow, the same for both books: adds that rest, cancels, and orders that cross. */
function makeFlow(n, seed) {
  const r = rng(seed);
  const ops = [];
  const live = [];
  let id = 0;
  const mid = 100_000;
  for (let i = 0; i < RESTING; i++) {
    const side = i % 2 ? 'buy' : 'sell';
    const price = side === 'buy' ? mid - 1 - Math.floor(r() * 200) : mid + 1 + Math.floor(r() * 200);
    ops.push({ k: 'add', id: ++id, side, price, size: 1 + Math.floor(r() * 20) });
    live.push(id);
  }
  const warm = ops.length;
  for (let i = 0; i < n; i++) {
    const x = r();
    if (x < 0.5) {
      const side = r() < 0.5 ? 'buy' : 'sell';
      const price = side === 'buy' ? mid - 1 - Math.floor(r() * 200) : mid + 1 + Math.floor(r() * 200);
      ops.push({ k: 'add', id: ++id, side, price, size: 1 + Math.floor(r() * 20) });
      live.push(id);
    } else if (x < 0.75 && live.length) {
      const j = Math.floor(r() * live.length);
      ops.push({ k: 'cancel', id: live[j] });
      live[j] = live[live.length - 1];
      live.pop();
    } else {
      const side = r() < 0.5 ? 'buy' : 'sell';
      const through = Math.floor(r() * 5);
      ops.push({ k: 'match', id: ++id, side, price: side === 'buy' ? mid + through : mid - through, size: 1 + Math.floor(r() * 30) });
    }
  }
  return { ops, warm };
}

function runOurs(ops, from, to, timings) {
  const book = new OrderBook();
  for (let i = 0; i < from; i++) {
    const o = ops[i];
    book.add({ id: o.id, account: 'a', side: o.side, price: o.price, remaining: o.size });
  }
  const noop = () => {};
  const t0 = process.hrtime.bigint();
  for (let i = from; i < to; i++) {
    const o = ops[i];
    const s = timings ? process.hrtime.bigint() : 0n;
    if (o.k === 'cancel') book.cancel(o.id);
    else {
      const left = book.match(o.side, o.price, o.size, noop);
      if (left > 0) book.add({ id: o.id, account: 'a', side: o.side, price: o.price, remaining: left });
    }
    if (timings) timings[o.k].push(Number(process.hrtime.bigint() - s));
  }
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function runReference(ops, from, to, timings) {
  const ob = new ReferenceBook();
  for (let i = 0; i < from; i++) {
    const o = ops[i];
    ob.limit({ id: String(o.id), side: o.side, size: o.size, price: o.price });
  }
  const t0 = process.hrtime.bigint();
  for (let i = from; i < to; i++) {
    const o = ops[i];
    const s = timings ? process.hrtime.bigint() : 0n;
    if (o.k === 'cancel') ob.cancel(String(o.id));
    else ob.limit({ id: String(o.id), side: o.side, size: o.size, price: o.price });
    if (timings) timings[o.k].push(Number(process.hrtime.bigint() - s));
  }
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const pct = (xs, p) => {
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.floor((s.length * p) / 100))] / 1000;
};

function matching() {
  const { ops, warm } = makeFlow(OPS, 42);
  const n = ops.length - warm;
  // Warm-up both, then measure each twice, interleaved; keep the faster run.
  runOurs(ops, warm, warm + Math.min(n, 100_000));
  runReference(ops, warm, warm + Math.min(n, 100_000));
  const ours = Math.min(runOurs(ops, warm, ops.length), runOurs(ops, warm, ops.length));
  const ref = Math.min(runReference(ops, warm, ops.length), runReference(ops, warm, ops.length));
  console.log(`matching, in process, one thread: ${fmt(n)} ops (50% add, 25% cancel, 25% crossing), ${RESTING} resting at start`);
  console.log(`  recoverctl OrderBook      ${fmt(n / ours)} ops/s`);
  console.log(`  nodejs-order-book ${'10.1.1'.padEnd(7)} ${fmt(n / ref)} ops/s`);
  console.log(`  ratio (ours / nodejs-order-book): ${(ref / ours).toFixed(2)}x`);
  const sample = Math.min(n, 300_000);
  for (const [name, run] of [
    ['recoverctl', runOurs],
    ['nodejs-order-book', runReference],
  ]) {
    const t = { add: [], cancel: [], match: [] };
    run(ops, warm, warm + sample, t);
    console.log(
      `  latency ${name.padEnd(18)} add p50 ${pct(t.add, 50).toFixed(2)}us p99 ${pct(t.add, 99).toFixed(2)}us | cancel p50 ${pct(t.cancel, 50).toFixed(2)}us p99 ${pct(t.cancel, 99).toFixed(2)}us | match p50 ${pct(t.match, 50).toFixed(2)}us p99 ${pct(t.match, 99).toFixed(2)}us`,
    );
  }
}

function exchange() {
  const ex = new Exchange(8 * 3_600_000);
  ex.apply({ op: 'phase', ts: 1, phase: 'open', reason: null });
  for (let i = 0; i < 100; i++) ex.apply({ op: 'deposit', ts: 1, account: `a${i}`, asset: 'USDT', amount: '10000000' });
  const r = rng(9);
  const n = 200_000;
  const t0 = process.hrtime.bigint();
  let accepted = 0;
  for (let i = 0; i < n; i++) {
    const side = r() < 0.5 ? 'buy' : 'sell';
    const d = ex.decideOrder(
      {
        account: `a${i % 100}`,
        symbol: 'BTCUSDT',
        side,
        type: 'limit',
        price: 6_000_000 + (Math.floor(r() * 40) - 20) * 10,
        qty: 1_000 * (1 + Math.floor(r() * 5)),
        tif: 'GTC',
        postOnly: false,
        reduceOnly: false,
        marginMode: 'cross',
        clientOrderId: null,
      },
      i,
    );
    if ('command' in d) {
      ex.apply(d.command);
      accepted++;
    }
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`exchange (margin check + match + positions + fees), 100 accounts: ${fmt(n / s)} orders/s (${fmt(accepted)} accepted)`);
}

async function wal() {
  const dir = mkdtempSync(join(tmpdir(), 'bench-wal-'));
  try {
    const body = {
      op: 'order',
      ts: 1764054000000,
      num: 1,
      req: {
        account: 'acct-0001',
        symbol: 'BTCUSDT',
        side: 'buy',
        type: 'limit',
        price: 6000000,
        qty: 1000,
        tif: 'GTC',
        postOnly: false,
        reduceOnly: false,
        marginMode: 'cross',
        clientOrderId: null,
      },
    };
    const w = await WalWriter.open(join(dir, 'group'), 1);
    const n = 500_000;
    const window = 20_000;
    const t0 = process.hrtime.bigint();
    let pending = [];
    for (let i = 1; i <= n; i++) {
      pending.push(w.append(i, body));
      if (pending.length >= window) {
        await Promise.all(pending);
        pending = [];
      }
    }
    await Promise.all(pending);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    await w.close();
    // Baseline: one fsync per record, the same writer awaited one record at a time.
    const b = await WalWriter.open(join(dir, 'single'), 1);
    const m = 2_000;
    const t1 = process.hrtime.bigint();
    for (let i = 1; i <= m; i++) await b.append(i, body);
    const s1 = Number(process.hrtime.bigint() - t1) / 1e9;
    await b.close();
    console.log(`WAL append, fsync'd: group commit ${fmt(n / s)} records/s (${fmt(w.syncs)} fsyncs for ${fmt(n)} records)`);
    console.log(`  baseline one fsync per record: ${fmt(m / s1)} records/s; ratio ${(n / s / (m / s1)).toFixed(1)}x`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function http() {
  const dir = mkdtempSync(join(tmpdir(), 'bench-http-'));
  const data = join(dir, 'data');
  const connections = 64;
  const durationMs = Number(process.env.BENCH_HTTP_MS ?? 5_000);
  const accounts = 50;
  const r = rng(5);
  let n = 0;
  const nextOrder = () => ({
    account: `a${n++ % accounts}`,
    symbol: 'BTCUSDT',
    side: r() < 0.5 ? 'buy' : 'sell',
    type: 'limit',
    price: (60000 + (Math.floor(r() * 40) - 20) * 0.1).toFixed(1),
    qty: '0.001',
  });
  // Requests made before the clock starts and cycled, the same order bodies for the bare server and the
  // engine: the client's cost per request is a socket write either way.
  const orders = Array.from({ length: 4096 }, nextOrder);
  const batches = Array.from({ length: 256 }, () => ({ orders: Array.from({ length: 100 }, nextOrder) }));
  const cycle = (reqs) => {
    let i = 0;
    return () => reqs[i++ % reqs.length];
  };

  // The baseline first, alone on the machine: a bare node:http server in its own process.
  const bare = spawn(process.execPath, ['-e', BARE_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  let bareRun;
  try {
    const port = await new Promise((resolve) => bare.stdout.once('data', (d) => resolve(Number(String(d).trim()))));
    bareRun = await load({ port, connections, durationMs, next: cycle(orders.map((o) => postRequest('127.0.0.1', port, '/orders', o))) });
  } finally {
    bare.kill();
  }
  try {
    const { client } = await startEngine(data, { feedInterval: '0ms', snapshotEvery: 0 });
    // The hotfixed margin module: 1.4.2, the incident's, halts the engine (EXCESS_QUEUE_DEPTH) under this load,
    // and every order after that is a cheap PHASE_HALTED rejection, which is not order entry.
    mkdirSync(join(data, 'modules', 'margin'), { recursive: true });
    copyFileSync(join(here, '..', 'dist', 'engine', 'modules', 'margin-1.4.3.js'), join(data, 'modules', 'margin', '1.4.3.mjs'));
    await client.activate('margin', '1.4.3');
    for (let i = 0; i < accounts; i++) await client.deposit(`a${i}`, 'USDT', '100000000');
    await client.setPhase('open');
    const token = readFileSync(join(data, 'control.token'), 'utf8').trim();
    const port = Number(new URL(client.url).port);
    const auth = { authorization: `Bearer ${token}` };
    const REJECTED = Buffer.from('"status":"rejected"');
    let rejected = 0;
    const single = await load({
      port,
      connections,
      durationMs,
      next: cycle(orders.map((o) => postRequest('127.0.0.1', port, '/orders', o, auth))),
      onAnswer: (status, body) => {
        if (status !== 200 && status !== 201) rejected++;
        else if (body.includes(REJECTED)) rejected++;
      },
    });
    const p50 = percentile(single.latenciesMs, 50);
    const p99 = percentile(single.latenciesMs, 99);
    const ratio = single.rate / bareRun.rate;
    console.log(
      `order entry over loopback HTTP, keep-alive, ${connections} in flight, each answered after its WAL fsync (raw-socket load generator, bench/lib/load.mjs):`,
    );
    console.log(
      `  baseline bare node:http server (parse the order, answer fixed JSON), same generator, measured first: ${fmt(bareRun.rate)} requests/s, p99 ${percentile(bareRun.latenciesMs, 99).toFixed(1)}ms`,
    );
    console.log(
      `  engine, one order a request: ${fmt(single.rate)} orders/s (${fmt(single.answers - rejected)} accepted, ${fmt(rejected)} rejected), latency p50 ${p50.toFixed(2)}ms p99 ${p99.toFixed(2)}ms; ${ratio.toFixed(2)}x the bare server (target >= 0.80: ${ratio >= 0.8 ? 'met' : 'missed'}), p99 target < 15ms: ${p99 < 15 ? 'met' : 'missed'}`,
    );
    let batched = 0;
    let batchAccepted = 0;
    const rejectedBy = new Map();
    const batch = await load({
      port,
      connections,
      durationMs,
      next: cycle(batches.map((b) => postRequest('127.0.0.1', port, '/orders/batch', b, auth))),
      onAnswer: (_status, body) => {
        const a = JSON.parse(body.toString('utf8'));
        batched += a.results.length;
        for (const x of a.results) {
          if (x.status && x.status !== 'rejected') batchAccepted++;
          else rejectedBy.set(x.reason ?? 'error', (rejectedBy.get(x.reason ?? 'error') ?? 0) + 1);
        }
      },
    });
    const batchRate = batched / batch.seconds;
    console.log(
      `  engine, batches of 100 (POST /orders/batch, one WAL group each), ${connections} in flight: ${fmt(batchRate)} orders/s (${fmt(batchAccepted)} accepted), batch latency p99 ${percentile(batch.latenciesMs, 99).toFixed(1)}ms; ${(batchRate / single.rate).toFixed(1)}x single orders (target >= 100,000 orders/s: ${batchRate >= 100_000 ? 'met' : 'missed'})`,
    );
    if (rejectedBy.size) console.log(`    rejected: ${[...rejectedBy].map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}`);
  } finally {
    await stopEngine(data).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The baseline server: node:http, keep-alive, JSON.parse of each body, one fixed answer. */
const BARE_SERVER = `
const http = require('node:http');
const answer = JSON.stringify({ id: 'o-1', status: 'open', filled: '0', avgPrice: null });
const s = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    JSON.parse(body);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) });
    res.end(answer);
  });
});
s.keepAliveTimeout = 60000;
s.listen(0, '127.0.0.1', () => process.stdout.write(s.address().port + '\\n'));
`;

const only = process.argv[2];
if (!only || only === 'matching') matching();
if (!only || only === 'exchange') exchange();
if (!only || only === 'wal') await wal();
if (!only || only === 'http') await http();
