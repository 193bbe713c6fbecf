import type { Clock } from '../util/clock.js';

/** A loop that calls `tick` every `everyMs` on the clock until stopped; a tick in flight is waited for. */
export function startCadence(o: { everyMs: number; clock: Clock; tick: (n: number, signal: AbortSignal) => Promise<void> }): { stop(): Promise<void> } {
  const stopped = new AbortController();
  const loop = (async (): Promise<void> => {
    for (let n = 1; ; n++) {
      try {
        await o.clock.sleep(o.everyMs, stopped.signal);
      } catch {
        return;
      }
      await o.tick(n, stopped.signal);
    }
  })();
  return {
    stop: async () => {
      stopped.abort();
      await loop;
    },
  };
}

/** What a status update says: where the run is, how long it has taken, and how much of the RTO is left. */
export function statusText(o: {
  playbook: string;
  incident: string | null;
  step: string | null;
  /** The step is a rollback step (it has no place among the main steps). */
  rollingBack?: boolean;
  index: number;
  steps: number;
  elapsedMs: number;
  /** From detection (the engine's halt) when known, else from the run's start. */
  rtoMs: number | null;
  sinceDetectionMs: number;
  failed: boolean;
  format: (ms: number) => string;
}): string {
  const where = o.step ? (o.rollingBack ? `rollback step ${o.step}` : `step ${o.step} (${o.index}/${o.steps})`) : 'between steps';
  const state = o.failed ? 'recovery FAILING, rollback under way' : 'recovery in progress';
  const budget =
    o.rtoMs === null
      ? ''
      : o.sinceDetectionMs <= o.rtoMs
        ? `; RTO budget left ${o.format(o.rtoMs - o.sinceDetectionMs)} of ${o.format(o.rtoMs)}`
        : `; RTO of ${o.format(o.rtoMs)} BREACHED by ${o.format(o.sinceDetectionMs - o.rtoMs)}`;
  return `${o.incident ?? o.playbook}: ${state}, ${where}, ${o.format(o.elapsedMs)} elapsed${budget}`;
}
