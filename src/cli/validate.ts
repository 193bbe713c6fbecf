import { PlaybookError, RecoverctlError, type Diagnostic } from '../errors.js';
import { loadPlaybook } from '../playbook/load.js';

/** Validate every file; report all problems of all files, exit 2 if any. */
export async function validateCommand(files: string[], opts: { json?: boolean }): Promise<void> {
  const results: { file: string; ok: boolean; diagnostics: Diagnostic[]; error?: string }[] = [];
  for (const file of files) {
    try {
      const pb = await loadPlaybook(file);
      results.push({ file, ok: true, diagnostics: [] });
      if (!opts.json) process.stdout.write(`${file}: ok (${pb.spec.metadata.name}, ${pb.steps.length} steps, ${pb.rollback.length} rollback)\n`);
    } catch (e) {
      if (e instanceof PlaybookError) {
        results.push({ file, ok: false, diagnostics: e.diagnostics });
        if (!opts.json) for (const line of e.lines()) process.stderr.write(`${line}\n`);
        if (process.env.GITHUB_ACTIONS === 'true') {
          const { diagnosticAnnotation } = await import('../ui/annotations.js');
          for (const d of e.diagnostics) process.stdout.write(diagnosticAnnotation(d));
        }
      } else if (e instanceof RecoverctlError) {
        results.push({ file, ok: false, diagnostics: [], error: e.message });
        if (!opts.json) process.stderr.write(`${e.message}\n`);
      } else {
        throw e;
      }
    }
  }
  if (opts.json) process.stdout.write(`${JSON.stringify({ valid: results.every((r) => r.ok), files: results })}\n`);
  const bad = results.filter((r) => !r.ok).length;
  if (bad > 0) throw new ValidationFailed(`${bad} of ${files.length} playbook${files.length === 1 ? '' : 's'} invalid`);
}

/** Already printed per file; only the count remains. */
class ValidationFailed extends RecoverctlError {
  readonly exitCode = 2 as const;
}
