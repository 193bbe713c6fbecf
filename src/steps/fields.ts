import { z } from 'zod';
import { DURATION_PATTERN, parseDuration } from '../util/duration.js';

/** A duration written literally: `500ms`, `30s`, `2m`, `1h`. */
/** Timers in Node fire at once past 2^31-1 ms (24.8 days): durations stay well below. */
export const MAX_DURATION_MS = 7 * 24 * 3_600_000;

export const duration = z
  .string()
  .regex(new RegExp(DURATION_PATTERN), { error: 'expected a duration like 500ms, 30s, 2m or 1h', abort: true })
  .refine((v) => (parseDuration(v) ?? Infinity) <= MAX_DURATION_MS, { error: 'a duration may be at most 168h' })
  .meta({ examples: ['500ms', '30s', '2m'] });

/** A duration, or an expression that gives one at run time. */
export const durationOrExpr = z
  .string()
  .regex(/^([0-9]+(ms|s|m|h)|\s*\$\{\{.*\}\}\s*)$/, {
    error: 'expected a duration like 500ms, 30s, 2m or 1h (or a ${{ }} expression)',
    abort: true,
  })
  .refine((v) => v.includes('${{') || (parseDuration(v) ?? Infinity) <= MAX_DURATION_MS, { error: 'a duration may be at most 168h' });

export const identifier = z.string().regex(/^[a-z0-9-]+$/, { error: 'expected lowercase letters, digits and dashes ([a-z0-9-]+)' });

export const scalar = z.union([z.string(), z.number(), z.boolean()]);

/** A string map such as headers or environment variables. */
export const stringMap = z.record(z.string(), z.string());

/** A string matching `re`, or a `${{ }}` expression checked against `re` once it has a value. */
export function patternOrExpr(re: RegExp, error: string): z.ZodString {
  const expr = /^\s*\$\{\{.*\}\}\s*$/;
  return z.string().refine((v) => re.test(v) || expr.test(v), { error });
}
