import { describe, expect, it } from 'vitest';
import { parseFixed, PRICE_DECIMALS, QTY_DECIMALS } from '../../src/engine/fixed.js';
import { INSTRUMENTS, instrumentViews, MAKER_FEE_BPS, SYMBOLS, TAKER_FEE_BPS } from '../../src/engine/instruments.js';

describe('GET /instruments, built from the instrument table', () => {
  it('turns every instrument’s integer units into the decimal strings of docs/engine.md', () => {
    const btc = { tickSize: '0.1', lotSize: '0.001', initialMarginRate: '0.05', maintenanceMarginRate: '0.025' };
    const eth = { tickSize: '0.01', lotSize: '0.01', initialMarginRate: '0.1', maintenanceMarginRate: '0.05' };
    const fees = { takerFeeRate: '0.0005', makerFeeRate: '0.0002' };
    expect(instrumentViews()).toEqual([
      { symbol: 'BTCUSDT', settleAsset: 'USDT', ...btc, ...fees },
      { symbol: 'ETHUSDT', settleAsset: 'USDT', ...eth, ...fees },
      { symbol: 'BTCUSDC', settleAsset: 'USDC', ...btc, ...fees },
      { symbol: 'ETHUSDC', settleAsset: 'USDC', ...eth, ...fees },
    ]);
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
      // Strings, never numbers: nothing in the answer passes through a binary float.
      for (const field of Object.values(v)) expect(typeof field).toBe('string');
    }
  });
});
