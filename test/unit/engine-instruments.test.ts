import { describe, expect, it } from 'vitest';
import { parseFixed, PRICE_DECIMALS, QTY_DECIMALS } from '../../src/engine/fixed.js';
import { initialOf, INSTRUMENTS, instrumentViews, maintenanceOf, MAKER_FEE_BPS, SYMBOLS, TAKER_FEE_BPS } from '../../src/engine/instruments.js';

describe('GET /instruments, built from the instrument table', () => {
  it('turns every instrument’s integer units into the decimal strings of docs/engine.md', () => {
    const btc = { tickSize: '0.1', lotSize: '0.001', initialMarginRate: '0.05', maintenanceMarginRate: '0.025' };
    const eth = { tickSize: '0.01', lotSize: '0.01', initialMarginRate: '0.1', maintenanceMarginRate: '0.05' };
    const fees = { takerFeeRate: '0.0005', makerFeeRate: '0.0002', fundingRateCap: '0.0075' };
    const btcBrackets = {
      defaultLeverage: 20,
      brackets: [
        { notionalCap: '250000', maxLeverage: 20, maintenanceMarginRate: '0.025', maintenanceAmount: '0' },
        { notionalCap: '1000000', maxLeverage: 10, maintenanceMarginRate: '0.05', maintenanceAmount: '6250' },
        { notionalCap: '5000000', maxLeverage: 5, maintenanceMarginRate: '0.1', maintenanceAmount: '56250' },
        { notionalCap: null, maxLeverage: 2, maintenanceMarginRate: '0.25', maintenanceAmount: '806250' },
      ],
    };
    const ethBrackets = {
      defaultLeverage: 10,
      brackets: [
        { notionalCap: '100000', maxLeverage: 10, maintenanceMarginRate: '0.05', maintenanceAmount: '0' },
        { notionalCap: '500000', maxLeverage: 5, maintenanceMarginRate: '0.1', maintenanceAmount: '5000' },
        { notionalCap: null, maxLeverage: 2, maintenanceMarginRate: '0.25', maintenanceAmount: '80000' },
      ],
    };
    expect(instrumentViews((s) => (s === 'ETHUSDT' ? 4 * 3_600_000 : 8 * 3_600_000))).toEqual([
      { symbol: 'BTCUSDT', settleAsset: 'USDT', ...btc, ...fees, ...btcBrackets, fundingInterval: '8h' },
      { symbol: 'ETHUSDT', settleAsset: 'USDT', ...eth, ...fees, ...ethBrackets, fundingInterval: '4h' },
      { symbol: 'BTCUSDC', settleAsset: 'USDC', ...btc, ...fees, ...btcBrackets, fundingInterval: '8h' },
      { symbol: 'ETHUSDC', settleAsset: 'USDC', ...eth, ...fees, ...ethBrackets, fundingInterval: '8h' },
    ]);
  });

  it('keeps maintenance margin continuous where brackets meet, and rising with notional', () => {
    for (const inst of Object.values(INSTRUMENTS)) {
      for (const b of inst.brackets) {
        if (b.notionalCap === null) continue;
        const below = maintenanceOf(inst, b.notionalCap - 1n);
        const at = maintenanceOf(inst, b.notionalCap);
        expect(at - below >= 0n && at - below <= 1n, `${inst.symbol} at ${b.notionalCap}`).toBe(true);
      }
      // A position over the first cap is held to more than the first bracket's rate; leverage is capped by its bracket.
      const big = (inst.brackets[0]?.notionalCap as bigint) * 2n;
      expect(maintenanceOf(inst, big) > (big * BigInt(inst.maintenanceMarginBps)) / 10_000n).toBe(true);
      expect(initialOf(inst, big, inst.defaultLeverage)).toBe(big / BigInt(inst.brackets[1]?.maxLeverage as number));
    }
  });

  it('is exact: every string parses back to the integer units the exchange checks orders with', () => {
    const views = instrumentViews();
    expect(views.map((v) => v.symbol)).toEqual(SYMBOLS);
    for (const v of views) {
      const inst = INSTRUMENTS[v.symbol as keyof typeof INSTRUMENTS];
      expect(parseFixed(v.tickSize, PRICE_DECIMALS)).toBe(BigInt(inst.tickSize));
      expect(parseFixed(v.lotSize, QTY_DECIMALS)).toBe(BigInt(inst.lotSize));
      // Rates are fractions of notional: basis points over 10^4.
      expect(parseFixed(v.initialMarginRate, 4)).toBe(BigInt(inst.initialMarginBps));
      expect(parseFixed(v.maintenanceMarginRate, 4)).toBe(BigInt(inst.maintenanceMarginBps));
      expect(parseFixed(v.takerFeeRate, 4)).toBe(BigInt(TAKER_FEE_BPS));
      expect(parseFixed(v.makerFeeRate, 4)).toBe(BigInt(MAKER_FEE_BPS));
      // Strings, never numbers, for every amount and rate: nothing passes through a binary float (leverage is a count).
      for (const [k, field] of Object.entries(v)) if (k !== 'defaultLeverage' && k !== 'brackets') expect(typeof field, k).toBe('string');
    }
  });
});
