import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PAGERDUTY_EVENTS_URL } from '../../src/steps/notify-channels.js';
import { retryAfterMs, SENT_FILE } from '../../src/steps/notify-send.js';
import { notifyStep, notifyWith, sendNotification } from '../../src/steps/notify.js';
import { tempDir } from '../support/cli.js';
import { scriptedFetch, stepContext, VirtualClock } from '../support/fakes.js';

const SLACK_URL = 'https://hooks.slack.com/services/T0001/B0002/SlackSecretPath';
const TEAMS_URL = 'https://prod-01.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=TeamsSecretSig';
const ROUTING_KEY = 'R0UT1NGKEY0000000000000000000001';
const SENT_AT = '2026-01-01T00:00:00.000Z';

const parse = (v: unknown) => notifyWith.parse(v);

type Answer = Response | Error;
/** A fetch answering from a list (the last one repeated); an Error is thrown as a network failure. */
function answers(...list: (() => Answer)[]) {
  let n = 0;
  return scriptedFetch(() => {
    const a = (list[Math.min(n++, list.length - 1)] as () => Answer)();
    if (a instanceof Error) throw a;
    return a;
  });
}
const status =
  (code: number, body: string | null = null, headers: Record<string, string> = {}) =>
  () =>
    new Response(body, { status: code, headers });

/** A context on the virtual clock writing its record into a fresh run folder. */
function ctxWith(fetch: typeof globalThis.fetch, over: Parameters<typeof stepContext>[0] = {}) {
  const clock = new VirtualClock();
  const ctx = stepContext({ fetch, clock, runDir: tempDir(), stepId: 'page', playbookName: 'um-excess', ...over });
  return { ctx, clock };
}

const bodyOf = (r: { init: RequestInit | undefined } | undefined): unknown => JSON.parse(String(r?.init?.body));

describe('notify: payloads each receiver accepts', () => {
  it('slack posts text and blocks with run, playbook, step and status, escaping mentions and links', async () => {
    const { fetch, requests } = answers(status(200, 'ok'));
    const { ctx } = ctxWith(fetch);
    const r = await notifyStep.run(parse({ channel: 'slack', url: SLACK_URL, message: 'halted <!channel> & <http://x|here>', status: 'rolling back' }), ctx);
    expect(r).toEqual({ ok: true, outputs: { channel: 'slack', sentAt: SENT_AT, status: 200, attempts: 1, alreadySent: false } });
    expect(requests).toHaveLength(1);
    expect(requests[0]?.url).toBe(SLACK_URL);
    expect(requests[0]?.init?.method).toBe('POST');
    expect(requests[0]?.init?.headers).toEqual({ 'content-type': 'application/json' });
    const escaped = 'halted &lt;!channel&gt; &amp; &lt;http://x|here&gt;';
    expect(bodyOf(requests[0])).toEqual({
      text: escaped,
      blocks: [
        { type: 'section', text: { type: 'mrkdwn', text: `*recoverctl: um-excess* (rolling back)\n${escaped}` } },
        { type: 'context', elements: [{ type: 'mrkdwn', text: 'run `run-1` · playbook `um-excess` · step `page` · status `rolling back`' }] },
      ],
    });
  });

  it('pagerduty triggers with routing key, dedup key = run id and the whole payload, to the default endpoint', async () => {
    const { fetch, requests } = answers(status(202, '{"status":"success","message":"Event processed","dedup_key":"run-1"}'));
    const { ctx } = ctxWith(fetch);
    const r = await notifyStep.run(parse({ channel: 'pagerduty', routingKey: ROUTING_KEY, message: 'futures engine halted' }), ctx);
    expect(r).toEqual({
      ok: true,
      outputs: { channel: 'pagerduty', sentAt: SENT_AT, status: 202, attempts: 1, alreadySent: false, action: 'trigger', dedupKey: 'run-1' },
    });
    expect(requests[0]?.url).toBe(PAGERDUTY_EVENTS_URL);
    expect(bodyOf(requests[0])).toEqual({
      routing_key: ROUTING_KEY,
      event_action: 'trigger',
      dedup_key: 'run-1',
      payload: {
        summary: 'futures engine halted',
        source: 'recoverctl/um-excess',
        severity: 'critical',
        timestamp: SENT_AT,
        custom_details: { run: 'run-1', playbook: 'um-excess', step: 'page' },
      },
    });
  });

  it('pagerduty passes severity, source, component, group, class, status and a dedup key of its own', async () => {
    const { fetch, requests } = answers(status(202, '{}'));
    const { ctx } = ctxWith(fetch);
    const w = parse({
      channel: 'pagerduty',
      url: 'http://pd.eu.example/v2/enqueue',
      routingKey: ROUTING_KEY,
      dedupKey: 'halt-42',
      message: 'm',
      severity: 'warning',
      source: 'fx-eu-1',
      component: 'matching-engine',
      group: 'futures',
      class: 'halt',
      status: 'recovering',
    });
    const r = await notifyStep.run(w, ctx);
    expect(r).toMatchObject({ ok: true, outputs: { dedupKey: 'halt-42' } });
    expect(requests[0]?.url).toBe('http://pd.eu.example/v2/enqueue');
    expect(bodyOf(requests[0])).toEqual({
      routing_key: ROUTING_KEY,
      event_action: 'trigger',
      dedup_key: 'halt-42',
      payload: {
        summary: 'm',
        source: 'fx-eu-1',
        severity: 'warning',
        timestamp: SENT_AT,
        component: 'matching-engine',
        group: 'futures',
        class: 'halt',
        custom_details: { run: 'run-1', playbook: 'um-excess', step: 'page', status: 'recovering' },
      },
    });
  });

  it('pagerduty acknowledge and resolve send no payload, on the run id as dedup key', async () => {
    for (const action of ['acknowledge', 'resolve'] as const) {
      const { fetch, requests } = answers(status(202, '{"status":"success"}'));
      const r = await notifyStep.run(parse({ channel: 'pagerduty', routingKey: ROUTING_KEY, action, message: 'trading resumed' }), ctxWith(fetch).ctx);
      expect(r).toMatchObject({ ok: true, outputs: { action, dedupKey: 'run-1' } });
      expect(bodyOf(requests[0])).toEqual({ routing_key: ROUTING_KEY, event_action: action, dedup_key: 'run-1' });
    }
  });

  it('pagerduty cuts a summary longer than 1024 characters with an ellipsis', async () => {
    const { fetch, requests } = answers(status(202));
    await notifyStep.run(parse({ channel: 'pagerduty', routingKey: ROUTING_KEY, message: 'x'.repeat(2000) }), ctxWith(fetch).ctx);
    const summary = (bodyOf(requests[0]) as { payload: { summary: string } }).payload.summary;
    expect(summary).toHaveLength(1024);
    expect(summary).toBe(`${'x'.repeat(1023)}…`);
    const exact = answers(status(202));
    await notifyStep.run(parse({ channel: 'pagerduty', routingKey: ROUTING_KEY, message: 'y'.repeat(1024) }), ctxWith(exact.fetch).ctx);
    expect((bodyOf(exact.requests[0]) as { payload: { summary: string } }).payload.summary).toBe('y'.repeat(1024));
  });

  it('teams posts an Adaptive Card message with title, wrapped text and the facts', async () => {
    const { fetch, requests } = answers(status(202));
    const r = await notifyStep.run(parse({ channel: 'teams', url: TEAMS_URL, message: 'trading resumed', status: 'resolved' }), ctxWith(fetch).ctx);
    expect(r).toMatchObject({ ok: true, outputs: { channel: 'teams', status: 202 } });
    expect(requests[0]?.url).toBe(TEAMS_URL);
    expect(bodyOf(requests[0])).toEqual({
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
              { type: 'TextBlock', text: 'trading resumed', wrap: true },
              {
                type: 'FactSet',
                facts: [
                  { title: 'Run', value: 'run-1' },
                  { title: 'Playbook', value: 'um-excess' },
                  { title: 'Step', value: 'page' },
                  { title: 'Status', value: 'resolved' },
                ],
              },
            ],
          },
        },
      ],
    });
  });

  it('teams format messagecard posts the legacy connector MessageCard', async () => {
    const { fetch, requests } = answers(status(200, '1'));
    const w = parse({ channel: 'teams', format: 'messagecard', url: TEAMS_URL, title: 'Futures recovery', themeColor: 'D13438', message: 'halted' });
    expect(await notifyStep.run(w, ctxWith(fetch).ctx)).toMatchObject({ ok: true });
    expect(bodyOf(requests[0])).toEqual({
      '@type': 'MessageCard',
      '@context': 'https://schema.org/extensions',
      summary: 'Futures recovery: halted',
      themeColor: 'D13438',
      title: 'Futures recovery',
      text: 'halted',
      sections: [
        {
          facts: [
            { name: 'Run', value: 'run-1' },
            { name: 'Playbook', value: 'um-excess' },
            { name: 'Step', value: 'page' },
          ],
        },
      ],
    });
  });
});

describe('notify: retries', () => {
  it('retries a 429 once and succeeds on the 202, the backoff slept on the clock', async () => {
    const { fetch, requests } = answers(status(429, 'slow down'), status(202));
    const { ctx, clock } = ctxWith(fetch);
    const r = await notifyStep.run(parse({ channel: 'pagerduty', routingKey: ROUTING_KEY, message: 'm' }), ctx);
    expect(r).toMatchObject({ ok: true, outputs: { status: 202, attempts: 2 } });
    expect(requests).toHaveLength(2);
    expect(bodyOf(requests[1])).toEqual(bodyOf(requests[0]));
    expect(clock.sleeps).toEqual([1000]);
    expect(ctx.progressLog.map((p) => p.message)).toEqual([`PagerDuty https://events.pagerduty.com/… answered 429; try 2 of 4 in 1000 ms`]);
  });

  it('honours Retry-After seconds on 429 and 503, capped at 30 s, and ignores it on other 5xx', async () => {
    const a = answers(
      status(429, null, { 'retry-after': '7' }),
      status(503, null, { 'retry-after': '3600' }),
      status(500, null, { 'retry-after': '9' }),
      status(200),
    );
    const { ctx, clock } = ctxWith(a.fetch);
    expect(await notifyStep.run(parse({ channel: 'slack', url: SLACK_URL, message: 'm' }), ctx)).toMatchObject({ ok: true, outputs: { attempts: 4 } });
    expect(clock.sleeps).toEqual([7000, 30_000, 4000]);
    expect(retryAfterMs('Thu, 01 Jan 2026 00:00:05 GMT', Date.parse(SENT_AT))).toBe(5000);
    expect(retryAfterMs('soon', 0)).toBeUndefined();
  });

  it('gives up after 4 tries with exponential backoff, naming the last answer', async () => {
    const { fetch, requests } = answers(status(503, 'upstream unavailable'));
    const { ctx, clock } = ctxWith(fetch);
    const r = await notifyStep.run(parse({ channel: 'teams', url: TEAMS_URL, message: 'm' }), ctx);
    expect(r).toEqual({
      ok: false,
      error: 'Teams https://prod-01.westeurope.logic.azure.com/… answered 503: upstream unavailable (after 4 attempts)',
      outputs: { channel: 'teams', status: 503, attempts: 4 },
    });
    expect(requests).toHaveLength(4);
    expect(clock.sleeps).toEqual([1000, 2000, 4000]);
    expect(existsSync(join(ctx.runDir, SENT_FILE))).toBe(false);
  });

  it('does not retry a 400 and fails with the status and the first 500 characters of the answer', async () => {
    const long = `invalid_payload ${'z'.repeat(600)}`;
    const { fetch, requests } = answers(status(400, long));
    const { ctx, clock } = ctxWith(fetch);
    const r = await notifyStep.run(parse({ channel: 'slack', url: SLACK_URL, message: 'm' }), ctx);
    expect(r).toEqual({
      ok: false,
      error: `Slack https://hooks.slack.com/… answered 400: ${long.slice(0, 500)}`,
      outputs: { channel: 'slack', status: 400, attempts: 1 },
    });
    expect(requests).toHaveLength(1);
    expect(clock.sleeps).toEqual([]);
  });

  it('does not retry 403, 404 or 410 either', async () => {
    for (const code of [403, 404, 410]) {
      const { fetch, requests } = answers(status(code, 'no_service'));
      const r = await notifyStep.run(parse({ channel: 'slack', url: SLACK_URL, message: 'm' }), ctxWith(fetch).ctx);
      expect(r).toMatchObject({ ok: false, error: `Slack https://hooks.slack.com/… answered ${code}: no_service` });
      expect(requests).toHaveLength(1);
    }
  });

  it('retries a network error', async () => {
    const { fetch, requests } = answers(() => new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 10.0.0.1:443') }), status(200, 'ok'));
    const { ctx, clock } = ctxWith(fetch);
    const r = await notifyStep.run(parse({ channel: 'slack', url: SLACK_URL, message: 'm' }), ctx);
    expect(r).toMatchObject({ ok: true, outputs: { attempts: 2 } });
    expect(requests).toHaveLength(2);
    expect(clock.sleeps).toEqual([1000]);
    expect(ctx.progressLog[0]?.message).toBe('Slack https://hooks.slack.com/… failed: fetch failed: connect ECONNREFUSED 10.0.0.1:443; try 2 of 4 in 1000 ms');
  });

  it('stops retrying once the signal aborts', async () => {
    const ac = new AbortController();
    const { fetch, requests } = answers(() => {
      ac.abort();
      return new Response(null, { status: 503 });
    });
    const { ctx, clock } = ctxWith(fetch, { signal: ac.signal });
    const r = await notifyStep.run(parse({ channel: 'slack', url: SLACK_URL, message: 'm' }), ctx);
    expect(r).toEqual({ ok: false, error: 'Slack https://hooks.slack.com/… aborted after 1 attempt', outputs: { channel: 'slack', attempts: 1 } });
    expect(requests).toHaveLength(1);
    expect(clock.sleeps).toEqual([]);
  });

  it('stops retrying when the signal aborts during the backoff', async () => {
    const ac = new AbortController();
    const { fetch, requests } = answers(status(429));
    const clock = new VirtualClock();
    const sleep = clock.sleep.bind(clock);
    clock.sleep = (ms, signal) => {
      const p = sleep(ms, signal);
      ac.abort();
      return p;
    };
    const r = await notifyStep.run(
      parse({ channel: 'slack', url: SLACK_URL, message: 'm' }),
      stepContext({ fetch, clock, signal: ac.signal, runDir: tempDir() }),
    );
    expect(r).toMatchObject({ ok: false, error: 'Slack https://hooks.slack.com/… aborted after 1 attempt' });
    expect(requests).toHaveLength(1);
  });
});

describe('notify: sent once per run and step', () => {
  it('records the delivery in the run folder and skips it on a resumed run', async () => {
    const { fetch, requests } = answers(status(202));
    const runDir = tempDir();
    const w = parse({ channel: 'pagerduty', routingKey: ROUTING_KEY, message: 'm' });
    expect(await notifyStep.run(w, ctxWith(fetch, { runDir }).ctx)).toMatchObject({ ok: true, outputs: { alreadySent: false } });
    expect(readFileSync(join(runDir, SENT_FILE), 'utf8')).toBe(`run-1/page\t${SENT_AT}\n`);
    const again = await notifyStep.run(w, ctxWith(fetch, { runDir }).ctx);
    expect(again).toEqual({ ok: true, outputs: { channel: 'pagerduty', alreadySent: true, sentAt: SENT_AT } });
    expect(requests).toHaveLength(1);
    // Another step of the same run (the resolve) is its own notification.
    await notifyStep.run(
      parse({ channel: 'pagerduty', routingKey: ROUTING_KEY, action: 'resolve', message: 'm' }),
      ctxWith(fetch, { runDir, stepId: 'resolve' }).ctx,
    );
    expect(requests).toHaveLength(2);
    expect(readFileSync(join(runDir, SENT_FILE), 'utf8').split('\n')).toEqual([`run-1/page\t${SENT_AT}`, `run-1/resolve\t${SENT_AT}`, '']);
  });

  it('sends again after a failure, and ignores a torn last line', async () => {
    const runDir = tempDir();
    writeFileSync(join(runDir, SENT_FILE), 'run-1/page');
    const failing = answers(status(400, 'bad'));
    expect(await notifyStep.run(parse({ channel: 'slack', url: SLACK_URL, message: 'm' }), ctxWith(failing.fetch, { runDir }).ctx)).toMatchObject({
      ok: false,
    });
    const { fetch, requests } = answers(status(200, 'ok'));
    expect(await notifyStep.run(parse({ channel: 'slack', url: SLACK_URL, message: 'm' }), ctxWith(fetch, { runDir }).ctx)).toMatchObject({
      ok: true,
      outputs: { alreadySent: false },
    });
    expect(requests).toHaveLength(1);
    expect(readFileSync(join(runDir, SENT_FILE), 'utf8')).toBe(`run-1/page\nrun-1/page\t${SENT_AT}\n`);
  });

  it('still succeeds, unrecorded, when the run folder cannot be written after delivery', async () => {
    const { fetch } = answers(status(200, 'ok'));
    const { ctx } = ctxWith(fetch, { runDir: join(tempDir(), 'missing') });
    const r = await notifyStep.run(parse({ channel: 'slack', url: SLACK_URL, message: 'm' }), ctx);
    expect(r).toMatchObject({ ok: true, outputs: { recorded: false } });
    expect(ctx.progressLog[0]?.message).toMatch(/^Slack https:\/\/hooks\.slack\.com\/… delivered, but not recorded/);
  });
});

describe('notify: no secret in errors, outputs, progress or the plan', () => {
  it('scrubs the routing key and the webhook path from an answer that echoes them', async () => {
    const { fetch } = answers(status(400, `{"status":"invalid event","errors":["routing_key ${ROUTING_KEY} is invalid"]}`));
    const pd = await notifyStep.run(parse({ channel: 'pagerduty', routingKey: ROUTING_KEY, message: 'm' }), ctxWith(fetch).ctx);
    expect(pd).toMatchObject({
      ok: false,
      error: 'PagerDuty https://events.pagerduty.com/… answered 400: {"status":"invalid event","errors":["routing_key *** is invalid"]}',
    });
    const echo = answers(status(404, `no hook at ${SLACK_URL} (/services/T0001/B0002/SlackSecretPath)`));
    const slack = await notifyStep.run(parse({ channel: 'slack', url: SLACK_URL, message: 'm' }), ctxWith(echo.fetch).ctx);
    expect(slack).toMatchObject({ ok: false, error: 'Slack https://hooks.slack.com/… answered 404: no hook at https://hooks.slack.com/… (/…)' });
  });

  it('scrubs a network error that names the URL, in the error and in progress', async () => {
    const { fetch } = answers(() => new TypeError(`request to ${TEAMS_URL} failed`));
    const { ctx } = ctxWith(fetch);
    const r = await notifyStep.run(parse({ channel: 'teams', url: TEAMS_URL, message: 'm' }), ctx);
    const shown = JSON.stringify([r, ctx.progressLog]);
    expect(shown).not.toContain('TeamsSecretSig');
    expect(shown).not.toContain('/workflows/');
    expect(r).toMatchObject({ ok: false, error: expect.stringContaining('failed: request to https://prod-01.westeurope.logic.azure.com/… failed') as unknown });
  });

  it('never shows the key or the path, whatever happens', async () => {
    const cases = [status(200, 'ok'), status(202, '{"dedup_key":"run-1"}'), status(400, 'nope'), status(503, 'down'), () => new TypeError('fetch failed')];
    const configs = [
      { channel: 'slack', url: SLACK_URL, message: 'm' },
      { channel: 'teams', url: TEAMS_URL, message: 'm' },
      { channel: 'pagerduty', routingKey: ROUTING_KEY, url: 'https://pd.example/secret/enqueue', message: 'm' },
    ];
    for (const answer of cases) {
      for (const c of configs) {
        const { ctx } = ctxWith(answers(answer).fetch);
        const w = parse(c);
        const shown = JSON.stringify([await notifyStep.run(w, ctx), ctx.progressLog, notifyStep.describe(w, { playbookDir: '/p', timeScale: 1 })]);
        for (const secret of ['SlackSecretPath', 'TeamsSecretSig', '/workflows', ROUTING_KEY, '/secret/']) expect(shown).not.toContain(secret);
      }
    }
  });

  it('describes each channel in one line with the URL origin only', () => {
    const d = (v: unknown) => notifyStep.describe(parse(v), { playbookDir: '/p', timeScale: 1 });
    expect(d({ channel: 'slack', url: SLACK_URL, message: 'resumed' })).toBe('post "resumed" to Slack (https://hooks.slack.com/…)');
    expect(d({ channel: 'teams', url: TEAMS_URL, message: 'resumed' })).toBe(
      'post "resumed" to Teams as an Adaptive Card (https://prod-01.westeurope.logic.azure.com/…)',
    );
    expect(d({ channel: 'pagerduty', routingKey: ROUTING_KEY, message: 'halted' })).toBe(
      'trigger a critical PagerDuty alert "halted", dedup key the run id (https://events.pagerduty.com/…)',
    );
    expect(d({ channel: 'pagerduty', routingKey: ROUTING_KEY, action: 'resolve', dedupKey: 'halt-42', message: 'ok' })).toBe(
      'resolve the PagerDuty alert, dedup key "halt-42" (https://events.pagerduty.com/…)',
    );
  });

  it('describes a URL known only at run time by its placeholder, and an unparsed with by its defaults', () => {
    const d = (v: unknown) => notifyStep.describe(parse(v), { playbookDir: '/p', timeScale: 1 });
    expect(d({ channel: 'slack', url: '***', message: 'resumed' })).toBe('post "resumed" to Slack (***)');
    expect(d({ channel: 'teams', url: '<vars.teams>', message: 'resumed' })).toBe('post "resumed" to Teams as an Adaptive Card (<vars.teams>)');
    const unparsed = { channel: 'pagerduty', routingKey: ROUTING_KEY, message: 'halted' } as ReturnType<typeof parse>;
    expect(notifyStep.describe(unparsed, { playbookDir: '/p', timeScale: 1 })).toBe(
      'trigger a critical PagerDuty alert "halted", dedup key the run id (https://events.pagerduty.com/…)',
    );
  });

  it('refuses a URL that is not http(s) without echoing it', async () => {
    const { fetch, requests } = answers(status(200));
    const bad = await notifyStep.run(parse({ channel: 'slack', url: 'not a url/SlackSecretPath', message: 'm' }), ctxWith(fetch).ctx);
    expect(bad).toEqual({ ok: false, error: 'Slack: url is not a URL' });
    const scheme = await notifyStep.run(parse({ channel: 'teams', url: 'file:///etc/TeamsSecretSig', message: 'm' }), ctxWith(fetch).ctx);
    expect(scheme).toEqual({ ok: false, error: 'Teams: unsupported URL scheme file: (http or https)' });
    expect(requests).toHaveLength(0);
  });
});

describe('notify: schema and reuse', () => {
  it('requires url for slack and teams and routingKey for pagerduty, and refuses unknown keys', () => {
    expect(notifyWith.safeParse({ channel: 'slack', message: 'm' }).success).toBe(false);
    expect(notifyWith.safeParse({ channel: 'teams', message: 'm' }).success).toBe(false);
    expect(notifyWith.safeParse({ channel: 'pagerduty', message: 'm' }).success).toBe(false);
    expect(notifyWith.safeParse({ channel: 'pagerduty', routingKey: 'k', message: 'm', severity: 'fatal' }).success).toBe(false);
    expect(notifyWith.safeParse({ channel: 'slack', url: SLACK_URL, message: 'm', channelName: '#ops' }).success).toBe(false);
    expect(notifyWith.safeParse({ channel: 'teams', url: TEAMS_URL, message: 'm', themeColor: '#ff0000' }).success).toBe(false);
  });

  it('documents every field and gives examples that parse', () => {
    const examples = (notifyWith.meta() as { examples: unknown[] }).examples;
    for (const e of examples) expect(notifyWith.safeParse(e).success).toBe(true);
    for (const option of notifyWith.options) {
      for (const [field, schema] of Object.entries(option.shape)) expect(schema.description, `${option.shape.channel.value}.${field}`).toBeTruthy();
    }
  });

  it('sendNotification works without a step, with its own retry policy', async () => {
    const { fetch, requests } = answers(status(500), status(200, 'ok'));
    const clock = new VirtualClock();
    const runDir = tempDir();
    const deps = { fetch, clock, signal: new AbortController().signal, runDir, runId: 'run-9', playbookName: 'p', stepId: 'status-1' };
    const r = await sendNotification({ channel: 'slack', url: SLACK_URL }, 'still recovering', {
      ...deps,
      retry: { attempts: 2, baseDelayMs: 50, maxDelayMs: 100 },
    });
    expect(r).toMatchObject({ ok: true, outputs: { attempts: 2 } });
    expect(clock.sleeps).toEqual([50]);
    expect(requests).toHaveLength(2);
    expect(readFileSync(join(runDir, SENT_FILE), 'utf8')).toBe(`run-9/status-1\t${SENT_AT}\n`);
  });
});
