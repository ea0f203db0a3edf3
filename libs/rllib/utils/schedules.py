"""Piecewise-linear schedules: ``0.001`` or ``[[0, 1.0], [10000, 0.05]]`` over env steps."""


def schedule_value(spec, t):
    """Value of ``spec`` (a number, or [(t0, v0), (t1, v1), ...]) at timestep ``t``."""
    if isinstance(spec, (int, float)):
        return float(spec)
    points = [(float(a), float(b)) for a, b in spec]
    if not points:
        raise ValueError("an empty schedule has no value; give [[0, value], ...].")
    if t <= points[0][0]:
        return points[0][1]
    for (t0, v0), (t1, v1) in zip(points, points[1:]):
        if t0 <= t < t1:
            return v0 + (t - t0) / (t1 - t0) * (v1 - v0)
    return points[-1][1]


__all__ = ["schedule_value"]
