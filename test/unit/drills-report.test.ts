import { describe, expect, it } from 'vitest';
// @ts-expect-error plain JavaScript, shared with `npm run drills`
import { drillsJunit, drillsTable } from '../drills/run.mjs';
// @ts-expect-error plain JavaScript, shared with `npm run drills`
import { leftovers, slope, soakMarkdown } from '../drills/soak.mjs';

const result = (over: Record<string, unknown> = {}) => ({
  name: 'power loss: WAL <cut>',
  trials: 3,
  passed: 3,
  lost: 0,
  detail: 'a & b',
  failures: [],
  seconds: 1.25,
  failed: false,
  ...over,
});

describe('the drills’ reports', () => {
  it('writes JUnit: one case a drill, its failures escaped in the message of a failure element', () => {
    const xml = drillsJunit([result(), result({ name: 'crash "x"', passed: 2, failed: true, failures: ['trial 1: <lost> & gone'] })]) as string;
    expect(xml).toContain('<testsuite name="recoverctl drills" tests="2" failures="1" time="2.5">');
    expect(xml).toContain('<testcase classname="drills" name="power loss: WAL &lt;cut&gt;" time="1.3"><system-out>a &amp; b</system-out></testcase>');
    expect(xml).toContain('name="crash &quot;x&quot;"');
    expect(xml).toContain('<failure message="2/3 passed, 0 lost">trial 1: &lt;lost&gt; &amp; gone</failure>');
  });

  it('prints the Markdown table with a column per figure', () => {
    const md = (drillsTable([result()]) as string).split('\n');
    expect(md[0]).toMatch(/^\| drill\s+\| trials \| passed \| lost \| time \| detail \|$/);
    expect(md[2]).toContain('| 1.3s |');
  });

  it('fits RSS to a line: the slope of a flat series is 0, of a growing one its rate', () => {
    expect(slope([0, 1, 2, 3], [50, 50, 50, 50])).toBe(0);
    expect(slope([0, 1, 2, 3], [50, 52, 54, 56])).toBeCloseTo(2);
    expect(slope([1], [9])).toBe(0);
  });

  it('finds no process left behind by this one, and the soak’s figures print as a table of recoveries by WAL length', () => {
    expect(leftovers('no-such-marker-' + String(Math.random()))).toEqual([]);
    const md = soakMarkdown({
      minutes: 10,
      rehearsals: { rss: [120, 121], secs: [5, 6], slopeMbPerRun: 0.01 },
      engine: {
        orders: 1234567,
        snapshotEvery: 20000,
        maxRss: 90,
        rssSlope: 0.2,
        fdSlope: 0,
        mbPerThousandOrders: 0.45,
        retainedAtEnd: 1234567,
        recoveries: [
          { walRecords: 9000, ms: 400, retained: 10, rssRunning: 80, rssRecovered: 70 },
          { walRecords: 2000, ms: 250, retained: 5, rssRunning: 60, rssRecovered: 55 },
        ],
      },
      leaks: { processes: 0, fdsBefore: 20, fdsAfter: 20, tmpBefore: 5, tmpAfter: 5 },
    }) as string;
    expect(md).toContain('- engine: 1,234,567 orders over 10 min');
    expect(md).toContain('450 bytes per order held');
    expect(md).toMatch(/\| 2,000 \| 250 \| 5 \| 60 -> 55 \|\n\| 9,000 \| 400 \| 10 \| 80 -> 70 \|/);
  });
});

describe('the nightly workflow (docs/examples/ci/nightly.yml)', () => {
  it('is scheduled, runs the long drills and the soak with the flags run.mjs reads, and keeps their tables', async () => {
    const { readFileSync } = await import('node:fs');
    const { parse } = await import('yaml');
    const wf = parse(readFileSync(new URL('../../docs/examples/ci/nightly.yml', import.meta.url), 'utf8')) as {
      on: { schedule: { cron: string }[] };
      jobs: { drills: { steps: { run?: string; uses?: string; with?: { path?: string } }[] } };
    };
    expect(wf.on.schedule[0]?.cron).toMatch(/^\S+ \S+ \* \* \*$/);
    const runs = wf.jobs.drills.steps.map((s) => s.run ?? '');
    expect(runs).toContain('npm run drills -- --long --junit drills/long.xml --markdown drills/long.md');
    expect(runs).toContain('npm run drills -- --soak --junit drills/soak.xml --markdown drills/soak.md');
    const source = readFileSync(new URL('../drills/run.mjs', import.meta.url), 'utf8');
    for (const flag of ['--long', '--soak', 'junit', 'markdown']) expect(source).toContain(flag);
    expect(wf.jobs.drills.steps.find((s) => s.uses?.startsWith('actions/upload-artifact'))?.with?.path).toBe('drills/');
  });
});
