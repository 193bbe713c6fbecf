import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { notifyStep, notifyWith } from '../../src/steps/notify.js';
import { systemClock } from '../../src/util/clock.js';
import { tempDir } from '../support/cli.js';
import { stepContext } from '../support/fakes.js';

interface Received {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: unknown;
}
interface Reply {
  status: number;
  body?: string;
  headers?: Record<string, string>;
}

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
});

/** A receiver on an ephemeral 127.0.0.1 port answering from `replies` (the last one repeated), recording each request. */
async function receiver(replies: Reply[]): Promise<{ base: string; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      received.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: text ? JSON.parse(text) : undefined });
      const reply = replies[Math.min(received.length - 1, replies.length - 1)] as Reply;
      res.writeHead(reply.status, { 'content-type': 'text/plain', ...reply.headers });
      res.end(reply.body ?? '');
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received };
}

/** A real context: real fetch, real clock, a real run folder. */
function realContext(runDir = tempDir()) {
  return stepContext({ fetch: globalThis.fetch, clock: systemClock, runDir, runId: 'run-7', playbookName: 'um-excess', stepId: 'page' });
}

const ROUTING_KEY = 'R0UT1NGKEY0000000000000000000007';

describe('notify against local receivers (real HTTP)', () => {
  it('Slack receives text and blocks with run, playbook, step and status', async () => {
    const slack = await receiver([{ status: 200, body: 'ok' }]);
    const w = notifyWith.parse({ channel: 'slack', url: `${slack.base}/services/T1/B2/secretpath`, message: 'trading resumed', status: 'resolved' });
    const r = await notifyStep.run(w, realContext());
    expect(r).toMatchObject({ ok: true, outputs: { channel: 'slack', status: 200, attempts: 1, alreadySent: false } });
    expect(slack.received).toHaveLength(1);
    const got = slack.received[0] as Received;
    expect(got.method).toBe('POST');
    expect(got.path).toBe('/services/T1/B2/secretpath');
    expect(got.headers['content-type']).toBe('application/json');
    expect(got.body).toEqual({
      text: 'trading resumed',
      blocks: [
        { type: 'section', text: { type: 'mrkdwn', text: '*recoverctl: um-excess* (resolved)\ntrading resumed' } },
        { type: 'context', elements: [{ type: 'mrkdwn', text: 'run `run-7` · playbook `um-excess` · step `page` · status `resolved`' }] },
      ],
    });
  });

  it('PagerDuty receives a trigger event, and a 429 is retried once before its 202', async () => {
    const pd = await receiver([
      { status: 429, body: '{"status":"throttle event"}' },
      { status: 202, body: '{"status":"success","message":"Event processed","dedup_key":"run-7"}', headers: { 'content-type': 'application/json' } },
    ]);
    const w = notifyWith.parse({
      channel: 'pagerduty',
      url: `${pd.base}/v2/enqueue`,
      routingKey: ROUTING_KEY,
      message: 'futures engine halted',
      component: 'engine',
    });
    const ctx = realContext();
    const r = await notifyStep.run(w, ctx);
    expect(r).toMatchObject({ ok: true, outputs: { channel: 'pagerduty', status: 202, attempts: 2, action: 'trigger', dedupKey: 'run-7' } });
    expect(pd.received).toHaveLength(2);
    expect(pd.received.map((q) => q.path)).toEqual(['/v2/enqueue', '/v2/enqueue']);
    const body = pd.received[1]?.body as { payload: { timestamp: string } };
    expect(body).toEqual({
      routing_key: ROUTING_KEY,
      event_action: 'trigger',
      dedup_key: 'run-7',
      payload: {
        summary: 'futures engine halted',
        source: 'recoverctl/um-excess',
        severity: 'critical',
        timestamp: body.payload.timestamp,
        component: 'engine',
        custom_details: { run: 'run-7', playbook: 'um-excess', step: 'page' },
      },
    });
    expect(Number.isNaN(Date.parse(body.payload.timestamp))).toBe(false);
    expect(pd.received[0]?.body).toEqual(body);
    expect(JSON.stringify([r, ctx.progressLog])).not.toContain(ROUTING_KEY);
  });

  it('PagerDuty resolve sends the run id as dedup key and no payload', async () => {
    const pd = await receiver([{ status: 202, body: '{"status":"success","dedup_key":"run-7"}' }]);
    const w = notifyWith.parse({ channel: 'pagerduty', url: `${pd.base}/v2/enqueue`, routingKey: ROUTING_KEY, action: 'resolve', message: 'resumed' });
    expect(await notifyStep.run(w, realContext())).toMatchObject({ ok: true, outputs: { action: 'resolve' } });
    expect(pd.received[0]?.body).toEqual({ routing_key: ROUTING_KEY, event_action: 'resolve', dedup_key: 'run-7' });
  });

  it('Teams receives an Adaptive Card message', async () => {
    const teams = await receiver([{ status: 202 }]);
    const w = notifyWith.parse({ channel: 'teams', url: `${teams.base}/workflows/abc/triggers/manual/paths/invoke?sig=s3cret`, message: 'halted' });
    expect(await notifyStep.run(w, realContext())).toMatchObject({ ok: true, outputs: { channel: 'teams', status: 202 } });
    expect(teams.received[0]?.path).toBe('/workflows/abc/triggers/manual/paths/invoke?sig=s3cret');
    expect(teams.received[0]?.body).toEqual({
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
              { type: 'TextBlock', text: 'recoverctl: um-excess', weight: 'Bolder', size: 'Medium', wrap: true },
              { type: 'TextBlock', text: 'halted', wrap: true },
              {
                type: 'FactSet',
                facts: [
                  { title: 'Run', value: 'run-7' },
                  { title: 'Playbook', value: 'um-excess' },
                  { title: 'Step', value: 'page' },
                ],
              },
            ],
          },
        },
      ],
    });
  });

  it('Teams messagecard receives the legacy MessageCard', async () => {
    const teams = await receiver([{ status: 200, body: '1' }]);
    const w = notifyWith.parse({ channel: 'teams', format: 'messagecard', url: `${teams.base}/webhookb2/x/IncomingWebhook/y/z`, message: 'halted' });
    expect(await notifyStep.run(w, realContext())).toMatchObject({ ok: true });
    expect(teams.received[0]?.body).toEqual({
      '@type': 'MessageCard',
      '@context': 'https://schema.org/extensions',
      summary: 'recoverctl: um-excess: halted',
      themeColor: '0076D7',
      title: 'recoverctl: um-excess',
      text: 'halted',
      sections: [
        {
          facts: [
            { name: 'Run', value: 'run-7' },
            { name: 'Playbook', value: 'um-excess' },
            { name: 'Step', value: 'page' },
          ],
        },
      ],
    });
  });

  it('a 400 is not retried and fails the step with the answer, the URL shown by origin only', async () => {
    const slack = await receiver([{ status: 400, body: 'invalid_blocks' }]);
    const w = notifyWith.parse({ channel: 'slack', url: `${slack.base}/services/T1/B2/secretpath`, message: 'm' });
    const r = await notifyStep.run(w, realContext());
    expect(r).toEqual({ ok: false, error: `Slack ${slack.base}/… answered 400: invalid_blocks`, outputs: { channel: 'slack', status: 400, attempts: 1 } });
    expect(slack.received).toHaveLength(1);
  });

  it('a resumed run does not send again', async () => {
    const slack = await receiver([{ status: 200, body: 'ok' }]);
    const runDir = tempDir();
    const w = notifyWith.parse({ channel: 'slack', url: `${slack.base}/services/T1/B2/secretpath`, message: 'm' });
    const first = await notifyStep.run(w, realContext(runDir));
    expect(first).toMatchObject({ ok: true, outputs: { alreadySent: false } });
    const resumed = await notifyStep.run(w, realContext(runDir));
    expect(resumed).toMatchObject({ ok: true, outputs: { channel: 'slack', alreadySent: true, sentAt: (first.ok && first.outputs.sentAt) || 'missing' } });
    expect(slack.received).toHaveLength(1);
  });
});
