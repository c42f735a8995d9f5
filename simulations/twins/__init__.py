"""Monte-Carlo and autograd twins, one module per theory stem (simulations/twins/<stem>.py beside
theory/<stem>.py), each function named after the closed form it estimates and taking the same
parameters. A twin is never computed from the closed form it checks."""
