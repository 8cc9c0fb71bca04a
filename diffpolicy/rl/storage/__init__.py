"""What a run keeps on disk and in memory: the replay buffer and its chunk files, checkpoints,
logs, atomic file writes and the run-directory lock."""
