"""The `basin>` prompt: read a line, run it, repeat; until `exit` or Ctrl-D.

Commands run in this process through the one-shot dispatcher, after the prompt has returned:
the terminal is back in its normal mode then, so a command that takes the terminal over
(`run -it`, `attach`) does so as it would from a plain shell, and the prompt comes back when it
ends or detaches. Meanwhile an asyncio loop keeps the names for completion and the toolbar
fresh and runs the background log followers, which print above the prompt."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import sys
from pathlib import Path

from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.styles import Style

from basin.errors import BasinError
from basin.paths import Paths
from basin.shell import catalog, commands
from basin.shell.completion import ShellCompleter
from basin.shell.history import ShellHistory, history_path
from basin.shell.jobs import JobTable, Lines, follow
from basin.shell.snapshot import Refresher
from basin.shell.toolbar import toolbar

PROMPT = FormattedText([("class:prompt", "basin> ")])
STYLE = Style.from_dict(
    {
        "prompt": "bold",
        "bottom-toolbar": "noreverse bg:#303030 #d0d0d0",
        "toolbar.up": "#5fd75f",
        "toolbar.down": "#ff8787 bold",
        "toolbar.sep": "#808080",
        "toolbar.error": "#ff8787",
        "follower.name": "#5fafff",
        "follower.stderr": "#ff8787",
        "notice": "italic",
    }
)
WELCOME = "basin shell: Tab completes, `help` lists the commands, Ctrl-D leaves."


class ExitShell(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Shell:
    def __init__(self, paths: Paths, history: Path) -> None:
        self.paths = paths
        self.last_code = 0
        self.refresher = Refresher(paths, on_change=self._redraw)
        self.jobs = JobTable(notify=self._notice, on_change=self._redraw)
        self.history = ShellHistory(history)
        self.session: PromptSession[str] = PromptSession(
            history=self.history,
            auto_suggest=AutoSuggestFromHistory(),
            completer=ShellCompleter(lambda: self.refresher.snapshot, self.jobs.listing),
            complete_while_typing=True,
            bottom_toolbar=lambda: toolbar(self.refresher.snapshot, len(self.jobs), self.last_code),
            style=STYLE,
        )
        self.asker: PromptSession[str] = PromptSession(style=STYLE)

    def _redraw(self) -> None:
        self.session.app.invalidate()  # a no-op while no prompt is shown

    def _notice(self, text: str) -> None:
        print_formatted_text(FormattedText([("class:notice", text)]), style=STYLE)

    def _print_lines(self, name: str, lines: Lines) -> None:
        parts: list[tuple[str, str]] = []
        for stream, text in lines:
            parts.append(("class:follower.name", f"{name} | "))
            parts.append(("class:follower.stderr" if stream == "stderr" else "", text + "\n"))
        # above the prompt when one is shown (prompt_toolkit redraws it below), else plain
        print_formatted_text(FormattedText(parts), style=STYLE, end="")

    async def run(self) -> int:
        print(WELCOME)
        refresher = asyncio.create_task(self.refresher.run())
        try:
            while True:
                if self.history.broken:
                    print(f"basin: {self.history.broken}", file=sys.stderr)
                    self.history.broken = "reported"
                try:
                    text = await self.session.prompt_async(PROMPT)
                except KeyboardInterrupt:
                    continue  # Ctrl-C drops the line, as in sh
                except EOFError:
                    return 0
                try:
                    self.last_code = await self.execute(text)
                except ExitShell as e:
                    return e.code
                except KeyboardInterrupt:
                    self.last_code = 130
                self.refresher.poke()
        finally:
            await self.jobs.close()
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher

    async def execute(self, text: str) -> int:
        try:
            line = commands.parse_line(text)
            if not line.argv:
                if line.background:
                    raise BasinError("nothing to run in the background")
                return self.last_code
            if line.background:
                return self._background(line.argv)
            return await self._foreground(line.argv)
        except BasinError as e:
            print(f"basin: {e.message}", file=sys.stderr)
            return e.code

    def _background(self, argv: list[str]) -> int:
        spec = commands.follow_spec(argv, self.paths)
        job = self.jobs.start(shlex.join(argv), follow(self.paths, spec, self._print_lines))
        print(f"[{job.number}] {job.command}")
        return 0

    async def _foreground(self, argv: list[str]) -> int:
        verb, args = argv[0], argv[1:]
        if verb == "exit":
            raise ExitShell(self._exit_code(args))
        if verb == "help":
            return self._help(args)
        if verb == "jobs":
            for n, command in self.jobs.listing():
                print(f"[{n}]  running  {command}")
            return 0
        # `kill %N` is the shell's; `kill NAME` goes to docker's verb once basin has one
        if verb == "kill" and (
            not args or args[0].startswith("%") or "kill" not in catalog.verbs()
        ):
            return await self._kill(args)
        targets = commands.running_targets(argv, self.paths)
        if targets and not await self._confirm(targets):
            print("basin: rm: cancelled, nothing removed", file=sys.stderr)
            return 1
        return commands.run_cli(argv)

    @staticmethod
    def _exit_code(args: list[str]) -> int:
        if not args:
            return 0
        if len(args) == 1 and args[0].isdigit():
            return int(args[0]) & 0xFF
        raise BasinError("exit: usage: exit [CODE]")

    def _help(self, args: list[str]) -> int:
        if not args:
            print(commands.help_text())
            return 0
        if args[0] in catalog.BUILTINS:
            print(f"{args[0]}: {catalog.BUILTINS[args[0]]}")
            return 0
        return commands.run_cli([args[0], "--help"])

    async def _kill(self, args: list[str]) -> int:
        if not args:
            raise BasinError("kill: usage: kill %N (see jobs)")
        code = 0
        for word in args:
            try:
                n = commands.job_number(word)
            except BasinError as e:
                print(f"basin: {e.message}", file=sys.stderr)
                code = 1
                continue
            job = await self.jobs.kill(n)
            if job is None:
                print(f"basin: kill: no such job: %{n}", file=sys.stderr)
                code = 1
            else:
                print(f"[{job.number}]  killed  {job.command}")
        return code

    async def _confirm(self, names: list[str]) -> bool:
        which = ", ".join(names)
        verb = "is" if len(names) == 1 else "are"
        them = "it" if len(names) == 1 else "them"
        question = f"{which} {verb} running: kill and remove {them}? [y/N] "
        try:
            answer = await self.asker.prompt_async(question)
        except (KeyboardInterrupt, EOFError):
            return False
        return answer.strip().lower() in ("y", "yes")


async def _main() -> int:
    shell = Shell(Paths.from_env(), history_path())
    return await shell.run()


def run() -> int:
    # not asyncio.run(): its Ctrl-C handler would cancel the shell instead of interrupting the
    # running command; with a plain loop, Ctrl-C is KeyboardInterrupt inside the command
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_main())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        asyncio.set_event_loop(None)
        loop.close()
