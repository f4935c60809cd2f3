"""A clock for timing tests that moves only when a fake case runs."""


class FakeClock:
    """A clock that only moves when a fake case runs; ``log`` records which case ran when."""

    def __init__(self):
        self.now = 0.0
        self.log: list[str] = []

    def __call__(self) -> float:
        return self.now

    def case(self, name: str, *durations: float):
        """A call that takes durations[0] seconds, then durations[1], ..., the last one from then on."""
        calls = []

        def call():
            self.log.append(name)
            self.now += durations[min(len(calls), len(durations) - 1)]
            calls.append(1)

        return call
