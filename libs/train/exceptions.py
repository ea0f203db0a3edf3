"""Train's errors, as in Ray 2.60: ``trainer.fit()`` raises a ``TrainingFailedError``,
either a ``WorkerGroupError`` (a worker's loop raised, or its process died) or
a ``ControllerError`` (the run itself could not go on)."""


class TrainingFailedError(RuntimeError):
    """Training failed; ``str(err)`` holds the failing workers' tracebacks::

        try:
            trainer.fit()
        except train.TrainingFailedError as err:
            print(err)
    """


class WorkerGroupError(TrainingFailedError):
    """One or more workers failed: ``worker_failures`` maps world rank -> exception."""

    def __init__(self, error_message, worker_failures):
        super().__init__("Training failed due to worker errors:\n" + error_message)
        self._error_message = error_message
        self.worker_failures = worker_failures

    def __reduce__(self):
        return (self.__class__, (self._error_message, self.worker_failures))


class ControllerError(TrainingFailedError):
    """The run failed outside the workers: ``controller_failure`` is the cause."""

    def __init__(self, controller_failure):
        super().__init__("Training failed due to controller error:\n" + str(controller_failure))
        self.controller_failure = controller_failure

    def __reduce__(self):
        return (self.__class__, (self.controller_failure,))
