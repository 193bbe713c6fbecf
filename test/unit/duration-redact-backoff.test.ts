import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../src/util/duration.js';
import { backoffDelay } from '../../src/runner/execute.js';
import { Redactor } from '../../src/util/redact.js';

describe('durations', () => {
  it('parses ms, s, m and h', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('2m')).toBe(120_000);
    expect(parseDuration('1h')).toBe(3_600_000);
  });
  it('rejects anything else', () => {
    for (const bad of ['', '1.5s', '5 minutes', '10', '-1s', '1d', 's']) expect(parseDuration(bad)).toBeUndefined();
  });
  it('formats for people', () => {
    expect(formatDuration(12)).toBe('12ms');
    expect(formatDuration(30_000)).toBe('30s');
    expect(formatDuration(1_234)).toBe('1.23s');
    expect(formatDuration(125_000)).toBe('2m05s');
  });
});

describe('backoff', () => {
  it('doubles each retry, with jitter in the upper half, capped', () => {
    expect(backoffDelay(1000, 1, () => 0)).toBe(500);
    expect(backoffDelay(1000, 1, () => 1)).toBe(1000);
    expect(backoffDelay(1000, 3, () => 1)).toBe(4000);
    expect(backoffDelay(1000, 3, () => 0)).toBe(2000);
    expect(backoffDelay(1000, 30, () => 1)).toBe(60_000);
  });
});

describe('redactor', () => {
  it('replaces every secret in nested values, longest first', () => {
    const r = new Redactor();
    r.add('s3cr3t-token');
    r.add('s3cr3t');
    expect(r.deep({ a: ['x s3cr3t-token y', { b: 's3cr3t' }], n: 1 })).toEqual({ a: ['x *** y', { b: '***' }], n: 1 });
  });
  it('ignores values too short to be secrets', () => {
    const r = new Redactor();
    r.add('ab');
    expect(r.text('abc')).toBe('abc');
    expect(r.size).toBe(0);
  });
  it('escapes regex characters in secrets', () => {
    const r = new Redactor();
    r.add('a.b*c(d)');
    expect(r.text('x a.b*c(d) axbbc')).toBe('x *** axbbc');
  });
});
