/**
 * margin 1.4.3 (the hotfix): recalculations coalesce per account, so a burst of events for the same
 * accounts keeps the queue no deeper than the number of accounts. Self-contained: loaded from a data dir.
 */
import type { MarginModule, MarginQueue } from './api.js';

export const component = 'margin';
export const version = '1.4.3';

export function create(options: { limit: number; recalc: (account: string) => void }): MarginQueue {
  // A Set keeps insertion order: accounts are recalculated oldest request first, each once.
  const pending = new Set<string>();
  return {
    enqueue(account: string): void {
      pending.add(account);
      if (pending.size > options.limit) {
        const error = new Error(`EXCESS_QUEUE_DEPTH: margin queue depth ${pending.size} exceeds limit ${options.limit}`);
        (error as Error & { code: string }).code = 'EXCESS_QUEUE_DEPTH';
        throw error;
      }
    },
    drain(budget: number): number {
      let done = 0;
      for (const account of pending) {
        if (done >= budget) break;
        pending.delete(account);
        options.recalc(account);
        done++;
      }
      return done;
    },
    depth: () => pending.size,
  };
}

export function selfTest(): void {
  const seen: string[] = [];
  const q = create({ limit: 3, recalc: (a) => seen.push(a) });
  for (let i = 0; i < 100; i++) q.enqueue(i % 2 ? 'a' : 'b');
  if (q.depth() !== 2 || q.drain(10) !== 2 || seen.join() !== 'b,a' || q.depth() !== 0) throw new Error('margin 1.4.3 self-test failed');
}

const module: MarginModule = { component, version, create, selfTest };
export default module;
