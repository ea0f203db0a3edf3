"""Which modules a worker may have the zygote preload (node/zygote.py preload_request)."""

import pytest

from minray._private.node import zygote

F, T = False, True


@pytest.mark.parametrize("names, loaded, expected", [
    (["asyncio"], set(), ("asyncio",)),               # the first async actor asks
    (["asyncio"], {"asyncio"}, ()),                   # asked once per node
    (["asyncio", "asyncio"], set(), ("asyncio",)),    # no duplicates in one request
    (["os", "asyncio"], set(), ("asyncio",)),         # only ON_DEMAND names
    (["user_module"], set(), ()),                     # never user code: the zygote forks
    ([], set(), ()),
])
def test_preload_request(names, loaded, expected):
    assert zygote.preload_request(names, loaded) == expected


def test_idle_runtime_does_not_preload_asyncio():
    # asyncio (with ssl) is 3.3 MiB of every idle runtime's memory: on demand only.
    import inspect
    default = inspect.signature(zygote.zygote_main).parameters["preload"].default
    assert "asyncio" not in default and "asyncio" in zygote.ON_DEMAND
