import type { EventSink, Phase, RunEvent, RunOutcome, StepOutcome } from '../runner/events.js';
import type { StepCheck } from '../steps/types.js';

export interface StepSummary {
  id: string;
  /** The step's title (`name:`), from its `start` event; null when it has none or never started. */
  name: string | null;
  phase: Phase;
  uses: string;
  outcome: StepOutcome | 'interrupted' | 'restored';
  durationMs: number;
  attempts: number;
  error: string | undefined;
  detail: string | undefined;
  checks: StepCheck[];
}

/** Collects a run's step results as they happen, for the summary table and JUnit. */
export class RunRecorder implements EventSink {
  readonly steps: StepSummary[] = [];
  runId = '';
  playbook = '';
  startedAt = '';
  outcome: RunOutcome | undefined;
  summary = '';
  durationMs = 0;
  private readonly running = new Map<string, { uses: string; ts: string; name: string | null }>();

  /** A step's row: what the event says, the rest at its neutral value. */
  private push(row: Pick<StepSummary, 'id' | 'name' | 'phase' | 'uses' | 'outcome'> & Partial<StepSummary>): void {
    this.steps.push({ durationMs: 0, attempts: 0, error: undefined, detail: undefined, checks: [], ...row });
  }

  write(e: RunEvent): void {
    switch (e.event) {
      case 'run-start':
        this.runId = e.run;
        this.playbook = e.playbook;
        this.startedAt ||= e.ts;
        return;
      case 'start':
        this.running.set(`${e.phase}:${e.step}`, { uses: e.uses, ts: e.ts, name: e.name });
        return;
      case 'ok':
      case 'fail': {
        const key = `${e.phase}:${e.step}`;
        const name = this.running.get(key)?.name ?? null;
        this.running.delete(key);
        const failure = e.event === 'fail' ? { error: e.error, detail: e.continued ? 'continueOnError' : undefined } : {};
        this.push({
          id: e.step,
          name,
          phase: e.phase,
          uses: e.uses,
          outcome: e.event === 'ok' ? 'success' : 'failure',
          durationMs: e.durationMs,
          attempts: e.attempts,
          checks: e.checks ?? [],
          ...failure,
        });
        return;
      }
      case 'skip':
        // Journals written before skip events carried a name have none.
        this.push({ id: e.step, name: e.name ?? null, phase: e.phase, uses: e.uses, outcome: 'skipped', detail: e.detail });
        return;
      case 'restored':
        // A failure from before the interruption is still a failure in the report.
        this.push({
          id: e.step,
          name: null,
          phase: e.phase,
          uses: '',
          outcome: e.outcome === 'failure' ? 'failure' : 'restored',
          error: e.outcome === 'failure' ? 'failed in an earlier attempt of this run' : undefined,
          detail: `${e.outcome} in an earlier attempt`,
        });
        return;
      case 'interrupted':
        if (e.step) this.interruptedStep(e.step, e.ts, e.signal);
        return;
      case 'run-end':
        this.outcome = e.outcome;
        this.summary = e.summary;
        this.durationMs = e.durationMs;
        return;
      default:
        return;
    }
  }

  private interruptedStep(step: string, ts: string, signal: string): void {
    const key = [...this.running.keys()].find((k) => k.endsWith(`:${step}`));
    const running = key ? this.running.get(key) : undefined;
    this.push({
      id: step,
      name: running?.name ?? null,
      phase: key?.startsWith('rollback:') ? 'rollback' : 'main',
      uses: running?.uses ?? '',
      outcome: 'interrupted',
      durationMs: running ? Date.parse(ts) - Date.parse(running.ts) : 0,
      attempts: 1,
      error: `interrupted by ${signal}`,
    });
  }
}
