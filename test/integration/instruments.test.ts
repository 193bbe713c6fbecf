import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LoadGenerator, traderAccounts } from '../../src/engine-client/load.js';
import { instrumentViews } from '../../src/engine/instruments.js';
import { dataDirLayout } from '../../src/util/data-dir.js';
import { startTestEngine } from '../support/engine.js';

/** Whether a decimal string is a whole multiple of a step (both decimal strings), exactly. */
function onGrid(value: string, step: string): boolean {
  const places = Math.max(value.split('.')[1]?.length ?? 0, step.split('.')[1]?.length ?? 0);
  const units = (d: string) => BigInt(`${d.split('.')[0]}${(d.split('.')[1] ?? '').padEnd(places, '0')}`);
  return units(step) > 0n && units(value) % units(step) === 0n;
}

describe('GET /instruments', () => {
  it('answers the instrument table in every phase, and only with the token', async () => {
    const { client } = await startTestEngine();
    expect((await fetch(`${client.url}/instruments`)).status).toBe(401);
    expect((await fetch(`${client.url}/instruments`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    for (const phase of ['halted', 'cancel-only', 'post-only', 'open'] as const) {
      if (phase !== 'halted') await client.setPhase(phase);
      expect((await client.health()).phase).toBe(phase);
      expect(await client.instruments()).toEqual(instrumentViews(() => 8 * 3_600_000));
    }
    expect((await client.instruments()).find((i) => i.symbol === 'BTCUSDT')).toMatchObject({ tickSize: '0.1', lotSize: '0.001' });
    const raw = await client.raw('GET', '/instruments');
    expect(raw.headers.get('content-type')).toBe('application/json');
    expect(Object.keys((await raw.json()) as object)).toEqual(['instruments']);
    // Read-only: no other method is routed there.
    expect((await client.raw('POST', '/instruments', {})).status).toBe(404);
  });

  it('prices a load generator whose orders the engine takes: no tick or lot rejection', async () => {
    // A moving feed, so the generator prices from marks it reads rather than from its fallbacks.
    const { dir, client } = await startTestEngine({ feedInterval: '50ms' });
    const accounts = traderAccounts(8);
    for (const a of accounts) await client.deposit(a, 'USDT', '10000000');
    await client.setPhase('open');
    const instruments = await client.instruments();
    const gen = new LoadGenerator({
      url: client.url,
      token: readFileSync(dataDirLayout(dir).token, 'utf8').trim(),
      rate: 200,
      accounts,
      seed: 7,
      instruments,
      maxInFlight: 16,
    });
    gen.start();
    await new Promise((r) => setTimeout(r, 1_500));
    await gen.stop();
    const stats = gen.stats();
    expect(stats.errors, stats.lastError ?? '').toBe(0);
    expect(stats.sent).toBeGreaterThan(100);
    expect(stats.accepted).toBeGreaterThan(0);
    // None of its orders was off the tick or lot grid (the engine's INVALID), or refused for its phase.
    const metrics = await client.metrics();
    expect(metrics).toMatch(/engine_orders_accepted_total [1-9]/);
    expect(metrics).not.toMatch(/engine_orders_rejected_total\{reason="(INVALID|PHASE_[A-Z_]+)"\}/);
    // The orders still resting cover every instrument and sit on its grid.
    const grid = new Map(instruments.map((i) => [i.symbol, i]));
    const symbols = new Set<string>();
    for (const a of accounts) {
      for (const id of (await client.account(a)).openOrders) {
        const order = await client.request<{ symbol: string; price: string; qty: string }>('GET', `/orders/${id}`);
        const inst = grid.get(order.symbol);
        expect(inst, order.symbol).toBeDefined();
        expect(onGrid(order.price, inst?.tickSize ?? ''), `${order.symbol} price ${order.price}`).toBe(true);
        expect(onGrid(order.qty, inst?.lotSize ?? ''), `${order.symbol} qty ${order.qty}`).toBe(true);
        symbols.add(order.symbol);
      }
    }
    expect([...symbols].sort()).toEqual([...grid.keys()].sort());
    expect((await client.health()).phase).toBe('open');
  });
});
