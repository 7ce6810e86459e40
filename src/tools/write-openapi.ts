/**
 * `npm run openapi`: writes the OpenAPI document the app serves at /openapi.json to
 * openapi/openapi.json, so it is committed and reviewed with the code (a test fails on drift).
 * Builds the app on an in-memory store with no data plane: the document depends on the routes
 * and schemas only.
 */
import { mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp } from '../app.js';
import { noDataplane, type HostView } from '../model/runtime.js';
import { openDatabase } from '../store/db.js';
import { Store } from '../store/store.js';

export const OPENAPI_FILE = fileURLToPath(new URL('../../openapi/openapi.json', import.meta.url));

const noNetworks: HostView = { connectedNetworks: async (ips) => ips.map(() => null) };

/** The document as committed: pretty JSON, 2-space indent, trailing newline. */
export async function renderOpenapi(): Promise<string> {
  const store = new Store(openDatabase(':memory:'));
  const app = await buildApp({ store, apiKey: 'openapi-document-only', host: noNetworks, dataplane: noDataplane });
  try {
    await app.ready();
    return `${JSON.stringify(app.swagger(), null, 2)}\n`;
  } finally {
    await app.close();
    store.close();
  }
}

async function main(): Promise<void> {
  const text = await renderOpenapi();
  mkdirSync(dirname(OPENAPI_FILE), { recursive: true });
  writeFileSync(OPENAPI_FILE, text);
  process.stdout.write(`wrote ${OPENAPI_FILE} (${text.length} bytes)\n`);
}

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`write-openapi: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
