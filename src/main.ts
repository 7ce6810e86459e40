/** The `nftfarm` command line: parse arguments, then serve or print the ruleset. */
import { ConfigError, DEFAULT_DB, DEFAULT_LISTEN, loadConfig } from './config.js';
import { VERSION } from './version.js';

const MAIN_HELP = `nftfarm ${VERSION}: an L4 load balancer (ZEVENET ZAPI v4.0 L4xNAT API, nftables data plane)

Usage:
  nftfarm serve [--listen HOST:PORT] [--db PATH] [--dry-run] [--tls-cert FILE --tls-key FILE]
                                                               run the appliance
  nftfarm rules [--db PATH]                                    print the ruleset nftfarm would apply now
  nftfarm --help | nftfarm <command> --help
  nftfarm --version

Environment:
  NFTFARM_LISTEN     address of the HTTP API (default ${DEFAULT_LISTEN})
  NFTFARM_DB         SQLite database file (default ${DEFAULT_DB}, under the working directory)
  NFTFARM_API_KEY    API key; without it a key is generated on first start and kept in
                     the file 'api-key' beside the database (mode 0600)
  NFTFARM_DRY_RUN    true: render and log rulesets, never apply them (no root needed)
  NFTFARM_LOG_LEVEL  fatal, error, warn, info (default), debug, trace or silent
  NFTFARM_METRICS    GET /metrics: auto (default: open on loopback, the API key otherwise),
                     open, key or off
  NFTFARM_TLS_CERT   HTTPS: the certificate (PEM), with NFTFARM_TLS_KEY the private key
`;

const SERVE_HELP = `Usage: nftfarm serve [--listen HOST:PORT] [--db PATH] [--dry-run] [--tls-cert FILE --tls-key FILE]

Runs the appliance: the ZAPI v4.0 HTTP API under /zapi/v4.0/zapi.cgi, the reconciler that
keeps the kernel's nftables rules equal to the stored farms, and the VIP announcements.
Needs CAP_NET_ADMIN (and CAP_NET_RAW for check_ping) as ambient capabilities, so that nft and
conntrack inherit them (see nftfarm.service), or root; and the nft binary. Not with --dry-run.

Options (each has an environment equivalent; the option wins):
  --listen HOST:PORT  where the API listens            NFTFARM_LISTEN   (default ${DEFAULT_LISTEN})
  --db PATH           the SQLite database file          NFTFARM_DB       (default ${DEFAULT_DB})
  --dry-run           render and log rulesets only      NFTFARM_DRY_RUN  (default false)
  --tls-cert FILE     serve HTTPS with this certificate NFTFARM_TLS_CERT (PEM, chain allowed)
  --tls-key FILE      ... and this private key          NFTFARM_TLS_KEY  (PEM)
  -h, --help          this text

The API key: NFTFARM_API_KEY, else the file 'api-key' beside the database, created with a
random key on first start. Send it in the ZAPI_KEY (or API_KEY) header.
Unauthenticated routes: GET /healthz, GET /openapi.json, /docs (Swagger UI), and GET /metrics
while the API listens on loopback only (NFTFARM_METRICS=auto).
SIGTERM or SIGINT stop it gracefully; the kernel rules stay in place so traffic keeps flowing.
`;

const RULES_HELP = `Usage: nftfarm rules [--db PATH]

Prints the nftables ruleset nftfarm would apply now for the farms in the database, as one
'nft -f' file. It reads the database and the host's interfaces; it changes nothing.

Options:
  --db PATH    the SQLite database file   NFTFARM_DB (default ${DEFAULT_DB})
  -h, --help   this text
`;

class UsageError extends Error {}

interface ParsedArgs {
  listen?: string;
  db?: string;
  dryRun?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  help: boolean;
}

function parseArgs(args: string[], allowed: readonly string[]): ParsedArgs {
  const out: ParsedArgs = { help: false };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    if (flag === '-h' || flag === '--help') {
      out.help = true;
      continue;
    }
    if (!allowed.includes(flag)) throw new UsageError(`unknown option '${arg}'`);
    if (flag === '--dry-run') {
      if (inline !== undefined) throw new UsageError('--dry-run takes no value');
      out.dryRun = true;
      continue;
    }
    const value = inline ?? args[++i];
    if (value === undefined || value === '') throw new UsageError(`${flag} needs a value`);
    if (flag === '--listen') out.listen = value;
    if (flag === '--db') out.db = value;
    if (flag === '--tls-cert') out.tlsCert = value;
    if (flag === '--tls-key') out.tlsKey = value;
  }
  return out;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    process.stdout.write(MAIN_HELP);
    return command === undefined ? 2 : 0;
  }
  if (command === '--version' || command === '-V') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  try {
    if (command === 'serve') {
      const args = parseArgs(rest, ['--listen', '--db', '--dry-run', '--tls-cert', '--tls-key']);
      if (args.help) {
        process.stdout.write(SERVE_HELP);
        return 0;
      }
      const config = loadConfig(args, process.env, process.cwd());
      const { serve } = await import('./server.js');
      return await serve(config);
    }
    if (command === 'rules') {
      const args = parseArgs(rest, ['--db']);
      if (args.help) {
        process.stdout.write(RULES_HELP);
        return 0;
      }
      const config = loadConfig(args, process.env, process.cwd());
      const { printRules } = await import('./rules-command.js');
      return await printRules(config);
    }
    throw new UsageError(`unknown command '${command}'`);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`nftfarm: ${err.message}\nRun 'nftfarm --help' for usage.\n`);
      return 2;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`nftfarm: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`nftfarm: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
