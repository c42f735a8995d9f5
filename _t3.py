import numpy as np, time
from theory import deep_linear as dl
from theory.task_family import LinearTaskFamily
from simulations.twins.deep_linear import estimate_depth2_post_adaptation_loss as est
rng = np.random.default_rng(7)
def aniso(d, seed):
    r = np.random.default_rng(seed); a = r.standard_normal((d, d)) / np.sqrt(d); return 0.5*np.eye(d) + a @ a.T
fams = {
 "iso_noise": LinearTaskFamily.subspace(4, 2, 10, rank=2, noise_var=0.5, mean_norm=0.7, seed=1),
 "aniso": LinearTaskFamily.from_covariances(3, 3, 10, task_cov=aniso(3, 2) * 0.5, input_cov=aniso(3, 3) * 0.7,
                                            task_mean=np.array([0.5, -0.3, 0.2]), noise_var=0.3),
}
for name, fam in fams.items():
    for h, alpha in [(2, 0.3), (3, 0.5)]:
        w1 = rng.standard_normal((h, fam.dim)) / np.sqrt(fam.dim); w2 = rng.standard_normal((1, h)) / np.sqrt(h)
        th = dl.depth2_post_adaptation_loss(fam, w1, w2, alpha)
        coef = dl.depth2_loss_polynomial(fam, w1, w2)
        e = est(fam, w1, w2, alpha, 2_000_000, 5)
        print(name, h, alpha, th, e.mean, e.stderr, (th - e.mean) / e.stderr, coef * alpha ** np.arange(5), flush=True)
