import { playbookJsonSchema } from '../playbook/schema.js';

export async function schemaCommand(opts: { markdown?: boolean } = {}): Promise<void> {
  if (opts.markdown) {
    const { renderReference } = await import('../playbook/reference.js');
    process.stdout.write(renderReference());
    return;
  }
  process.stdout.write(`${JSON.stringify(playbookJsonSchema(), null, 2)}\n`);
}
