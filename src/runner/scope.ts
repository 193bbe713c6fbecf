import { PlaybookError, UsageError } from '../errors.js';
import { formatValue, interpolate, type Reference, type Value } from '../playbook/expressions.js';
import type { LoadedPlaybook } from '../playbook/load.js';
import type { StepOutputs } from '../steps/types.js';
import { Redactor } from '../util/redact.js';
import type { StepOutcome } from './events.js';

export interface ResolvedVars {
  values: Record<string, Value>;
  secretNames: Set<string>;
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

/** Resolve the playbook's vars: `--var` overrides, then the declared value with its `${{ env.X }}` filled in. */
export function resolveVars(
  pb: LoadedPlaybook,
  overrides: Record<string, string>,
  env: NodeJS.ProcessEnv,
  /** For a plan: a var with no value yet is shown as <vars.X> instead of refused. */
  opts: { allowMissing?: boolean } = {},
): ResolvedVars {
  const declared = pb.spec.vars ?? {};
  for (const key of Object.keys(overrides)) {
    if (!(key in declared)) {
      const known = Object.keys(declared);
      throw new UsageError(
        `--var ${key}: ${pb.file} declares no var '${key}'${known.length ? ` (declared: ${known.join(', ')})` : ''}`,
      );
    }
  }
  const values: Record<string, Value> = {};
  const secretNames = new Set<string>();
  for (const [name, decl] of Object.entries(declared)) {
    const isObject = typeof decl === 'object';
    if (isObject && decl.secret) secretNames.add(name);
    const override = overrides[name];
    if (override !== undefined) {
      // What the operator types is taken literally: no ${{ }} in --var values.
      values[name] = override;
      continue;
    }
    const raw = isObject ? decl.value : decl;
    if (raw === undefined && opts.allowMissing) continue;
    if (raw === undefined) {
      const at = pb.locate(['vars', name]);
      throw new PlaybookError([
        { file: pb.file, ...at, message: `vars.${name} has no value: pass --var ${name}=VALUE` },
      ]);
    }
    if (typeof raw !== 'string') {
      values[name] = raw;
      continue;
    }
    try {
      values[name] = interpolate(raw, (e) => {
        if (e.type === 'ref' && e.ref.kind === 'env') {
          const v = env[e.ref.name];
          if (v === undefined) throw new UnresolvedReference(`env.${e.ref.name} is not set`);
          return v;
        }
        throw new UnresolvedReference('vars may only refer to env.X');
      });
    } catch (e) {
      if (!(e instanceof UnresolvedReference)) throw e;
      const at = pb.locate(isObject ? ['vars', name, 'value'] : ['vars', name]);
      throw new PlaybookError([{ file: pb.file, ...at, message: `vars.${name}: ${e.message}` }]);
    }
  }
  return { values, secretNames };
}

/** The redactor for a run: secret vars, and every value given to an `env:` map in a step. */
export function buildRedactor(pb: LoadedPlaybook, vars: ResolvedVars): Redactor {
  const redactor = new Redactor();
  for (const name of vars.secretNames) redactor.add(formatValue(vars.values[name] ?? null));
  for (const step of [...pb.steps, ...pb.rollback]) addEnvSecrets(redactor, step.with);
  return redactor;
}

/** Values under any `env:` key are secrets: tokens are passed to commands that way. */
export function addEnvSecrets(redactor: Redactor, value: unknown): void {
  if (value === null || typeof value !== 'object') return;
  for (const [k, v] of Object.entries(value)) {
    if (k === 'env' && v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const secret of Object.values(v)) if (typeof secret === 'string' && !secret.includes('${{')) redactor.add(secret);
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
          throw new UnresolvedReference(
            `step '${ref.step}' has no output '${ref.name}'${known.length ? ` (it has: ${known.join(', ')})` : ''}`,
          );
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

/** Fill `${{ }}` in every string of a `with` block. */
export function interpolateDeep(value: unknown, resolve: (ref: Reference) => Value): unknown {
  if (typeof value === 'string') {
    if (!value.includes('${{')) return value;
    return interpolate(value, (e) => {
      if (e.type === 'ref') return resolve(e.ref);
      throw new UnresolvedReference('only references (vars.X, env.X, steps.ID.outputs.X) can be interpolated');
    });
  }
  if (Array.isArray(value)) return value.map((v) => interpolateDeep(v, resolve));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolateDeep(v, resolve);
    return out;
  }
  return value;
}
