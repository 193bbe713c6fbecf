/**
 * A hot standby (issue 14), on real engine processes: a follower that applies its primary's WAL stream
 * has the same state at the same seq, resumes after a restart, and is promoted only over a fenced primary.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { EngineClient } from '../../src/engine-client/client.js';
import { stopEngine } from '../../src/engine-client/supervisor.js';
import { dataDirLayout } from '../../src/util/data-dir.js';
import { installModule, startTestEngine } from '../support/engine.js';
import { tempDir, waitFor } from '../support/cli.js';

const btc = { symbol: 'BTCUSDT' } as const;

async function primaryWithFollower(): Promise<{ primary: EngineClient; follower: EngineClient; primaryDir: string; followerDir: string }> {
  const p = await startTestEngine({ testnet: true, feedInterval: '20ms', fundingInterval: '1s' });
  const followerDir = join(tempDir('recoverctl-standby-'), 'data');
  const f = await startTestEngine({
    dataDir: followerDir,
    testnet: true,
    follow: { url: p.client.url, tokenFile: dataDirLayout(p.dir).token },
  });
  return { primary: p.client, follower: f.client, primaryDir: p.dir, followerDir };
}

/** Wait until the follower has applied everything the primary has made durable, then compare whole states. */
async function sameState(primary: EngineClient, follower: EngineClient): Promise<void> {
  await primary.setPhase('halted', 'compare');
  const target = (await primary.health()).seq;
  await waitFor(async () => (await follower.health()).seq >= target, 10_000, `the follower at seq ${target}`);
  // Halted, the feed still ticks: compare states taken at the same seq.
  for (let i = 0; i < 50; i++) {
    const [a, b] = [await primary.state(), await follower.state()];
    if (a.split('\n')[0] === b.split('\n')[0]) {
      expect(b).toBe(a);
      return;
    }
    const seq = (JSON.parse(a.split('\n')[0] as string) as { seq: number }).seq;
    await waitFor(async () => (await follower.health()).seq >= seq, 10_000, `the follower at seq ${seq}`);
  }
  throw new Error('the two states were never taken at the same seq');
}

async function trade(client: EngineClient, n: number): Promise<string[]> {
  const acked: string[] = [];
  for (let i = 0; i < n; i++) {
    const side = i % 2 ? 'buy' : 'sell';
    const r = await client.placeOrder({
      ...btc,
      account: i % 3 ? 'a' : 'b',
      side,
      type: 'limit',
      price: String(60000 + ((i % 7) - 3) * 10),
      qty: '0.001',
      stp: 'none',
    });
    if (r.id) acked.push(r.id);
  }
  return acked;
}

describe('hot standby', () => {
  it('a follower applies the primary’s WAL stream: the same state at the same seq, orders refused, lag in /health', async () => {
    const { primary, follower } = await primaryWithFollower();
    for (const a of ['a', 'b']) await primary.deposit(a, 'USDT', '1000000');
    await primary.setPhase('open');
    await trade(primary, 300);
    const h = await follower.health();
    expect(h).toMatchObject({ role: 'follower', following: { primary: primary.url } });
    const refused = await follower.raw('POST', '/orders', { ...btc, account: 'a', side: 'buy', type: 'limit', price: '60000', qty: '0.001' });
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as { error: string }).error).toMatch(/follower of/);
    await sameState(primary, follower);
    // The feed still ticks while halted: at most the tick in the primary's group commit is not here yet.
    const following = (await follower.health()).following;
    expect(following).toMatchObject({ connected: true });
    expect(following?.lagRecords).toBeLessThanOrEqual(2);
    expect(following?.lagMs).toBeGreaterThanOrEqual(0);
  });

  it('a follower killed and restarted resumes the stream after its own last seq, without a gap', async () => {
    const { primary, follower, primaryDir, followerDir } = await primaryWithFollower();
    for (const a of ['a', 'b']) await primary.deposit(a, 'USDT', '1000000');
    await primary.setPhase('open');
    await trade(primary, 100);
    await stopEngine(followerDir, 5_000);
    await trade(primary, 100);
    const again = await startTestEngine({ dataDir: followerDir, testnet: true, follow: { url: primary.url, tokenFile: dataDirLayout(primaryDir).token } });
    await sameState(primary, again.client);
    expect(follower).toBeDefined();
  });

  it('promotion: refused over an unfenced primary; after fencing, every acknowledged order is in the new primary, which takes writes', async () => {
    const { primary, follower, primaryDir } = await primaryWithFollower();
    for (const a of ['a', 'b']) await primary.deposit(a, 'USDT', '1000000');
    await primary.setPhase('open');
    const acked = await trade(primary, 200);
    const refused = await follower.raw('POST', '/promote', {});
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as { error: string }).error).toMatch(/not fenced/);
    const fenced = await primary.request<{ fenced: boolean; seq: number; epoch: number }>('POST', '/fence', {});
    expect(fenced).toMatchObject({ fenced: true, epoch: 0 });
    // The fenced primary takes no writes, and a restart keeps it fenced.
    expect((await primary.raw('POST', '/orders', { ...btc, account: 'a', side: 'buy', type: 'limit', price: '60000', qty: '0.001' })).status).toBe(409);
    const promoted = await follower.request<{ role: string; epoch: number; seq: number; forced: boolean }>('POST', '/promote', {});
    expect(promoted).toMatchObject({ role: 'primary', epoch: 1, seq: fenced.seq + 1, forced: false });
    for (const id of acked) expect((await follower.raw('GET', `/orders/${id}`)).status).toBe(200);
    expect(await follower.placeOrder({ ...btc, account: 'a', side: 'buy', type: 'limit', price: '59000', qty: '0.001' })).toMatchObject({ status: 'open' });
    expect((await follower.health()).role).toBe('primary');
    await stopEngine(primaryDir, 5_000);
    const back = await startTestEngine({ dataDir: primaryDir, testnet: true, feedInterval: '20ms', fundingInterval: '1s' });
    expect((await back.client.health()).fenced).toBe(true);
    expect((await back.client.raw('POST', '/orders', { ...btc, account: 'a', side: 'buy', type: 'limit', price: '60000', qty: '0.001' })).status).toBe(409);
  });

  it('a forced promotion over a dead primary is journaled as forced, and fences the old primary by epoch when it comes back', async () => {
    const { primary, follower, primaryDir } = await primaryWithFollower();
    for (const a of ['a', 'b']) await primary.deposit(a, 'USDT', '1000000');
    await primary.setPhase('open');
    await trade(primary, 50);
    const pid = (await primary.health()).pid;
    process.kill(pid, 'SIGKILL');
    await waitFor(async () => (await follower.health()).following?.connected === false, 10_000, 'the follower to lose its primary');
    expect((await follower.raw('POST', '/promote', {})).status).toBe(409);
    const promoted = await follower.request<{ epoch: number; forced: boolean }>('POST', '/promote', { force: true });
    expect(promoted).toMatchObject({ epoch: 1, forced: true });
    // It comes back where the follower knew it: the same port.
    const port = Number(new URL(primary.url).port);
    const back = await startTestEngine({ dataDir: primaryDir, port, testnet: true, feedInterval: '20ms', fundingInterval: '1s' });
    await waitFor(async () => (await back.client.health()).fenced === true, 10_000, 'the old primary fenced by the new epoch');
    expect((await back.client.health()).epoch).toBe(1);
  });

  it("an old primary that took writes after a forced promotion refuses to follow the new one, naming the records that were never the primary's", async () => {
    const { primary, follower, primaryDir, followerDir } = await primaryWithFollower();
    const followerToken = dataDirLayout(followerDir).token;
    for (const a of ['a', 'b']) await primary.deposit(a, 'USDT', '1000000');
    await primary.setPhase('open');
    await trade(primary, 10);
    await stopEngine(primaryDir, 5_000);
    const promoted = await follower.request<{ seq: number }>('POST', '/promote', { force: true });
    // Back on another port the new primary cannot fence it: it takes writes of its own (the known hazard of forcing).
    const back = await startTestEngine({ dataDir: primaryDir, testnet: true });
    await trade(back.client, 5);
    await stopEngine(primaryDir, 5_000);
    const err = await startTestEngine({ dataDir: primaryDir, testnet: true, follow: { url: follower.url, tokenFile: followerToken } }).then(
      () => null,
      (e: Error) => e.message,
    );
    expect(err).toContain(`epoch 1 began at seq ${promoted.seq}`);
    expect(err).toContain('writes after a forced promotion');
  });

  it('a primary fenced for a handover that did not happen takes writes again by reclaiming; one fenced by a newer epoch cannot', async () => {
    const { primary, follower } = await primaryWithFollower();
    await primary.request('POST', '/fence', {});
    expect((await primary.raw('POST', '/accounts/a/deposit', { asset: 'USDT', amount: '1' })).status).toBe(409);
    expect((await follower.raw('POST', '/promote', { reclaim: true })).status).toBe(409);
    const r = await primary.request<{ epoch: number; reclaimed: boolean }>('POST', '/promote', { reclaim: true });
    expect(r).toMatchObject({ epoch: 1, reclaimed: true });
    await primary.deposit('a', 'USDT', '1');
    // The follower learns the new epoch from the stream; a later handover fences at that epoch.
    await waitFor(async () => (await follower.health()).epoch === 1, 10_000, 'the follower at epoch 1');
    await primary.request('POST', '/fence', { epoch: 2 });
    const refused = await primary.raw('POST', '/promote', { reclaim: true });
    expect(refused.status).toBe(409);
    expect(await refused.text()).toContain('fenced by the primary of epoch 2');
  });

  it('a hotfix activated on a follower changes nothing it replicates; the promotion journals it and the new primary runs it', async () => {
    const { primary, follower, followerDir } = await primaryWithFollower();
    for (const a of ['a', 'b']) await primary.deposit(a, 'USDT', '1000000');
    await primary.setPhase('open');
    await trade(primary, 20);
    installModule(followerDir, '1.4.3');
    expect(await follower.activate('margin', '1.4.3')).toMatchObject({ changed: true, active: '1.4.3' });
    await sameState(primary, follower);
    expect((await primary.health()).modules.margin?.active).toBe('1.4.2');
    const fenced = await primary.request<{ seq: number }>('POST', '/fence', {});
    const p = await follower.request<{ seq: number }>('POST', '/promote', {});
    expect(p.seq).toBe(fenced.seq + 1);
    const h = await follower.health();
    expect(h.modules.margin?.active).toBe('1.4.3');
    // The epoch record, then the module record: the WAL explains which module the new primary runs.
    expect(h.seq).toBe(fenced.seq + 2);
  });

  it('a data dir marked by a forced promotion starts fenced at that epoch, before any write; an older marker is ignored', async () => {
    const { primary, primaryDir } = await primaryWithFollower();
    await primary.deposit('a', 'USDT', '1000');
    await stopEngine(primaryDir, 5_000);
    writeFileSync(dataDirLayout(primaryDir).fenceMarker, JSON.stringify({ epoch: 1, by: 'http://127.0.0.1:1' }));
    const back = await startTestEngine({ dataDir: primaryDir, testnet: true });
    expect(await back.client.health()).toMatchObject({ fenced: true, epoch: 1 });
    expect((await back.client.raw('POST', '/accounts/a/deposit', { asset: 'USDT', amount: '1' })).status).toBe(409);
    expect((await back.client.raw('POST', '/promote', { reclaim: true })).status).toBe(409);
    await stopEngine(primaryDir, 5_000);
    // A marker at or below the engine's own epoch (it was promoted again since) changes nothing.
    const other = await startTestEngine({ testnet: true });
    writeFileSync(dataDirLayout(other.dir).fenceMarker, JSON.stringify({ epoch: 0, by: 'http://127.0.0.1:1' }));
    await stopEngine(other.dir, 5_000);
    const again = await startTestEngine({ dataDir: other.dir, testnet: true });
    expect(await again.client.health()).toMatchObject({ fenced: false, epoch: 0 });
  });

  it('a new follower copies the WAL history before the state it starts from, so its WAL explains everything since seq 1', async () => {
    const p = await startTestEngine({ testnet: true });
    for (const a of ['a', 'b']) await p.client.deposit(a, 'USDT', '1000000');
    await p.client.setPhase('open');
    await trade(p.client, 20);
    const followerDir = join(tempDir('recoverctl-standby-'), 'data');
    const f = await startTestEngine({ dataDir: followerDir, testnet: true, follow: { url: p.client.url, tokenFile: dataDirLayout(p.dir).token } });
    const startedAt = (await f.client.health()).seq;
    expect(startedAt).toBeGreaterThan(20);
    const wal = dataDirLayout(followerDir).wal;
    const segments = readdirSync(wal)
      .filter((n) => n.endsWith('.log'))
      .sort();
    expect(segments[0]).toBe('00000000000000000001.log');
    const lines = (dir: string, file: string) => readFileSync(join(dir, file), 'utf8').split('\n').filter(Boolean);
    const theirs = readdirSync(dataDirLayout(p.dir).wal)
      .filter((n) => n.endsWith('.log'))
      .sort()
      .flatMap((n) => lines(dataDirLayout(p.dir).wal, n));
    expect(lines(wal, segments[0] as string)).toEqual(theirs.slice(0, lines(wal, segments[0] as string).length));
    expect(lines(wal, segments[0] as string).length).toBeGreaterThanOrEqual(20);
  });

  it('a forced promotion over a primary that still answers fences it first: never two writers', async () => {
    const { primary, follower } = await primaryWithFollower();
    await primary.deposit('a', 'USDT', '1000');
    const p = await follower.request<{ epoch: number; forced: boolean }>('POST', '/promote', { force: true });
    expect(p).toMatchObject({ forced: false });
    expect(await primary.health()).toMatchObject({ fenced: true });
    expect((await primary.raw('POST', '/accounts/a/deposit', { asset: 'USDT', amount: '1' })).status).toBe(409);
    expect((await primary.raw('POST', '/promote', { reclaim: true })).status).toBe(409);
  });
});
