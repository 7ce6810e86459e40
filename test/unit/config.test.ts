import path from 'node:path';
import t from 'tap';
import { ConfigError, DEFAULT_DB, isLoopbackHost, loadConfig, parseListen } from '../../src/config.js';

/** tap's t.throws matches a class by name, and these errors keep the name 'Error'. */
function errorOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

t.test('parseListen', async (t) => {
  t.strictSame(parseListen('127.0.0.1:4444'), { host: '127.0.0.1', port: 4444 });
  t.strictSame(parseListen('0.0.0.0:444'), { host: '0.0.0.0', port: 444 });
  t.strictSame(parseListen(':8080'), { host: '0.0.0.0', port: 8080 }, 'all addresses');
  t.strictSame(parseListen('localhost:1'), { host: 'localhost', port: 1 });
  t.strictSame(parseListen('[::1]:65535'), { host: '::1', port: 65535 });
  t.strictSame(parseListen('[::]:444'), { host: '::', port: 444 });
  for (const bad of ['', '4444', '127.0.0.1', '127.0.0.1:', '127.0.0.1:0', '127.0.0.1:65536', '127.0.0.1:123456', '::1:444', '[::1]', 'host:port', 'a:b:1', '[::1:444']) {
    t.ok(errorOf(() => parseListen(bad)) instanceof ConfigError, JSON.stringify(bad));
  }
  t.throws(() => parseListen('nope'), { message: "invalid listen address 'nope': expected HOST:PORT, e.g. 127.0.0.1:4444" });
});

t.test('loadConfig: defaults', async (t) => {
  const config = loadConfig({}, {}, '/srv/nftfarm');
  t.strictSame(config, {
    listenHost: '127.0.0.1',
    listenPort: 4444,
    dbPath: path.resolve('/srv/nftfarm', DEFAULT_DB),
    apiKey: null,
    dryRun: false,
    logLevel: 'info',
    metrics: 'open',
    tls: null,
  });
});

t.test('loadConfig: the environment overrides the defaults, flags override the environment', async (t) => {
  const env = {
    NFTFARM_LISTEN: '0.0.0.0:9000',
    NFTFARM_DB: 'env/store.db',
    NFTFARM_API_KEY: 'an-env-key-1234',
    NFTFARM_DRY_RUN: 'true',
    NFTFARM_LOG_LEVEL: 'debug',
    NFTFARM_METRICS: 'key',
  };
  const fromEnv = loadConfig({}, env, '/cwd');
  t.strictSame(fromEnv, {
    listenHost: '0.0.0.0',
    listenPort: 9000,
    dbPath: '/cwd/env/store.db',
    apiKey: 'an-env-key-1234',
    dryRun: true,
    logLevel: 'debug',
    metrics: 'key',
    tls: null,
  });
  const fromFlags = loadConfig({ listen: ':7000', db: '/abs/flag.db', dryRun: false }, env, '/cwd');
  t.equal(fromFlags.listenHost, '0.0.0.0');
  t.equal(fromFlags.listenPort, 7000);
  t.equal(fromFlags.dbPath, '/abs/flag.db', 'an absolute path stays as is');
  t.equal(fromFlags.dryRun, false, 'a flag false beats an env true');
  t.equal(fromFlags.apiKey, 'an-env-key-1234');
  t.equal(loadConfig({ db: 'rel.db' }, {}, '/cwd').dbPath, '/cwd/rel.db', 'relative to the working directory');
  t.equal(loadConfig({ dryRun: true }, {}, '/cwd').dryRun, true);
});

t.test('loadConfig: NFTFARM_DRY_RUN spellings', async (t) => {
  for (const [value, want] of [['', false], ['0', false], ['false', false], ['1', true], ['true', true]] as const) {
    t.equal(loadConfig({}, { NFTFARM_DRY_RUN: value }, '/').dryRun, want, JSON.stringify(value));
  }
  t.throws(() => loadConfig({}, { NFTFARM_DRY_RUN: 'yes' }, '/'), { message: 'NFTFARM_DRY_RUN must be true or false' });
});

t.test('loadConfig refuses bad values', async (t) => {
  t.throws(() => loadConfig({}, { NFTFARM_API_KEY: 'short' }, '/'), { message: 'NFTFARM_API_KEY must be at least 8 characters long' });
  t.equal(loadConfig({}, { NFTFARM_API_KEY: '12345678' }, '/').apiKey, '12345678', '8 characters are enough');
  t.ok(errorOf(() => loadConfig({}, { NFTFARM_LOG_LEVEL: 'verbose' }, '/')) instanceof ConfigError);
  t.throws(() => loadConfig({}, { NFTFARM_LOG_LEVEL: 'verbose' }, '/'), { message: 'NFTFARM_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent' });
  t.ok(errorOf(() => loadConfig({}, { NFTFARM_LISTEN: 'nope' }, '/')) instanceof ConfigError);
  t.throws(() => loadConfig({}, { NFTFARM_METRICS: 'public' }, '/'), { message: 'NFTFARM_METRICS must be one of auto, open, key, off' });
  t.ok(errorOf(() => loadConfig({ listen: 'bad' }, { NFTFARM_LISTEN: '127.0.0.1:1' }, '/')) instanceof ConfigError, 'the flag is used, even when bad');
});

t.test('NFTFARM_METRICS auto (the default): open on loopback only, the API key anywhere else', async (t) => {
  for (const listen of ['127.0.0.1:4444', '127.9.9.9:1', 'localhost:4444', '[::1]:4444']) {
    t.equal(loadConfig({ listen }, {}, '/').metrics, 'open', listen);
    t.equal(loadConfig({ listen }, { NFTFARM_METRICS: 'auto' }, '/').metrics, 'open', `${listen}, auto`);
  }
  for (const listen of ['0.0.0.0:4444', ':4444', '10.0.0.1:4444', '[::]:4444', 'lb.example:4444']) {
    t.equal(loadConfig({ listen }, {}, '/').metrics, 'key', listen);
  }
  t.equal(loadConfig({ listen: '0.0.0.0:4444' }, { NFTFARM_METRICS: 'open' }, '/').metrics, 'open', 'an explicit choice wins');
  t.equal(loadConfig({}, { NFTFARM_METRICS: 'off' }, '/').metrics, 'off');
});

t.test('TLS: --tls-cert and --tls-key (or NFTFARM_TLS_CERT and NFTFARM_TLS_KEY), both or neither', async (t) => {
  t.strictSame(loadConfig({ tlsCert: 'c.pem', tlsKey: '/k.pem' }, {}, '/srv').tls, { certPath: '/srv/c.pem', keyPath: '/k.pem' });
  t.strictSame(loadConfig({}, { NFTFARM_TLS_CERT: '/c', NFTFARM_TLS_KEY: '/k' }, '/').tls, { certPath: '/c', keyPath: '/k' });
  t.strictSame(loadConfig({ tlsCert: '/flag' }, { NFTFARM_TLS_CERT: '/c', NFTFARM_TLS_KEY: '/k' }, '/').tls, { certPath: '/flag', keyPath: '/k' }, 'the flag wins');
  t.throws(() => loadConfig({ tlsCert: '/c' }, {}, '/'), { message: 'HTTPS needs both a certificate and a key: --tls-cert and --tls-key (NFTFARM_TLS_CERT, NFTFARM_TLS_KEY)' });
  t.throws(() => loadConfig({}, { NFTFARM_TLS_KEY: '/k' }, '/'), { message: /needs both/ });
});

t.test('isLoopbackHost', async (t) => {
  for (const host of ['127.0.0.1', '127.255.0.1', '::1', 'localhost', '::ffff:127.0.0.1']) t.ok(isLoopbackHost(host), host);
  for (const host of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', 'example.com', '']) t.notOk(isLoopbackHost(host), host);
});
