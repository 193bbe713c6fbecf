/** The first line of a text: the summary, where a one-line place (a table cell, a retry line) has room for no more. */
export function firstLine(text: string): string {
  const nl = text.indexOf('\n');
  return nl === -1 ? text : text.slice(0, nl);
}
