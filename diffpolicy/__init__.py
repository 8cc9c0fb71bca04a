"""diffpolicy: diffusion-model policy building blocks for off-policy RL, built around Q-score
matching (Psenka et al., ICML 2024)."""

__version__ = "0.1.0"
