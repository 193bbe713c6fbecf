import type { RunRecorder, StepSummary } from './recorder.js';

/** Text for XML 1.0: markup escaped, the control characters it forbids dropped. */
export function esc(s: string): string {
  return (
    s
      .replace(/&/g, '&amp;')
      .replace(/</g, '&lt;')
      .replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;')
      // XML 1.0 forbids most control characters even when escaped.
      // eslint-disable-next-line no-control-regex -- stripping them is the point
      .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F]/g, '')
  );
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(3);
}

interface Case {
  classname: string;
  name: string;
  timeMs: number;
  failure?: string;
  skipped?: string;
  systemOut?: string;
}

/** A rehearsal's verdict: did the run end as the playbook says it should (`rehearsal.expectOutcome`)? */
export interface RehearsalVerdict {
  expected: string;
  outcome: string;
  ok: boolean;
  /** Why not, when not. */
  reason: string | undefined;
}

/** A run for the JUnit file; a rehearsal's carries its verdict, which decides what counts as a failure. */
export interface JunitRun {
  recorder: RunRecorder;
  verdict?: RehearsalVerdict | undefined;
}

/** A playbook that did not validate: one failing case with its problems. */
export interface InvalidPlaybook {
  file: string;
  problems: string[];
  /** The failing case's name; `valid playbook` unless the playbook was valid but could not be rehearsed. */
  caseName?: string;
}

function casesOf(playbook: string, s: StepSummary, verdict: RehearsalVerdict | undefined): Case[] {
  const classname = s.phase === 'rollback' ? `${playbook}.rollback` : playbook;
  const own: Case = { classname, name: s.name ? `${s.id}: ${s.name}` : s.id, timeMs: s.durationMs };
  if (s.outcome === 'failure' || s.outcome === 'interrupted') {
    // A drill's failure that its verdict expected is what the drill is for: recorded, not a failed test.
    if (verdict?.ok && s.outcome === 'failure')
      own.systemOut = `failed, as this rehearsal expects (rehearsal.expectOutcome: ${verdict.expected}): ${s.error ?? 'failed'}`;
    else own.failure = s.error ?? s.outcome;
  }
  if (s.outcome === 'skipped' || s.outcome === 'restored') own.skipped = s.detail ?? s.outcome;
  const checks = s.checks.map((c): Case => ({
    classname: `${classname}.${s.id}`,
    name: c.name,
    timeMs: c.durationMs ?? 0,
    ...(c.ok
      ? {}
      : verdict?.ok
        ? { systemOut: `failed, as this rehearsal expects: ${c.message ?? 'check failed'}` }
        : { failure: c.message ?? 'check failed' }),
  }));
  return [own, ...checks];
}

function verdictCase(playbook: string, v: RehearsalVerdict): Case {
  const c: Case = { classname: `${playbook}.rehearsal`, name: `ends ${v.expected} (rehearsal.expectOutcome)`, timeMs: 0 };
  if (v.ok) c.systemOut = `outcome ${v.outcome}, as expected`;
  else c.failure = v.reason ?? `expected ${v.expected}, got ${v.outcome}`;
  return c;
}

function caseXml(c: Case): string {
  const open = `    <testcase classname="${esc(c.classname)}" name="${esc(c.name)}" time="${seconds(c.timeMs)}"`;
  const inner: string[] = [];
  if (c.failure !== undefined) inner.push(`      <failure message="${esc(c.failure.split('\n')[0] ?? '')}">${esc(c.failure)}</failure>`);
  if (c.skipped !== undefined) inner.push(`      <skipped message="${esc(c.skipped)}"/>`);
  if (c.systemOut !== undefined) inner.push(`      <system-out>${esc(c.systemOut)}</system-out>`);
  return inner.length ? `${open}>\n${inner.join('\n')}\n    </testcase>` : `${open}/>`;
}

/**
 * JUnit XML: one suite per run, one test case per step (and per check inside a step); a rehearsal adds
 * its verdict as a case, and each invalid playbook is a suite with one failing case.
 */
export function junitXml(input: readonly (RunRecorder | JunitRun)[], invalid: readonly InvalidPlaybook[] = []): string {
  const runs = input.map((x): JunitRun => ('recorder' in x ? x : { recorder: x }));
  const suites = runs.map(({ recorder: r, verdict }) => {
    const cases = [...r.steps.flatMap((s) => casesOf(r.playbook, s, verdict)), ...(verdict ? [verdictCase(r.playbook, verdict)] : [])];
    const failures = cases.filter((c) => c.failure !== undefined).length;
    const skipped = cases.filter((c) => c.skipped !== undefined).length;
    const body = cases.map(caseXml).join('\n');
    const attrs = `name="${esc(r.playbook)}" tests="${cases.length}" failures="${failures}" errors="0" skipped="${skipped}" time="${seconds(r.durationMs)}" timestamp="${esc(r.startedAt)}"`;
    return {
      xml: `  <testsuite ${attrs}>\n    <properties>\n      <property name="run" value="${esc(r.runId)}"/>\n      <property name="outcome" value="${esc(r.outcome ?? 'unknown')}"/>\n    </properties>\n${body}\n  </testsuite>`,
      tests: cases.length,
      failures,
      skipped,
      ms: r.durationMs,
    };
  });
  for (const bad of invalid) {
    const c: Case = { classname: bad.file, name: bad.caseName ?? 'valid playbook', timeMs: 0, failure: bad.problems.join('\n') || 'invalid' };
    suites.push({
      xml: `  <testsuite name="${esc(bad.file)}" tests="1" failures="1" errors="0" skipped="0" time="0.000">\n${caseXml(c)}\n  </testsuite>`,
      tests: 1,
      failures: 1,
      skipped: 0,
      ms: 0,
    });
  }
  const total = suites.reduce((a, s) => ({ tests: a.tests + s.tests, failures: a.failures + s.failures, skipped: a.skipped + s.skipped, ms: a.ms + s.ms }), {
    tests: 0,
    failures: 0,
    skipped: 0,
    ms: 0,
  });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="recoverctl" tests="${total.tests}" failures="${total.failures}" errors="0" skipped="${total.skipped}" time="${seconds(total.ms)}">\n${suites.map((s) => s.xml).join('\n')}\n</testsuites>\n`;
}
