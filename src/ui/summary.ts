import type { ChalkInstance } from 'chalk';
import { formatDuration } from '../util/duration.js';
import { columnsOf, cutToColumns, firstLine } from './lines.js';
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

/** The widest a title may make its column; a longer one is cut. */
const NAME_COLUMNS = 40;

const pad = (text: string, columns: number): string => text + ' '.repeat(Math.max(0, columns - columnsOf(text)));

/** The final table on stdout: every step with its title (when any step has one), outcome and duration. */
export function summaryText(r: RunRecorder, journalPath: string, c: ChalkInstance): string {
  const width = Math.max(4, ...r.steps.map((s) => s.id.length));
  const names = r.steps.map((s) => (s.name ? cutToColumns(s.name, NAME_COLUMNS) : ''));
  const nameWidth = Math.max(0, ...names.map(columnsOf));
  const row = (s: StepSummary, i: number): string => {
    const what =
      s.outcome === 'failure' || s.outcome === 'interrupted'
        ? firstLine(s.error ?? s.outcome)
        : s.outcome === 'skipped' || s.outcome === 'restored'
          ? (s.detail ?? s.outcome)
          : s.attempts > 1
            ? `after ${s.attempts} attempts`
            : '';
    const dur = s.outcome === 'success' || s.outcome === 'failure' || s.outcome === 'interrupted' ? formatDuration(s.durationMs) : '';
    const name = nameWidth > 0 ? `  ${pad(names[i] ?? '', nameWidth)}` : '';
    return `  ${mark(s, c)} ${s.id.padEnd(width)}${name}  ${dur.padStart(7)}  ${what}`.trimEnd();
  };
  const rows = r.steps.map((s, i) => ({ s, line: row(s, i) }));
  const main = rows.filter((x) => x.s.phase === 'main').map((x) => x.line);
  const rollback = rows.filter((x) => x.s.phase === 'rollback').map((x) => x.line);
  const lines = [`run ${r.runId} (${r.playbook}): ${r.outcome ?? 'unknown'} in ${formatDuration(r.durationMs)}`, ...main];
  if (rollback.length) lines.push('rollback:', ...rollback);
  lines.push(`journal: ${journalPath}`);
  return `${lines.join('\n')}\n`;
}
