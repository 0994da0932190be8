/**
 * Process entry: argv → config → app. Flags follow pgpool's where they apply:
 *   -f FILE  pgpool.conf          -a FILE  pool_hba.conf     -F FILE  pcp.conf
 *   -k FILE  key file for AES entries in pool_passwd (pgpool's .pgpoolkey)
 *   -n       stay in the foreground (the only mode pgmaitre has; accepted for compatibility)
 *   -d       debug logging         -h       help
 * SIGTERM/SIGINT stop gracefully; SIGHUP is reserved for config reload.
 */
import { loadConfig, ConfigError } from './config/load';
import { startApp, type App } from './app';

/** Parsed command line. */
export interface CliOptions {
  configFile: string;
  hbaFile?: string;
  pcpFile?: string;
  keyFile?: string;
  debug: boolean;
  help: boolean;
}

const USAGE = `pgmaitre - PostgreSQL middleware (pgpool-II compatible configuration)

Usage: pgmaitre [-n] [-f pgpool.conf] [-a pool_hba.conf] [-F pcp.conf] [-k keyfile] [-d]

  -f, --config-file=FILE   pgpool.conf to read (default: ./pgpool.conf)
  -a, --hba-file=FILE      pool_hba.conf (default: next to the config file)
  -F, --pcp-file=FILE      pcp.conf (default: next to the config file)
  -k, --key-file=FILE      key for AES passwords in pool_passwd (default: ~/.pgpoolkey)
  -n, --no-daemon          run in the foreground (always the case)
  -d, --debug              debug logging
  -h, --help               this help
`;

/** Parses pgpool-style flags (short with separate or attached values, and --long=value). */
export function parseArgs(argv: readonly string[]): CliOptions {
  const o: CliOptions = { configFile: 'pgpool.conf', debug: false, help: false };
  const withValue: Record<string, keyof CliOptions> = {
    '-f': 'configFile', '--config-file': 'configFile', '-a': 'hbaFile', '--hba-file': 'hbaFile',
    '-F': 'pcpFile', '--pcp-file': 'pcpFile', '-k': 'keyFile', '--key-file': 'keyFile',
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg.length > 2 && !arg.startsWith('--') && withValue[arg.slice(0, 2)] ? arg.slice(0, 2) : arg;
    const field = withValue[name];
    if (field !== undefined) {
      const value = eq > 0 ? arg.slice(eq + 1) : name !== arg ? arg.slice(2) : argv[++i];
      if (value === undefined) throw new Error(`option ${name} needs a value`);
      (o as unknown as Record<string, string>)[field] = value;
    } else if (arg === '-n' || arg === '--no-daemon') {
      // foreground is the only mode
    } else if (arg === '-d' || arg === '--debug') {
      o.debug = true;
    } else if (arg === '-h' || arg === '--help') {
      o.help = true;
    } else {
      throw new Error(`unknown option "${arg}"`);
    }
  }
  return o;
}

/** Loads the config and starts pgmaitre; used by the CLI, the demo and tests. */
export async function runMain(argv: readonly string[]): Promise<App> {
  const opts = parseArgs(argv);
  const loaded = loadConfig(opts.configFile, { hbaFile: opts.hbaFile, pcpFile: opts.pcpFile, keyFile: opts.keyFile });
  if (opts.debug) {
    (loaded as { config: unknown }).config = { ...loaded.config, log_min_messages: 'debug1' };
  }
  return startApp(loaded);
}

/** The `pgmaitre` command: start, and stop on SIGTERM/SIGINT. */
export function cli(argv: readonly string[]): void {
  let opts: CliOptions;
  try {
    opts = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`pgmaitre: ${(e as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  if (opts.help) {
    process.stdout.write(USAGE);
    return;
  }
  runMain(argv).then(
    (app) => {
      let stopping = false;
      const stop = (sig: string): void => {
        if (stopping) return;
        stopping = true;
        app.ctx.log.info({ event: 'signal', signal: sig }, `received ${sig}, shutting down`);
        const force = setTimeout(() => process.exit(0), 10_000);
        force.unref();
        app.stop().then(() => process.exit(0), () => process.exit(1));
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGHUP', () => app.ctx.log.warn({ event: 'signal', signal: 'SIGHUP' }, 'configuration reload is not implemented yet; ignoring SIGHUP'));
    },
    (e: unknown) => {
      if (e instanceof ConfigError) {
        process.stderr.write(`${e.message}\n`);
      } else {
        process.stderr.write(`pgmaitre: could not start: ${(e as Error)?.stack ?? String(e)}\n`);
      }
      process.exit(1);
    },
  );
}
