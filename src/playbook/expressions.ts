/**
 * The `${{ ... }}` expression language of playbooks: references to vars, env and earlier steps,
 * literals, `==` / `!=`, `&&` / `||` / `!`, parentheses and the status functions
 * `success()`, `failure()`, `always()`. Pure: parsing and evaluation take no I/O.
 */

export type Literal = string | number | boolean | null;

export type Reference =
  | { kind: 'var'; name: string }
  | { kind: 'env'; name: string }
  | { kind: 'step-output'; step: string; name: string }
  | { kind: 'step-outcome'; step: string };

export type Expr =
  | { type: 'literal'; value: Literal; offset: number }
  | { type: 'ref'; ref: Reference; offset: number }
  | { type: 'call'; fn: 'success' | 'failure' | 'always'; offset: number }
  | { type: 'not'; operand: Expr; offset: number }
  | { type: 'binary'; op: '==' | '!=' | '&&' | '||'; left: Expr; right: Expr; offset: number };

/** A syntax error at `offset` characters into the expression text. */
export class ExpressionSyntaxError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

type Token =
  | { t: 'ident'; v: string; o: number }
  | { t: 'str'; v: string; o: number }
  | { t: 'num'; v: number; o: number }
  | { t: 'op'; v: '==' | '!=' | '&&' | '||' | '!' | '(' | ')' | '.'; o: number }
  | { t: 'end'; o: number };

function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i] as string;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
      continue;
    }
    const two = src.slice(i, i + 2);
    if (two === '==' || two === '!=' || two === '&&' || two === '||') {
      tokens.push({ t: 'op', v: two, o: i });
      i += 2;
      continue;
    }
    if (c === '!' || c === '(' || c === ')' || c === '.') {
      tokens.push({ t: 'op', v: c, o: i });
      i++;
      continue;
    }
    if (c === "'") {
      // GitHub-style single-quoted string; '' is an escaped quote.
      let j = i + 1;
      let value = '';
      for (;;) {
        if (j >= src.length) throw new ExpressionSyntaxError('unterminated string literal', i);
        if (src[j] === "'") {
          if (src[j + 1] === "'") {
            value += "'";
            j += 2;
            continue;
          }
          break;
        }
        value += src[j];
        j++;
      }
      tokens.push({ t: 'str', v: value, o: i });
      i = j + 1;
      continue;
    }
    if (c === '"') throw new ExpressionSyntaxError("strings in expressions use single quotes: 'text'", i);
    const num = /^-?[0-9]+(\.[0-9]+)?/.exec(src.slice(i));
    if (num && (c === '-' || /[0-9]/.test(c))) {
      tokens.push({ t: 'num', v: Number(num[0]), o: i });
      i += num[0].length;
      continue;
    }
    const ident = /^[A-Za-z_][A-Za-z0-9_-]*/.exec(src.slice(i));
    if (ident) {
      tokens.push({ t: 'ident', v: ident[0], o: i });
      i += ident[0].length;
      continue;
    }
    throw new ExpressionSyntaxError(`unexpected character '${c}'`, i);
  }
  tokens.push({ t: 'end', o: src.length });
  return tokens;
}

class Parser {
  private pos = 0;
  constructor(private readonly tokens: Token[]) {}

  private peek(): Token {
    return this.tokens[this.pos] as Token;
  }
  private next(): Token {
    return this.tokens[this.pos++] as Token;
  }
  private isOp(v: string): boolean {
    const t = this.peek();
    return t.t === 'op' && t.v === v;
  }
  private expectOp(v: string, what: string): void {
    const t = this.next();
    if (t.t !== 'op' || t.v !== v) throw new ExpressionSyntaxError(`expected ${what}`, t.o);
  }

  parse(): Expr {
    const e = this.or();
    const t = this.peek();
    if (t.t !== 'end') throw new ExpressionSyntaxError('unexpected text after the expression', t.o);
    return e;
  }
  private or(): Expr {
    let left = this.and();
    while (this.isOp('||')) {
      const o = this.next().o;
      left = { type: 'binary', op: '||', left, right: this.and(), offset: o };
    }
    return left;
  }
  private and(): Expr {
    let left = this.equality();
    while (this.isOp('&&')) {
      const o = this.next().o;
      left = { type: 'binary', op: '&&', left, right: this.equality(), offset: o };
    }
    return left;
  }
  private equality(): Expr {
    let left = this.unary();
    while (this.isOp('==') || this.isOp('!=')) {
      const t = this.next() as { v: '==' | '!='; o: number };
      left = { type: 'binary', op: t.v, left, right: this.unary(), offset: t.o };
    }
    return left;
  }
  private unary(): Expr {
    if (this.isOp('!')) {
      const o = this.next().o;
      return { type: 'not', operand: this.unary(), offset: o };
    }
    return this.primary();
  }
  private primary(): Expr {
    const t = this.next();
    switch (t.t) {
      case 'str':
        return { type: 'literal', value: t.v, offset: t.o };
      case 'num':
        return { type: 'literal', value: t.v, offset: t.o };
      case 'op':
        if (t.v === '(') {
          const inner = this.or();
          this.expectOp(')', "')'");
          return inner;
        }
        throw new ExpressionSyntaxError(`unexpected '${t.v}'`, t.o);
      case 'end':
        throw new ExpressionSyntaxError('expression is incomplete', t.o);
      case 'ident':
        return this.identifier(t);
    }
  }
  private identifier(t: { v: string; o: number }): Expr {
    if (t.v === 'true' || t.v === 'false') return { type: 'literal', value: t.v === 'true', offset: t.o };
    if (t.v === 'null') return { type: 'literal', value: null, offset: t.o };
    if (this.isOp('(')) {
      this.next();
      this.expectOp(')', "')' (status functions take no arguments)");
      if (t.v === 'success' || t.v === 'failure' || t.v === 'always') return { type: 'call', fn: t.v, offset: t.o };
      throw new ExpressionSyntaxError(`unknown function '${t.v}()' (known: success(), failure(), always())`, t.o);
    }
    const parts = [t.v];
    while (this.isOp('.')) {
      this.next();
      const p = this.next();
      if (p.t !== 'ident') throw new ExpressionSyntaxError('expected a name after "."', p.o);
      parts.push(p.v);
    }
    return { type: 'ref', ref: toReference(parts, t.o), offset: t.o };
  }
}

function toReference(parts: string[], offset: number): Reference {
  const [root, a, b, c, ...rest] = parts;
  const path = parts.join('.');
  if (root === 'vars' && a !== undefined && b === undefined) return { kind: 'var', name: a };
  if (root === 'env' && a !== undefined && b === undefined) return { kind: 'env', name: a };
  if (root === 'steps' && a !== undefined) {
    if (b === 'outcome' && c === undefined) return { kind: 'step-outcome', step: a };
    if (b === 'outputs' && c !== undefined && rest.length === 0) return { kind: 'step-output', step: a, name: c };
  }
  throw new ExpressionSyntaxError(
    `unknown reference '${path}' (use vars.X, env.X, steps.ID.outputs.X or steps.ID.outcome)`,
    offset,
  );
}

export function parseExpression(src: string): Expr {
  return new Parser(tokenize(src)).parse();
}

/** A piece of a string with `${{ }}` interpolations. */
export type TemplatePart = { text: string } | { expr: Expr; source: string; offset: number };

/** Split a string into literal text and `${{ expr }}` parts; offsets are into `src`. */
export function parseTemplate(src: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let i = 0;
  while (i < src.length) {
    const start = src.indexOf('${{', i);
    if (start < 0) {
      parts.push({ text: src.slice(i) });
      break;
    }
    if (start > i) parts.push({ text: src.slice(i, start) });
    const end = src.indexOf('}}', start + 3);
    if (end < 0) throw new ExpressionSyntaxError("'${{' is not closed by '}}'", start);
    const source = src.slice(start + 3, end);
    if (source.trim() === '') throw new ExpressionSyntaxError('empty expression', start);
    try {
      parts.push({ expr: parseExpression(source), source: source.trim(), offset: start });
    } catch (e) {
      if (e instanceof ExpressionSyntaxError) throw new ExpressionSyntaxError(e.message, start + 3 + e.offset);
      throw e;
    }
    i = end + 2;
  }
  return parts;
}

/** True when the text contains an interpolation. */
export function hasTemplate(src: string): boolean {
  return src.includes('${{');
}

/** `if:` accepts a bare expression or one wrapped in `${{ }}`, as GitHub Actions does. */
export function parseCondition(src: string): { expr: Expr; offset: number } {
  const trimmed = src.trim();
  const lead = src.indexOf(trimmed);
  if (trimmed.startsWith('${{') && trimmed.endsWith('}}') && trimmed.indexOf('${{', 3) < 0) {
    const inner = trimmed.slice(3, -2);
    try {
      return { expr: parseExpression(inner), offset: lead + 3 };
    } catch (e) {
      if (e instanceof ExpressionSyntaxError) throw new ExpressionSyntaxError(e.message, lead + 3 + e.offset);
      throw e;
    }
  }
  return { expr: parseExpression(src), offset: 0 };
}

export function* references(e: Expr): Generator<{ ref: Reference; offset: number }> {
  switch (e.type) {
    case 'ref':
      yield { ref: e.ref, offset: e.offset };
      return;
    case 'not':
      yield* references(e.operand);
      return;
    case 'binary':
      yield* references(e.left);
      yield* references(e.right);
      return;
    case 'literal':
    case 'call':
      return;
  }
}

export function usesStatusFunction(e: Expr): boolean {
  switch (e.type) {
    case 'call':
      return true;
    case 'not':
      return usesStatusFunction(e.operand);
    case 'binary':
      return usesStatusFunction(e.left) || usesStatusFunction(e.right);
    default:
      return false;
  }
}

export type Value = Literal;

/** What evaluation may look up; a missing reference is an error, not an empty string. */
export interface EvalScope {
  resolve(ref: Reference): Value;
  /** Whether an earlier step failed (and was not continueOnError). */
  failed: boolean;
}

export function evaluate(e: Expr, scope: EvalScope): Value {
  switch (e.type) {
    case 'literal':
      return e.value;
    case 'ref':
      return scope.resolve(e.ref);
    case 'call':
      return e.fn === 'always' ? true : e.fn === 'success' ? !scope.failed : scope.failed;
    case 'not':
      return !truthy(evaluate(e.operand, scope));
    case 'binary': {
      if (e.op === '&&') {
        const l = evaluate(e.left, scope);
        return truthy(l) ? evaluate(e.right, scope) : l;
      }
      if (e.op === '||') {
        const l = evaluate(e.left, scope);
        return truthy(l) ? l : evaluate(e.right, scope);
      }
      const eq = looseEquals(evaluate(e.left, scope), evaluate(e.right, scope));
      return e.op === '==' ? eq : !eq;
    }
  }
}

/** Strings compare case-sensitively; a number and its decimal text are equal (outputs are often text). */
function looseEquals(a: Value, b: Value): boolean {
  if (a === b) return true;
  if (typeof a === 'number' && typeof b === 'string') return b.trim() !== '' && Number(b) === a;
  if (typeof b === 'number' && typeof a === 'string') return a.trim() !== '' && Number(a) === b;
  return false;
}

export function truthy(v: Value): boolean {
  return v !== null && v !== false && v !== 0 && v !== '';
}

/** Whether a step runs: GitHub Actions' rule, an `if` without a status function means `success() && (if)`. */
export function shouldRun(condition: Expr | undefined, scope: EvalScope): boolean {
  if (!condition) return !scope.failed;
  if (!usesStatusFunction(condition)) return !scope.failed && truthy(evaluate(condition, scope));
  return truthy(evaluate(condition, scope));
}

export function formatValue(v: Value): string {
  return v === null ? '' : String(v);
}

/** Interpolate a string: a string that is exactly one `${{ }}` keeps the value's type. */
export function interpolate(src: string, resolve: (e: Expr) => Value): Value {
  const parts = parseTemplate(src);
  const only = parts.length === 1 ? parts[0] : undefined;
  if (only && 'expr' in only) return resolve(only.expr);
  return parts.map((p) => ('text' in p ? p.text : formatValue(resolve(p.expr)))).join('');
}
