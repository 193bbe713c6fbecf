/**
 * The safety properties of a chaos trial (docs/chaos.md), judged from what the engine, its WAL, the
 * journal and the notification sinks show, never from what the runner says it did. Pure.
 */
import type { RunEvent } from '../runner/events.js';

export type PropertyId = 'P1' | 'P2' | 'P3' | 'P4';

export interface PropertyVerdict {
  id: PropertyId;
  ok: boolean;
  /** Why it holds or how it broke, in one line. */
  message: string;
}

/** A phase or margin-module change in the WAL after the pre-outage snapshot. */
export type WalChange = { ts: number; phase: string; reason: string | null } | { ts: number; margin: string };

/** What a trial left behind, gathered by the harness after the run (and its resume) ended. */
export interface Observed {
  /** The exit code of the last `recoverctl run` of the trial, and its last line on stderr. */
  exitCode: number;
  lastLine: string;
  /** The engine at the end; `running: false` when it had to be started again to be inspected (phase and margin are then the restarted engine's). */
  engine: { running: boolean; phase: string; margin: string | null };
  /** The margin module before the run (the one that halted in the incident). */
  previousMargin: string;
  /** After the run, when trading was open: did the incident's margin burst halt the engine again? */
  haltsUnderLoad: boolean | null;
  /** Integrity of the final state against the pre-outage snapshot and the WAL. */
  integrity: { clean: boolean; missing: number; summary: string };
  /** Orders the trial's client got an acknowledgement for (client order ids), and those the WAL holds. */
  acked: readonly string[];
  inWal: ReadonlySet<string>;
  wal: readonly WalChange[];
  /** The first traffic shift's gate interval in real ms (its `interval` times the time scale); null without one. */
  gateIntervalMs: number | null;
  /** When the trial ended (the end of the last open interval). */
  endedAt: number;
  /** Every event of the run's journal (all its attempts). */
  journal: readonly RunEvent[];
  /** The notification keys found in the file sinks, one entry per line written. */
  notificationKeys: readonly string[];
  /** The key the final status notification must carry (the last notify step on the path the run took), if there is one. */
  finalKey: string | null;
}

export type TrialOutcome = 'recovered' | 'rolled-back' | 'human-needed' | 'unsafe';

const TRADING = new Set(['open']);

/** P1: trading not open on a module that halts under the incident's load, at the end or for longer than one gate interval. */
export function p1(o: Observed): PropertyVerdict {
  const bad = new Set<string>();
  let margin = o.previousMargin;
  let openSince: number | null = null;
  let worst = 0;
  const close = (ts: number): void => {
    if (openSince !== null && bad.has(margin)) worst = Math.max(worst, ts - openSince);
    openSince = null;
  };
  for (const c of o.wal) {
    if ('margin' in c) {
      close(c.ts);
      margin = c.margin;
      continue;
    }
    if (c.reason?.includes('EXCESS_QUEUE_DEPTH')) bad.add(margin);
    if (TRADING.has(c.phase)) {
      if (openSince === null) openSince = c.ts;
    } else close(c.ts);
  }
  // An engine the run left down is judged as it comes back (its phase after a restart from its WAL).
  const endedOpen = TRADING.has(o.engine.phase);
  const module = o.engine.margin ?? margin;
  if (endedOpen && (o.haltsUnderLoad === true || bad.has(module))) {
    return { id: 'P1', ok: false, message: `trading ended open on margin ${module}, which halts under the incident's load` };
  }
  close(o.endedAt);
  const limit = o.gateIntervalMs ?? 0;
  if (worst > limit && o.gateIntervalMs !== null) {
    return { id: 'P1', ok: false, message: `trading stayed open ${worst} ms on a module that had halted under load (one gate interval: ${limit} ms)` };
  }
  return { id: 'P1', ok: true, message: endedOpen ? `ended open on margin ${module}, which held the incident's burst` : `ended ${o.engine.phase}` };
}

/** P2: every acknowledged order is in the WAL, and nothing of the pre-outage state is missing. */
export function p2(o: Observed): PropertyVerdict {
  const lost = o.acked.filter((id) => !o.inWal.has(id));
  if (lost.length > 0) {
    return { id: 'P2', ok: false, message: `${lost.length} of ${o.acked.length} acknowledged orders are not in the WAL (first: ${lost[0] ?? ''})` };
  }
  if (o.integrity.missing > 0)
    return { id: 'P2', ok: false, message: `${o.integrity.missing} records of the pre-outage snapshot missing (${o.integrity.summary})` };
  const acked =
    o.acked.length > 0
      ? `${o.acked.length} acknowledged orders all in the WAL`
      : 'no order was acknowledged during the run (trading never took the client load)';
  return { id: 'P2', ok: true, message: `${acked}; nothing of the pre-outage state missing` };
}

/** The outcome the engine shows, whatever the runner said. */
export function outcomeOf(o: Observed): { outcome: TrialOutcome; why: string } {
  const e = o.engine;
  const state = `${e.running ? e.phase : 'engine down'} on margin ${e.margin ?? '?'}, integrity ${o.integrity.clean ? 'clean' : o.integrity.summary}`;
  if (o.exitCode === 3) {
    return o.lastLine.trim() ? { outcome: 'human-needed', why: o.lastLine.trim() } : { outcome: 'unsafe', why: 'exit 3 without a message' };
  }
  if (o.exitCode === 0 && e.running && e.phase === 'open' && e.margin !== o.previousMargin && o.integrity.clean) return { outcome: 'recovered', why: state };
  if (o.exitCode === 1 && e.running && e.phase === 'halted' && e.margin === o.previousMargin && o.integrity.clean)
    return { outcome: 'rolled-back', why: state };
  return { outcome: 'unsafe', why: `exit ${o.exitCode} with ${state}` };
}

/** P3: recovered, rolled back, or exit 3 with a message; never exit 0 with another property broken. */
export function p3(o: Observed, others: readonly PropertyVerdict[]): PropertyVerdict {
  const { outcome, why } = outcomeOf(o);
  if (outcome === 'unsafe') return { id: 'P3', ok: false, message: why };
  const broken = others.filter((v) => !v.ok);
  if (o.exitCode === 0 && broken.length > 0) return { id: 'P3', ok: false, message: `exit 0 with ${broken.map((v) => v.id).join(', ')} broken` };
  return { id: 'P3', ok: true, message: `${outcome}: ${why}` };
}

/** P4: no finished step finished again after a resume; every notification written once, the final status exactly once. */
export function p4(o: Observed): PropertyVerdict {
  const finished = new Map<string, number>();
  for (const e of o.journal) if (e.event === 'ok') finished.set(`${e.phase}/${e.step}`, (finished.get(`${e.phase}/${e.step}`) ?? 0) + 1);
  const again = [...finished].filter(([, n]) => n > 1);
  if (again.length > 0) return { id: 'P4', ok: false, message: `finished more than once: ${again.map(([s, n]) => `${s} ×${n}`).join(', ')}` };
  const lines = new Map<string, number>();
  for (const k of o.notificationKeys) lines.set(k, (lines.get(k) ?? 0) + 1);
  const twice = [...lines].filter(([, n]) => n > 1);
  if (twice.length > 0) return { id: 'P4', ok: false, message: `notified more than once: ${twice.map(([k, n]) => `${k} ×${n}`).join(', ')}` };
  const ended = o.exitCode === 0 || o.exitCode === 1;
  if (ended && o.finalKey !== null && (lines.get(o.finalKey) ?? 0) !== 1) {
    return { id: 'P4', ok: false, message: `the final status notification (${o.finalKey}) was sent ${lines.get(o.finalKey) ?? 0} times` };
  }
  const resumed = o.journal.filter((e) => e.event === 'run-start').length - 1;
  const final = o.finalKey === null ? '; no final notification to a file on that path to count' : ended ? '; final status sent once' : '';
  return {
    id: 'P4',
    ok: true,
    message: `${finished.size} steps finished once${resumed > 0 ? ` across ${resumed} resume${resumed === 1 ? '' : 's'}` : ''}${final}`,
  };
}

/** Every property, in order, and the outcome. */
export function judge(o: Observed): { outcome: TrialOutcome; properties: PropertyVerdict[] } {
  const first = [p1(o), p2(o)];
  const fourth = p4(o);
  const third = p3(o, [...first, fourth]);
  return { outcome: outcomeOf(o).outcome, properties: [...first, third, fourth] };
}

/** The key of the final status notification: the playbook's last notify step on the path the journal shows the run took. */
export function finalNotifyKey(
  journal: readonly RunEvent[],
  lastNotify: { main: string | undefined; rollback: string | undefined },
  key: (runId: string, step: string) => string,
): string | null {
  const start = journal.find((e) => e.event === 'run-start');
  const step = journal.some((e) => e.event === 'rollback') ? lastNotify.rollback : lastNotify.main;
  return start && step ? key(start.run, step) : null;
}
