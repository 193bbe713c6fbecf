import type { ChalkInstance } from 'chalk';
import type { EventSink, RunEvent } from '../runner/events.js';
import { formatLine } from './lines.js';

/** Plain timestamped lines on stderr: CI logs, pipes, NO_COLOR terminals. */
export class PlainRenderer implements EventSink {
  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly c: ChalkInstance,
  ) {}
  write(e: RunEvent): void {
    const line = formatLine(e, this.c);
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
    if (first !== undefined) throw first;
  }
  async close(): Promise<void> {
    for (const s of this.sinks) await s.close?.();
  }
}
