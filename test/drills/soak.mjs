// The soak (`npm run drills -- --soak`): slow failures that no single trial shows. Two parts, one after the
// other, each with the machine's counts taken before and after it:
//   1. rehearsals in a row (100; --soak-rehearsals=N) of the bundled playbook at a small time scale: each
//      exits 0; the CLI's peak RSS per rehearsal, fitted to a line, has a slope near zero;
//   2. an engine under sustained load (10 minutes; --soak-minutes=M) through WAL rotations and snapshots:
//      RSS and open file descriptors sampled, and now and then kill -9 at a chosen WAL length since the
//      last snapshot, then started again: recovery time against WAL records, bounded by the snapshot interval.
// Leaks: processes left behind (this process's descendants, and any process naming the soak's folder),
// file descriptors of this process, and entries in the temp dir, each back to its starting count.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, dist, ROOT, withTempDir } from './lib.mjs';
import { load, postRequest } from '../../bench/lib/load.mjs';

/** Least-squares slope of ys over xs. */
export function slope(xs, ys) {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/** Every live process: pid, parent, command line. */
function processes() {
  const out = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cmd =
        readFileSync(`/proc/${d}/cmdline`, 'utf8').replaceAll('\0', ' ') || `(${stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))}, state ${state})`;
      out.push({ pid: Number(d), ppid: Number(ppid), cmd });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** This process's descendants, and processes whose command line names `marker` (detached engines). */
export function leftovers(marker) {
  const all = processes();
  const mine = new Set([process.pid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of all) if (!mine.has(p.pid) && mine.has(p.ppid)) (mine.add(p.pid), (grew = true));
  }
  mine.delete(process.pid);
  return all.filter((p) => mine.has(p.pid) || (marker && p.cmd.includes(marker) && p.pid !== process.pid)).filter((p) => !p.cmd.startsWith('ps '));
}

const retained = (metrics) => Number(/^engine_orders_retained (\d+)$/m.exec(metrics)?.[1] ?? NaN);
const fdCount = (pid = 'self') => readdirSync(`/proc/${pid}/fd`).length;
/** The temp dirs recoverctl and the drills make (scratch of rehearsals, integrity, chaos, Chromium), not other programs'. */
const OURS = /^recoverctl-(rehearsal|integrity|chaos|chromium|drill)-/;
const tmpEntries = () => readdirSync(tmpdir()).filter((f) => OURS.test(f));
const rssMb = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;

/** `recoverctl ARGS` under GNU time: exit status, seconds, peak RSS (MB). */
function timedCli(args, cwd) {
  return new Promise((resolve) => {
    const child = spawn('/usr/bin/time', ['-f', '%e %M', process.execPath, BIN, ...args], {
      cwd,
      env: { ...process.env, CI: 'true' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (c) => (err += c));
    child.on('close', (status) => {
      const [secs, kb] = (err.trim().split('\n').pop() ?? '').split(' ').map(Number);
      resolve({ status, seconds: secs, rssMb: kb / 1024, stderr: err });
    });
  });
}

async function rehearsals(n, dir, failures) {
  const rss = [];
  const secs = [];
  for (let i = 0; i < n; i++) {
    const r = await timedCli(
      ['rehearse', join(ROOT, 'playbooks', 'um-excess-queue-depth.yaml'), '--time-scale', '0.02', '--state-dir', join(dir, 'state'), '--seed', String(i + 1)],
      dir,
    );
    if (r.status !== 0) failures.push(`rehearsal ${i + 1}: exit ${r.status}: ${r.stderr.trim().split('\n').slice(-3).join(' / ')}`);
    rss.push(r.rssMb);
    secs.push(r.seconds);
  }
  const xs = rss.map((_, i) => i);
  return { rss, secs, slopeMbPerRun: slope(xs, rss) };
}

/** Orders that cross at once (buy and sell at one price from alternating accounts), so the book stays small however long it runs. */
function orderRequests(port, token, accounts) {
  const auth = { authorization: `Bearer ${token}` };
  return Array.from({ length: 2 * accounts }, (_, i) =>
    postRequest(
      '127.0.0.1',
      port,
      '/orders',
      { account: `s${i % accounts}`, symbol: 'BTCUSDT', side: i % 2 ? 'buy' : 'sell', type: 'limit', price: '60000.0', qty: '0.001' },
      auth,
    ),
  );
}

async function engineSoak(minutes, dir, failures) {
  const { startEngine, stopEngine, readEngineInfo } = await import(dist('engine-client/supervisor.js'));
  const { copyFileSync, mkdirSync } = await import('node:fs');
  const snapshotEvery = 20_000;
  const dataDir = join(dir, 'engine');
  const start = async () => {
    const t0 = performance.now();
    const r = await startEngine(dataDir, { feedInterval: '200ms', snapshotEvery, exitWithMe: true });
    return { ...r, startMs: performance.now() - t0 };
  };
  let e = await start();
  mkdirSync(join(dataDir, 'modules', 'margin'), { recursive: true });
  copyFileSync(dist('engine/modules/margin-1.4.3.js'), join(dataDir, 'modules', 'margin', '1.4.3.mjs'));
  await e.client.activate('margin', '1.4.3');
  const accounts = 20;
  for (let i = 0; i < accounts; i++) await e.client.deposit(`s${i}`, 'USDT', '100000000');
  await e.client.setPhase('open');
  const token = () => readFileSync(join(dataDir, 'control.token'), 'utf8').trim();
  const samples = []; // { t, rss, fds, incarnation }
  const recoveries = []; // { walRecords, ms }
  const snapshotSeq = () =>
    Math.max(
      0,
      ...readdirSync(join(dataDir, 'snapshots'))
        .filter((f) => /^\d+\.ndjson$/.test(f))
        .map((f) => Number.parseInt(f, 10)),
    );
  const t0 = performance.now();
  const end = t0 + minutes * 60_000;
  const targets = [0.1, 0.3, 0.5, 0.7, 0.9].map((f) => Math.round(f * snapshotEvery));
  let incarnation = 0;
  let orders = 0;
  while (performance.now() < end) {
    // Load until the next kill is due (every 90 s) or the end, sampling every 5 s.
    const killAt = Math.min(end, performance.now() + 90_000);
    const pid = e.info.pid;
    while (performance.now() < killAt) {
      const port = Number(new URL(e.client.url).port);
      const r = await load({
        port,
        connections: 8,
        durationMs: Math.min(5_000, killAt - performance.now()),
        next: cycler(orderRequests(port, token(), accounts)),
      });
      orders += r.answers;
      const bad = [...r.statuses].filter(([s]) => s !== 200);
      if (bad.length) failures.push(`engine answered ${bad.map(([s, n]) => `${n}x ${s}`).join(', ')}`);
      samples.push({ t: (performance.now() - t0) / 60_000, rss: rssMb(pid), fds: fdCount(pid), retained: retained(await e.client.metrics()), incarnation });
    }
    if (performance.now() >= end) break;
    // kill -9 at a chosen WAL length since the last snapshot, then start again and time the recovery.
    const target = targets[recoveries.length % targets.length];
    const port = Number(new URL(e.client.url).port);
    for (let guard = 0; guard < 200; guard++) {
      const since = (await e.client.health()).seq - snapshotSeq();
      if (since >= target && since < target + 2_000) break;
      const r = await load({
        port,
        connections: 8,
        requests: Math.max(1, Math.min(2_000, ((target - since + snapshotEvery) % snapshotEvery) / 2)),
        next: cycler(orderRequests(port, token(), accounts)),
      });
      orders += r.answers;
    }
    const seq = (await e.client.health()).seq;
    const walRecords = seq - snapshotSeq();
    const rssRunning = rssMb(pid);
    process.kill(pid, 'SIGKILL');
    await waitGone(pid);
    e = await start();
    const h = await e.client.health();
    // At least what /health said before the kill: the 200 ms feed may commit (durably) between the two.
    if (h.seq < seq) failures.push(`after kill -9 at seq ${seq} the engine recovered only seq ${h.seq}`);
    // The same state, rebuilt from snapshot + WAL by a fresh process: memory the running one held beyond
    // this was not state (garbage not yet collected, or a leak).
    await new Promise((r) => setTimeout(r, 1_000));
    recoveries.push({ walRecords, ms: e.startMs, rssRunning, rssRecovered: rssMb(e.info.pid), retained: retained(await e.client.metrics()) });
    incarnation++;
  }
  const last = e.info.pid;
  await stopEngine(dataDir);
  if (readEngineInfo(dataDir) && leftovers(dataDir).some((p) => p.pid === last)) failures.push('the engine outlived stopEngine');
  // RSS and fds per incarnation after its first minute: the slope of each, the worst reported.
  const slopes = [];
  const fdSlopes = [];
  for (let i = 0; i <= incarnation; i++) {
    const s = samples.filter((x) => x.incarnation === i);
    const warm = s.filter((x) => x.t - (s[0]?.t ?? 0) >= 0.5);
    if (warm.length >= 4) {
      slopes.push(
        slope(
          warm.map((x) => x.t),
          warm.map((x) => x.rss),
        ),
      );
      fdSlopes.push(
        slope(
          warm.map((x) => x.t),
          warm.map((x) => x.fds),
        ),
      );
    }
  }
  // What the growth is made of: MB of RSS per thousand orders held, over the whole soak.
  const grown = samples.filter((x) => Number.isFinite(x.retained));
  const perThousand = slope(
    grown.map((x) => x.retained / 1000),
    grown.map((x) => x.rss),
  );
  for (const r of recoveries) {
    if (r.rssRunning > 1.5 * r.rssRecovered + 64)
      failures.push(`running engine held ${r.rssRunning.toFixed(0)} MB, the same state recovered ${r.rssRecovered.toFixed(0)} MB: memory that is not state`);
  }
  return {
    samples,
    recoveries,
    orders,
    snapshotEvery,
    rssSlope: slopes.length ? Math.max(...slopes) : 0,
    fdSlope: fdSlopes.length ? Math.max(...fdSlopes) : 0,
    maxRss: Math.max(...samples.map((x) => x.rss)),
    mbPerThousandOrders: perThousand,
    retainedAtEnd: grown.at(-1)?.retained ?? 0,
  };
}

function cycler(reqs) {
  let i = 0;
  return () => reqs[i++ % reqs.length];
}

async function waitGone(pid) {
  for (let i = 0; i < 200; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The soak's Markdown: its figures and the recovery table. */
export function soakMarkdown(s) {
  const lines = [
    '### Soak',
    '',
    `- rehearsals: ${s.rehearsals.rss.length}, each ${Math.min(...s.rehearsals.secs).toFixed(1)}-${Math.max(...s.rehearsals.secs).toFixed(1)} s; CLI peak RSS ${Math.min(...s.rehearsals.rss).toFixed(0)}-${Math.max(...s.rehearsals.rss).toFixed(0)} MB, slope ${s.rehearsals.slopeMbPerRun.toFixed(3)} MB per rehearsal`,
    `- engine: ${s.engine.orders.toLocaleString('en-US')} orders over ${s.minutes} min, snapshot every ${s.engine.snapshotEvery.toLocaleString('en-US')} records; RSS up to ${s.engine.maxRss.toFixed(0)} MB, slope ${s.engine.rssSlope.toFixed(2)} MB/min (worst incarnation), ${(s.engine.mbPerThousandOrders * 1000).toFixed(0)} bytes per order held (${s.engine.retainedAtEnd.toLocaleString('en-US')} held at the end: every order is kept); open fds slope ${s.engine.fdSlope.toFixed(2)}/min`,
    `- leaks: ${s.leaks.processes} processes left, fds ${s.leaks.fdsBefore} -> ${s.leaks.fdsAfter}, recoverctl temp dirs ${s.leaks.tmpBefore} -> ${s.leaks.tmpAfter}`,
    '',
    '| WAL records since the snapshot | recovery after kill -9 (ms, process start to ready) | orders held | RSS running -> recovered (MB) |',
    '| --- | --- | --- | --- |',
    ...[...s.engine.recoveries]
      .sort((a, b) => a.walRecords - b.walRecords)
      .map(
        (r) =>
          `| ${r.walRecords.toLocaleString('en-US')} | ${r.ms.toFixed(0)} | ${(r.retained ?? 0).toLocaleString('en-US')} | ${(r.rssRunning ?? 0).toFixed(0)} -> ${(r.rssRecovered ?? 0).toFixed(0)} |`,
      ),
    '',
  ];
  return lines.join('\n');
}

export const soak = {
  name: 'soak: rehearsals in a row, an engine under load with kill -9',
  trials: () => 1,
  async run(_trials, _seed, o = {}) {
    const minutes = o.minutes ?? 10;
    const n = o.rehearsals ?? 100;
    const failures = [];
    // libuv opens its SIGCHLD pipe at the first child process and keeps it: spawn one before counting.
    await new Promise((r) => spawn('true').on('close', r));
    const fdsBefore = fdCount();
    const tmpBefore = tmpEntries();
    const result = await withTempDir(async (dir) => {
      const r = await rehearsals(n, dir, failures);
      const eng = await engineSoak(minutes, dir, failures);
      return { r, eng, dir };
    });
    // A child that has just exited is reaped on a later turn of the event loop: give stragglers 5 s.
    let left = leftovers(result.dir);
    for (let i = 0; i < 50 && left.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = leftovers(result.dir);
    }
    for (const p of left) failures.push(`left running: ${p.pid} ${p.cmd.slice(0, 120)}`);
    const fdsAfter = fdCount();
    const tmpAfter = tmpEntries();
    if (fdsAfter > fdsBefore) failures.push(`open file descriptors ${fdsBefore} -> ${fdsAfter}`);
    const tmpLeft = tmpAfter.filter((f) => !tmpBefore.includes(f));
    if (tmpLeft.length > 0) failures.push(`temp dirs left: ${tmpLeft.join(', ')}`);
    if (result.r.slopeMbPerRun > 0.5) failures.push(`CLI RSS grows ${result.r.slopeMbPerRun.toFixed(2)} MB per rehearsal`);
    // The engine keeps every order it was sent (closed ones too: snapshots and GET /orders/ID serve them), so
    // its RSS grows with orders by design: a leak is memory a fresh process recovering the same state does
    // not need (checked at each kill -9 above), or growth well past what the orders held explain.
    if (result.eng.mbPerThousandOrders > 2) failures.push(`engine RSS grows ${result.eng.mbPerThousandOrders.toFixed(2)} MB per thousand orders held`);
    const summary = {
      minutes,
      rehearsals: result.r,
      engine: result.eng,
      leaks: { processes: left.length, fdsBefore, fdsAfter, tmpBefore: tmpBefore.length, tmpAfter: tmpAfter.length },
    };
    return {
      trials: 1,
      passed: failures.length ? 0 : 1,
      lost: 0,
      detail: `${n} rehearsals, ${minutes} min engine load, ${result.eng.recoveries.length} kill -9; RSS slopes CLI ${result.r.slopeMbPerRun.toFixed(2)} MB/run, engine ${result.eng.rssSlope.toFixed(2)} MB/min; ${left.length} processes left`,
      failures,
      markdown: soakMarkdown(summary),
    };
  },
};
