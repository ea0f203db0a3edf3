"""minray.util.joblib: a joblib parallel backend that runs on minray actors.

    register_ray()                      -> joblib knows the backends "ray" and "minray"
    with joblib.parallel_backend("ray"):
        Parallel(n_jobs=-1)(delayed(f)(x) for x in xs)
          Parallel.configure  -> MinrayBackend.configure -> a minray Pool of n_jobs actors
          each batch of calls -> Pool.apply_async(batch) -> the batch's result, or its error,
                                 comes back to joblib through the callback

So scikit-learn's ``n_jobs`` (GridSearchCV, RandomForest, cross_val_score, ...) runs on
the cluster: ``n_jobs=-1`` means every CPU of the cluster, as in Ray's backend.  The
runtime is started (or joined through ``RAY_ADDRESS``) when it is not running yet.

Unlike Ray's backend, nothing in joblib is patched: the backend subclasses joblib's
documented ``ParallelBackendBase`` and drives ``minray.util.multiprocessing.Pool``
through its public methods.
"""

import logging
from typing import Any, NamedTuple

from .. import api as _api

logger = logging.getLogger(__name__)

__all__ = ["register_ray", "MinrayBackend"]


class _Outcome(NamedTuple):
    """What a finished batch hands joblib's callback: its value or its exception."""
    ok: bool
    value: Any


def _ensure_runtime():
    if not _api.is_initialized():
        logger.info("joblib backend: starting minray (or joining RAY_ADDRESS)")
        _api.init()


def _backend_class():
    # joblib is imported only when the backend is registered.
    from joblib._parallel_backends import AutoBatchingMixin, SequentialBackend
    from joblib.parallel import FallbackToBackend, ParallelBackendBase

    from .multiprocessing import Pool

    class MinrayBackend(AutoBatchingMixin, ParallelBackendBase):
        """joblib's batches run as calls on a minray Pool's actors.

        ``ray_remote_args`` (in ``parallel_backend("ray", ray_remote_args=...)``
        or ``Parallel(..., ray_remote_args=...)``) go to the pool's actors.

        Example::

            from minray.util.joblib import register_ray
            register_ray()
            with joblib.parallel_backend("ray"):
                joblib.Parallel(n_jobs=-1)(joblib.delayed(abs)(-i) for i in range(10))
        """

        supports_retrieve_callback = True
        supports_return_generator = True
        supports_timeout = True
        supports_inner_max_num_threads = False
        default_n_jobs = 1

        def __init__(self, nesting_level=None, inner_max_num_threads=None,
                     ray_remote_args=None, **kwargs):
            super().__init__(nesting_level=nesting_level,
                             inner_max_num_threads=inner_max_num_threads, **kwargs)
            self.ray_remote_args = ray_remote_args
            self._pool = None

        def effective_n_jobs(self, n_jobs):
            if n_jobs == 0:
                raise ValueError("n_jobs == 0 in Parallel has no meaning: use n_jobs=-1 "
                                 "for every CPU of the cluster, or a positive number")
            if n_jobs is None:
                return 1
            if n_jobs < 0:
                _ensure_runtime()
                cpus = int(_api.cluster_resources().get("CPU", 1))
                return max(cpus + 1 + n_jobs, 1)
            return n_jobs

        def configure(self, n_jobs=1, parallel=None, prefer=None, require=None,
                      ray_remote_args=None, **backend_kwargs):
            _ensure_runtime()
            n_jobs = self.effective_n_jobs(n_jobs)
            if n_jobs == 1:
                # As joblib's process backends do: one job runs in the caller.
                raise FallbackToBackend(SequentialBackend(nesting_level=self.nesting_level))
            self.parallel = parallel
            self._n_jobs = n_jobs
            if ray_remote_args is not None:
                self.ray_remote_args = ray_remote_args
            self._pool = Pool(processes=n_jobs, ray_remote_args=self.ray_remote_args)
            return n_jobs

        def submit(self, func, callback=None):
            def done(value):
                if callback is not None:
                    callback(_Outcome(True, value))

            def failed(error):
                if callback is not None:
                    callback(_Outcome(False, error))
            return self._pool.apply_async(func, (), callback=done, error_callback=failed)

        def retrieve_result_callback(self, out):
            if not out.ok:
                raise out.value
            return out.value

        def retrieve_result(self, out, timeout=None):
            return out.get(timeout=timeout)

        def terminate(self):
            if self._pool is not None:
                self._pool.terminate()
                self._pool.join()
                self._pool = None

        def abort_everything(self, ensure_ready=True):
            self.terminate()
            if ensure_ready:
                self.configure(n_jobs=self.parallel.n_jobs, parallel=self.parallel,
                               **self.parallel._backend_kwargs)

    return MinrayBackend


def _backend():
    """The backend class, built (and joblib imported) on first use."""
    cls = globals().get("MinrayBackend")
    if cls is None:
        cls = globals()["MinrayBackend"] = _backend_class()
    return cls


def __getattr__(name):
    if name == "MinrayBackend":
        return _backend()
    raise AttributeError(f"module 'minray.util.joblib' has no attribute {name!r}")


def register_ray():
    """Register the joblib backend under the names "ray" and "minray".

    Example::

        import joblib
        from minray.util.joblib import register_ray

        register_ray()
        with joblib.parallel_backend("ray"):
            search = GridSearchCV(SVC(), {"C": [0.1, 1, 10]}, n_jobs=-1).fit(X, y)
    """
    try:
        from joblib.parallel import register_parallel_backend
    except ImportError as exc:
        raise ImportError("minray.util.joblib needs joblib: pip install joblib") from exc
    backend = _backend()
    register_parallel_backend("ray", backend)
    register_parallel_backend("minray", backend)
