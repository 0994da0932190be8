/**
 * Process entry: argv → config → app. Flags follow pgpool's where they apply:
 *   -f FILE  pgpool.conf          -a FILE  pool_hba.conf     -F FILE  pcp.conf
 *   -k FILE  key file for AES entries in pool_passwd (pgpool's .pgpoolkey)
 *   -n       stay in the foreground (the only mode pgmaitre has; accepted for compatibility)
 *   -d       debug logging         -h       help
 *   -C, -c, --check  test the configuration and exit (check.ts; `pgmaitre check` is the same)
 * Subcommands: `pgmaitre reload|stop -f pgpool.conf` signal the running pgmaitre through its
 * pid_file_name (as `pgpool reload` / `pgpool stop` do); `pgmaitre check -f pgpool.conf` tests
 * the configuration (exit 0 valid, 1 errors, 2 warnings only; --strict makes warnings fatal);
 * `pgmaitre healthcheck -f pgpool.conf` asks the HTTP /health endpoint (container HEALTHCHECK);
 * the pcp_* equivalents (`pgmaitre node-info 1 -h HOST -p 9898 -U USER`, ...) speak PCP
 * (src/pcp/cli.ts). SIGTERM/SIGINT stop gracefully; SIGHUP reloads the configuration.
 */
// First: V8 settings that concern the code of every module loaded after it (util/jit.ts).
import './util/jit';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfig, ConfigError } from './config/load';
import type { App } from './app';
import { logLine } from './log/logger';
import { PCP_COMMANDS, runPcpCommand } from './pcp/cli';
import { checkConfiguration, checkExitCode, checkListeners, formatCheckReport } from './check';
import { httpHealthCheck } from './healthcheck';

/** Parsed command line. */
export interface CliOptions {
  configFile: string;
  hbaFile?: string;
  pcpFile?: string;
  keyFile?: string;
  debug: boolean;
  help: boolean;
  /** -C/-c/--check or the `check` subcommand: test the configuration and exit. */
  check: boolean;
  /** --strict (HAProxy's -dW): warnings make the check fail (exit 1). */
  strict: boolean;
  /** -q: the check prints problems only, nothing when the configuration is valid. */
  quiet: boolean;
}

const USAGE = `pgmaitre - PostgreSQL middleware (pgpool-II compatible configuration)

Usage: pgmaitre [-n] [-f pgpool.conf] [-a pool_hba.conf] [-F pcp.conf] [-k keyfile] [-d]
       pgmaitre check [-f pgpool.conf] [-a ...] [-F ...] [-k ...] [--strict] [-q]
                                                 test the configuration files and exit
                                                 (also: pgmaitre -C -f pgpool.conf, as haproxy -c)
       pgmaitre reload|stop -f pgpool.conf      signal the running pgmaitre (pid_file_name)
       pgmaitre healthcheck [-f pgpool.conf]    exit 0 when GET /health on http_port answers 200
       pgmaitre node-count|node-info|attach-node|detach-node|promote-node|proc-count|proc-info|
                pool-status|health-check-stats|reload|stop [pcp options]   (PCP, like the pcp_* tools)

  -f, --config-file=FILE   pgpool.conf to read (default: ./pgpool.conf)
  -a, --hba-file=FILE      pool_hba.conf (default: next to the config file)
  -F, --pcp-file=FILE      pcp.conf (default: next to the config file)
  -k, --key-file=FILE      key for AES passwords in pool_passwd (default: ~/.pgpoolkey)
  -n, --no-daemon          run in the foreground (always the case)
  -d, --debug              debug logging
  -C, -c, --check          test the configuration and exit: every error and warning as
                           FILE:LINE: key: why; exit 0 valid, 1 errors, 2 warnings only
      --strict, -dW        with --check: warnings are fatal too (exit 1)
  -q, --quiet              with --check: print nothing when the configuration is valid
  -h, --help               this help
`;

/** Parses pgpool-style flags (short with separate or attached values, and --long=value). */
export function parseArgs(argv: readonly string[]): CliOptions {
  const o: CliOptions = { configFile: 'pgpool.conf', debug: false, help: false, check: false, strict: false, quiet: false };
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
    } else if (arg === '-C' || arg === '-c' || arg === '--check') {
      // pgpool's -C/-c clear its query cache, which pgmaitre does not have; HAProxy's -c is this.
      o.check = true;
    } else if (arg === '--strict' || arg === '-dW') {
      o.strict = true;
    } else if (arg === '-q' || arg === '--quiet') {
      o.quiet = true;
    } else {
      throw new Error(`unknown option "${arg}"`);
    }
  }
  return o;
}

/** Loads the config and starts pgmaitre; used by the CLI, the demo and tests. */
export async function runMain(argv: readonly string[], onStopped?: () => void): Promise<App> {
  const opts = parseArgs(argv);
  const overrides = { hbaFile: opts.hbaFile, pcpFile: opts.pcpFile, keyFile: opts.keyFile };
  const loaded = loadConfig(opts.configFile, overrides);
  if (opts.debug) {
    (loaded as { config: unknown }).config = { ...loaded.config, log_min_messages: 'debug1' };
  }
  // Loaded here, not at the top: `check`, `healthcheck`, `reload|stop` and the pcp commands never
  // start a server and should not pay ~0.6 s of CPU to load one.
  const { startInstance } = await import('./workers/entry');
  const { startApp } = await import('./app');
  // worker_processes > 1: a supervisor and its workers (src/workers/); else this process alone.
  const app = await startInstance(loaded, { argv, overrides, ...(onStopped ? { onStopped } : {}) })
    ?? await startApp(loaded, { overrides, ...(onStopped ? { onStopped } : {}) });
  writePidFile(app);
  return app;
}

/** Writes pid_file_name when its directory exists (pgpool does the same); removed at exit. */
function writePidFile(app: App): void {
  const file = app.ctx.config.pid_file_name;
  if (file === '' || !fs.existsSync(path.dirname(file))) return;
  try {
    fs.writeFileSync(file, `${process.pid}\n`);
    process.once('exit', () => {
      try {
        if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.unlinkSync(file);
      } catch {
        // already gone
      }
    });
  } catch (e) {
    app.ctx.log.warn({ event: 'pid_file' }, `cannot write pid file ${file}: ${(e as Error).message}`);
  }
}

/** `pgmaitre reload|stop -f pgpool.conf`: signals the pgmaitre whose pid is in pid_file_name. */
function signalRunning(cmd: 'reload' | 'stop', argv: readonly string[]): number {
  const opts = parseArgs(argv.filter((a) => a !== '-m' && !['smart', 'fast', 'immediate'].includes(a)));
  const { config } = loadConfig(opts.configFile, {});
  const file = config.pid_file_name;
  let pid: number;
  try {
    pid = Number(fs.readFileSync(file, 'utf8').trim());
  } catch {
    process.stderr.write(`pgmaitre ${cmd}: cannot read pid file ${file}: is pgmaitre running?\n`);
    return 1;
  }
  try {
    process.kill(pid, cmd === 'reload' ? 'SIGHUP' : 'SIGTERM');
  } catch (e) {
    process.stderr.write(`pgmaitre ${cmd}: cannot signal pid ${pid}: ${(e as Error).message}\n`);
    return 1;
  }
  process.stdout.write(`pgmaitre ${cmd}: signal sent to pid ${pid}\n`);
  return 0;
}

/** `pgmaitre check` / `pgmaitre -C`: prints the report, returns the exit status. */
export async function runCheck(opts: CliOptions, out: (text: string) => void = (t) => process.stdout.write(t)): Promise<number> {
  let report = checkConfiguration(opts.configFile, { hbaFile: opts.hbaFile, pcpFile: opts.pcpFile, keyFile: opts.keyFile });
  if (report.errors.length === 0) {
    // Ports and sockets already taken (pgpool-II on the same host): a start would fail there.
    const { config } = loadConfig(opts.configFile, { hbaFile: opts.hbaFile, pcpFile: opts.pcpFile, keyFile: opts.keyFile });
    report = { ...report, notices: await checkListeners(config) };
  }
  const code = checkExitCode(report, opts.strict);
  if (!(opts.quiet && code === 0)) out(formatCheckReport(opts.configFile, report, opts.strict));
  return code;
}

/** A worker of a multi-process instance (src/workers/worker.ts): the supervisor drives it. */
function runWorkerProcess(opts: CliOptions): void {
  const { runWorker } = require('./workers/entry') as typeof import('./workers/entry');
  runWorker(opts.configFile, { hbaFile: opts.hbaFile, pcpFile: opts.pcpFile, keyFile: opts.keyFile }, opts.debug).catch((e: unknown) => {
    process.stderr.write(`pgmaitre worker: could not start: ${(e as Error)?.message ?? String(e)}\n`);
    process.exit(1);
  });
}

/** The `pgmaitre` command: start, and stop on SIGTERM/SIGINT. */
export function cli(argv: readonly string[]): void {
  let sub = argv[0];
  if (sub === 'check') {
    argv = ['--check', ...argv.slice(1)];
    sub = argv[0];
  }
  if (sub === 'healthcheck') {
    let opts: CliOptions;
    try {
      opts = parseArgs(argv.slice(1));
    } catch (e) {
      process.stderr.write(`pgmaitre healthcheck: ${(e as Error).message}\n`);
      process.exitCode = 2;
      return;
    }
    httpHealthCheck(opts.configFile).then((r) => {
      (r.ok ? process.stdout : process.stderr).write(`${r.message}\n`);
      process.exitCode = r.ok ? 0 : 1;
    }, (e: unknown) => {
      process.stderr.write(`pgmaitre healthcheck: ${(e as Error)?.message ?? e}\n`);
      process.exitCode = 1;
    });
    return;
  }
  if ((sub === 'reload' || sub === 'stop') && argv.some((a) => a === '-f' || a.startsWith('--config-file'))) {
    process.exitCode = signalRunning(sub, argv.slice(1));
    return;
  }
  if (sub !== undefined && !sub.startsWith('-') && PCP_COMMANDS[sub] !== undefined) {
    runPcpCommand(argv).then((code) => { process.exitCode = code; }, (e: unknown) => {
      process.stderr.write(`pgmaitre ${sub}: ${(e as Error)?.message ?? e}\n`);
      process.exitCode = 1;
    });
    return;
  }
  let opts: CliOptions;
  try {
    opts = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`pgmaitre: ${(e as Error).message}\n${USAGE}`);
    // 2 means "warnings only" to a configuration check: a mistyped check fails with 1.
    process.exit(argv.some((a) => a === '--check' || a === '-C' || a === '-c') ? 1 : 2);
  }
  if (opts.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (opts.check) {
    runCheck(opts).then((code) => { process.exitCode = code; }, (e: unknown) => {
      process.stderr.write(`pgmaitre check: ${(e as Error)?.message ?? String(e)}\n`);
      process.exitCode = 1;
    });
    return;
  }
  if ((require('./workers/entry') as typeof import('./workers/entry')).isWorkerProcess()) {
    runWorkerProcess(opts);
    return;
  }
  runMain(argv, () => process.exit(0)).then(
    (app) => {
      let stopping = false;
      const stop = (sig: string): void => {
        if (stopping) return;
        stopping = true;
        logLine(app.ctx.log, { event: 'signal', signal: sig }, `received ${sig}, shutting down`);
        const force = setTimeout(() => process.exit(0), 10_000);
        force.unref();
        app.stop().then(() => process.exit(0), () => process.exit(1));
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGHUP', () => {
        app.reload().catch((e: unknown) => app.ctx.log.error({ event: 'reload_failed' }, `configuration reload failed, keeping the running configuration: ${(e as Error)?.message ?? e}`));
      });
    },
    (e: unknown) => {
      const code = (e as NodeJS.ErrnoException)?.code;
      if (e instanceof ConfigError) {
        process.stderr.write(`${e.message}\n`);
      } else if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) {
        // A system error (EADDRINUSE, EACCES, EADDRNOTAVAIL...) says all in its message; no stack.
        process.stderr.write(`pgmaitre: could not start: ${(e as Error).message}\n`);
      } else {
        process.stderr.write(`pgmaitre: could not start: ${(e as Error)?.stack ?? String(e)}\n`);
      }
      process.exit(1);
    },
  );
}
