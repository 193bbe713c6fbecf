/**
 * margin 1.4.4-candidate, the hotfix that was not: it passes its self-test but still queues one
 * recalculation per event and drains only a few per tick, so under production traffic its queue grows
 * without bound. Shipped for the bad-hotfix drill: the traffic shift must catch it and roll back.
 */
import type { MarginModule, MarginQueue } from './api.js';

export const component = 'margin';
export const version = '1.4.4';

const PER_DRAIN = 2;

export function create(options: { limit: number; recalc: (account: string) => void }): MarginQueue {
  const queue: string[] = [];
  let head = 0;
  return {
    enqueue(account: string): void {
      queue.push(account);
      const depth = queue.length - head;
      if (depth > options.limit) {
        const error = new Error(`EXCESS_QUEUE_DEPTH: margin queue depth ${depth} exceeds limit ${options.limit}`);
        (error as Error & { code: string }).code = 'EXCESS_QUEUE_DEPTH';
        throw error;
      }
    },
    drain(budget: number): number {
      let done = 0;
      while (done < Math.min(budget, PER_DRAIN) && head < queue.length) {
        options.recalc(queue[head] as string);
        head++;
        done++;
      }
      return done;
    },
    depth: () => queue.length - head,
  };
}

export function selfTest(): void {
  const seen: string[] = [];
  const q = create({ limit: 3, recalc: (a) => seen.push(a) });
  q.enqueue('a');
  q.enqueue('b');
  if (q.depth() !== 2 || q.drain(10) !== 2 || seen.join() !== 'a,b') throw new Error('margin 1.4.4 self-test failed');
}

const module: MarginModule = { component, version, create, selfTest };
export default module;
