"""``minray job ...``: the job subcommands of the minray CLI.

    minray job submit [--address URL] [--working-dir DIR] [--runtime-env-json JSON]
                      [--submission-id ID] [--no-wait] -- python script.py
    minray job status ID | logs [--follow] ID | stop [--no-wait] ID | list | delete ID

Without --address: RAY_API_SERVER_ADDRESS / RAY_ADDRESS / MINRAY_ADDRESS when
one is an http(s):// URL, else the head on this machine, else
http://127.0.0.1:8265.
"""

import argparse
import asyncio
import json
import re
import shlex
import sys
import time

from .models import JobStatus
from .sdk import JobSubmissionClient

RULE = "-" * 42
_OPERATOR = re.compile(r"^(&&|\|\||\||;|&|\d*[<>]{1,2}(&\d+)?)$")


def _client(args):
    headers = json.loads(args.headers) if args.headers else None
    verify = args.verify
    if isinstance(verify, str) and verify.lower() in ("true", "false"):
        verify = verify.lower() == "true"
    return JobSubmissionClient(args.address, headers=headers, verify=verify)


def _entrypoint(words):
    if words and words[0] == "--":
        words = words[1:]
    if len(words) == 1:
        return words[0]
    # Ray joins the words with spaces. Quote each word instead (the local shell has
    # expanded them already), so `-- python -c "print(1)"` keeps working; words that
    # are shell operators (`&&`, `|`, `>`, `2>&1`) stay shell syntax.
    return " ".join(w if _OPERATOR.match(w) else shlex.quote(w) for w in words)


async def _stream(client, sid):
    async for chunk in client.tail_job_logs(sid):
        sys.stdout.write(chunk)
        sys.stdout.flush()


def _follow(client, sid):
    try:
        asyncio.run(_stream(client, sid))
    except KeyboardInterrupt:
        print(f"\nStopped following the logs; job '{sid}' keeps running "
              f"(minray job stop {sid} stops it).", file=sys.stderr)
        return False
    return True


def _load_runtime_env(args):
    runtime_env = {}
    if args.runtime_env:
        with open(args.runtime_env) as f:
            text = f.read()
        try:
            runtime_env = json.loads(text)
        except ValueError:
            import yaml
            runtime_env = yaml.safe_load(text) or {}
    if args.runtime_env_json:
        runtime_env = json.loads(args.runtime_env_json)
    if not isinstance(runtime_env, dict):
        raise ValueError(f"the runtime_env must be a dict, got {runtime_env!r}")
    if args.working_dir:
        runtime_env["working_dir"] = args.working_dir
    return runtime_env


def _report(client, sid):
    info = client.get_job_info(sid)
    print(RULE)
    if info.status == JobStatus.SUCCEEDED:
        print(f"Job '{sid}' succeeded")
    elif info.status == JobStatus.STOPPED:
        print(f"Job '{sid}' was stopped")
    elif info.status == JobStatus.FAILED:
        print(f"Job '{sid}' failed")
        print(f"Status message: {info.message}")
    else:
        print(f"Job '{sid}' is {info.status}")
    print(RULE)
    return 0 if info.status == JobStatus.SUCCEEDED else 1


def cmd_submit(args):
    entrypoint = _entrypoint(args.entrypoint)
    if not entrypoint.strip():
        print("minray job submit: give the entrypoint after '--', e.g. "
              "minray job submit -- python script.py", file=sys.stderr)
        return 2
    client = _client(args)
    sid = client.submit_job(
        entrypoint=entrypoint, submission_id=args.submission_id,
        runtime_env=_load_runtime_env(args),
        metadata=json.loads(args.metadata_json) if args.metadata_json else None,
        entrypoint_num_cpus=args.entrypoint_num_cpus,
        entrypoint_num_gpus=args.entrypoint_num_gpus,
        entrypoint_memory=args.entrypoint_memory,
        entrypoint_resources=(json.loads(args.entrypoint_resources)
                              if args.entrypoint_resources else None))
    addr = client.get_address()
    print(RULE)
    print(f"Job '{sid}' submitted successfully")
    print(RULE)
    print("Next steps")
    print(f"  Query the logs of the job:    minray job logs --address {addr} {sid}")
    print(f"  Query the status of the job:  minray job status --address {addr} {sid}")
    print(f"  Request the job to be stopped: minray job stop --address {addr} {sid}")
    print(flush=True)
    if args.no_wait:
        return 0
    print("Tailing logs until the job exits (disable with --no-wait):", flush=True)
    if not _follow(client, sid):
        return 130
    return _report(client, sid)


def cmd_status(args):
    client = _client(args)
    info = client.get_job_info(args.submission_id)
    print(f"Status for job '{args.submission_id}': {info.status}")
    if info.message:
        print(f"Status message: {info.message}")
    return 0


def cmd_logs(args):
    client = _client(args)
    if args.follow:
        return 0 if _follow(client, args.submission_id) else 130
    sys.stdout.write(client.get_job_logs(args.submission_id))
    sys.stdout.flush()
    return 0


def cmd_stop(args):
    client = _client(args)
    sid = args.submission_id
    if not client.stop_job(sid):
        print(f"Job '{sid}' had already finished: {client.get_job_status(sid)}")
        return 0
    print(f"Requested the job '{sid}' to stop")
    if args.no_wait:
        return 0
    while True:
        status = client.get_job_status(sid)
        if status.is_terminal():
            print(f"Job '{sid}' has exited: {status}")
            return 0
        time.sleep(0.2)


def cmd_list(args):
    client = _client(args)
    jobs = sorted(client.list_jobs(), key=lambda j: j.start_time or 0)
    if not jobs:
        print("No jobs.")
        return 0
    width = max(len(j.submission_id or "") for j in jobs)
    print(f"{'SUBMISSION ID':<{width}}  {'STATUS':<9}  {'STARTED':<19}  ENTRYPOINT")
    for j in jobs:
        started = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(j.start_time / 1000))
                   if j.start_time else "")
        print(f"{j.submission_id:<{width}}  {j.status.value:<9}  {started:<19}  {j.entrypoint}")
    return 0


def cmd_delete(args):
    client = _client(args)
    client.delete_job(args.submission_id)
    print(f"Job '{args.submission_id}' deleted successfully")
    return 0


def _run(fn):
    def wrapped(args):
        try:
            return fn(args)
        except (RuntimeError, ConnectionError, ValueError, OSError) as exc:
            print(f"minray job {args.job_command}: {exc}", file=sys.stderr)
            return 1
    return wrapped


def add_parser(subparsers, fmt=argparse.HelpFormatter):
    """Add ``job`` and its subcommands to the minray CLI's subparsers.

    ``fmt`` is the CLI's help formatter class (scripts.py passes its own, so this
    module need not import the CLI that imports it).
    """
    job = subparsers.add_parser("job", help="submit and manage jobs on a head node",
                                formatter_class=fmt)
    sub = job.add_subparsers(dest="job_command", required=True)

    def common(p):
        p.add_argument("--address", default=None,
                       help="the head's job server, e.g. http://127.0.0.1:8265 (default: "
                            "$RAY_ADDRESS if an http URL, else the head on this machine)")
        p.add_argument("--headers", default=None,
                       help='JSON headers for every request, e.g. \'{"Authorization": '
                            '"Bearer <token>"}\' (default: the cluster token from '
                            '$MINRAY_CLUSTER_TOKEN or the local head)')
        p.add_argument("--verify", default=True, help="TLS verification: true, false or a "
                       "CA bundle path")
        return p

    p = common(sub.add_parser("submit", help="submit a job; wait for it and stream its logs",
                              formatter_class=fmt))
    p.add_argument("--submission-id", "--job-id", dest="submission_id", default=None,
                   help="the job's id (default: a new raysubmit_... id)")
    p.add_argument("--runtime-env", default=None, help="a runtime_env YAML or JSON file")
    p.add_argument("--runtime-env-json", default=None, help="the runtime_env as JSON")
    p.add_argument("--metadata-json", default=None, help="JSON metadata kept with the job")
    p.add_argument("--working-dir", default=None,
                   help="a local directory uploaded as the job's working directory")
    p.add_argument("--entrypoint-num-cpus", type=float, default=None,
                   help="CPUs reserved for the entrypoint")
    p.add_argument("--entrypoint-num-gpus", type=float, default=None,
                   help="GPUs reserved for the entrypoint")
    p.add_argument("--entrypoint-memory", type=int, default=None,
                   help="bytes of memory reserved for the entrypoint")
    p.add_argument("--entrypoint-resources", default=None, help="JSON resources dict")
    p.add_argument("--no-wait", action="store_true",
                   help="return once submitted instead of streaming the logs")
    p.add_argument("entrypoint", nargs="*", metavar="-- ENTRYPOINT",
                   help="the shell command to run, after '--'")
    p.set_defaults(fn=_run(cmd_submit))
    for name, fn, help_ in (("status", cmd_status, "a job's status"),
                            ("logs", cmd_logs, "a job's logs"),
                            ("stop", cmd_stop, "stop a job"),
                            ("delete", cmd_delete, "forget a finished job")):
        p = common(sub.add_parser(name, help=help_, formatter_class=fmt))
        p.add_argument("submission_id", help="the job's id")
        if name == "logs":
            p.add_argument("-f", "--follow", action="store_true",
                           help="keep streaming until the job exits")
        if name == "stop":
            p.add_argument("--no-wait", action="store_true",
                           help="return once asked instead of waiting for it to stop")
        p.set_defaults(fn=_run(fn))
    p = common(sub.add_parser("list", help="every job on the head", formatter_class=fmt))
    p.set_defaults(fn=_run(cmd_list))
    return job
