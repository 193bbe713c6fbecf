import { InputError, RecoverctlError, UsageError } from '../errors.js';
import type { Finding, IntegrityReport } from '../integrity/findings.js';
import { isPostgresUrl, runIntegrity, type IntegrityOptions } from '../integrity/run.js';
import { dataDirLayout } from '../util/data-dir.js';

/** `integrity check`'s flags as commander gives them. */
export interface IntegrityFlags {
  snapshot: string;
  against?: string | undefined;
  engine?: string | undefined;
  tokenFile?: string | undefined;
  wal?: string | undefined;
  limit?: string | undefined;
  /** A local engine's data dir: its running engine, its token and its WAL. */
  dataDir?: string | undefined;
  /** With --against postgres://…: the queries that read each record type (docs/integrity.md). */
  sourceMap?: string | undefined;
  passwordFile?: string | undefined;
}

/** The flags checked and turned into a typed check: one source of the state now, a whole-number limit. */
async function integrityOptions(flags: IntegrityFlags): Promise<IntegrityOptions> {
  let limit: number | undefined;
  if (flags.limit !== undefined) {
    limit = Number(flags.limit);
    if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit: expected a whole number >= 1, got '${flags.limit}'`);
  }
  const common = { snapshot: flags.snapshot, limit, wal: flags.wal };
  if (flags.dataDir !== undefined) {
    // --data-dir D stands for --engine <D's url> --token-file D/control.token --wal D/wal.
    if (flags.engine !== undefined || flags.against !== undefined || flags.tokenFile !== undefined) {
      throw new UsageError('integrity check: --data-dir stands for --engine, --token-file and --wal; give it alone (or with --wal)');
    }
    const { attach } = await import('../engine-client/supervisor.js');
    const running = await attach(flags.dataDir);
    if (!running) throw new InputError(`--data-dir ${flags.dataDir}: no engine is running there (recoverctl engine start --data-dir ${flags.dataDir})`);
    const layout = dataDirLayout(flags.dataDir);
    return { ...common, target: { engine: running.info.url, tokenFile: layout.token }, wal: flags.wal ?? layout.wal };
  }
  if ((flags.against === undefined) === (flags.engine === undefined)) {
    throw new UsageError('integrity check: give exactly one of --against <post.ndjson>, --engine <url> or --data-dir <dir>');
  }
  if (flags.against !== undefined && isPostgresUrl(flags.against)) {
    if (flags.sourceMap === undefined) throw new UsageError('--against postgres://…: needs --source-map <map.yaml> (the query for each record type)');
    return { ...common, target: { postgres: flags.against, sourceMap: flags.sourceMap, passwordFile: flags.passwordFile } };
  }
  if (flags.sourceMap !== undefined || flags.passwordFile !== undefined)
    throw new UsageError('--source-map and --password-file go with --against postgres://…');
  if (flags.against !== undefined) return { ...common, target: { against: flags.against } };
  if (!flags.tokenFile) throw new UsageError('--engine needs --token-file <DIR/control.token>');
  return { ...common, target: { engine: flags.engine as string, tokenFile: flags.tokenFile } };
}

/** Findings were reported (exit 1); the output already says what. */
class FindingsReported extends RecoverctlError {
  readonly exitCode = 1 as const;
}
/** An input failed verification (exit 2): the corrupt finding names the file and line. */
class InputCorrupt extends RecoverctlError {
  readonly exitCode = 2 as const;
}

function describe(f: Finding): string {
  const where = f.line !== undefined ? ` (${f.file ? `${f.file}:` : 'line '}${f.line})` : '';
  switch (f.category) {
    case 'mismatch':
      return `mismatch ${f.type} ${f.id} ${f.field}: expected ${JSON.stringify(f.expected)}, actual ${JSON.stringify(f.actual)}${where}`;
    case 'conservation':
      return `conservation ${f.type} ${f.id} ${f.field}: expected ${JSON.stringify(f.expected)}, actual ${JSON.stringify(f.actual)}`;
    case 'corrupt':
      return `corrupt ${f.id}:${f.line ?? 0}: ${f.field ?? ''}`;
    default:
      return `${f.category} ${f.type} ${f.id}${where}`;
  }
}

export function printReport(r: IntegrityReport, json: boolean, out: NodeJS.WritableStream = process.stdout): void {
  if (json) {
    out.write(`${JSON.stringify(r)}\n`);
    return;
  }
  const lines = [
    `integrity: ${r.pre.file} (seq ${r.pre.seq}, ${r.pre.records.toLocaleString('en-US')} records) vs ${r.post ? `${r.post.file} (${r.post.seq >= 0 ? `seq ${r.post.seq}, ` : ''}${r.post.records.toLocaleString('en-US')} records)` : '?'}`,
  ];
  if (r.explainedByWal !== null) lines.push(`  ${r.explainedByWal} WAL records applied to the pre-outage snapshot before comparing`);
  lines.push(
    r.conservationRule === 'zero-sum'
      ? '  conservation: each asset sums to zero (system accounts present)'
      : `  conservation: each asset's total against the pre-outage snapshot${r.explainedByWal !== null ? ' and the WAL' : ''} (no system accounts); open interest nets to zero`,
  );
  lines.push(
    `  ${Object.entries(r.counts)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  );
  if (r.findings.length) {
    lines.push('  first findings:');
    for (const f of r.findings.slice(0, 20)) lines.push(`    ${describe(f)}`);
    if (r.findings.length > 20) lines.push(`    … ${r.findings.length - 20} more (--json lists every one)`);
  }
  const total = Object.values(r.counts).reduce((a, b) => a + b, 0);
  lines.push(
    r.clean ? `  clean (${r.durationMs} ms)` : `  ${total} finding${total === 1 ? '' : 's'}${r.truncated ? ' (stopped at --limit)' : ''} (${r.durationMs} ms)`,
  );
  out.write(`${lines.join('\n')}\n`);
}

export async function integrityCommand(flags: IntegrityFlags & { json?: boolean }): Promise<void> {
  const { EngineUnreachable, EngineHttpError } = await import('../engine-client/client.js');
  let report: IntegrityReport;
  try {
    report = await runIntegrity(await integrityOptions(flags));
  } catch (e) {
    if (e instanceof EngineUnreachable || e instanceof EngineHttpError) throw new InputError(e.message);
    throw e;
  }
  printReport(report, flags.json ?? false);
  if (report.counts.corrupt > 0) {
    const c = report.findings.find((f) => f.category === 'corrupt');
    throw new InputCorrupt(`${c?.id ?? '?'}:${c?.line ?? 0}: ${c?.field ?? 'fails verification'}`);
  }
  if (!report.clean) throw new FindingsReported(`integrity: ${Object.values(report.counts).reduce((a, b) => a + b, 0)} findings`);
}
