import { ExitCode, PlaybookError, RecoverctlError, type Diagnostic } from '../errors.js';
import { expandPlaybookArgs } from '../playbook/files.js';
import { loadPlaybook, type LoadedPlaybook } from '../playbook/load.js';

export interface FileValidation {
  file: string;
  ok: boolean;
  diagnostics: Diagnostic[];
  /** A problem with no place in the file (it cannot be read). */
  error?: string;
  playbook?: LoadedPlaybook;
}

/** Load every file, keeping each one's problems instead of stopping at the first bad file. */
export async function validateFiles(files: readonly string[]): Promise<FileValidation[]> {
  const results: FileValidation[] = [];
  for (const file of files) {
    try {
      results.push({ file, ok: true, diagnostics: [], playbook: await loadPlaybook(file) });
    } catch (e) {
      if (e instanceof PlaybookError) results.push({ file, ok: false, diagnostics: e.diagnostics });
      else if (e instanceof RecoverctlError) results.push({ file, ok: false, diagnostics: [], error: e.message });
      else throw e;
    }
  }
  return results;
}

/** Each problem on stderr (`file:line:col: message`), and as an annotation under GitHub Actions. */
export async function reportInvalid(results: readonly FileValidation[]): Promise<void> {
  const annotate = process.env.GITHUB_ACTIONS === 'true' ? (await import('../ui/annotations.js')).diagnosticAnnotation : undefined;
  for (const r of results) {
    if (r.ok) continue;
    if (r.error) process.stderr.write(`${r.error}\n`);
    for (const d of r.diagnostics) {
      process.stderr.write(`${d.file}:${d.line}:${d.col}: ${d.message}\n`);
      if (annotate) process.stderr.write(annotate(d));
    }
  }
}

/** Validate every file (a folder stands for its playbooks); report all problems of all files, exit 2 if any. */
export async function validateCommand(args: string[], opts: { json?: boolean }): Promise<void> {
  const { files, problems } = expandPlaybookArgs(args);
  const results = [...problems.map((p): FileValidation => ({ file: p.arg, ok: false, diagnostics: [], error: p.message })), ...(await validateFiles(files))];
  await reportInvalid(results);
  if (opts.json) {
    const files = results.map(({ file, ok, diagnostics, error }) => ({ file, ok, diagnostics, ...(error ? { error } : {}) }));
    process.stdout.write(`${JSON.stringify({ valid: results.every((r) => r.ok), files })}\n`);
  } else {
    for (const r of results) {
      const pb = r.playbook;
      if (pb) process.stdout.write(`${r.file}: ok (${pb.spec.metadata.name}, ${pb.steps.length} steps, ${pb.rollback.length} rollback)\n`);
    }
  }
  const bad = results.filter((r) => !r.ok).length;
  if (bad > 0) throw new ValidationFailed(`${bad} of ${results.length} playbook${results.length === 1 ? '' : 's'} invalid`);
}

/** Already printed per file; only the count remains. */
class ValidationFailed extends RecoverctlError {
  readonly exitCode = ExitCode.badInput;
}
