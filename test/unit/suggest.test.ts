import { describe, expect, it } from 'vitest';
import { closest, didYouMean, editDistance } from '../../src/util/suggest.js';

/** A small deterministic generator, so a failing case can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('did you mean', () => {
  it('counts a swap of neighbouring letters as one edit', () => {
    expect(editDistance('wiht', 'with')).toBe(1);
    expect(editDistance('exce', 'exec')).toBe(1);
    expect(editDistance('deplyo', 'deploy')).toBe(1);
    expect(editDistance('timout', 'timeout')).toBe(1);
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
  });

  it('is a distance: zero only for equal strings, symmetric, bounded by the lengths', () => {
    const next = rng(7);
    const word = () => Array.from({ length: Math.floor(next() * 7) }, () => 'abcd'[Math.floor(next() * 4)]).join('');
    for (let i = 0; i < 500; i++) {
      const a = word();
      const b = word();
      const d = editDistance(a, b);
      expect(d === 0).toBe(a === b);
      expect(editDistance(b, a)).toBe(d);
      expect(d).toBeGreaterThanOrEqual(Math.abs(a.length - b.length));
      expect(d).toBeLessThanOrEqual(Math.max(a.length, b.length));
    }
  });

  it('suggests the closest known name for a likely typo, ignoring case', () => {
    expect(closest('wiht', ['id', 'uses', 'with', 'if'])).toBe('with');
    expect(closest('exce', ['exec', 'http', 'wait'])).toBe('exec');
    expect(closest('deplyo', ['preflight', 'deploy'])).toBe('deploy');
    expect(closest('With', ['with'])).toBe('with');
    expect(closest('continueOnErorr', ['continueOnError', 'retries'])).toBe('continueOnError');
  });

  it('suggests nothing when no name is close', () => {
    expect(closest('bogus', ['id', 'uses', 'with', 'name', 'timeout', 'retries', 'retryDelay', 'if', 'continueOnError'])).toBeUndefined();
    expect(closest('hotfix.teleport', ['hotfix.deploy', 'hotfix.rollback'])).toBeUndefined();
    // Two letters are never a typo of two other letters.
    expect(closest('ab', ['id', 'if'])).toBeUndefined();
    expect(closest('x', [])).toBeUndefined();
  });

  it('formats the hint to append to a message', () => {
    expect(didYouMean('lgo', ['log'])).toBe(" (did you mean 'log'?)");
    expect(didYouMean('contians', ['contains'], (n) => `'${n}()'`)).toBe(" (did you mean 'contains()'?)");
    expect(didYouMean('zzzz', ['log'])).toBe('');
  });
});
