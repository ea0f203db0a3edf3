"""Message kinds, the whole protocol in one table.

Every frame is ``kind`` (one byte) + a pickled tuple.  Requests that expect an
answer carry a request id as their first element and are answered by REPLY
``(req_id, ok, value)``; ``ok`` False means ``value`` is an exception to raise.

Client (driver or worker core) -> node manager, request/reply:
    REQUEST: (req_id, method, args)   method names are the node manager's
                                      handler table (node_manager.NodeManager.handlers)
Client -> node manager, one-way notices:
    NOTICE:  (method, args)
Node manager -> client, pushed:
    PUSH:    (event, args)            lease revocations, actor state, object ready, logs

Submitter -> worker (task socket):
    TASK:       (task_id, fn_id, fn_blob|None, args_blob, arg_values, num_returns, opts)
    ACTOR_CALL: (task_id, method, args_blob, arg_values, num_returns, opts)
Worker -> submitter:
    DONE:       (task_id, results, contained)   results: list of blobs (serialization.py)
    GEN_ITEM:   (task_id, index, blob)          one item of a streaming generator
    STOLEN:     (task_ids,)                     pipelined tasks given back unrun, after
                                                the submitter asked (a task overran)
    VALUE:      (oid, owner, blob, nm_address)  for a submitter on another node: the value
                                                of a ref the worker owns and returned inside
                                                a result (its node manager cannot see ours),
                                                or blob None: ask the NM at nm_address

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

import os

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


class LeaseCancelled(Exception):
    """The answer to a lease request its client withdrew (cancel_lease_requests).

    Defined here, in an importable module: anything the node manager sends must
    unpickle in clients (the node manager itself runs as ``__main__``).
    """


KIND_NAMES = {v: k for k, v in dict(globals()).items() if isinstance(v, int) and k.isupper()}
