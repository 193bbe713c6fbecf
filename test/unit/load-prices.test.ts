import { describe, expect, it } from 'vitest';
import { instrumentView } from '../support/fakes.js';
import type { InstrumentView } from '../../src/contract/control-api.js';
import { InternalError } from '../../src/errors.js';
import { LoadGenerator, priceGrid, priceOf, ticksOf } from '../../src/engine-client/load.js';

const view = instrumentView;

describe('the load generator’s price grid', () => {
  const btc = priceGrid(view('BTCUSDT', '0.1', '0.001'));
  const eth = priceGrid(view('ETHUSDT', '0.01', '0.01'));
  const nickel = priceGrid(view('XUSDT', '0.05', '1'));

  it('reads the tick in units of its own last decimal place', () => {
    expect(btc).toEqual({ scale: 1, tick: 1n, lot: '0.001' });
    expect(eth).toEqual({ scale: 2, tick: 1n, lot: '0.01' });
    expect(nickel).toEqual({ scale: 2, tick: 5n, lot: '1' });
    expect(priceGrid(view('X', '10', '1'))).toEqual({ scale: 0, tick: 10n, lot: '1' });
  });

  it('puts a mark on the nearest tick (half up), whatever its decimal places', () => {
    expect(ticksOf('60000.37', btc)).toBe(600_004n);
    expect(ticksOf('60000.34', btc)).toBe(600_003n);
    expect(ticksOf('60000.35', btc)).toBe(600_004n);
    expect(ticksOf('60000', btc)).toBe(600_000n);
    expect(ticksOf('3000.005', eth)).toBe(300_001n);
    expect(ticksOf('1.024', nickel)).toBe(20n);
    expect(ticksOf('1.025', nickel)).toBe(21n);
    expect(ticksOf('n/a', btc)).toBeNull();
    expect(ticksOf('-1', btc)).toBeNull();
  });

  it('prints prices exactly, with the tick’s decimal places (no 0.1 x 3 = 0.30000000000000004)', () => {
    expect(priceOf(600_004n + 3n, btc)).toBe('60000.7');
    expect(priceOf(300_000n - 3n, eth)).toBe('2999.97');
    expect(priceOf(300_000n, eth)).toBe('3000.00');
    expect(priceOf(3n, btc)).toBe('0.3');
    expect(priceOf(21n, nickel)).toBe('1.05');
    expect(priceOf(-2n, eth)).toBe('-0.02');
  });

  it('refuses a tick or lot that is not a positive decimal', () => {
    expect(() => priceGrid(view('X', '0', '1'))).toThrow(InternalError);
    expect(() => priceGrid(view('X', '0.1', '0.000'))).toThrow(InternalError);
    expect(() => priceGrid(view('X', '1e-1', '1'))).toThrow(InternalError);
  });

  it('refuses to trade a symbol the engine does not list', () => {
    const base = { url: 'http://127.0.0.1:1', token: 't', rate: 1, accounts: ['a'], seed: 1 };
    expect(() => new LoadGenerator({ ...base, instruments: [view('BTCUSDT', '0.1', '0.001')], symbols: ['DOGEUSDT'] })).toThrow(/DOGEUSDT/);
    expect(() => new LoadGenerator({ ...base, instruments: [] })).toThrow(InternalError);
    // A recorded flow needs no grid.
    expect(() => new LoadGenerator({ ...base, instruments: [], replay: [] })).toThrow(InternalError);
    expect(() => new LoadGenerator({ ...base, instruments: [], replay: [{ account: 'a', symbol: 'X', side: 'buy', type: 'market', qty: '1' }] })).not.toThrow();
  });
});
