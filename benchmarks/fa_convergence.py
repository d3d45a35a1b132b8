r"""Factor analysis at its defaults on scikit-learn's bundled real data sets, against
scikit-learn's ``FactorAnalysis`` at its defaults.

Protocol (issue 14, goal 3): every data set bundled with scikit-learn that has at least 3
features (iris, wine, breast_cancer, diabetes, digits, linnerud), standardised (zero mean, unit
variance; constant columns left at 0), d = 2 and d = 5 latent dimensions (where d <= p). For
each: our ``FactorAnalysis(d)`` (SQUAREM, the default), plain EM (``algorithm='em'``, the
reference; shown for its iterations and warnings) and ``sklearn.decomposition.FactorAnalysis(d)``,
all on one BLAS thread, fits interleaved, median wall time of ``--repeats`` rounds. Reported:
the mean log-likelihood per sample of each fit (ours minus scikit-learn's: >= 0 means we reach
at least its likelihood), iterations, whether a ConvergenceWarning was raised, and the time ratio
ours / scikit-learn's from the same run.
Goal: no ConvergenceWarning, at least scikit-learn's log-likelihood, in at most its time.
Run ``scratchdgm bench fa-convergence [--repeats 5] [--json]``.
"""

import statistics
import sys
import time
import warnings

HELP = "factor analysis at its defaults on sklearn's bundled data sets against sklearn"

DATASETS = ("iris", "wine", "breast_cancer", "diabetes", "digits", "linnerud")


def configure_parser(p):
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (median)")
    p.add_argument("--d", type=int, nargs="+", default=[2, 5], help="latent dimensions")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _standardised(name):
    import numpy as np
    from sklearn import datasets

    X = getattr(datasets, f"load_{name}")().data.astype(np.float64)
    std = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)


def _fit(make, X):
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model = make().fit(X)
    warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return model, warned


def measure(args):
    from sklearn.decomposition import FactorAnalysis as SKFactorAnalysis
    from threadpoolctl import threadpool_limits

    from scratchdgm import FactorAnalysis
    from scratchdgm.benchmarks.common import machine_info

    if args.repeats < 1:
        raise ValueError("--repeats must be >= 1")
    fits = {
        "ours": lambda d: FactorAnalysis(d),
        "em": lambda d: FactorAnalysis(d, algorithm="em"),
        "sklearn": lambda d: SKFactorAnalysis(d, random_state=0),
    }
    results = []
    with threadpool_limits(limits=1):
        for name in DATASETS:
            X = _standardised(name)
            for d in args.d:
                if d > X.shape[1]:
                    continue
                row = {"data": name, "n": X.shape[0], "p": X.shape[1], "d": d}
                times = {key: [] for key in fits}
                for key, make in fits.items():  # warm-up, and the fitted values
                    model, warned = _fit(lambda: make(d), X)
                    row[key] = {"loglike": float(model.score(X)), "n_iter": int(model.n_iter_),
                                "warning": warned}
                for _ in range(args.repeats):
                    for key, make in fits.items():
                        t0 = time.perf_counter()
                        _fit(lambda: make(d), X)
                        times[key].append(time.perf_counter() - t0)
                for key in fits:
                    row[key]["seconds"] = statistics.median(times[key])
                row["loglike_minus_sklearn"] = row["ours"]["loglike"] - row["sklearn"]["loglike"]
                row["time_ratio"] = row["ours"]["seconds"] / row["sklearn"]["seconds"]
                results.append(row)
    return {"machine": machine_info(1), "results": results}


def summary_rows(out):
    """Rows ``(figure, ours, peer, ratio, goal)`` for the one table of ``scratchdgm bench all``."""
    rows = []
    for r in out["results"]:
        ours, sk = r["ours"], r["sklearn"]
        rows.append((f"FA d={r['d']} on {r['data']} (standardised)",
                     f"{1e3 * ours['seconds']:.1f} ms, ll {ours['loglike']:+.5f}"
                     + (", WARNING" if ours["warning"] else ""),
                     f"sklearn {1e3 * sk['seconds']:.1f} ms, ll {sk['loglike']:+.5f}",
                     f"{r['time_ratio']:.2f}x time, ll {r['loglike_minus_sklearn']:+.1e}",
                     "<= 1x time, ll >= sklearn, no warning"))
    return rows


def run(args):
    from scratchdgm.benchmarks.common import print_result

    return print_result(measure(args), args, report)


def report(out, args):
    """Print the table of :func:`measure`'s results."""
    from scratchdgm.benchmarks.common import machine_line, table

    print(machine_line(1))
    print(f"FactorAnalysis at default settings, standardised data, one BLAS thread, "
          f"interleaved, median of {args.repeats}; ll = mean log-likelihood per sample")
    rows = []
    for r in out["results"]:
        o, e, s = r["ours"], r["em"], r["sklearn"]
        rows.append([r["data"], f"{r['n']}x{r['p']}", r["d"],
                     f"{1e3 * o['seconds']:.1f}", o["n_iter"], "yes" if o["warning"] else "no",
                     f"{1e3 * e['seconds']:.1f}", e["n_iter"], "yes" if e["warning"] else "no",
                     f"{1e3 * s['seconds']:.1f}", s["n_iter"], "yes" if s["warning"] else "no",
                     f"{r['loglike_minus_sklearn']:+.2e}", f"{r['time_ratio']:.2f}"])
    print(table(["data", "n x p", "d", "ours ms", "cycles", "warn", "EM ms", "EM it", "warn",
                 "sklearn ms", "it", "warn", "ll ours - sk", "time ours/sk"], rows))
    print("(ours: SQUAREM, the default; EM: FactorAnalysis(algorithm='em'), the plain "
          "reference; time ratio = ours / sklearn from the same run)")


if __name__ == "__main__":
    from scratchdgm.cli import main

    sys.exit(main(["bench", "fa-convergence", *sys.argv[1:]]))
