/**
 * What the dashboard serves besides data, all from the package (no CDN: it works offline): the page
 * shell, the report's stylesheet, and the one small script that applies server-sent sections.
 */
import { esc, sectionsHtml, type Section } from '../report/html.js';

/**
 * The browser side: one EventSource; each `view` event carries sections rendered by the server with the
 * report's components, put in place by id without a reload. Open <details> stay open across updates.
 */
export const DASHBOARD_JS = `(() => {
  'use strict';
  const source = document.body.dataset.events;
  const status = document.getElementById('live-status');
  if (!source) return;
  const say = (text, cls) => { if (status) { status.textContent = text; status.className = cls; } };
  const es = new EventSource(source);
  es.addEventListener('open', () => say('live', 'ok'));
  es.addEventListener('error', () => say(es.readyState === EventSource.CLOSED ? 'disconnected: reload the page' : 'reconnecting…', 'warn'));
  es.addEventListener('view', (message) => {
    const view = JSON.parse(message.data);
    for (const [id, html] of Object.entries(view.sections)) {
      const el = document.getElementById(id);
      if (!el) continue;
      const open = [...el.querySelectorAll('details[open][id]')].map((d) => d.id);
      el.innerHTML = html;
      el.hidden = html === '';
      for (const d of open) document.getElementById(d)?.setAttribute('open', '');
    }
    document.body.dataset.records = String(view.records);
    document.body.dataset.updates = String(Number(document.body.dataset.updates || '0') + 1);
    if (view.title) document.title = view.title;
    say(view.live ? 'live' : 'finished: no more updates', view.live ? 'ok' : 'muted');
  });
})();
`;

/** A dashboard page: the served stylesheet and script, the sections, and where its updates come from. */
export function page(o: { title: string; sections: readonly Section[]; events: string; nav: string }): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>${esc(o.title)}</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/assets/report.css"><script src="/assets/dashboard.js" defer></script></head>
<body data-events="${esc(o.events)}" data-records="0" data-updates="0"><main>
<nav><span id="live-status" class="muted" role="status">connecting…</span>${o.nav}</nav>
${sectionsHtml(o.sections)}
</main></body></html>
`;
}
