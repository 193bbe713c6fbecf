import { describe, expect, it } from 'vitest';
import { Exchange, FEES, fundingKey, INSURANCE } from '../../src/engine/exchange.js';
import { nextPrice, rng } from '../../src/engine/feed.js';
import { fmtMoney, fmtRate, formatFixed, notional, parseFixed } from '../../src/engine/fixed.js';
import { initialOf, INSTRUMENTS, SYMBOLS, type Symbol } from '../../src/engine/instruments.js';
import { snapshotHeader, SnapshotLoader, snapshotRecords } from '../../src/engine/snapshot-codec.js';
import type { Command, OrderRequest } from '../../src/engine/types.js';

const HOUR = 3_600_000;

function open(ex: Exchange): void {
  ex.apply({ op: 'phase', ts: 1, phase: 'open', reason: null });
}

/** USDT deposits at ts 1, by account. */
function deposit(ex: Exchange, amounts: Record<string, string>): void {
  for (const [account, amount] of Object.entries(amounts)) ex.apply({ op: 'deposit', ts: 1, account, asset: 'USDT', amount });
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

  describe('liquidation goes through the book, then the insurance fund, then auto-deleveraging', () => {
    /** lev: long 1 BTC at 60000 on 3200 USDT (1 BTC sold by mm), then the index falls to `index`. */
    function underwater(index: number, bid?: number): Exchange {
      const ex = new Exchange(8 * HOUR);
      open(ex);
      deposit(ex, { lev: '3200', mm: '1000000' });
      order(ex, { account: 'mm', side: 'sell', qty: 1_000_000 }, 2);
      expect(order(ex, { account: 'lev', side: 'buy', qty: 1_000_000 }, 3).result).toMatchObject({ status: 'filled' });
      expect(ex.liquidatable('lev').cross).toBe(false);
      if (bid !== undefined) order(ex, { account: 'mm', side: 'buy', price: bid, qty: 1_000_000 }, 3);
      ex.apply({ op: 'marks', ts: 4, step: 1, prices: { BTCUSDT: index } });
      expect(ex.liquidatable('lev').cross).toBe(true);
      return ex;
    }

    it('sells into the book no lower than the bankruptcy price and pays the liquidation fee to the fund', () => {
      const ex = underwater(5_800_000, 5_790_000);
      const bp = ex.bankruptcyPrice(ex.account('lev'), 'BTCUSDT', ex.account('lev').positions.get('BTCUSDT') as never);
      expect(bp).toBeLessThan(5_790_000);
      ex.apply({ op: 'liquidate', ts: 5, account: 'lev', symbol: null });
      const [rec] = ex.liquidations;
      // The whole position sold to mm's bid at 57900; 1% of 57900 = 579 to the insurance fund.
      expect(rec).toMatchObject({
        account: 'lev',
        qty: 1_000_000,
        book: { qty: 1_000_000, notional: 5_790_000n * 1_000_000n },
        insurance: { qty: 0 },
        adl: [],
      });
      expect(fmtMoney(rec?.fee ?? 0n)).toBe('579');
      expect(fmtMoney(ex.account(INSURANCE).balances.USDT)).toBe('579');
      // 3200 − 30 taker fee − 2100 loss − 579 fee: the account keeps what is left.
      expect(fmtMoney(ex.account('lev').balances.USDT)).toBe('491');
      expect(ex.account('mm').positions.get('BTCUSDT')?.qty).toBe(0);
      expect(ex.ledgerImbalance()).toEqual({ USDT: 0n, USDC: 0n });
      expect(ex.insuranceFlows).toEqual({ fees: 57_900_000_000n, realized: 0n, funding: 0n, covered: 0n });
    });

    it('with no bid, the insurance fund takes the position over at the bankruptcy price when it can bear the loss at the mark', () => {
      const ex = underwater(5_800_000);
      const p = ex.account('lev').positions.get('BTCUSDT');
      const bp = ex.bankruptcyPrice(ex.account('lev'), 'BTCUSDT', p as never);
      ex.apply({ op: 'liquidate', ts: 5, account: 'lev', symbol: null });
      expect(ex.liquidations[0]).toMatchObject({ book: { qty: 0 }, insurance: { qty: 1_000_000 }, adl: [], fee: 0n, bankruptcyPrice: bp });
      expect(ex.account(INSURANCE).positions.get('BTCUSDT')).toMatchObject({ qty: 1_000_000, cost: BigInt(bp) * 1_000_000n });
      // Sold at the bankruptcy price (rounded up to the tick): nothing, or less than a tick's worth, is left.
      const left = ex.account('lev').balances.USDT;
      expect(left >= 0n && left < 10n * 1_000_000n).toBe(true);
      expect(ex.ledgerImbalance()).toEqual({ USDT: 0n, USDC: 0n });
    });

    it('when the fund cannot bear it, deleverages the opposite positions at the bankruptcy price; the fund never goes below zero', () => {
      // The index gaps to 50000: lev is 6830 beyond bankruptcy and the empty fund cannot take the position.
      const ex = underwater(5_000_000);
      ex.apply({ op: 'liquidate', ts: 5, account: 'lev', symbol: null });
      const rec = ex.liquidations[0];
      expect(rec).toMatchObject({ book: { qty: 0 }, insurance: { qty: 0 }, adl: [{ account: 'mm', qty: -1_000_000 }] });
      expect(rec?.bankruptcyPrice).toBeGreaterThan(ex.mark('BTCUSDT'));
      expect(ex.account('mm').positions.get('BTCUSDT')?.qty).toBe(0);
      expect(ex.account('lev').positions.get('BTCUSDT')?.qty).toBe(0);
      expect(ex.account(INSURANCE).balances.USDT >= 0n).toBe(true);
      expect(ex.insuranceDeficits).toBe(0);
      expect(ex.ledgerImbalance()).toEqual({ USDT: 0n, USDC: 0n });
      for (const s of SYMBOLS) expect(ex.openInterestImbalance(s)).toBe(0);
    });

    it('ranks auto-deleveraging by profit x leverage: the most leveraged winner goes first', () => {
      const ex = new Exchange(8 * HOUR);
      open(ex);
      deposit(ex, { lev: '3200', rich: '1000000', thin: '5000' });
      order(ex, { account: 'rich', side: 'sell', qty: 500_000 }, 2);
      order(ex, { account: 'thin', side: 'sell', qty: 500_000 }, 2);
      order(ex, { account: 'lev', side: 'buy', type: 'market', price: undefined, qty: 1_000_000, tif: 'IOC' }, 3);
      ex.apply({ op: 'marks', ts: 4, step: 1, prices: { BTCUSDT: 5_000_000 } });
      ex.apply({ op: 'liquidate', ts: 5, account: 'lev', symbol: null });
      // Same profit, but 'thin' is far more leveraged: it is deleveraged first.
      expect(ex.liquidations[0]?.adl).toEqual([
        { account: 'thin', qty: -500_000 },
        { account: 'rich', qty: -500_000 },
      ]);
      expect(ex.ledgerImbalance()).toEqual({ USDT: 0n, USDC: 0n });
    });

    it('puts a unified account in reduce-only at uniMMR 1.2 and liquidates it at 1.05, not at 1', () => {
      const ex = new Exchange(8 * HOUR);
      open(ex);
      deposit(ex, { u: '3200', mm: '1000000' });
      order(ex, { account: 'mm', side: 'sell', qty: 1_000_000 }, 2);
      order(ex, { account: 'u', side: 'buy', qty: 1_000_000 }, 3);
      // Equity 3170 at 60000; at 58510 it is 1680-ish against 1463-ish maintenance: uniMMR 1.15.
      ex.apply({ op: 'marks', ts: 4, step: 1, prices: { BTCUSDT: 5_851_000 } });
      const r = ex.riskOf(ex.account('u'));
      expect(r.band).toBe('reduce-only');
      expect(order(ex, { account: 'mm', side: 'sell', price: 5_880_000, qty: 10_000 }, 5).result).toBeDefined();
      expect(order(ex, { account: 'u', side: 'buy', price: 5_800_000, qty: 10_000 }, 6).rejected).toBe('ACCOUNT_REDUCE_ONLY');
      expect(order(ex, { account: 'u', side: 'sell', price: 5_900_000, qty: 10_000, reduceOnly: true }, 7).result).toMatchObject({ status: 'open' });
      expect(ex.liquidatable('u').cross).toBe(false);
      // At 58320 uniMMR is 1.02: Binance's band liquidates, the old rule (equity < maintenance) did not.
      ex.apply({ op: 'marks', ts: 8, step: 2, prices: { BTCUSDT: 5_832_000 } });
      const r2 = ex.riskOf(ex.account('u'));
      expect(r2.equity > r2.maintenance).toBe(true);
      expect(r2.band).toBe('liquidation');
      expect(ex.liquidatable('u').cross).toBe(true);
    });
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
    expect(ex.liquidatable('i').isolated).toEqual(['BTCUSDT']);
    ex.apply({ op: 'liquidate', ts: 5, account: 'i', symbol: 'BTCUSDT' });
    expect(ex.account('i').balances.USDT).toBe(balanceAfterOpen);
    expect(ex.ledgerImbalance()).toEqual({ USDT: 0n, USDC: 0n });
  });

  /** Across the seeded flows: liquidations that reached the book, the insurance fund and ADL. */
  const tally = { book: 0, insurance: 0, adl: 0 };
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
      let settled = 0;
      const liquidateAll = (): void => {
        for (const a of accounts) {
          const below = ex.liquidatable(a);
          if (below.cross) ex.apply({ op: 'liquidate', ts, account: a, symbol: null });
          for (const s of ex.liquidatable(a).isolated) ex.apply({ op: 'liquidate', ts, account: a, symbol: s });
        }
      };
      for (let i = 0; i < 3_000; i++) {
        ts += 1_000 + Math.floor(r() * 20_000);
        const roll = r();
        if (roll < 0.08) {
          step++;
          const prices: Partial<Record<Symbol, number>> = {};
          for (const s of SYMBOLS) prices[s] = nextPrice(seed, s, step, ex.index(s), 150);
          ex.apply({ op: 'marks', ts, step, prices });
          // Settle what the tick closed, as the runtime does: the rate, mark and holders fixed at the boundary.
          for (const { symbol: s, intervalStart } of ex.crossed) {
            const boundary = intervalStart + HOUR;
            const holders = ex.boundaryPositions.get(boundary)?.[s] ?? [];
            const rate = ex.boundaryRates.get(boundary)?.[s] as bigint;
            ex.apply({ op: 'funding', ts, symbol: s, intervalStart, rate: fmtRate(rate), markPrice: ex.boundaryMarks.get(boundary)?.[s] as number });
            const f = ex.funding.get(fundingKey(s, intervalStart));
            // Every payment goes to a position that existed at the interval's end, with that size.
            for (const p of f?.payments ?? []) expect(holders).toContainEqual([p.account, p.qty]);
            expect(f?.payments?.length).toBe(holders.length);
            settled++;
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
      expect(settled).toBe(ex.funding.size);
      // The insurance fund's balance is explained by liquidation fees, PnL and funding on what it took over, and what it covered.
      const fund = ex.account(INSURANCE).balances;
      const flows = ex.insuranceFlows;
      expect(fund.USDT + fund.USDC).toBe(flows.fees + flows.realized + flows.funding - flows.covered);
      // The flow really liquidated, through the book and beyond it.
      expect(ex.liquidations.length).toBeGreaterThan(0);
      tally.book += ex.liquidations.filter((l) => l.book.qty > 0).length;
      tally.insurance += ex.liquidations.filter((l) => l.insurance.qty !== 0).length;
      tally.adl += ex.liquidations.filter((l) => l.adl.length > 0).length;
      // The incremental reserved margin of open orders equals a recount from scratch.
      for (const a of accounts) {
        let recount = 0n;
        for (const id of ex.account(a).openOrders) {
          const o = ex.orders.get(id);
          if (o && !o.reduceOnly) recount += initialOf(INSTRUMENTS[o.symbol], notional(o.price, o.qty - o.filled), ex.leverageOf(ex.account(a), o.symbol));
        }
        expect(ex.account(a).orderMargin).toBe(recount);
        const reduceOnly = [...ex.account(a).openOrders].filter((id) => ex.orders.get(id)?.reduceOnly).sort();
        expect([...ex.account(a).reduceOnlyOrders].sort()).toEqual(reduceOnly);
      }
      for (const a of accounts) {
        const below = ex.liquidatable(a);
        expect(below.cross, a).toBe(false);
        expect(below.isolated, a).toEqual([]);
      }
      // The flow really traded: fees were charged and positions exist.
      expect(ex.account(FEES).balances.USDT + ex.account(FEES).balances.USDC > 0n).toBe(true);
    });
  });

  it('the seeded flows liquidated through the book, into the insurance fund and by auto-deleveraging', () => {
    expect(tally.book).toBeGreaterThan(0);
    expect(tally.insurance).toBeGreaterThan(0);
    expect(tally.adl).toBeGreaterThan(0);
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

describe('margin and liquidation edge cases', () => {
  const fresh = (): Exchange => {
    const ex = new Exchange(8 * HOUR);
    open(ex);
    return ex;
  };

  it('margins an isolated position built in small fills at its whole bracket, as one built at once', () => {
    const ex = fresh();
    deposit(ex, { mm: '100000000', x: '2000000' });
    for (let i = 0; i < 22; i++) {
      order(ex, { account: 'mm', side: 'sell', qty: 4_000_000 }, 2);
      order(ex, { account: 'x', side: 'buy', qty: 4_000_000, marginMode: 'isolated' }, 3);
    }
    const p = ex.account('x').positions.get('BTCUSDT');
    const inst = INSTRUMENTS.BTCUSDT;
    // Whatever was accepted holds the whole position's initial margin at its bracket, and no balance went negative.
    expect(p?.isolatedMargin).toBe(initialOf(inst, notional(6_000_000, Math.abs(p?.qty ?? 0)), inst.defaultLeverage));
    expect(ex.account('x').balances.USDT >= 0n).toBe(true);
    expect(ex.liquidatable('x').isolated).toEqual([]);
    expect(ex.ledgerImbalance()).toEqual({ USDT: 0n, USDC: 0n });
  });

  it('margins the existing cross position at the higher bracket an order pushes it into', () => {
    const ex = fresh();
    deposit(ex, { mm: '100000000', x: '16000' });
    order(ex, { account: 'mm', side: 'sell', qty: 5_000_000 }, 2);
    // 4 BTC = 240k at 20x: 12000. Adding 0.5 BTC crosses 250k into the 10x bracket: 27000 for the whole.
    expect(order(ex, { account: 'x', side: 'buy', qty: 4_000_000 }, 3).result).toMatchObject({ status: 'filled' });
    expect(order(ex, { account: 'x', side: 'buy', type: 'market', price: undefined, qty: 500_000, tif: 'IOC' }, 4).rejected).toBe('INSUFFICIENT_MARGIN');
    expect(ex.available(ex.account('x')) >= 0n).toBe(true);
  });

  it("an isolated liquidation never has the fund pay the account's other debts", () => {
    const ex = fresh();
    deposit(ex, { mm: '100000000', x: '10000' });
    order(ex, { account: 'mm', symbol: 'ETHUSDT', side: 'sell', price: 300_000, qty: 10_000_000 }, 2);
    order(ex, { account: 'x', symbol: 'ETHUSDT', price: 300_000, qty: 10_000_000 }, 3);
    ex.apply({ op: 'marks', ts: 1000, step: 1, prices: { ETHUSDT: 360_000 } });
    order(ex, { account: 'mm', side: 'sell', qty: 4_000_000 }, 4);
    order(ex, { account: 'x', qty: 4_000_000, marginMode: 'isolated' }, 5);
    const debt = ex.account('x').balances.USDT;
    expect(debt < 0n).toBe(true); // the isolated margin came out of a balance the ETH profit carries
    ex.apply({ op: 'marks', ts: 2000, step: 2, prices: { BTCUSDT: 5_750_000, ETHUSDT: 360_000 } });
    expect(ex.liquidatable('x')).toEqual({ cross: false, isolated: ['BTCUSDT'] });
    ex.apply({ op: 'liquidate', ts: 3000, account: 'x', symbol: 'BTCUSDT' });
    // The debt stays the account's own (its ETH profit still carries it), less nothing the fund paid.
    expect(ex.account('x').balances.USDT >= debt).toBe(true);
    expect(ex.insuranceFlows.covered).toBe(0n);
    expect(ex.account(INSURANCE).balances.USDT >= 0n).toBe(true);
    expect(ex.ledgerImbalance()).toEqual({ USDT: 0n, USDC: 0n });
  });

  it("funds an isolated position's funding from its own margin, not the unified balance", () => {
    const ex = fresh();
    deposit(ex, { mm: '1000000', x: '4000' });
    order(ex, { account: 'mm', side: 'sell', qty: 1_000_000 }, 2);
    expect(
      order(ex, { account: 'x', side: 'buy', type: 'market', price: undefined, qty: 1_000_000, tif: 'IOC', marginMode: 'isolated' }, 3).result,
    ).toMatchObject({ status: 'filled' });
    const before = ex.account('x').positions.get('BTCUSDT')?.isolatedMargin ?? 0n;
    const balance = ex.account('x').balances.USDT;
    ex.apply({ op: 'funding', ts: 4, symbol: 'BTCUSDT', intervalStart: 0, rate: '0.0075', markPrice: 6_000_000 });
    expect(ex.account('x').balances.USDT).toBe(balance);
    expect(fmtMoney(before - (ex.account('x').positions.get('BTCUSDT')?.isolatedMargin ?? 0n))).toBe('450');
    expect(ex.ledgerImbalance()).toEqual({ USDT: 0n, USDC: 0n });
  });

  it('while halted, a liquidation does not trade against the frozen book: the fund or ADL take it', () => {
    const ex = fresh();
    deposit(ex, { lev: '3200', mm: '1000000' });
    order(ex, { account: 'mm', side: 'sell', qty: 1_000_000 }, 2);
    order(ex, { account: 'lev', side: 'buy', qty: 1_000_000 }, 3);
    order(ex, { account: 'mm', side: 'buy', price: 5_790_000, qty: 1_000_000 }, 4);
    ex.apply({ op: 'phase', ts: 5, phase: 'halted', reason: 'drill' });
    ex.apply({ op: 'marks', ts: 6, step: 1, prices: { BTCUSDT: 5_800_000 } });
    ex.apply({ op: 'liquidate', ts: 7, account: 'lev', symbol: null });
    expect(ex.liquidations[0]).toMatchObject({ book: { qty: 0 }, insurance: { qty: 1_000_000 } });
    expect(ex.book('BTCUSDT').bestBid()).toBe(5_790_000);
  });

  it('closes a short at the mark when the account owes more than the short is worth (no bankruptcy price below zero)', () => {
    const ex = fresh();
    deposit(ex, { x: '5000', mm: '10000000' });
    order(ex, { account: 'mm', side: 'buy', qty: 10_000 }, 2);
    order(ex, { account: 'x', side: 'sell', qty: 10_000 }, 3);
    const p = { qty: -10_000, cost: -60_000_000_000n, mode: 'cross' as const, isolatedMargin: 0n };
    // An account 100000 under water against a 600 USDT short: mark − equity / qty would be negative.
    ex.account('x').balances.USDT = -100_000n * 100_000_000n;
    expect(ex.bankruptcyPrice(ex.account('x'), 'BTCUSDT', p)).toBe(ex.mark('BTCUSDT'));
  });
});
