"""Chapter 3, a first distributed application: a maze, Q-learning, simulations as actors.

A seeker starts in the top-left cell of a 5x5 grid and must reach the bottom-right goal.
It learns a table of action values (Q-learning) from episodes that several simulation
actors play in parallel with the current policy.

Run: python docs/examples/ch03_first_app.py   (a few seconds; see docs/tutorials/first_app.md)
"""
import random

import minray as ray

SIZE = 5
GOAL = SIZE * SIZE - 1                 # the cell (4, 4) as a state number
MOVES = [(1, 0), (0, -1), (-1, 0), (0, 1)]   # down, left, up, right


class Maze:
    """The environment: the seeker's cell, and a reward of 1 on reaching the goal."""

    def reset(self):
        self.row, self.col = 0, 0
        return 0

    def step(self, action):
        dr, dc = MOVES[action]
        self.row = min(max(self.row + dr, 0), SIZE - 1)
        self.col = min(max(self.col + dc, 0), SIZE - 1)
        state = self.row * SIZE + self.col
        done = state == GOAL
        return state, (1.0 if done else 0.0), done


class Policy:
    """Epsilon-greedy over a table of values, one row per state, one column per action."""

    def __init__(self):
        self.table = [[0.0] * len(MOVES) for _ in range(SIZE * SIZE)]

    def action(self, state, epsilon):
        if random.random() < epsilon:
            return random.randrange(len(MOVES))
        row = self.table[state]
        best = max(row)
        return random.choice([a for a, v in enumerate(row) if v == best])

    def update(self, experiences, weight=0.1, discount=0.9):
        for state, action, reward, next_state in experiences:
            target = reward + discount * max(self.table[next_state])
            self.table[state][action] += weight * (target - self.table[state][action])


@ray.remote
class Simulation:
    """An actor that owns a maze and plays episodes with whatever policy it is sent."""

    def __init__(self):
        self.maze = Maze()

    def rollout(self, policy, epsilon=0.2, max_steps=200):
        experiences, state = [], self.maze.reset()
        for _ in range(max_steps):
            action = policy.action(state, epsilon)
            next_state, reward, done = self.maze.step(action)
            experiences.append((state, action, reward, next_state))
            state = next_state
            if done:
                break
        return experiences


def greedy_steps(policy, max_steps=50):
    maze, state = Maze(), 0
    maze.reset()
    for step in range(1, max_steps + 1):
        state, _, done = maze.step(policy.action(state, epsilon=0.0))
        if done:
            return step
    return max_steps


def train_parallel(num_episodes=60, num_simulations=4):
    policy = Policy()
    simulations = [Simulation.remote() for _ in range(num_simulations)]
    for episode in range(num_episodes):
        policy_ref = ray.put(policy)               # one copy for all the actors
        pending = [sim.rollout.remote(policy_ref) for sim in simulations]
        while pending:                             # learn from each rollout as it lands
            done, pending = ray.wait(pending)
            policy.update(ray.get(done[0]))
        if episode % 20 == 0:
            print(f"episode {episode:3d}: greedy path takes {greedy_steps(policy)} steps")
    return policy


if __name__ == "__main__":
    random.seed(0)
    ray.init(num_cpus=4)
    trained = train_parallel()
    steps = greedy_steps(trained)
    print(f"after training the greedy path takes {steps} steps (the shortest is 8)")
    assert steps == 2 * (SIZE - 1), steps
    ray.shutdown()
    print("ch03 ok")
