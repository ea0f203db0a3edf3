"""``@serve.ingress(app)``: a FastAPI (or any ASGI) app served by a deployment.

    app = FastAPI()

    @serve.deployment
    @serve.ingress(app)
    class Model:
        @app.get("/")
        def predict(self, x: int) -> int: return 2 * x

The routes were declared on plain functions with ``self`` as their first
parameter; inside each replica ``bind_asgi_app`` rebuilds those routes around the
replica's instance, so FastAPI never sees ``self`` as a query parameter.
"""

import functools
import inspect


def _register_state_pickling():
    """starlette's State recurses in __getattr__ while being unpickled; an app that
    travels by value (a class defined in __main__) needs it pickled as a dict."""
    try:
        import copyreg

        from starlette.datastructures import State
    except ImportError:
        return
    copyreg.pickle(State, lambda s: (State, (dict(s._state),)))


_register_state_pickling()


def ingress(app):
    """Mark a deployment class as served by the ASGI ``app`` (Ray's ``serve.ingress``)."""
    if not callable(app):
        raise TypeError(f"serve.ingress takes an ASGI app (FastAPI(), Starlette(), ...), got "
                        f"{type(app).__name__}.")

    def decorate(cls):
        if not inspect.isclass(cls):
            raise TypeError("@serve.ingress decorates a class; put it under @serve.deployment.")
        cls.__serve_asgi_app__ = app
        return cls
    return decorate


def _bound_endpoint(fn, instance):
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())[1:]
    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def endpoint(*args, **kwargs):
            return await fn(instance, *args, **kwargs)
    else:
        @functools.wraps(fn)
        def endpoint(*args, **kwargs):
            return fn(instance, *args, **kwargs)
    endpoint.__signature__ = sig.replace(parameters=params)
    del endpoint.__wrapped__      # FastAPI must read __signature__, not the original
    return endpoint


def bind_asgi_app(cls, instance):
    """The class's ASGI app with its method routes bound to ``instance``."""
    app = cls.__serve_asgi_app__
    try:
        from fastapi.routing import APIRoute
    except ImportError:  # not FastAPI: a plain ASGI app is served as is
        return app
    # Match by qualified name, not identity: the class may have travelled by value
    # (defined in a script's __main__) while the app's routes hold other copies.
    methods = {f"{cls.__qualname__}.{k}": v
               for k, v in inspect.getmembers(cls, inspect.isfunction)}
    routes = getattr(getattr(app, "router", None), "routes", None)
    if routes is None:
        return app
    init_params = [p for p in inspect.signature(APIRoute.__init__).parameters
                   if p not in ("self", "path", "endpoint")]
    for i, route in enumerate(routes):
        fn = methods.get(getattr(route.endpoint, "__qualname__", None))
        if isinstance(route, APIRoute) and fn is not None:
            kwargs = {p: getattr(route, p) for p in init_params if hasattr(route, p)}
            if "methods" in kwargs and kwargs["methods"] is not None:
                kwargs["methods"] = sorted(kwargs["methods"])
            routes[i] = APIRoute(route.path, _bound_endpoint(fn, instance), **kwargs)
    return app
