import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { defineStep, errorMessage, type StepResult } from './types.js';

export const notifyWith = z
  .discriminatedUnion('channel', [
    z.strictObject({ channel: z.literal('stdout'), message: z.string().min(1) }),
    z.strictObject({
      channel: z.literal('file'),
      message: z.string().min(1),
      path: z.string().min(1).describe('file to append to, relative to the playbook'),
    }),
    z.strictObject({
      channel: z.literal('webhook'),
      message: z.string().min(1),
      url: z.string().min(1).describe('receives a JSON POST {run, playbook, step, message, ts}'),
    }),
  ])
  .meta({ examples: [{ channel: 'file', path: 'notifications.log', message: 'trading resumed' }] });

/** Identifies one notification so a resumed run can tell it was already sent. */
function notificationKey(runId: string, stepId: string): string {
  return `${runId}/${stepId}`;
}

export const notifyStep = defineStep({
  uses: 'notify',
  with: notifyWith,
  describe: (w) => {
    switch (w.channel) {
      case 'stdout':
        return `print "${w.message}"`;
      case 'file':
        return `append "${w.message}" to ${w.path}`;
      case 'webhook':
        return `POST "${w.message}" to ${w.url}`;
    }
  },
  async run(w, ctx): Promise<StepResult> {
    const key = notificationKey(ctx.runId, ctx.stepId);
    const sentAt = new Date(ctx.clock.now()).toISOString();
    switch (w.channel) {
      case 'stdout':
        ctx.emitResult(w.message);
        return { ok: true, outputs: { channel: 'stdout', sentAt } };
      case 'file': {
        const path = isAbsolute(w.path) ? w.path : resolve(ctx.playbookDir, w.path);
        try {
          // A resumed run must not notify twice: the key marks a line already written.
          const existing = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
            if (e.code === 'ENOENT') return '';
            throw e;
          });
          const previous = existing.split('\n').find((line) => line.split('\t')[1] === key);
          if (previous) return { ok: true, outputs: { channel: 'file', sentAt: previous.split('\t')[0] ?? sentAt, path } };
          await mkdir(dirname(path), { recursive: true });
          await appendFile(path, `${sentAt}\t${key}\t${w.message.replace(/\n/g, ' ')}\n`);
          return { ok: true, outputs: { channel: 'file', sentAt, path } };
        } catch (e) {
          return { ok: false, error: `could not write ${path}: ${errorMessage(e)}` };
        }
      }
      case 'webhook': {
        try {
          const res = await ctx.fetch(w.url, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'idempotency-key': key },
            body: JSON.stringify({ run: ctx.runId, playbook: ctx.playbookName, step: ctx.stepId, message: w.message, ts: sentAt }),
            signal: ctx.signal,
          });
          await res.arrayBuffer();
          if (res.status < 200 || res.status >= 300) {
            return { ok: false, error: `webhook ${w.url} answered ${res.status}`, outputs: { status: res.status } };
          }
          return { ok: true, outputs: { channel: 'webhook', sentAt, status: res.status } };
        } catch (e) {
          return { ok: false, error: `webhook ${w.url} failed: ${errorMessage(e)}` };
        }
      }
    }
  },
});
