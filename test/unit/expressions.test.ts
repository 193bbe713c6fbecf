import { describe, expect, it } from 'vitest';
import {
  evaluate,
  ExpressionSyntaxError,
  interpolate,
  parseCondition,
  parseExpression,
  parseTemplate,
  references,
  shouldRun,
  type EvalScope,
  type Reference,
  type Value,
} from '../../src/playbook/expressions.js';

function scope(values: Record<string, Value>, failed = false): EvalScope {
  return {
    failed,
    resolve: (r: Reference) => {
      const key =
        r.kind === 'var' ? `vars.${r.name}` : r.kind === 'env' ? `env.${r.name}` : r.kind === 'step-outcome' ? `steps.${r.step}.outcome` : `steps.${r.step}.outputs.${r.name}`;
      return values[key] ?? null;
    },
  };
}

describe('expressions', () => {
  it('parses the four kinds of reference', () => {
    const refs = [...references(parseExpression("vars.a == env.B && steps.x.outcome != steps.y.outputs.z"))].map((r) => r.ref);
    expect(refs).toEqual([
      { kind: 'var', name: 'a' },
      { kind: 'env', name: 'B' },
      { kind: 'step-outcome', step: 'x' },
      { kind: 'step-output', step: 'y', name: 'z' },
    ]);
  });

  it('compares with == and != and combines with && || !', () => {
    const s = scope({ 'steps.a.outcome': 'success', 'vars.n': 3 });
    expect(evaluate(parseExpression("steps.a.outcome == 'success'"), s)).toBe(true);
    expect(evaluate(parseExpression("steps.a.outcome != 'success'"), s)).toBe(false);
    expect(evaluate(parseExpression("!(steps.a.outcome == 'failure') && vars.n == 3"), s)).toBe(true);
    expect(evaluate(parseExpression("vars.n == '3' || false"), s)).toBe(true);
    expect(evaluate(parseExpression("'it''s' == 'it''s'"), s)).toBe(true);
  });

  it('applies GitHub Actions status rules', () => {
    const ok = scope({}, false);
    const failed = scope({}, true);
    expect(shouldRun(undefined, ok)).toBe(true);
    expect(shouldRun(undefined, failed)).toBe(false);
    expect(shouldRun(parseExpression('always()'), failed)).toBe(true);
    expect(shouldRun(parseExpression('failure()'), failed)).toBe(true);
    expect(shouldRun(parseExpression('failure()'), ok)).toBe(false);
    // Without a status function, an `if` implies success() &&.
    expect(shouldRun(parseExpression('true'), failed)).toBe(false);
  });

  it('reports syntax errors with their offset', () => {
    try {
      parseExpression("steps.a.outcome = 'x'");
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ExpressionSyntaxError);
      expect((e as ExpressionSyntaxError).offset).toBe(16);
    }
    expect(() => parseExpression('vars')).toThrow(/unknown reference/);
    expect(() => parseExpression('cancelled()')).toThrow(/unknown function/);
    expect(() => parseExpression('(true')).toThrow(/expected '\)'/);
    expect(() => parseExpression('"double"')).toThrow(/single quotes/);
  });

  it('accepts if: with or without ${{ }}', () => {
    const a = parseCondition("${{ steps.a.outcome == 'success' }}");
    const b = parseCondition("steps.a.outcome == 'success'");
    expect(a.expr).toMatchObject({ type: 'binary', op: '==' });
    expect(b.expr).toMatchObject({ type: 'binary', op: '==' });
    expect(a.offset).toBe(3);
  });

  it('splits templates and keeps the type of a lone expression', () => {
    expect(parseTemplate('a ${{ vars.x }} b').map((p) => ('text' in p ? p.text : p.source))).toEqual(['a ', 'vars.x', ' b']);
    const resolve = () => 42;
    expect(interpolate('${{ vars.x }}', resolve)).toBe(42);
    expect(interpolate('n=${{ vars.x }}!', resolve)).toBe('n=42!');
    expect(() => parseTemplate('a ${{ vars.x')).toThrow(/not closed/);
    expect(() => parseTemplate('${{ }}')).toThrow(/empty/);
  });
});
