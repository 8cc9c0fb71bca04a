"""The algorithm: the agent and its update, its registered components (samplers, actor objectives,
critics), the diffusion policy it acts with, and the named presets."""
