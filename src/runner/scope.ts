import { readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { PlaybookError, UsageError, type Diagnostic } from '../errors.js';
import {
  evaluate,
  ExpressionEvalError,
  formatValue,
  interpolate,
  protectTemplates,
  restoreTemplates,
  statusCalls,
  type Expr,
  type StepTemplates,
  type Literal,
  type Reference,
  type Value,
} from '../playbook/expressions.js';
import type { LoadedPlaybook } from '../playbook/load.js';
import type { PlaybookSpec } from '../playbook/schema.js';
import type { StepOutputs } from '../steps/types.js';
import { Redactor } from '../util/redact.js';
import { didYouMean } from '../util/suggest.js';
import type { StepOutcome } from './events.js';

export interface ResolvedVars {
  /** Vars are scalars: an expression that gives a list or mapping is kept as its JSON text. */
  values: Record<string, Literal>;
  secretNames: Set<string>;
  /** With allowMissing: why a var was left without a value when there is more to say (its file cannot be read). */
  missing?: Map<string, Diagnostic>;
}

/** A reference that has no value at run time (an unset env var, an output a step did not give). */
export class UnresolvedReference extends Error {
  constructor(
    message: string,
    /** Where in the playbook, when known more precisely than the step's `with`. */
    readonly at?: { line: number; col: number },
  ) {
    super(message);
  }
}

/** Parse `--var KEY=VALUE` flags. */
export function parseVarFlags(flags: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const flag of flags) {
    const eq = flag.indexOf('=');
    if (eq <= 0) throw new UsageError(`--var ${flag}: expected KEY=VALUE`);
    out[flag.slice(0, eq)] = flag.slice(eq + 1);
  }
  return out;
}

/**
 * Resolve the playbook's vars: `--var` overrides, then the declared value with its `${{ env.X }}` filled
 * in, or the contents of the declared file.
 */
export function resolveVars(
  pb: LoadedPlaybook,
  overrides: Record<string, string>,
  env: NodeJS.ProcessEnv,
  /** For a plan: a var with no value yet (or an unreadable file) is shown as <vars.X> instead of refused. */
  opts: { allowMissing?: boolean } = {},
): ResolvedVars {
  const declared = pb.spec.vars ?? {};
  for (const key of Object.keys(overrides)) {
    if (!(key in declared)) {
      const known = Object.keys(declared);
      throw new UsageError(
        `--var ${key}: ${pb.file} declares no var '${key}'${didYouMean(key, known) || (known.length ? ` (declared: ${known.join(', ')})` : '')}`,
      );
    }
  }
  const values: Record<string, Literal> = {};
  const secretNames = new Set<string>();
  const missing = new Map<string, Diagnostic>();
  const fromEnv = (src: string): Value =>
    interpolate(src, (e) =>
      evaluateWith(e, (ref) => {
        if (ref.kind !== 'env') throw new UnresolvedReference('vars may only refer to env.X');
        const v = env[ref.name];
        if (v === undefined) throw new UnresolvedReference(`env.${ref.name} is not set`);
        return v;
      }),
    );
  for (const [name, decl] of Object.entries(declared)) {
    if (typeof decl === 'object' && decl.secret) secretNames.add(name);
    const override = overrides[name];
    if (override !== undefined) {
      // What the operator types is taken literally: no ${{ }} in --var values.
      values[name] = override;
      continue;
    }
    const r = resolveDeclared(name, decl, pb.dir, fromEnv);
    if ('value' in r) {
      values[name] = r.value;
      continue;
    }
    // A plan goes on without it (a file may exist only where the run happens); preflight lists every one.
    if ('unset' in r && opts.allowMissing) continue;
    const field = typeof decl === 'object' ? (decl.file !== undefined ? 'file' : 'value') : undefined;
    const at = pb.locate(field === undefined ? ['vars', name] : ['vars', name, field]);
    const problem: Diagnostic = { file: pb.file, ...at, message: 'unset' in r ? `vars.${name} has no value: pass --var ${name}=VALUE` : r.problem };
    if (!opts.allowMissing) throw new PlaybookError([problem]);
    missing.set(name, problem);
  }
  return { values, secretNames, ...(missing.size > 0 ? { missing } : {}) };
}

type VarDeclaration = NonNullable<PlaybookSpec['vars']>[string];

/** One declared var's value: from its file, or its value with `${{ env.X }}` filled in. */
function resolveDeclared(
  name: string,
  decl: VarDeclaration,
  dir: string,
  fromEnv: (src: string) => Value,
): { value: Literal } | { unset: true } | { problem: string } {
  const isObject = typeof decl === 'object';
  if (isObject && decl.file !== undefined) {
    let file: string;
    try {
      file = formatValue(fromEnv(decl.file));
    } catch (e) {
      if (!(e instanceof UnresolvedReference)) throw e;
      return { problem: `vars.${name}.file: ${e.message}` };
    }
    const text = readVarFile(dir, file);
    return text.ok ? { value: text.value } : { problem: `vars.${name}.file: cannot read ${file} (${text.why})` };
  }
  const raw = isObject ? decl.value : decl;
  if (raw === undefined) return { unset: true };
  if (typeof raw !== 'string') return { value: raw };
  try {
    const value = fromEnv(raw);
    return { value: value !== null && typeof value === 'object' ? formatValue(value) : value };
  } catch (e) {
    if (!(e instanceof UnresolvedReference)) throw e;
    return { problem: `vars.${name}: ${e.message}` };
  }
}

/** A var file's text, relative to the playbook's folder, less one trailing newline. */
function readVarFile(dir: string, file: string): { ok: true; value: string } | { ok: false; why: string } {
  try {
    const text = readFileSync(resolvePath(dir, file), 'utf8');
    return { ok: true, value: text.endsWith('\r\n') ? text.slice(0, -2) : text.endsWith('\n') ? text.slice(0, -1) : text };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'a directory' : (code ?? String(e));
    return { ok: false, why };
  }
}

/** The redactor for a run: secret vars, and every value given to an `env:` map in a step. */
export function buildRedactor(pb: LoadedPlaybook, vars: ResolvedVars): Redactor {
  const redactor = new Redactor();
  for (const name of vars.secretNames) {
    const secret = formatValue(vars.values[name] ?? null);
    redactor.add(secret);
    // A multi-line secret (a key file) is also hidden line by line, as a command may print one line of it.
    if (secret.includes('\n')) for (const line of secret.split(/\r?\n/)) redactor.add(line.trim());
  }
  for (const step of [...pb.steps, ...pb.rollback]) addEnvSecrets(redactor, step.with);
  return redactor;
}

/** Values under any `env:` key are secrets: tokens are passed to commands that way. */
/** Webhook channels whose URL carries the credential in its path. */
const SECRET_URL_CHANNELS = new Set(['slack', 'teams']);

/**
 * Values that are credentials whatever var they came from, added to the redactor: every value of an
 * `env:` or `headers:` map (an exec step's environment, an HTTP or Prometheus Authorization header), a
 * PagerDuty `routingKey`, and the URL of a Slack or Teams webhook.
 */
export function addEnvSecrets(redactor: Redactor, value: unknown): void {
  if (value === null || typeof value !== 'object') return;
  const add = (secret: unknown): void => {
    if (typeof secret === 'string' && !secret.includes('${{')) redactor.add(secret);
  };
  const o = value as Record<string, unknown>;
  for (const [k, v] of Object.entries(o)) {
    if ((k === 'env' || k === 'headers') && v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const secret of Object.values(v)) add(secret);
    } else if (k === 'routingKey' || (k === 'url' && typeof o.channel === 'string' && SECRET_URL_CHANNELS.has(o.channel))) {
      add(v);
    } else {
      addEnvSecrets(redactor, v);
    }
  }
}

export interface StepState {
  outcome: StepOutcome;
  outputs: StepOutputs;
}

/** Looks up references against the vars, the environment and the steps that ran. */
export class References {
  constructor(
    private readonly vars: ResolvedVars,
    private readonly env: NodeJS.ProcessEnv,
    private readonly steps: ReadonlyMap<string, StepState>,
  ) {}

  /** Strict lookup for interpolation: a missing value is an error, not an empty string. */
  value(ref: Reference): Value {
    switch (ref.kind) {
      case 'var': {
        const v = this.vars.values[ref.name];
        if (v === undefined) throw new UnresolvedReference(`vars.${ref.name} has no value`);
        return v;
      }
      case 'env': {
        const v = this.env[ref.name];
        if (v === undefined) throw new UnresolvedReference(`env.${ref.name} is not set`);
        return v;
      }
      case 'step-outcome': {
        const s = this.steps.get(ref.step);
        if (!s) throw new UnresolvedReference(`step '${ref.step}' has not run`);
        return s.outcome;
      }
      case 'step-output': {
        const s = this.steps.get(ref.step);
        if (!s) throw new UnresolvedReference(`step '${ref.step}' has not run`);
        const v = s.outputs[ref.name];
        if (v === undefined) {
          const known = Object.keys(s.outputs);
          throw new UnresolvedReference(`step '${ref.step}' has no output '${ref.name}'${known.length ? ` (it has: ${known.join(', ')})` : ''}`);
        }
        return v;
      }
    }
  }

  /** Lenient lookup for conditions: what is missing compares as null. */
  lenient(ref: Reference): Value {
    try {
      return this.value(ref);
    } catch (e) {
      if (e instanceof UnresolvedReference) return null;
      throw e;
    }
  }
}

/**
 * Evaluate one interpolated expression (every kind but the status functions, which only mean
 * something in `if:`). A value that cannot be computed (fromJSON of text that is not JSON) is unresolved.
 */
function evaluateWith(e: Expr, resolve: (ref: Reference) => Value): Value {
  const status = statusCalls(e).next();
  if (!status.done) throw new UnresolvedReference(`${status.value.fn}() can only be used in if:`);
  try {
    return evaluate(e, { resolve, failed: false });
  } catch (err) {
    if (err instanceof ExpressionEvalError) throw new UnresolvedReference(err.message);
    throw err;
  }
}

/** Fill `${{ }}` in every string of a `with` block. */
/** A step's `with` filled in, the placeholders its kind fills itself (StepTemplates) left as they are. */
export function interpolateWith(w: unknown, templates: StepTemplates | undefined, resolve: (ref: Reference) => Value): unknown {
  return templates ? restoreTemplates(interpolateDeep(protectTemplates(w, templates), resolve)) : interpolateDeep(w, resolve);
}

export function interpolateDeep(value: unknown, resolve: (ref: Reference) => Value): unknown {
  if (typeof value === 'string') {
    if (!value.includes('${{')) return value;
    return interpolate(value, (e) => evaluateWith(e, resolve));
  }
  if (Array.isArray(value)) return value.map((v) => interpolateDeep(v, resolve));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolateDeep(v, resolve);
    return out;
  }
  return value;
}
