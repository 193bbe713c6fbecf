import type { Exchange } from './exchange.js';
import { fmtMoney, fmtPrice, fmtQty, fmtRate, formatFixed, QTY_DECIMALS } from './fixed.js';
import { ASSETS, SYMBOLS, type Symbol } from './instruments.js';

/**
 * The figures the exchange's dashboards are updated from after a recovery: traded volume, funding rates,
 * mark and index, open interest and the insurance fund, per symbol, in the Prometheus text format. The
 * values are exact decimals (never a binary float's rounding): Prometheus parses them as it likes.
 */
export class MarketFigures {
  /** Traded quantity (base units) and notional (money units) per symbol since this process started. */
  private readonly volume = new Map<Symbol, { qty: bigint; notional: bigint }>();

  fill(symbol: Symbol, price: number, qty: number): void {
    const v = this.volume.get(symbol) ?? { qty: 0n, notional: 0n };
    v.qty += BigInt(qty);
    v.notional += BigInt(price) * BigInt(qty);
    this.volume.set(symbol, v);
  }

  render(ex: Exchange): string[] {
    const perSymbol = (name: string, type: string, help: string, value: (s: Symbol) => string | null): string[] => {
      const rows = SYMBOLS.flatMap((s) => {
        const v = value(s);
        return v === null ? [] : [`${name}{symbol="${s}"} ${v}`];
      });
      return [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...rows];
    };
    const openInterest = new Map<Symbol, number>();
    for (const a of ex.accounts.values()) {
      for (const [s, p] of a.positions) if (p.qty > 0) openInterest.set(s, (openInterest.get(s) ?? 0) + p.qty);
    }
    const fund = ex.account('@insurance').balances;
    return [
      ...perSymbol('engine_traded_volume_base_total', 'counter', 'Traded quantity, base asset, since the engine started.', (s) =>
        formatFixed(this.volume.get(s)?.qty ?? 0n, QTY_DECIMALS),
      ),
      ...perSymbol('engine_traded_volume_notional_total', 'counter', 'Traded notional, settle asset, since the engine started.', (s) =>
        fmtMoney(this.volume.get(s)?.notional ?? 0n),
      ),
      ...perSymbol('engine_mark_price', 'gauge', 'Mark price.', (s) => fmtPrice(ex.mark(s))),
      ...perSymbol('engine_index_price', 'gauge', 'Index price.', (s) => fmtPrice(ex.index(s))),
      ...perSymbol('engine_funding_rate', 'gauge', 'Funding rate of the last settled interval (per interval).', (s) => {
        const r = ex.lastRates.get(s);
        return r === undefined ? null : fmtRate(r);
      }),
      ...perSymbol('engine_funding_rate_predicted', 'gauge', 'Funding rate the running interval would pay if it ended now.', (s) =>
        fmtRate(ex.predictedRate(s)),
      ),
      ...perSymbol('engine_funding_interval_seconds', 'gauge', 'Funding interval.', (s) => String(ex.intervalOf(s) / 1000)),
      ...perSymbol('engine_open_interest', 'gauge', 'Open interest: the sum of long positions, base asset.', (s) => fmtQty(openInterest.get(s) ?? 0)),
      '# HELP engine_insurance_fund_balance Insurance fund balance per asset.',
      '# TYPE engine_insurance_fund_balance gauge',
      ...ASSETS.map((a) => `engine_insurance_fund_balance{asset="${a}"} ${fmtMoney(fund[a])}`),
      '# HELP engine_insurance_deficits_total Liquidations whose cover left the insurance fund below zero.',
      '# TYPE engine_insurance_deficits_total counter',
      `engine_insurance_deficits_total ${ex.insuranceDeficits}`,
    ];
  }
}
