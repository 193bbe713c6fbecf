import type { RunState } from './journal.js';
import { isPidAlive } from '../util/pid.js';

/** A run's status as `runs list` and the dashboard show it: its outcome, or whether its process still runs. */
export function runStatus(r: Pick<RunState, 'end' | 'lastStart'>): string {
  if (r.end) return r.end.outcome === 'interrupted' ? 'interrupted (resumable)' : r.end.outcome;
  return isPidAlive(r.lastStart.pid) ? 'running' : 'stopped (resumable)';
}
