// The committed OpenAPI document passes a third-party linter, Redocly CLI, with its
// recommended rules (redocly.yaml): no error and no warning. Before issue 11 it reported 26
// operations without an operationId and an info object without a license.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { ROOT, withoutTapLoader } from '../helpers/live-daemon.js';

interface LintReport {
  totals: { errors: number; warnings: number };
  problems: { ruleId: string; message: string; location?: { pointer?: string }[] }[];
}

t.test('redocly lint --extends recommended: 0 errors, 0 warnings', async (t) => {
  const [cmd, ...args] = withoutTapLoader(['npx', '--no', 'redocly', 'lint', 'openapi/openapi.json', '--config', 'redocly.yaml', '--format', 'json']) as [string, ...string[]];
  const run = spawnSync(cmd, args, {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 120_000,
    // No network: no telemetry, no update check.
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NODE_OPTIONS: '' },
  });
  const start = run.stdout.indexOf('{');
  t.ok(start >= 0, `redocly printed a JSON report\n${run.stdout}${run.stderr}`);
  const report = JSON.parse(run.stdout.slice(start)) as LintReport;
  const problems = report.problems.map((p) => `${p.ruleId}: ${p.message} (${p.location?.[0]?.pointer ?? ''})`);
  t.same(problems, [], 'no problem reported');
  t.equal(report.totals.errors, 0, 'no errors');
  t.equal(report.totals.warnings, 0, 'no warnings');
  t.equal(run.status, 0, 'exit status 0');
});
