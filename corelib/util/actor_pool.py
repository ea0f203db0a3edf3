"""ActorPool: spread work over a fixed set of actors, one call per actor at a time.

    submit(fn, v) -> an idle actor?  yes: fn(actor, v) -> ObjectRef, tracked by index
                                     no:  queued until get_next* frees an actor
    get_next()           -> results in submission order
    get_next_unordered() -> whichever result is ready first

An actor is busy from the moment ``fn(actor, value)`` is called until its
result has been handed back by ``get_next``/``get_next_unordered``; then it
takes the oldest queued submission.  The semantics (and error messages) follow
``ray.util.ActorPool``.
"""

from .. import api as _api
from .. import exceptions as _exceptions


class ActorPool:
    """A fixed pool of actors that ``map`` / ``submit`` spread work over.

    Example::

        @ray.remote
        class Doubler:
            def double(self, v):
                return 2 * v

        pool = ActorPool([Doubler.remote(), Doubler.remote()])
        assert list(pool.map(lambda a, v: a.double.remote(v), [1, 2, 3])) == [2, 4, 6]
    """

    def __init__(self, actors):
        self._idle_actors = list(actors)
        self._future_to_actor = {}     # future key -> (submission index, actor)
        self._index_to_future = {}     # submission index -> future (ref or list of refs)
        self._next_task_index = 0
        self._next_return_index = 0
        self._pending_submits = []     # (fn, value) waiting for an idle actor

    # ------------------------------------------------------------------ map
    def map(self, fn, values):
        """Apply ``fn(actor, value)`` over ``values``; iterate the results in order.

        Results not yet fetched from earlier submissions are dropped first.

        Example::

            list(pool.map(lambda a, v: a.double.remote(v), [1, 2, 3])) == [2, 4, 6]
        """
        self._drop_unfetched(ordered=True)
        for v in values:
            self.submit(fn, v)

        def results():
            while self.has_next():
                yield self.get_next()
        return results()

    def map_unordered(self, fn, values):
        """Like ``map``, but yields each result as soon as it is ready.

        Example::

            sorted(pool.map_unordered(lambda a, v: a.double.remote(v), [1, 2])) == [2, 4]
        """
        self._drop_unfetched(ordered=False)
        for v in values:
            self.submit(fn, v)

        def results():
            while self.has_next():
                yield self.get_next_unordered()
        return results()

    def _drop_unfetched(self, ordered):
        # Ray's map() discards what earlier submissions left unfetched.
        while self.has_next():
            try:
                if ordered:
                    self.get_next(timeout=0, ignore_if_timedout=True)
                else:
                    self.get_next_unordered(timeout=0, ignore_if_timedout=True)
            except TimeoutError:
                pass

    # --------------------------------------------------------------- submit
    def submit(self, fn, value):
        """Run ``fn(actor, value)`` on an idle actor now, or once one is free.

        Example::

            pool.submit(lambda a, v: a.double.remote(v), 1)
            assert pool.get_next() == 2
        """
        if not self._idle_actors:
            self._pending_submits.append((fn, value))
            return
        actor = self._idle_actors.pop()
        future = fn(actor, value)
        self._future_to_actor[_key(future)] = (self._next_task_index, actor)
        self._index_to_future[self._next_task_index] = future
        self._next_task_index += 1

    def has_next(self):
        """True while some submitted result has not been returned yet."""
        return bool(self._future_to_actor)

    # ---------------------------------------------------------------- results
    def get_next(self, timeout=None, ignore_if_timedout=False):
        """The next result in submission order; waits up to ``timeout`` seconds.

        Raises StopIteration when nothing is pending, TimeoutError on timeout
        (with ``ignore_if_timedout=True`` the late task is skipped for good).

        Example::

            pool.submit(lambda a, v: a.double.remote(v), 1)
            pool.submit(lambda a, v: a.double.remote(v), 2)
            assert (pool.get_next(), pool.get_next()) == (2, 4)
        """
        if not self.has_next():
            raise StopIteration("No more results to get")
        if self._next_return_index >= self._next_task_index:
            raise ValueError("It is not allowed to call get_next() after "
                             "get_next_unordered().")
        future = self._index_to_future[self._next_return_index]
        timed_out = False
        if timeout is not None:
            ready, _ = _api.wait(_refs(future), num_returns=len(_refs(future)),
                                 timeout=timeout)
            if not ready or len(ready) < len(_refs(future)):
                if not ignore_if_timedout:
                    raise TimeoutError("Timed out waiting for result")
                timed_out = True
        del self._index_to_future[self._next_return_index]
        self._next_return_index += 1
        _, actor = self._future_to_actor.pop(_key(future))
        if timed_out:
            self._return_actor(actor)
            raise TimeoutError(f"Timed out waiting for result. The task {future} has "
                               "been ignored.")
        return self._get_result(future, actor)

    def get_next_unordered(self, timeout=None, ignore_if_timedout=False):
        """Any ready result (the first to finish); waits up to ``timeout`` seconds.

        Example::

            pool.submit(lambda a, v: a.double.remote(v), 1)
            pool.submit(lambda a, v: a.double.remote(v), 2)
            assert {pool.get_next_unordered(), pool.get_next_unordered()} == {2, 4}
        """
        if not self.has_next():
            raise StopIteration("No more results to get")
        # One representative ref per future: a multi-return call's refs all
        # complete together.
        by_ref = {_refs(k)[0]: k for k in self._future_to_actor}
        ready, _ = _api.wait(list(by_ref), num_returns=1, timeout=timeout)
        timed_out = False
        if ready:
            key = by_ref[ready[0]]
        else:
            if not ignore_if_timedout:
                raise TimeoutError("Timed out waiting for result")
            timed_out = True
            key = next(iter(self._future_to_actor))
        index, actor = self._future_to_actor.pop(key)
        future = self._index_to_future.pop(index)
        self._next_return_index = max(self._next_return_index, index + 1)
        if timed_out:
            self._return_actor(actor)
            raise TimeoutError(f"Timed out waiting for result. The task {future} has "
                               "been ignored.")
        return self._get_result(future, actor)

    def _get_result(self, future, actor):
        alive = True
        try:
            return _api.get(future)
        except _exceptions.ActorDiedError:
            # A dead actor leaves the pool, or submit() would keep picking it.
            alive = False
            raise
        finally:
            self._return_actor(actor, alive)

    def _return_actor(self, actor, alive=True):
        if alive:
            self._idle_actors.append(actor)
        if self._pending_submits and self._idle_actors:
            self.submit(*self._pending_submits.pop(0))

    # ------------------------------------------------------------ membership
    def has_free(self):
        """True if an actor is idle and no submission is waiting for one."""
        return bool(self._idle_actors) and not self._pending_submits

    def pop_idle(self):
        """Take an idle actor out of the pool; None if none is free.

        Example::

            actor = pool.pop_idle()
        """
        if self.has_free():
            return self._idle_actors.pop()
        return None

    def push(self, actor):
        """Add ``actor`` to the pool (it then takes a queued submission, if any).

        Raises ValueError if the actor is already in this pool.
        """
        busy = [a for _, a in self._future_to_actor.values()]
        if actor in self._idle_actors or actor in busy:
            raise ValueError("Actor already belongs to current ActorPool")
        self._return_actor(actor)


def _key(future):
    return tuple(future) if isinstance(future, list) else future


def _refs(future):
    if isinstance(future, (list, tuple)):
        return list(future)
    return [future]
