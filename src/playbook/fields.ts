import { z } from 'zod';
import { DURATION_PATTERN } from './duration.js';

/** A duration written literally: `500ms`, `30s`, `2m`, `1h`. */
export const duration = z
  .string()
  .regex(new RegExp(DURATION_PATTERN), { error: 'expected a duration like 500ms, 30s, 2m or 1h' })
  .meta({ examples: ['500ms', '30s', '2m'] });

/** A duration, or an expression that gives one at run time. */
export const durationOrExpr = z
  .string()
  .regex(/^([0-9]+(ms|s|m|h)|\s*\$\{\{.*\}\}\s*)$/, {
    error: 'expected a duration like 500ms, 30s, 2m or 1h (or a ${{ }} expression)',
  });

export const identifier = z
  .string()
  .regex(/^[a-z0-9-]+$/, { error: 'expected lowercase letters, digits and dashes ([a-z0-9-]+)' });

export const scalar = z.union([z.string(), z.number(), z.boolean()]);

/** A string map such as headers or environment variables. */
export const stringMap = z.record(z.string(), z.string());
