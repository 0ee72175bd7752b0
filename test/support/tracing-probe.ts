/**
 * Child process of the tracing test: runs the real web and worker, posts one
 * form, waits for its row, stops both, and prints which OpenTelemetry modules
 * (and ./otel.ts) were resolved.
 */
import { registerHooks } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';

const resolved: string[] = [];
registerHooks({
  resolve(specifier, context, next) {
    if (specifier.includes('@opentelemetry') || specifier.endsWith('/otel.ts')) resolved.push(specifier);
    return next(specifier, context);
  },
});

const { loadConfig } = await import('../../services/common/config.ts');
const { createDatabase } = await import('../../services/common/db.ts');
const { createWebService } = await import('../../services/web/service.ts');
const { createWorkerService } = await import('../../services/worker/service.ts');
const { validForm } = await import('../../harness/forms.ts');
const config = loadConfig(process.env);
const web = await createWebService(config);
const worker = await createWorkerService(config);
await worker.start();
const port = await web.listen();
const response = await fetch(`http://127.0.0.1:${port}/form/`, {
  method: 'POST',
  headers: {
    'Content-Type': 'application/json',
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  },
  body: JSON.stringify({ data: validForm() }),
});
// The probe posts the same form each run: one submission, stored once, found by its submission id.
const { submission_id: submissionId } = (await response.json()) as { submission_id: string };
const db = createDatabase(config.database);
for (let i = 0; i < 400 && !(await db('form_form').where({ submission_id: submissionId }).first()); i++)
  await sleep(50);
const stored = Boolean(await db('form_form').where({ submission_id: submissionId }).first());
await db.destroy();
await web.stop();
await worker.stop();
process.stdout.write(`${JSON.stringify({ status: response.status, stored, resolved })}\n`);
