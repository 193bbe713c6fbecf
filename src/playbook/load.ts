import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { InputError, PlaybookError, type Diagnostic } from '../errors.js';
import { closest, didYouMean } from '../util/suggest.js';
import { parseDuration } from '../util/duration.js';
import { ExpressionSyntaxError, parseCondition, parseTemplate, protectTemplates, references, statusCalls, type Expr, type Reference } from './expressions.js';
import { stepKind } from '../steps/registry.js';
import { playbookSchema, STEP_KINDS, type PlaybookSpec, type PlaybookStep, type RollbackStep } from './schema.js';

/** Larger than any sane playbook; a bigger file is refused before it is parsed. */
export const MAX_PLAYBOOK_BYTES = 1024 * 1024;

export type YamlPath = readonly (string | number)[];

/** A step ready for the runner: its id is set, its durations are milliseconds and its `if` is parsed. */
export interface RuntimeStep {
  id: string;
  uses: PlaybookStep['uses'];
  name: string | undefined;
  with: PlaybookStep['with'];
  timeoutMs: number | undefined;
  retries: number;
  retryDelayMs: number;
  condition: Expr | undefined;
  continueOnError: boolean;
  /** Where the step is in the YAML, to name line and column in run-time errors. */
  yamlPath: YamlPath;
}

export interface LoadedPlaybook {
  /** The path as the user gave it, for messages. */
  file: string;
  path: string;
  dir: string;
  sha256: string;
  spec: PlaybookSpec;
  steps: RuntimeStep[];
  rollback: RuntimeStep[];
  /** Line and column of a node in the playbook (the nearest existing ancestor when it is missing). */
  locate(path: YamlPath): { line: number; col: number };
}

export async function loadPlaybook(file: string): Promise<LoadedPlaybook> {
  const path = resolve(file);
  let size: number;
  try {
    const st = await stat(path);
    if (st.isDirectory()) throw new InputError(`${file}: is a directory, not a playbook`);
    size = st.size;
  } catch (e) {
    if (e instanceof InputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(`${file}: cannot read playbook (${code === 'ENOENT' ? 'no such file' : (code ?? String(e))})`);
  }
  if (size > MAX_PLAYBOOK_BYTES) {
    throw new PlaybookError([{ file, line: 1, col: 1, message: `file is ${(size / 1e6).toFixed(1)} MB; a playbook may be at most 1 MiB` }]);
  }
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new InputError(`${file}: cannot read playbook (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  return parsePlaybook(bytes, file, path);
}

function lineColAt(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, col: offset - lineStart + 1 };
}

/** Parse and check a playbook's bytes; `file` names it in messages, `path` is its absolute path. */
export function parsePlaybook(bytes: Buffer, file: string, path: string = resolve(file)): LoadedPlaybook {
  const fail = (line: number, col: number, message: string): never => {
    throw new PlaybookError([{ file, line, col, message }]);
  };
  const nul = bytes.indexOf(0);
  if (nul >= 0) {
    const at = lineColAt(bytes.subarray(0, nul).toString('latin1'), nul);
    fail(at.line, at.col, 'binary content (a NUL byte): a playbook is UTF-8 YAML text');
  }
  let text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  const bad = text.indexOf('\uFFFD');
  if (bad >= 0 && !bytes.includes(Buffer.from('\uFFFD'))) {
    const at = lineColAt(text, bad);
    fail(at.line, at.col, 'invalid UTF-8: a playbook is UTF-8 YAML text');
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.split('\n').every((l) => /^\s*(#.*)?$/.test(l))) fail(1, 1, 'the playbook is empty');

  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, version: '1.2' });
  const posAt = (offset: number): { line: number; col: number } => lineCounter.linePos(offset);
  if (doc.errors.length > 0) {
    // The first few YAML errors say what is wrong; the rest are mostly the parser's cascade.
    throw new PlaybookError(
      doc.errors.slice(0, 5).map((e) => ({
        file,
        ...posAt(e.pos[0]),
        message: e.code === 'MULTIPLE_DOCS' ? "YAML: a playbook is one document; remove the second '---'" : `YAML: ${e.message.split('\n')[0] ?? e.code}`,
      })),
    );
  }
  if (!isMap(doc.contents)) {
    const at = doc.contents?.range ? posAt(doc.contents.range[0]) : { line: 1, col: 1 };
    fail(at.line, at.col, 'a playbook is a YAML mapping (apiVersion, kind, metadata, steps, ...)');
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    fail(1, 1, `YAML: ${(e as Error).message}`);
  }

  const locator = new Locator(doc, text, lineCounter);
  const parsed = playbookSchema.safeParse(raw);
  if (!parsed.success) {
    const typos = misspeltKeys(parsed.error.issues, raw);
    throw new PlaybookError(sortDiagnostics(parsed.error.issues.flatMap((i) => issueDiagnostics(i, file, locator, raw, typos))));
  }
  const spec = parsed.data;
  const diagnostics = semanticChecks(spec, file, locator);
  if (diagnostics.length > 0) throw new PlaybookError(sortDiagnostics(diagnostics));

  const steps = spec.steps.map((s, i) => runtimeStep(s, s.id, ['steps', i]));
  const rollback = (spec.rollback ?? []).map((s, i) => runtimeStep(s, s.id ?? `rollback-${i + 1}`, ['rollback', i]));
  return {
    file,
    path,
    dir: dirname(path),
    sha256: createHash('sha256').update(bytes).digest('hex'),
    spec,
    steps,
    rollback,
    locate: (p) => locator.at(p),
  };
}

function runtimeStep(s: PlaybookStep | RollbackStep, id: string, yamlPath: YamlPath): RuntimeStep {
  return {
    id,
    uses: s.uses,
    name: s.name,
    with: s.with,
    timeoutMs: s.timeout === undefined ? undefined : parseDuration(s.timeout),
    retries: s.retries ?? 0,
    retryDelayMs: s.retryDelay === undefined ? 1_000 : (parseDuration(s.retryDelay) ?? 1_000),
    condition: s.if === undefined ? undefined : parseCondition(s.if).expr,
    continueOnError: s.continueOnError ?? false,
    yamlPath,
  };
}

function sortDiagnostics(ds: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return ds
    .filter((d) => {
      const key = `${d.line}:${d.col}:${d.message}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    })
    .sort((a, b) => a.line - b.line || a.col - b.col);
}

/** Finds YAML nodes by the path of keys and indices that zod and the checks speak in. */
class Locator {
  constructor(
    private readonly doc: Document,
    private readonly text: string,
    private readonly lineCounter: LineCounter,
  ) {}

  /** The node at `path`, or the nearest ancestor that exists; with `key`, the key of the last segment. */
  node(path: YamlPath, key = false): { node: Node | undefined; exact: boolean } {
    let current: unknown = this.doc.contents;
    let keyNode: Node | undefined;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i];
      if (isMap(current)) {
        const pair = current.items.find((p) => isPair(p) && (isScalar(p.key) ? p.key.value : p.key) === seg);
        if (!pair) return { node: current, exact: false };
        keyNode = isScalar(pair.key) ? pair.key : undefined;
        current = pair.value ?? pair.key;
      } else if (isSeq(current) && typeof seg === 'number') {
        const item: unknown = current.items[seg];
        if (item === undefined) return { node: current, exact: false };
        keyNode = undefined;
        current = item;
      } else {
        return { node: current as Node | undefined, exact: false };
      }
    }
    if (key && keyNode) return { node: keyNode, exact: true };
    return { node: current as Node | undefined, exact: true };
  }

  at(path: YamlPath, key = false): { line: number; col: number } {
    const { node } = this.node(path, key);
    return node?.range ? this.lineCounter.linePos(node.range[0]) : { line: 1, col: 1 };
  }

  /** Position of a character inside a string scalar; falls back to the scalar's start when it spans lines. */
  inScalar(path: YamlPath, offset: number): { line: number; col: number } {
    const { node } = this.node(path);
    if (!node?.range) return { line: 1, col: 1 };
    const start = node.range[0];
    const type = isScalar(node) ? node.type : undefined;
    const skip = type === 'QUOTE_DOUBLE' || type === 'QUOTE_SINGLE' ? 1 : type === 'PLAIN' ? 0 : undefined;
    if (skip === undefined) return this.lineCounter.linePos(start);
    const target = start + skip + offset;
    if (this.text.slice(start, target).includes('\n')) return this.lineCounter.linePos(start);
    return this.lineCounter.linePos(target);
  }
}

function pathText(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out || '(top level)';
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let current = raw;
  for (const seg of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[seg];
  }
  return current;
}

function describeType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return typeof v;
}

/** A key that looks like a typo, by its path as JSON: the key it was meant to be, and that key's path. */
type Typos = Map<string, { meant: string; meantPath: string }>;

function misspeltKeys(issues: readonly z.core.$ZodIssue[], raw: unknown): Typos {
  const typos: Typos = new Map();
  for (const issue of issues) {
    if (issue.code !== 'unrecognized_keys') continue;
    const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
    const known = knownKeys(playbookSchema, path, raw);
    for (const k of issue.keys) {
      const meant = closest(k, known);
      if (meant !== undefined) typos.set(JSON.stringify([...path, k]), { meant, meantPath: JSON.stringify([...path, meant]) });
    }
  }
  return typos;
}

function issueDiagnostics(issue: z.core.$ZodIssue, file: string, locator: Locator, raw: unknown, typos: Typos): Diagnostic[] {
  const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
  const where = pathText(path);
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => {
      const typo = typos.get(JSON.stringify([...path, k]));
      const hint = typo === undefined ? '' : ` (did you mean '${typo.meant}'?)`;
      return { file, ...locator.at([...path, k], true), message: `unknown key '${k}'${path.length ? ` in ${where}` : ''}${hint}` };
    });
  }
  const value = valueAt(raw, path);
  const missing = value === undefined;
  const last = path[path.length - 1];
  const pos = locator.at(path, false);
  if (issue.code === 'invalid_union' && 'discriminator' in issue && issue.discriminator === 'uses') {
    if (missing) return [{ file, ...pos, message: `${pathText(path.slice(0, -1))}: missing 'uses' (the step kind)` }];
    return [
      {
        file,
        ...pos,
        message: `${where}: unknown step kind '${String(value)}'${didYouMean(String(value), STEP_KINDS)}; known kinds: ${STEP_KINDS.join(', ')}`,
      },
    ];
  }
  if (issue.code === 'invalid_union' && 'discriminator' in issue && issue.discriminator === 'channel') {
    return [{ file, ...pos, message: `${where}: expected channel stdout, file or webhook` }];
  }
  if (missing && issue.code === 'invalid_type') {
    // `wiht:` is reported once, as a misspelt `with:`, not also as a missing `with:`.
    if ([...typos.values()].some((t) => t.meantPath === JSON.stringify(path))) return [];
    return [{ file, ...pos, message: `${pathText(path.slice(0, -1))}: missing required key '${String(last)}'` }];
  }
  if (issue.code === 'invalid_type') {
    return [{ file, ...pos, message: `${where}: expected ${issue.expected}, got ${describeType(value)}` }];
  }
  if (issue.code === 'invalid_value') {
    const expected = issue.values.map((v) => JSON.stringify(v)).join(' or ');
    return [{ file, ...pos, message: `${where}: expected ${expected}, got ${JSON.stringify(value) ?? 'nothing'}` }];
  }
  return [{ file, ...pos, message: `${where}: ${issue.message}` }];
}

/**
 * The keys the schema allows for the mapping at `path` in `raw`, to suggest one for a misspelt key. A
 * union offers the keys of every option, a discriminated union those of the option `raw` names.
 */
function knownKeys(schema: z.core.$ZodType, path: readonly (string | number)[], raw: unknown): string[] {
  const def = schema._zod.def;
  switch (def.type) {
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'nonoptional':
    case 'readonly':
    case 'catch':
      return knownKeys((def as z.core.$ZodOptionalDef).innerType, path, raw);
    case 'pipe':
      return knownKeys((def as z.core.$ZodPipeDef).in, path, raw);
    case 'array': {
      const [, ...rest] = path;
      return knownKeys((def as z.core.$ZodArrayDef).element, rest, valueAt(raw, path.slice(0, 1)));
    }
    case 'record': {
      const [, ...rest] = path;
      return knownKeys((def as z.core.$ZodRecordDef).valueType, rest, valueAt(raw, path.slice(0, 1)));
    }
    case 'union': {
      const union = def as z.core.$ZodDiscriminatedUnionDef;
      let options: readonly z.core.$ZodType[] = union.options;
      if (union.discriminator !== undefined) {
        const tag = valueAt(raw, [union.discriminator]);
        const chosen = options.filter((o) => {
          const d = o._zod.def;
          if (d.type !== 'object') return false;
          const lit = (d as z.core.$ZodObjectDef).shape[union.discriminator]?._zod.def;
          return lit?.type === 'literal' && (lit as z.core.$ZodLiteralDef<z.core.util.Literal>).values.some((v) => v === tag);
        });
        if (chosen.length > 0) options = chosen;
      }
      return [...new Set(options.flatMap((o) => knownKeys(o, path, raw)))];
    }
    case 'object': {
      const shape = (def as z.core.$ZodObjectDef).shape;
      const [head, ...rest] = path;
      if (head === undefined) return Object.keys(shape);
      const child = shape[String(head)];
      return child ? knownKeys(child, rest, valueAt(raw, [head])) : [];
    }
    default:
      return [];
  }
}

/** Checks zod cannot express: unique ids, and expressions that parse and name what exists earlier. */
function semanticChecks(spec: PlaybookSpec, file: string, locator: Locator): Diagnostic[] {
  const { diagnostics, stepIndex } = duplicateIds(spec, file, locator);
  return [...diagnostics, ...expressionChecks(spec, file, locator, stepIndex)];
}

/** Step ids are unique across steps and rollback steps (unnamed rollback steps are rollback-N). */
function duplicateIds(spec: PlaybookSpec, file: string, locator: Locator): { diagnostics: Diagnostic[]; stepIndex: Map<string, number> } {
  const out: Diagnostic[] = [];
  const firstSeen = new Map<string, number>();
  const stepIndex = new Map<string, number>();
  spec.steps.forEach((s, i) => {
    const prior = firstSeen.get(s.id);
    if (prior !== undefined) {
      out.push({
        file,
        ...locator.at(['steps', i, 'id']),
        message: `duplicate step id '${s.id}' (first used at line ${locator.at(['steps', prior, 'id']).line})`,
      });
    } else {
      firstSeen.set(s.id, i);
      stepIndex.set(s.id, i);
    }
  });
  (spec.rollback ?? []).forEach((s, i) => {
    const id = s.id ?? `rollback-${i + 1}`;
    if (firstSeen.has(id)) {
      const where = s.id === undefined ? locator.at(['rollback', i]) : locator.at(['rollback', i, 'id']);
      out.push({
        file,
        ...where,
        message: `duplicate step id '${id}'${s.id === undefined ? ' (the default id of this rollback step)' : ''} (also a step or rollback step)`,
      });
    }
    firstSeen.set(id, -1);
  });
  return { diagnostics: out, stepIndex };
}

type RefScope = { where: 'vars' } | { where: 'comms' } | { where: 'step'; index: number } | { where: 'rollback' };

/** What is wrong with a reference where it stands, if anything: vars see only env; steps see earlier steps. */
function refProblem(ref: Reference, scope: RefScope, vars: ReadonlySet<string>, stepIndex: ReadonlyMap<string, number>): string | undefined {
  switch (ref.kind) {
    case 'env':
      return undefined;
    case 'var': {
      if (scope.where === 'vars') return `vars may only refer to env.X, not vars.${ref.name}`;
      if (vars.has(ref.name)) return undefined;
      const hint = didYouMean(ref.name, vars);
      return `unknown var '${ref.name}'${hint || ' (not declared under vars:)'}`;
    }
    case 'step-output':
    case 'step-outcome': {
      if (scope.where === 'vars') return `vars may only refer to env.X, not steps.${ref.step}`;
      if (scope.where === 'comms') return `comms may refer to vars.X and env.X, not steps.${ref.step} (an update can go out before any step has run)`;
      const idx = stepIndex.get(ref.step);
      if (idx === undefined) return `unknown step '${ref.step}'${didYouMean(ref.step, stepIndex.keys())}`;
      if (scope.where === 'step' && idx >= scope.index) {
        return idx === scope.index
          ? `step '${ref.step}' cannot refer to itself`
          : `step '${ref.step}' runs after this one; only earlier steps can be referred to`;
      }
      return undefined;
    }
  }
}

/** Every expression parses, refers to what exists where it stands, and uses status functions only in if:. */
function expressionChecks(spec: PlaybookSpec, file: string, locator: Locator, stepIndex: ReadonlyMap<string, number>): Diagnostic[] {
  const out: Diagnostic[] = [];
  const vars = new Set(Object.keys(spec.vars ?? {}));
  const syntax = (path: YamlPath, e: ExpressionSyntaxError): void => {
    out.push({ file, ...locator.inScalar(path, e.offset), message: `${pathText(path)}: ${e.message}` });
  };
  const checkExpr = (e: Expr, base: number, path: YamlPath, scope: RefScope, condition = false): void => {
    for (const { ref, offset } of references(e)) {
      const problem = refProblem(ref, scope, vars, stepIndex);
      if (problem) out.push({ file, ...locator.inScalar(path, base + offset), message: `${pathText(path)}: ${problem}` });
    }
    if (condition) return;
    for (const { fn, offset } of statusCalls(e)) {
      out.push({ file, ...locator.inScalar(path, base + offset), message: `${pathText(path)}: ${fn}() can only be used in if:` });
    }
  };
  const walkStrings = (value: unknown, path: YamlPath, scope: RefScope): void => {
    if (typeof value === 'string') {
      if (!value.includes('${{')) return;
      try {
        for (const part of parseTemplate(value)) if ('expr' in part) checkExpr(part.expr, part.offset + 3, path, scope);
      } catch (e) {
        if (!(e instanceof ExpressionSyntaxError)) throw e;
        syntax(path, e);
      }
    } else if (Array.isArray(value)) {
      value.forEach((v, i) => walkStrings(v, [...path, i], scope));
    } else if (value !== null && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) walkStrings(v, [...path, k], scope);
    }
  };
  const checkStep = (s: PlaybookStep | RollbackStep, path: YamlPath, scope: RefScope): void => {
    if (s.if !== undefined) {
      try {
        const { expr, offset } = parseCondition(s.if);
        checkExpr(expr, offset, [...path, 'if'], scope, true);
      } catch (e) {
        if (!(e instanceof ExpressionSyntaxError)) throw e;
        syntax([...path, 'if'], e);
      }
    }
    walkStrings(protectTemplates(s.with, stepKind(s.uses).templates), [...path, 'with'], scope);
    if (s.name !== undefined) walkStrings(s.name, [...path, 'name'], scope);
  };
  for (const [name, v] of Object.entries(spec.vars ?? {})) walkStrings(v, ['vars', name], { where: 'vars' });
  if (spec.engine) walkStrings(spec.engine, ['engine'], { where: 'vars' });
  if (spec.comms) walkStrings(spec.comms, ['comms'], { where: 'comms' });
  spec.steps.forEach((s, i) => checkStep(s, ['steps', i], { where: 'step', index: i }));
  (spec.rollback ?? []).forEach((s, i) => checkStep(s, ['rollback', i], { where: 'rollback' }));
  return out;
}
