/** The `nftfarm` command line: parse arguments, then serve or print the ruleset. */
import { ConfigError, DEFAULT_DB, DEFAULT_LISTEN, loadConfig } from './config.js';
import { VERSION } from './version.js';

const MAIN_HELP = `nftfarm ${VERSION}: an L4 load balancer (ZEVENET ZAPI v4.0 L4xNAT API, nftables data plane)

Usage:
  nftfarm serve [--listen HOST:PORT] [--db PATH] [--dry-run] [--tls-cert FILE --tls-key FILE]
                                                               run the appliance
  nftfarm rules [--db PATH]                                    print the ruleset nftfarm would apply now
  nftfarm config export [--db PATH]                            print the whole configuration as one JSON document
  nftfarm config apply FILE [--db PATH] [--dry-run]            make the configuration equal a document
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
  NFTFARM_BIRD       the BIRD 2 binary run when BGP is enabled (default 'bird' from PATH)
`;

const CONFIG_HELP = `Usage: nftfarm config export [--db PATH]
       nftfarm config apply FILE [--db PATH] [--dry-run]

The declarative configuration: every farm, backend, health check and link, and the BGP
settings apart from this node's router id, as one JSON document without local ids, in a
stable order (the same configuration gives the same bytes; GET /system/status shows its
SHA-256 as config_digest). Keep several nodes identical by exporting from one and applying
to the others (examples/sync-nodes.sh).

  export        prints the document on stdout.
  apply FILE    validates the whole document (FILE, or - for stdin) and, when all of it is
                valid, changes the configuration in one transaction so that it equals the
                document: farms, checks and backends (matched by address and port) are
                created, changed or deleted; unchanged backends keep their flows. Applying the
                same document again changes nothing. Prints the plan it carried out.
  --dry-run     apply: print the plan (create, change, delete) and change nothing.

Where it works: when an nftfarm daemon serves the database (its file nftfarm.serve.json
beside the database names a live process), through that daemon's API (GET and PUT
/system/config, with NFTFARM_API_KEY or the key file beside the database), so the change is
applied to the kernel at once. When no daemon runs, on the database directly (the next
'nftfarm serve' applies it); apply then still checks the VIPs and backends against this
host's networks.

Options:
  --db PATH    the SQLite database file   NFTFARM_DB (default ${DEFAULT_DB})
  -h, --help   this text
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
With BGP enabled (PUT /system/bgp), it first withdraws its VIPs, keeps running for the
drain_time of the BGP settings (default 5 s), then stops; its BIRD exits with it.
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
    if (command === 'config') {
      const [sub, ...more] = rest;
      if (sub === undefined || sub === '-h' || sub === '--help') {
        process.stdout.write(CONFIG_HELP);
        return sub === undefined ? 2 : 0;
      }
      const file = sub === 'apply' && more[0] !== undefined && !more[0].startsWith('--') ? more.shift() : undefined;
      const args = parseArgs(more, sub === 'apply' ? ['--db', '--dry-run'] : ['--db']);
      if (args.help) {
        process.stdout.write(CONFIG_HELP);
        return 0;
      }
      const config = loadConfig({ db: args.db }, process.env, process.cwd());
      const cli = await import('./config-doc/cli.js');
      if (sub === 'export') return await cli.exportCommand(config);
      if (sub === 'apply') {
        if (file === undefined) throw new UsageError('config apply needs a FILE (or - for stdin)');
        return await cli.applyCommand(config, file, args.dryRun === true);
      }
      throw new UsageError(`unknown config command '${sub}' (export or apply)`);
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
