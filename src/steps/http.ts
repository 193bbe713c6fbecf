import { z } from 'zod';
import { stringMap } from './fields.js';
import { defineStep, errorMessage, type StepResult } from './types.js';

const BODY_LIMIT = 64 * 1024;

export const httpWith = z
  .strictObject({
    method: z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']).default('GET'),
    url: z.string().min(1).describe('http:// or https:// URL'),
    headers: stringMap.optional(),
    body: z
      .union([z.string(), z.record(z.string(), z.unknown()), z.array(z.unknown())])
      .optional()
      .describe('a string is sent as is; an object or array as JSON'),
    expectStatus: z
      .union([z.number().int().min(100).max(599), z.array(z.number().int().min(100).max(599)).min(1)])
      .optional()
      .describe('expected status code(s); default any 2xx'),
  })
  .meta({ examples: [{ method: 'GET', url: 'http://127.0.0.1:8080/health', expectStatus: 200 }] });

export const httpStep = defineStep({
  uses: 'http',
  with: httpWith,
  describe: (w) => {
    const expect = w.expectStatus === undefined ? '2xx' : [w.expectStatus].flat().join('|');
    return `${w.method} ${w.url}, expect ${expect}`;
  },
  async run(w, ctx): Promise<StepResult> {
    let url: URL;
    try {
      url = new URL(w.url);
    } catch {
      return { ok: false, error: `not a URL: ${w.url}` };
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      return { ok: false, error: `unsupported URL scheme ${url.protocol} (http or https)` };
    }
    const headers: Record<string, string> = { ...w.headers };
    let body: string | undefined;
    if (typeof w.body === 'string') body = w.body;
    else if (w.body !== undefined) {
      body = JSON.stringify(w.body);
      if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
    }
    try {
      const res = await ctx.fetch(url, { method: w.method, headers, body, signal: ctx.signal });
      const text = w.method === 'HEAD' ? '' : await res.text();
      const outputs = { status: res.status, body: text.length > BODY_LIMIT ? text.slice(0, BODY_LIMIT) : text };
      const expected = w.expectStatus === undefined ? undefined : [w.expectStatus].flat();
      const ok = expected === undefined ? res.status >= 200 && res.status < 300 : expected.includes(res.status);
      if (!ok) {
        return {
          ok: false,
          error: `${w.method} ${url.href} answered ${res.status}, expected ${expected?.join(' or ') ?? '2xx'}`,
          outputs,
        };
      }
      return { ok: true, outputs };
    } catch (e) {
      if (ctx.signal.aborted) return { ok: false, error: `${w.method} ${url.href} aborted` };
      return { ok: false, error: `${w.method} ${url.href} failed: ${errorMessage(e)}` };
    }
  },
});
