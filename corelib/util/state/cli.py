"""``minray list | get | summary | logs | memory | timeline``: the state API on the command line.

    minray list tasks --filter state=FAILED --limit 20 --format json
    minray list actors --filter "state!=DEAD" --detail
    minray summary tasks
    minray logs                       # the node's log files
    minray logs --actor-id ID --tail 50
    minray memory                     # objects and the object store's use
    minray timeline -o trace.json     # Chrome trace of the tasks run so far

Each command is one call of minray.util.state (or minray.timeline); ``--address``
names the session (default: the newest node started with ``minray start``).
corelib/scripts.py lists these sub-commands and hands them to main(), so this
module (and minray.util) loads only when one of them runs.
"""

import json
import sys

RESOURCES = {"tasks": "tasks", "actors": "actors", "nodes": "nodes", "objects": "objects",
             "jobs": "jobs", "placement-groups": "placement_groups", "workers": "workers"}
_GETTERS = {"tasks": "get_task", "actors": "get_actor", "nodes": "get_node",
            "placement-groups": "get_placement_group", "workers": "get_worker",
            "objects": "get_objects", "jobs": "get_job"}


def main(argv):
    """``minray <list|get|summary|logs|memory|timeline> ...`` (scripts.py hands these over)."""
    import argparse
    parser = argparse.ArgumentParser(prog="minray")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.fn(args)


def add_parsers(sub):
    p = sub.add_parser("list", help="list tasks, actors, nodes, objects, jobs, "
                       "placement-groups or workers")
    p.add_argument("resource", choices=sorted(RESOURCES))
    _common(p)
    p.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="keep rows whose KEY equals VALUE (KEY!=VALUE: differs); repeatable")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--detail", action="store_true", help="every column")
    p.set_defaults(fn=cmd_list)
    p = sub.add_parser("get", help="one task, actor, node, ... by id")
    p.add_argument("resource", choices=sorted(_GETTERS))
    p.add_argument("id")
    _common(p)
    p.set_defaults(fn=cmd_get)
    p = sub.add_parser("summary", help="summarize tasks, actors or objects")
    p.add_argument("resource", choices=["tasks", "actors", "objects"])
    _common(p)
    p.set_defaults(fn=cmd_summary)
    p = sub.add_parser("logs", help="list the node's log files, or print one")
    p.add_argument("filename", nargs="?", default=None)
    p.add_argument("--actor-id", default=None)
    p.add_argument("--task-id", default=None)
    p.add_argument("--pid", type=int, default=None)
    p.add_argument("--submission-id", default=None)
    p.add_argument("--err", action="store_true", help="stderr instead of stdout")
    p.add_argument("--tail", type=int, default=1000, help="last N lines (-1: all)")
    p.add_argument("--follow", "-f", action="store_true")
    p.add_argument("--address", default=None)
    p.set_defaults(fn=cmd_logs)
    p = sub.add_parser("memory", help="objects referenced in the cluster, and store use")
    p.add_argument("--address", default=None)
    p.add_argument("--limit", type=int, default=1000)
    p.set_defaults(fn=cmd_memory)
    p = sub.add_parser("timeline", help="write a Chrome trace of task execution")
    p.add_argument("--output", "-o", default=None, help="file (default: print the JSON)")
    p.add_argument("--address", default=None)
    p.set_defaults(fn=cmd_timeline)


def _common(p):
    p.add_argument("--address", default=None, help="session directory (default: auto)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--timeout", type=int, default=30)


def parse_filter(text):
    """"key=value" -> (key, "=", value); "key!=value" -> (key, "!=", value)."""
    if "!=" in text:
        key, _, value = text.partition("!=")
        pred = "!="
    elif "=" in text:
        key, _, value = text.partition("=")
        pred = "="
    else:
        raise ValueError(f"--filter {text!r}: expected KEY=VALUE or KEY!=VALUE, e.g. "
                         "state=RUNNING.")
    key, value = key.strip(), value.strip()
    if not key:
        raise ValueError(f"--filter {text!r}: the key is empty.")
    return key, pred, value


def _run(fn):
    from . import StateApiError
    try:
        return fn()
    except (StateApiError, ValueError) as exc:
        print(f"minray: {exc}", file=sys.stderr)
        return 1


def cmd_list(args):
    from .. import state

    def go():
        filters = [parse_filter(f) for f in args.filter]
        fn = getattr(state, "list_" + RESOURCES[args.resource])
        rows = fn(address=args.address, filters=filters, limit=args.limit,
                  timeout=args.timeout, detail=args.detail)
        dicts = [r.asdict() for r in rows]
        if not args.detail:
            schema = state.SCHEMAS[RESOURCES[args.resource]]
            cols = schema.columns(detail=False)
            dicts = [{k: d[k] for k in cols} for d in dicts]
        _print(dicts, args.format)
        return 0
    return _run(go)


def cmd_get(args):
    from .. import state

    def go():
        value = getattr(state, _GETTERS[args.resource])(args.id, address=args.address,
                                                        timeout=args.timeout)
        if value is None or value == []:
            print(f"minray: no {args.resource[:-1]} with id {args.id}", file=sys.stderr)
            return 1
        values = value if isinstance(value, list) else [value]
        _print([v.asdict() for v in values], "json" if args.format == "json" else "yaml")
        return 0
    return _run(go)


def cmd_summary(args):
    from .. import state

    def go():
        fn = getattr(state, "summarize_" + args.resource)
        s = fn(address=args.address, timeout=args.timeout)["cluster"]
        if args.format == "json":
            print(json.dumps(s, indent=2, default=str))
            return 0
        if args.resource == "tasks":
            print(f"======== Tasks Summary: {s['total_tasks']} tasks, "
                  f"{s['total_actor_tasks']} actor tasks, "
                  f"{s['total_actor_scheduled']} actors scheduled ========")
            rows = [{"FUNC_OR_CLASS_NAME": k, "STATE_COUNTS": _counts(v["state_counts"]),
                     "TYPE": v["type"]} for k, v in s["summary"].items()]
        elif args.resource == "actors":
            print(f"======== Actors Summary: {s['total_actors']} actors ========")
            rows = [{"CLASS_NAME": k, "STATE_COUNTS": _counts(v["state_counts"])}
                    for k, v in s["summary"].items()]
        else:
            print(f"======== Object Summary: {s['total_objects']} objects, "
                  f"{s['total_size_mb']:.2f} MiB ========")
            rows = [{"CALLSITE": k, "TOTAL_OBJECTS": v["total_objects"],
                     "TOTAL_SIZE_MB": round(v["total_size_mb"], 2),
                     "REF_TYPES": _counts(v["ref_type_counts"]),
                     "TASK_STATES": _counts(v["task_state_counts"])}
                    for k, v in s["summary"].items()]
        _print(rows, "table")
        return 0
    return _run(go)


def cmd_logs(args):
    from .. import state

    def go():
        targets = (args.filename, args.actor_id, args.task_id, args.pid, args.submission_id)
        if all(t is None for t in targets):
            for category, files in state.list_logs(address=args.address).items():
                print(f"{category}:")
                for name in files:
                    print(f"  {name}")
            return 0
        for chunk in state.get_log(address=args.address, filename=args.filename,
                                   actor_id=args.actor_id, task_id=args.task_id,
                                   pid=args.pid, submission_id=args.submission_id,
                                   suffix="err" if args.err else "out", tail=args.tail,
                                   follow=args.follow):
            sys.stdout.write(chunk)
            sys.stdout.flush()
        return 0
    return _run(go)


def cmd_memory(args):
    from .. import state

    def go():
        from ._client import connect
        objects = state.list_objects(address=args.address, limit=args.limit)
        client = connect(args.address)
        try:
            cluster = client.query("cluster", {})
        finally:
            client.close()
        store = cluster["object_store"]
        print("======== Object references ========")
        rows = [{"OBJECT_ID": o.object_id, "SIZE": _size(o.object_size),
                 "REFERENCE_TYPE": o.reference_type, "TASK_STATUS": o.task_status,
                 "TYPE": o.type, "PID": o.pid} for o in objects]
        _print(rows, "table")
        print(f"\n======== Object store ========\n"
              f"{store['num_objects']} objects in shared memory, "
              f"{store['shm_bytes'] / 2**20:.2f} MiB used of {store['capacity'] / 2**20:.0f} "
              f"MiB; spilled {store['spilled_bytes'] / 2**20:.2f} MiB "
              f"({store['num_spilled']} objects), restored {store['num_restored']}")
        return 0
    return _run(go)


def cmd_timeline(args):
    from . import timeline_events

    def go():
        events = timeline_events(address=args.address)
        doc = {"traceEvents": events, "displayTimeUnit": "ms"}
        if args.output:
            with open(args.output, "w") as f:
                json.dump(doc, f)
            print(f"minray: wrote {len(events)} events to {args.output} (open it in "
                  "chrome://tracing or https://ui.perfetto.dev)")
        else:
            print(json.dumps(doc))
        return 0
    return _run(go)


def _counts(d):
    return ", ".join(f"{k}: {v}" for k, v in sorted(d.items(), key=lambda kv: str(kv[0])))


def _size(n):
    if n is None or n < 0:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024


def _print(rows, fmt):
    if fmt == "json":
        print(json.dumps(rows, indent=2, default=str))
        return
    if fmt == "yaml":
        for row in rows:
            for k, v in row.items():
                print(f"{k}: {json.dumps(v, default=str) if isinstance(v, (dict, list)) else v}")
            print("---")
        return
    if not rows:
        print("No resource in the cluster")
        return
    cols = list(rows[0])
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(cols, widths)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, (dict, list)):
        text = json.dumps(v, default=str)
    else:
        text = str(v)
    return text if len(text) <= 60 else text[:57] + "..."
