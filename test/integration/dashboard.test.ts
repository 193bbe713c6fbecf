import { appendFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startDashboard, type Dashboard } from '../../src/dashboard/server.js';
import type { RunEvent } from '../../src/runner/events.js';

const RUN = '20260101T000000Z-abc123';
const T0 = Date.parse('2026-01-01T00:00:00Z');
const base = (s: number) => ({ ts: new Date(T0 + s * 1000).toISOString(), run: RUN });

const events: RunEvent[] = [
  {
    ...base(0),
    event: 'run-start',
    step: null,
    playbook: 'pb',
    file: 'pb.yaml',
    sha256: 'x',
    // A pid that is not running: the run reads as stopped, not running.
    pid: 2 ** 22 + 7,
    resumed: false,
    fromStep: null,
    steps: ['attach', 'shift'],
    rollbackSteps: [],
    vars: {},
    varOverrides: {},
    timeScale: 1,
    rto: '15m',
    incident: 'INC-7',
  },
  { ...base(1), event: 'start', step: 'shift', phase: 'main', uses: 'traffic.shift', name: 'Shift', attempt: 1, description: 'shift' },
  { ...base(1), event: 'progress', step: 'shift', phase: 'main', message: 'stage 1/2', data: { stage: 1, stages: 2, weight: 25, bakeMs: 1000 } },
  {
    ...base(2),
    event: 'measurement',
    step: 'shift',
    phase: 'main',
    stage: 1,
    stages: 2,
    weight: 25,
    verdict: 'pass',
    judgements: [{ gate: 'maxQueueDepth', source: 'engine', verdict: 'pass', value: 12, detail: 'queue depth 12 <= 500', threshold: '<= 500' }],
  },
];
const line = (e: RunEvent): string => `${JSON.stringify(e)}\n`;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** An event stream read as it comes: each `view` event's data, parsed. */
function subscribe(port: number, path: string): { views: { sections: Record<string, string>; records: number }[]; close: () => void } {
  const views: { sections: Record<string, string>; records: number }[] = [];
  let buffer = '';
  const req = request({ host: '127.0.0.1', port, path }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (c: string) => {
      buffer += c;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (/^event: view$/m.test(block) && data) views.push(JSON.parse(data) as (typeof views)[number]);
      }
    });
  });
  req.on('error', () => undefined);
  req.end();
  return { views, close: () => req.destroy() };
}

async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('recoverctl dashboard (the server, over real HTTP)', () => {
  const dirs: string[] = [];
  const open: Dashboard[] = [];
  afterEach(async () => {
    for (const d of open.splice(0)) await d.close();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const stateWith = (lines: string): { state: string; journal: string } => {
    const state = mkdtempSync(join(tmpdir(), 'dash-'));
    dirs.push(state);
    mkdirSync(join(state, 'runs', RUN), { recursive: true });
    const journal = join(state, 'runs', RUN, 'journal.ndjson');
    appendFileSync(journal, lines);
    return { state, journal };
  };
  const start = async (o: Parameters<typeof startDashboard>[0]): Promise<Dashboard> => {
    const d = await startDashboard({ pollMs: 30, ...o });
    open.push(d);
    return d;
  };

  it('lists runs, serves a run page and its report as JSON, and only GET on 127.0.0.1', async () => {
    const { state } = stateWith(events.map(line).join(''));
    const d = await start({ stateDir: state });
    expect(d.url).toBe(`http://127.0.0.1:${d.port}/`);
    const list = await get(d.port, '/');
    expect(list.status).toBe(200);
    expect(list.body).toContain(`<tr data-run="${RUN}"><td><a href="/runs/${RUN}">`);
    expect(list.body).toContain('stopped (resumable)');
    expect(list.headers['content-security-policy']).toContain("default-src 'none'");
    const runs = JSON.parse((await get(d.port, '/api/runs')).body) as { run: string; stepsDone: number; objective: string }[];
    expect(runs).toEqual([expect.objectContaining({ run: RUN, stepsDone: 0, steps: 2, objective: '15m' })]);
    const page = await get(d.port, `/runs/${RUN}`);
    expect(page.body).toContain('<section id="now">');
    // The run's process is gone: its stage no longer bakes, it shows the verdict it got.
    expect(page.body).toContain('<dd id="now-stage" data-stage="1">1/2 of shift (pass)</dd>');
    expect(page.body).toContain('<script src="/assets/dashboard.js" defer></script>');
    const report = JSON.parse((await get(d.port, `/api/runs/${RUN}`)).body) as { stages: unknown[]; incident: string };
    expect(report.incident).toBe('INC-7');
    expect(report.stages).toHaveLength(1);
    expect((await get(d.port, '/assets/dashboard.js')).body).toContain('new EventSource(source)');
    expect((await get(d.port, '/assets/report.css')).headers['content-type']).toBe('text/css; charset=utf-8');
    expect((await get(d.port, '/runs/nope')).status).toBe(404);
    expect((await get(d.port, '/runs/..%2F..%2Fetc')).status).toBe(404);
    expect((await get(d.port, '/', {}, 'POST')).status).toBe(405);
    // DNS rebinding: a page elsewhere reaching 127.0.0.1 under its own name.
    expect((await get(d.port, '/', { Host: `evil.example:${d.port}` })).status).toBe(421);
  });

  it('pushes new whole records as they are appended, and waits for a torn one to be whole', async () => {
    const { state, journal } = stateWith(events.slice(0, 2).map(line).join(''));
    const d = await start({ stateDir: state });
    const s = subscribe(d.port, `/runs/${RUN}/events`);
    try {
      await until(() => s.views.length > 0, 'the first view');
      expect(s.views[0]?.records).toBe(2);
      expect(s.views[0]?.sections.now).toContain('<dd id="now-stage">–</dd>');
      appendFileSync(journal, line(events[2] as RunEvent));
      await until(() => s.views.some((v) => v.records === 3), 'the stage record');
      expect(s.views.find((v) => v.records === 3)?.sections.now).toContain('data-stage="1"');
      // Half a record: not shown; then its end arrives and it is.
      const last = line(events[3] as RunEvent);
      appendFileSync(journal, last.slice(0, 25));
      await new Promise((r) => setTimeout(r, 200));
      expect(s.views.every((v) => v.records <= 3)).toBe(true);
      appendFileSync(journal, last.slice(25));
      await until(() => s.views.some((v) => v.records === 4), 'the completed record');
      const latest = s.views.findLast((v) => v.sections['stages-section'] !== undefined);
      expect(latest?.sections['stages-section']).toContain('min 12 · max 12 · last 12');
      // Only what changed is sent again.
      expect(Object.keys(s.views[s.views.length - 1]?.sections ?? {})).not.toContain('users-section');
      expect(Object.keys(s.views[0]?.sections ?? {})).toContain('users-section');
    } finally {
      s.close();
    }
  });

  it('reports a journal whose tail a crash tore', async () => {
    const { state } = stateWith(`${events.map(line).join('')}{"ts":"2026-01-01T00:00:03.000Z","run":"${RUN}","ev`);
    const d = await start({ stateDir: state });
    const page = await get(d.port, `/runs/${RUN}`);
    expect(page.body).toContain('the journal ends in a torn record');
    expect((await get(d.port, '/')).body).toContain('(torn tail)');
  });

  it('with a token: refuses without it, trades ?token= for a cookie, takes a bearer header', async () => {
    const { state } = stateWith(events.map(line).join(''));
    const token = 'correct-horse-battery-staple';
    const d = await start({ stateDir: state, token });
    expect(d.url).toBe(`http://127.0.0.1:${d.port}/?token=${token}`);
    expect((await get(d.port, '/')).status).toBe(401);
    expect((await get(d.port, '/?token=wrong-wrong-wrong-wrong')).status).toBe(401);
    const first = await get(d.port, `/runs/${RUN}?token=${token}`);
    expect(first.status).toBe(303);
    expect(first.headers.location).toBe(`/runs/${RUN}`);
    const cookie = String(first.headers['set-cookie']).split(';')[0] as string;
    expect(String(first.headers['set-cookie'])).toContain('HttpOnly; SameSite=Strict');
    expect((await get(d.port, `/runs/${RUN}`, { Cookie: cookie })).status).toBe(200);
    expect((await get(d.port, '/api/runs', { Authorization: `Bearer ${token}` })).status).toBe(200);
    expect((await get(d.port, '/assets/report.css')).status).toBe(401);
  });

  it('survives malformed requests and records: bad % escapes, a stale cookie, a record of the wrong shape, a redirect elsewhere', async () => {
    const { state, journal } = stateWith(events.map(line).join(''));
    const token = 'correct-horse-battery-staple';
    const d = await start({ stateDir: state, token });
    const cookie = `recoverctl_dashboard_${d.port}`;
    expect((await get(d.port, '/', { Cookie: `${cookie}=%E0` })).status).toBe(401);
    expect((await get(d.port, '/runs/%E0', { Authorization: `Bearer ${token}` })).status).toBe(404);
    // A URL freshly printed beats a cookie left by an earlier dashboard on this port.
    expect((await get(d.port, `/?token=${token}`, { Cookie: `${cookie}=an-old-token-from-yesterday` })).status).toBe(303);
    expect((await get(d.port, `/.//evil.example?token=${token}`)).headers.location).toBe('/evil.example');
    // With a token, names other than loopback are fine (a jump host, a port forward).
    expect((await get(d.port, '/api/runs', { Authorization: `Bearer ${token}`, Host: `jump.example:9000` })).status).toBe(200);
    // JSON, but not an event the runner writes: the journal is corrupt there, and the dashboard stays up.
    appendFileSync(journal, `${JSON.stringify({ ts: base(3).ts, run: RUN, event: 'ok', step: 'shift', uses: 'traffic.shift' })}\n`);
    const page = await get(d.port, `/runs/${RUN}`, { Authorization: `Bearer ${token}` });
    expect(page.status).toBe(200);
    expect(page.body).toContain('line 5 of the journal is not a whole record');
    expect((await get(d.port, '/', { Authorization: `Bearer ${token}` })).status).toBe(200);
  });

  it('pushes a record to open streams even when a page request read it first', async () => {
    const { state, journal } = stateWith(events.slice(0, 3).map(line).join(''));
    const d = await start({ stateDir: state, pollMs: 300 });
    const s = subscribe(d.port, `/runs/${RUN}/events`);
    try {
      await until(() => s.views.length > 0, 'the first view');
      appendFileSync(journal, line(events[3] as RunEvent));
      expect((await get(d.port, `/api/runs/${RUN}`)).status).toBe(200);
      await until(() => s.views.some((v) => v.records === 4), 'the record read by the page request');
    } finally {
      s.close();
    }
  });

  it('closes its event streams when it stops', async () => {
    const { state } = stateWith(events.map(line).join(''));
    const d = await start({ stateDir: state });
    const s = subscribe(d.port, '/events');
    await until(() => s.views.length > 0, 'the run list');
    expect(s.views[0]?.sections.runs).toContain(RUN);
    await d.close();
    open.splice(0);
    await expect(get(d.port, '/')).rejects.toThrow(/ECONNREFUSED/);
    s.close();
  });
});
