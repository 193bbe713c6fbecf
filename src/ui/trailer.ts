import type { ChalkInstance } from 'chalk';
import { isAbsolute, relative } from 'node:path';
import type { LoadedPlaybook } from '../playbook/load.js';
import type { EventSink, RunEvent } from '../runner/events.js';
import type { RunResult } from '../runner/execute.js';
import type { EngineTarget } from '../steps/types.js';

/** What the end of a run needs to say: the reports it wrote, and whether it started the engine. */
export class TrailerFacts implements EventSink {
  readonly reports: string[] = [];
  startedEngine = false;
  write(e: RunEvent): void {
    if (e.event !== 'ok') return;
    if (e.uses === 'report.incident') {
      for (const key of ['html', 'md', 'json']) {
        const path = e.outputs[key];
        if (typeof path === 'string') {
          this.reports.push(path);
          break;
        }
      }
    }
    if (e.uses === 'engine.start' && e.outputs.started === true) this.startedEngine = true;
  }
}

function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

/** A quoted shell word, only when it needs quoting. */
function sh(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * The lines after a run's summary: where the report is, whether the engine is still running (and how to
 * stop it), and after anything but success, the command that resumes or inspects the run.
 */
export async function trailerText(o: {
  facts: TrailerFacts;
  result: RunResult;
  runId: string;
  runDir: string;
  pb: LoadedPlaybook;
  engine: EngineTarget | undefined;
  /** As the user gave it, for commands they can paste. */
  stateDir: string;
  c: ChalkInstance;
}): Promise<string> {
  const { c } = o;
  const lines: string[] = [];
  for (const report of o.facts.reports) lines.push(`${c.bold('report:')} ${shown(report)}`);
  if (o.engine && 'dataDir' in o.engine) {
    const { attach } = await import('../engine-client/supervisor.js');
    const running = await attach(o.engine.dataDir).catch(() => undefined);
    const dir = shown(o.engine.dataDir);
    if (running) {
      const who = o.facts.startedEngine ? 'started by this run, still running' : 'still running';
      lines.push(
        `${c.bold('engine:')} ${who} on ${dir} (pid ${running.info.pid} at ${running.info.url}); stop it with: recoverctl engine stop --data-dir ${sh(dir)}`,
      );
    } else {
      lines.push(`${c.bold('engine:')} not running on ${dir}`);
    }
  } else if (o.engine) {
    lines.push(`${c.bold('engine:')} ${o.engine.url} (not managed by recoverctl)`);
  }
  const state = o.stateDir === '.recoverctl' ? '' : ` --state-dir ${sh(o.stateDir)}`;
  switch (o.result.outcome) {
    case 'success':
      break;
    case 'interrupted':
      lines.push(`${c.bold('next:')} resume with: recoverctl run ${sh(o.pb.file)} --resume ${o.runId}${state}`);
      lines.push(`      inspect with: recoverctl runs show ${o.runId}${state}`);
      break;
    case 'failed':
      lines.push(`${c.bold('next:')} inspect with: recoverctl runs show ${o.runId}${state}`);
      lines.push(`      the timeline: recoverctl report incident ${o.runId}${state} --format html > incident.html`);
      break;
    case 'rollback-failed':
      lines.push(`${c.bold('next:')} ${c.red('a human must look')}: recoverctl runs show ${o.runId}${state}`);
      lines.push(`      the timeline: recoverctl report incident ${o.runId}${state} --format html > incident.html`);
      break;
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}
