import { playbookJsonSchema } from './schema.js';

type Json = Record<string, unknown>;

function typeOf(s: Json): string {
  if (s.const !== undefined) return `\`${JSON.stringify(s.const)}\``;
  if (Array.isArray(s.enum)) return (s.enum as unknown[]).map((v) => `\`${JSON.stringify(v)}\``).join(' \\| ');
  const alts = (s.anyOf ?? s.oneOf) as Json[] | undefined;
  if (alts) return alts.map(typeOf).join(' \\| ');
  if (s.type === 'array') return `list of ${typeOf((s.items ?? {}) as Json)}`;
  if (s.type === 'object' && s.additionalProperties && typeof s.additionalProperties === 'object') return `map of ${typeOf(s.additionalProperties as Json)}`;
  if (s.type === 'integer')
    return `integer${s.minimum !== undefined ? ` >= ${String(s.minimum)}` : ''}${s.maximum !== undefined ? ` <= ${String(s.maximum)}` : ''}`;
  if (typeof s.type === 'string') return String(s.type);
  return 'any';
}

const cell = (v: unknown): string => (v === undefined ? '' : String(v).replace(/\|/g, '\\|').replace(/\n/g, ' '));

function fieldRows(obj: Json, prefix = ''): string[] {
  const props = (obj.properties ?? {}) as Record<string, Json>;
  const required = new Set((obj.required ?? []) as string[]);
  const rows: string[] = [];
  for (const [name, s] of Object.entries(props)) {
    const dflt = s.default === undefined ? '' : `\`${JSON.stringify(s.default)}\``;
    const example = Array.isArray(s.examples) ? `\`${JSON.stringify((s.examples as unknown[])[0])}\`` : '';
    rows.push(
      `| \`${prefix}${name}\` | ${typeOf(s)} | ${required.has(name) && s.default === undefined ? 'yes' : ''} | ${dflt} | ${cell(s.description)} ${example ? `e.g. ${example}` : ''} |`,
    );
    if (s.type === 'object' && s.properties) rows.push(...fieldRows(s, `${prefix}${name}.`));
  }
  return rows;
}

/** docs/playbook-reference.md, generated from the zod schemas (`npm run docs`). */
export function renderReference(): string {
  const schema = playbookJsonSchema() as Json;
  const props = schema.properties as Record<string, Json>;
  const steps = ((props.steps as Json).items as Json).oneOf as Json[];
  const lines = [
    '# Playbook reference',
    '',
    '<!-- Generated from the zod schemas by `npm run docs`; a test fails when this file is stale. -->',
    '',
    'Top-level keys: `apiVersion` (`"recoverctl/v1"`), `kind` (`"Playbook"`), `metadata`, `engine`, `rehearsal`, `vars`, `steps`, `rollback`. Every step has the common fields below and the `with:` block of its kind. Strings in `with:` may hold `${{ }}` expressions (see docs/playbooks.md).',
    '',
    '## metadata',
    '',
    '| field | type | required | default | description |',
    '| --- | --- | --- | --- | --- |',
    ...fieldRows(props.metadata as Json),
    '',
    '## rehearsal',
    '',
    '| field | type | required | default | description |',
    '| --- | --- | --- | --- | --- |',
    ...fieldRows(props.rehearsal as Json),
    '',
    '## Common step fields',
    '',
    '| field | type | required | default | description |',
    '| --- | --- | --- | --- | --- |',
    ...fieldRows({
      ...(steps[0] as Json),
      properties: Object.fromEntries(Object.entries((steps[0] as Json).properties as Record<string, Json>).filter(([k]) => k !== 'with' && k !== 'uses')),
    }),
    '',
    '## Step kinds',
  ];
  for (const step of steps) {
    const p = step.properties as Record<string, Json>;
    const uses = String((p.uses as Json).const);
    const w = p.with as Json;
    lines.push('', `### \`${uses}\``, '');
    const variants = (w.oneOf ?? w.anyOf) as Json[] | undefined;
    const examples = Array.isArray(w.examples) ? (w.examples as unknown[]) : [];
    for (const v of variants ?? [w]) {
      if (variants)
        lines.push(
          `With \`${Object.entries(v.properties as Record<string, Json>).find(([, s]) => s.const !== undefined)?.[0] ?? ''}\` = ${typeOf(Object.values(v.properties as Record<string, Json>).find((s) => s.const !== undefined) ?? {})}:`,
          '',
        );
      lines.push('| field | type | required | default | description |', '| --- | --- | --- | --- | --- |', ...fieldRows(v), '');
    }
    if (examples.length)
      lines.push('Example:', '', '```yaml', `- id: ${uses.replace('.', '-')}`, `  uses: ${uses}`, `  with: ${JSON.stringify(examples[0])}`, '```');
  }
  return `${lines
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trimEnd()}\n`;
}
