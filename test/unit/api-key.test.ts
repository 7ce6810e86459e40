import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { apiKeyPath, keysMatch, resolveApiKey } from '../../src/api/api-key.js';

function tempDb(t: { teardown(fn: () => unknown): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nftfarm-key-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'data', 'nftfarm.db');
}

const mode = (file: string) => fs.statSync(file).mode & 0o777;

t.test('the key file sits beside the database', async (t) => {
  t.equal(apiKeyPath('/var/lib/nftfarm/nftfarm.db'), '/var/lib/nftfarm/api-key');
});

t.test('first start generates a key in a 0600 file; the second start reuses it', async (t) => {
  const db = tempDb(t);
  const file = apiKeyPath(db);
  const first = resolveApiKey(null, db);
  t.equal(first.generated, true);
  t.equal(first.origin, file);
  t.match(first.key, /^[A-Za-z0-9_-]{32}$/, '24 random bytes, base64url');
  t.equal(mode(file), 0o600);
  t.equal(fs.readFileSync(file, 'utf8'), `${first.key}\n`);

  const second = resolveApiKey(null, db);
  t.strictSame(second, { key: first.key, origin: file, generated: false });
  t.equal(mode(file), 0o600);

  const otherDb = tempDb(t);
  t.not(resolveApiKey(null, otherDb).key, first.key, 'every appliance gets its own key');
});

t.test('the environment key wins and no file is written', async (t) => {
  const db = tempDb(t);
  t.strictSame(resolveApiKey('from-the-env', db), { key: 'from-the-env', origin: 'environment', generated: false });
  t.notOk(fs.existsSync(apiKeyPath(db)));
  const fileKey = resolveApiKey(null, db).key;
  t.equal(resolveApiKey('from-the-env', db).key, 'from-the-env', 'also when a key file exists');
  t.equal(resolveApiKey(null, db).key, fileKey);
});

t.test('an existing key file is trimmed, tightened to 0600, and refused when too short', async (t) => {
  const db = tempDb(t);
  const file = apiKeyPath(db);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, '  my-own-long-key  \n', { mode: 0o644 });
  fs.chmodSync(file, 0o644);
  t.strictSame(resolveApiKey(null, db), { key: 'my-own-long-key', origin: file, generated: false });
  t.equal(mode(file), 0o600, 'a readable key file is tightened');

  fs.writeFileSync(file, 'short\n');
  t.throws(() => resolveApiKey(null, db), { message: `the API key file ${file} holds no usable key (8 characters at least); fix or delete it` });
  t.equal(fs.readFileSync(file, 'utf8'), 'short\n', 'a bad key file is not overwritten');
});

t.test('keysMatch', async (t) => {
  t.ok(keysMatch('test-key-123456', 'test-key-123456'));
  t.notOk(keysMatch('test-key-123457', 'test-key-123456'));
  t.notOk(keysMatch('test-key-12345', 'test-key-123456'), 'a prefix');
  t.notOk(keysMatch('', 'test-key-123456'));
  t.notOk(keysMatch('TEST-KEY-123456', 'test-key-123456'), 'case matters');
  t.ok(keysMatch('', ''));
});
