/**
 * margin 1.4.2: one recalculation queued per event. Under a burst of events the queue grows past its
 * limit and the module raises EXCESS_QUEUE_DEPTH (the incident). Self-contained: loaded from a data dir.
 */
import type { MarginModule, MarginQueue } from './api.js';

export const component = 'margin';
export const version = '1.4.2';

export function create(options: { limit: number; recalc: (account: string) => void }): MarginQueue {
  let queue: string[] = [];
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
      while (done < budget && head < queue.length) {
        options.recalc(queue[head] as string);
        head++;
        done++;
      }
      if (head > 4096 && head * 2 > queue.length) {
        queue = queue.slice(head);
        head = 0;
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
  if (q.depth() !== 2 || q.drain(10) !== 2 || seen.join() !== 'a,b' || q.depth() !== 0) throw new Error('margin 1.4.2 self-test failed');
}

const module: MarginModule = { component, version, create, selfTest };
export default module;
