import type { RunRecorder, StepSummary } from './recorder.js';

function esc(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    // XML 1.0 forbids most control characters even when escaped.
    .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F]/g, '');
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
}

function casesOf(playbook: string, s: StepSummary): Case[] {
  const classname = s.phase === 'rollback' ? `${playbook}.rollback` : playbook;
  const own: Case = { classname, name: s.id, timeMs: s.durationMs };
  if (s.outcome === 'failure' || s.outcome === 'interrupted') own.failure = s.error ?? s.outcome;
  if (s.outcome === 'skipped' || s.outcome === 'restored') own.skipped = s.detail ?? s.outcome;
  const checks = s.checks.map((c): Case => ({
    classname: `${classname}.${s.id}`,
    name: c.name,
    timeMs: c.durationMs ?? 0,
    ...(c.ok ? {} : { failure: c.message ?? 'check failed' }),
  }));
  return [own, ...checks];
}

/** JUnit XML: one test case per step (and per check inside a step), one suite per run. */
export function junitXml(runs: readonly RunRecorder[]): string {
  const suites = runs.map((r) => {
    const cases = r.steps.flatMap((s) => casesOf(r.playbook, s));
    const failures = cases.filter((c) => c.failure !== undefined).length;
    const skipped = cases.filter((c) => c.skipped !== undefined).length;
    const body = cases
      .map((c) => {
        const open = `    <testcase classname="${esc(c.classname)}" name="${esc(c.name)}" time="${seconds(c.timeMs)}"`;
        if (c.failure !== undefined) {
          const first = c.failure.split('\n')[0] ?? '';
          return `${open}>\n      <failure message="${esc(first)}">${esc(c.failure)}</failure>\n    </testcase>`;
        }
        if (c.skipped !== undefined) return `${open}>\n      <skipped message="${esc(c.skipped)}"/>\n    </testcase>`;
        return `${open}/>`;
      })
      .join('\n');
    const attrs = `name="${esc(r.playbook)}" tests="${cases.length}" failures="${failures}" errors="0" skipped="${skipped}" time="${seconds(r.durationMs)}" timestamp="${esc(r.startedAt)}"`;
    return {
      xml: `  <testsuite ${attrs}>\n    <properties>\n      <property name="run" value="${esc(r.runId)}"/>\n      <property name="outcome" value="${esc(r.outcome ?? 'unknown')}"/>\n    </properties>\n${body}\n  </testsuite>`,
      tests: cases.length,
      failures,
      skipped,
      ms: r.durationMs,
    };
  });
  const total = suites.reduce((a, s) => ({ tests: a.tests + s.tests, failures: a.failures + s.failures, skipped: a.skipped + s.skipped, ms: a.ms + s.ms }), {
    tests: 0,
    failures: 0,
    skipped: 0,
    ms: 0,
  });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="recoverctl" tests="${total.tests}" failures="${total.failures}" errors="0" skipped="${total.skipped}" time="${seconds(total.ms)}">\n${suites.map((s) => s.xml).join('\n')}\n</testsuites>\n`;
}
