"""Learning Ray, chapter 8 (online inference with Serve), on minray.

    python docs/examples/ch08_serve.py

The code of docs/tutorials/serve.md in one file: deployments over HTTP, FastAPI
ingress, replicas, batching, composition and an NLP pipeline, with tiny
deterministic stand-ins for the book's Hugging Face models.  Runs in seconds and
shuts Serve and the runtime down at the end.
"""
import os
import socket
from typing import List, Optional

import requests
from fastapi import FastAPI
from starlette.requests import Request

import minray as ray
from minray import serve

# -- 0. A runtime, and Serve's HTTP proxy on a free port (the book uses 8000) ----------
ray.init(num_cpus=4)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT = free_port()
URL = f"http://127.0.0.1:{PORT}"
serve.start(http_options={"host": "127.0.0.1", "port": PORT})

# -- 1. A "model": positive and negative words stand in for a sentiment pipeline -------
POSITIVE = {"good", "great", "love", "happy", "friend", "brilliant", "enjoy", "nice"}
NEGATIVE = {"bad", "awful", "hate", "sad", "terrible", "war", "killed", "destroyed"}


def classify(texts):
    out = []
    for text in texts:
        words = [w.strip(".,!?").lower() for w in text.split()]
        pos = sum(w in POSITIVE for w in words)
        neg = sum(w in NEGATIVE for w in words)
        out.append({"label": "NEGATIVE" if neg > pos else "POSITIVE"})
    return out


# -- 2. A first deployment: __call__ receives the HTTP request --------------------------
@serve.deployment
class SentimentAnalysis:
    def __init__(self):
        self._classifier = classify

    def __call__(self, request: Request) -> str:
        input_text = request.query_params["input_text"]
        return self._classifier([input_text])[0]["label"]


serve.run(SentimentAnalysis.bind(), name="basic", route_prefix="/basic")
print(requests.get(URL + "/basic", params={"input_text": "Hello friend!"}).text)  # POSITIVE
serve.delete("basic")            # each app holds a CPU per replica: free them as we go

# -- 3. FastAPI ingress: typed, validated parameters -----------------------------------
app = FastAPI()


@serve.deployment
@serve.ingress(app)
class FastAPISentiment:
    def __init__(self):
        self._classifier = classify

    @app.get("/")
    def classify_text(self, input_text: str) -> str:
        return self._classifier([input_text])[0]["label"]


serve.run(FastAPISentiment.bind(), name="fastapi", route_prefix="/fastapi")
print(requests.get(URL + "/fastapi", params={"input_text": "a sad day"}).json())  # NEGATIVE
print(requests.get(URL + "/fastapi").status_code)          # 422: input_text is missing
serve.delete("fastapi")

# -- 4. Scaling out: two replicas, two processes ---------------------------------------
@serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 0.5})
class ScaledSentiment:
    def __call__(self, request: Request) -> dict:
        label = classify([request.query_params["input_text"]])[0]["label"]
        return {"label": label, "pid": os.getpid()}


serve.run(ScaledSentiment.bind(), name="scaled", route_prefix="/scaled")
pids = {requests.get(URL + "/scaled", params={"input_text": "good"}).json()["pid"]
        for _ in range(20)}
print(f"answered by {len(pids)} processes")                 # 2
serve.delete("scaled")

# -- 5. Batching: concurrent requests become one model call ----------------------------
@serve.deployment(max_ongoing_requests=10)
class BatchedSentiment:
    @serve.batch(max_batch_size=10, batch_wait_timeout_s=0.1)
    async def classify_batched(self, texts: List[str]) -> List[dict]:
        return [{"label": r["label"], "batch": len(texts)} for r in classify(texts)]

    async def __call__(self, text: str) -> dict:
        return await self.classify_batched(text)


handle = serve.run(BatchedSentiment.bind(), name="batched", route_prefix=None)
answers = [r.result() for r in [handle.remote(f"text {i} good") for i in range(10)]]
print("batch sizes:", sorted({a["batch"] for a in answers}))
serve.delete("batched")

# -- 6. Composition: handles to other deployments --------------------------------------
@serve.deployment
class Echo:
    def __init__(self, suffix: str):
        self._suffix = suffix

    def __call__(self, text: str) -> str:
        return text + "|" + self._suffix


@serve.deployment
class Pipeline:
    def __init__(self, first, second):
        self._first, self._second = first, second

    async def __call__(self, request: Request) -> str:
        intermediate = self._first.remote("input")     # not awaited ...
        return await self._second.remote(intermediate)  # ... passed straight on


serve.run(Pipeline.bind(Echo.bind("a"), Echo.options(name="Echo2").bind("b")),
          name="pipeline", route_prefix="/pipeline")
print(requests.get(URL + "/pipeline").text)                 # input|a|b
serve.delete("pipeline")

# -- 7. The NLP pipeline: search -> sentiment gate -> summary + entities ---------------
ARTICLES = {"physicist": "Albert Einstein was a brilliant physicist. He worked in Bern "
                         "and Berlin."}


@serve.deployment
class Summarizer:
    def __call__(self, text: str) -> str:
        return text.split(". ")[0] + "."


@serve.deployment
class EntityRecognition:
    def __call__(self, text: str) -> List[str]:
        words = [w.strip(".") for w in text.split()]
        return [w for i, w in enumerate(words) if w[:1].isupper() and i > 0]


@serve.deployment
class Gate:
    @serve.batch(max_batch_size=10, batch_wait_timeout_s=0.05)
    async def is_positive(self, texts: List[str]) -> List[bool]:
        return [r["label"] == "POSITIVE" for r in classify(texts)]

    async def __call__(self, text: str) -> bool:
        return await self.is_positive(text)


nlp_app = FastAPI()


@serve.deployment
@serve.ingress(nlp_app)
class NLPPipeline:
    def __init__(self, gate, summarizer, entities):
        self._gate, self._summarizer, self._entities = gate, summarizer, entities

    @nlp_app.get("/")
    async def summarize(self, search_term: str) -> dict:
        text: Optional[str] = ARTICLES.get(search_term)
        if text is None:
            return {"success": False, "message": "No pages found."}
        if not await self._gate.remote(text):
            return {"success": False, "message": "Only positivity allowed!"}
        summary, entities = self._summarizer.remote(text), self._entities.remote(text)
        return {"success": True, "summary": await summary, "entities": await entities}


serve.run(NLPPipeline.bind(Gate.bind(), Summarizer.bind(), EntityRecognition.bind()),
          name="nlp", route_prefix="/nlp")
print(requests.get(URL + "/nlp", params={"search_term": "physicist"}).json())

# -- 8. Status, then shut everything down ----------------------------------------------
for name, status in serve.status().applications.items():
    print(name, status.status)
serve.shutdown()
ray.shutdown()
