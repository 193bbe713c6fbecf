import { resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { formatDuration } from '../util/duration.js';
import { listRuns, loadRun, resolveRunRef, type RunState } from '../runner/journal.js';
import { runStatus } from '../runner/status.js';
import type { Phase } from '../runner/events.js';
import { displayLine } from '../steps/exec.js';
import type { StepOutputs } from '../steps/types.js';
import { firstLine, hangingLines, stepLabel } from '../ui/lines.js';

function summary(r: RunState) {
  const last = r.events[r.events.length - 1];
  const durationMs = r.end?.durationMs ?? (last ? Date.parse(last.ts) - Date.parse(r.start.ts) : 0);
  return {
    run: r.runId,
    playbook: r.start.playbook,
    file: r.start.file,
    startedAt: r.start.ts,
    status: runStatus(r),
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

/** How many of an output's last lines `runs show` prints (the journal keeps its last 4 KiB). */
const SHOWN_LINES = 20;
const OUTPUT_GUTTER = '        │ ';

/** A step's outputs, one a line; `stdout` and `stderr` as their last lines, behind a gutter. */
function outputLines(outputs: StepOutputs): string[] {
  const lines: string[] = [];
  for (const [k, v] of Object.entries(outputs)) {
    if ((k === 'stdout' || k === 'stderr') && typeof v === 'string') {
      const all = v.replace(/\n+$/, '').split('\n');
      if (v.trim() === '') {
        lines.push(`      ${k}: (empty)`);
        continue;
      }
      const shown = all.slice(-SHOWN_LINES);
      lines.push(`      ${k}${shown.length < all.length ? ` (last ${shown.length} lines)` : ''}:`);
      // The child's bytes as journaled: no escape sequence of theirs reaches this terminal.
      for (const l of shown) lines.push(`${OUTPUT_GUTTER}${displayLine(l)}`.trimEnd());
    } else {
      lines.push(`      ${k}: ${JSON.stringify(v)}`);
    }
  }
  return lines;
}

export function runsShowCommand(ref: string, opts: { stateDir: string; json?: boolean }): void {
  const runId = resolveRunRef(resolve(opts.stateDir), ref);
  if (typeof runId !== 'string') throw new UsageError(runId.problem);
  const r = loadRun(resolve(opts.stateDir), runId);
  if (!r) throw new UsageError(`${runId}: no such run in ${resolve(opts.stateDir, 'runs')}`);
  const steps = r.events.filter((e) => e.event === 'ok' || e.event === 'fail' || e.event === 'skip');
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ ...summary(r), events: r.events })}\n`);
    return;
  }
  const names = new Map<string, string | null>();
  for (const e of r.events) if (e.event === 'start') names.set(`${e.phase}:${e.step}`, e.name);
  const label = (e: { step: string; phase: Phase }): string =>
    `${e.phase === 'rollback' ? 'rollback/' : ''}${stepLabel(e.step, names.get(`${e.phase}:${e.step}`))}`;
  const s = summary(r);
  const lines = [`run ${s.run}: ${s.playbook} (${s.file})`, `started ${s.startedAt}, ${s.status}, ${formatDuration(s.durationMs)}`];
  if (r.end) lines.push(`result: ${firstLine(r.end.summary)}`);
  if (r.tornAtLine) lines.push(`journal: a torn record at line ${r.tornAtLine} was ignored`);
  for (const e of steps) {
    if (e.event === 'ok') {
      lines.push(`  ✓ ${label(e)} (${formatDuration(e.durationMs)}${e.attempts > 1 ? `, ${e.attempts} attempts` : ''})`);
      lines.push(...outputLines(e.outputs));
    } else if (e.event === 'fail') {
      lines.push(`  ✗ ${label(e)} (${formatDuration(e.durationMs)}${e.attempts > 1 ? `, ${e.attempts} attempts` : ''}): ${firstLine(e.error)}`);
      // An exec step's error ends with its stderr's last lines: shown once, in the stderr block below.
      if (typeof e.outputs?.stderr !== 'string') {
        const more = hangingLines(e.error, OUTPUT_GUTTER);
        if (more) lines.push(...more.slice(1).split('\n'));
      }
      if (e.outputs) lines.push(...outputLines(e.outputs));
    } else if (e.event === 'skip') {
      lines.push(`  - ${e.phase === 'rollback' ? 'rollback/' : ''}${e.step} skipped: ${e.detail}`);
    }
  }
  const pending = r.start.steps.filter((id) => !r.finished.has(id));
  if (!r.end || r.end.outcome === 'interrupted') {
    if (pending.length) lines.push(`not finished: ${pending.join(', ')}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}
