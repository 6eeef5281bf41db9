"""Running: tasks and records, planning, the worker pool, workers, the cache."""
