"""``RLlibCallback``: hooks into an algorithm's life (override what you need).

    class CountLongEpisodes(RLlibCallback):
        def on_episode_end(self, *, episode, **kwargs):
            if len(episode) > 100:
                episode.custom_data["long"] = True
        def on_train_result(self, *, algorithm, result, **kwargs):
            result["my_metric"] = 1.0

Algorithm-side hooks run in the driver; episode and sample hooks run inside
the env runners (each runner has its own instance).
"""


class RLlibCallback:
    def on_algorithm_init(self, *, algorithm, metrics_logger=None, **kwargs):
        pass

    def on_train_result(self, *, algorithm, result, metrics_logger=None, **kwargs):
        pass

    def on_evaluate_start(self, *, algorithm, metrics_logger=None, **kwargs):
        pass

    def on_evaluate_end(self, *, algorithm, evaluation_metrics, metrics_logger=None, **kwargs):
        pass

    def on_checkpoint_loaded(self, *, algorithm, **kwargs):
        pass

    def on_episode_start(self, *, episode, env_runner=None, env=None, env_index=0, **kwargs):
        pass

    def on_episode_end(self, *, episode, env_runner=None, env=None, env_index=0, **kwargs):
        pass

    def on_sample_end(self, *, env_runner=None, samples=None, **kwargs):
        pass


DefaultCallbacks = RLlibCallback

__all__ = ["DefaultCallbacks", "RLlibCallback"]
