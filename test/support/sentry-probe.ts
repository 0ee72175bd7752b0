/**
 * Child process of the error-reporting test: runs the real web with a sender
 * that throws (a bug, so a 500), and prints which @sentry modules were resolved.
 */
import { registerHooks } from 'node:module';

const resolved: string[] = [];
registerHooks({
  resolve(specifier, context, next) {
    if (specifier.includes('@sentry')) resolved.push(specifier);
    return next(specifier, context);
  },
});

const { loadConfig } = await import('../../services/common/config.ts');
const { createWebService } = await import('../../services/web/service.ts');
const { validForm } = await import('../../harness/forms.ts');
const web = await createWebService(loadConfig(process.env), {
  sender: {
    send: () => Promise.reject(new Error('probe: a bug in the sender')),
    close: () => Promise.resolve(),
  },
});
const port = await web.listen();
const response = await fetch(`http://127.0.0.1:${port}/form/`, {
  method: 'POST',
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify({ data: validForm() }),
});
await web.stop();
process.stdout.write(`${JSON.stringify({ status: response.status, resolved })}\n`);
