import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readSnapshot } from '../snapshot/reader.js';

interface UserReport {
  account: string;
  snapshot: { seq: number; takenAt: string; phase: string };
  balances: Record<string, string>;
  orders: Record<string, unknown>[];
  positions: Record<string, unknown>[];
}

const ORDER_COLUMNS = ['id', 'symbol', 'side', 'orderType', 'price', 'qty', 'filled', 'status', 'ts'] as const;

function csvCell(v: unknown): string {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A file-name-safe account id, one-to-one: anything but [A-Za-z0-9_-] is percent-encoded. */
export function fileNameOf(account: string): string {
  return account.replace(/[^A-Za-z0-9_-]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/**
 * One report per affected account (any order or position in the snapshot): its orders with their status
 * at the snapshot, its positions and balances, as JSON and CSV. Accounts are grouped in memory.
 */
export async function writeUserReports(snapshot: string, out: string): Promise<{ accounts: number; files: number; seq: number; openOrders: number }> {
  const byAccount = new Map<string, UserReport>();
  const balances = new Map<string, Record<string, string>>();
  let header = { seq: 0, takenAt: '', phase: '' };
  // Orders resting in the book at the halt (a snapshot holds the book; filled or cancelled ones are not open).
  let openOrders = 0;
  const report = (account: string): UserReport => {
    let r = byAccount.get(account);
    if (!r) {
      r = { account, snapshot: header, balances: {}, orders: [], positions: [] };
      byAccount.set(account, r);
    }
    return r;
  };
  for await (const rec of readSnapshot(snapshot, (h) => {
    header = { seq: h.seq, takenAt: h.takenAt, phase: h.phase };
  })) {
    if (rec.type === 'account') balances.set(rec.id, rec.balances as Record<string, string>);
    else if (rec.type === 'order') {
      report(String(rec.account)).orders.push(rec);
      if (!String(rec.account).startsWith('@') && (rec.status === 'open' || rec.status === 'partially_filled')) openOrders++;
    } else if (rec.type === 'position') report(rec.id.slice(0, rec.id.lastIndexOf(':'))).positions.push(rec);
  }
  await mkdir(out, { recursive: true });
  let files = 0;
  for (const [account, r] of byAccount) {
    if (account.startsWith('@')) continue;
    r.balances = balances.get(account) ?? {};
    r.snapshot = header;
    const base = join(out, fileNameOf(account));
    await writeFile(`${base}.json`, `${JSON.stringify(r, null, 2)}\n`);
    const rows = [
      `# account ${account}, order status at snapshot seq ${header.seq} (${header.takenAt}, phase ${header.phase})`,
      `# balances ${Object.entries(r.balances)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}`,
      `kind,${ORDER_COLUMNS.join(',')}`,
      ...r.orders.map((o) => `order,${ORDER_COLUMNS.map((c) => csvCell(o[c])).join(',')}`),
      ...r.positions.map(
        (p) => `position,${csvCell(p.id)},${csvCell(String(p.id).split(':').pop())},,,${csvCell(p.entryPrice)},${csvCell(p.qty)},,${csvCell(p.marginMode)},`,
      ),
    ];
    await writeFile(`${base}.csv`, `${rows.join('\n')}\n`);
    files += 2;
  }
  return { accounts: files / 2, files, seq: header.seq, openOrders };
}
