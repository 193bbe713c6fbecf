import type { ChalkInstance } from 'chalk';
import type { Ora } from 'ora';
import { formatDuration } from '../playbook/duration.js';
import type { EventSink, RunEvent } from '../runner/events.js';
import { formatLine } from './lines.js';

/** An ora spinner on a TTY: the running step animates; finished steps persist as lines. */
export class SpinnerRenderer implements EventSink {
  private spinner: Ora | undefined;
  private startedAt = 0;
  private step = '';
  private detail = '';
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
    const elapsed = this.c.dim(formatDuration(Date.now() - this.startedAt));
    return `${this.step} ${elapsed}${this.detail ? ` ${this.detail}` : ''}`;
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
    switch (e.event) {
      case 'start':
        if (this.spinner) this.spinner.stop();
        this.step = `${e.step}${e.attempt > 1 ? ` (attempt ${e.attempt})` : ''}: ${e.description}`;
        this.detail = '';
        this.startedAt = Date.now();
        this.spinner = this.makeOra(this.text()).start();
        if (this.ticker) clearInterval(this.ticker);
        this.ticker = setInterval(() => {
          if (this.spinner) this.spinner.text = this.text();
        }, 250);
        this.ticker.unref();
        return;
      case 'progress':
        this.detail = this.c.dim(`— ${e.message}${e.data ? ` ${Object.entries(e.data).map(([k, v]) => `${k}=${String(v)}`).join(' ')}` : ''}`);
        if (this.spinner) this.spinner.text = this.text();
        return;
      case 'output':
        return;
      default: {
        const line = formatLine(e, this.c);
        if (line !== undefined) this.persist(undefined, line);
      }
    }
  }

  close(): void {
    if (this.ticker) clearInterval(this.ticker);
    this.spinner?.stop();
  }
}
