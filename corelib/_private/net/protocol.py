"""Message kinds, the whole protocol in one table.

Every frame is ``kind`` (one byte) + a pickled tuple.  Requests that expect an
answer carry a request id as their first element and are answered by REPLY
``(req_id, ok, value)``; ``ok`` False means ``value`` is an exception to raise.

Each kind's fields are the record of the same name below (``Request`` for
REQUEST, ...): a ``typing.NamedTuple`` that documents them, in order, with their
types. Frames carry plain tuples in that order, never the records themselves:
pickling a NamedTuple costs ~13x a tuple (its class travels by reference through
copyreg), which the hot path (TASK, DONE, ACTOR_CALL) cannot pay, and the node
manager refuses a REQUEST or NOTICE that is not a plain tuple (node/manager.py
``_malformed``). So a record is the schema that tests/core/test_wire_records.py
checks every sent frame against, and ``Done._make(msg)`` gives a reader named
fields where the cost does not matter.

Client (driver or worker core) -> node manager, request/reply:
    REQUEST: Request(req_id, method, args)   method names are the node manager's
                                      handler table (node/manager.py NodeManager.handlers)
Client -> node manager, one-way notices:
    NOTICE:  Notice(method, args)
Node manager -> client, pushed:
    PUSH:    Push(event, args)         lease revocations, actor state, object ready, logs

Submitter -> worker (task socket):
    HELLO:      Hello(client_id)       the first message on a task socket
    TASK:       Task(task_id, fn_id, fn_blob|None, args_blob, arg_values, num_returns,
                     opts, gpu_ids)     opts: an OptionsWire
    ACTOR_CALL: ActorCall(task_id, method, args_blob, arg_values, num_returns, opts)
    CANCEL:     Cancel(task_id, recursive)   cancel one call queued at an actor
Worker -> submitter:
    DONE:       Done(task_id, results, contained, retryable, flags)
                                      results: list of blobs (serialization.py);
                                      flags: DONE_BLOCKED | DONE_RETIRING
    GEN_ITEM:   GenItem(task_id, index, blob, contained)   one streamed item
    STOLEN:     Stolen(task_ids)       pipelined tasks given back unrun, after
                                      the submitter asked (a task overran)
    VALUE:      Value(oid, owner, blob, nm_address)  for a submitter on another node:
                                      the value of a ref the worker owns and returned
                                      inside a result (its node manager cannot see
                                      ours), or blob None: ask the NM at nm_address

Node manager -> node manager (TCP, token proven; the puller is a client there):
    REQUEST open_stream(oid) -> (port, ticket, size)   a node pulls a copy of a large
                                                object in the server's store: the server
                                                pins it and offers it on its object port,
                                                where the puller sends the ticket (after
                                                the token handshake) and reads size bytes
                                                (objects/transfer.py)
    REQUEST borrow / NOTICE unborrow ([token],) a node's handles of an actor kept there
    PUSH    free_copy(oid)                      the server freed an object the puller
                                                copied: drop that copy too
A large value crosses nodes as the blob S<size>@ip:port (serialization.remote_blob):
"pull it from the node manager at ip:port".
"""

from __future__ import annotations

import os
from minray._private.named import NamedTuple

# Objects up to this size cross nodes inline, in the message that needs them; larger
# ones stay in their node's store and the node that needs one pulls a copy, mapping
# this many bytes of it at a time (node/manager.py, "copies from other nodes").
def _chunk_bytes(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 4096:
        raise ValueError("MINRAY_TRANSFER_CHUNK_BYTES must be a whole number of bytes, at "
                         f"least 4096 (default 8388608), got {text!r}.")
    return value


TRANSFER_CHUNK_BYTES = _chunk_bytes(os.environ.get("MINRAY_TRANSFER_CHUNK_BYTES", 8 << 20))

REQUEST = 1
REPLY = 2
NOTICE = 3
PUSH = 4

TASK = 10
ACTOR_CALL = 11
DONE = 12
GEN_ITEM = 13
HELLO = 14   # submitter -> worker: (client_id,) first message on a task socket
STOLEN = 15  # worker -> submitter: (task_ids,) queued tasks it gave back unrun
VALUE = 16   # worker -> remote submitter: (oid, owner, blob|None, nm_address)
CANCEL = 17  # submitter -> actor: (task_id, recursive) cancel one of its calls


class Request(NamedTuple):
    req_id: int             # answered by a Reply with the same id (0: no answer wanted)
    method: str             # a name in the node manager's handler table
    args: tuple


class Reply(NamedTuple):
    req_id: int
    ok: bool                # False: value is the exception to raise
    value: Any


class Notice(NamedTuple):
    method: str
    args: tuple


class Push(NamedTuple):
    event: str
    args: Any


class Hello(NamedTuple):
    client_id: bytes


class OptionsWire(NamedTuple):
    """A task's options as they travel (options.Resolved.wire)."""
    name: Optional[str]
    resources: dict
    retry_exceptions: Union[bool, bytes]   # bytes: a pickled tuple of classes
    concurrency_group: Optional[str]
    max_calls: int
    pg_id: Optional[bytes]
    capture_child_tasks: bool


class Task(NamedTuple):
    task_id: bytes
    fn_id: bytes
    fn_blob: Optional[bytes]          # None: the worker has the function cached
    args_blob: Any
    arg_values: Any
    num_returns: Union[int, str]      # "streaming" / "dynamic" too
    opts: tuple                       # an OptionsWire
    gpu_ids: Any


class ActorCall(NamedTuple):
    task_id: bytes
    method: str
    args_blob: Any
    arg_values: Any
    num_returns: Union[int, str]
    opts: tuple                       # an OptionsWire


class Cancel(NamedTuple):
    task_id: bytes
    recursive: bool


DONE_BLOCKED = 1     # Done.flags: the worker was blocked in get() inside the task
DONE_RETIRING = 2    # Done.flags: the worker retires after this task (max_calls)


class Done(NamedTuple):
    task_id: bytes
    results: List[Any]                # one blob per return value
    contained: List[Any]              # per result: the refs inside it (or False)
    retryable: bool
    flags: int


class GenItem(NamedTuple):
    task_id: bytes
    index: int
    blob: Any
    contained: Any


class Stolen(NamedTuple):
    task_ids: List[bytes]


class Value(NamedTuple):
    oid: bytes
    owner: bytes
    blob: Any                         # None: ask the node manager at nm_address
    nm_address: Optional[str]


# kind -> its record (the wire test checks every frame sent against this table).
RECORDS = {REQUEST: Request, REPLY: Reply, NOTICE: Notice, PUSH: Push, HELLO: Hello,
           TASK: Task, ACTOR_CALL: ActorCall, CANCEL: Cancel, DONE: Done,
           GEN_ITEM: GenItem, STOLEN: Stolen, VALUE: Value}


class LeaseCancelled(Exception):
    """The answer to a lease request its client withdrew (cancel_lease_requests).

    Defined here, in an importable module: anything the node manager sends must
    unpickle in clients (the node manager itself runs as ``__main__``).
    """


KIND_NAMES = {v: k for k, v in dict(globals()).items()
              if isinstance(v, int) and k.isupper() and 0 < v < 256 and not k.startswith("DONE_")}
