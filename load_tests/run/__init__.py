"""Running a load test: the target (a hub and simulator, started here or given), the faults armed on
the simulator, the workers started and watched once a second (runner.py, drive.py), the live view,
the hub and the tester sampled over time, the processes started and stopped (procs.py), the hub's
profiler (hub_profiler.py), and `proctorhub demo` (demo.py), the same parts with a live view instead of
a verdict."""
