/**
 * The colours and styles of the incident report and the dashboard: one palette per colour scheme, each
 * text colour at WCAG AA contrast (4.5:1) on every background it is drawn on, each chart colour at 3:1
 * (WCAG 1.4.11) on the page; test/unit/report-html.test.ts checks both from this table.
 */

export interface Palette {
  bg: string;
  /** Table headers, panels. */
  surface: string;
  fg: string;
  muted: string;
  ok: string;
  bad: string;
  warn: string;
  accent: string;
  /** The background of a failed row, and of a row needing attention. */
  badBg: string;
  warnBg: string;
  border: string;
}

export const LIGHT: Palette = {
  bg: '#ffffff',
  surface: '#f6f8fa',
  fg: '#1f2328',
  muted: '#59636e',
  ok: '#1a7f37',
  bad: '#c5221f',
  warn: '#8a5a00',
  accent: '#0b63c9',
  badBg: '#ffebe9',
  warnBg: '#fff8c5',
  border: '#8c959f',
};

export const DARK: Palette = {
  bg: '#0d1117',
  surface: '#161b22',
  fg: '#e6edf3',
  muted: '#9198a1',
  ok: '#3fb950',
  bad: '#ff7b72',
  warn: '#d29922',
  accent: '#58a6ff',
  badBg: '#3c1618',
  warnBg: '#33280a',
  border: '#6e7681',
};

/** The text colours and the backgrounds each is drawn on (what the contrast test walks). */
export const TEXT_ON: readonly { text: keyof Palette; on: readonly (keyof Palette)[] }[] = [
  { text: 'fg', on: ['bg', 'surface', 'badBg', 'warnBg'] },
  { text: 'muted', on: ['bg', 'surface'] },
  { text: 'ok', on: ['bg', 'surface'] },
  { text: 'bad', on: ['bg', 'surface', 'badBg'] },
  { text: 'warn', on: ['bg', 'surface', 'warnBg'] },
  { text: 'accent', on: ['bg', 'surface'] },
];

/** The colours charts draw lines, bars and markers in: 3:1 against the page at least. */
export const GRAPHICS: readonly (keyof Palette)[] = ['ok', 'bad', 'warn', 'accent', 'muted', 'border'];

/** WCAG 2 relative luminance of a `#rrggbb` colour. */
export function luminance(hex: string): number {
  const channel = (i: number): number => {
    const c = parseInt(hex.slice(1 + i * 2, 3 + i * 2), 16) / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * channel(0) + 0.7152 * channel(1) + 0.0722 * channel(2);
}

/** WCAG 2 contrast ratio of two colours, 1 to 21. */
export function contrast(a: string, b: string): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x) as [number, number];
  return (hi + 0.05) / (lo + 0.05);
}

const vars = (p: Palette): string =>
  Object.entries(p)
    .map(([k, v]) => `--${k}:${v}`)
    .join(';');

/** The stylesheet: inlined in the report, served by the dashboard. Light, dark (prefers-color-scheme) and print. */
export const REPORT_CSS = `:root{${vars(LIGHT)};color-scheme:light dark}
@media (prefers-color-scheme: dark){:root{${vars(DARK)}}}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:var(--bg);color:var(--fg)}
main{max-width:1040px;margin:0 auto;padding:20px 24px 48px}
h1{font-size:22px;margin:0 0 6px}h2{font-size:17px;margin:26px 0 8px}h3{font-size:15px;margin:16px 0 6px}
a{color:var(--accent)}code{font:12.5px ui-monospace,SFMono-Regular,Menlo,monospace}
.muted{color:var(--muted)}.met,.ok{color:var(--ok);font-weight:600}.breached,.bad{color:var(--bad);font-weight:600}.warn{color:var(--warn);font-weight:600}
.badge{display:inline-block;padding:1px 8px;border:1px solid currentColor;border-radius:10px;font-weight:600}
table{border-collapse:collapse;margin:8px 0;width:100%}td,th{border:1px solid var(--border);padding:4px 8px;text-align:left;vertical-align:top}
#steps td{overflow-wrap:anywhere}td.num,th,td time{white-space:nowrap}
th{background:var(--surface)}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.failure td,tr.verdict-fail td{background:var(--badBg)}tr.verdict-inconclusive td,tr.verdict-error td,tr.interrupted td{background:var(--warnBg)}
td.verdict-fail{color:var(--bad);font-weight:600}td.verdict-pass{color:var(--ok)}td.verdict-error,td.verdict-inconclusive{color:var(--warn);font-weight:600}
pre.tail{margin:4px 0 0;font-size:12px;white-space:pre-wrap}
#failure{border:2px solid var(--bad);background:var(--badBg);border-radius:6px;padding:10px 14px;margin:12px 0}
#failure h2{margin:0 0 6px;color:var(--bad)}
.panel{background:var(--surface);border:1px solid var(--border);border-radius:6px;padding:10px 14px;margin:10px 0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(180px,1fr));gap:8px 18px}
.grid dt{color:var(--muted);font-size:12px}.grid dd{margin:0;font-weight:600}
svg.chart{display:block;width:100%;height:auto;max-width:960px}
svg text.step-note{fill:var(--muted)}svg text{fill:var(--fg);font:11px ui-monospace,SFMono-Regular,Menlo,monospace}
svg .axis line,svg .axis path{stroke:var(--border)}svg .grid-line{stroke:var(--border);stroke-opacity:.35}
svg .marker{stroke:var(--fg);stroke-dasharray:3 3;stroke-opacity:.7}
svg .bar.success{fill:var(--ok)}svg .bar.failure{fill:var(--bad)}svg .bar.skipped{fill:var(--muted)}svg .bar.interrupted{fill:var(--warn)}svg .bar.running{fill:var(--accent)}
svg .band.halted{fill:var(--bad);fill-opacity:.13}svg .band.cancel-only,svg .band.post-only{fill:var(--warn);fill-opacity:.13}svg .band.open{fill:var(--ok);fill-opacity:.13}
svg .line-depth{stroke:var(--bad);fill:none;stroke-width:2}svg .line-weight{stroke:var(--accent);fill:none;stroke-width:2}
svg .swatch-depth{fill:var(--bad)}svg .swatch-weight{fill:var(--accent)}svg .dot{fill:var(--accent)}svg .dot.failed{fill:var(--bad)}
svg .budget-track{fill:var(--surface);stroke:var(--border)}svg .budget-spent{fill:var(--ok)}svg .budget-spent.over{fill:var(--bad)}svg .budget-objective{stroke:var(--fg);stroke-width:2}svg .budget-predicted{stroke:var(--accent);stroke-width:2}
details summary{cursor:pointer;color:var(--accent)}
nav{margin-bottom:10px}
#live-status{float:right;font-size:12px}
@media print{
  :root{${vars(LIGHT)}}
  body{font-size:11px;background:#fff;color:#000}main{max-width:none;padding:0}
  nav,#live-status{display:none}a{color:inherit}
  h2{break-after:avoid}tr,svg,#failure,.panel{break-inside:avoid}
  @page{size:A4;margin:14mm}
}
`;
