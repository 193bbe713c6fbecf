/**
 * Delivery of a notification people receive: one POST through the injected fetch, retried on 429, 5xx and
 * network errors with backoff on the injected clock, recorded in the run's folder after a 2xx so a resumed
 * run does not send it again. Reusable outside a step (the runner's status updates).
 */
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../util/clock.js';
import { MIN_SECRET_LENGTH, REDACTED } from '../util/redact.js';
import {
  CHANNEL_LABEL,
  channelUrl,
  displayUrl,
  notifyChannel,
  pagerdutyDedupKey,
  payloadFor,
  type NotifyChannel,
  type NotifyChannelInput,
} from './notify-channels.js';
import { errorMessage, type StepOutputs, type StepResult } from './types.js';

/** The file in the run's folder listing the notifications already delivered, one `<key>\t<sentAt>` a line. */
export const SENT_FILE = 'notifications.sent';
/** How much of a refusing receiver's answer goes into the error. */
export const ERROR_BODY_LIMIT = 500;

export interface RetryPolicy {
  /** Tries in all, the first one included. */
  attempts: number;
  /** Wait before the first retry, doubling for each one after. */
  baseDelayMs: number;
  /** Upper bound of any wait, a receiver's `Retry-After` included. */
  maxDelayMs: number;
}

/** 4 tries, 1 s, 2 s and 4 s apart (or what `Retry-After` asks, up to 30 s). */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseDelayMs: 1000, maxDelayMs: 30_000 };

/** What sending needs; a StepContext has all of it. */
export interface NotifyDeps {
  fetch: typeof globalThis.fetch;
  clock: Clock;
  signal: AbortSignal;
  /** The run's folder: where the record of delivered notifications is kept. */
  runDir: string;
  runId: string;
  playbookName: string;
  /** With `runId`, identifies the notification: the runner gives each status update its own. */
  stepId: string;
  /** Retries and skipped records, for the operator. */
  progress?: (message: string) => void;
  retry?: RetryPolicy;
  /**
   * false: no record of delivery is read or written (status updates: each says what is true now, so a
   * resumed run sends its own rather than skipping ones an earlier attempt sent). Default true.
   */
  once?: boolean;
}

/** Identifies one notification so a resumed run can tell it was already sent. */
export function notificationKey(runId: string, stepId: string): string {
  return `${runId}/${stepId}`;
}

/** When the notification `key` was delivered according to the record in `runDir`, or undefined. */
export async function sentBefore(runDir: string, key: string): Promise<{ sentAt: string | null } | undefined> {
  let text: string;
  try {
    text = await readFile(join(runDir, SENT_FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  // Only lines that end in a newline count: a torn tail is not a record.
  const lines = text.split('\n').slice(0, -1);
  for (const line of lines) {
    const [k, sentAt] = line.split('\t');
    if (k === key) return { sentAt: sentAt ?? null };
  }
  return undefined;
}

/** Appends `key` to the record and fsyncs it, after a torn tail if a crash left one. */
export async function recordSent(runDir: string, key: string, sentAt: string): Promise<void> {
  const file = await open(join(runDir, SENT_FILE), 'a+');
  try {
    const { size } = await file.stat();
    let lead = '';
    if (size > 0) {
      const last = Buffer.alloc(1);
      await file.read(last, 0, 1, size - 1);
      if (last.toString() !== '\n') lead = '\n';
    }
    await file.write(`${lead}${key}\t${sentAt}\n`);
    await file.sync();
  } finally {
    await file.close();
  }
}

/** Replaces the routing key and the URL's path (the credential of a webhook URL) wherever they appear. */
function scrubber(channel: NotifyChannel, url: URL): (text: string) => string {
  const secrets: [string, string][] = [[url.href, displayUrl(url.href)]];
  const path = `${url.pathname}${url.search}`;
  // Like the runner's redaction, too short a value is left alone: replacing it would garble every message.
  if (path.length >= MIN_SECRET_LENGTH) secrets.push([`${url.host}${path}`, `${url.host}/…`], [path, '/…']);
  if (channel.channel === 'pagerduty' && channel.routingKey.length >= MIN_SECRET_LENGTH) secrets.push([channel.routingKey, REDACTED]);
  return (text) => secrets.reduce((t, [secret, shown]) => t.split(secret).join(shown), text);
}

/** Seconds or an HTTP date, as `Retry-After` may say; undefined when absent or unreadable. */
export function retryAfterMs(header: string | null, now: number): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  const value = header.trim();
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The wait before retry number `retry` (1 for the first). */
export function retryDelayMs(policy: RetryPolicy, retry: number, retryAfter: number | undefined): number {
  const delay = retryAfter ?? policy.baseDelayMs * 2 ** (retry - 1);
  return Math.min(delay, policy.maxDelayMs);
}

/** How one attempt ended. */
type Attempt =
  | { kind: 'delivered'; status: number; body: string }
  | { kind: 'refused'; status: number; body: string }
  | { kind: 'retryable'; status: number | null; body: string; retryAfter: number | undefined; error?: string };

async function attemptOnce(url: URL, body: string, deps: NotifyDeps): Promise<Attempt> {
  let res: Response;
  try {
    res = await deps.fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: deps.signal });
  } catch (e) {
    return { kind: 'retryable', status: null, body: '', retryAfter: undefined, error: errorMessage(e) };
  }
  const text = await res.text().catch((e: unknown) => `(answer unreadable: ${errorMessage(e)})`);
  if (res.status >= 200 && res.status < 300) return { kind: 'delivered', status: res.status, body: text };
  if (res.status === 429 || res.status >= 500) {
    const honoured = res.status === 429 || res.status === 503 ? retryAfterMs(res.headers.get('retry-after'), deps.clock.now()) : undefined;
    return { kind: 'retryable', status: res.status, body: text, retryAfter: honoured };
  }
  return { kind: 'refused', status: res.status, body: text };
}

function answerText(a: { status: number | null; body: string; error?: string }): string {
  if (a.status === null) return `failed: ${a.error ?? 'no answer'}`;
  const body = a.body.trim();
  return `answered ${a.status}${body ? `: ${body.slice(0, ERROR_BODY_LIMIT)}` : ''}`;
}

/** The POST with its retries; the outcome of the last attempt and how many were made. */
async function post(url: URL, body: string, say: (message: string) => void, deps: NotifyDeps): Promise<{ last: Attempt | 'aborted'; attempts: number }> {
  const policy = deps.retry ?? DEFAULT_RETRY;
  let attempts = 0;
  for (;;) {
    if (deps.signal.aborted) return { last: 'aborted', attempts };
    attempts += 1;
    const a = await attemptOnce(url, body, deps);
    if (a.kind !== 'retryable' || attempts >= policy.attempts) return { last: a, attempts };
    if (deps.signal.aborted) return { last: 'aborted', attempts };
    const delay = retryDelayMs(policy, attempts, a.retryAfter);
    say(`${answerText({ ...a, body: '' })}; try ${attempts + 1} of ${policy.attempts} in ${delay} ms`);
    try {
      await deps.clock.sleep(delay, deps.signal);
    } catch {
      return { last: 'aborted', attempts };
    }
  }
}

/** Extra outputs a receiver's answer gives: PagerDuty's dedup key. */
function answerOutputs(channel: NotifyChannel, body: string, deps: NotifyDeps): StepOutputs {
  if (channel.channel !== 'pagerduty') return {};
  let key = pagerdutyDedupKey(channel, deps);
  try {
    const answer = JSON.parse(body) as { dedup_key?: unknown };
    if (typeof answer.dedup_key === 'string') key = answer.dedup_key;
  } catch {
    // An answer that is not JSON leaves the key we sent.
  }
  return { action: channel.action, dedupKey: key };
}

/**
 * Sends `message` on `channel` once per `runId/stepId`: skipped (`alreadySent: true`) when the run's
 * record says it was delivered. At least once: a crash between the POST and the record sends it again.
 * Never throws for what a receiver or the network does; errors and outputs carry no secret.
 */
export async function sendNotification(config: NotifyChannelInput, message: string, deps: NotifyDeps): Promise<StepResult> {
  const parsed = notifyChannel.safeParse(config);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, error: `notification channel: ${issue ? `${issue.path.join('.') || '(config)'}: ${issue.message}` : 'invalid'}` };
  }
  const channel = parsed.data;
  const label = `${CHANNEL_LABEL[channel.channel]} ${displayUrl(channelUrl(channel))}`;
  let url: URL;
  try {
    url = new URL(channelUrl(channel));
  } catch {
    return { ok: false, error: `${CHANNEL_LABEL[channel.channel]}: url is not a URL` };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return { ok: false, error: `${CHANNEL_LABEL[channel.channel]}: unsupported URL scheme ${url.protocol} (http or https)` };
  }
  const scrub = scrubber(channel, url);
  const key = notificationKey(deps.runId, deps.stepId);
  const base = { channel: channel.channel };
  if (deps.once !== false) {
    try {
      const before = await sentBefore(deps.runDir, key);
      if (before) return { ok: true, outputs: { ...base, alreadySent: true, sentAt: before.sentAt } };
    } catch (e) {
      return { ok: false, error: `could not read ${join(deps.runDir, SENT_FILE)}: ${errorMessage(e)}` };
    }
  }
  const sentAt = new Date(deps.clock.now()).toISOString();
  const body = JSON.stringify(payloadFor(channel, message, { runId: deps.runId, playbookName: deps.playbookName, stepId: deps.stepId, sentAt }));
  const say = (text: string): void => deps.progress?.(scrub(`${label} ${text}`));
  const { last, attempts } = await post(url, body, say, deps);
  if (last === 'aborted') return { ok: false, error: `${label} aborted after ${attempts} attempt${attempts === 1 ? '' : 's'}`, outputs: { ...base, attempts } };
  if (last.kind !== 'delivered') {
    const after = last.kind === 'retryable' && attempts > 1 ? ` (after ${attempts} attempts)` : '';
    return { ok: false, error: scrub(`${label} ${answerText(last)}${after}`), outputs: { ...base, status: last.status, attempts } };
  }
  const outputs: StepOutputs = { ...base, sentAt, status: last.status, attempts, alreadySent: false, ...answerOutputs(channel, last.body, deps) };
  if (deps.once === false) return { ok: true, outputs };
  try {
    await recordSent(deps.runDir, key, sentAt);
  } catch (e) {
    // Delivered: failing now would only send it again on a retry.
    say(`delivered, but not recorded (${errorMessage(e)}): a resumed run would send it again`);
    return { ok: true, outputs: { ...outputs, recorded: false } };
  }
  return { ok: true, outputs };
}
