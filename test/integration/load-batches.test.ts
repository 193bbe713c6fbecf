/**
 * The load generator's batches (issue 17): orders due in one beat go as `POST /orders/batch`, against a
 * real engine child process; through a real HAProxy that routes only single orders, it falls back to one
 * request an order and loses none. The clock is moved by hand, so the beat's orders are known exactly.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LoadGenerator, traderAccounts, type LoadStats } from '../../src/engine-client/load.js';
import type { EngineClient } from '../../src/engine-client/client.js';
import { dataDirLayout } from '../../src/util/data-dir.js';
import { waitFor } from '../support/cli.js';
import { startTestEngine } from '../support/engine.js';
import { onPath, startHaproxy } from '../support/haproxy.js';

async function openEngine(): Promise<{ client: EngineClient; token: string; accounts: string[] }> {
  const { dir, client } = await startTestEngine({ feedInterval: '0ms' });
  const accounts = traderAccounts(8);
  for (const a of accounts) await client.deposit(a, 'USDT', '100000000');
  await client.setPhase('open');
  return { client, token: readFileSync(dataDirLayout(dir).token, 'utf8').trim(), accounts };
}

const counter = (metrics: string, name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN);
const answered = (s: LoadStats): number => s.accepted + s.retryLater + s.rejected + s.errors;

/** 3,000 orders due at once (rate 3,000/s, the clock moved 1 s): sent, every one answered, counted by the engine. */
async function oneBeat(o: {
  client: EngineClient;
  token: string;
  accounts: string[];
  orderUrl?: string;
}): Promise<{ stats: LoadStats; ordersIn: number; syncs: number }> {
  const before = await o.client.metrics();
  let now = 0;
  const gen = new LoadGenerator({
    url: o.client.url,
    ...(o.orderUrl ? { orderUrl: o.orderUrl } : {}),
    token: o.token,
    rate: 3_000,
    accounts: o.accounts,
    seed: 3,
    instruments: await o.client.instruments(),
    now: () => now,
  });
  gen.start();
  try {
    now = 1_000;
    await waitFor(() => Promise.resolve(gen.stats().sent >= 3_000 && answered(gen.stats()) === gen.stats().sent), 30_000, '3,000 orders answered');
    now = 1_000; // no more due: the beat's orders are all there is
  } finally {
    await gen.stop();
  }
  const after = await o.client.metrics();
  return {
    stats: gen.stats(),
    ordersIn: counter(after, 'engine_orders_in_total') - counter(before, 'engine_orders_in_total'),
    syncs: counter(after, 'engine_wal_syncs_total') - counter(before, 'engine_wal_syncs_total'),
  };
}

describe('the load generator batches the orders of one beat', () => {
  it('sends 3,000 orders due at once as 30 batches of 100: each answered and counted once, a WAL group a batch at most', async () => {
    const e = await openEngine();
    const { stats, ordersIn, syncs } = await oneBeat(e);
    // With nothing open yet the first beat has no cancels: every offer is an order.
    expect(stats.sent).toBe(3_000);
    expect(ordersIn).toBe(3_000);
    expect(stats).toMatchObject({ errors: 0, retryLater: 0 });
    expect(answered(stats)).toBe(3_000);
    // One request an order, 64 in flight, would take at least 3,000 / 64 = 47 groups.
    expect(syncs).toBeLessThanOrEqual(30);
  });

  it('counts every order of a batch refused as a request (a wrong token) as an error, none as accepted', async () => {
    const e = await openEngine();
    let now = 0;
    const gen = new LoadGenerator({
      url: e.client.url,
      token: 'wrong',
      rate: 300,
      accounts: e.accounts,
      seed: 4,
      instruments: await e.client.instruments(),
      now: () => now,
    });
    gen.start();
    try {
      now = 1_000;
      await waitFor(() => Promise.resolve(gen.stats().sent >= 300 && answered(gen.stats()) === gen.stats().sent), 30_000, '300 orders answered');
    } finally {
      await gen.stop();
    }
    expect(gen.stats()).toMatchObject({ sent: 300, accepted: 0, errors: 300, lastError: 'HTTP 401' });
  });

  it.skipIf(!onPath('haproxy'))('falls back to one request an order behind a gateway with no batch route, losing none', async () => {
    const e = await openEngine();
    const gw = await startHaproxy({
      servers: { engine: new URL(e.client.url).host },
      frontendRules: ['http-request deny deny_status 404 if { path /orders/batch }'],
    });
    try {
      const refused = await fetch(new URL('/orders/batch', gw.frontendUrl), {
        method: 'POST',
        headers: { authorization: `Bearer ${e.token}` },
        body: '{"orders":[]}',
      });
      expect(refused.status).toBe(404);
      const { stats, ordersIn } = await oneBeat({ ...e, orderUrl: gw.frontendUrl });
      expect(stats.sent).toBe(3_000);
      expect(ordersIn).toBe(3_000);
      expect(stats).toMatchObject({ errors: 0 });
      expect(answered(stats)).toBe(3_000);
    } finally {
      await gw.stop();
    }
  });
});
