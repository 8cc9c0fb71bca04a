"""The environments: gymnasium ids and DeepMind Control tasks behind one adapter that acts in
[-1, 1], checks observations and can replay an episode for an exact resume."""
