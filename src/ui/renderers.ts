import type { ChalkInstance } from 'chalk';
import type { EventSink, RunEvent } from '../runner/events.js';
import { formatLine, StepTitles } from './lines.js';

/** Plain output shows a step's progress at most this often; the journal and `--json` keep every event. */
export const PLAIN_PROGRESS_EVERY_MS = 1_000;

/** Plain timestamped lines on stderr: CI logs, pipes, NO_COLOR terminals. */
export class PlainRenderer implements EventSink {
  private readonly titles = new StepTitles();
  /** When each running step's last progress line was printed (event time). */
  private readonly lastProgress = new Map<string, number>();

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly c: ChalkInstance,
  ) {}

  write(e: RunEvent): void {
    const name = this.titles.of(e);
    if (e.event === 'start') this.lastProgress.delete(`${e.phase}:${e.step}`);
    if (e.event === 'progress' && !e.notice) {
      const key = `${e.phase}:${e.step}`;
      const at = Date.parse(e.ts);
      const last = this.lastProgress.get(key);
      if (last !== undefined && at - last < PLAIN_PROGRESS_EVERY_MS) return;
      this.lastProgress.set(key, at);
    }
    const line = formatLine(e, this.c, name);
    if (line !== undefined) this.out.write(`${this.c.dim(e.ts)} ${line}\n`);
  }
}

/** `--json`: one event a line on stdout. */
export class JsonRenderer implements EventSink {
  constructor(private readonly out: NodeJS.WritableStream) {}
  write(e: RunEvent): void {
    this.out.write(`${JSON.stringify(e)}\n`);
  }
}

/** Results on stdout: what `notify` prints to the stdout channel. */
export class OutputRenderer implements EventSink {
  constructor(private readonly out: NodeJS.WritableStream) {}
  write(e: RunEvent): void {
    if (e.event === 'output') this.out.write(`${e.text}\n`);
  }
}

/** Sends each event to every sink; a sink that throws does not stop the others. */
export class FanOut implements EventSink {
  constructor(private readonly sinks: EventSink[]) {}
  write(e: RunEvent): void {
    let first: unknown;
    for (const s of this.sinks) {
      try {
        s.write(e);
      } catch (err) {
        first ??= err;
      }
    }
    // eslint-disable-next-line @typescript-eslint/only-throw-error -- rethrows what a sink threw, unchanged
    if (first !== undefined) throw first;
  }
  async close(): Promise<void> {
    for (const s of this.sinks) await s.close?.();
  }
}
