// `proc-alive completion bash|zsh|fish`: completion scripts made from the commands' tables
// (cli-commands.ts), so they complete what the parser takes. Target names come from
// `proc-alive completion --targets` at completion time, NUL-separated.
//
// Names in the default directory are other people's text as much as ours (a shared /tmp, a
// planted FIFO): a script never evaluates them. bash: read with `read -r -d ''`, compared with
// [[ == ]] (the name is never a pattern), inserted quoted by printf %q; never through `compgen -W`,
// which expands its word list ($(...) included). zsh: `compadd`, which quotes what it inserts. fish:
// candidates from a command substitution are data, and fish escapes what it inserts. Names with
// control characters (or bidirectional overrides) are not offered at all: they could not be typed,
// and could disguise what is inserted.

import { basename } from 'node:path';
import { COMMANDS, UsageError, type CommandSpec, type Parsed } from './cli-commands.js';
import { escapeText } from './text.js';

const SHELLS = ['bash', 'zsh', 'fish'] as const;

/** A word the scripts carry unquoted: only ours, checked so a future one cannot break a script. */
function word(w: string): string {
  if (!/^[-\w]+$/.test(w)) throw new Error(`completion: '${w}' is not a plain word`);
  return w;
}

/** A single-quoted string for zsh and POSIX shells. */
function shQuote(text: string): string {
  return `'${text.replaceAll("'", "'\\''")}'`;
}

/** A single-quoted string for fish (which escapes \ and ' inside single quotes). */
function fishQuote(text: string): string {
  return `'${text.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}

const names = (c: CommandSpec): string[] => [c.name, ...c.aliases].map(word);
const optionNames = (c: CommandSpec): string[] => [...c.options.flatMap((o) => o.names), '--help', '-h'].map(word);
const valueOptions = (c: CommandSpec): string[] => c.options.filter((o) => o.value !== undefined && !o.optionalValue).flatMap((o) => o.names).map(word);
const allCommands = (): string[] => COMMANDS.flatMap(names);

function bash(): string {
  const cases = COMMANDS.map(
    (c) => `    ${names(c).join('|')}) opts=(${optionNames(c).join(' ')}) values=(${valueOptions(c).join(' ')}) kind=${c.operands} ;;`,
  ).join('\n');
  return `# proc-alive completion for bash. Load it with: eval "$(proc-alive completion bash)"
# Target names are read NUL-separated and inserted quoted (printf %q); they are never evaluated.

_proc_alive_bin() {
  local bin=\${COMP_WORDS[0]}
  [[ $bin == */* && -x $bin ]] || bin=proc-alive
  command "$bin" "$@"
}

_proc_alive_add() {
  local cur=$1 w
  shift
  for w in "$@"; do
    [[ $w == "$cur"* ]] && COMPREPLY+=("$w")
  done
}

_proc_alive_targets() {
  local cur=$1 name quoted
  # A path: the shell's own file names.
  if [[ $cur == */* || $cur == .* || $cur == '~'* ]]; then
    compopt -o filenames 2>/dev/null
    mapfile -t COMPREPLY < <(compgen -f -- "$cur")
    return
  fi
  while IFS= read -r -d '' name; do
    printf -v quoted '%q' "$name"
    [[ $name == "$cur"* || $quoted == "$cur"* ]] && COMPREPLY+=("$quoted")
  done < <(_proc_alive_bin completion --targets 2>/dev/null)
}

_proc_alive() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
  local cmd='' dash='' i w kind opts values
  COMPREPLY=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\${COMP_WORDS[i]}
    if [[ -z $cmd ]]; then
      [[ $w == -* ]] || cmd=$w
    elif [[ $w == -- ]]; then
      dash=$i
    fi
  done
  if [[ -z $cmd ]]; then
    _proc_alive_add "$cur" ${allCommands().join(' ')} --help -h --version -v -V
    return
  fi
  if [[ -n $dash ]]; then
    # After run's '--': a command, then its arguments (files).
    if ((COMP_CWORD == dash + 1)); then
      mapfile -t COMPREPLY < <(compgen -c -- "$cur")
    else
      compopt -o default 2>/dev/null
    fi
    return
  fi
  case $cmd in
${cases}
    *) return ;;
  esac
  # The value of an option (--mode 0620, --timeout=5s): nothing to offer.
  [[ $prev == = ]] && return
  for w in "\${values[@]}"; do
    [[ $prev == "$w" ]] && return
  done
  if [[ $cur == -* ]]; then
    _proc_alive_add "$cur" "\${opts[@]}"
    return
  fi
  case $kind in
    targets | targets-or-directories) _proc_alive_targets "$cur" ;;
    shells) _proc_alive_add "$cur" ${SHELLS.join(' ')} ;;
    commands) _proc_alive_add "$cur" ${allCommands().join(' ')} ;;
  esac
}

complete -F _proc_alive proc-alive
`;
}

function zsh(): string {
  const described = COMMANDS.flatMap((c) => names(c).map((n) => shQuote(`${n}:${c.summary.replaceAll(':', '\\:')}`))).join(' ');
  const cases = COMMANDS.map(
    (c) => `    ${names(c).join('|')}) opts=(${optionNames(c).join(' ')}) values=(${valueOptions(c).join(' ')}) kind=${c.operands} ;;`,
  ).join('\n');
  return `#compdef proc-alive
# proc-alive completion for zsh. Load it with: eval "$(proc-alive completion zsh)" (after compinit),
# or save it as _proc-alive in a directory of $fpath. Target names are read NUL-separated and given
# to compadd, which quotes what it inserts; they are never evaluated.

_proc_alive() {
  local cmd='' dash=0 i w kind
  local -a opts values targets
  for ((i = 2; i < CURRENT; i++)); do
    w=\${words[i]}
    if [[ -z $cmd ]]; then
      [[ $w == -* ]] || cmd=$w
    elif [[ $w == -- ]]; then
      dash=$i
    fi
  done
  if [[ -z $cmd ]]; then
    local -a commands
    commands=(${described})
    if [[ $PREFIX == -* ]]; then
      compadd -- --help -h --version -v -V
    else
      _describe -t commands 'proc-alive command' commands
    fi
    return
  fi
  if ((dash > 0)); then
    # After run's '--': complete the command line that follows as its own.
    words=("\${(@)words[dash+1,-1]}")
    ((CURRENT -= dash))
    _normal
    return
  fi
  case $cmd in
${cases}
    *) return 1 ;;
  esac
  if ((\${values[(Ie)\${words[CURRENT-1]}]})); then
    _message 'value'
    return
  fi
  if [[ $PREFIX == -* ]]; then
    compadd -- $opts
    return
  fi
  case $kind in
    targets | targets-or-directories)
      if [[ $PREFIX == */* || $PREFIX == .* || $PREFIX == '~'* ]]; then
        _files
      else
        local bin=\${words[1]}
        [[ $bin == */* && -x $bin ]] || bin=proc-alive
        targets=(\${(0)"$(command $bin completion --targets 2>/dev/null)"})
        compadd -- $targets
      fi
      ;;
    shells) compadd -- ${SHELLS.join(' ')} ;;
    commands) compadd -- ${allCommands().join(' ')} ;;
  esac
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  _proc_alive "$@"
else
  compdef _proc_alive proc-alive
fi
`;
}

function fish(): string {
  const lines: string[] = [];
  for (const c of COMMANDS) {
    for (const n of names(c)) lines.push(`complete -c proc-alive -n 'not __proc_alive_command' -a ${n} -d ${fishQuote(c.summary)}`);
  }
  lines.push(`complete -c proc-alive -n 'not __proc_alive_command' -s h -l help -d 'the overview'`);
  lines.push(`complete -c proc-alive -n 'not __proc_alive_command' -s v -s V -l version -d 'the version'`);
  for (const c of COMMANDS) {
    const when = `__proc_alive_command ${names(c).join(' ')}; and not __proc_alive_after_dash`;
    for (const o of [...c.options, { names: ['--help', '-h'] as const, help: 'print this help' }]) {
      const flags = o.names.map((n) => (n.startsWith('--') ? `-l ${word(n.slice(2))}` : `-s ${word(n.slice(1))}`)).join(' ');
      const takes = 'value' in o && o.value !== undefined && !('optionalValue' in o && o.optionalValue) ? ' -x' : '';
      lines.push(`complete -c proc-alive -n ${fishQuote(when)} ${flags}${takes} -d ${fishQuote(o.help)}`);
    }
    if (c.operands === 'targets' || c.operands === 'targets-or-directories') {
      lines.push(`complete -c proc-alive -n ${fishQuote(`${when}; and not __proc_alive_path`)} -a '(__proc_alive_targets)'`);
      lines.push(`complete -c proc-alive -n ${fishQuote(`${when}; and __proc_alive_path`)} -F`);
    } else if (c.operands === 'shells') {
      lines.push(`complete -c proc-alive -n ${fishQuote(when)} -a '${SHELLS.join(' ')}'`);
    } else if (c.operands === 'commands') {
      lines.push(`complete -c proc-alive -n ${fishQuote(when)} -a '${allCommands().join(' ')}'`);
    }
  }
  return `# proc-alive completion for fish. Load it with: proc-alive completion fish | source
# (or save it as ~/.config/fish/completions/proc-alive.fish). Target names are read NUL-separated
# (string split0) and are never evaluated; fish escapes what it inserts.

# The command given (or, with arguments, whether it is one of them).
function __proc_alive_command
    set -l words (commandline -opc)
    set -e words[1]
    for w in $words
        switch $w
            case '-*'
            case '*'
                if test (count $argv) -eq 0; or contains -- $w $argv
                    return 0
                end
                return 1
        end
    end
    return 1
end

function __proc_alive_after_dash
    contains -- -- (commandline -opc)
end

function __proc_alive_path
    string match -q -r '^[.~]|/' -- (commandline -ct)
end

function __proc_alive_targets
    set -l bin (commandline -opc)[1]
    string match -q -- '*/*' $bin; and test -x $bin; or set bin proc-alive
    command $bin completion --targets 2>/dev/null | string split0
end

complete -c proc-alive -f
complete -c proc-alive -n __proc_alive_after_dash -F -a '(__fish_complete_command)'
${lines.join('\n')}
`;
}

/** `completion bash|zsh|fish`, or `completion --targets`. */
export async function runCompletion({ flags, operands }: Parsed, { write }: { write(fd: 1 | 2, text: string): void }): Promise<number> {
  if (flags.has('--targets')) {
    if (operands.length > 0) throw new UsageError(`--targets takes no shell, not '${operands.join(' ')}'`);
    const { listTargetsIn } = await import('./status.js');
    let found: string[];
    try {
      found = listTargetsIn();
    } catch {
      // An unsafe default directory: nothing to offer (a completion must not print errors at a prompt).
      return 4;
    }
    const offered = found.map((p) => basename(p)).filter((n) => n !== '' && escapeText(n) === n.replaceAll('\\', '\\\\'));
    write(1, offered.map((n) => `${n}\0`).join(''));
    return 0;
  }
  const [shell, ...more] = operands;
  if (shell === undefined) throw new UsageError('completion needs a shell: bash, zsh or fish');
  if (more.length > 0) throw new UsageError(`completion takes one shell, not '${operands.join(' ')}'`);
  if (shell === 'bash') write(1, bash());
  else if (shell === 'zsh') write(1, zsh());
  else if (shell === 'fish') write(1, fish());
  else throw new UsageError(`no completion for '${shell}': bash, zsh or fish`);
  return 0;
}
