"""One HTTP server for bench/serve_compare.py: minray Serve, Ray Serve or plain aiohttp.

    python -m bench.serve_workloads --backend minray|ray|plain --workload noop|sleep1ms --port P

Prints READY once the server answers, then serves until stdin closes (the
comparison closes it) or SIGTERM, and shuts its backend down.  minray and Ray
run the very same deployment code: only the import differs.
"""

import argparse
import asyncio
import signal
import sys
import threading


def serve_backend(backend, workload, port):
    if backend == "ray":
        import ray
        from ray import serve
    else:
        import minray as ray
        from minray import serve

    @serve.deployment(max_ongoing_requests=64)
    class NoOp:
        async def __call__(self, request):
            return "ok"

    @serve.deployment(max_ongoing_requests=64)
    class Sleep1ms:
        async def __call__(self, request):
            await asyncio.sleep(0.001)
            return "ok"

    ray.init(num_cpus=2, **({"include_dashboard": False, "log_to_driver": False}
                            if backend == "ray" else {}))
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    deployment = NoOp if workload == "noop" else Sleep1ms
    serve.run(deployment.bind(), name="bench", route_prefix="/")
    print("READY", flush=True)
    _wait_for_stop()
    serve.shutdown()
    ray.shutdown()


def serve_plain(workload, port):
    from aiohttp import web

    async def noop(request):
        return web.Response(text="ok")

    async def sleep1ms(request):
        await asyncio.sleep(0.001)
        return web.Response(text="ok")

    async def main():
        server = web.Server(noop if workload == "noop" else sleep1ms, access_log=None)
        loop = asyncio.get_running_loop()
        listener = await loop.create_server(server, "127.0.0.1", port, reuse_address=True,
                                            backlog=1024)
        print("READY", flush=True)
        await loop.run_in_executor(None, _wait_for_stop)
        listener.close()
        await server.shutdown(1.0)
    asyncio.run(main())


def _wait_for_stop():
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set()) if \
        threading.current_thread() is threading.main_thread() else None
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["minray", "ray", "plain"], required=True)
    parser.add_argument("--workload", choices=["noop", "sleep1ms"], required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.backend == "plain":
        serve_plain(args.workload, args.port)
    else:
        serve_backend(args.backend, args.workload, args.port)


if __name__ == "__main__":
    main()
