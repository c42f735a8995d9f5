"""Every derived formula as LaTeX, generated from the sympy objects where one exists.

``formulas()`` returns an ordered mapping title -> LaTeX; ``paper_repro.py formulas`` prints
it (Markdown with $$ blocks), and the README's formulas are this output.
"""
from __future__ import annotations

import sympy as sp

from theory import deep_linear, logistic
from theory.preconditioned_maml import GAIN_SYMBOLS, isotropic_gain_symbolic
from theory.shallow_maml import isotropic_k_step_expression
from theory.wishart_moments import K_sym, d_sym, isotropic_trace_moment

NOISE_VAR = GAIN_SYMBOLS[4]  # s², set to 0 in the gain


def _isotropic_loss(steps: int) -> str:
    big_r, s2 = sp.symbols("R s2")
    expr = isotropic_k_step_expression(steps).subs({s2: sp.Symbol("s^2")})
    return r"L_{\mathrm{post}}^{(" + str(steps) + r")}(\alpha) = " + sp.latex(sp.collect(sp.expand(expr), big_r),
                                                                                 long_frac_ratio=2)


def formulas() -> dict[str, str]:
    """Title -> LaTeX for each result of the theory engine (README, "Theory results")."""
    gain = isotropic_gain_symbolic()
    alpha = sp.Symbol("alpha")
    one_step = sp.expand(isotropic_k_step_expression(1).subs({sp.Symbol("s2"): 0, sp.Symbol("R"): 1}))
    alpha_star = sp.solve(sp.diff(one_step, alpha), alpha)[0]
    return {
        "Shallow one-step update": r"w' = w - \frac{\alpha}{K} X^\top (X w - y) = w - \alpha \hat S (w - w_\tau)"
                                   r" + \frac{\alpha}{K} X^\top \varepsilon",
        "Gaussian fourth moment (Isserlis)": r"\mathbb{E}[x x^\top A x x^\top] = \Sigma A \Sigma + \Sigma A^\top "
                                             r"\Sigma + \operatorname{tr}(A\Sigma)\,\Sigma",
        "Wishart sandwich": r"\mathbb{E}[\hat S A \hat S] = \tfrac{K-1}{K}\Sigma A \Sigma + \tfrac{1}{K}\left("
                            r"\Sigma A \Sigma + \Sigma A^\top \Sigma + \operatorname{tr}(A\Sigma)\Sigma\right)",
        "Isotropic trace moments": ", ".join(
            rf"\mathbb{{E}}\operatorname{{tr}}\hat S^{m} = {sp.latex(sp.factor(isotropic_trace_moment(m)))}"
            for m in (1, 2, 3)).replace(sp.latex(d_sym), "d").replace(sp.latex(K_sym), "K"),
        "Mixed trace moments of W = XᵀX, X ∈ R^{K×d} iid N(0, 1) (Deitmar, Theorem 3.2, real case)":
            r"E(l) = \mathbb{E}\prod_r \operatorname{tr} W^{l_r}:\quad E(\emptyset) = 1,\quad E(0, l_2, \dots) = "
            r"d\,E(l_2, \dots),\quad E(l) = (K + l_1 - 1)\,E(l_1 - 1, l_2, \dots) + \sum_{r=1}^{l_1 - 1} "
            r"E(r, l_1 - r - 1, l_2, \dots) + 2\sum_{k \ge 2} l_k\, E(l_1 + l_k - 1, l_2, \dots, \widehat{l_k}, "
            r"\dots);\quad c_m = \frac{\mathbb{E}\operatorname{tr}\hat S^m}{d} = \frac{E(m)}{d K^m}",
        "Shallow one-step loss (general)": r"L_{\mathrm{post}}(\theta,\alpha) = \tfrac12\left(a_0 - 2\alpha a_1 + "
            r"\alpha^2 a_2\right) + \tfrac12 s^2,\; a_0 = \operatorname{tr}(\Sigma_x C),\; a_1 = "
            r"\operatorname{tr}(\Sigma_x^2 C),\; a_2 = \operatorname{tr}\!\big(\big(\tfrac{K+1}{K}\Sigma_x^3 + "
            r"\tfrac{\operatorname{tr}\Sigma_x^2}{K}\Sigma_x\big) C\big) + \tfrac{s^2}{K}\operatorname{tr}"
            r"\Sigma_x^2,\; C = (\theta-\mu)(\theta-\mu)^\top + \Sigma_w",
        "MAML-optimal initialisation and step": r"\theta^\star = \mu, \quad \alpha^\star = a_1 / a_2, \quad "
            r"L^\star = \tfrac12\left(a_0 - a_1^2/a_2\right) + \tfrac12 s^2; \quad \Sigma_x = I,\ s^2 = 0:\ "
            rf"\alpha^\star = {sp.latex(sp.factor(alpha_star))}",
        "Shallow loss, Σx = I, one step (R = tr C)": _isotropic_loss(1),
        "Shallow loss, Σx = I, two steps on the same support set": _isotropic_loss(2),
        "Shallow loss, Σx = I, k steps on the same support set (any k)": r"L_{\mathrm{post}}^{(k)}(\alpha) = "
            r"\tfrac12\Big[R \sum_{m=0}^{2k} \tbinom{2k}{m} (-\alpha)^m c_m + \frac{s^2 d}{K} \sum_{m=1}^{2k} "
            r"\Big(\tbinom{2k}{m} - 2\tbinom{k}{m}\Big) (-\alpha)^m c_{m-1}\Big] + \tfrac12 s^2",
        "Shallow loss, K = ∞ (population gradient), any Σx, k steps": r"L_{\mathrm{post}}^{(k)}(\alpha) = \tfrac12"
            r"\operatorname{tr}\!\big(\Sigma_x (I - \alpha\Sigma_x)^k C (I - \alpha\Sigma_x)^k\big) + \tfrac12 s^2",
        "Shallow loss, any Σx, finite K, k ≤ 3 steps (expected words in Ŝ)": r"L_{\mathrm{post}}^{(k)}(\alpha) = "
            r"\tfrac12 \sum_{a,b=0}^{k} \tbinom{k}{a}\tbinom{k}{b} (-\alpha)^{a+b}\, \mathbb{E}\operatorname{tr}"
            r"(\hat S^a \Sigma_x \hat S^b C) + \tfrac{\alpha^2 s^2}{2K} \sum_{a,b=0}^{k-1} \tbinom{k}{a+1}"
            r"\tbinom{k}{b+1} (-\alpha)^{a+b}\, \mathbb{E}\operatorname{tr}(\hat S^{a+b+1} \Sigma_x) + \tfrac12 s^2,"
            r"\quad \mathbb{E}[\hat S A_1 \hat S \cdots A_{m-1} \hat S] = \sum_{\pi} K^{c(\pi) - m}\, "
            r"\mathrm{contract}_\pi(\Sigma_x; A_1, \dots, A_{m-1})",
        "Bayes floor (posterior-mean estimator)": r"L_{\mathrm{Bayes}} = \tfrac12\left(\mathbb{E}_X "
            r"\operatorname{tr}(\Sigma_x \Sigma_{\mathrm{post}}) + s^2\right),\quad \Sigma_{\mathrm{post}} = "
            r"\Sigma_w - \Sigma_w X^\top (X \Sigma_w X^\top + s^2 I)^{-1} X \Sigma_w;\quad \text{rank 1: } "
            r"\tfrac12\left(g\, \mathbb{E}\big[1/(1 + g\chi^2_K/s^2)\big] + s^2\right),\ g = u^\top\Sigma_x u\, v",
        "Optimal preconditioner": r"P^\star = \tfrac{1}{\alpha} C \left(c_1 \Sigma_x C + c_2 I\right)^{-1},\; "
            r"c_1 = \tfrac{K+1}{K},\; c_2 = \tfrac{\operatorname{tr}(\Sigma_x C) + s^2}{K},\; L^\star = "
            r"\tfrac12\left[\operatorname{tr}(\Sigma_x C) - \operatorname{tr}\!\left(\Sigma_x C \Sigma_x C "
            r"(c_1 \Sigma_x C + c_2 I)^{-1}\right)\right] + \tfrac12 s^2",
        "Best shallow loss, Σx = I, Σw = σ²UUᵀ (rank r)": r"L^\star_{\mathrm{shallow}} = "
            + sp.latex(gain["shallow"]),
        "Best preconditioned loss, same setting": r"L^\star_{P} = " + sp.latex(gain["preconditioned"]),
        "Gain of the optimal preconditioner, s² = 0": r"\frac{L^\star_{\mathrm{shallow}}}{L^\star_{P}} = "
            + sp.latex(sp.factor(gain["ratio"].subs({NOISE_VAR: 0}))),
        "Deep linear, depth 2, exact one-step update": deep_linear.latex_depth2_update(),
        "Deep linear, depth 2, full MAML: exact expected loss (scalar output)": r"L(\alpha) = \tfrac12 \mathbb{E}"
            r"\big[r^\top \Sigma_x r\big] + \tfrac12 s^2 = \sum_{j=0}^{4} c_j \alpha^j,\quad r = e - \alpha P g + "
            r"\alpha^2 (w_e^\top g)\, g,\quad P = W_1^\top W_1 + \lVert w_2\rVert^2 I,\quad g = \hat S e - "
            r"\tfrac1K X^\top \varepsilon;\quad \mathbb{E}\Big[\prod_{j=1}^{n} c_j^\top g \,\Big|\, e\Big] = "
            r"\sum_{\pi} \frac{K^{\underline{|\pi|}}}{K^n} \prod_{B \in \pi} \sum_{M} \frac{|B|!\,(2|M| - 1)!!}"
            r"{(2|M|)!}\, q^{|M|} \prod_{(i,j) \in M} c_i^\top \Sigma_x c_j \prod_{k \in B \setminus M} c_k^\top b,"
            r"\quad b = \Sigma_x e,\ q = e^\top \Sigma_x e + s^2,\quad e \sim \mathcal{N}(w_e - \mu, \Sigma_w)"
            r"\text{ by a degree-5 cubature}",
        "Deep linear, any depth: implicit preconditioner": deep_linear.latex_implicit_preconditioner(),
        "ANIL (head layer) and bottom-layer steps, exact": r"W' = W - \alpha\, G B_L^\top B_L, \qquad "
                                                          r"W' = W - \alpha\, A_1 A_1^\top G",
        "Logistic regression gradient": logistic.latex_logistic_gradient(),
        "Shallow MAML, gradient flow on the meta-objective (t = η·n)": r"L(t) = L^\star + \tfrac12 \sum_j h_j "
            r"e^{-2 h_j t} \big(v_j^\top(\theta_0 - \mu)\big)^2,\quad H = \sum_j h_j v_j v_j^\top = \mathbb{E}"
            r"\big[(I - \alpha\hat S)^{k\top} \Sigma_x (I - \alpha\hat S)^k\big];\quad L_n = L^\star + \tfrac12"
            r"\sum_j h_j (1 - \eta h_j)^{2n} \big(v_j^\top(\theta_0 - \mu)\big)^2,\ \eta < 2/h_{\max};\quad "
            r"\Sigma_x = I,\ k = 1:\ H = h I,\ h = " + sp.latex(isotropic_curvature())
            + r" = (1 - \alpha)^2 + \alpha^2 \tfrac{d + 1}{K}",
        "ANIL, gradient flow from an aligned start (each mode a logistic curve)": r"q_i(t) = \frac{q_i^\star}{1 + "
            r"\big(q_i^\star/q_i(0) - 1\big) e^{-4\alpha a_i t}},\quad q_i^\star = \frac{a_i}{b_i},\quad a_i = "
            r"\sigma_i^2 c_i,\ b_i = \sigma_i\big(\tfrac{K+1}{K}\sigma_i^2 c_i + \tfrac{\operatorname{tr}(\Sigma_x"
            r"\Sigma_w) + s^2}{K}\sigma_i\big);\quad a_i = 0:\ q_i(t) = \frac{q_i(0)}{1 + 4\alpha b_i q_i(0) t};"
            r"\quad t_i = \frac{\ln(q_i^\star/q_i(0) - 1)}{4\alpha a_i};\quad L(t) = \tfrac12\sum_i\big("
            r"\sigma_i c_i - 2 a_i q_i + b_i q_i^2\big) + \tfrac12 s^2",
        "Meta-SGD: the best per-parameter step (P = diag p)": r"L(p) = \tfrac12\big[\operatorname{tr}(\Sigma_x C)"
            r" - 2\alpha b^\top p + \alpha^2 p^\top A p\big] + \tfrac12 s^2,\quad b_i = (\Sigma_x C \Sigma_x)_{ii},"
            r"\quad A = \Sigma_x \circ \mathbb{E}[\hat S C \hat S] + \tfrac{s^2}{K}\,\Sigma_x \circ \Sigma_x;\quad"
            r" p^\star = A^{-1} b / \alpha,\quad L^\star_{\mathrm{diag}} = \tfrac12\big[\operatorname{tr}(\Sigma_x C)"
            r" - b^\top A^{-1} b\big] + \tfrac12 s^2",
        "iMAML / ridge inner problem, exact given the support inputs": r"\varphi = (\hat S + \Lambda)^{-1}\big("
            r"\tfrac1K X^\top y + \Lambda\theta\big),\quad \varphi - w = B\big(\Lambda(\theta - w) + \tfrac1K X^\top"
            r"\varepsilon\big),\ B = (\hat S + \Lambda)^{-1};\quad \ell(X) = \tfrac12\big[\operatorname{tr}(\Sigma_x"
            r" B\Lambda C\Lambda B) + \tfrac{s^2}{K}\operatorname{tr}(\Sigma_x B \hat S B)\big] + \tfrac12 s^2;\quad"
            r" \Lambda = \tfrac{s^2}{K}\Sigma_w^{-1},\ \theta = \mu:\ \varphi = \mathbb{E}[w \mid X, y]\ "
            r"\text{(the Bayes floor)};\quad \Lambda = 0,\ K > d + 1:\ L = \tfrac12 s^2\,\tfrac{K - 1}{K - d - 1}",
        "In-context learning by one linear self-attention layer": r"\hat y = x_q^\top \Gamma\, \tfrac1N "
            r"\sum_{i=1}^{N} y_i x_i = x_q^\top\big(0 - \Gamma \nabla \hat L(0)\big),\quad \Gamma^\star = "
            r"C\big(c_1 \Lambda C + c_2 I\big)^{-1},\ C = \mu\mu^\top + \Sigma_w,\ c_1 = 1 + \tfrac1N,\ c_2 = "
            r"\tfrac{\operatorname{tr}(\Lambda C) + s^2}{N};\quad L(\Gamma; M) = \tfrac12\big[\operatorname{tr}"
            r"(\Lambda C) - 2\operatorname{tr}(\Lambda\Gamma\Lambda C) + \operatorname{tr}(\Gamma^\top\Lambda\Gamma"
            r" D_M)\big] + \tfrac12 s^2,\ D_M = (1 + \tfrac1M)\Lambda C\Lambda + \tfrac{\operatorname{tr}(\Lambda C)"
            r" + s^2}{M}\Lambda",
    }


def isotropic_curvature() -> sp.Expr:
    """h = 2 ∂L_post/∂R for Σx = I, one step, R = tr C: the meta-objective's curvature (theory.dynamics)."""
    return sp.factor(2 * sp.diff(isotropic_k_step_expression(1), sp.Symbol("R")))


def markdown() -> str:
    """The formulas as Markdown: a bold title and a $$ display block each."""
    return "\n\n".join(f"**{title}**\n\n$$\n{body}\n$$" for title, body in formulas().items()) + "\n"
