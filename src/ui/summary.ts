import type { ChalkInstance } from 'chalk';
import { formatDuration } from '../playbook/duration.js';
import type { RunRecorder, StepSummary } from './recorder.js';

const mark = (s: StepSummary, c: ChalkInstance): string => {
  switch (s.outcome) {
    case 'success':
      return c.green('✓');
    case 'failure':
      return c.red('✗');
    case 'interrupted':
      return c.yellow('■');
    case 'restored':
      return c.green('✓');
    case 'skipped':
      return c.dim('-');
  }
};

/** The final table on stdout: every step with its outcome and duration. */
export function summaryText(r: RunRecorder, journalPath: string, c: ChalkInstance): string {
  const width = Math.max(4, ...r.steps.map((s) => s.id.length));
  const row = (s: StepSummary): string => {
    const what =
      s.outcome === 'failure' || s.outcome === 'interrupted'
        ? s.error ?? s.outcome
        : s.outcome === 'skipped' || s.outcome === 'restored'
          ? s.detail ?? s.outcome
          : s.attempts > 1
            ? `after ${s.attempts} attempts`
            : '';
    const dur = s.outcome === 'success' || s.outcome === 'failure' || s.outcome === 'interrupted' ? formatDuration(s.durationMs) : '';
    return `  ${mark(s, c)} ${s.id.padEnd(width)}  ${dur.padStart(7)}  ${what}`.trimEnd();
  };
  const main = r.steps.filter((s) => s.phase === 'main');
  const rollback = r.steps.filter((s) => s.phase === 'rollback');
  const lines = [`run ${r.runId} (${r.playbook}): ${r.outcome ?? 'unknown'} in ${formatDuration(r.durationMs)}`, ...main.map(row)];
  if (rollback.length) lines.push('rollback:', ...rollback.map(row));
  lines.push(`journal: ${journalPath}`);
  return `${lines.join('\n')}\n`;
}
