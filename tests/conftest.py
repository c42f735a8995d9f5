"""Test-session settings: one torch thread (the suite's tensors are small, and one thread avoids
oversubscribing CI's two cores), and the non-interactive matplotlib backend."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch

torch.set_num_threads(1)
