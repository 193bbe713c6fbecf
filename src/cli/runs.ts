import { resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { formatDuration } from '../playbook/duration.js';
import { isRunId, listRuns, loadRun, type RunState } from '../runner/journal.js';
import { isPidAlive } from '../runner/lock.js';

function status(r: RunState): string {
  if (r.end) return r.end.outcome === 'interrupted' ? 'interrupted (resumable)' : r.end.outcome;
  return isPidAlive(r.lastStart.pid) ? 'running' : 'stopped (resumable)';
}

function summary(r: RunState) {
  const last = r.events[r.events.length - 1];
  const durationMs = r.end?.durationMs ?? (last ? Date.parse(last.ts) - Date.parse(r.start.ts) : 0);
  return {
    run: r.runId,
    playbook: r.start.playbook,
    file: r.start.file,
    startedAt: r.start.ts,
    status: status(r),
    stepsDone: r.finished.size,
    steps: r.start.steps.length,
    durationMs,
    tornJournalLine: r.tornAtLine ?? null,
  };
}

export function runsListCommand(opts: { stateDir: string; json?: boolean }): void {
  const runs = listRuns(resolve(opts.stateDir)).map(summary);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(runs)}\n`);
    return;
  }
  if (runs.length === 0) {
    process.stdout.write(`no runs in ${resolve(opts.stateDir)}\n`);
    return;
  }
  const w = Math.max(6, ...runs.map((r) => r.run.length));
  const p = Math.max(8, ...runs.map((r) => r.playbook.length));
  process.stdout.write(`${'RUN'.padEnd(w)}  ${'PLAYBOOK'.padEnd(p)}  ${'STARTED'.padEnd(24)}  STEPS  DURATION  STATUS\n`);
  for (const r of runs) {
    process.stdout.write(
      `${r.run.padEnd(w)}  ${r.playbook.padEnd(p)}  ${r.startedAt.padEnd(24)}  ${`${r.stepsDone}/${r.steps}`.padEnd(5)}  ${formatDuration(r.durationMs).padEnd(8)}  ${r.status}\n`,
    );
  }
}

export function runsShowCommand(runId: string, opts: { stateDir: string; json?: boolean }): void {
  if (!isRunId(runId)) throw new UsageError(`${runId}: not a run id`);
  const r = loadRun(resolve(opts.stateDir), runId);
  if (!r) throw new UsageError(`${runId}: no such run in ${resolve(opts.stateDir, 'runs')}`);
  const steps = r.events.filter(
    (e) => e.event === 'ok' || e.event === 'fail' || e.event === 'skip',
  );
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ ...summary(r), events: r.events })}\n`);
    return;
  }
  const s = summary(r);
  const lines = [
    `run ${s.run}: ${s.playbook} (${s.file})`,
    `started ${s.startedAt}, ${s.status}, ${formatDuration(s.durationMs)}`,
  ];
  if (r.end) lines.push(`result: ${r.end.summary}`);
  if (r.tornAtLine) lines.push(`journal: a torn record at line ${r.tornAtLine} was ignored`);
  for (const e of steps) {
    if (e.event === 'ok') {
      lines.push(`  ✓ ${e.phase === 'rollback' ? 'rollback/' : ''}${e.step} (${formatDuration(e.durationMs)}${e.attempts > 1 ? `, ${e.attempts} attempts` : ''})`);
      for (const [k, v] of Object.entries(e.outputs)) lines.push(`      ${k}: ${JSON.stringify(v)}`);
    } else if (e.event === 'fail') {
      lines.push(`  ✗ ${e.phase === 'rollback' ? 'rollback/' : ''}${e.step} (${formatDuration(e.durationMs)}): ${e.error}`);
    } else if (e.event === 'skip') {
      lines.push(`  - ${e.step} skipped: ${e.detail}`);
    }
  }
  const pending = r.start.steps.filter((id) => !r.finished.has(id));
  if (!r.end || r.end.outcome === 'interrupted') {
    if (pending.length) lines.push(`not finished: ${pending.join(', ')}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}
