"""The learning-benchmark harness behind benchmarks/learning.py, one concern per module:

- methods: the methods a sweep can run, as data (current ones and retired screens, each retired
  one naming the experiment page that ran it), and the command line of one run
- plan: the jobs of a sweep, the checks of its flags, and the decision for each run directory
- claim: the file lock that claims a run directory
- launch: starting and finishing one run (shared by the backends)
- local_backend, ray_backend: where the runs execute
- collect: a run's result files, copied into the results folder
- results, tables, stats, report, plots, aggregate: from the results folder to the summary
- cli: subcommands, and bad input in one `error: ...` line (also for speed.py and probe.py)
"""
