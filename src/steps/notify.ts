import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { describeNotification, pagerdutyFields, slackFields, teamsFields } from './notify-channels.js';
import { notificationKey, sendNotification } from './notify-send.js';
import { defineStep, errorMessage, type StepResult } from './types.js';

export { sendNotification, type NotifyDeps, type RetryPolicy, DEFAULT_RETRY } from './notify-send.js';
export type { NotifyChannel, NotifyChannelInput } from './notify-channels.js';

const messageField = z.string().min(1).describe('what to say: one line, or a few');

export const notifyWith = z
  .discriminatedUnion('channel', [
    z.strictObject({ channel: z.literal('stdout').describe('print the message on stdout'), message: messageField }),
    z.strictObject({
      channel: z.literal('file').describe('append a line to a file'),
      message: messageField,
      path: z.string().min(1).describe('file to append to, relative to the playbook'),
    }),
    z.strictObject({
      channel: z.literal('webhook').describe('POST a fixed JSON shape to any receiver'),
      message: messageField,
      url: z.string().min(1).describe('receives a JSON POST {run, playbook, step, message, ts}'),
    }),
    z.strictObject({
      channel: z.literal('slack').describe('a Slack incoming webhook: text and blocks'),
      message: messageField.describe('the Slack message (mrkdwn; `<`, `>` and `&` are escaped, so no mentions or links)'),
      ...slackFields,
    }),
    z.strictObject({
      channel: z.literal('pagerduty').describe('a PagerDuty Events API v2 event'),
      message: messageField.describe('trigger: the alert summary, cut at 1024 characters; acknowledge and resolve do not send it'),
      ...pagerdutyFields,
    }),
    z.strictObject({
      channel: z.literal('teams').describe('a Microsoft Teams webhook: an Adaptive Card, or a legacy MessageCard'),
      message: messageField.describe('the card text'),
      ...teamsFields,
    }),
  ])
  .meta({
    examples: [
      { channel: 'file', path: 'notifications.log', message: 'trading resumed' },
      { channel: 'slack', url: '${{ vars.slackWebhook }}', message: 'trading resumed', status: 'resolved' },
      { channel: 'pagerduty', routingKey: '${{ vars.pagerdutyKey }}', message: 'futures engine halted: recovery under way', severity: 'critical' },
      { channel: 'pagerduty', routingKey: '${{ vars.pagerdutyKey }}', action: 'resolve', message: 'trading resumed' },
      { channel: 'teams', url: '${{ vars.teamsWebhook }}', message: 'trading resumed', status: 'resolved' },
    ],
  });

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
      case 'slack':
      case 'pagerduty':
      case 'teams':
        return describeNotification(w, w.message);
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
      case 'slack':
      case 'pagerduty':
      case 'teams': {
        const { message, ...channel } = w;
        return sendNotification(channel, message, ctx);
      }
    }
  },
});
