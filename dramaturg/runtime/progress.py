"""A progress bar: steps, steps/s, recent episode return, time left."""

from __future__ import annotations

import sys


class Progress:
    def __init__(self, total: int, start: int, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self.total = total
        self.bar = None
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress
            from rich.progress import TextColumn, TimeRemainingColumn

            self.bar = RichProgress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[sps]:>7} steps/s"),
                TextColumn("return {task.fields[ret]}"),
                TimeRemainingColumn(),
                transient=False,
            )
            self.task = self.bar.add_task("train", total=total, completed=start, sps="-", ret="-")
            self.bar.start()

    def update(self, step: int, steps_per_s: float, recent_return: float | None) -> None:
        if self.bar is not None:
            ret = "-" if recent_return is None else f"{recent_return:.1f}"
            self.bar.update(self.task, completed=min(step, self.total), sps=f"{steps_per_s:,.0f}", ret=ret)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
