import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { delimiter, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import type { Reference, Value } from '../playbook/expressions.js';
import type { LoadedPlaybook, RuntimeStep } from '../playbook/load.js';
import { stepKind } from '../steps/registry.js';
import type { EngineTarget, StepNeed } from '../steps/types.js';
import type { Redactor } from '../util/redact.js';
import { RunLock } from './lock.js';
import { interpolateWith, type ResolvedVars } from './scope.js';

/** One thing preflight looked at; `at` points into the playbook when the problem lives there. */
export interface PreflightCheck {
  check: 'vars' | 'env' | 'file' | 'dir' | 'command' | 'approval' | 'engine' | 'promql' | 'lock' | 'state-dir';
  ok: boolean;
  message: string;
  at?: { file: string; line: number; col: number };
}

/** How a gate.approve step will get its answer. */
export type ApprovalMode = 'yes' | 'tty' | 'rehearsal' | 'none';

export interface PreflightOptions {
  pb: LoadedPlaybook;
  vars: ResolvedVars;
  /** Vars whose value is set later by the caller (a rehearsal's pre-outage snapshot): not checked. */
  pendingVars?: ReadonlySet<string>;
  env: NodeJS.ProcessEnv;
  engine: EngineTarget | undefined;
  approval: ApprovalMode;
  /** Main steps that will not run (finished before a resume, or done by hand before --from-step). */
  skipSteps?: ReadonlySet<string>;
  /** Omitted when the caller owns the engine (a rehearsal's scratch engine). */
  lockPath?: string;
  stateDir?: string;
  /** Look at the engine (reachable, or startable); off for a scratch engine made later. */
  checkEngine?: boolean;
  cwd?: string;
  /** Secrets never reach a message: a secret var used as a path or command is shown as ***. */
  redactor?: Redactor;
}

/** A marker no real value contains: a value that is only known once the run is under way. */
const LATER = '\u0000later\u0000';

function nearestExisting(path: string): string {
  let p = resolve(path);
  while (!existsSync(p)) {
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  return p;
}

function writable(path: string): boolean {
  try {
    accessSync(nearestExisting(path), constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function show(path: string, cwd: string): string {
  const rel = relative(cwd, path);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

function fileProblem(path: string, wantDir: boolean): string | undefined {
  try {
    const st = statSync(path);
    if (wantDir && !st.isDirectory()) return 'is not a folder';
    if (!wantDir && st.isDirectory()) return 'is a folder, not a file';
    accessSync(path, constants.R_OK);
    return undefined;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'not readable' : `cannot read (${code ?? String(e)})`;
  }
}

/** Where a command would be found: a path (relative to cwd), or the first match on PATH. */
function findCommand(command: string, cwd: string, pathEnv: string): string | undefined {
  const executable = (p: string): boolean => {
    try {
      return statSync(p).isFile() && (accessSync(p, constants.X_OK), true);
    } catch {
      return false;
    }
  };
  if (command.includes('/')) {
    const p = isAbsolute(command) ? command : resolve(cwd, command);
    return executable(p) ? p : undefined;
  }
  for (const dir of pathEnv.split(delimiter)) {
    if (dir && executable(join(dir, command))) return join(dir, command);
  }
  return undefined;
}

interface StepPlace {
  step: RuntimeStep;
  phase: 'main' | 'rollback';
}

type Where = (path: readonly (string | number)[]) => { file: string; line: number; col: number };

/** What walking the steps' needs found beyond the checks it made: who asks, who needs the engine. */
interface StepFindings {
  approvalStep: StepPlace | undefined;
  engineSteps: StepPlace[];
  /** PromQL queries to ask their servers about, once the synchronous checks are done. */
  queries: { need: Extract<StepNeed, { need: 'promql' }>; step: RuntimeStep }[];
  /** A main step starts the engine. */
  starts: boolean;
}

/**
 * Everything about a run that can be known before its first step: vars have values, the files and
 * commands steps name exist, approval gates can be answered, the engine is reachable or startable, the
 * lock is free and the state dir writable. Reads only; changes nothing.
 */
export async function preflight(o: PreflightOptions): Promise<PreflightCheck[]> {
  const { pb } = o;
  const cwd = o.cwd ?? process.cwd();
  const at: Where = (path) => ({ file: pb.file, ...pb.locate(path) });
  const checks: PreflightCheck[] = [...varChecks(o, at)];
  const found = stepChecks(o, at, cwd, checks);
  if (found.approvalStep) checks.push(approvalCheck(found.approvalStep, o.approval, at));
  if (found.engineSteps.length > 0 && !o.engine) {
    for (const { step } of found.engineSteps) {
      checks.push({
        check: 'engine',
        ok: false,
        message: `step ${step.id}: ${step.uses} needs an engine: add engine.dataDir (or engine.url and engine.tokenFile)`,
        at: at([...step.yamlPath, 'uses']),
      });
    }
  } else if (found.engineSteps.length > 0 && o.engine && o.checkEngine !== false) {
    checks.push(await engineCheck(o.engine, found.starts, pb, cwd));
  }
  checks.push(...(await Promise.all(found.queries.map((q) => queryCheck(q.need, q.step, at)))));
  if (o.lockPath) checks.push(lockCheck(o.lockPath));
  if (o.stateDir) checks.push(stateDirCheck(o.stateDir, cwd));
  const redactor = o.redactor;
  return redactor ? checks.map((k) => ({ ...k, message: redactor.text(k.message) })) : checks;
}

/** Every declared var has a value (or is set later by the caller); a var file that cannot be read says why. */
function varChecks(o: PreflightOptions, at: Where): PreflightCheck[] {
  const declared = Object.keys(o.pb.spec.vars ?? {});
  const missing = declared.filter((name) => o.vars.values[name] === undefined && !o.pendingVars?.has(name));
  if (missing.length === 0) return [{ check: 'vars', ok: true, message: `${declared.length} vars have values` }];
  return missing.map((name): PreflightCheck => {
    const why = o.vars.missing?.get(name);
    return why
      ? { check: 'vars', ok: false, message: why.message, at: { file: why.file, line: why.line, col: why.col } }
      : { check: 'vars', ok: false, message: `vars.${name} has no value: pass --var ${name}=VALUE`, at: at(['vars', name]) };
  });
}

/**
 * Each step's `with`, filled with what is known now, asked for its needs: files, folders and commands
 * are checked here (into `checks`); approval and engine needs are returned for the checks after.
 */
function stepChecks(o: PreflightOptions, at: Where, cwd: string, checks: PreflightCheck[]): StepFindings {
  const places: StepPlace[] = [
    ...o.pb.steps.filter((s) => !o.skipSteps?.has(s.id)).map((step) => ({ step, phase: 'main' as const })),
    ...o.pb.rollback.map((step) => ({ step, phase: 'rollback' as const })),
  ];
  const found: StepFindings = { approvalStep: undefined, engineSteps: [], queries: [], starts: false };
  const seenFiles = new Set<string>();
  // An exec step can make files and commands (a build, a download): after one, a literal path in a later
  // step is checked when that step runs. A path that comes from a var, --var or env is checked here.
  let afterExec = false;
  for (const place of places) {
    const { step } = place;
    const checkLiteral = !afterExec;
    if (step.uses === 'exec') afterExec = true;
    const { needs, unsetEnv } = needsOf(step, o);
    for (const name of unsetEnv) {
      checks.push({
        check: 'env',
        ok: false,
        message: `${place.phase === 'rollback' ? 'rollback step' : 'step'} ${step.id}: env.${name} is not set`,
        at: at([...step.yamlPath, 'with']),
      });
    }
    const checked = (field: string, value: string): boolean => !value.includes(LATER) && !value.includes('${{') && (checkLiteral || fromValue(step, field));
    for (const need of needs) {
      switch (need.need) {
        case 'file':
        case 'dir': {
          const key = `${need.need}:${need.path}`;
          if (!checked(need.field, need.path) || seenFiles.has(key)) continue;
          seenFiles.add(key);
          checks.push(pathCheck(need, step, at, cwd));
          break;
        }
        case 'command':
          if (checked(need.field, need.command)) checks.push(commandCheck(need, step, o.env, at, cwd));
          break;
        case 'approval':
          found.approvalStep ??= place;
          break;
        case 'promql':
          if (!need.address.includes(LATER) && !need.query.includes(LATER) && !Object.values(need.headers).some((h) => h.includes(LATER)))
            found.queries.push({ need, step });
          break;
        case 'engine':
          // Starting, stopping or installing into an engine needs its data dir on this machine.
          if (need.local && o.engine && 'url' in o.engine) {
            checks.push({
              check: 'engine',
              ok: false,
              message: `step ${step.id}: ${step.uses} needs engine.dataDir (a local engine); this playbook names engine.url`,
              at: at([...step.yamlPath, 'uses']),
            });
          }
          found.engineSteps.push(place);
          if (need.starts && place.phase === 'main') found.starts = true;
          break;
      }
    }
  }
  return found;
}

/** A step's needs, with its `with` filled from vars and env (what only the run will know stays LATER). */
function needsOf(step: RuntimeStep, o: PreflightOptions): { needs: StepNeed[]; unsetEnv: Set<string> } {
  const unsetEnv = new Set<string>();
  const known = (ref: Reference): Value => {
    switch (ref.kind) {
      case 'var':
        return o.pendingVars?.has(ref.name) ? LATER : (o.vars.values[ref.name] ?? LATER);
      case 'env': {
        const v = o.env[ref.name];
        if (v === undefined) unsetEnv.add(ref.name);
        return v ?? LATER;
      }
      default:
        return LATER;
    }
  };
  let filled: unknown;
  try {
    filled = interpolateWith(step.with, stepKind(step.uses).templates, known);
  } catch {
    filled = step.with;
  }
  const kind = stepKind(step.uses);
  const parsed = kind.with.safeParse(filled);
  if (!parsed.success || !kind.needs) return { needs: [], unsetEnv };
  return { needs: kind.needs(parsed.data, { playbookDir: o.pb.dir, timeScale: 1, engine: o.engine }), unsetEnv };
}

/** Whether a `with` field's value comes through an expression (a var, --var or env) rather than the playbook's text. */
function fromValue(step: RuntimeStep, field: string): boolean {
  let raw: unknown = step.with;
  for (const key of field.split('.')) raw = raw !== null && typeof raw === 'object' ? (raw as Record<string, unknown>)[key] : undefined;
  if (Array.isArray(raw)) raw = raw[0];
  return typeof raw === 'string' && raw.includes('${{');
}

function pathCheck(need: Extract<StepNeed, { need: 'file' | 'dir' }>, step: RuntimeStep, at: Where, cwd: string): PreflightCheck {
  const problem = fileProblem(need.path, need.need === 'dir');
  return problem
    ? {
        check: need.need,
        ok: false,
        message: `step ${step.id}: ${need.field} ${show(need.path, cwd)}: ${problem}`,
        at: at([...step.yamlPath, 'with', ...need.field.split('.')]),
      }
    : { check: need.need, ok: true, message: `${show(need.path, cwd)} readable` };
}

function commandCheck(need: Extract<StepNeed, { need: 'command' }>, step: RuntimeStep, env: NodeJS.ProcessEnv, at: Where, cwd: string): PreflightCheck {
  const found = findCommand(need.command, need.cwd, need.path ?? env.PATH ?? '');
  if (found) return { check: 'command', ok: true, message: `${need.command} found (${show(found, cwd)})` };
  return {
    check: 'command',
    ok: false,
    message: `step ${step.id}: command ${need.command} not found${need.command.includes('/') ? ` (or not executable) in ${show(need.cwd, cwd)}` : ' on PATH'}`,
    at: at([...step.yamlPath, 'with', need.field]),
  };
}

function approvalCheck(place: StepPlace, approval: ApprovalMode, at: Where): PreflightCheck {
  if (approval === 'none') {
    return {
      check: 'approval',
      ok: false,
      message: `step ${place.step.id}: gate.approve needs an answer, but stdin is not a terminal and --yes was not given (run it in a terminal, or pass --yes)`,
      at: at([...place.step.yamlPath, 'uses']),
    };
  }
  return {
    check: 'approval',
    ok: true,
    message: `gates answered by ${approval === 'yes' ? '--yes' : approval === 'tty' ? 'the operator at this terminal' : 'the rehearsal'}`,
  };
}

/** The query asked once of its Prometheus: malformed PromQL, or a server that cannot be reached, stops the run here. */
async function queryCheck(need: Extract<StepNeed, { need: 'promql' }>, step: RuntimeStep, at: Where): Promise<PreflightCheck> {
  const { checkQuery } = await import('../steps/prometheus.js');
  const conn = { address: need.address, headers: need.headers, timeout: `${need.timeoutMs}ms` };
  const r = await checkQuery(conn, need.query, { fetch: globalThis.fetch, signal: new AbortController().signal, timeoutMs: need.timeoutMs });
  if (r.ok) return { check: 'promql', ok: true, message: `${need.query} accepted by ${need.address} (${r.resultType}, ${r.series} series now)` };
  return {
    check: 'promql',
    ok: false,
    message: `step ${step.id}: ${need.field} ${JSON.stringify(need.query)}: ${r.message}`,
    at: at([...step.yamlPath, 'with', ...need.field.split('.').map((k) => (/^\d+$/.test(k) ? Number(k) : k))]),
  };
}

function lockCheck(lockPath: string): PreflightCheck {
  const holder = RunLock.holder(lockPath);
  return holder
    ? {
        check: 'lock',
        ok: false,
        message: `${lockPath}: locked by run ${holder.runId} (pid ${holder.pid}${holder.host ? ` on ${holder.host}` : ''}, since ${holder.since}); wait for it or stop it first`,
      }
    : { check: 'lock', ok: true, message: 'free' };
}

function stateDirCheck(stateDir: string, cwd: string): PreflightCheck {
  return writable(stateDir)
    ? { check: 'state-dir', ok: true, message: `${show(stateDir, cwd)} writable` }
    : { check: 'state-dir', ok: false, message: `state dir ${stateDir}: cannot be written (${nearestExisting(stateDir)} is not writable)` };
}

async function engineCheck(target: EngineTarget, starts: boolean, pb: LoadedPlaybook, cwd: string): Promise<PreflightCheck> {
  if ('url' in target) {
    const problem = fileProblem(target.tokenFile, false);
    if (problem)
      return {
        check: 'engine',
        ok: false,
        message: `engine.tokenFile ${show(target.tokenFile, cwd)}: ${problem}`,
        at: { file: pb.file, ...pb.locate(['engine', 'tokenFile']) },
      };
    const { EngineClient } = await import('../engine-client/client.js');
    try {
      const h = await EngineClient.fromTokenFile(target.url, target.tokenFile).health();
      return { check: 'engine', ok: true, message: `${target.url} answers (phase ${h.phase})` };
    } catch (e) {
      return {
        check: 'engine',
        ok: false,
        message: `engine ${target.url} does not answer: ${(e as Error).message}`,
        at: { file: pb.file, ...pb.locate(['engine', 'url']) },
      };
    }
  }
  const { attach, engineBin } = await import('../engine-client/supervisor.js');
  const running = await attach(target.dataDir).catch(() => undefined);
  const dir = show(target.dataDir, cwd);
  if (running) return { check: 'engine', ok: true, message: `running on ${dir} (pid ${running.info.pid} at ${running.info.url})` };
  if (!starts) {
    return {
      check: 'engine',
      ok: false,
      message: `no engine is running on ${dir} and no step starts one: start it (recoverctl engine start --data-dir ${dir}) or add an engine.start step`,
      at: { file: pb.file, ...pb.locate(['engine', 'dataDir']) },
    };
  }
  if (!existsSync(engineBin())) return { check: 'engine', ok: false, message: `cannot start an engine: ${engineBin()} is missing (run npm run build)` };
  if (!writable(target.dataDir)) {
    return {
      check: 'engine',
      ok: false,
      message: `cannot start an engine on ${dir}: ${nearestExisting(target.dataDir)} is not writable`,
      at: { file: pb.file, ...pb.locate(['engine', 'dataDir']) },
    };
  }
  return { check: 'engine', ok: true, message: `not running on ${dir}; a step starts it` };
}
