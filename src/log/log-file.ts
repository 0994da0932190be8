/**
 * pgpool's logging collector (logging_collector = on): log lines go to a file in log_directory
 * named by log_filename (strftime escapes), created with log_file_mode, and a new file is begun
 * every log_rotation_age minutes, when the file reaches log_rotation_size kB, and on request
 * (pcp_log_rotate, or a reload that changes the file settings). A time-based rotation onto a
 * file name that already exists truncates it when log_truncate_on_rotation is on (PostgreSQL's
 * and pgpool's rule); otherwise lines are appended. Reopening by name is also what an external
 * logrotate needs after it moved the file away.
 *
 * Writes are synchronous (fs.writeSync), as the stderr destination is: nothing is lost on exit.
 * If the file cannot be opened or written, lines go to stderr with one warning there.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The settings the collector reads (pgpool's names). */
export interface LogFileOptions {
  readonly log_directory: string;
  readonly log_filename: string;
  readonly log_file_mode: number;
  readonly log_truncate_on_rotation: boolean;
  /** Minutes; 0 = no time-based rotation. */
  readonly log_rotation_age: number;
  /** Kilobytes; 0 = no size-based rotation. */
  readonly log_rotation_size: number;
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** strftime for the escapes log_filename uses (local time, as pgpool's). */
export function strftime(pattern: string, d: Date): string {
  return pattern.replace(/%([a-zA-Z%])/g, (all, c: string) => {
    switch (c) {
      case 'Y': return String(d.getFullYear());
      case 'y': return pad(d.getFullYear() % 100);
      case 'm': return pad(d.getMonth() + 1);
      case 'd': return pad(d.getDate());
      case 'H': return pad(d.getHours());
      case 'M': return pad(d.getMinutes());
      case 'S': return pad(d.getSeconds());
      case 'a': return DAYS[d.getDay()]!;
      case 'b': return MONTHS[d.getMonth()]!;
      case 'j': return pad(Math.floor((d.getTime() - new Date(d.getFullYear(), 0, 1).getTime()) / 86_400_000) + 1, 3);
      case '%': return '%';
      default: return all;
    }
  });
}

/** A pino destination writing to the collector's current file. */
export class LogFile {
  private fd: number | null = null;
  private written = 0;
  private timer: NodeJS.Timeout | null = null;
  private failed = false;
  /** The file lines currently go to ('' while on stderr). */
  current = '';

  constructor(private opts: LogFileOptions, private readonly now: () => Date = () => new Date()) {
    this.open(false);
    this.arm();
  }

  /** pino's destination interface. */
  write(line: string): void {
    if (this.fd === null) {
      fs.writeSync(2, line);
      return;
    }
    try {
      this.written += fs.writeSync(this.fd, line);
    } catch (e) {
      this.fallBack(e);
      fs.writeSync(2, line);
      return;
    }
    if (this.opts.log_rotation_size > 0 && this.written >= this.opts.log_rotation_size * 1024) this.rotate();
  }

  /** Begins a new file now (pcp_log_rotate): the name log_filename gives for this moment, appended to. */
  rotate(): string {
    this.open(false);
    return this.current;
  }

  /** New settings (a reload): reopen when the file settings changed. */
  reconfigure(opts: LogFileOptions): void {
    const changed = JSON.stringify(opts) !== JSON.stringify(this.opts);
    this.opts = opts;
    if (!changed) return;
    this.open(false);
    this.arm();
  }

  close(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  private open(byTime: boolean): void {
    const file = path.resolve(this.opts.log_directory, strftime(this.opts.log_filename, this.now()));
    let fd: number;
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      const truncate = byTime && this.opts.log_truncate_on_rotation && file !== this.current;
      fd = fs.openSync(file, truncate ? 'w' : 'a', this.opts.log_file_mode);
    } catch (e) {
      this.fallBack(e);
      return;
    }
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = fd;
    this.current = file;
    this.failed = false;
    try {
      this.written = fs.fstatSync(fd).size;
    } catch {
      this.written = 0;
    }
  }

  private fallBack(e: unknown): void {
    if (this.fd !== null) {
      try { fs.closeSync(this.fd); } catch { /* already unusable */ }
    }
    this.fd = null;
    this.current = '';
    if (!this.failed) fs.writeSync(2, `pgmaitre: cannot write the log file in ${this.opts.log_directory}: ${(e as Error).message}; logging to stderr\n`);
    this.failed = true;
  }

  /** Time-based rotation at the next multiple of log_rotation_age minutes (local time, as pgpool). */
  private arm(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const ageMs = this.opts.log_rotation_age * 60_000;
    if (ageMs <= 0) return;
    const now = this.now();
    const local = now.getTime() - now.getTimezoneOffset() * 60_000;
    const wait = ageMs - (local % ageMs);
    this.timer = setTimeout(() => {
      this.open(true);
      this.arm();
    }, Math.min(wait, 2 ** 31 - 1));
    this.timer.unref();
  }
}
