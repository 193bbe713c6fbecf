/** The contract between the engine and a loadable `margin` module (type-only: modules import nothing). */
export interface MarginQueue {
  /** An event touched this account: its margin must be recalculated. May throw EXCESS_QUEUE_DEPTH. */
  enqueue(account: string): void;
  /** Recalculate up to `budget` queued accounts; returns how many were done. */
  drain(budget: number): number;
  depth(): number;
}

export interface MarginModule {
  component: 'margin';
  version: string;
  create(options: { limit: number; recalc: (account: string) => void }): MarginQueue;
  /** Throws when the module does not behave; the engine refuses such a module. */
  selfTest(): void;
}

export const EXCESS_QUEUE_DEPTH = 'EXCESS_QUEUE_DEPTH';
