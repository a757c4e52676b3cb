// The house's layering rules (.dependency-cruiser.cjs) hold on the tree as it is, and each kind
// of break is caught: the rules are run by dependency-cruiser itself, on this tree and on a copy
// of it with one bad import added.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const project = resolve(import.meta.dirname, '..');
const depcruise = join(project, 'node_modules', '.bin', 'depcruise');

interface Violation {
  rule: { name: string };
  from: string;
  to: string;
}

/** The rules' violations in the tree at `dir`, as dependency-cruiser reports them. */
async function violations(dir: string): Promise<Violation[]> {
  const args = ['src', 'store', 'routes', '--config', '.dependency-cruiser.cjs', '--output-type', 'json'];
  let stdout: string;
  try {
    ({ stdout } = await run(depcruise, args, { cwd: dir, maxBuffer: 64 << 20 }));
  } catch (err) {
    // It exits non-zero when rules are broken; the report is still on stdout.
    stdout = (err as { stdout?: string }).stdout ?? '';
    if (!stdout) throw err;
  }
  return (JSON.parse(stdout) as { summary: { violations: Violation[] } }).summary.violations;
}

const describe = (vs: Violation[]) => vs.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`).join('\n');

test('the tree keeps every layering rule', async () => {
  const found = await violations(project);
  assert.equal(found.length, 0, `layering rules broken:\n${describe(found)}`);
});

test('a bad import fails the rule that forbids it, by name', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-layering-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  for (const entry of ['src', 'store', 'routes', 'tsconfig.json', '.dependency-cruiser.cjs', 'openapi.yaml']) {
    await cp(join(project, entry), join(dir, entry), { recursive: true });
  }
  await symlink(join(project, 'node_modules'), join(dir, 'node_modules'));
  // The store reaches up into the CLI; the vocabulary room imports a stage; a stage imports
  // a stage above it, which closes a folder cycle (pull already imports unpack).
  await writeFile(join(dir, 'store', 'break-store.ts'), "export { main } from '../src/cli/main.js';\n");
  await writeFile(join(dir, 'src', 'oci', 'break-oci.ts'), "export * from '../metadata/db.js';\n");
  await writeFile(join(dir, 'src', 'unpack', 'break-cycle.ts'), "export * from '../pull/select.js';\n");

  const byRule = new Map<string, Violation[]>();
  for (const v of await violations(dir)) byRule.set(v.rule.name, [...(byRule.get(v.rule.name) ?? []), v]);
  const names = [...byRule.keys()].sort();
  const expect = (rule: string, from: string) =>
    assert.ok(
      byRule.get(rule)?.some((v) => v.from === from),
      `${rule} should name ${from}; reported: ${names.join(', ')}`,
    );
  expect('store-imports-nothing-of-berth', 'store/break-store.ts');
  expect('nothing-imports-cli', 'store/break-store.ts');
  expect('layer-store', 'store/break-store.ts');
  expect('oci-imports-only-store-words', 'src/oci/break-oci.ts');
  expect('layer-oci', 'src/oci/break-oci.ts');
  expect('layer-unpack', 'src/unpack/break-cycle.ts');
  // Nothing else in the copy is reported: the rules are precise, not noisy.
  const unexpected = [...byRule.values()].flat().filter((v) => !/break-/.test(v.from) && !/break-/.test(v.to));
  assert.deepEqual(unexpected, [], 'only the planted imports are reported');
});
