import type { ChalkInstance } from 'chalk';
import { formatDuration } from '../util/duration.js';
import type { EventOf, RunEvent, RunEventKind } from '../runner/events.js';
import { firstLine } from '../util/text.js';
import type { OutputValue } from '../steps/types.js';

/** `name` is the step's title (`name:` in the playbook) when the renderer knows it, else null. */
type LineFormat = { [K in RunEventKind]: (e: EventOf<K>, c: ChalkInstance, name: string | null) => string | undefined };

/** A progress line in plain output is cut here: a log line, not a dump. */
export const PROGRESS_COLUMNS = 200;
/** Lines after the first of a multi-line text (a failed command's stderr) hang under it behind this gutter. */
export const GUTTER = '    │ ';

/** A step as a human sees it: its id, and its title after a dash when it has one. */
export function stepLabel(id: string, name: string | null | undefined): string {
  return name ? `${id} — ${name}` : id;
}

export { firstLine };

/** The lines of a text after its first, each behind the gutter on a line of its own ('' when there are none). */
export function hangingLines(text: string, gutter = GUTTER): string {
  const nl = text.indexOf('\n');
  if (nl === -1) return '';
  return text
    .slice(nl + 1)
    .split('\n')
    .map((l) => `\n${gutter}${l}`.trimEnd())
    .join('');
}

/** Terminal columns a character takes: 0 for combining marks, 2 for wide (CJK, emoji), else 1. */
function columnsOfCodePoint(cp: number): number {
  if ((cp >= 0x0300 && cp <= 0x036f) || (cp >= 0x200b && cp <= 0x200f) || (cp >= 0xfe00 && cp <= 0xfe0f)) return 0;
  if (
    (cp >= 0x1100 && cp <= 0x115f) ||
    (cp >= 0x2e80 && cp <= 0xa4cf) ||
    (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x1f300 && cp <= 0x1faff) ||
    (cp >= 0x20000 && cp <= 0x3fffd)
  ) {
    return 2;
  }
  return 1;
}

/** Columns a text without escape sequences takes on a terminal. */
export function columnsOf(text: string): number {
  let n = 0;
  for (const ch of text) n += columnsOfCodePoint(ch.codePointAt(0) ?? 0);
  return n;
}

/** The text cut to at most `columns` terminal columns, with `…` where it was cut. */
export function cutToColumns(text: string, columns: number): string {
  if (columnsOf(text) <= columns) return text;
  let out = '';
  let used = 0;
  for (const ch of text) {
    const w = columnsOfCodePoint(ch.codePointAt(0) ?? 0);
    if (used + w > columns - 1) break;
    out += ch;
    used += w;
  }
  return columns > 0 ? `${out}…` : '';
}

function num(v: number): number {
  return Number.isInteger(v) || Math.abs(v) >= 100 ? Math.round(v) : Number(v.toPrecision(3));
}

/** `key value` for a value no rule below knows better. */
function plain(key: string, v: OutputValue): string {
  return `${key} ${v === null ? '–' : typeof v === 'number' ? num(v) : String(v)}`;
}

/**
 * A step's live values as short phrases, in the order the step gave them: `stage 2/4`, `25%`,
 * `p99 0.8 ms`, `bake 3s`, else `key value`. A count of breaches that is zero is not news and is left out.
 */
export function valuePhrases(data: Record<string, OutputValue>): string[] {
  const out: string[] = [];
  for (const [key, v] of Object.entries(data)) {
    if (key === 'stage' && typeof v === 'number') {
      out.push(typeof data.stages === 'number' ? `stage ${v}/${data.stages}` : `stage ${v}`);
    } else if (key === 'stages' && typeof data.stage === 'number') {
      continue;
    } else if (key === 'weight' && typeof v === 'number') {
      out.push(`${num(v)}%`);
    } else if (key === 'breaches' && v === 0) {
      continue;
    } else if (key.endsWith('LatencyMs') && key !== 'LatencyMs') {
      out.push(`${key.slice(0, -'LatencyMs'.length)} ${typeof v === 'number' ? `${num(v)} ms` : '–'}`);
    } else if (key.endsWith('Ms') && key !== 'Ms' && typeof v === 'number') {
      out.push(`${key.slice(0, -2)} ${formatDuration(v)}`);
    } else {
      out.push(plain(key, v));
    }
  }
  return out;
}

/**
 * What a progress event says: its values when it carries some (the message of such an event repeats them,
 * for the journal's readers), else its message.
 */
export function progressText(e: Pick<EventOf<'progress'>, 'message' | 'data'>): string {
  const phrases = e.data ? valuePhrases(e.data) : [];
  return phrases.length ? phrases.join(' · ') : e.message;
}

const VERDICT_MARK = { pass: '✓', fail: '✗', inconclusive: '?', error: '!' } as const;

/** `⚖ shift: stage 2/4 50%: queue-depth fail (1200 > 1000) · p99LatencyMs inconclusive (no orders)`: the gates that did not pass. */
export function measurementLine(e: EventOf<'measurement'>, c: ChalkInstance): string {
  const colour = e.verdict === 'fail' ? c.red : e.verdict === 'pass' ? c.green : c.yellow;
  const gates = e.judgements
    .filter((j) => j.verdict !== 'pass')
    .map((j) => `${j.gate} ${VERDICT_MARK[j.verdict]} ${j.verdict} (${j.detail})`)
    .join(' · ');
  return `${colour('⚖')} ${cutToColumns(`${e.step}: stage ${e.stage}/${e.stages} ${e.weight}%: ${gates}`, PROGRESS_COLUMNS)}`;
}

/** One human line per event (more only for the tail of a failure), for plain output and the spinner's persisted lines. */
export const lineFormat: LineFormat = {
  'run-start': (e, c) =>
    `${c.bold(e.resumed ? 'resuming' : 'run')} ${e.run}: ${e.playbook} (${e.steps.length} steps${e.fromStep ? `, from ${e.fromStep}` : ''})`,
  start: (e, c) => `${c.cyan('▶')} ${stepLabel(e.step, e.name)}${e.attempt > 1 ? ` (attempt ${e.attempt})` : ''}: ${e.description}`,
  recheck: (e, c) => `${c.yellow('↻')} ${e.step}: ${e.note}`,
  progress: (e, c) =>
    e.notice ? `${c.yellow('!')} ${e.step}: ${e.message}` : `${c.dim('…')} ${cutToColumns(`${e.step}: ${progressText(e)}`, PROGRESS_COLUMNS)}`,
  output: () => undefined,
  // A passing sample shows in the live values; anything else is news, one line each.
  measurement: (e, c) => (e.verdict === 'pass' ? undefined : measurementLine(e, c)),
  retry: (e, c) => `${c.yellow('↻')} ${e.step}: attempt ${e.attempt} failed (${firstLine(e.error)}); retrying in ${formatDuration(e.delayMs)}`,
  ok: (e, c, name) => `${c.green('✓')} ${stepLabel(e.step, name)} ${c.dim(`(${formatDuration(e.durationMs)})`)}`,
  fail: (e, c, name) =>
    `${c.red('✗')} ${stepLabel(e.step, name)} ${c.dim(`(${formatDuration(e.durationMs)})`)}: ${firstLine(e.error)}${e.continued ? c.yellow(' (continueOnError)') : ''}${c.dim(hangingLines(e.error))}`,
  skip: (e, c) => `${c.dim('-')} ${stepLabel(e.step, e.name)} skipped: ${e.detail}`,
  restored: (e, c) => `${e.outcome === 'failure' ? c.red('✗') : c.green('✓')} ${e.step} ${c.dim(`(${e.outcome} in an earlier attempt)`)}`,
  comms: (e, c) =>
    e.ok
      ? `${c.blue('✉')} status update sent (${e.channel}): ${firstLine(e.message)}`
      : `${c.yellow('✉')} status update (${e.channel}) failed: ${firstLine(e.error ?? '')}`,
  rollback: (e, c) => `${c.magenta('↩')} rollback: ${firstLine(e.reason)}`,
  'rollback-end': (e, c) => (e.ok ? `${c.magenta('↩')} rollback done` : `${c.red('↩')} rollback FAILED at ${e.failedSteps.join(', ')}`),
  interrupted: (e, c) => `${c.yellow('■')} interrupted by ${e.signal}${e.step ? ` during ${e.step}` : ''}; journal saved`,
  'run-end': (e, c) => {
    const colour = e.outcome === 'success' ? c.green : e.outcome === 'interrupted' ? c.yellow : c.red;
    return colour(`${e.outcome === 'success' ? '✓' : '✗'} ${firstLine(e.summary)}`);
  },
};

export function formatLine(e: RunEvent, c: ChalkInstance, name: string | null = null): string | undefined {
  return (lineFormat[e.event] as (e: RunEvent, c: ChalkInstance, name: string | null) => string | undefined)(e, c, name);
}

/** Remembers each step's title from its `start` event, for the lines that end the step. */
export class StepTitles {
  private readonly names = new Map<string, string | null>();

  /** The title of the event's step (learning it from a `start`), or null. */
  of(e: RunEvent): string | null {
    if (e.event === 'start') this.names.set(`${e.phase}:${e.step}`, e.name);
    if (e.step === null || !('phase' in e)) return null;
    return this.names.get(`${e.phase}:${e.step}`) ?? null;
  }
}
