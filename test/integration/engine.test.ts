import { execa } from 'execa';
import { appendFileSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isPidAlive } from '../../src/util/pid.js';
import { EngineClient } from '../../src/engine-client/client.js';
import { engineBin, readEngineInfo, stopEngine } from '../../src/engine-client/supervisor.js';
import { tempDir, waitFor } from '../support/cli.js';
import { installModule, startTestEngine } from '../support/engine.js';

async function fund(client: EngineClient, accounts: string[], amount = '100000'): Promise<void> {
  for (const a of accounts) await client.deposit(a, 'USDT', amount);
}

/** SIGKILL an engine and wait until its process is gone (a restart on its data dir needs the lock free). */
async function killEngine(pid: number): Promise<void> {
  process.kill(pid, 'SIGKILL');
  await waitFor(() => !isPidAlive(pid), 10_000, `the killed engine (pid ${pid}) to be gone`);
}

describe('engine process', () => {
  it('binds loopback, needs the token (0600), and answers bad requests with 4xx JSON', async () => {
    const { dir, client } = await startTestEngine();
    expect(client.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(statSync(join(dir, 'control.token')).mode & 0o777).toBe(0o600);
    expect((await fetch(`${client.url}/health`)).status).toBe(401);
    expect((await fetch(`${client.url}/health`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    const bad = await client.raw('POST', '/orders', { account: 'x', symbol: 'DOGEUSDT', side: 'buy', type: 'limit', price: '1', qty: '1' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: expect.stringMatching(/unknown symbol/) });
    const junk = await fetch(`${client.url}/orders`, {
      method: 'POST',
      headers: { authorization: `Bearer ${readFileSync(join(dir, 'control.token'), 'utf8').trim()}` },
      body: '{not json',
    });
    expect(junk.status).toBe(400);
    expect((await client.raw('GET', '/nope')).status).toBe(404);
    // A path's id is checked before its method: a bad id is 400 whatever the method, a wrong method 404.
    expect(await (await client.raw('GET', '/nope')).json()).toEqual({ error: 'no route GET /nope' });
    expect((await client.raw('GET', '/accounts/%ZZ/deposit')).status).toBe(400);
    expect(await (await client.raw('PUT', '/accounts/bad!id')).json()).toEqual({ error: 'bad account id' });
    expect(await (await client.raw('POST', '/accounts/a')).json()).toEqual({ error: 'no route POST /accounts/a' });
    expect(await (await client.raw('GET', '/accounts/a/deposit')).json()).toEqual({ error: 'no route GET /accounts/a/deposit' });
    expect(await (await client.raw('POST', '/accounts/@fees/deposit', { asset: 'USDT', amount: '1' })).json()).toEqual({
      error: 'system accounts take no deposits',
    });
    expect(await (await client.raw('GET', '/accounts/nobody')).json()).toEqual({ error: 'no account nobody' });
    expect(await (await client.raw('GET', '/orders/42')).json()).toEqual({ error: 'no order 000000000042' });
    expect((await client.raw('DELETE', '/orders/42')).status).toBe(404);
    expect(await (await client.raw('PUT', '/orders/42')).json()).toEqual({ error: 'no route PUT /orders/42' });
    expect((await client.raw('GET', '/orders/abc')).status).toBe(404);
    expect((await client.raw('GET', '/phase')).status).toBe(404);
    expect((await client.health()).phase).toBe('halted');
    // Only 127.0.0.1 (and ::1) may talk to it: a request from another source address is refused.
    const { request } = await import('node:http');
    const u = new URL(client.url);
    const token = readFileSync(join(dir, 'control.token'), 'utf8').trim();
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        { host: u.hostname, port: u.port, path: '/health', localAddress: '127.0.0.2', headers: { authorization: `Bearer ${token}` } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(403);
  });

  it('fills crossing orders and rejects one that breaches initial margin', async () => {
    const { client } = await startTestEngine();
    await fund(client, ['maker', 'taker']);
    await client.deposit('small', 'USDT', '100');
    await client.setPhase('open');
    const ask = await client.placeOrder({ account: 'maker', symbol: 'ETHUSDT', side: 'sell', type: 'limit', price: '3000', qty: '2' });
    expect(ask).toMatchObject({ status: 'open' });
    const bid = await client.placeOrder({ account: 'taker', symbol: 'ETHUSDT', side: 'buy', type: 'limit', price: '3001', qty: '1.5' });
    expect(bid).toMatchObject({ status: 'filled', filled: '1.5', avgPrice: '3000' });
    expect(await client.account('taker')).toMatchObject({ positions: [{ symbol: 'ETHUSDT', qty: '1.5' }] });
    const tooBig = await client.placeOrder({ account: 'small', symbol: 'BTCUSDT', side: 'buy', type: 'limit', price: '60000', qty: '1' });
    expect(tooBig).toMatchObject({ status: 'rejected', reason: 'INSUFFICIENT_MARGIN' });
    const metrics = await client.metrics();
    expect(metrics).toMatch(/engine_orders_accepted_total 2/);
    expect(metrics).toMatch(/engine_orders_rejected_total\{reason="INSUFFICIENT_MARGIN"\} 1/);
    expect(metrics).toMatch(/engine_match_latency_seconds_count 3/);
  });

  it('margin-burst halts the engine on 1.4.2 with EXCESS_QUEUE_DEPTH; on 1.4.3 the queue stays below the limit', async () => {
    const { client } = await startTestEngine();
    await fund(client, ['a', 'b', 'c']);
    await client.setPhase('open');
    const burst = await client.fault('margin-burst');
    expect(burst).toMatchObject({ phase: 'halted' });
    const h = await client.health();
    expect(h.phase).toBe('halted');
    expect(h.reason).toMatch(/^EXCESS_QUEUE_DEPTH in margin 1\.4\.2/);
    expect(h.haltedAtSeq).toBeGreaterThan(0);
    expect(h.haltCode).toBe('EXCESS_QUEUE_DEPTH');

    const second = await startTestEngine();
    installModule(second.dir, '1.4.3');
    await fund(second.client, ['a', 'b', 'c']);
    expect(await second.client.activate('margin', '1.4.3')).toMatchObject({ changed: true, active: '1.4.3', previous: '1.4.2' });
    await second.client.setPhase('open');
    const ok = await second.client.fault('margin-burst');
    expect(ok).toMatchObject({ events: 20_000, phase: 'open' });
    expect(ok.queueDepth as number).toBeLessThanOrEqual(3);
    expect((await second.client.health()).phase).toBe('open');
    // Instant rollback to the previous module.
    expect(await second.client.rollbackModule('margin')).toMatchObject({ active: '1.4.2', previous: '1.4.3' });
    expect(JSON.parse(readFileSync(join(second.dir, 'active.json'), 'utf8'))).toEqual({ margin: { active: '1.4.2', previous: '1.4.3' } });
    expect((await second.client.health()).haltCode).toBeNull();
  });

  it('health gives a haltCode only while the engine stays halted by its own decision, across a restart too', async () => {
    const { dir, client } = await startTestEngine();
    expect(await client.health()).toMatchObject({ phase: 'halted', haltCode: null });
    await fund(client, ['a', 'b', 'c']);
    await client.setPhase('open');
    expect((await client.health()).haltCode).toBeNull();
    await client.fault('margin-burst');
    expect(await client.health()).toMatchObject({ phase: 'halted', haltCode: 'EXCESS_QUEUE_DEPTH' });
    // The WAL keeps only the reason: a restart restores the code from the engine's own reason format.
    await stopEngine(dir, 5_000);
    const again = await startTestEngine({ dataDir: dir });
    expect(await again.client.health()).toMatchObject({
      phase: 'halted',
      haltCode: 'EXCESS_QUEUE_DEPTH',
      reason: expect.stringMatching(/^EXCESS_QUEUE_DEPTH in margin 1\.4\.2: /),
    });
    await again.client.setPhase('open');
    expect(await again.client.health()).toMatchObject({ phase: 'open', haltCode: null, haltReason: expect.stringMatching(/^EXCESS_QUEUE_DEPTH/) });
    // An operator's halt is free text, whatever it says: no code.
    await again.client.setPhase('halted', 'EXCESS_QUEUE_DEPTH suspected, pausing');
    expect(await again.client.health()).toMatchObject({ phase: 'halted', haltCode: null });
  });

  it('refuses a module that fails its self-test and keeps the active one', async () => {
    const { dir, client } = await startTestEngine();
    installModule(dir, '1.4.3');
    const file = join(dir, 'modules', 'margin', '1.4.3.mjs');
    writeFileSync(file, readFileSync(file, 'utf8').replace("seen.join() !== 'b,a'", "seen.join() !== 'nope'"));
    const r = await client.raw('POST', '/modules/activate', { component: 'margin', version: '1.4.3' });
    expect(r.status).toBe(422);
    expect(await r.json()).toMatchObject({ error: expect.stringMatching(/failed its self-test/) });
    expect((await client.health()).modules.margin?.active).toBe('1.4.2');
  });

  it('after kill -9, a restart has exactly the acknowledged state: snapshot bytes identical', async () => {
    const { dir, client, pid } = await startTestEngine();
    await fund(client, ['a', 'b']);
    await client.setPhase('open');
    for (let i = 0; i < 20; i++) {
      await client.placeOrder({
        account: i % 2 ? 'a' : 'b',
        symbol: 'BTCUSDT',
        side: i % 2 ? 'buy' : 'sell',
        type: 'limit',
        price: String(60000 + (i % 5) * 10),
        qty: '0.01',
      });
    }
    const snap = await client.snapshot();
    // More acknowledged work after the snapshot lives only in the WAL.
    for (let i = 0; i < 10; i++) await client.placeOrder({ account: 'a', symbol: 'ETHUSDT', side: 'buy', type: 'limit', price: String(2990 + i), qty: '0.1' });
    const cancelled = await client.placeOrder({ account: 'b', symbol: 'ETHUSDT', side: 'sell', type: 'limit', price: '3100', qty: '0.2' });
    await client.cancel(cancelled.id as string);
    const before = await client.state();
    await killEngine(pid);
    const again = await startTestEngine({ dataDir: dir });
    expect(again.pid).not.toBe(pid);
    const h = await again.client.health();
    expect(h.recovery).toMatchObject({ snapshotSeq: snap.seq, walDamage: null });
    expect(h.recovery.replayed).toBe(12);
    expect(await again.client.state()).toBe(before);
    // The snapshot written before the kill is the same bytes as the state at its seq.
    const snapText = readFileSync(snap.path, 'utf8');
    expect(snapText.split('\n')[0]).toContain(`"seq":${snap.seq}`);
  });

  it('a WAL whose last record is corrupt recovers up to it and says so', async () => {
    const { dir, client } = await startTestEngine();
    await fund(client, ['a', 'b', 'c']);
    await client.setPhase('open');
    const seqBefore = (await client.health()).seq;
    await killEngine(readEngineInfo(dir)?.pid as number);
    const walDir = join(dir, 'wal');
    const seg = join(walDir, readdirSync(walDir).sort().at(-1) as string);
    const text = readFileSync(seg, 'utf8');
    const lines = text.trimEnd().split('\n');
    const last = lines.at(-1) as string;
    writeFileSync(seg, `${lines.slice(0, -1).join('\n')}\n${last.replace('"phase":"open"', '"phase":"opan"')}\n`);
    appendFileSync(seg, '{"seq":99,"crc":"00000000","bo');
    const again = await startTestEngine({ dataDir: dir });
    const h = await again.client.health();
    expect(h.seq).toBe(seqBefore - 1);
    expect(h.phase).toBe('halted');
    expect(h.recovery.walDamage).toMatchObject({ line: lines.length, reason: expect.stringMatching(/CRC mismatch/) });
    expect(readFileSync(join(dir, 'engine.log'), 'utf8')).toMatch(/WAL damaged: recovered up to the last good record/);
    // The log was cut at the last good record: new records follow on cleanly.
    await again.client.setPhase('open');
    expect((await again.client.health()).seq).toBe(seqBefore);
  });

  it('SIGTERM flushes and exits 0; a second engine on the same data dir is refused', async () => {
    const { dir, pid } = await startTestEngine();
    const second = await execa('node', [engineBin(), '--data-dir', dir, '--port', '0'], { reject: false, timeout: 10_000 });
    expect(second.exitCode).toBe(2);
    expect(second.stderr).toMatch(new RegExp(`locked by engine pid ${pid}`));
    process.kill(pid, 'SIGTERM');
    await waitFor(() => !isPidAlive(pid), 10_000, 'the engine to exit on SIGTERM');
    expect(readFileSync(join(dir, 'engine.log'), 'utf8')).toMatch(/"msg":"stopping","signal":"SIGTERM"/);
  });

  it('recomputes missed funding intervals from the recorded marks; payments net to zero', async () => {
    // The testnet's manual clock: three 8h intervals pass while halted, in no time and the same way every run.
    const { client } = await startTestEngine({ testnet: true, manualClock: true, feedInterval: '10m', fundingInterval: '8h' });
    await fund(client, ['long', 'short']);
    await client.setPhase('open');
    await client.placeOrder({ account: 'short', symbol: 'BTCUSDT', side: 'sell', type: 'limit', price: '60000', qty: '0.5' });
    await client.placeOrder({ account: 'long', symbol: 'BTCUSDT', side: 'buy', type: 'market', qty: '0.5' });
    await client.request('POST', '/testnet/clock', { advanceMs: 3_600_000 });
    await client.setPhase('halted', 'test outage');
    const moved = await client.request<{ now: string; ticks: number }>('POST', '/testnet/clock', { advanceMs: 24 * 3_600_000 });
    expect(moved).toEqual({ now: '2026-01-02T01:00:00.000Z', ticks: 144 });
    const r = await client.recomputeFunding('2026-01-01T00:00:00Z', moved.now);
    expect(r.intervals.filter((i) => i.symbol === 'BTCUSDT').map((i) => i.intervalStart)).toEqual([
      '2026-01-01T00:00:00.000Z',
      '2026-01-01T08:00:00.000Z',
      '2026-01-01T16:00:00.000Z',
    ]);
    expect(r.missingMarks).toEqual([]);
    expect(r.totals.BTCUSDT?.net).toBe('0');
    expect(r.totals.BTCUSDT?.paid).not.toBe('0');
    const again = await client.recomputeFunding('2026-01-01T00:00:00Z', moved.now);
    expect(again.intervals).toEqual([]);
    expect((await client.health()).ledger).toEqual({ USDT: '0', USDC: '0' });
  });

  it('snapshots under concurrent order flow keep the engine up, and a restart then has the same state', async () => {
    const { dir, client, pid } = await startTestEngine();
    await fund(client, ['a', 'b', 'c', 'd']);
    await client.setPhase('open');
    let stop = false;
    const sender = async (account: string, side: 'buy' | 'sell') => {
      let i = 0;
      while (!stop) await client.placeOrder({ account, symbol: 'BTCUSDT', side, type: 'limit', price: String(60000 + ((i++ % 7) - 3) * 10), qty: '0.001' });
    };
    const senders = [sender('a', 'buy'), sender('b', 'sell'), sender('c', 'buy'), sender('d', 'sell')];
    for (let i = 0; i < 15; i++) {
      const snap = await client.snapshot();
      // Orders land between one snapshot and the next: each is taken under flow, not back to back.
      await waitFor(async () => (await client.health()).seq > snap.seq, 10_000, `orders after snapshot ${i + 1}`);
    }
    stop = true;
    await Promise.all(senders);
    expect((await client.health()).pid).toBe(pid);
    const before = await client.state();
    await killEngine(pid);
    const again = await startTestEngine({ dataDir: dir });
    expect(await again.client.state()).toBe(before);
  });

  it('damage in WAL records the snapshot already covers loses nothing acknowledged after it', async () => {
    const { dir, client, pid } = await startTestEngine();
    await fund(client, ['a', 'b']);
    await client.setPhase('open');
    await client.snapshot();
    await client.deposit('late', 'USDT', '555');
    await client.placeOrder({ account: 'a', symbol: 'ETHUSDT', side: 'buy', type: 'limit', price: '3000', qty: '0.1' });
    const before = await client.state();
    await killEngine(pid);
    const walDir = join(dir, 'wal');
    const first = join(walDir, readdirSync(walDir).sort()[0] as string);
    const lines = readFileSync(first, 'utf8').split('\n');
    lines[1] = (lines[1] as string).replace('"amount":"100000"', '"amount":"999999"');
    writeFileSync(first, lines.join('\n'));
    const again = await startTestEngine({ dataDir: dir });
    expect(await again.client.state()).toBe(before);
    // And it keeps going: later records land in a fresh segment and survive the next restart too.
    await again.client.deposit('later', 'USDT', '1');
    const after = await again.client.state();
    await killEngine(again.pid);
    const third = await startTestEngine({ dataDir: dir });
    expect(await third.client.state()).toBe(after);
  });

  it('refuses to start when the WAL does not follow on from the newest valid snapshot', async () => {
    const { dir, client, pid } = await startTestEngine();
    await fund(client, ['a']);
    const snap = await client.snapshot();
    await client.deposit('b', 'USDT', '5');
    await client.deposit('c', 'USDT', '5');
    await killEngine(pid);
    // The snapshot is lost and the WAL segment it started no longer reaches back to seq 1.
    writeFileSync(snap.path, 'not a snapshot\n');
    const walDir = join(dir, 'wal');
    const segs = readdirSync(walDir)
      .filter((f) => f.endsWith('.log'))
      .sort();
    writeFileSync(join(walDir, segs[0] as string), '');
    const r = await execa('node', [engineBin(), '--data-dir', dir, '--port', '0'], { reject: false, timeout: 10_000 });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/cannot start: WAL .* starts at seq \d+ but the newest valid snapshot is at seq 0/);
  });

  it('answers 400 to a bad percent-escape and to an unbounded funding recompute', async () => {
    const { client } = await startTestEngine();
    expect((await client.raw('GET', '/accounts/%E0%A4%A')).status).toBe(400);
    const r = await client.raw('POST', '/funding/recompute', { from: '2000-01-01T00:00:00Z', to: '2100-01-01T00:00:00Z' });
    expect(r.status).toBe(400);
    expect((await client.health()).phase).toBe('halted');
  });

  it('engine stop signals only a process that is provably the engine', async () => {
    const dir = join(tempDir(), 'data');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dir, { recursive: true });
    const sleeper = execa('node', ['-e', 'setTimeout(() => {}, 30000)'], { reject: false });
    try {
      writeFileSync(
        join(dir, 'engine.json'),
        JSON.stringify({ pid: sleeper.pid, url: 'http://127.0.0.1:9', startedAt: '', version: '0', dataDir: dir, testnet: false }),
      );
      const { stopEngine } = await import('../../src/engine-client/supervisor.js');
      expect(await stopEngine(dir, 1000)).toMatchObject({ wasRunning: false });
      expect(isPidAlive(sleeper.pid as number)).toBe(true);
    } finally {
      sleeper.kill('SIGKILL');
    }
  });
});
