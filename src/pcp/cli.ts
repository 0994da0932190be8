/**
 * `pgmaitre <command>`: the pcp_* tools for users without pgpool2 installed, speaking PCP to a
 * running pgmaitre (or pgpool). Options as the pcp tools: -h host, -p port (9898), -U user,
 * -w/-W (no prompt here: the password comes from $PCPPASSFILE or ~/.pcppass), -v verbose,
 * -n node id, -a all, -g gracefully, -s switchover, -m mode (stop), -P pid (proc-info).
 * Output matches the corresponding pcp_* tool.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cstr } from './codec';
import { PcpClient, PcpServerError } from './client';

/** Where output goes (tests pass buffers). */
export interface CliIo {
  readonly stdout: { write(s: string): unknown };
  readonly stderr: { write(s: string): unknown };
  readonly env: NodeJS.ProcessEnv;
}

interface Args {
  command: string;
  host: string | undefined;
  port: number;
  user: string;
  verbose: boolean;
  all: boolean;
  gracefully: boolean;
  switchover: boolean;
  mode: string;
  id: number | undefined;
}

/** Subcommand → the pcp tool it stands for. */
export const PCP_COMMANDS: Readonly<Record<string, string>> = {
  'node-count': 'pcp_node_count', 'node-info': 'pcp_node_info', 'attach-node': 'pcp_attach_node',
  'detach-node': 'pcp_detach_node', 'promote-node': 'pcp_promote_node', 'proc-count': 'pcp_proc_count',
  'proc-info': 'pcp_proc_info', 'pool-status': 'pcp_pool_status', 'health-check-stats': 'pcp_health_check_stats',
  reload: 'pcp_reload_config', stop: 'pcp_stop_pgpool', 'recovery-node': 'pcp_recovery_node', 'log-rotate': 'pcp_log_rotate',
  'invalidate-query-cache': 'pcp_invalidate_query_cache',
};

function parseArgs(argv: readonly string[], env: NodeJS.ProcessEnv): Args {
  const a: Args = {
    command: argv[0] ?? '', host: undefined, port: 9898, user: env['USER'] ?? os.userInfo().username,
    verbose: false, all: false, gracefully: false, switchover: false, mode: 's', id: undefined,
  };
  const valueOf = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`option ${flag} needs a value`);
    return v;
  };
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const long = /^--([a-z-]+)=(.*)$/.exec(arg);
    const flag = long !== null ? long[1] : arg;
    const take = (): string => (long !== null ? long[2] ?? '' : valueOf(i++, arg));
    switch (flag) {
      case '-h': case 'host': a.host = take(); break;
      case '-p': case 'port': a.port = Number(take()); break;
      case '-U': case 'username': a.user = take(); break;
      case '-n': case 'node-id': case '-P': case 'process-id': a.id = Number(take()); break;
      case '-m': case 'mode': a.mode = take(); break;
      case '-w': case '--no-password': case '-W': case '--password': case '-d': case '--debug': break;
      case '-v': case '--verbose': a.verbose = true; break;
      case '-a': case '--all': a.all = true; break;
      case '-g': case '--gracefully': a.gracefully = true; break;
      case '-s': case '--switchover': a.switchover = true; break;
      default:
        if (/^-?\d+$/.test(arg)) a.id = Number(arg);
        else throw new Error(`unknown option "${arg}"`);
    }
  }
  return a;
}

/** Password from $PCPPASSFILE or ~/.pcppass (host:port:user:password, '*' matches anything). */
export function passwordFromFile(env: NodeJS.ProcessEnv, host: string, port: number, user: string): string {
  const file = env['PCPPASSFILE'] ?? path.join(env['HOME'] ?? os.homedir(), '.pcppass');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const parts = line.split(/(?<!\\):/).map((p) => p.replace(/\\:/g, ':').replace(/\\\\/g, '\\'));
    if (parts.length < 4) continue;
    const [h, p, u, ...pw] = parts;
    const ok = (pat: string | undefined, v: string): boolean => pat === '*' || pat === v;
    if (ok(h, host) && ok(p, String(port)) && ok(u, user)) return pw.join(':');
  }
  return '';
}

const ROLE_NAMES = ['main', 'replica', 'primary', 'standby'];
const STATUS_NAMES = ['unused', 'waiting', 'up', 'down'];
const RAND_MAX = 2147483647;

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}
function localTime(epoch: string): string {
  const d = new Date(Number(epoch) * 1000);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

function labelled(labels: readonly string[], values: readonly string[]): string {
  const w = Math.max(...labels.map((l) => l.length));
  return `${labels.map((l, i) => `${l.padEnd(w)} : ${values[i] ?? ''}`).join('\n')}\n\n`;
}

function nodeInfoLine(f: readonly string[], verbose: boolean): string {
  // f: NodeInfo, host, port, status, quarantine, pg_status, weight, role, pg_role, [by_time], delay, state, sync, time
  const rest = f.length >= 14 ? [...f.slice(0, 9), ...f.slice(10)] : [...f];
  const [, host = '', port = '', status = '0', quarantine = '0', pgStatus = '', weight = '0', role = '0', pgRole = '', delay = '', state = '', sync = '', time = '0'] = rest;
  const statusName = quarantine === '1' ? 'quarantine' : STATUS_NAMES[Number(status)] ?? 'unknown';
  const values = [host, port, status, (Number(weight) / RAND_MAX).toFixed(6), statusName, pgStatus, ROLE_NAMES[Number(role)] ?? 'unknown', pgRole, delay, state === '' ? 'none' : state, sync === '' ? 'none' : sync, localTime(time)];
  if (!verbose) return `${values.join(' ')}\n`;
  return labelled(['Hostname', 'Port', 'Status', 'Weight', 'Status Name', 'Backend Status Name', 'Role', 'Backend Role',
    'Replication Delay', 'Replication State', 'Replication Sync State', 'Last Status Change'], values);
}

const HEALTH_LABELS = ['Node Id', 'Host Name', 'Port', 'Status', 'Role', 'Last Status Change', 'Total Count', 'Success Count',
  'Fail Count', 'Skip Count', 'Retry Count', 'Average Retry Count', 'Max Retry Count', 'Max Health Check Duration',
  'Minimum Health Check Duration', 'Average Health Check Duration', 'Last Health Check', 'Last Successful Health Check',
  'Last Skip Health Check', 'Last Failed Health Check'];

const PROC_LABELS = ['Database', 'Username', 'Start time', 'Client connection count', 'Major', 'Minor', 'Backend connection time',
  'Client connection time', 'Client idle duration', 'Client disconnection time', 'Pool Counter', 'Backend PID', 'Connected',
  'PID', 'Backend ID', 'Status'];

function procValues(f: readonly string[]): string[] {
  // f: ProcessInfo, pool_pid, start, count, pool_id, backend_id, db, user, bconn, cconn, cdisc, idle, major, minor, counter, bpid, connected, status, ...
  const g = (i: number): string => f[i] ?? '';
  return [g(6), g(7), g(2), g(3), g(12), g(13), g(8), g(9), g(11), g(10), g(14), g(15), g(16), g(1), g(5), g(17)];
}

async function run(a: Args, io: CliIo): Promise<number> {
  const tool = PCP_COMMANDS[a.command];
  if (tool === undefined) throw new Error(`unknown command "${a.command}" (one of: ${Object.keys(PCP_COMMANDS).join(', ')})`);
  const host = a.host;
  const password = passwordFromFile(io.env, host === undefined || host.startsWith('/') ? 'localhost' : host, a.port, a.user);
  // A recovery answers when it is over, however long that takes (pcp_recovery_node waits as long).
  const c = await PcpClient.connect({ ...(host !== undefined ? { host } : {}), port: a.port, user: a.user, password, ...(a.command === 'recovery-node' ? { timeoutMs: 0 } : {}) });
  const needId = (): number => {
    if (a.id === undefined) throw new Error(`${tool}: missing node-id`);
    return a.id;
  };
  const ok = (): void => { io.stdout.write(`${tool} -- Command Successful\n`); };
  try {
    switch (a.command) {
      case 'node-count': {
        const [r] = await c.request('L', Buffer.alloc(0), 'l');
        io.stdout.write(`${r?.[1] ?? ''}\n`);
        break;
      }
      case 'node-info': {
        const id = a.all ? -1 : needId();
        const rows = await c.request('I', cstr(String(id)), 'i');
        for (const f of rows.filter((x) => x[0] === 'NodeInfo')) io.stdout.write(nodeInfoLine(f, a.verbose));
        break;
      }
      case 'health-check-stats': {
        const [r = []] = await c.request('H', cstr(String(needId())), 'h');
        const values = r.slice(1);
        io.stdout.write(a.verbose ? labelled(HEALTH_LABELS, values) : `${values.join(' ')}\n`);
        break;
      }
      case 'proc-count': {
        const [r = []] = await c.request('N', Buffer.alloc(0), 'n');
        io.stdout.write(a.verbose ? `No \t | \t PID\n${r.slice(2).map((p, i) => `${i} \t | \t ${p}`).join('\n')}\n\nTotal Processes:${r[1] ?? 0}\n` : `${r.slice(2).map((p) => `${p} `).join('')}\n`);
        break;
      }
      case 'proc-info': {
        const rows = (await c.request('P', cstr(String(a.id ?? 0)), 'p')).filter((x) => x[0] === 'ProcessInfo');
        const shown = a.all || a.id !== undefined ? rows : rows.filter((f) => (f[6] ?? '') !== '');
        if (shown.length === 0) io.stdout.write('No process information available\n\n');
        for (const f of shown) io.stdout.write(a.verbose ? labelled(PROC_LABELS, procValues(f)) : `${procValues(f).join(' ')}\n`);
        break;
      }
      case 'pool-status': {
        const rows = (await c.request('B', Buffer.alloc(0), 'b')).filter((x) => x[0] === 'ProcessConfig');
        for (const f of rows) io.stdout.write(`name : ${f[1] ?? ''}\nvalue: ${f[2] ?? ''}\ndesc : ${f[3] ?? ''}\n\n`);
        break;
      }
      case 'attach-node': await c.request('C', cstr(String(needId())), 'c'); ok(); break;
      case 'detach-node': await c.request(a.gracefully ? 'd' : 'D', cstr(String(needId())), 'd'); ok(); break;
      case 'promote-node':
        await c.request(a.gracefully ? 'j' : 'J', Buffer.concat([cstr(`${needId()} `), Buffer.from(a.switchover ? 's' : 'n')]), 'd');
        ok();
        break;
      case 'reload': await c.request('Z', Buffer.from('l'), 'z'); ok(); break;
      case 'log-rotate': await c.request('V', Buffer.from('l'), 'v'); ok(); break;
      case 'invalidate-query-cache': await c.request('G', Buffer.alloc(0), 'g'); ok(); break;
      // Answered once the node is rebuilt, started and attached (minutes for a large database).
      case 'recovery-node': await c.request('O', cstr(String(needId())), 'c'); ok(); break;
      case 'stop': {
        const mode = a.mode.startsWith('f') ? 'f' : a.mode.startsWith('i') ? 'i' : 's';
        await c.request('T', Buffer.from(mode), 't');
        ok();
        break;
      }
      default: break;
    }
  } finally {
    c.close();
  }
  return 0;
}

/** Runs `pgmaitre <command> [options]`; resolves with the exit code. */
export async function runPcpCommand(argv: readonly string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env }): Promise<number> {
  try {
    return await run(parseArgs(argv, io.env), io);
  } catch (err) {
    if (err instanceof PcpServerError) {
      io.stderr.write(`${err.severity}:  ${err.message}\n${err.detail !== undefined ? `DETAIL:  ${err.detail}\n` : ''}\n`);
    } else {
      io.stderr.write(`ERROR: ${err instanceof Error ? err.message : String(err)}\n`);
    }
    return 1;
  }
}
