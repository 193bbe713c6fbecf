import type { StepTemplates } from '../steps/types.js';
/**
 * The `${{ ... }}` expression language of playbooks, after GitHub Actions: references to vars, env and
 * earlier steps, literals, `!`, `<` `<=` `>` `>=`, `==` `!=`, `&&` `||` (tightest first), parentheses,
 * property access on values from `fromJSON()`, the functions `contains`, `startsWith`, `endsWith`,
 * `fromJSON` and the status functions `success()`, `failure()`, `always()`.
 * Pure: parsing and evaluation take no I/O. docs/playbooks.md describes the semantics.
 */
import { didYouMean } from '../util/suggest.js';

export type Literal = string | number | boolean | null;

/** What an expression yields: a literal, or a list or mapping parsed by fromJSON(). */
export type Value = Literal | readonly Value[] | { readonly [key: string]: Value };

export type Reference =
  { kind: 'var'; name: string } | { kind: 'env'; name: string } | { kind: 'step-output'; step: string; name: string } | { kind: 'step-outcome'; step: string };

/** The functions an expression may call, with the names of their parameters (for messages). */
const FUNCTIONS = {
  contains: ['search', 'item'],
  startsWith: ['searchString', 'searchValue'],
  endsWith: ['searchString', 'searchValue'],
  fromJSON: ['text'],
  success: [],
  failure: [],
  always: [],
} as const satisfies Record<string, readonly string[]>;

export type FunctionName = keyof typeof FUNCTIONS;
export type StatusFunction = 'success' | 'failure' | 'always';
export const FUNCTION_NAMES = Object.keys(FUNCTIONS) as FunctionName[];

export function isStatusFunction(fn: FunctionName): fn is StatusFunction {
  return fn === 'success' || fn === 'failure' || fn === 'always';
}

export type BinaryOp = '==' | '!=' | '<' | '<=' | '>' | '>=' | '&&' | '||';

export type Expr =
  | { type: 'literal'; value: Literal; offset: number }
  | { type: 'ref'; ref: Reference; offset: number }
  | { type: 'call'; fn: FunctionName; args: Expr[]; offset: number }
  /** `object.key` or `object[key]`, on what fromJSON() gave. */
  | { type: 'member'; object: Expr; key: Expr; offset: number }
  | { type: 'not'; operand: Expr; offset: number }
  | { type: 'binary'; op: BinaryOp; left: Expr; right: Expr; offset: number };

/** A syntax error at `offset` characters into the expression text. */
export class ExpressionSyntaxError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

/**
 * A well-formed expression that cannot be evaluated (fromJSON of text that is not JSON). A subclass of
 * the syntax error so that every caller that refuses a bad expression refuses this one the same way.
 */
export class ExpressionEvalError extends ExpressionSyntaxError {}

type Punct = '==' | '!=' | '<=' | '>=' | '&&' | '||' | '<' | '>' | '!' | '(' | ')' | '[' | ']' | '.' | ',';

type Token =
  | { t: 'ident'; v: string; o: number }
  | { t: 'str'; v: string; o: number }
  | { t: 'num'; v: number; o: number }
  | { t: 'op'; v: Punct; o: number }
  | { t: 'end'; o: number };

const TWO_CHAR: readonly string[] = ['==', '!=', '<=', '>=', '&&', '||'];
const ONE_CHAR: readonly string[] = ['<', '>', '!', '(', ')', '[', ']', '.', ','];
const NUMBER = /^-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/;
const IDENT = /^[A-Za-z_][A-Za-z0-9_-]*/;

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
    if (TWO_CHAR.includes(two)) {
      tokens.push({ t: 'op', v: two as Punct, o: i });
      i += 2;
      continue;
    }
    if (ONE_CHAR.includes(c)) {
      tokens.push({ t: 'op', v: c as Punct, o: i });
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
    if (c === '=') throw new ExpressionSyntaxError("unexpected '=' (compare with ==)", i);
    const num = NUMBER.exec(src.slice(i));
    if (num) {
      tokens.push({ t: 'num', v: Number(num[0]), o: i });
      i += num[0].length;
      continue;
    }
    const ident = IDENT.exec(src.slice(i));
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

/** Function names are matched ignoring case, as GitHub Actions does (fromJson() is fromJSON()). */
const FUNCTION_BY_LOWER = new Map(FUNCTION_NAMES.map((n) => [n.toLowerCase(), n]));

class Parser {
  private pos = 0;
  constructor(private readonly tokens: Token[]) {}

  private peek(): Token {
    return this.tokens[this.pos] as Token;
  }
  private next(): Token {
    return this.tokens[this.pos++] as Token;
  }
  private isOp(...vs: Punct[]): boolean {
    const t = this.peek();
    return t.t === 'op' && vs.includes(t.v);
  }
  private expectOp(v: Punct, what: string): void {
    const t = this.next();
    if (t.t !== 'op' || t.v !== v) throw new ExpressionSyntaxError(`expected ${what}`, t.o);
  }

  parse(): Expr {
    const e = this.or();
    const t = this.peek();
    if (t.t !== 'end') throw new ExpressionSyntaxError(`unexpected ${describeToken(t)} after the expression`, t.o);
    return e;
  }
  /** One level of left-associative binary operators. */
  private binary(ops: BinaryOp[], operand: () => Expr): Expr {
    let left = operand();
    while (this.isOp(...ops)) {
      const t = this.next() as { v: BinaryOp; o: number };
      left = { type: 'binary', op: t.v, left, right: operand(), offset: t.o };
    }
    return left;
  }
  private or(): Expr {
    return this.binary(['||'], () => this.and());
  }
  private and(): Expr {
    return this.binary(['&&'], () => this.equality());
  }
  private equality(): Expr {
    return this.binary(['==', '!='], () => this.comparison());
  }
  private comparison(): Expr {
    return this.binary(['<', '<=', '>', '>='], () => this.unary());
  }
  private unary(): Expr {
    if (this.isOp('!')) {
      const o = this.next().o;
      return { type: 'not', operand: this.unary(), offset: o };
    }
    return this.postfix(this.primary());
  }
  /** `.name` and `[expr]` after a value. */
  private postfix(e: Expr): Expr {
    for (;;) {
      if (this.isOp('.')) {
        const dot = this.next();
        const name = this.next();
        if (name.t !== 'ident') throw new ExpressionSyntaxError('expected a name after "."', name.o);
        e = { type: 'member', object: e, key: { type: 'literal', value: name.v, offset: name.o }, offset: dot.o };
      } else if (this.isOp('[')) {
        const open = this.next();
        const key = this.or();
        this.expectOp(']', "']'");
        e = { type: 'member', object: e, key, offset: open.o };
      } else {
        return e;
      }
    }
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
    if (this.isOp('(')) return this.call(t);
    const parts = [t.v];
    while (this.isOp('.')) {
      this.next();
      const p = this.next();
      if (p.t !== 'ident') throw new ExpressionSyntaxError('expected a name after "."', p.o);
      parts.push(p.v);
    }
    return { type: 'ref', ref: toReference(parts, t.o), offset: t.o };
  }
  private call(t: { v: string; o: number }): Expr {
    const fn = FUNCTION_BY_LOWER.get(t.v.toLowerCase());
    if (fn === undefined) {
      const hint = didYouMean(t.v, FUNCTION_NAMES, (n) => `'${n}()'`);
      const known = FUNCTION_NAMES.map((n) => `${n}()`).join(', ');
      throw new ExpressionSyntaxError(`unknown function '${t.v}()'${hint}; known: ${known}`, t.o);
    }
    this.next();
    const args: Expr[] = [];
    if (!this.isOp(')')) {
      for (;;) {
        args.push(this.or());
        if (!this.isOp(',')) break;
        this.next();
      }
    }
    this.expectOp(')', args.length ? "',' or ')'" : "')'");
    const params: readonly string[] = FUNCTIONS[fn];
    if (args.length !== params.length) {
      const wanted = params.length === 0 ? 'no arguments' : `${params.length} argument${params.length === 1 ? '' : 's'} (${params.join(', ')})`;
      throw new ExpressionSyntaxError(`${fn}() takes ${wanted}, not ${args.length}`, t.o);
    }
    return { type: 'call', fn, args, offset: t.o };
  }
}

function describeToken(t: Token): string {
  switch (t.t) {
    case 'ident':
      return `'${t.v}'`;
    case 'str':
      return 'a string';
    case 'num':
      return `'${t.v}'`;
    case 'op':
      return `'${t.v}'`;
    case 'end':
      return 'end';
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
  throw new ExpressionSyntaxError(`unknown reference '${path}' (use vars.X, env.X, steps.ID.outputs.X or steps.ID.outcome)`, offset);
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

/** Every node of an expression, the node itself first. */
export function* walk(e: Expr): Generator<Expr> {
  yield e;
  switch (e.type) {
    case 'not':
      yield* walk(e.operand);
      return;
    case 'binary':
      yield* walk(e.left);
      yield* walk(e.right);
      return;
    case 'call':
      for (const a of e.args) yield* walk(a);
      return;
    case 'member':
      yield* walk(e.object);
      yield* walk(e.key);
      return;
    case 'literal':
    case 'ref':
      return;
  }
}

export function* references(e: Expr): Generator<{ ref: Reference; offset: number }> {
  for (const node of walk(e)) if (node.type === 'ref') yield { ref: node.ref, offset: node.offset };
}

/** The calls of success(), failure() and always() in an expression, with their offsets. */
export function* statusCalls(e: Expr): Generator<{ fn: StatusFunction; offset: number }> {
  for (const node of walk(e)) if (node.type === 'call' && isStatusFunction(node.fn)) yield { fn: node.fn, offset: node.offset };
}

export function usesStatusFunction(e: Expr): boolean {
  return !statusCalls(e).next().done;
}

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
      return call(
        e.fn,
        e.args.map((a) => evaluate(a, scope)),
        e.offset,
        scope,
      );
    case 'member':
      return member(evaluate(e.object, scope), evaluate(e.key, scope));
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
      const l = evaluate(e.left, scope);
      const r = evaluate(e.right, scope);
      switch (e.op) {
        case '==':
          return looseEquals(l, r);
        case '!=':
          return !looseEquals(l, r);
        default: {
          const o = order(l, r);
          if (o === undefined) return false;
          return e.op === '<' ? o < 0 : e.op === '<=' ? o <= 0 : e.op === '>' ? o > 0 : o >= 0;
        }
      }
    }
  }
}

function call(fn: FunctionName, args: Value[], offset: number, scope: EvalScope): Value {
  const [a = null, b = null] = args;
  switch (fn) {
    case 'success':
      return !scope.failed;
    case 'failure':
      return scope.failed;
    case 'always':
      return true;
    case 'contains':
      if (Array.isArray(a)) return a.some((item: Value) => looseEquals(item, b));
      return isText(a) && isText(b) && formatValue(a).toLowerCase().includes(formatValue(b).toLowerCase());
    case 'startsWith':
      return isText(a) && isText(b) && formatValue(a).toLowerCase().startsWith(formatValue(b).toLowerCase());
    case 'endsWith':
      return isText(a) && isText(b) && formatValue(a).toLowerCase().endsWith(formatValue(b).toLowerCase());
    case 'fromJSON': {
      if (!isText(a)) throw new ExpressionEvalError(`fromJSON() takes text, not ${Array.isArray(a) ? 'a list' : 'a mapping'}`, offset);
      try {
        return JSON.parse(formatValue(a)) as Value;
      } catch (e) {
        throw new ExpressionEvalError(`fromJSON(): ${(e as Error).message}`, offset);
      }
    }
  }
}

/** A literal (not a list or mapping): what the string functions work on, as text. */
function isText(v: Value): v is Literal {
  return v === null || typeof v !== 'object';
}

function member(object: Value, key: Value): Value {
  if (Array.isArray(object)) {
    return typeof key === 'number' && Number.isInteger(key) && key >= 0 && key < object.length ? (object[key] as Value) : null;
  }
  if (object !== null && typeof object === 'object' && (typeof key === 'string' || typeof key === 'number')) {
    const map = object as { readonly [key: string]: Value };
    return Object.hasOwn(map, String(key)) ? (map[String(key)] as Value) : null;
  }
  return null;
}

const DECIMAL = /^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/;

/** The number a string is the decimal text of (surrounding blanks allowed), if it is one. */
function decimalNumber(s: string): number | undefined {
  const t = s.trim();
  return DECIMAL.test(t) ? Number(t) : undefined;
}

/** Strings compare case-sensitively; a number and its decimal text are equal (outputs are often text). */
function looseEquals(a: Value, b: Value): boolean {
  if (a === b) return true;
  if (typeof a === 'number' && typeof b === 'string') return decimalNumber(b) === a;
  if (typeof b === 'number' && typeof a === 'string') return decimalNumber(a) === b;
  return false;
}

/**
 * How `a` orders against `b`, consistent with ==: two numbers as numbers, two strings by character code
 * (case-sensitive), a number and a string as numbers when the string is decimal text, false before true,
 * null with null. Undefined (every ordering comparison false) otherwise: null against anything else, a
 * boolean against a non-boolean, lists, mappings, text that is not a number against a number.
 */
function order(a: Value, b: Value): -1 | 0 | 1 | undefined {
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'boolean' && typeof b === 'boolean') return a === b ? 0 : a ? 1 : -1;
  if (a === null && b === null) return 0;
  const x = typeof a === 'number' ? a : typeof a === 'string' && typeof b === 'number' ? decimalNumber(a) : undefined;
  const y = typeof b === 'number' ? b : typeof b === 'string' && typeof a === 'number' ? decimalNumber(b) : undefined;
  if (x === undefined || y === undefined) return undefined;
  return x < y ? -1 : x > y ? 1 : 0;
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

/** A value as text: null is empty, a list or mapping is its JSON. */
export function formatValue(v: Value): string {
  if (v === null) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** Interpolate a string: a string that is exactly one `${{ }}` keeps the value's type. */
export function interpolate(src: string, resolve: (e: Expr) => Value): Value {
  const parts = parseTemplate(src);
  const only = parts.length === 1 ? parts[0] : undefined;
  if (only && 'expr' in only) return resolve(only.expr);
  return parts.map((p) => ('text' in p ? p.text : formatValue(resolve(p.expr)))).join('');
}

export type { StepTemplates };

// Private-use characters: no playbook text has them, and they are no expression.
const TEMPLATE_MARK = '\ue000template:';

/** `with` with the kind's placeholders replaced by marks that are no expression, under the template paths only. */
export function protectTemplates(w: unknown, t: StepTemplates | undefined): unknown {
  if (!t) return w;
  const names = new RegExp(`\\$\\{\\{\\s*(${t.names.map((n) => n.replace(/[^\w]/g, '')).join('|')})\\s*\\}\\}`, 'g');
  const mark = (v: unknown): unknown =>
    typeof v === 'string'
      ? v.replace(names, (_m, name: string) => `${TEMPLATE_MARK}${name}\ue001`)
      : Array.isArray(v)
        ? v.map(mark)
        : v !== null && typeof v === 'object'
          ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, mark(x)]))
          : v;
  const walk = (v: unknown, path: readonly string[]): unknown => {
    if (t.paths.some((p) => p.length === path.length && p.every((k, i) => k === path[i]))) return mark(v);
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, [...path, k])]));
  };
  return walk(w, []);
}

/** The placeholders back as the step kind expects them: `${{ weight }}`. */
export function restoreTemplates(v: unknown): unknown {
  if (typeof v === 'string') return v.includes(TEMPLATE_MARK) ? v.replace(/\ue000template:(\w+)\ue001/g, (_m, name: string) => `\${{ ${name} }}`) : v;
  if (Array.isArray(v)) return v.map(restoreTemplates);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, restoreTemplates(x)]));
  return v;
}
