"""A training run: its config and checks, the loop, evaluation, resume, the command line, one-line
errors and graceful stops, and loading what a run trained."""
