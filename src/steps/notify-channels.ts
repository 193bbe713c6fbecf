/**
 * The notification channels people receive (Slack, PagerDuty, Microsoft Teams): their `with` fields and the
 * exact JSON each receiver accepts, built by pure functions so the payloads can be tested without a network.
 */
import { z } from 'zod';
import { duration } from './fields.js';

export const PAGERDUTY_EVENTS_URL = 'https://events.pagerduty.com/v2/enqueue';
/** PagerDuty refuses a longer `payload.summary`. */
export const PAGERDUTY_SUMMARY_LIMIT = 1024;
/** Slack refuses a `section` text longer than this. */
export const SLACK_SECTION_LIMIT = 3000;

const status = z
  .string()
  .min(1)
  .optional()
  .describe('the state to report, e.g. `resolved`, `rolling back`, or `${{ steps.resume.outcome }}`; shown beside run, playbook and step');

export const slackFields = {
  url: z.string().min(1).describe('the Slack incoming webhook URL, a secret: pass it from a secret var; only its origin is ever printed'),
  status,
};

export const pagerdutyFields = {
  url: z.string().min(1).optional().describe(`Events API v2 endpoint, default ${PAGERDUTY_EVENTS_URL}; only its origin is ever printed`),
  routingKey: z.string().min(1).describe('the integration (routing) key of the PagerDuty service, a secret: pass it from a secret var; never printed'),
  action: z
    .enum(['trigger', 'acknowledge', 'resolve'])
    .default('trigger')
    .describe('`trigger` opens (or updates) the incident; `acknowledge` and `resolve` act on the one with the same dedup key and send no payload'),
  dedupKey: z
    .string()
    .min(1)
    .max(255)
    .optional()
    .describe('groups the events of one incident; default the run id, so a later `resolve` step of the same run closes the page'),
  severity: z.enum(['critical', 'error', 'warning', 'info']).default('critical').describe('trigger only: the urgency PagerDuty gives the alert'),
  source: z.string().min(1).optional().describe('trigger only: where the problem is, default `recoverctl/<playbook name>`'),
  component: z.string().min(1).optional().describe('trigger only: the part of the system that is affected, e.g. `matching-engine`'),
  group: z.string().min(1).optional().describe('trigger only: a logical grouping of components, e.g. `futures`'),
  class: z.string().min(1).optional().describe('trigger only: the class or type of the event, e.g. `halt`'),
  status,
};

export const teamsFields = {
  url: z
    .string()
    .min(1)
    .describe('the Teams Workflows (or legacy connector) webhook URL, a secret: pass it from a secret var; only its origin is ever printed'),
  format: z
    .enum(['adaptive', 'messagecard'])
    .default('adaptive')
    .describe('`adaptive`: an Adaptive Card for a Workflows webhook; `messagecard`: the legacy Office 365 connector MessageCard'),
  title: z.string().min(1).optional().describe('the card title, default `recoverctl: <playbook name>`'),
  themeColor: z
    .string()
    .regex(/^[0-9A-Fa-f]{6}$/, { error: 'expected a hex colour such as 0076D7 (no #)' })
    .default('0076D7')
    .describe('messagecard only: the accent colour, hex without #'),
  status,
};

export const slackChannel = z.strictObject({ channel: z.literal('slack'), ...slackFields });
export const pagerdutyChannel = z.strictObject({ channel: z.literal('pagerduty'), ...pagerdutyFields });
export const teamsChannel = z.strictObject({ channel: z.literal('teams'), ...teamsFields });

export const notifyChannel = z.discriminatedUnion('channel', [slackChannel, pagerdutyChannel, teamsChannel]);

/** Where and how to send a notification people receive: a notify step's `with` without its message, defaults applied. */
export type NotifyChannel = z.output<typeof notifyChannel>;
/** The same as written (in a playbook, or by the runner): defaults not yet applied. */
export type NotifyChannelInput = z.input<typeof notifyChannel>;
export type NotifyChannelName = NotifyChannel['channel'];

/** What every payload says about where the notification comes from. */
export interface NotificationSource {
  runId: string;
  playbookName: string;
  stepId: string;
  /** ISO 8601 time of the first attempt. */
  sentAt: string;
}

export const CHANNEL_LABEL: { [K in NotifyChannelName]: string } = { slack: 'Slack', pagerduty: 'PagerDuty', teams: 'Teams' };

/** Cut to at most `limit` characters, the last one an ellipsis, never splitting a surrogate pair. */
export function cut(text: string, limit: number): string {
  if (text.length <= limit) return text;
  let end = limit - 1;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return `${text.slice(0, end)}…`;
}

/** The URL as it may be shown: the origin only (Slack and Teams webhook paths are credentials). */
export function displayUrl(url: string): string {
  // The plan shows a value known only at run time as a placeholder (`<vars.x>`, or `***` for a secret var).
  if (/^(<[^<>\s]+>|\*\*\*)$/.test(url)) return url;
  try {
    const u = new URL(url);
    if (u.origin === 'null') return `${u.protocol}…`;
    return u.pathname === '/' && !u.search ? u.origin : `${u.origin}/…`;
  } catch {
    return '(not a URL)';
  }
}

/** The URL the channel posts to. */
export function channelUrl(channel: NotifyChannel): string {
  return channel.channel === 'pagerduty' ? (channel.url ?? PAGERDUTY_EVENTS_URL) : channel.url;
}

/** Slack mrkdwn controls: escaping them keeps a message from pinging (`<!channel>`) or linking. */
function slackEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function facts(channel: NotifyChannel, src: NotificationSource): [string, string][] {
  const list: [string, string][] = [
    ['Run', src.runId],
    ['Playbook', src.playbookName],
    ['Step', src.stepId],
  ];
  if (channel.status !== undefined) list.push(['Status', channel.status]);
  return list;
}

export function slackPayload(channel: z.output<typeof slackChannel>, message: string, src: NotificationSource): unknown {
  const head = `*recoverctl: ${slackEscape(src.playbookName)}*${channel.status === undefined ? '' : ` (${slackEscape(channel.status)})`}`;
  const context = facts(channel, src)
    .map(([k, v]) => `${k.toLowerCase()} \`${slackEscape(v)}\``)
    .join(' · ');
  return {
    text: cut(slackEscape(message), SLACK_SECTION_LIMIT),
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: cut(`${head}\n${slackEscape(message)}`, SLACK_SECTION_LIMIT) } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: cut(context, SLACK_SECTION_LIMIT) }] },
    ],
  };
}

export function pagerdutyPayload(channel: z.output<typeof pagerdutyChannel>, message: string, src: NotificationSource): unknown {
  const event = { routing_key: channel.routingKey, event_action: channel.action, dedup_key: pagerdutyDedupKey(channel, src) };
  if (channel.action !== 'trigger') return event;
  const details: Record<string, string> = { run: src.runId, playbook: src.playbookName, step: src.stepId };
  if (channel.status !== undefined) details.status = channel.status;
  return {
    ...event,
    payload: {
      summary: cut(message, PAGERDUTY_SUMMARY_LIMIT),
      source: channel.source ?? `recoverctl/${src.playbookName}`,
      severity: channel.severity,
      timestamp: src.sentAt,
      ...(channel.component === undefined ? {} : { component: channel.component }),
      ...(channel.group === undefined ? {} : { group: channel.group }),
      ...(channel.class === undefined ? {} : { class: channel.class }),
      custom_details: details,
    },
  };
}

export function pagerdutyDedupKey(channel: z.output<typeof pagerdutyChannel>, src: Pick<NotificationSource, 'runId'>): string {
  return channel.dedupKey ?? src.runId;
}

export function teamsPayload(channel: z.output<typeof teamsChannel>, message: string, src: NotificationSource): unknown {
  const title = channel.title ?? `recoverctl: ${src.playbookName}`;
  if (channel.format === 'messagecard') {
    return {
      '@type': 'MessageCard',
      '@context': 'https://schema.org/extensions',
      summary: cut(`${title}: ${message}`, 256),
      themeColor: channel.themeColor,
      title,
      text: message,
      sections: [{ facts: facts(channel, src).map(([name, value]) => ({ name, value })) }],
    };
  }
  return {
    type: 'message',
    attachments: [
      {
        contentType: 'application/vnd.microsoft.card.adaptive',
        contentUrl: null,
        content: {
          $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
          type: 'AdaptiveCard',
          version: '1.4',
          body: [
            { type: 'TextBlock', text: title, weight: 'Bolder', size: 'Medium', wrap: true },
            { type: 'TextBlock', text: message, wrap: true },
            { type: 'FactSet', facts: facts(channel, src).map(([t, value]) => ({ title: t, value })) },
          ],
        },
      },
    ],
  };
}

export function payloadFor(channel: NotifyChannel, message: string, src: NotificationSource): unknown {
  switch (channel.channel) {
    case 'slack':
      return slackPayload(channel, message, src);
    case 'pagerduty':
      return pagerdutyPayload(channel, message, src);
    case 'teams':
      return teamsPayload(channel, message, src);
  }
}

/** One plan line: never the routing key, the URL's origin only. Defaults are re-applied: the plan may pass `with` unparsed. */
export function describeNotification(channel: NotifyChannel, message: string): string {
  const to = displayUrl(channelUrl(channel));
  switch (channel.channel) {
    case 'slack':
      return `post "${message}" to Slack (${to})`;
    case 'teams':
      return `post "${message}" to Teams as ${channel.format === 'messagecard' ? 'a MessageCard' : 'an Adaptive Card'} (${to})`;
    case 'pagerduty': {
      const action = channel.action ?? 'trigger';
      const key = channel.dedupKey === undefined ? 'the run id' : `"${channel.dedupKey}"`;
      const what = action === 'trigger' ? `trigger a ${channel.severity ?? 'critical'} PagerDuty alert "${message}"` : `${action} the PagerDuty alert`;
      return `${what}, dedup key ${key} (${to})`;
    }
  }
}

/** The playbook's `comms.every`: a duration like any other in a playbook. */
const every = duration.describe('how often a status update goes out while the run lasts (scaled in rehearsal like the waits)');

/**
 * The playbook's `comms:`: a status update (current step, elapsed time, RTO budget left) on one channel at
 * a fixed cadence while the run lasts, so nobody has to remember to post one.
 */
export const commsSchema = z
  .discriminatedUnion('channel', [
    z.strictObject({ every, channel: z.literal('slack'), ...slackFields }),
    z.strictObject({ every, channel: z.literal('pagerduty'), ...pagerdutyFields }),
    z.strictObject({ every, channel: z.literal('teams'), ...teamsFields }),
  ])
  .meta({ examples: [{ every: '30m', channel: 'slack', url: '${{ vars.slackWebhook }}' }] });

export type Comms = z.output<typeof commsSchema>;
