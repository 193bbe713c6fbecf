/**
 * The geometry of the report's and dashboard's charts, pure so it can be tested without a browser: the
 * time axis and its ticks, and the placement of marker labels so no two overlap.
 */

/** Width of one character of the charts' label font (11px monospace, 0.6em a glyph), rounded up. */
export const LABEL_CHAR_PX = 7;
/** Height of one lane of marker labels. */
export const LABEL_LANE_PX = 15;
/** The least gap left between two labels in the same lane. */
const LABEL_GAP_PX = 6;

/** Tick steps a time axis may use, in milliseconds: 1-2-5 over the clock's units. */
const TICK_STEPS_MS = [
  100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 10_800_000,
  21_600_000, 43_200_000, 86_400_000,
];

export interface Tick {
  t: number;
  label: string;
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** A tick's label: the UTC clock time, with tenths when the step is under a second. */
export function clockLabel(t: number, stepMs: number): string {
  const d = new Date(t);
  const base = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  return stepMs < 1_000 ? `${base}.${Math.floor(d.getUTCMilliseconds() / 100)}` : base;
}

/**
 * Ticks on round clock times between t0 and t1 (ms since the epoch): the finest round step that gives at
 * most `max` of them, unless that gives fewer than four (a span just past `max` steps of 2 s is under four
 * of 5 s): then the step before it, a few more than `max` (round steps are at most 2.5 apart).
 */
export function timeTicks(t0: number, t1: number, max = 8): Tick[] {
  const span = Math.max(1, t1 - t0);
  let i = TICK_STEPS_MS.findIndex((s) => span / s <= max);
  if (i > 0 && span / (TICK_STEPS_MS[i] as number) < 4) i--;
  const step = i >= 0 ? (TICK_STEPS_MS[i] as number) : Math.ceil(span / max / 86_400_000) * 86_400_000;
  const ticks: Tick[] = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push({ t, label: clockLabel(t, step) });
  return ticks;
}

/** Ticks for a value axis from 0 to at least `max`: round numbers, at most `count + 1` of them. */
export function valueTicks(max: number, count = 4): number[] {
  const top = Math.max(max, 1);
  const raw = top / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].find((m) => m * mag >= raw) ?? 10) * mag;
  const out: number[] = [0];
  while ((out[out.length - 1] as number) < top) out.push(Number((out.length * step).toPrecision(12)));
  return out;
}

/** A linear scale from [d0, d1] to [r0, r1]; a zero-width domain maps to r0. */
export function scale(d0: number, d1: number, r0: number, r1: number): (v: number) => number {
  const span = d1 - d0;
  return (v) => (span === 0 ? r0 : r0 + ((v - d0) / span) * (r1 - r0));
}

export interface MarkerInput {
  x: number;
  text: string;
}

export interface PlacedLabel extends MarkerInput {
  /** Lane 0 is the one nearest the chart. */
  lane: number;
  /** Where the text starts, and which way it runs from its marker. */
  textX: number;
  anchor: 'start' | 'end';
  width: number;
}

/** How wide a label is drawn in the charts' monospace label font. */
export const labelWidth = (text: string): number => [...text].length * LABEL_CHAR_PX;

/**
 * Lay marker labels out in lanes so none overlaps another: each goes right of its marker (left of it
 * when it would run past `right`), in the first lane whose last label ends far enough before it.
 * Returns the labels in the order given, and how many lanes they took.
 */
export function placeLabels(markers: readonly MarkerInput[], left: number, right: number): { labels: PlacedLabel[]; lanes: number } {
  const order = markers.map((m, i) => ({ m, i })).sort((a, b) => a.m.x - b.m.x || a.i - b.i);
  const laneEnds: number[] = [];
  const placed: PlacedLabel[] = new Array<PlacedLabel>(markers.length);
  for (const { m, i } of order) {
    const width = labelWidth(m.text);
    const rightward = m.x + 3 + width <= right;
    const start = rightward ? m.x + 3 : Math.max(left, m.x - 3 - width);
    let lane = laneEnds.findIndex((end) => end + LABEL_GAP_PX <= start);
    if (lane === -1) lane = laneEnds.push(-Infinity) - 1;
    laneEnds[lane] = start + width;
    placed[i] = { ...m, lane, width, anchor: rightward ? 'start' : 'end', textX: rightward ? start : start + width };
  }
  return { labels: placed, lanes: laneEnds.length };
}

/** A number short enough for an axis or a table: at most 3 decimals, no trailing zeros. */
export function shortNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const abs = Math.abs(v);
  if (abs >= 1_000_000) return `${Number((v / 1_000_000).toFixed(1))}M`;
  if (abs >= 10_000) return `${Number((v / 1_000).toFixed(1))}k`;
  return String(Number(v.toFixed(abs >= 100 ? 0 : abs >= 1 ? 2 : 3)));
}
