"""Chapter 2, Ray Core: tasks, objects, wait, actors, and a small map-reduce.

Run: python docs/examples/ch02_core.py   (a few seconds; see docs/tutorials/core.md)
"""
import time

import minray as ray

ray.init(num_cpus=4)

# 1. Tasks run in parallel: four 0.3 s tasks take about 0.3 s, not 1.2 s.
@ray.remote
def slow_identity(x):
    time.sleep(0.3)
    return x

start = time.monotonic()
values = ray.get([slow_identity.remote(i) for i in range(4)])
print(f"tasks: {values} in {time.monotonic() - start:.2f} s (in parallel)")

# 2. put() stores a value once; its ref can be passed to many tasks.
data_ref = ray.put(list(range(1000)))

@ray.remote
def total(data):            # a top-level ref argument arrives as its value
    return sum(data)

print("put:", ray.get(total.remote(data_ref)))

# 3. wait() hands back what is done, in the order it finishes.
@ray.remote
def sleepy(seconds):
    time.sleep(seconds)
    return seconds

pending = [sleepy.remote(s) for s in (0.4, 0.1, 0.2)]
order = []
while pending:
    done, pending = ray.wait(pending, num_returns=1)
    order.append(ray.get(done[0]))
print("wait: finished in the order", order)
assert sorted(order) == [0.1, 0.2, 0.4]   # usually also this order; a busy machine may swap

# 4. Task dependencies: pass one task's ref to the next; minray chains them.
@ray.remote
def increment(x):
    return x + 1

ref = ray.put(0)
for _ in range(5):
    ref = increment.remote(ref)
print("chain:", ray.get(ref))

# 5. Actors keep state between calls, and their handles can be passed around.
@ray.remote
class Counter:
    def __init__(self):
        self.count = 0

    def add(self, n=1):
        self.count += n
        return self.count

counter = Counter.remote()

@ray.remote
def bump(counter_handle, times):
    return ray.get([counter_handle.add.remote() for _ in range(times)])[-1]

ray.get([bump.remote(counter, 10) for _ in range(3)])
print("actor: count =", ray.get(counter.add.remote(0)))

# 6. Errors: the task's exception is raised by get, with the remote traceback.
@ray.remote
def fails():
    raise ValueError("something went wrong in the task")

try:
    ray.get(fails.remote())
except ValueError as e:
    print("error: caught", type(e).__name__, "-", str(e).splitlines()[-1][:60])

# 7. Map-reduce: count words with tasks that return one result per reducer.
corpus = ["the quick brown fox", "jumps over the lazy dog", "the dog barks"]
NUM_REDUCERS = 2

@ray.remote(num_returns=NUM_REDUCERS)
def map_words(line):
    parts = [{} for _ in range(NUM_REDUCERS)]
    for word in line.split():
        bucket = parts[sum(map(ord, word)) % NUM_REDUCERS]
        bucket[word] = bucket.get(word, 0) + 1
    return parts

@ray.remote
def reduce_counts(*partials):
    out = {}
    for part in partials:
        for word, n in part.items():
            out[word] = out.get(word, 0) + n
    return out

mapped = [map_words.remote(line) for line in corpus]          # one list of refs per line
reduced = [reduce_counts.remote(*[m[r] for m in mapped]) for r in range(NUM_REDUCERS)]
counts = {}
for part in ray.get(reduced):
    counts.update(part)
print("map-reduce: 'the' appears", counts["the"], "times")
assert counts["the"] == 3 and counts["dog"] == 2

ray.shutdown()
print("ch02 ok")
