// The commands of the CLI as data: one table per command (synopsis, options with their values, exit
// codes), from which the parser parses, `--help` is written, the usage line of an error is taken and
// the shell completion scripts are made. Help and parsing cannot drift apart: there is one list.

import { DURATION_FORMS, parseDuration } from './cli-duration.js';
import { defaultDir } from './target.js';

/** An argument error: exit 2, the one-line reason, then the command's synopsis. */
export class UsageError extends Error {}

export interface OptionSpec {
  /** The canonical name first (the key under which the parser files it), then its aliases. */
  names: readonly [string, ...string[]];
  /** The value's placeholder, for an option that takes one (`--mode <octal>` or `--mode=0620`). */
  value?: string;
  /** The value may be left out; it is then given only as `--name=value` (`--name` alone is a flag). */
  optionalValue?: true;
  /** The value is a duration: the parser turns it into milliseconds (cli-duration.ts). */
  duration?: true;
  /** Options of one group exclude each other: shown as `[--up | --down]`, refused together. */
  group?: string;
  /** For a command with several forms: the only form (index into `forms`) this option belongs to. */
  form?: number;
  help: string;
}

/** What the operands are, for completion. */
export type OperandKind = 'targets' | 'targets-or-directories' | 'shells' | 'commands' | 'none';

export interface CommandSpec {
  name: string;
  aliases: readonly string[];
  /** The operands of each form of the command, as the synopsis shows them. */
  forms: readonly string[];
  /** One line for the overview. */
  summary: string;
  /** What it does, for its --help (paragraphs separated by blank lines; wrapped when printed). */
  about: string;
  options: readonly OptionSpec[];
  /** Exit code (or `N`) and what it means; complete: a code not listed is never returned. */
  exits: ReadonlyArray<readonly [string, string]>;
  /** After the exit codes: how several targets combine, and the like. */
  exitNotes?: string;
  operands: OperandKind;
  /**
   * The exit code of a failure none of the codes above name (a bug, a resource the system refused):
   * for commands whose code is a state, "cannot tell" (4), never "dead"; for the others, "cannot" (125).
   */
  failure: number;
}

const HELP_OPTION: OptionSpec = { names: ['--help', '-h'], help: 'print this help and exit 0' };

/** The exit codes of a check of a state (LSB init-script `status` codes), shared by check and status. */
const STATE_EXITS: ReadonlyArray<readonly [string, string]> = [
  ['0', 'alive: a process holds the FIFO (with several targets: all of them)'],
  ['1', 'dead: a FIFO with no reader; its holder crashed or was killed'],
  ['3', 'absent: no FIFO; stopped cleanly, or never started'],
  ['4', 'unknown: cannot tell (not a FIFO, permission denied, unsafe default directory, ...); stderr says why'],
  ['2', 'usage error'],
];
const STATE_NOTES = 'With several targets: 4 if any cannot be told, else 1 if any is dead, else 3 if any is absent, else 0.';

export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'run',
    aliases: ['runner'],
    forms: ['<target> [duration]', '<target> -- <command> [args...]'],
    summary: 'hold <target> for <duration>, or while <command> runs',
    about: `Without a command: hold <target> until <duration> passes (default: forever) or SIGTERM/SIGINT; then remove the FIFO and exit 0.

With a command: start <command> holding <target>: alive while it runs, dead the instant it ends. A command that exits 0, or that a forwarded signal ended, leaves the target absent; any other end leaves it dead (crashed), with how it ended in its record (see status). Signals TERM INT HUP QUIT USR1 USR2 are passed on. The command inherits the reader as fd 3 ($PROC_ALIVE_FD) and the lock as fd 4 ($PROC_ALIVE_LOCK_FD): exec the daemon in shell scripts, and close 3 and 4 in helpers that must not keep it alive.`,
    options: [
      { names: ['--mode'], value: '<octal>', help: 'mode of a FIFO it creates (default 0600; 0620 lets the group check; read for others is refused)' },
      { names: ['--shared'], help: 'hold along with other --shared holders (alive while any lives); default: exclusive, a second run on a held target exits 75' },
      {
        names: ['--ready'],
        form: 1,
        value: 'fd:N|notify',
        optionalValue: true,
        help: 'alive only once the command says it is ready. --ready: it writes a line to fd 5 ($PROC_ALIVE_READY_FD), e.g. echo >&5; --ready=fd:N: the same with fd N (5 to 255; $READY_FD), as s6\'s notification-fd; --ready=notify: it sends READY=1 to $NOTIFY_SOCKET (sd_notify(3), systemd-notify --ready), a socket made for it where only the command and its descendants are heard; STATUS= goes into the record',
      },
      {
        names: ['--notify-fd'],
        value: '<N>',
        help: 'once the target is alive, write a newline to fd N and close it (s6 notification-fd, dinit pipefd, OpenRC ready=fd). Under systemd (Type=notify, $NOTIFY_SOCKET set), run also sends READY=1 once alive and STOPPING=1 on a clean stop',
      },
    ],
    exits: [
      ['0', 'without a command: held, then released after <duration> or on SIGTERM/SIGINT (the FIFO is removed)'],
      ['N', "with a command: the command's exit code, or 128+N if signal N ended it (SIGKILL: 137)"],
      ['2', "usage error (also: a --mode that lets others read, a forgotten '--' before the command)"],
      ['75', 'another process holds the target (EX_TEMPFAIL: try later); stderr names its pid when known'],
      ['125', 'could not hold the target: not a FIFO, permission denied, unsafe default directory, ...; stderr says why'],
      ['126', 'the command cannot be run (not executable)'],
      ['127', 'the command was not found'],
    ],
    operands: 'targets',
    failure: 125,
  },
  {
    name: 'check',
    aliases: ['checker'],
    forms: ['<target>...'],
    summary: 'say whether each target is alive, dead or absent',
    about: 'Say whether each target is alive: one line per target on stdout ("web: alive"); a target whose state cannot be told gets one line on stderr saying why. A check opens the FIFO for writing without blocking and writes nothing.',
    options: [
      { names: ['--json'], help: 'one JSON object per target per line: {"target","path","state",...}' },
      { names: ['--quiet', '-q'], help: 'print nothing; use the exit code (usage errors are still printed)' },
    ],
    exits: STATE_EXITS,
    exitNotes: STATE_NOTES,
    operands: 'targets',
    failure: 4,
  },
  {
    name: 'status',
    aliases: [],
    forms: ['[target...]'],
    summary: 'state and holder (pid, uptime, command) of targets',
    about: `State and holder of each target (pid, uptime, command, from the record its holder keeps), or of every target in the default directory when none is given. A service directory shows its supervisor and the service's pid. The state always comes from the FIFO; the record is information only.`,
    options: [{ names: ['--json'], help: 'one JSON object per target per line: {"target","path","state","holder",...}' }],
    exits: [
      ...STATE_EXITS.slice(0, 3),
      ['4', 'unknown: cannot tell, or the default directory cannot be listed (unsafe: a symlink, not yours, writable by others); stderr says why'],
      ['2', 'usage error'],
    ],
    exitNotes: `${STATE_NOTES} No target given and none in the default directory (or no default directory yet): 0, and one line on stderr says so.`,
    operands: 'targets',
    failure: 4,
  },
  {
    name: 'wait',
    aliases: [],
    forms: ['<target>...'],
    summary: 'wait until targets are alive, or dead: no polling',
    about: 'Wait until every target is alive (no polling: the kernel tells). A directory is a service directory, waited for through its supervise/ok even before its run file or supervise/ exist.',
    options: [
      { names: ['--up'], group: 'direction', help: 'wait until alive (the default)' },
      { names: ['--down'], group: 'direction', help: 'wait until dead or absent' },
      { names: ['--any'], group: 'quantity', help: 'until any one target is there' },
      { names: ['--all'], group: 'quantity', help: 'until all of them are (the default)' },
      { names: ['--timeout'], value: '<duration>', duration: true, help: 'give up after this long: exit 99, naming what is not there yet' },
      { names: ['--json'], help: 'a JSON object per target reached, or per target not there on a timeout' },
    ],
    exits: [
      ['0', 'reached: every target (with --any, one) is alive, or with --down dead or absent'],
      ['99', "--timeout passed first (s6-svwait's code); one line names each target not there yet and its last state"],
      ['4', 'a target cannot be told (not a FIFO, permission denied, unsafe default directory, ...); stderr says why'],
      ['2', 'usage error'],
    ],
    operands: 'targets',
    failure: 4,
  },
  {
    name: 'watch',
    aliases: [],
    forms: ['<target or directory>...'],
    summary: 'a line for each change of state, until SIGINT/SIGTERM',
    about: `Print a line for each change of state, until SIGINT/SIGTERM. The first line of each target is its current state. A directory that is not a service directory stands for the targets in it, as they come and go (also one that does not exist yet). Names are printed escaped (\\n, \\x1b).`,
    options: [{ names: ['--json'], help: 'one JSON object per change per line' }],
    exits: [
      ['0', 'stopped by SIGINT or SIGTERM'],
      ['2', 'usage error'],
      ['74', 'its output is not being read: more than 1 MiB of lines waited (EX_IOERR; one line on stderr says so)'],
      ['125', 'cannot watch: unsafe default directory, ... (as run and serve say of their own failures); stderr says why'],
      ['141', 'the reader of its output went away (128 + SIGPIPE, as tail -f: watch ... | head -1)'],
    ],
    exitNotes: 'A target whose state cannot be told is a line of its own (unknown), not an exit: watch goes on.',
    operands: 'targets-or-directories',
    failure: 125,
  },
  {
    name: 'serve',
    aliases: [],
    forms: ['<target or directory>...'],
    summary: 'liveness over HTTP: /healthz, /metrics, /status, /events',
    about: `Answer over HTTP from the watcher's memory, until SIGINT/SIGTERM: GET /healthz/<name> (200 alive, 503 not, 404 not served), /healthz (200 while all are alive), /metrics (Prometheus), /status (JSON), /events (Server-Sent Events). A target is served under its name (the last component of its path); a directory's targets under their file names.`,
    options: [{ names: ['--listen'], value: '<address>', help: 'HOST:PORT or unix:PATH (a socket of mode 0600); default 127.0.0.1:19171' }],
    exits: [
      ['0', 'stopped by SIGTERM/SIGINT'],
      ['2', 'usage error (also: two targets with one name)'],
      ['125', 'cannot serve: address in use, permission denied, unsafe default directory, ...; stderr says why'],
    ],
    operands: 'targets-or-directories',
    failure: 125,
  },
  {
    name: 'completion',
    aliases: [],
    forms: ['bash|zsh|fish'],
    summary: 'a shell completion script: commands, options, targets',
    about: `Print a completion script for bash, zsh or fish: it completes commands, options, and target names from the default directory (names with control characters are left out; the others are inserted quoted, never evaluated).

  bash:  eval "$(proc-alive completion bash)"          (in ~/.bashrc)
  zsh:   eval "$(proc-alive completion zsh)"           (in ~/.zshrc, after compinit)
  fish:  proc-alive completion fish | source           (or save it in ~/.config/fish/completions/proc-alive.fish)`,
    options: [{ names: ['--targets'], help: 'print the target names in the default directory instead, each followed by a NUL byte (what the scripts complete)' }],
    exits: [
      ['0', 'printed'],
      ['2', 'usage error (a shell other than bash, zsh, fish)'],
      ['4', 'with --targets: the default directory cannot be listed (unsafe); nothing is printed'],
    ],
    operands: 'shells',
    failure: 1,
  },
  {
    name: 'help',
    aliases: [],
    forms: ['[command]'],
    summary: "this overview, or a command's options and exit codes",
    about: "Print the overview, or a command's synopsis, options and exit codes (the same as proc-alive <command> --help).",
    options: [],
    exits: [
      ['0', 'printed'],
      ['2', 'usage error (no such command)'],
    ],
    operands: 'commands',
    failure: 1,
  },
  {
    name: 'version',
    aliases: [],
    forms: [''],
    summary: "proc-alive's version (also --version, -v, -V)",
    about: "Print proc-alive's version, one line (also: proc-alive --version, -v, -V).",
    options: [],
    exits: [
      ['0', 'printed'],
      ['2', 'usage error'],
    ],
    operands: 'none',
    failure: 1,
  },
];

/** The command a word names (a name or an alias). */
export function findCommand(word: string): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === word || c.aliases.includes(word));
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min((row[j] as number) + 1, (next[j - 1] as number) + 1, (row[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length] as number;
}

/**
 * The nearest of `candidates` to a mistyped `word`, if near enough to be a typo: at most 2 edits (a
 * third of a longer word: `complete` for `completion`), and fewer than half the word (so `ls` is not
 * taken for `run`). A candidate `word` begins also counts
 * (`stat` for `status`), as git's and npm's suggestions do.
 */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = word.length >= 2 && c.startsWith(word) ? 1 : distance(word, c);
    if (d < bestDistance && d <= Math.max(2, Math.ceil(word.length / 3)) && d * 2 < Math.max(word.length, 2) + 1) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

/** The word to suggest, as a clause: ` (did you mean 'status'?)`, or nothing. */
export function suggestion(word: string, candidates: readonly string[]): string {
  const near = didYouMean(word, candidates);
  return near === undefined ? '' : ` (did you mean '${near}'?)`;
}

export interface Parsed {
  /** Flags given, by canonical name. */
  flags: Set<string>;
  /** Values given, by canonical name (durations too, as written). */
  values: Map<string, string>;
  /** Duration options, in milliseconds. */
  ms: Map<string, number>;
  operands: string[];
  /** How many operands came before a `--`, if one was given (run's command follows it). */
  dashAt?: number;
  /** `--help` or `-h` was given (before any `--`): print the help, nothing else. */
  help: boolean;
}

function optionText(o: OptionSpec, name: string = o.names[0]): string {
  if (o.value === undefined) return name;
  return o.optionalValue ? `${name}[=${o.value}]` : `${name} ${o.value}`;
}

/**
 * A small getopt driven by the command's table: flags, options with a value (`--mode 0620` or
 * `--mode=0620`), durations parsed, `--` ends options, `-h`/`--help` anywhere before it asks for help
 * (which wins over any other error, so `check --jsn --help` still helps). Options and operands may
 * be mixed. `operandEndsOptions(operand, index)` lets a command stop at an operand after which the
 * rest cannot be its own (run's command given without `--`), to say so rather than "unknown option".
 */
export function parseArgs(
  spec: CommandSpec,
  args: readonly string[],
  operandEndsOptions?: (operand: string, index: number) => boolean,
): Parsed {
  const parsed: Parsed = { flags: new Set(), values: new Map(), ms: new Map(), operands: [], help: false };
  let error: UsageError | undefined;
  const fail = (message: string): void => {
    error ??= new UsageError(message);
  };
  const options = [...spec.options, HELP_OPTION];
  const given = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--') {
      parsed.dashAt = parsed.operands.length;
      parsed.operands.push(...args.slice(i + 1));
      break;
    }
    // '-' alone and negative numbers are operands, so that 'run x -5' says what is wrong with -5.
    if (!arg.startsWith('-') || arg === '-' || /^-\d/.test(arg)) {
      parsed.operands.push(arg);
      if (operandEndsOptions?.(arg, parsed.operands.length - 1)) {
        parsed.operands.push(...args.slice(i + 1));
        break;
      }
      continue;
    }
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const option = options.find((o) => o.names.includes(name));
    if (option === undefined) {
      fail(`unknown option '${name}'${suggestion(name, options.flatMap((o) => o.names))}`);
      continue;
    }
    const key = option.names[0];
    if (option === HELP_OPTION) {
      parsed.help = true;
      continue;
    }
    const group = option.group === undefined ? undefined : spec.options.find((o) => o.group === option.group && given.has(o.names[0]) && o !== option);
    if (group !== undefined) fail(`${group.names[0]} and ${key} cannot be combined`);
    given.set(key, name);
    if (option.value === undefined || (option.optionalValue && eq < 0)) {
      if (eq > 0) fail(`${name} takes no value`);
      parsed.flags.add(key);
      continue;
    }
    const value = eq > 0 ? arg.slice(eq + 1) : args[++i];
    if (value === undefined) {
      fail(`${name} needs a value`);
      continue;
    }
    parsed.values.set(key, value);
    if (option.duration) {
      const ms = parseDuration(value);
      if (typeof ms === 'number') parsed.ms.set(key, ms);
      else fail(`${name}: ${ms.error}`);
    }
  }
  if (error !== undefined && !parsed.help) throw error;
  return parsed;
}

/** The synopsis lines of a command: `proc-alive check [--json] [--quiet | -q] <target>...`. */
export function synopsis(spec: CommandSpec): string[] {
  return spec.forms.map((operands, form) => {
    const parts = ['proc-alive', spec.name];
    const groups = new Set<string>();
    for (const o of spec.options) {
      if (o.form !== undefined && o.form !== form) continue;
      if (o.group !== undefined) {
        if (groups.has(o.group)) continue;
        groups.add(o.group);
        const members = spec.options.filter((m) => m.group === o.group).map((m) => optionText(m));
        parts.push(`[${members.join(' | ')}]`);
      } else {
        parts.push(`[${o.names.map((n) => optionText(o, n)).join(' | ')}]`);
      }
    }
    if (operands !== '') parts.push(operands);
    return parts.join(' ');
  });
}

/** The usage lines printed after a usage error's reason. */
export function usageLines(spec: CommandSpec): string {
  return synopsis(spec)
    .map((line, i) => `${i === 0 ? 'usage: ' : '       '}${line}\n`)
    .join('');
}

const WIDTH = 100;

/** Wraps `text` to WIDTH columns, every line after the first indented by `indent`; keeps its own line breaks. */
function wrap(text: string, indent: number, first = 0): string {
  const out: string[] = [];
  for (const paragraph of text.split('\n')) {
    // A line that starts with spaces is preformatted (an example): kept as it is.
    if (/^\s/.test(paragraph) || paragraph === '') {
      out.push(paragraph);
      continue;
    }
    let line = '';
    let room = WIDTH - (out.length === 0 ? first : indent);
    for (const word of paragraph.split(' ')) {
      if (line !== '' && line.length + 1 + word.length > room) {
        out.push(line);
        line = word;
        room = WIDTH - indent;
      } else {
        line = line === '' ? word : `${line} ${word}`;
      }
    }
    out.push(line);
  }
  return out.map((l, i) => (i === 0 || l === '' ? l : ' '.repeat(indent) + l)).join('\n');
}

/** Rows of `left  right`, the right column aligned and wrapped. */
function table(rows: ReadonlyArray<readonly [string, string]>, indent = 2): string {
  const width = Math.max(...rows.map(([l]) => l.length));
  const column = indent + width + 2;
  return rows.map(([l, r]) => `${' '.repeat(indent)}${l.padEnd(width)}  ${wrap(r, column, column)}\n`).join('');
}

function targetsText(): string {
  return `A target that contains a '/' is a path (/run/app/alive, ./web). A bare name (web) lives in the default directory: $PROC_ALIVE_DIR, else /run/proc-alive for root, else /tmp/proc-alive-<uid> (here: ${defaultDir()}). It must be a directory (not a symlink), owned by you or root, and not writable by group or others. A daemontools or runit service directory (one with supervise/ok) is alive while its supervisor runs.`;
}

/** `proc-alive <command> --help`: synopsis, what it does, options, exit codes. */
export function commandHelp(spec: CommandSpec): string {
  const lines = synopsis(spec);
  let text = `Usage: ${lines[0]}\n${lines.slice(1).map((l) => `       ${l}\n`).join('')}`;
  if (spec.aliases.length > 0) text += `Alias: ${spec.aliases.map((a) => `proc-alive ${a}`).join(', ')}\n`;
  text += `\n${wrap(spec.about, 0)}\n`;
  const options = [...spec.options, HELP_OPTION];
  text += `\nOptions:\n${table(options.map((o) => [o.names.map((n) => optionText(o, n)).join(', '), o.help]))}`;
  text += `\nExit codes:\n${table(spec.exits.map(([code, meaning]) => [code.padStart(3), meaning]))}`;
  if (spec.exitNotes !== undefined) text += `${wrap(spec.exitNotes, 2, 0).replace(/^/, '  ')}\n`;
  const hasDuration = spec.forms.some((f) => f.includes('duration')) || spec.options.some((o) => o.duration);
  if (hasDuration) text += `\nDurations: ${DURATION_FORMS}.\n`;
  if (spec.operands === 'targets' || spec.operands === 'targets-or-directories') text += `\nTargets:\n  ${wrap(targetsText(), 2, 2)}\n`;
  return text;
}

/** `proc-alive --help`: what it is, the commands, targets, durations. */
export function overviewHelp(): string {
  const rows: Array<[string, string]> = [];
  for (const c of COMMANDS) {
    c.forms.forEach((form, i) => rows.push([`${c.name}${form === '' ? '' : ` ${form}`}`, i === 0 ? c.summary : '']));
  }
  const width = Math.max(...rows.map(([l]) => l.length));
  const commands = rows
    .map(([l, r]) => (r === '' ? `  ${l}\n` : `  ${l.padEnd(width)}  ${wrap(r, width + 4, width + 4)}\n`))
    .join('');
  return `Usage: proc-alive <command> [options] [arguments]

${wrap(
  'Is a process alive right now? The process (the runner) holds a FIFO open for reading for its whole life; a check opens the FIFO for writing without blocking: it succeeds only while a reader exists. The kernel drops the reader however the runner ends, SIGKILL included. No PID, no polling.',
  0,
)}

Commands:
${commands}
proc-alive <command> --help (or proc-alive help <command>) prints its options and exit codes.
proc-alive --version (-v, -V) prints the version.

Targets:
  ${wrap(targetsText(), 2, 2)}

Durations: ${DURATION_FORMS}.
`;
}
