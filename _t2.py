import numpy as np, time
from theory import deep_linear as dl
from theory.task_family import LinearTaskFamily
from simulations.twins.deep_linear import estimate_depth2_post_adaptation_loss as est
rng = np.random.default_rng(0)
def aniso(d, seed):
    r = np.random.default_rng(seed); a = r.standard_normal((d, d)) / np.sqrt(d); return 0.5*np.eye(d) + a @ a.T
fams = {
 "iso": LinearTaskFamily.subspace(6, 4, 10, rank=3, seed=1),
 "aniso": LinearTaskFamily.from_covariances(5, 3, 10, task_cov=aniso(5, 2) * 0.5, input_cov=aniso(5, 3) * 0.7,
                                            task_mean=np.array([0.5, -0.3, 0.2, 0.0, 0.4]), noise_var=0.3),
}
for name, fam in fams.items():
    for h, alpha, sc in [(3, 0.05, 1.0), (4, 0.4, 0.8)]:
        w1 = sc * rng.standard_normal((h, fam.dim)) / np.sqrt(fam.dim); w2 = sc * rng.standard_normal((1, h)) / np.sqrt(h)
        t = time.time(); th = dl.depth2_post_adaptation_loss(fam, w1, w2, alpha); t1 = time.time() - t
        coef = dl.depth2_loss_polynomial(fam, w1, w2)
        t = time.time(); e = est(fam, w1, w2, alpha, 200_000, 3); t2 = time.time() - t
        print(name, h, alpha, th, e.mean, e.stderr, (th - e.mean) / e.stderr, coef, f"{t1:.3f}s {t2:.1f}s")
