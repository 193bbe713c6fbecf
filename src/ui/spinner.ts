import type { ChalkInstance } from 'chalk';
import type { Ora } from 'ora';
import { formatDuration } from '../util/duration.js';
import type { EventOf, EventSink, RunEvent } from '../runner/events.js';
import { columnsOf, cutToColumns, formatLine, progressText, stepLabel, StepTitles } from './lines.js';

/** Columns the spinner's frame and its space take, plus one so the line never reaches the last column. */
const FRAME_COLUMNS = 3;

/** A piece of the spinner line and how it is coloured; pieces are cut before they are coloured. */
interface Piece {
  text: string;
  style?: (s: string) => string;
}

/** Pieces cut to `columns` in all: the ones that fit whole, then as much of the next as fits. */
export function fitPieces(pieces: Piece[], columns: number): string {
  let room = columns;
  let out = '';
  for (const p of pieces) {
    if (room <= 0) break;
    const text = cutToColumns(p.text, room);
    room -= columnsOf(text);
    out += p.style ? p.style(text) : text;
    if (text !== p.text) break;
  }
  return out;
}

/**
 * The running step as the spinner shows it: who and how long, then the live values, then what the step
 * does; cut to the terminal's width, since ora would wrap a longer line and redraw it badly.
 */
export function spinnerText(
  s: { step: string; name: string | null; attempt: number; description: string; elapsedMs: number; values: string },
  columns: number,
  c: ChalkInstance,
): string {
  const dim = (t: string): string => c.dim(t);
  return fitPieces(
    [
      { text: `${stepLabel(s.step, s.name)}${s.attempt > 1 ? ` (attempt ${s.attempt})` : ''} ` },
      { text: formatDuration(s.elapsedMs), style: dim },
      ...(s.values ? [{ text: ` · ${s.values}` }] : []),
      { text: ` · ${s.description}`, style: dim },
    ],
    columns - FRAME_COLUMNS,
  );
}

/** An ora spinner on a TTY: the running step animates; finished steps persist as lines. */
export class SpinnerRenderer implements EventSink {
  private spinner: Ora | undefined;
  private readonly titles = new StepTitles();
  private startedAt = 0;
  private running: EventOf<'start'> | undefined;
  private values = '';
  private ticker: NodeJS.Timeout | undefined;

  private constructor(
    private readonly makeOra: (text: string) => Ora,
    private readonly out: NodeJS.WriteStream,
    private readonly c: ChalkInstance,
  ) {}

  static async create(out: NodeJS.WriteStream, c: ChalkInstance): Promise<SpinnerRenderer> {
    const { default: ora } = await import('ora');
    return new SpinnerRenderer((text) => ora({ text, stream: out, isEnabled: true, discardStdin: false }), out, c);
  }

  private text(): string {
    const r = this.running;
    if (!r) return '';
    return spinnerText(
      { step: r.step, name: r.name, attempt: r.attempt, description: r.description, elapsedMs: Date.now() - this.startedAt, values: this.values },
      this.out.columns || 80,
      this.c,
    );
  }

  private persist(symbol: string | undefined, line: string): void {
    if (this.spinner) {
      this.spinner.stopAndPersist({ symbol: symbol ?? ' ', text: line });
      this.spinner = undefined;
    } else {
      this.out.write(`${symbol ? `${symbol} ` : ''}${line}\n`);
    }
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = undefined;
  }

  /** Stop animating (before a prompt takes the terminal). */
  pause(): void {
    this.spinner?.stop();
  }

  resume(): void {
    this.spinner?.start(this.text());
  }

  write(e: RunEvent): void {
    const name = this.titles.of(e);
    switch (e.event) {
      case 'start':
        if (this.spinner) this.spinner.stop();
        this.running = e;
        this.values = '';
        this.startedAt = Date.now();
        this.spinner = this.makeOra(this.text()).start();
        if (this.ticker) clearInterval(this.ticker);
        this.ticker = setInterval(() => {
          if (this.spinner) this.spinner.text = this.text();
        }, 250);
        this.ticker.unref();
        return;
      case 'progress':
        if (e.notice) {
          const line = formatLine(e, this.c, name);
          if (line !== undefined) this.persist(undefined, line);
          return;
        }
        this.values = progressText(e);
        if (this.spinner) this.spinner.text = this.text();
        return;
      case 'output':
        return;
      default: {
        const line = formatLine(e, this.c, name);
        if (line !== undefined) this.persist(undefined, line);
      }
    }
  }

  close(): void {
    if (this.ticker) clearInterval(this.ticker);
    this.spinner?.stop();
  }
}
