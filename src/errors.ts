/** The documented exit codes (README, docs/cli.md). */
export const ExitCode = {
  ok: 0,
  failed: 1,
  badInput: 2,
  humanNeeded: 3,
  interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** Base of every error the top-level handler knows how to print as one line. */
export abstract class RecoverctlError extends Error {
  abstract readonly exitCode: ExitCode;
  /** Lines to print on stderr; one line per problem, no stack. */
  lines(): string[] {
    return [this.message];
  }
}

/** Wrong command-line usage, or an input that is not a playbook (exit 2). */
export class UsageError extends RecoverctlError {
  readonly exitCode = ExitCode.badInput;
  override readonly name = 'UsageError';
}

/** A file could not be read or failed verification (exit 2). */
export class InputError extends RecoverctlError {
  readonly exitCode = ExitCode.badInput;
  override readonly name = 'InputError';
}

export interface Diagnostic {
  file: string;
  line: number;
  col: number;
  message: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  return `${d.file}:${d.line}:${d.col}: ${d.message}`;
}

/** One or more problems in a playbook, each with its file, line and column (exit 2). */
export class PlaybookError extends RecoverctlError {
  readonly exitCode = ExitCode.badInput;
  override readonly name = 'PlaybookError';
  constructor(readonly diagnostics: Diagnostic[]) {
    super(diagnostics.map(formatDiagnostic).join('\n'));
  }
  override lines(): string[] {
    return this.diagnostics.map(formatDiagnostic);
  }
}

/** Another run holds the lock on the same engine data dir (exit 2: nothing was done). */
export class LockHeldError extends RecoverctlError {
  readonly exitCode = ExitCode.badInput;
  override readonly name = 'LockHeldError';
}

/** A step failed and the rollback (if any) succeeded (exit 1). */
export class StepFailed extends RecoverctlError {
  readonly exitCode = ExitCode.failed;
  override readonly name = 'StepFailed';
}

/** A rollback step failed, or the state is unknown: a human must look (exit 3). */
export class RollbackFailed extends RecoverctlError {
  readonly exitCode = ExitCode.humanNeeded;
  override readonly name = 'RollbackFailed';
}

/** The run was interrupted by a signal; the journal is saved and --resume is possible (exit 130). */
export class Interrupted extends RecoverctlError {
  readonly exitCode = ExitCode.interrupted;
  override readonly name = 'Interrupted';
}

/** A bug in recoverctl itself (exit 3: a human must look). */
export class InternalError extends RecoverctlError {
  readonly exitCode = ExitCode.humanNeeded;
  override readonly name = 'InternalError';
}

/** What preflight found before the first step; nothing was done (exit 2). */
export class PreflightFailed extends RecoverctlError {
  readonly exitCode = ExitCode.badInput;
  override readonly name = 'PreflightFailed';
  constructor(readonly problems: { message: string; at?: { file: string; line: number; col: number } }[]) {
    super(`preflight: ${problems.length} problem${problems.length === 1 ? '' : 's'}; nothing was done`);
  }
  override lines(): string[] {
    return [...this.problems.map((p) => (p.at ? formatDiagnostic({ ...p.at, message: p.message }) : p.message)), this.message];
  }
}
