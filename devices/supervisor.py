"""The shell script every benchmark command runs under, on this machine and on boards alike.

``sh -c SUPERVISE sh WORK_DIR REGISTRY LIMIT ARGV...`` (each a positional parameter, never interpolated):

- **Dies with its controller.** The command runs in the background with stdin from /dev/null, while a watchdog reads
  the script's own stdin: a pipe from flopgap (local) or the SSH channel (boards). flopgap never writes to it, so it
  ends only when flopgap closes it or dies (``kill -9`` included, or the connection drops): then the watchdog kills
  the command's process group and the script's own.
- **Registered while it runs.** ``REGISTRY/<script pid>`` holds the command's pid while it runs, so a later flopgap,
  holding the device lock, finds a runner that outlived its controller and kills it (:data:`REAP`).
- **Signals are reported, not lost.** The script exits with the shell's ``128+N`` for a command killed by signal
  N (paramiko would otherwise see an SSH ``exit-signal`` as exit status -1); :func:`signal_of` maps it back.
- ``LIMIT`` (seconds, may be empty) runs the command under the device's ``timeout``, which moves it into a process
  group of its own; it is then killed through that group too.

The script is the process-group leader (a new session locally; sshd starts every session that way).
"""

from __future__ import annotations

KILL_AFTER_S = 3  # the board's `timeout` follows SIGTERM with SIGKILL this much later

SUPERVISE = (
    '[ -z "$1" ] || cd "$1" || exit 125\n'
    'reg=$2; limit=$3; shift 3\n'
    # A background job's stdin is /dev/null in a non-interactive shell: keep ours on fd 3 for the watchdog.
    'exec 3<&0\n'
    f'if [ -n "$limit" ]; then timeout -k {KILL_AFTER_S} "$limit" "$@" </dev/null 3<&- &\n'
    'else "$@" </dev/null 3<&- &\n'
    'fi\n'
    'child=$!\n'
    'if [ -n "$reg" ]; then mkdir -p "$reg" 2>/dev/null; echo "$child" > "$reg/$$" 2>/dev/null; fi\n'
    # stdin at EOF: flopgap is gone. Kill the command's own group (timeout's) and ours (the command, the watchdog).
    '{ cat >/dev/null; kill -s KILL -- "-$child" 2>/dev/null; kill -s KILL -- "-$$"; } <&3 >/dev/null 2>&1 &\n'
    'dog=$!\n'
    'exec 3<&-\n'
    'wait "$child"; rc=$?\n'
    'kill "$dog" 2>/dev/null\n'
    '[ -z "$reg" ] || rm -f "$reg/$$"\n'
    'exit "$rc"\n'
)  # fmt: skip

# Kill every registered command whose script is gone or still running (called with the device lock held, so none of
# them can be a live benchmark of another flopgap); prints one line per command killed: "<pid> <its command line>".
REAP = (
    'reg=$1; [ -d "$reg" ] || exit 0\n'
    'for f in "$reg"/*; do\n'
    '  [ -f "$f" ] || continue\n'
    '  p=${f##*/}; c=$(cat "$f" 2>/dev/null)\n'
    '  alive=\n'
    '  for q in $c $p; do\n'
    '    if [ -r "/proc/$q/stat" ] && ! grep -q "^[0-9]* (.*) Z" "/proc/$q/stat" 2>/dev/null; then alive=$q; fi\n'
    '  done\n'
    '  if [ -n "$alive" ]; then\n'
    '    what=$(tr "\\000" " " < "/proc/${c:-$p}/cmdline" 2>/dev/null)\n'
    '    kill -s KILL -- "-$c" 2>/dev/null; kill -s KILL -- "-$p" 2>/dev/null; kill -s KILL "$c" 2>/dev/null\n'
    '    echo "${c:-$p} ${what:-?}"\n'
    '  fi\n'
    '  rm -f "$f"\n'
    'done\n'
)  # fmt: skip


def supervised(argv: list[str], work_dir: str = "", registry: str = "", limit_s: int | None = None) -> list[str]:
    """The argv that runs ``argv`` under :data:`SUPERVISE`."""
    return ["sh", "-c", SUPERVISE, "sh", work_dir, registry, "" if limit_s is None else str(limit_s), *argv]


def signal_of(returncode: int) -> int:
    """The script's exit code as :class:`~devices.base.ShellReturn` has it: ``-N`` for a command killed by signal N.

    The shell reports a command killed by signal N as ``128+N``; a command that exits with such a code itself (rare:
    129-192) is indistinguishable in POSIX sh and reads as a signal too.
    """
    return -(returncode - 128) if 128 < returncode <= 128 + 64 else returncode
