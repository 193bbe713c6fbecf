import type { Diagnostic } from '../errors.js';
import type { LoadedPlaybook } from '../playbook/load.js';
import type { EventSink, RunEvent } from '../runner/events.js';

/** GitHub Actions reads workflow commands from the job's output. */
export function inGitHubActions(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.GITHUB_ACTIONS === 'true';
}

const escapeData = (s: string): string => s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
const escapeProperty = (s: string): string => escapeData(s).replace(/:/g, '%3A').replace(/,/g, '%2C');

/** `::error file=F,line=L,col=C,title=T::message`, escaped as GitHub's toolkit escapes it. */
export function errorAnnotation(message: string, at?: { file: string; line: number; col: number; title?: string }): string {
  const props = at
    ? ` ${[`file=${escapeProperty(at.file)}`, `line=${at.line}`, `col=${at.col}`, ...(at.title ? [`title=${escapeProperty(at.title)}`] : [])].join(',')}`
    : '';
  return `::error${props}::${escapeData(message)}\n`;
}

export function diagnosticAnnotation(d: Diagnostic): string {
  return errorAnnotation(d.message, { file: d.file, line: d.line, col: d.col });
}

/** `::notice ...::message`: for what went as intended but is worth seeing (a drill's expected failure). */
export function noticeAnnotation(message: string, at?: { file: string; line: number; col: number; title?: string }): string {
  return errorAnnotation(message, at).replace(/^::error/, '::notice');
}

/**
 * A failed step as an annotation on the step's line in the playbook. In a run, printed as it happens;
 * in a rehearsal (`deferred`), kept until the verdict says whether the failure was the expected one.
 */
export class GitHubAnnotations implements EventSink {
  private readonly held: { message: string; at: { file: string; line: number; col: number; title: string } }[] = [];
  constructor(
    private readonly pb: LoadedPlaybook,
    private readonly out: NodeJS.WritableStream,
    private readonly deferred = false,
  ) {}
  write(e: RunEvent): void {
    if (e.event !== 'fail' || e.continued) return;
    const step = (e.phase === 'main' ? this.pb.steps : this.pb.rollback).find((s) => s.id === e.step);
    const at = step ? this.pb.locate(step.yamlPath) : { line: 1, col: 1 };
    const annotation = { message: e.error, at: { file: this.pb.file, ...at, title: `${e.phase === 'rollback' ? 'rollback step' : 'step'} ${e.step} failed` } };
    if (this.deferred) this.held.push(annotation);
    else this.out.write(errorAnnotation(annotation.message, annotation.at));
  }
  /** Print what was held: as errors when the verdict failed, as notices when the failure was expected. */
  flush(asErrors: boolean): void {
    for (const a of this.held.splice(0)) {
      this.out.write(asErrors ? errorAnnotation(a.message, a.at) : noticeAnnotation(`${a.message} (expected: this rehearsal is meant to fail)`, a.at));
    }
  }
}
