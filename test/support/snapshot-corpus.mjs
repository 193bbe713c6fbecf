// Writes pairs of snapshots (pre-outage, now) with known, seeded discrepancies of every category, and
// broken files (truncated, reordered, checksum-broken, corrupt line). Streaming: any size, flat memory.
// Plain JavaScript so that both the tests and bench/integrity use it.
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';

const SYMBOLS = ['BTCUSDC', 'BTCUSDT', 'ETHUSDC', 'ETHUSDT'];

/** A 32-bit hash of (seed, i, k): every value is recomputable, so nothing is kept in memory. */
function h(seed, i, k) {
  let x = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(i + 1, 0xc2b2ae35) ^ Math.imul(k + 7, 0x27d4eb2f)) >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

function dec(v, decimals) {
  const neg = v < 0n;
  const s = (neg ? -v : v).toString().padStart(decimals + 1, '0');
  const frac = s.slice(s.length - decimals).replace(/0+$/, '');
  return `${neg ? '-' : ''}${s.slice(0, s.length - decimals)}${frac ? `.${frac}` : ''}`;
}

class Out {
  constructor(path) {
    this.fd = openSync(path, 'w');
    this.hash = createHash('sha256');
    this.buf = [];
    this.size = 0;
    this.records = 0;
  }
  line(obj) {
    const s = `${JSON.stringify(obj)}\n`;
    this.buf.push(s);
    this.size += s.length;
    if (this.size > 1 << 20) this.flush();
  }
  record(obj) {
    this.records++;
    this.line(obj);
  }
  flush() {
    const b = Buffer.from(this.buf.join(''));
    this.hash.update(b);
    writeSync(this.fd, b);
    this.buf = [];
    this.size = 0;
  }
  close() {
    this.flush();
    writeSync(this.fd, `${JSON.stringify({ type: 'trailer', records: this.records, sha256: this.hash.digest('hex') })}\n`);
    closeSync(this.fd);
  }
}

/** Pick `n` distinct indexes in [0, total) from the seed (deterministic, sorted). */
function pick(seed, salt, n, total, taken) {
  const out = new Set();
  let k = 0;
  while (out.size < Math.min(n, total - taken.size)) {
    const i = h(seed, k++, salt) % total;
    if (!taken.has(i)) {
      out.add(i);
      taken.add(i);
    }
  }
  return out;
}

/**
 * Write `pre` and `post` snapshots of about `records` records (accounts, funding, orders, positions).
 * `discrepancies` gives how many of each to plant in `post`: missing, unexpected, mismatch, duplicate,
 * conservation (0, 1 or 2: an imbalance planted in both files, one per asset). Returns the exact findings
 * a correct check must report (category, type, id, field).
 */
export function writeCorpus({ pre, post, records, seed = 1, discrepancies = {} }) {
  const d = { missing: 0, unexpected: 0, mismatch: 0, duplicate: 0, conservation: 0, ...discrepancies };
  const nAccounts = Math.max(4, Math.floor(records * 0.03) & ~1);
  const withPositions = Math.max(2, Math.floor((records * 0.07) / 4) & ~1);
  const nPositions = withPositions * 4;
  const nFunding = 8;
  const nOrders = Math.max(1, records - nAccounts - nPositions - nFunding - 3);
  const expected = [];
  const taken = new Set();
  const missing = pick(seed, 1, d.missing, nOrders, taken);
  const mismatch = pick(seed, 2, d.mismatch, nOrders, taken);
  const duplicate = pick(seed, 3, d.duplicate, nOrders, taken);
  const unexpected = pick(seed, 4, d.unexpected, nOrders, new Set());
  const a = new Out(pre);
  const b = new Out(post);
  const header = { type: 'header', format: 'recoverctl-snapshot/1', seq: 1000, takenAt: '2026-11-25T03:00:00.000Z', phase: 'open' };
  a.line(header);
  b.line({ ...header, seq: 1000, takenAt: '2026-11-25T03:10:00.000Z', phase: 'halted' });
  const both = (r) => {
    a.record(r);
    b.record(r);
  };

  // Positions first in the arithmetic: their costs decide what @external must hold for the ledger to balance.
  const position = (j) => {
    const acct = Math.floor(j / 4);
    const sym = SYMBOLS[j % 4];
    const pairBase = acct & ~1;
    const lots = BigInt(1 + (h(seed, pairBase, 10 + (j % 4)) % 500));
    const qty = (acct % 2 === 0 ? 1n : -1n) * lots * 1000n;
    const entry = BigInt(sym.startsWith('BTC') ? 5_000_000 + (h(seed, j, 11) % 2_000_000) : 250_000 + (h(seed, j, 11) % 100_000));
    const isolated = j % 7 === 0 ? BigInt(h(seed, j, 12) % 1_000_000) * 100n : 0n;
    return {
      id: `acct-${String(acct).padStart(8, '0')}:${sym}`,
      qty,
      entry,
      cost: qty * entry,
      isolated,
      asset: sym.slice(3),
      mode: isolated > 0n ? 'isolated' : 'cross',
    };
  };
  const balance = (i, asset) => BigInt(h(seed, i, asset === 'USDT' ? 20 : 21) % 1_000_000_000) * 1_000_000n;
  const sums = { USDT: 0n, USDC: 0n };
  for (let i = 0; i < nAccounts; i++) for (const asset of ['USDT', 'USDC']) sums[asset] += balance(i, asset);
  for (let j = 0; j < nPositions; j++) {
    const p = position(j);
    sums[p.asset] += p.isolated - p.cost;
  }
  both({ type: 'account', id: '@external', balances: { USDC: dec(-sums.USDC, 8), USDT: dec(-sums.USDT, 8) } });
  both({ type: 'account', id: '@fees', balances: { USDC: '0', USDT: '0' } });
  both({ type: 'account', id: '@insurance', balances: { USDC: '0', USDT: '0' } });
  for (let i = 0; i < nAccounts; i++) {
    const bal = { USDC: balance(i, 'USDC'), USDT: balance(i, 'USDT') };
    // A planted imbalance is in both files: no mismatch, only the ledger that does not add up.
    if (i === 0 && d.conservation >= 1) bal.USDT += 1n;
    if (i === 1 && d.conservation >= 2) bal.USDC += 1n;
    both({ type: 'account', id: `acct-${String(i).padStart(8, '0')}`, balances: { USDC: dec(bal.USDC, 8), USDT: dec(bal.USDT, 8) } });
  }
  if (d.conservation >= 1) expected.push({ category: 'conservation', type: 'asset', id: 'USDT', field: 'ledger' });
  if (d.conservation >= 2) expected.push({ category: 'conservation', type: 'asset', id: 'USDC', field: 'ledger' });
  for (let f = 0; f < nFunding; f++) {
    const sym = SYMBOLS[Math.floor(f / 2)];
    const paid = dec(BigInt(h(seed, f, 30) % 100_000_000), 8);
    both({ type: 'funding', id: `${sym}:2026-11-25T0${f % 2}:00:00.000Z`, rate: '0.0001', markPrice: '60000', paid, received: paid });
  }
  const statuses = ['open', 'partially_filled', 'filled', 'canceled'];
  for (let k = 0; k < nOrders; k++) {
    const x = h(seed, k, 40);
    const status = statuses[x % 4];
    const qty = 1 + (x % 97);
    const filled = status === 'filled' ? qty : status === 'partially_filled' ? Math.floor(qty / 2) : status === 'canceled' ? x % qty : 0;
    const id = String(2 * k + 2).padStart(12, '0');
    const rec = {
      type: 'order',
      id,
      account: `acct-${String(x % nAccounts).padStart(8, '0')}`,
      symbol: SYMBOLS[x % 4],
      side: x & 16 ? 'buy' : 'sell',
      orderType: 'limit',
      price: `${60000 + (x % 1000)}.5`,
      qty: `0.${String(qty).padStart(3, '0')}`,
      filled: `0.${String(filled).padStart(3, '0')}`,
      status,
      ts: new Date(1764036000000 + k * 7).toISOString(),
    };
    a.record(rec);
    if (missing.has(k)) expected.push({ category: 'missing', type: 'order', id });
    else if (mismatch.has(k)) {
      const other = status === 'canceled' ? 'open' : 'canceled';
      b.record({ ...rec, status: other });
      expected.push({ category: 'mismatch', type: 'order', id, field: 'status' });
    } else {
      b.record(rec);
      if (duplicate.has(k)) {
        b.record(rec);
        expected.push({ category: 'duplicate', type: 'order', id });
      }
    }
    if (unexpected.has(k)) {
      const uid = String(2 * k + 3).padStart(12, '0');
      b.record({ ...rec, id: uid });
      expected.push({ category: 'unexpected', type: 'order', id: uid });
    }
  }
  for (let j = 0; j < nPositions; j++) {
    const p = position(j);
    both({
      type: 'position',
      id: p.id,
      qty: dec(p.qty, 6),
      entryPrice: dec(p.entry, 2),
      marginMode: p.mode,
      isolatedMargin: dec(p.isolated, 8),
      cost: dec(p.cost, 8),
    });
  }
  a.close();
  b.close();
  return { records: a.records, expected };
}

/** Broken copies of a good snapshot, each with the line a reader must name. */
export function breakSnapshot(src, dest, how) {
  const text = readFileSync(src, 'utf8');
  const lines = text.split('\n');
  const mid = Math.floor(lines.length / 2);
  switch (how) {
    case 'truncated': {
      // Cut in the middle of a record line.
      const offset = lines.slice(0, mid).join('\n').length + 1 + Math.floor(lines[mid].length / 2);
      writeFileSync(dest, text.slice(0, offset));
      return { line: mid + 1, problem: /truncated/ };
    }
    case 'no-trailer':
      writeFileSync(dest, `${lines.slice(0, -2).join('\n')}\n`);
      return { line: lines.length - 1, problem: /no trailer/ };
    case 'reordered': {
      const copy = [...lines];
      [copy[mid], copy[mid + 1]] = [copy[mid + 1], copy[mid]];
      writeFileSync(dest, copy.join('\n'));
      return { line: mid + 2, problem: /out of order/ };
    }
    case 'checksum': {
      const copy = [...lines];
      copy[mid] = copy[mid].replace(/"status":"(\w+)"/, (_m, s) => `"status":"${s === 'open' ? 'filled' : 'open'}"`);
      writeFileSync(dest, copy.join('\n'));
      return { line: lines.length - 1, problem: /sha256 mismatch/ };
    }
    case 'corrupt-line': {
      const copy = [...lines];
      copy[mid] = copy[mid].slice(0, 20) + '\u0000garbage';
      writeFileSync(dest, copy.join('\n'));
      return { line: mid + 1, problem: /corrupt line/ };
    }
    default:
      throw new Error(`unknown breakage ${how}`);
  }
}
