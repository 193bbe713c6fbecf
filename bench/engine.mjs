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
  const bareRate = await bareBaseline(64, Number(process.env.BENCH_HTTP_MS ?? 5_000));
  try {
    const { client } = await startEngine(data, { feedInterval: '0ms', snapshotEvery: 0 });
    // The hotfixed margin module: 1.4.2, the incident's, halts the engine (EXCESS_QUEUE_DEPTH) under this load,
    // and every order after that is a cheap PHASE_HALTED rejection, which is not order entry.
    mkdirSync(join(data, 'modules', 'margin'), { recursive: true });
    copyFileSync(join(here, '..', 'dist', 'engine', 'modules', 'margin-1.4.3.js'), join(data, 'modules', 'margin', '1.4.3.mjs'));
    await client.activate('margin', '1.4.3');
    const accounts = 50;
    for (let i = 0; i < accounts; i++) await client.deposit(`a${i}`, 'USDT', '100000000');
    await client.setPhase('open');
    const concurrency = 64;
    const durationMs = Number(process.env.BENCH_HTTP_MS ?? 5_000);
    const r = rng(5);
    let sent = 0;
    let ok = 0;
    const lat = [];
    const deadline = Date.now() + durationMs;
    const token = readFileSync(join(data, 'control.token'), 'utf8').trim();
    const url = new URL(client.url);
    const { post, agent } = await poster(url.hostname, Number(url.port), token, concurrency);
    const nextOrder = () => ({
      account: `a${sent++ % accounts}`,
      symbol: 'BTCUSDT',
      side: r() < 0.5 ? 'buy' : 'sell',
      type: 'limit',
      price: (60000 + (Math.floor(r() * 40) - 20) * 0.1).toFixed(1),
      qty: '0.001',
    });
    const worker = async () => {
      while (Date.now() < deadline) {
        const s = process.hrtime.bigint();
        const a = await post(nextOrder());
        lat.push(Number(process.hrtime.bigint() - s) / 1e6);
        if (a.status !== 'rejected') ok++;
      }
    };
    const t0 = Date.now();
    await Promise.all(Array.from({ length: concurrency }, worker));
    const s = (Date.now() - t0) / 1000;
    console.log(
      `order entry over loopback HTTP, keep-alive, ${concurrency} in flight, each acknowledged after its WAL fsync: ${fmt(lat.length / s)} orders/s (${fmt(ok)} accepted), latency p50 ${pct(
        lat.map((x) => x * 1000),
        50,
      ).toFixed(2)}ms p99 ${pct(
        lat.map((x) => x * 1000),
        99,
      ).toFixed(2)}ms`,
    );
    // The same flow in batches of 100 (POST /orders/batch: one request, one WAL group each).
    const single = lat.length / s;
    const p99 = pct(
      lat.map((x) => x * 1000),
      99,
    );
    console.log(
      `  baseline bare node:http server (parse the order, answer fixed JSON), same client, measured first: ${fmt(bareRate)} requests/s; engine ${(single / bareRate).toFixed(2)}x of it (target >= 0.80: ${single / bareRate >= 0.8 ? 'met' : 'missed'}), engine p99 ${p99.toFixed(1)}ms (target < 15ms: ${p99 < 15 ? 'met' : 'missed'})`,
    );
    let batched = 0;
    let batchAccepted = 0;
    const rejectedBy = new Map();
    const batchLat = [];
    const batchDeadline = Date.now() + durationMs;
    const batchWorker = async () => {
      while (Date.now() < batchDeadline) {
        const t = process.hrtime.bigint();
        const a = await post({ orders: Array.from({ length: 100 }, nextOrder) }, '/orders/batch');
        batchLat.push(Number(process.hrtime.bigint() - t) / 1e6);
        batched += a.results.length;
        batchAccepted += a.results.filter((x) => x.status && x.status !== 'rejected').length;
        for (const x of a.results) if (x.status === 'rejected' || x.error) rejectedBy.set(x.reason ?? 'error', (rejectedBy.get(x.reason ?? 'error') ?? 0) + 1);
      }
    };
    const t1 = Date.now();
    await Promise.all(Array.from({ length: concurrency }, batchWorker));
    const sb = (Date.now() - t1) / 1000;
    agent.destroy();
    console.log(
      `  in batches of 100 (POST /orders/batch), ${concurrency} in flight: ${fmt(batched / sb)} orders/s (${fmt(batchAccepted)} accepted), batch latency p99 ${pct(
        batchLat.map((x) => x * 1000),
        99,
      ).toFixed(1)}ms; ${(batched / sb / single).toFixed(1)}x single orders (target >= 100,000 orders/s: ${batched / sb >= 100_000 ? 'met' : 'missed'})`,
    );
    if (rejectedBy.size) console.log(`    rejected: ${[...rejectedBy].map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}`);
  } finally {
    await stopEngine(data).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The load generator every HTTP figure uses: node:http with a keep-alive agent (lighter than fetch, so the
 * client is not what is measured); `post(body, path)` resolves to the parsed JSON answer.
 */
async function poster(host, port, token, concurrency) {
  const { Agent, request } = await import('node:http');
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const post = (body, path = '/orders') =>
    new Promise((resolve, reject) => {
      const text = JSON.stringify(body);
      const req = request(
        {
          host,
          port,
          path,
          method: 'POST',
          agent,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
        },
        (res) => {
          let out = '';
          res.on('data', (c) => (out += c));
          res.on('end', () => resolve(JSON.parse(out)));
        },
      );
      req.on('error', reject);
      req.end(text);
    });
  return { post, agent };
}

/**
 * Requests/s of a bare node:http server in its own process that parses the same order JSON and answers a
 * fixed JSON, under the same load generator (node:http, keep-alive, `concurrency` in flight): the limit
 * of one Node process here, measured before the engine starts so the two never share the cores.
 */
async function bareBaseline(concurrency, durationMs) {
  const bare = spawn(process.execPath, ['-e', BARE_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise((resolve) => bare.stdout.once('data', (d) => resolve(Number(String(d).trim()))));
    const { post: send, agent } = await poster('127.0.0.1', port, 'x', concurrency);
    const order = { account: 'a1', symbol: 'BTCUSDT', side: 'buy', type: 'limit', price: '60000.0', qty: '0.001' };
    const post = () => send(order);
    let n = 0;
    const end = Date.now() + durationMs;
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (Date.now() < end) {
          await post();
          n++;
        }
      }),
    );
    agent.destroy();
    return n / ((Date.now() - t0) / 1000);
  } finally {
    bare.kill();
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
