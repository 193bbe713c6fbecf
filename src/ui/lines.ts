import type { ChalkInstance } from 'chalk';
import { formatDuration } from '../playbook/duration.js';
import type { EventOf, RunEvent, RunEventKind } from '../runner/events.js';
import type { OutputValue } from '../steps/types.js';

type LineFormat = { [K in RunEventKind]: (e: EventOf<K>, c: ChalkInstance) => string | undefined };

function gateValues(data: Record<string, OutputValue> | undefined): string {
  if (!data) return '';
  const parts = Object.entries(data).map(([k, v]) => `${k}=${String(v)}`);
  return parts.length ? ` [${parts.join(' ')}]` : '';
}

/** One human line per event, for plain output and for the spinner's persisted lines. */
export const lineFormat: LineFormat = {
  'run-start': (e, c) =>
    `${c.bold(e.resumed ? 'resuming' : 'run')} ${e.run}: ${e.playbook} (${e.steps.length} steps${e.fromStep ? `, from ${e.fromStep}` : ''})`,
  start: (e, c) => `${c.cyan('▶')} ${e.step}${e.attempt > 1 ? ` (attempt ${e.attempt})` : ''}: ${e.description}`,
  recheck: (e, c) => `${c.yellow('↻')} ${e.step}: ${e.note}`,
  progress: (e, c) => `${c.dim('…')} ${e.step}: ${e.message}${gateValues(e.data)}`,
  output: () => undefined,
  retry: (e, c) => `${c.yellow('↻')} ${e.step}: attempt ${e.attempt} failed (${e.error}); retrying in ${formatDuration(e.delayMs)}`,
  ok: (e, c) => `${c.green('✓')} ${e.step} ${c.dim(`(${formatDuration(e.durationMs)})`)}`,
  fail: (e, c) =>
    `${c.red('✗')} ${e.step} ${c.dim(`(${formatDuration(e.durationMs)})`)}: ${e.error}${e.continued ? c.yellow(' (continueOnError)') : ''}`,
  skip: (e, c) => `${c.dim('-')} ${e.step} skipped: ${e.detail}`,
  restored: (e, c) => `${e.outcome === 'failure' ? c.red('✗') : c.green('✓')} ${e.step} ${c.dim(`(${e.outcome} in an earlier attempt)`)}`,
  rollback: (e, c) => `${c.magenta('↩')} rollback: ${e.reason}`,
  'rollback-end': (e, c) =>
    e.ok ? `${c.magenta('↩')} rollback done` : `${c.red('↩')} rollback FAILED at ${e.failedSteps.join(', ')}`,
  interrupted: (e, c) => `${c.yellow('■')} interrupted by ${e.signal}${e.step ? ` during ${e.step}` : ''}; journal saved`,
  'run-end': (e, c) => {
    const colour = e.outcome === 'success' ? c.green : e.outcome === 'interrupted' ? c.yellow : c.red;
    return colour(`${e.outcome === 'success' ? '✓' : '✗'} ${e.summary}`);
  },
};

export function formatLine(e: RunEvent, c: ChalkInstance): string | undefined {
  return (lineFormat[e.event] as (e: RunEvent, c: ChalkInstance) => string | undefined)(e, c);
}
