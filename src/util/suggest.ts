/**
 * "Did you mean" for names a human typed: the closest known name, when it is near enough to be a typo.
 * Pure; no I/O.
 */

/** Edit distance counting a swap of two neighbouring characters as one edit (optimal string alignment). */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  if (a.length === 0) return b.length;
  if (b.length === 0) return a.length;
  // Three rolling rows: the transposition step looks two rows back.
  let before = new Array<number>(b.length + 1).fill(0);
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  let current = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    current[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, (previous[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, (before[j - 2] as number) + 1);
      current[j] = d;
    }
    [before, previous, current] = [previous, current, before];
  }
  return previous[b.length] as number;
}

/**
 * The known name closest to `input` (case ignored), or undefined when none is a likely typo: at most
 * max(2, a third of the length) edits, and fewer edits than either name is long (so `ab` is not `id`).
 */
export function closest(input: string, known: Iterable<string>): string | undefined {
  const typed = input.toLowerCase();
  let best: { name: string; distance: number } | undefined;
  for (const name of known) {
    if (name === input) continue;
    const distance = editDistance(typed, name.toLowerCase());
    const limit = Math.max(2, Math.floor(typed.length / 3));
    if (distance > limit || distance >= Math.min(typed.length, name.length)) continue;
    if (!best || distance < best.distance) best = { name, distance };
  }
  return best?.name;
}

/** ` (did you mean 'x'?)` to append to a message, or '' when nothing known is close. */
export function didYouMean(input: string, known: Iterable<string>, quote: (name: string) => string = (n) => `'${n}'`): string {
  const name = closest(input, known);
  return name === undefined ? '' : ` (did you mean ${quote(name)}?)`;
}
