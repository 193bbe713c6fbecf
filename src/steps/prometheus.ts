/**
 * Prometheus as a gate source for traffic.shift (issue 12): each gate is one PromQL instant query whose
 * answer is judged like an Argo Rollouts measurement by a pure function (judgePrometheus); the query itself
 * (queryPrometheus) goes through the injected fetch and never throws, except when the step is aborted.
 * docs/prometheus.md describes the fields and which answer gives which verdict.
 */
import { z } from 'zod';
import { duration, identifier, stringMap } from './fields.js';
import { parseDuration } from '../util/duration.js';
import type { Judgement, Verdict } from './gates.js';
import { errorMessage } from './types.js';

/** How much of a body that is not a Prometheus answer (a proxy's error page) a detail quotes. */
const QUOTE_CHARS = 200;
/** How much of a non-JSON body an answer keeps at all. */
const BODY_KEEP_CHARS = 64 * 1024;
const DEFAULT_TIMEOUT_MS = 10_000;

export const httpUrlOrExpr = (v: string): boolean => {
  if (/^\s*\$\{\{.*\}\}\s*$/.test(v)) return true;
  try {
    const url = new URL(v);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
};

/** The playbook-level `prometheus:` block: where the gates' queries go. */
export const prometheusConnection = z
  .strictObject({
    address: z
      .string()
      .refine(httpUrlOrExpr, { error: 'expected an http:// or https:// URL, e.g. http://127.0.0.1:9090' })
      .describe('the Prometheus server (or a path prefix in front of it): queries go to <address>/api/v1/query'),
    headers: stringMap.optional().describe('sent with every query, e.g. Authorization: "Bearer ${{ vars.promToken }}"'),
    timeout: duration.default('10s').describe('how long one query may take; a slower answer makes that gate an error'),
  })
  .meta({ examples: [{ address: 'http://127.0.0.1:9090', timeout: '10s' }] });

export type PrometheusConnection = z.output<typeof prometheusConnection>;

/** What a gate does when there is nothing to compare: no series, or only NaN. */
const gapPolicy = z.enum(['fail', 'pass', 'inconclusive']);
export type GapPolicy = z.output<typeof gapPolicy>;

export const REDUCERS = ['max', 'min', 'sum', 'avg'] as const;
export type Reducer = (typeof REDUCERS)[number];

/** One gate of `gates.prometheus`: a query and the limits its value is held to. */
export const prometheusGate = z
  .strictObject({
    name: identifier.describe('names the gate in progress lines, breaches and the report, e.g. queue-depth'),
    query: z.string().trim().min(1).describe('a PromQL expression giving an instant vector or a scalar, evaluated at each sample'),
    max: z.number().optional().describe('the gate fails when the value is above this'),
    min: z.number().optional().describe('the gate fails when the value is below this'),
    reduce: z.enum(REDUCERS).optional().describe('how several series become one value (NaN series left out); without it several series are an error'),
    onEmpty: gapPolicy.default('inconclusive').describe('the verdict when the query returns no series'),
    onNaN: gapPolicy.default('inconclusive').describe('the verdict when the value is NaN (0/0, say)'),
  })
  .refine((g) => g.max !== undefined || g.min !== undefined, { error: 'a prometheus gate needs max, min or both', path: ['max'] })
  .refine((g) => g.max === undefined || g.min === undefined || g.min <= g.max, { error: 'min is above max: no value could pass', path: ['min'] })
  .meta({ examples: [{ name: 'queue-depth', query: 'max(engine_margin_queue_depth)', max: 1000 }] });

export type PrometheusGate = z.output<typeof prometheusGate>;

/** A stage's prometheus gates: at least one, each name once. */
export const prometheusGates = z
  .array(prometheusGate)
  .min(1)
  .refine((gs) => new Set(gs.map((g) => g.name)).size === gs.length, { error: 'two prometheus gates have the same name' })
  .describe('PromQL gates, judged at every sample beside the engine gates');

/** What one query produced, before anyone judged it. */
export type PromAnswer =
  /** A 2xx answer whose body is JSON (not necessarily a well-formed Prometheus answer). */
  | { kind: 'ok'; body: unknown; warnings?: string[] }
  /** Any other HTTP answer: a non-2xx status, or a body that is not JSON (a proxy's page). */
  | { kind: 'http'; status: number; bodyText: string }
  /** No HTTP answer at all: refused, reset, DNS, TLS. */
  | { kind: 'network'; message: string }
  /** No answer within the connection's timeout. */
  | { kind: 'timeout'; timeoutMs?: number };

export interface PromJudgement {
  verdict: Verdict;
  /** The value judged; null when nothing was measured (no series, NaN, an error). ±Infinity are values. */
  value: number | null;
  /** One human line: the value against its limits, or why there is none; Prometheus's warnings appended. */
  detail: string;
}

/** A sample value as Prometheus writes it: a decimal, `NaN`, `+Inf` or `-Inf`. */
function sampleValue(text: unknown): number | undefined {
  if (typeof text !== 'string') return undefined;
  if (text === 'NaN') return NaN;
  if (text === '+Inf' || text === 'Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text) ? Number(text) : undefined;
}

/** A number as Prometheus would write it. */
export function formatPromValue(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function quote(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > QUOTE_CHARS ? `${flat.slice(0, QUOTE_CHARS)}…` : flat || '(empty body)';
}

function stringsOf(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((w): w is string => typeof w === 'string') : [];
}

/** Prometheus's own error envelope, when a body is one. */
function promError(body: unknown): { errorType: string; error: string } | undefined {
  if (!isRecord(body) || body.status !== 'error') return undefined;
  return { errorType: typeof body.errorType === 'string' ? body.errorType : 'unknown', error: typeof body.error === 'string' ? body.error : '(no message)' };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Why an answer that is not a 2xx JSON body measured nothing. */
function failedAnswer(answer: Exclude<PromAnswer, { kind: 'ok' }>): string {
  switch (answer.kind) {
    case 'timeout':
      return `no answer from Prometheus within ${answer.timeoutMs === undefined ? 'the timeout' : `${answer.timeoutMs}ms`}`;
    case 'network':
      return `Prometheus unreachable: ${answer.message}`;
    case 'http': {
      const err = promError(parseJson(answer.bodyText));
      if (err) return `Prometheus answered HTTP ${answer.status} (${err.errorType}): ${err.error}`;
      return `HTTP ${answer.status}, not a Prometheus answer: ${quote(answer.bodyText)}`;
    }
  }
}

/** The values of an instant query's answer (one per series, or the scalar), or why there are none. */
function valuesOf(body: unknown): { values: number[] } | { error: string } {
  const err = promError(body);
  if (err) return { error: `Prometheus error (${err.errorType}): ${err.error}` };
  if (!isRecord(body) || body.status !== 'success' || !isRecord(body.data)) return { error: `not a Prometheus answer: ${quote(JSON.stringify(body) ?? '')}` };
  const { resultType, result } = body.data;
  if (resultType === 'matrix') return { error: 'query returns a matrix (a range vector); use an instant vector' };
  if (resultType === 'string') return { error: 'query returns a string; use an instant vector or a scalar' };
  if (resultType === 'scalar') {
    const value = Array.isArray(result) ? sampleValue(result[1]) : undefined;
    return value === undefined ? { error: `malformed scalar: ${quote(JSON.stringify(result) ?? '')}` } : { values: [value] };
  }
  if (resultType !== 'vector' || !Array.isArray(result)) return { error: `unexpected result type ${quote(String(resultType))}` };
  const values: number[] = [];
  for (const series of result) {
    if (isRecord(series) && series.value === undefined && series.histogram !== undefined) {
      return { error: 'a series is a native histogram; use histogram_quantile() or another function that gives a number' };
    }
    const value = isRecord(series) && Array.isArray(series.value) ? sampleValue(series.value[1]) : undefined;
    if (value === undefined) return { error: `malformed series: ${quote(JSON.stringify(series) ?? '')}` };
    values.push(value);
  }
  return { values };
}

function reduceValues(reducer: Reducer, values: number[]): number {
  switch (reducer) {
    case 'max':
      return Math.max(...values);
    case 'min':
      return Math.min(...values);
    case 'sum':
      return values.reduce((a, b) => a + b, 0);
    case 'avg':
      return values.reduce((a, b) => a + b, 0) / values.length;
  }
}

export function limitsText(gate: PrometheusGate): string {
  if (gate.min !== undefined && gate.max !== undefined) return `in [${formatPromValue(gate.min)}, ${formatPromValue(gate.max)}]`;
  return gate.max !== undefined ? `<= ${formatPromValue(gate.max)}` : `>= ${formatPromValue(gate.min ?? -Infinity)}`;
}

/** The verdict a gap policy gives, with the policy named so a pass on no data is never silent. */
function gap(policy: GapPolicy, field: 'onEmpty' | 'onNaN', value: number | null, detail: string): PromJudgement {
  return { verdict: policy, value, detail: `${detail} (${field}: ${policy})` };
}

/** Hold the measured values to the gate's limits. A breach outranks NaN series; NaN outranks a pass. */
function judgeValues(gate: PrometheusGate, values: number[]): PromJudgement {
  const name = gate.name;
  if (values.length === 0) return gap(gate.onEmpty, 'onEmpty', null, `${name}: no series`);
  if (values.length > 1 && gate.reduce === undefined) {
    return { verdict: 'error', value: null, detail: `${name}: ${values.length} series; set reduce (max, min, sum or avg) or aggregate in the query` };
  }
  const measured = values.filter((v) => !Number.isNaN(v));
  const nanCount = values.length - measured.length;
  const value = measured.length === 0 ? NaN : gate.reduce === undefined ? (measured[0] as number) : reduceValues(gate.reduce, measured);
  const label =
    gate.reduce !== undefined && values.length > 1
      ? `${name} ${formatPromValue(value)} (${gate.reduce} of ${measured.length} series)`
      : `${name} ${formatPromValue(value)}`;
  // Only NaN, or +Inf and -Inf summed: nothing to compare.
  if (Number.isNaN(value)) return gap(gate.onNaN, 'onNaN', null, values.length > 1 ? `${name}: all ${values.length} series are NaN` : `${name} is NaN`);
  if (gate.max !== undefined && value > gate.max) return { verdict: 'fail', value, detail: `${label} > ${formatPromValue(gate.max)}` };
  if (gate.min !== undefined && value < gate.min) return { verdict: 'fail', value, detail: `${label} < ${formatPromValue(gate.min)}` };
  if (nanCount > 0) return gap(gate.onNaN, 'onNaN', value, `${label} ${limitsText(gate)}, but ${nanCount} of ${values.length} series are NaN`);
  return { verdict: 'pass', value, detail: `${label} ${limitsText(gate)}` };
}

/**
 * Judge one gate against what its query produced. Pure and total: it never throws, and never passes
 * anything it could not measure unless the gate's onEmpty/onNaN says so.
 */
export function judgePrometheus(gate: PrometheusGate, answer: PromAnswer): PromJudgement {
  if (answer.kind !== 'ok') return { verdict: 'error', value: null, detail: `${gate.name}: ${failedAnswer(answer)}` };
  const measured = valuesOf(answer.body);
  const judgement: PromJudgement =
    'error' in measured ? { verdict: 'error', value: null, detail: `${gate.name}: ${measured.error}` } : judgeValues(gate, measured.values);
  const warnings = [...new Set([...(answer.warnings ?? []), ...(isRecord(answer.body) ? stringsOf(answer.body.warnings) : [])])];
  return warnings.length ? { ...judgement, detail: `${judgement.detail} (warnings: ${warnings.join('; ')})` } : judgement;
}

export interface QueryDeps {
  fetch: typeof globalThis.fetch;
  /** The step's signal: when it aborts, the query rejects with its reason. */
  signal: AbortSignal;
  /** Overrides the connection's timeout. */
  timeoutMs?: number;
  /** Evaluation time, ms since the epoch; by default Prometheus evaluates at its own now. */
  time?: number;
}

/** The form body of an instant query, as Prometheus's POST /api/v1/query takes it. */
export function queryForm(query: string, time?: number): string {
  const form = new URLSearchParams({ query });
  if (time !== undefined) form.set('time', (time / 1000).toFixed(3));
  return form.toString();
}

function queryUrl(address: string): string {
  return `${address.replace(/\/+$/, '')}/api/v1/query`;
}

/** Read an HTTP answer into a PromAnswer: a 2xx JSON body is `ok`, anything else `http`. */
async function readAnswer(res: Response): Promise<PromAnswer> {
  const text = await res.text();
  const body = res.ok ? parseJson(text) : undefined;
  if (body === undefined) return { kind: 'http', status: res.status, bodyText: text.slice(0, BODY_KEEP_CHARS) };
  const warnings = isRecord(body) ? stringsOf(body.warnings) : [];
  return warnings.length ? { kind: 'ok', body, warnings } : { kind: 'ok', body };
}

/**
 * One instant query: POST <address>/api/v1/query, form-encoded, with the connection's headers and a
 * per-query timeout. Every outcome comes back as a PromAnswer; only the step's abort rejects (with its
 * reason), so an abort is never mistaken for a slow Prometheus.
 */
export async function queryPrometheus(conn: PrometheusConnection, query: string, deps: QueryDeps): Promise<PromAnswer> {
  deps.signal.throwIfAborted();
  const timeoutMs = deps.timeoutMs ?? parseDuration(conn.timeout) ?? DEFAULT_TIMEOUT_MS;
  const timer = new AbortController();
  const timeout = setTimeout(() => timer.abort(new Error(`no answer within ${timeoutMs}ms`)), timeoutMs);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(conn.headers ?? {})) if (k.toLowerCase() !== 'content-type') headers[k] = v;
  headers['content-type'] = 'application/x-www-form-urlencoded';
  try {
    const signal = AbortSignal.any([deps.signal, timer.signal]);
    const res = await deps.fetch(queryUrl(conn.address), { method: 'POST', headers, body: queryForm(query, deps.time), signal });
    return await readAnswer(res);
  } catch (e) {
    if (deps.signal.aborted) throw deps.signal.reason;
    if (timer.signal.aborted) return { kind: 'timeout', timeoutMs };
    // fetch says `fetch failed` and keeps the reason (ECONNREFUSED, ENOTFOUND) in `cause`: errorMessage joins them.
    return { kind: 'network', message: errorMessage(e) };
  } finally {
    clearTimeout(timeout);
  }
}

/**
 * For preflight: `rejected` is a query Prometheus refuses (a parse error, 400 bad_data; an execution
 * error, 422) or one that can never be judged (a range vector, a string); `unreachable` is no answer at
 * all (refused, timed out); `unexpected` is any other answer (a proxy's 401 or 502, a 503).
 */
export type QueryCheck =
  { ok: true; resultType: 'vector' | 'scalar'; series: number } | { ok: false; problem: 'rejected' | 'unreachable' | 'unexpected'; message: string };

/** Evaluate the query once (2.42 has no /api/v1/parse_query); an empty result is fine, the metric may appear later. */
export async function checkQuery(conn: PrometheusConnection, query: string, deps: QueryDeps): Promise<QueryCheck> {
  const answer = await queryPrometheus(conn, query, deps);
  if (answer.kind === 'network' || answer.kind === 'timeout') return { ok: false, problem: 'unreachable', message: `${conn.address}: ${failedAnswer(answer)}` };
  if (answer.kind === 'http') {
    const err = promError(parseJson(answer.bodyText));
    const rejected = err !== undefined && (answer.status === 400 || answer.status === 422);
    return rejected
      ? { ok: false, problem: 'rejected', message: `Prometheus rejected the query (${err.errorType}): ${err.error}` }
      : { ok: false, problem: 'unexpected', message: `${conn.address}: ${failedAnswer(answer)}` };
  }
  const measured = valuesOf(answer.body);
  if ('error' in measured) {
    const unjudgeable = isRecord(answer.body) && answer.body.status === 'success';
    return { ok: false, problem: unjudgeable ? 'rejected' : 'unexpected', message: measured.error };
  }
  const data = (answer.body as { data: { resultType: 'vector' | 'scalar' } }).data;
  return { ok: true, resultType: data.resultType, series: measured.values.length };
}

/** One gate's judgement at one sample, with how long its query took. */
export interface PromGateResult extends PromJudgement {
  name: string;
  query: string;
  latencyMs: number;
}

/** A stage sample's prometheus gates: the combined verdict (as judgeSample's), each breach, each gate. */
export interface PromSampleJudgement extends Judgement {
  gates: PromGateResult[];
}

const VERDICT_RANK: Record<Verdict, number> = { pass: 0, inconclusive: 1, error: 2, fail: 3 };

/** A breach outranks an error, an error outranks a gap (as judgeSample ranks them). */
export function worstVerdict(verdicts: readonly Verdict[]): Verdict {
  return verdicts.reduce<Verdict>((worst, v) => (VERDICT_RANK[v] > VERDICT_RANK[worst] ? v : worst), 'pass');
}

/**
 * Query and judge every prometheus gate of one sample, all at once; each result carries its query's
 * latency (from `now`, performance.now by default). Rejects only when the step's signal aborts.
 */
export async function judgePrometheusGates(
  conn: PrometheusConnection,
  gates: readonly PrometheusGate[],
  deps: QueryDeps & { now?: () => number },
): Promise<PromSampleJudgement> {
  const now = deps.now ?? (() => performance.now());
  const results = await Promise.all(
    gates.map(async (gate): Promise<PromGateResult> => {
      const start = now();
      const answer = await queryPrometheus(conn, gate.query, deps);
      return { name: gate.name, query: gate.query, latencyMs: now() - start, ...judgePrometheus(gate, answer) };
    }),
  );
  return {
    verdict: worstVerdict(results.map((r) => r.verdict)),
    breaches: results.filter((r) => r.verdict === 'fail').map((r) => r.detail),
    gates: results,
  };
}
