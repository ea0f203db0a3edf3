"""The live progress table, printed to a terminal while an experiment runs.

Printed every ``max_report_frequency`` seconds when ``verbose >= 1`` and stdout
is a terminal (or when a ``CLIReporter`` is passed explicitly); quiet otherwise,
so logs and pipes are not flooded.  The same trials are published for the head's
dashboard once a second (``minray.util.state.report_library_state("tune", rows)``).
Example output::

    == Status == 12 trials: 4 RUNNING, 8 TERMINATED | AsyncHyperBand: 5 trials stopped early
    Trial name          status      weight    bias     iter  score
    objective_1a2b3_00000  TERMINATED  0.418   0.0112     10  1.33
"""

import logging
import sys
import time
from collections import Counter

logger = logging.getLogger("minray.tune")

PUBLISH_PERIOD_S = 1.0      # the dashboard polls every 2 s
MAX_PUBLISHED_TRIALS = 200


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class CLIReporter:
    """A progress table on stdout::

        tune.RunConfig(progress_reporter=CLIReporter(metric_columns=["loss"],
                                                     max_report_frequency=10))
    """

    def __init__(self, metric_columns=None, parameter_columns=None, max_progress_rows=20,
                 max_report_frequency=5, metric=None, mode=None, sort_by_metric=False,
                 print_intermediate_tables=None):
        self.metric_columns = list(metric_columns) if metric_columns else None
        self.parameter_columns = list(parameter_columns) if parameter_columns else None
        self.max_rows = max_progress_rows
        self.frequency = max_report_frequency
        self.metric, self.mode = metric, mode
        self.sort_by_metric = sort_by_metric
        self.out = None  # sys.stdout at print time

    def table(self, trials, scheduler=None):
        counts = Counter(t.status for t in trials)
        head = f"== Status == {len(trials)} trials: " + ", ".join(
            f"{n} {s}" for s, n in sorted(counts.items()))
        if scheduler is not None:
            head += f" | {scheduler.debug_string()}"
        params = self.parameter_columns
        if params is None:
            params = []
            for t in trials:
                for k, v in t.config.items():
                    if k not in params and not isinstance(v, dict):
                        params.append(k)
        metrics = self.metric_columns
        if metrics is None:
            metrics = ["training_iteration"] + ([self.metric] if self.metric else [])
        shown = trials
        if self.sort_by_metric and self.metric:
            sign = -1 if self.mode == "max" else 1
            shown = sorted(trials, key=lambda t: sign * (t.last_result.get(self.metric) or 0))
        rows = [["Trial name", "status"] + params + metrics]
        for t in shown[:self.max_rows]:
            rows.append([t.trial_name, t.status] + [_fmt(t.config.get(p, "")) for p in params] +
                        [_fmt(t.last_result.get(m, "")) for m in metrics])
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [head] + ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
        if len(shown) > self.max_rows:
            lines.append(f"... {len(shown) - self.max_rows} more trials")
        return "\n".join(lines)

    def report(self, trials, scheduler=None):
        print(self.table(trials, scheduler), file=self.out or sys.stdout, flush=True)


class ProgressReporter:
    """The runner's hook: prints a CLIReporter table now and then, and at the end."""

    def __init__(self, verbose, metric=None, mode=None, reporter=None, experiment=""):
        explicit = reporter is not None
        self.reporter = reporter or CLIReporter(metric=metric, mode=mode)
        if self.reporter.metric is None:
            self.reporter.metric, self.reporter.mode = metric, mode
        tty = hasattr(sys.stdout, "isatty") and sys.stdout.isatty()
        self.enabled = bool(verbose) and (explicit or tty)
        self.last = time.monotonic()
        self.experiment = experiment
        self.last_published = float("-inf")

    def maybe_print(self, trials, scheduler):
        self.publish(trials)
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last >= self.reporter.frequency:
            self.last = now
            self.reporter.report(trials, scheduler)

    def publish(self, trials, force=False):
        """The dashboard's Tune table (one row per trial), at most once a second."""
        now = time.monotonic()
        if not force and now - self.last_published < PUBLISH_PERIOD_S:
            return
        self.last_published = now
        metric = self.reporter.metric
        rows = [{"experiment": self.experiment, "trial": t.trial_name, "status": t.status,
                 "iterations": t.last_result.get("training_iteration", 0),
                 **({metric: _fmt(t.last_result.get(metric, ""))} if metric else {})}
                for t in trials[:MAX_PUBLISHED_TRIALS]]
        try:
            from minray.util.state import report_library_state
            report_library_state("tune", rows)
        except Exception as exc:    # the dashboard is a view: never fail the experiment
            logger.debug("could not publish Tune's state for the dashboard: %s", exc)

    def final(self, trials, scheduler):
        self.publish(trials, force=True)
        if self.enabled:
            self.reporter.report(trials, scheduler)
