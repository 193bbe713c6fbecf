import { describe, expect, it } from 'vitest';
import { Exchange, FEES, INSURANCE } from '../../src/engine/exchange.js';
import { fundingRate, nextPrice, rng } from '../../src/engine/feed.js';
import { bpsOf, fmtMoney, fmtRate, formatFixed, notional, parseFixed } from '../../src/engine/fixed.js';
import { INSTRUMENTS, SYMBOLS, type Symbol } from '../../src/engine/instruments.js';
import { snapshotHeader, SnapshotLoader, snapshotRecords } from '../../src/engine/snapshot-codec.js';
import type { Command, OrderRequest } from '../../src/engine/types.js';

const HOUR = 3_600_000;

function open(ex: Exchange): void {
  ex.apply({ op: 'phase', ts: 1, phase: 'open', reason: null });
}

function order(ex: Exchange, req: Partial<OrderRequest> & { account: string }, ts: number) {
  const full: OrderRequest = {
    symbol: 'BTCUSDT',
    side: 'buy',
    type: 'limit',
    price: 6_000_000,
    qty: 100_000,
    tif: 'GTC',
    postOnly: false,
    reduceOnly: false,
    marginMode: 'cross',
    clientOrderId: null,
    ...req,
  };
  const d = ex.decideOrder(full, ts);
  if ('reject' in d) return { rejected: d.reject };
  return { result: ex.apply(d.command) };
}

describe('exchange', () => {
  it('parses and prints decimals exactly', () => {
    expect(parseFixed('60000.5', 2)).toBe(6_000_050n);
    expect(formatFixed(-123_450_000n, 8)).toBe('-1.2345');
    expect(() => parseFixed('1.234', 2)).toThrow(/more than 2 decimals/);
    expect(() => parseFixed('1e5', 2)).toThrow();
    expect(parseFixed('1.2300', 2)).toBe(123n);
  });

  it('fills crossing orders, charging taker and maker fees', () => {
    const ex = new Exchange(8 * HOUR);
    open(ex);
    ex.apply({ op: 'deposit', ts: 2, account: 'a', asset: 'USDT', amount: '100000' });
    ex.apply({ op: 'deposit', ts: 2, account: 'b', asset: 'USDT', amount: '100000' });
    expect(order(ex, { account: 'a', side: 'sell' }, 3).result).toMatchObject({ status: 'open' });
    expect(order(ex, { account: 'b', side: 'buy' }, 4).result).toMatchObject({ status: 'filled', filled: 100_000, avgPrice: 6_000_000 });
    // 0.1 BTC at 60000: notional 6000 USDT; taker 5 bps = 3, maker 2 bps = 1.2
    expect(fmtMoney(ex.account(FEES).balances.USDT)).toBe('4.2');
    expect(ex.account('b').positions.get('BTCUSDT')).toMatchObject({ qty: 100_000 });
    expect(ex.ledgerImbalance()).toEqual({ USDT: 0n, USDC: 0n });
  });

  it('rejects an order that breaches initial margin, and enforces phases, post-only and reduce-only', () => {
    const ex = new Exchange(8 * HOUR);
    ex.apply({ op: 'deposit', ts: 1, account: 'a', asset: 'USDT', amount: '1000' });
    expect(order(ex, { account: 'a' }, 2).rejected).toBe('PHASE_HALTED');
    open(ex);
    // 1 BTC at 60000 needs 3000 of initial margin (5%): 1000 is not enough.
    expect(order(ex, { account: 'a', qty: 1_000_000 }, 3).rejected).toBe('INSUFFICIENT_MARGIN');
    expect(order(ex, { account: 'a', qty: 10_000 }, 4).result).toMatchObject({ status: 'open' });
    expect(order(ex, { account: 'a', side: 'sell', price: 5_990_000, qty: 10_000, postOnly: true }, 5).rejected).toBe('POST_ONLY_WOULD_TAKE');
    expect(order(ex, { account: 'a', side: 'sell', qty: 10_000, reduceOnly: true }, 6).rejected).toBe('REDUCE_ONLY_WOULD_INCREASE');
    expect(order(ex, { account: 'a', qty: 1_234 }, 7).rejected).toBe('INVALID');
    ex.apply({ op: 'phase', ts: 8, phase: 'post-only', reason: null });
    expect(order(ex, { account: 'a', qty: 10_000 }, 9).rejected).toBe('PHASE_POST_ONLY');
    expect(order(ex, { account: 'a', qty: 10_000, price: 5_000_000, postOnly: true }, 10).result).toMatchObject({ status: 'open' });
    expect(order(ex, { account: 'nobody', qty: 10_000, postOnly: true }, 11).rejected).toBe('UNKNOWN_ACCOUNT');
  });

  it('liquidates an account below maintenance into the insurance fund', () => {
    const ex = new Exchange(8 * HOUR);
    open(ex);
    ex.apply({ op: 'deposit', ts: 1, account: 'lev', asset: 'USDT', amount: '3200' });
    ex.apply({ op: 'deposit', ts: 1, account: 'mm', asset: 'USDT', amount: '1000000' });
    order(ex, { account: 'mm', side: 'sell', qty: 1_000_000 }, 2);
    expect(order(ex, { account: 'lev', side: 'buy', qty: 1_000_000 }, 3).result).toMatchObject({ status: 'filled' });
    expect(ex.belowMaintenance('lev').cross).toBe(false);
    ex.apply({ op: 'marks', ts: 4, step: 1, prices: { BTCUSDT: 5_800_000 } });
    expect(ex.belowMaintenance('lev').cross).toBe(true);
    ex.apply({ op: 'liquidate', ts: 5, account: 'lev', symbol: null });
    expect(ex.account('lev').positions.get('BTCUSDT')?.qty).toBe(0);
    expect(ex.account(INSURANCE).positions.get('BTCUSDT')?.qty).toBe(1_000_000);
    expect(ex.account('lev').balances.USDT >= 0n).toBe(true);
    expect(ex.ledgerImbalance()).toEqual({ USDT: 0n, USDC: 0n });
  });

  it('checks margin at the prices an order really trades at, not at its limit', () => {
    const ex = new Exchange(8 * HOUR);
    open(ex);
    ex.apply({ op: 'deposit', ts: 1, account: 'mm', asset: 'USDT', amount: '1000000' });
    ex.apply({ op: 'deposit', ts: 1, account: 'small', asset: 'USDT', amount: '1000' });
    expect(order(ex, { account: 'small', side: 'sell', price: 10, qty: 1_000_000 }, 2).rejected).toBe('INVALID');
    order(ex, { account: 'mm', side: 'buy', price: 6_000_000, qty: 1_000_000 }, 3);
    // A sell limited at 50000 would fill at the 60000 bid: 1 BTC needs 3000 of margin, not 2500.
    ex.apply({ op: 'deposit', ts: 4, account: 'edge', asset: 'USDT', amount: '2700' });
    expect(order(ex, { account: 'edge', side: 'sell', price: 5_000_000, qty: 1_000_000 }, 5).rejected).toBe('INSUFFICIENT_MARGIN');
    // A market buy sweeping asks far above the mark pays for the loss it takes on at once.
    order(ex, { account: 'mm', side: 'sell', price: 7_100_000, qty: 1_000_000 }, 6);
    ex.apply({ op: 'deposit', ts: 7, account: 'm', asset: 'USDT', amount: '5000' });
    expect(order(ex, { account: 'm', side: 'buy', type: 'market', price: undefined, qty: 1_000_000 }, 8).rejected).toBe('INSUFFICIENT_MARGIN');
  });

  it('lets reduce-only orders only close the position, and cancels those a trade leaves oversized', () => {
    const ex = new Exchange(8 * HOUR);
    open(ex);
    ex.apply({ op: 'deposit', ts: 1, account: 'mm', asset: 'USDT', amount: '1000000' });
    ex.apply({ op: 'deposit', ts: 1, account: 'r', asset: 'USDT', amount: '1000' });
    order(ex, { account: 'mm', side: 'sell', qty: 100_000 }, 2);
    order(ex, { account: 'r', side: 'buy', qty: 100_000 }, 3);
    expect(order(ex, { account: 'r', side: 'sell', price: 6_100_000, qty: 100_000, reduceOnly: true }, 4).result).toMatchObject({ status: 'open' });
    expect(order(ex, { account: 'r', side: 'sell', price: 6_100_000, qty: 100_000, reduceOnly: true }, 5).rejected).toBe('REDUCE_ONLY_WOULD_INCREASE');
    const resting = [...ex.account('r').openOrders];
    // The position is closed by another order: the resting reduce-only sell must go.
    order(ex, { account: 'mm', side: 'buy', price: 6_000_000, qty: 100_000 }, 6);
    order(ex, { account: 'r', side: 'sell', type: 'market', price: undefined, qty: 100_000 }, 7);
    expect(ex.account('r').positions.get('BTCUSDT')?.qty).toBe(0);
    expect(ex.orders.get(resting[0] as string)?.status).toBe('canceled');
    expect(ex.account('r').openOrders.size).toBe(0);
  });

  it("stops an isolated position's losses at its margin; the fund takes the rest", () => {
    const ex = new Exchange(8 * HOUR);
    open(ex);
    ex.apply({ op: 'deposit', ts: 1, account: 'mm', asset: 'USDT', amount: '1000000' });
    ex.apply({ op: 'deposit', ts: 1, account: 'i', asset: 'USDT', amount: '10000' });
    order(ex, { account: 'mm', side: 'sell', qty: 1_000_000 }, 2);
    order(ex, { account: 'i', side: 'buy', qty: 1_000_000, marginMode: 'isolated' }, 3);
    const margin = ex.account('i').positions.get('BTCUSDT')?.isolatedMargin ?? 0n;
    const balanceAfterOpen = ex.account('i').balances.USDT;
    expect(margin).toBe(300_000_000_000n);
    ex.apply({ op: 'marks', ts: 4, step: 1, prices: { BTCUSDT: 5_000_000 } });
    expect(ex.belowMaintenance('i').isolated).toEqual(['BTCUSDT']);
    ex.apply({ op: 'liquidate', ts: 5, account: 'i', symbol: 'BTCUSDT' });
    expect(ex.account('i').balances.USDT).toBe(balanceAfterOpen);
    expect(ex.ledgerImbalance()).toEqual({ USDT: 0n, USDC: 0n });
  });

  describe.each([11, 22, 33, 44])('seeded random flow (seed %i)', (seed) => {
    it('conserves collateral + fees + insurance to the unit, nets funding, keeps open interest flat, leaves nobody below maintenance', () => {
      const r = rng(seed);
      const ex = new Exchange(HOUR);
      open(ex);
      const accounts = Array.from({ length: 40 }, (_, i) => `acct-${i}`);
      let ts = 10;
      for (const a of accounts) {
        ex.apply({ op: 'deposit', ts, account: a, asset: r() < 0.5 ? 'USDT' : 'USDC', amount: String(2_000 + Math.floor(r() * 50_000)) });
      }
      let step = 0;
      let lastInterval = Math.floor(ts / HOUR);
      const liquidateAll = (): void => {
        for (const a of accounts) {
          const below = ex.belowMaintenance(a);
          if (below.cross) ex.apply({ op: 'liquidate', ts, account: a, symbol: null });
          for (const s of ex.belowMaintenance(a).isolated) ex.apply({ op: 'liquidate', ts, account: a, symbol: s });
        }
      };
      for (let i = 0; i < 3_000; i++) {
        ts += 1_000 + Math.floor(r() * 20_000);
        const roll = r();
        if (roll < 0.08) {
          step++;
          const prices: Partial<Record<Symbol, number>> = {};
          for (const s of SYMBOLS) prices[s] = nextPrice(seed, s, step, ex.mark(s), 150);
          ex.apply({ op: 'marks', ts, step, prices });
          const interval = Math.floor(ts / HOUR);
          if (interval > lastInterval) {
            for (const s of SYMBOLS) {
              const start = (interval - 1) * HOUR;
              ex.apply({ op: 'funding', ts, symbol: s, intervalStart: start, rate: fmtRate(fundingRate(seed, s, start)), markPrice: ex.mark(s) });
            }
            lastInterval = interval;
          }
          liquidateAll();
        } else if (roll < 0.18) {
          const a = accounts[Math.floor(r() * accounts.length)] as string;
          const open = [...ex.account(a).openOrders];
          if (open.length) ex.apply({ op: 'cancel', ts, id: open[Math.floor(r() * open.length)] as string });
        } else {
          const symbol = SYMBOLS[Math.floor(r() * SYMBOLS.length)] as Symbol;
          const inst = INSTRUMENTS[symbol];
          const mark = ex.mark(symbol);
          const side = r() < 0.5 ? 'buy' : 'sell';
          const offsetTicks = Math.floor(r() * 40) - 20;
          const price = Math.max(inst.tickSize, Math.round(mark / inst.tickSize) * inst.tickSize + offsetTicks * inst.tickSize);
          const lots = 1 + Math.floor(r() * 20);
          const market = r() < 0.1;
          const account = accounts[Math.floor(r() * accounts.length)] as string;
          const pos = ex.account(account).positions.get(symbol);
          const reduceOnly = !!pos && pos.qty !== 0 && r() < 0.05;
          order(
            ex,
            {
              account,
              symbol,
              side: reduceOnly ? ((pos?.qty ?? 0) > 0 ? 'sell' : 'buy') : side,
              type: market ? 'market' : 'limit',
              price: market ? undefined : price,
              qty: reduceOnly ? Math.min(Math.abs(pos?.qty ?? 0), lots * inst.lotSize) : lots * inst.lotSize,
              tif: market ? 'IOC' : r() < 0.1 ? 'IOC' : 'GTC',
              marginMode: pos && pos.qty !== 0 ? pos.mode : r() < 0.15 ? 'isolated' : 'cross',
              reduceOnly,
            },
            ts,
          );
        }
        expect(ex.ledgerImbalance()).toEqual({ USDT: 0n, USDC: 0n });
      }
      liquidateAll();
      for (const s of SYMBOLS) expect(ex.openInterestImbalance(s)).toBe(0);
      expect(ex.funding.size).toBeGreaterThan(0);
      for (const f of ex.funding.values()) expect(f.received).toBe(f.paid);
      // The incremental reserved margin of open orders equals a recount from scratch.
      for (const a of accounts) {
        let recount = 0n;
        for (const id of ex.account(a).openOrders) {
          const o = ex.orders.get(id);
          if (o && !o.reduceOnly) recount += bpsOf(notional(o.price, o.qty - o.filled), INSTRUMENTS[o.symbol].initialMarginBps);
        }
        expect(ex.account(a).orderMargin).toBe(recount);
        const reduceOnly = [...ex.account(a).openOrders].filter((id) => ex.orders.get(id)?.reduceOnly).sort();
        expect([...ex.account(a).reduceOnlyOrders].sort()).toEqual(reduceOnly);
      }
      for (const a of accounts) {
        const below = ex.belowMaintenance(a);
        expect(below.cross, a).toBe(false);
        expect(below.isolated, a).toEqual([]);
      }
      // The flow really traded: fees were charged and positions exist.
      expect(ex.account(FEES).balances.USDT + ex.account(FEES).balances.USDC > 0n).toBe(true);
    });
  });

  it('round-trips its state through the snapshot format byte for byte', () => {
    const r = rng(7);
    const ex = new Exchange(HOUR);
    open(ex);
    let ts = 100;
    for (let i = 0; i < 10; i++) ex.apply({ op: 'deposit', ts, account: `u${i}`, asset: 'USDT', amount: '50000' });
    for (let i = 0; i < 500; i++) {
      ts += 10;
      order(
        ex,
        {
          account: `u${Math.floor(r() * 10)}`,
          side: r() < 0.5 ? 'buy' : 'sell',
          price: 6_000_000 + (Math.floor(r() * 20) - 10) * 10,
          qty: (1 + Math.floor(r() * 5)) * 1_000,
          marginMode: 'cross',
        },
        ts,
      );
    }
    const render = (e: Exchange): string => [JSON.stringify(snapshotHeader(e, 42, {})), ...[...snapshotRecords(e)].map((x) => JSON.stringify(x))].join('\n');
    const before = render(ex);
    const header = snapshotHeader(ex, 42, {});
    const loader = new SnapshotLoader(header, HOUR);
    for (const rec of snapshotRecords(ex)) loader.add(rec);
    const restored = loader.finish();
    expect(render(restored)).toBe(before);
    // And it behaves the same afterwards: the same order gives the same fills.
    const cmd: Command = {
      op: 'order',
      ts: ts + 1,
      num: ex.nextOrderNum,
      req: {
        account: 'u1',
        symbol: 'BTCUSDT',
        side: 'buy',
        type: 'market',
        price: null,
        qty: 20_000,
        tif: 'IOC',
        postOnly: false,
        reduceOnly: false,
        marginMode: 'cross',
        clientOrderId: null,
      },
    };
    expect(restored.apply(cmd)).toEqual(ex.apply(cmd));
    expect(render(restored)).toBe(render(ex));
  });
});

describe('funding rounds against the payer, and what is paid is received', () => {
  it('each payer pays mark x size x rate rounded up; receivers get theirs rounded down plus the residue, to the unit', () => {
    const ex = new Exchange(8 * HOUR);
    open(ex);
    for (const a of ['long1', 'long2', 'long3', 'short']) ex.apply({ op: 'deposit', ts: 2, account: a, asset: 'USDT', amount: '100000' });
    // Three longs of 0.001, 0.002, 0.004 BTC against one short of 0.007, all at 60000.
    for (const [acct, qty] of [
      ['long1', 1_000],
      ['long2', 2_000],
      ['long3', 4_000],
    ] as const) {
      order(ex, { account: 'short', side: 'sell', qty }, 3);
      order(ex, { account: acct, side: 'buy', qty }, 4);
    }
    const before = Object.fromEntries(['long1', 'long2', 'long3', 'short'].map((a) => [a, ex.account(a).balances.USDT]));
    // rate 0.00012345 (12345 units of 1e-8): the exact amounts have fractions of the money unit.
    const mark = 6_000_000;
    ex.apply({ op: 'funding', ts: 5, symbol: 'BTCUSDT', intervalStart: 0, rate: '0.00012345', markPrice: mark });
    const exact = (qty: number) => notional(mark, qty) * 12_345n; // units of 1e-8 of the money unit
    const ceil = (x: bigint) => (x + 99_999_999n) / 100_000_000n;
    const paidBy = (a: string) => (before[a] as bigint) - ex.account(a).balances.USDT;
    expect(paidBy('long1')).toBe(ceil(exact(1_000)));
    expect(paidBy('long2')).toBe(ceil(exact(2_000)));
    expect(paidBy('long3')).toBe(ceil(exact(4_000)));
    const received = -paidBy('short');
    expect(received).toBeGreaterThanOrEqual(exact(7_000) / 100_000_000n);
    const f = [...ex.funding.values()][0];
    expect(f?.paid).toBe(f?.received);
    expect(f?.paid).toBe(paidBy('long1') + paidBy('long2') + paidBy('long3'));
    expect(ex.ledgerImbalance()).toEqual({ USDT: 0n, USDC: 0n });
  });
});
