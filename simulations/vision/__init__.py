"""Few-shot vision: class pools read offline from a data root (datasets), N-way K-shot episodes
drawn from them (episodes), and the conv nets (convnet) that meta-learn on them; the training loop is
simulations.experiments.vision."""
