"""The bad-input table: command lines every subcommand must refuse before any work, as data.

Each row is (argv, the option the one-line message must name, words of the valid range or of the reason).
``{tmp}`` stands for a fresh folder holding a regular file ``file``, an empty folder ``dir`` and a folder ``pd``
whose ``.fig6_phase_diagram.partial.json`` is a folder: tests/test_paper_repro.py runs every row there and also
asserts that nothing was written into it. New options get rows when they are added.
"""
from __future__ import annotations

from figures.registry import FIGURES

VALID_FIGURES = "valid: " + ",".join(map(str, sorted(FIGURES)))
NO_SUCH = "No such file or directory"
NOT_A_FOLDER = "is a file, not a folder"
A_FOLDER = "it is a folder: name a file in it"
EMPTY = "a path (not empty)"
TWICE = "given more than once"
SEED = "an integer >= 0 and <= 2147483647"  # one seed range for every command

FIGURES_ROWS = [
    (["--only", "6", "--workers", "1", "--out", "/proc/x/y"], "--out", NO_SUCH),
    (["--only", "6", "--out", "{tmp}/file/sub"], "--out", NOT_A_FOLDER),
    (["--only", "6", "--out", "{tmp}/file"], "--out", NOT_A_FOLDER),
    (["--only", "6", "--out", "{tmp}/pd"], "--out", ".fig6_phase_diagram.partial.json in it is a folder"),
    (["--only", "6", "--out", ""], "--out", EMPTY),
    (["figures", "--only", "6", "--out", "/proc/x"], "--out", NO_SUCH),
    (["--replot", "--only", "6", "--out", "{tmp}/empty"], "--replot", "no cached results"),
    (["--replot", "--full"], "--full", "not with --replot"),  # the cached JSON is redrawn as it is
    (["--replot", "--seed", "3"], "--seed", "not with --replot"),
    (["--replot", "--workers", "2"], "--workers", "not with --replot"),
    (["--replot", "--scheduler", "tcp://127.0.0.1:8786"], "--scheduler", "not with --replot"),
    (["--replot", "--data-root", "{tmp}/dir"], "--data-root", "not with --replot"),
    (["--seed", "-1", "--only", "6"], "--seed", ">= 0"),
    (["--seed", "2147483648", "--only", "6"], "--seed", SEED),
    (["--seed", "1.5"], "--seed", "not an integer"),
    (["--threads", "0"], "--threads", ">= 1"),
    (["--threads", "nan"], "--threads", "not an integer"),
    (["--workers", "0"], "--workers", ">= 1"),
    (["--workers", "x"], "--workers", "not an integer"),
    (["--scheduler", "tcp://127.0.0.1:8786", "--workers", "3"], "--scheduler", "not allowed with --workers 3"),
    (["--only", str(max(FIGURES) + 1)], "--only", VALID_FIGURES),
    (["--only", "x"], "--only", VALID_FIGURES),
    (["--only", ""], "--only", VALID_FIGURES),
    (["--only", "1", "--only", "6"], "--only", TWICE),
    (["--full", "--full"], "--full", TWICE),
    (["--onl", "6"], "--onl", "unrecognized"),
    (["--data-root"], "--data-root", "expected one argument"),
    (["nonsense"], "COMMAND", "invalid choice"),
    (["--seed", "5", "explore"], "--seed", "options go after the subcommand: paper_repro.py explore --seed 5"),
    (["--only=3", "verify"], "--only", "an option of the figures, not of verify"),
    (["--out", "X", "formulas"], "--out", "an option of the figures, not of formulas"),
]

COMPARE_ROWS = [
    (["compare"], "RUN_DIR", "required"),
    (["compare", "{tmp}/nope"], "RUN_DIR", "is not a folder"),
    (["compare", "{tmp}/file"], "RUN_DIR", "is not a folder"),
    (["compare", "{tmp}/dir"], "RUN_DIR", "not a run's output"),
    (["compare", "figures/generated", "--against", "{tmp}/nope"], "--against", "is not a folder"),
    (["compare", "figures/generated", "--against", "a", "--against", "b"], "--against", TWICE),
    (["compare", "figures/generated", "extra"], "extra", "unrecognized"),
    (["compare", "figures/generated", "--bogus"], "--bogus", "unrecognized"),
    (["compare", "figures/generated", "--json", "--json"], "--json", TWICE),
]

VERIFY_ROWS = [
    (["verify", "--scale", "0.05"], "--scale", ">= 0.3"),
    (["verify", "--scale", "nan"], "--scale", "not a finite number"),
    (["verify", "--scale", "inf"], "--scale", "not a finite number"),
    (["verify", "--scale", "-1"], "--scale", ">= 0.3"),
    (["verify", "--scale", "0.3", "--json", "--output", "/proc/x/y.json"], "--output", NO_SUCH),
    (["verify", "--output", "{tmp}/dir"], "--output", A_FOLDER),
    (["verify", "--output", "{tmp}/file/x.json"], "--output", NOT_A_FOLDER),
    (["verify", "--output", ""], "--output", EMPTY),
    (["verify", "--threads", "-2"], "--threads", ">= 1"),
    (["verify", "--json", "--json"], "--json", TWICE),
    (["verify", "--scale"], "--scale", "expected one argument"),
    (["verify", "--only", "3"], "--only", "unrecognized"),
]

EXPLORE_ROWS = [
    (["explore", "--dim", "0"], "--dim", ">= 1"),
    (["explore", "--dim", "abc"], "--dim", "not an integer"),
    (["explore", "--dim", "1.5"], "--dim", "not an integer"),
    (["explore", "--dim"], "--dim", "expected one argument"),
    (["explore", "--rank", "60"], "--rank", "<= 50"),
    (["explore", "--rank", "0"], "--rank", ">= 1"),
    (["explore", "--noise", "-1"], "--noise", ">= 0"),
    (["explore", "--noise", "nan"], "--noise", "not a finite number"),
    (["explore", "--alpha", "0"], "--alpha", "(0, 1000]"),
    (["explore", "--alpha", "-1"], "--alpha", "(0, 1000]"),
    (["explore", "--alpha", "1e308", "--theory-only"], "--alpha", "(0, 1000]"),
    (["explore", "--alpha", "nan"], "--alpha", "not a finite number"),
    (["explore", "--seed", "-1"], "--seed", ">= 0"),
    (["explore", "--seed", "2147483648"], "--seed", SEED),
    (["explore", "--support", "0"], "--support", ">= 1"),
    (["explore", "--support", "1000001"], "--support", "<= 1000000"),
    (["explore", "--support", "inf"], "--support", "inf only with --theory-only"),
    (["explore", "--support", "many"], "--support", "not an integer or 'inf'"),
    (["explore", "--query", "0"], "--query", ">= 1"),
    (["explore", "--steps", "0"], "--steps", ">= 1"),
    (["explore", "--depth", "0"], "--depth", ">= 1"),
    (["explore", "--width", "0"], "--width", ">= 1"),
    (["explore", "--linnet-layers", "-1"], "--linnet-layers", ">= 0"),
    (["explore", "--iterations", "-1"], "--iterations", ">= 0"),
    (["explore", "--meta-batch", "0"], "--meta-batch", ">= 1"),
    (["explore", "--meta-lr", "0"], "--meta-lr", "> 0"),
    (["explore", "--eval-tasks", "1"], "--eval-tasks", ">= 2"),
    (["explore", "--threads", "0"], "--threads", ">= 1"),
    (["explore", "--bogus", "1"], "--bogus", "unrecognized"),
    (["explore", "--task", "ranking"], "--task", "invalid choice"),
    (["explore", "--models", "shallow,wide"], "--models", "shallow,deep,linnet"),
    (["explore", "--models", ""], "--models", "distinct names"),
    (["explore", "--kfo-form", "cubic"], "--kfo-form", "invalid choice"),
    (["explore", "--theory-only", "--task-spectrum", "1,2"], "--task-spectrum", "exactly d = 50"),
    (["explore", "--theory-only", "--dim", "3", "--task-spectrum", "1,-1,0"], "--task-spectrum", ">= 0"),
    (["explore", "--theory-only", "--dim", "3", "--task-spectrum", "1,x,0"], "--task-spectrum", "not a number"),
    (["explore", "--theory-only", "--dim", "2", "--task-spectrum", "1,1", "--rank", "1"], "--rank",
     "not given together with --task-spectrum"),
    (["explore", "--theory-only", "--dim", "2", "--task-spectrum", "1,1", "--task-var", "2"], "--task-var",
     "not given together with --task-spectrum"),
    (["explore", "--theory-only", "--dim", "2", "--input-spectrum", "1,0"], "--input-spectrum", "> 0"),
    (["explore", "--theory-only", "--dim", "2", "--input-spectrum", "1,1,1"], "--input-spectrum", "exactly d = 2"),
    (["explore", "--theory-only", "--dim", "2", "--input-spectrum", "1e-300,1"], "--input-spectrum",
     "the theory's rank tolerance"),
    (["explore", "--theory-only", "--dim", "2", "--input-spectrum", "1e300,1e300"], "--input-spectrum", "<= 1e+50"),
    (["explore", "--theory-only", "--task-var", "0"], "--task-var", "> 0"),
    (["explore", "--theory-only", "--task-var", "-1"], "--task-var", "> 0"),
    (["explore", "--theory-only", "--mean-norm", "-1"], "--mean-norm", ">= 0"),
    (["explore", "--theory-only", "--mean-norm", "inf"], "--mean-norm", "not a finite number"),
    # simulation options given with --theory-only were once ignored without a word
    (["explore", "--theory-only", "--iterations", "5", "--models", "deep"], "--iterations", "not with --theory-only"),
    (["explore", "--theory-only", "--models", "deep"], "--models", "not with --theory-only"),
    (["explore", "--theory-only", "--depth", "2"], "--depth", "not with --theory-only"),
    (["explore", "--theory-only", "--meta-lr", "0.1"], "--meta-lr", "not with --theory-only"),
    (["explore", "--theory-only", "--meta-batch", "4"], "--meta-batch", "not with --theory-only"),
    (["explore", "--theory-only", "--eval-tasks", "10"], "--eval-tasks", "not with --theory-only"),
    (["explore", "--theory-only", "--kfo-form", "psd"], "--kfo-form", "not with --theory-only"),
    (["explore", "--theory-only", "--linnet-layers", "1"], "--linnet-layers", "not with --theory-only"),
    # a repeated option once kept its last value silently; an abbreviation was taken for the option it began
    (["explore", "--theory-only", "--dim", "3", "--dim", "4"], "--dim", TWICE),
    (["explore", "--theory-only", "--dim=3", "--dim", "4"], "--dim", TWICE),
    (["explore", "--theory-only", "--theory-only"], "--theory-only", TWICE),
    (["explore", "--theory-only", "--di", "3"], "--di", "unrecognized"),
]

BENCH_ROWS = [
    (["bench", "--threads", "0"], "--threads", ">= 1"),
    (["bench", "--threads", "2147483648"], "--threads", "<= 2147483647"),
    (["bench", "--iterations", "0"], "--iterations", ">= 1"),
    (["bench", "--iterations", "x"], "--iterations", "not an integer"),
    (["bench", "--meta-batch", "0"], "--meta-batch", ">= 1"),
    (["bench", "--kfo-forms", "cubic"], "--kfo-forms", "linear,psd,nonlinear"),
    (["bench", "--vision", "--vision"], "--vision", TWICE),
    (["bench", "--json", "--json"], "--json", TWICE),
    (["bench", "--seed", "1"], "--seed", "unrecognized"),
]

FORMULAS_ROWS = [
    (["formulas", "--output", "/proc/x/y"], "--output", NO_SUCH),
    (["formulas", "--output", "/proc/x/y/z.md"], "--output", NO_SUCH),
    (["formulas", "--output", ""], "--output", EMPTY),
    (["formulas", "--output", " "], "--output", EMPTY),
    (["formulas", "--output", "{tmp}/dir"], "--output", A_FOLDER),
    (["formulas", "--output", "{tmp}/dir/"], "--output", A_FOLDER),
    (["formulas", "--output", "{tmp}/file/x.md"], "--output", NOT_A_FOLDER),
    (["formulas", "--output", "{tmp}/file/a/b.md"], "--output", NOT_A_FOLDER),
    (["formulas", "--output", "{tmp}/a.md", "--output", "{tmp}/b.md"], "--output", TWICE),
    (["formulas", "--out", "x"], "--out", "unrecognized"),
    (["formulas", "--json"], "--json", "unrecognized"),
    (["formulas", "extra"], "extra", "unrecognized"),
]

VISION_ROWS = [
    (["vision", "--checkpoint", "/proc/x/y"], "--checkpoint", NO_SUCH),
    (["vision", "--checkpoint", "{tmp}/dir"], "--checkpoint", A_FOLDER),
    (["vision", "--checkpoint", "{tmp}/file/c.pt"], "--checkpoint", NOT_A_FOLDER),
    (["vision", "--checkpoint", ""], "--checkpoint", EMPTY),
    (["vision", "--checkpoint-every", "5"], "--checkpoint-every", "only with --checkpoint"),
    (["vision", "--checkpoint-every-iterations", "5"], "--checkpoint-every-iterations", "only with --checkpoint"),
    (["vision", "--checkpoint", "{tmp}/c.pt", "--checkpoint-every", "0"], "--checkpoint-every", "> 0"),
    (["vision", "--checkpoint", "{tmp}/c.pt", "--checkpoint-every-iterations", "-1"],
     "--checkpoint-every-iterations", ">= 0"),
    (["vision", "--ways", "1"], "--ways", ">= 2"),
    (["vision", "--shots", "0"], "--shots", ">= 1"),
    (["vision", "--query", "0"], "--query", ">= 1"),
    (["vision", "--method", "reptile"], "--method", "invalid choice"),
    (["vision", "--dataset", "mnist"], "--dataset", "invalid choice"),
    (["vision", "--depth", "0"], "--depth", ">= 1"),
    (["vision", "--width", "0"], "--width", ">= 1"),
    (["vision", "--inner-steps", "-1"], "--inner-steps", ">= 0"),
    (["vision", "--alpha", "0"], "--alpha", "> 0"),
    (["vision", "--meta-lr", "-1"], "--meta-lr", "> 0"),
    (["vision", "--meta-batch", "0"], "--meta-batch", ">= 1"),
    (["vision", "--iterations", "-1"], "--iterations", ">= 0"),
    (["vision", "--device", "tpu"], "--device", "a torch device"),
    (["vision", "--seed", "2147483648"], "--seed", SEED),
    (["vision", "--seed", "-1"], "--seed", SEED),
    (["vision", "--eval-tasks", "1"], "--eval-tasks", ">= 2"),
    (["vision", "--validation-tasks", "1"], "--validation-tasks", "0 (none) or an integer >= 2"),
    (["vision", "--validate-every", "-1"], "--validate-every", ">= 0"),
    (["vision", "--linnet-layers", "-1"], "--linnet-layers", ">= 0"),
    (["vision", "--threads", "0"], "--threads", ">= 1"),
    (["vision", "--kfo", "--kfo"], "--kfo", TWICE),
    (["vision", "--dataset", "omniglot", "--data-root", "{tmp}/nope", "--iterations", "0"], "omniglot",
     "data root is not a folder"),
]

FINITE_TASKS_ROWS = [
    (["finite-tasks", "--train-alpha", "-1e308,1e308", "--runs", "2"], "--train-alpha", "|α_t| <= 1e+100"),
    (["finite-tasks", "--train-alpha", ""], "--train-alpha", "one or more"),
    (["finite-tasks", "--train-alpha", "1,1"], "--train-alpha", "distinct"),
    (["finite-tasks", "--train-alpha", "x"], "--train-alpha", "not a number"),
    (["finite-tasks", "--train-alpha", "nan"], "--train-alpha", "not a finite number"),
    (["finite-tasks", "--dim", "0"], "--dim", ">= 1"),
    (["finite-tasks", "--tasks", "0"], "--tasks", ">= 1"),
    (["finite-tasks", "--train-support", "0"], "--train-support", ">= 1"),
    (["finite-tasks", "--train-query", "0"], "--train-query", ">= 1"),
    (["finite-tasks", "--test-support", "0"], "--test-support", ">= 1"),
    (["finite-tasks", "--noise", "-1"], "--noise", ">= 0"),
    (["finite-tasks", "--noise", "1e308", "--runs", "2"], "--noise", "<= 1e+100"),
    (["finite-tasks", "--task-var", "-1"], "--task-var", ">= 0"),
    (["finite-tasks", "--task-var", "1e308", "--runs", "2"], "--task-var", "<= 1e+100"),
    (["finite-tasks", "--init-offset", "-1"], "--init-offset", ">= 0"),
    (["finite-tasks", "--init-offset", "1e308", "--runs", "2"], "--init-offset", "<= 1e+50"),
    (["finite-tasks", "--test-alpha", "0"], "--test-alpha", "> 0"),
    (["finite-tasks", "--test-alpha", "1e308", "--runs", "2"], "--test-alpha", "<= 1e+50"),
    (["finite-tasks", "--runs", "1"], "--runs", ">= 2"),
    (["finite-tasks", "--seed", "4294967295"], "--seed", SEED),
    (["finite-tasks", "--seed", "-1"], "--seed", SEED),
    (["finite-tasks", "--threads", "2"], "--threads", "unrecognized"),
]

FIXED_POINTS_ROWS = [
    # options of the simulation given without --simulate were once ignored without a word
    (["fixed-points", "--runs", "3"], "--runs", "only with --simulate"),
    (["fixed-points", "--iterations", "10"], "--iterations", "only with --simulate"),
    (["fixed-points", "--seed", "3"], "--seed", "only with --simulate"),
    (["fixed-points", "--group", "prob=1,input-var=1,task-mean=0,task-mean=2"], "--group", "task-mean given twice"),
    (["fixed-points", "--group", "prob=1,input-var=1"], "--group", "misses task-mean"),
    (["fixed-points", "--group", "prob=1,input-var=1,task-mean=x"], "--group", "is not a number"),
    (["fixed-points", "--group", "p=1"], "--group", "is not a field"),
    (["fixed-points", "--group", "prob=0.5,input-var=1,task-mean=0"], "--group", "probabilities summing to 1"),
    (["fixed-points", "--group", "prob=1,input-var=-1,task-mean=0"], "--group", "input-var="),
    (["fixed-points", "--group", "prob=1,input-var=1e308,task-mean=0"], "--alpha", "overflows float64"),
    (["fixed-points", "--dim", "0"], "--dim", ">= 1"),
    (["fixed-points", "--dim", "10001"], "--dim", "<= 10000"),
    (["fixed-points", "--alpha", "nan"], "--alpha", "not a finite number"),
    (["fixed-points", "--alpha", "1e308"], "--alpha", "overflows float64"),
    (["fixed-points", "--steps", "50", "--alpha", "1e10"], "--alpha", "at k = 50"),
    (["fixed-points", "--steps", "51"], "--steps", "<= 50"),
    (["fixed-points", "--support", "0"], "--support", ">= 1"),
    (["fixed-points", "--support", "x"], "--support", "not an integer or 'inf'"),
    (["fixed-points", "--noise", "-1"], "--noise", ">= 0"),
    (["fixed-points", "--simulate", "--runs", "1"], "--runs", ">= 2"),
    (["fixed-points", "--simulate", "--runs", "1001"], "--runs", "<= 1000"),
    (["fixed-points", "--simulate", "--iterations", "3"], "--iterations", ">= 4"),
    (["fixed-points", "--simulate", "--seed", "-1"], "--seed", SEED),
    (["fixed-points", "--simulate", "--seed", "2147483648"], "--seed", SEED),
]

MEMORY = "fit in memory"  # a d whose d × d matrices cannot be allocated here: refused before any is

DYNAMICS_ROWS = [
    (["dynamics", "--dim", "1000000"], "--dim", MEMORY),
    (["dynamics", "--model", "wide"], "--model", "invalid choice"),
    (["dynamics", "--width", "2"], "--width", "not given with --model shallow"),
    (["dynamics", "--starts", "3"], "--starts", "not given with --model shallow"),
    (["dynamics", "--seeds", "3"], "--seeds", "only with --simulate"),
    (["dynamics", "--meta-batch", "30"], "--meta-batch", "only with --simulate"),
    (["dynamics", "--eval-tasks", "30"], "--eval-tasks", "only with --simulate"),
    (["dynamics", "--simulate", "--seeds", "1"], "--seeds", ">= 2"),
    (["dynamics", "--simulate", "--support", "inf"], "--support", "finite integer with --simulate"),
    (["dynamics", "--model", "anil", "--mean-norm", "1"], "--mean-norm", "0 with --model anil"),
    (["dynamics", "--model", "anil", "--steps", "2"], "--steps", "1 with --model anil"),
    (["dynamics", "--model", "anil", "--dim", "6", "--width", "7"], "--width", "<= 6"),
    (["dynamics", "--model", "anil", "--width", "51"], "--width", "<= 50"),
    (["dynamics", "--model", "depth2", "--simulate"], "--simulate", "shallow or anil"),
    (["dynamics", "--model", "depth2", "--meta-lr", "0.1"], "--meta-lr", "not given with --model depth2"),
    (["dynamics", "--times", "-1"], "--times", "times in [0, 1e7]"),
    (["dynamics", "--times", "1,inf"], "--times", "not a finite number"),
    (["dynamics", "--init-scale", "0"], "--init-scale", "(0, 1000]"),
    (["dynamics", "--meta-lr", "-1"], "--meta-lr", "(0, 1000]"),
    (["dynamics", "--alpha", "nan"], "--alpha", "not a finite number"),
    (["dynamics", "--dim", "0"], "--dim", ">= 1"),
    (["dynamics", "--rank", "60"], "--rank", "<= 50"),
    (["dynamics", "--seed", "-1"], "--seed", SEED),
]

SIZE_ROWS = [
    (["explore", "--dim", "1000000", "--theory-only"], "--dim", MEMORY),
    (["explore", "--dim", "1000000"], "--dim", MEMORY),
    (["finite-tasks", "--dim", "1000000", "--runs", "2"], "--dim", MEMORY),
]

BAD_INPUT = [*SIZE_ROWS, *FIGURES_ROWS, *COMPARE_ROWS, *VERIFY_ROWS, *EXPLORE_ROWS, *BENCH_ROWS, *FORMULAS_ROWS,
             *VISION_ROWS, *FINITE_TASKS_ROWS, *FIXED_POINTS_ROWS, *DYNAMICS_ROWS]
