"""Local mode's actors: creation, calls, restarts, kill and death, in the caller's thread.

    create_actor -> ActorRecord (PENDING_CREATION) -> _construct -> ALIVE
    submit_actor_task -> _run_actor_call (under the actor's call lock) -> Outcome
    ray.kill / exit_actor / sys.exit / owner died -> _crash_actor or _mark_dead -> DEAD

A mixin of LocalClient (local/client.py): it uses the client's lock, objects,
blocked-call queue and resource accounting.  What a call's failure means
(application error, exit_actor(), sys.exit()) is decided by core/execution.py,
as in a worker process.
"""

import asyncio
import inspect
import os

from minray import exceptions
from minray._private.core import execution, ids, retry
from minray._private.head.tables import not_found_error
from minray._private.objects import serialization
from minray._private.local.records import (
    TaskContext, ArgFailed, Outcome, Blocked, ActorRecord, STREAMED,
    run_coroutine, merged_env, actor_repr)


class ActorsMixin:
    """LocalClient's actor methods (see the module docstring)."""

    # ================================================================= actors
    def create_actor(self, actor_id, cls_info, args, kwargs, opts, meta):
        self.drain_releases()
        prepared = self._prepare_args(args, kwargs)
        wire = opts.actor_wire()
        name = wire["name"]
        ns = wire["namespace"] or self.namespace
        with self.lock:
            if name:
                claim = self.named.claim(ns, name, actor_id, wire["get_if_exists"],
                                         self._alive)
                if not claim.created:
                    existing = claim.actor_id
                    a = self.actors[existing]
                    return ("existing", existing, a.meta, self._token_ref(existing))
            a = ActorRecord(actor_id, cls_info.obj, prepared, opts, meta, ns, self.actor_id)
            self.actors[actor_id] = a
        token = self._token_ref(actor_id)

        def run():
            if a.state == "DEAD":
                return   # killed (or its group removed) before it could start
            why = self._unschedulable(opts.resources)
            if why is not None:
                self._mark_dead(a, exceptions.ActorUnschedulableError(
                    f"The actor {a.class_name} cannot be scheduled: {why}"))
                return
            if self._pg_removed(opts.pg):
                self._mark_dead(a, exceptions.ActorDiedError(
                    f"The actor {actor_id.hex()} ({a.class_name}) cannot start: its "
                    "placement group was removed.", actor_id=actor_id.hex()))
                return
            a.charge = self._acquire(opts.resources, opts.pg)
            self._construct(a)
        self._run_or_block(Blocked(run, [r for _, r in prepared.arg_refs], opts.pg,
                                    opts.resources, creation=True, actor_id=actor_id),
                           f"the actor {a.class_name}")
        return ("created", actor_id, meta, token)

    def _construct(self, a):
        init_name = f"{a.class_name}.__init__"
        try:
            args, kwargs = self._load_args(a.prepared)
        except ArgFailed as failed:
            err = serialization.loads_inline(failed.blob)
            self._mark_dead(a, exceptions.ActorDiedError(
                f"The actor died because an argument of its creation task, {init_name}(), "
                f"failed:\n{err}", actor_id=a.actor_id.hex(), cause=err))
            return
        ctx = TaskContext(a.actor_id, init_name, a.opts.resources, actor_id=a.actor_id,
                           attempt=a.num_restarts, pg=a.opts.pg)
        with self._running(ctx, merged_env(self.env_vars, a.opts.env_vars), held=a.charge):
            try:
                if a.is_async:
                    a.loop = asyncio.new_event_loop()
                    instance = run_coroutine(a.loop, execution.construct_async(a.cls, args, kwargs))
                else:
                    instance = a.cls(*args, **kwargs)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                self._mark_dead(a, execution.creation_error(init_name, exc, a.actor_id.hex(),
                                                            os.getpid()))
                return
            finally:
                del args, kwargs
        a.actor = instance
        a.state = "ALIVE"

    def submit_actor_task(self, actor_id, method, args, kwargs, opts, token):
        self.drain_releases()
        task_id = ids.new_task_id()
        prepared = self._prepare_args(args, kwargs)

        def body():
            a = self.actors.get(actor_id)
            if a is None or a.state == "DEAD":
                cause = a.cause if a is not None else None
                return Outcome("error", error=cause or execution.error_blob(
                    exceptions.ActorDiedError(actor_id=actor_id.hex())))
            if method == "__ray_terminate__":
                outcome = self._values_outcome(method, None, opts.num_returns)
                self._exit_actor(a, "__ray_terminate__ was called")
                return outcome
            return self._run_actor_call(a, task_id, method, prepared, opts)
        return self._submit(task_id, opts.num_returns, prepared, body, "an actor call",
                            actor_id=actor_id)

    def _run_actor_call(self, a, task_id, method, prepared, opts):
        """Run one call; again while retry_exceptions allows it and max_task_retries
        lasts (core/retry.py's decision, as the process runtime's submitter makes it)."""
        retries_left = getattr(opts, "max_task_retries", 0) or 0
        while True:
            outcome, retryable = self._actor_call_once(a, task_id, method, prepared, opts)
            decision = retry.decide(retries_left, retryable)
            if not decision.retry or a.state == "DEAD":
                return outcome
            retries_left = decision.retries_left

    def _actor_call_once(self, a, task_id, method, prepared, opts):
        """(Outcome, whether its error may be retried)."""
        name = f"{a.class_name}.{method}"
        n = opts.num_returns
        try:
            args, kwargs = self._load_args(prepared)
        except ArgFailed as failed:
            return Outcome("error", error=failed.blob), False
        incarnation = a.incarnation
        ctx = TaskContext(task_id, name, a.opts.resources, actor_id=a.actor_id,
                           attempt=a.num_restarts, pg=a.opts.pg)
        items = []
        failure = None
        env = merged_env(self.env_vars, a.opts.env_vars)
        with a.call_lock, self._running(ctx, env, held=a.charge):
            try:
                fn = getattr(a.actor, method)
                if a.loop is not None:
                    result = run_coroutine(a.loop, self._async_call(fn, args, kwargs, n,
                                                                    items, name))
                else:
                    result = fn(*args, **kwargs)
                if n in ("streaming", "dynamic"):
                    if result is not STREAMED:
                        self._collect(result, items, name)
                    outcome = Outcome("stream", values=items)
                else:
                    outcome = self._values_outcome(name, result, n)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                failure = self._actor_call_failed(a, name, exc, opts.retry_exceptions)
                if failure is None:
                    raise
                incarnation = a.incarnation
            finally:
                del args, kwargs
        if failure is None and a.incarnation != incarnation and a.cause is not None:
            # Killed while this call ran (e.g. ray.kill on itself): the call is lost.
            return Outcome("error", error=a.cause), False
        if failure is None:
            return outcome, False
        blob = execution.error_blob(failure.error)
        if n == "streaming":
            return Outcome("stream", values=items + [(blob, ())]), False
        retryable = failure.kind == execution.APPLICATION_ERROR and failure.retryable
        return Outcome("error", error=blob), retryable

    def _actor_call_failed(self, a, name, exc, retry_exceptions):
        """What a failed actor call means (a Failure); ends the actor if the call exited it."""
        if not isinstance(exc, (Exception, SystemExit, execution.ActorExit)):
            return None
        failure = execution.classify(exc, name, os.getpid(), retry_exceptions,
                                     actor=execution.ActorIdentity(
                                         a.class_name, a.actor_id.hex(), actor_repr(a)))
        if failure.kind == execution.PROCESS_EXIT:
            # In a worker this ends the process: the actor restarts if it may.
            self._crash_actor(a, f"its process exited (sys.exit({exc.code!r}))")
        elif failure.kind == execution.ACTOR_EXIT:
            self._exit_actor(a, "exit_actor() was called")
        return failure

    async def _async_call(self, fn, args, kwargs, n, items, name):
        if n in ("streaming", "dynamic") and inspect.isasyncgenfunction(fn):
            await self._collect_async(fn(*args, **kwargs), items, name)
            return STREAMED
        return await execution.call_async(fn, args, kwargs)

    def get_actor(self, name, namespace):
        self.drain_releases()
        ns = namespace if namespace is not None else self.namespace
        with self.lock:
            actor_id = self.named.lookup(ns, name, self._alive)
            if actor_id is None:
                raise not_found_error(name, ns)
            meta = self.actors[actor_id].meta
        return actor_id, meta, self._token_ref(actor_id)

    def kill_actor(self, actor_id, no_restart=True):
        a = self.actors.get(actor_id)
        if a is None:
            raise ValueError(f"no actor with id {actor_id.hex()}")
        if a.state == "DEAD":
            return True
        if no_restart or a.state == "PENDING_CREATION":
            self._mark_dead(a, exceptions.ActorDiedError(
                f"The actor {actor_id.hex()} ({a.class_name}) was killed: ray.kill() was "
                "called on it.", actor_id=actor_id.hex()))
        else:
            self._crash_actor(a, "it was killed by ray.kill(no_restart=False)")
        return True

    def _crash_actor(self, a, why):
        """The actor's process died: restart it if it has restarts left, else it is dead."""
        if a.max_restarts == -1 or a.num_restarts < a.max_restarts:
            a.num_restarts += 1
            self._drop_instance(a)
            a.state = "RESTARTING"
            self._construct(a)
            return
        self._mark_dead(a, exceptions.ActorDiedError(
            f"The actor {a.actor_id.hex()} ({a.class_name}) died: {why}; restarts used "
            f"{a.num_restarts} of max_restarts={a.max_restarts}.",
            actor_id=a.actor_id.hex()))

    def _exit_actor(self, a, reason):
        self._mark_dead(a, exceptions.ActorDiedError(
            f"The actor {a.actor_id.hex()} exited: {reason}", actor_id=a.actor_id.hex()))

    def _mark_dead(self, a, cause):
        with self.lock:
            if a.state == "DEAD":
                return
            a.state = "DEAD"
            a.cause = execution.error_blob(cause)
            self.named.release(a.namespace, a.name, a.actor_id)
            charge, a.charge = a.charge, None
            owned = [o for o in self.actors.values()
                     if o.owner == a.actor_id and not o.detached and o.state != "DEAD"]
        self._drop_instance(a)
        if charge is not None:
            self._release(charge)
        for o in owned:   # an actor's non-detached children die with it (ownership)
            self._mark_dead(o, exceptions.ActorDiedError(
                f"The actor {o.actor_id.hex()} ({o.class_name}) died: the actor that "
                f"created it ({a.class_name}) died.", actor_id=o.actor_id.hex()))
        self._pump()   # calls waiting behind it now fail with the cause

    def _drop_instance(self, a):
        a.incarnation += 1
        instance, a.actor = a.actor, None
        loop, a.loop = a.loop, None
        del instance  # the actor's own refs and handles go with it
        if loop is not None and not loop.is_running():
            loop.close()
