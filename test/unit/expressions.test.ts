import { describe, expect, it } from 'vitest';
import {
  evaluate,
  ExpressionEvalError,
  ExpressionSyntaxError,
  formatValue,
  interpolate,
  parseCondition,
  parseExpression,
  parseTemplate,
  references,
  shouldRun,
  usesStatusFunction,
  type EvalScope,
  type Reference,
  type Value,
} from '../../src/playbook/expressions.js';
import { interpolateDeep, UnresolvedReference } from '../../src/runner/scope.js';

function scope(values: Record<string, Value>, failed = false): EvalScope {
  return {
    failed,
    resolve: (r: Reference) => {
      const key =
        r.kind === 'var'
          ? `vars.${r.name}`
          : r.kind === 'env'
            ? `env.${r.name}`
            : r.kind === 'step-outcome'
              ? `steps.${r.step}.outcome`
              : `steps.${r.step}.outputs.${r.name}`;
      return values[key] ?? null;
    },
  };
}

describe('expressions', () => {
  it('parses the four kinds of reference', () => {
    const refs = [...references(parseExpression('vars.a == env.B && steps.x.outcome != steps.y.outputs.z'))].map((r) => r.ref);
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

  it('orders numbers, and a number against the decimal text of one (outputs are often text)', () => {
    const gt3 = parseExpression('steps.a.outputs.exitCode > 3');
    const at = (v: Value) => evaluate(gt3, scope({ 'steps.a.outputs.exitCode': v }));
    expect(at(5)).toBe(true);
    expect(at(3)).toBe(false);
    expect(at('7')).toBe(true);
    expect(at(' 7\n')).toBe(true);
    expect(at('2.5')).toBe(false);
    expect(at('1e3')).toBe(true);
    // Not a number: every ordering is false, as is a missing value (null in if:).
    expect(at('seven')).toBe(false);
    expect(at(null)).toBe(false);
    expect(at(true)).toBe(false);
    expect(evaluate(parseExpression('null <= null && false < true && !(null < 1) && !(true > 0)'), scope({}))).toBe(true);
    expect(evaluate(parseExpression('steps.a.outputs.exitCode <= 3'), scope({ 'steps.a.outputs.exitCode': null }))).toBe(false);
    const s = scope({});
    expect(evaluate(parseExpression('1 < 2 && 2 <= 2 && 3 > 2 && 3 >= 3 && -1 < 0 && 1.5 > 1'), s)).toBe(true);
    expect(evaluate(parseExpression("'7' == 7 && 7 >= '7.0' && '0x10' != 16"), s)).toBe(true);
  });

  it('orders two strings as text, case-sensitively like ==; fromJSON() makes numbers of them', () => {
    const s = scope({ 'steps.a.outputs.stdout': '10', 'steps.b.outputs.stdout': '9' });
    expect(evaluate(parseExpression("'apple' < 'banana' && 'B' < 'a'"), s)).toBe(true);
    expect(evaluate(parseExpression('steps.a.outputs.stdout < steps.b.outputs.stdout'), s)).toBe(true);
    expect(evaluate(parseExpression('fromJSON(steps.a.outputs.stdout) > fromJSON(steps.b.outputs.stdout)'), s)).toBe(true);
  });

  it('keeps the comparison operators consistent with == (<= is < or ==), whatever the types', () => {
    const pool: Value[] = [0, 1, -2, 7, 7.5, '7', ' 7 ', '7.0', '10', '9', 'a', 'A', 'b', '', 'x7', true, false, null];
    const holds = (op: string, a: Value, b: Value) => evaluate(parseExpression(`vars.a ${op} vars.b`), scope({ 'vars.a': a, 'vars.b': b })) as boolean;
    for (const a of pool) {
      for (const b of pool) {
        const [lt, le, eq, ge, gt, ne] = ['<', '<=', '==', '>=', '>', '!='].map((op) => holds(op, a, b));
        const label = `${JSON.stringify(a)} vs ${JSON.stringify(b)}`;
        expect(ne, label).toBe(!eq);
        expect([lt, eq, gt].filter(Boolean).length, label).toBeLessThanOrEqual(1);
        expect(le, label).toBe(lt || eq);
        expect(ge, label).toBe(gt || eq);
        // Swapping the sides mirrors the result.
        expect(holds('<', b, a), label).toBe(gt);
        expect(holds('==', b, a), label).toBe(eq);
      }
    }
  });

  it('binds tighter to looser as GitHub does: ! then < <= > >= then == != then && then ||', () => {
    expect(parseExpression('!vars.a < vars.b')).toMatchObject({ op: '<', left: { type: 'not' } });
    expect(parseExpression('vars.a < vars.b == vars.c')).toMatchObject({ op: '==', left: { op: '<' } });
    expect(parseExpression('vars.a == vars.b < vars.c')).toMatchObject({ op: '==', right: { op: '<' } });
    expect(parseExpression('vars.a == vars.b && vars.c')).toMatchObject({ op: '&&', left: { op: '==' } });
    expect(parseExpression('vars.a || vars.b && vars.c')).toMatchObject({ op: '||', right: { op: '&&' } });
    const s = scope({});
    // (1 < 2) == true; were == tighter it would be 1 < (2 == true), which is false.
    expect(evaluate(parseExpression('1 < 2 == true'), s)).toBe(true);
    expect(evaluate(parseExpression('(1 < 2) == (3 > 4)'), s)).toBe(false);
  });

  it('contains(), startsWith() and endsWith() ignore case, as in GitHub Actions', () => {
    const s = scope({ 'steps.a.outputs.stdout': 'Deploy OK: margin v1.4.2', 'vars.n': 42 });
    const ev = (src: string) => evaluate(parseExpression(src), s);
    expect(ev("contains(steps.a.outputs.stdout, 'ok:')")).toBe(true);
    expect(ev("contains(steps.a.outputs.stdout, 'failed')")).toBe(false);
    expect(ev("startsWith(steps.a.outputs.stdout, 'deploy')")).toBe(true);
    expect(ev("endsWith(steps.a.outputs.stdout, 'V1.4.2')")).toBe(true);
    expect(ev("endsWith(steps.a.outputs.stdout, 'deploy')")).toBe(false);
    expect(ev("contains(vars.n, '4')")).toBe(true);
    expect(ev("contains(steps.a.outputs.stdout, '')")).toBe(true);
    // Lists (from fromJSON) test membership with ==, so the text of a number matches the number.
    expect(ev(`contains(fromJSON('["a", 2, true]'), 'a')`)).toBe(true);
    expect(ev(`contains(fromJSON('["a", 2, true]'), 'A')`)).toBe(false);
    expect(ev(`contains(fromJSON('["a", 2, true]'), '2')`)).toBe(true);
    expect(ev(`contains(fromJSON('["ab"]'), 'a')`)).toBe(false);
    expect(ev(`contains('["ab"]', 'a')`)).toBe(true);
    expect(ev(`startsWith(fromJSON('{"a": 1}'), '{')`)).toBe(false);
    // Function names ignore case too.
    expect(ev("STARTSWITH('abc', 'A') && fromJson('1') == 1")).toBe(true);
  });

  it('parses JSON with fromJSON() and reads fields and items of the result', () => {
    const s = scope({ 'steps.h.outputs.body': '{"status": "ok", "checks": [{"name": "db", "latencyMs": 12}], "n": "7"}' });
    const ev = (src: string) => evaluate(parseExpression(src), s);
    expect(ev("fromJSON(steps.h.outputs.body).status == 'ok'")).toBe(true);
    expect(ev('fromJSON(steps.h.outputs.body).checks[0].latencyMs < 50')).toBe(true);
    expect(ev("fromJSON(steps.h.outputs.body)['checks'][0]['name']")).toBe('db');
    expect(ev('fromJSON(steps.h.outputs.body).missing')).toBe(null);
    expect(ev('fromJSON(steps.h.outputs.body).checks[5]')).toBe(null);
    expect(ev('fromJSON(steps.h.outputs.body).constructor')).toBe(null);
    expect(ev('fromJSON(steps.h.outputs.body).checks')).toEqual([{ name: 'db', latencyMs: 12 }]);
    expect(ev("fromJSON('true') && fromJSON('null') == null")).toBe(true);
    // Lists and mappings are truthy, and text in interpolation as their JSON.
    expect(ev("fromJSON('[]') && true")).toBe(true);
    expect(formatValue(ev(`fromJSON('{"a": [1, "x"]}')`))).toBe('{"a":[1,"x"]}');
  });

  it('fails evaluation, not parsing, when fromJSON() is given text that is not JSON', () => {
    const expr = parseExpression('vars.x == 1 || fromJSON(steps.a.outputs.stdout).ok');
    try {
      evaluate(expr, scope({ 'steps.a.outputs.stdout': 'not json' }));
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ExpressionEvalError);
      // The runner refuses it wherever it refuses a bad expression.
      expect(e).toBeInstanceOf(ExpressionSyntaxError);
      expect((e as ExpressionEvalError).offset).toBe(15);
      expect((e as Error).message).toMatch(/^fromJSON\(\): /);
    }
    expect(() => evaluate(parseExpression("fromJSON(fromJSON('[1]'))"), scope({}))).toThrow(/fromJSON\(\) takes text, not a list/);
  });

  it('reports the exact offset of a bad token, and names the known functions', () => {
    const offsetOf = (f: () => unknown): number => {
      try {
        f();
      } catch (e) {
        if (e instanceof ExpressionSyntaxError) return e.offset;
        throw e;
      }
      throw new Error('no error');
    };
    expect(offsetOf(() => parseExpression('steps.a.outputs.exitCode >> 3'))).toBe(26);
    expect(offsetOf(() => parseCondition('${{ steps.a.outputs.exitCode >> 3 }}'))).toBe(30);
    expect(offsetOf(() => parseExpression('vars.a <'))).toBe(8);
    expect(offsetOf(() => parseExpression('vars.a => 1'))).toBe(7);
    expect(offsetOf(() => parseExpression("contains('a', 'b'"))).toBe(17);
    expect(offsetOf(() => parseExpression("1 == contians('a', 'b')"))).toBe(5);
    expect(offsetOf(() => parseExpression("fromJSON('[1]')[0"))).toBe(17);
    expect(() => parseExpression("contians('a', 'b')")).toThrow(
      "unknown function 'contians()' (did you mean 'contains()'?); known: contains(), startsWith(), endsWith(), fromJSON(), success(), failure(), always()",
    );
    expect(() => parseExpression('vars.a => 1')).toThrow(/unexpected '=' \(compare with ==\)/);
    expect(() => parseExpression("contains('a')")).toThrow('contains() takes 2 arguments (search, item), not 1');
    expect(() => parseExpression('success(1)')).toThrow('success() takes no arguments, not 1');
    expect(() => parseExpression('fromJSON()')).toThrow('fromJSON() takes 1 argument (text), not 0');
    expect(() => parseExpression("contains('a', 'b',)")).toThrow(/unexpected '\)'/);
  });

  it('finds references and status functions inside calls and property access', () => {
    const e = parseExpression('contains(fromJSON(steps.a.outputs.list)[vars.i], env.X) && !failure()');
    expect([...references(e)].map((r) => r.ref)).toEqual([
      { kind: 'step-output', step: 'a', name: 'list' },
      { kind: 'var', name: 'i' },
      { kind: 'env', name: 'X' },
    ]);
    expect(usesStatusFunction(e)).toBe(true);
    expect(usesStatusFunction(parseExpression("contains(vars.a, 'b')"))).toBe(false);
    // A status function inside a call still counts: the step then runs after a failure too.
    expect(shouldRun(parseExpression("contains('ab', 'a') && always()"), scope({}, true))).toBe(true);
    expect(shouldRun(parseExpression("contains('ab', 'a')"), scope({}, true))).toBe(false);
  });

  it('interpolates any expression but a status function into with: strings', () => {
    const values: Record<string, Value> = { 'steps.a.outputs.stdout': '{"version": "1.4.2", "replicas": [1, 2]}', 'vars.n': 4 };
    const resolve = (r: Reference) => scope(values).resolve(r);
    expect(
      interpolateDeep(
        {
          message: "v${{ fromJSON(steps.a.outputs.stdout).version }} big=${{ vars.n > 3 }} ${{ startsWith('abc', 'A') }}",
          replicas: '${{ fromJSON(steps.a.outputs.stdout).replicas }}',
        },
        resolve,
      ),
    ).toEqual({ message: 'v1.4.2 big=true true', replicas: [1, 2] });
    expect(() => interpolateDeep({ m: 'ok: ${{ success() }}' }, resolve)).toThrow(UnresolvedReference);
    expect(() => interpolateDeep({ m: 'ok: ${{ success() }}' }, resolve)).toThrow('success() can only be used in if:');
    // Text that is not JSON fails the step cleanly, like an output that is missing.
    expect(() => interpolateDeep({ m: "${{ fromJSON('{oops') }}" }, resolve)).toThrow(UnresolvedReference);
  });
});
