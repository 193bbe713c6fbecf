/** Durations as written in playbooks: `500ms`, `30s`, `2m`, `1h` (a whole number and one unit). */
export const DURATION_PATTERN = '^[0-9]+(ms|s|m|h)$';
const durationRe = new RegExp(DURATION_PATTERN);
const unitMs = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;

/** Milliseconds in a duration, or undefined when the text is not a duration. */
export function parseDuration(text: string): number | undefined {
  if (!durationRe.test(text)) return undefined;
  const match = /^([0-9]+)(ms|s|m|h)$/.exec(text);
  if (!match) return undefined;
  const amount = Number(match[1]);
  const unit = match[2] as keyof typeof unitMs;
  const ms = amount * unitMs[unit];
  return Number.isSafeInteger(ms) ? ms : undefined;
}

export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return ms % 1_000 === 0 ? `${ms / 1_000}s` : `${(ms / 1_000).toFixed(ms < 10_000 ? 2 : 1)}s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1_000);
  return `${minutes}m${String(seconds).padStart(2, '0')}s`;
}
