"""The measurements behind benchmarks/speed.py, one module per subcommand (each with its `Args`
and `main`), and `common`: the setting they share (Hopper-v5 sizes, batch 256, replay buffers of
random transitions, agents timed side by side in interleaved rounds)."""
